"""Structural keys of stages and views, so that work done for one layer of a model serves all of them.

A model's layers are the same operations on different slices of stacked tensors (`wq[l]`, the KV cache
of layer l). Where a result does not depend on which rows a slice starts at, only on the structure of
what is computed, a key that leaves those starts out lets one computation stand for every layer:

* `slice_key`: a slice of a MEM tensor with its starts left out on every axis but the lane axis. Those
  starts move the slice by whole stored rows (every layout of `targets.lpu.vectors` flattens all axes
  but its lane axis into rows, so a start on another axis adds a multiple of the row length to every
  element's flat index): the same vectors relative to the slice's first row, the same lanes;
* `view_key`: the views from a node down to where views stop (`Plan.is_base`), renumbered locally, with
  the bases' layouts. A slice of a MEM tensor that nothing else in those views reads gets `slice_key`:
  every element taken from that base then moves by the same whole rows, which keeps how many distinct
  vectors of it are read (`plan.bt_fanin`). A base read twice keeps its exact starts, since how its
  slices overlap may depend on them.

The stage signature of `targets.lpu.counting` (`_Counter._signature`) uses `slice_key` for the slices it meets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from targets.lpu.plan import Plan


def slice_key(plan: Plan, node: int) -> tuple:
    """A slice's attributes, its starts left out on axes where they shift a MEM tensor by whole rows."""
    graph = plan.graph
    payload = graph.payloads[node]
    starts, stops, steps = payload.attr("starts"), payload.attr("stops"), payload.attr("steps")
    source = graph.operand_lists[node][0]
    rank = len(starts)
    kept = list(starts)
    if source in plan.names and rank >= 2:
        lane_axis = rank - 2 if plan.tensors[plan.names[source]].layout.transposed else rank - 1
        kept = [start if axis == lane_axis else 0 for axis, start in enumerate(starts)]
    return (("starts", tuple(kept)), ("lengths", tuple(b - a for a, b in zip(starts, stops))), ("steps", steps))


def view_key(plan: Plan, node: int) -> tuple:
    """The views from `node` to their bases: per node in a local numbering, a base's type and layout, or
    a view's op, type, attributes (`slice_key` for the only reader of a MEM tensor) and operands."""
    graph = plan.graph
    payloads, operand_lists = graph.payloads, graph.operand_lists  # read-only tables
    local: dict[int, int] = {}
    view_operands: dict[int, tuple[int, ...]] = {}
    pending = [node]
    while pending:
        current = pending.pop()
        if current in local:
            continue
        local[current] = len(local)
        if not plan.is_base(current):
            view_operands[current] = operand_lists[current]
            pending.extend(view_operands[current])
    readers: dict[int, int] = {}  # node -> how many of the views read it
    for operands in view_operands.values():
        for operand in set(operands):
            readers[operand] = readers.get(operand, 0) + 1
    entries: list[tuple] = []
    for current in local:
        payload = payloads[current]
        operands = view_operands.get(current)
        if operands is None:
            entries.append(("base", payload.type, plan.layout_of(current)))
            continue
        attrs = payload.attrs
        if payload.op == "slice" and readers[operands[0]] == 1:
            attrs = slice_key(plan, current)
        entries.append((payload.op, payload.type, attrs, tuple(local[o] for o in operands)))
    return tuple(entries)
