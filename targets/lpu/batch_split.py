"""Splitting a batched matmul (two activations, or a stacked weight read per batch) across chips by batch.

C[b, ...] = A[b, ...] @ B[b, ...] for each index b of the output's leading axis is independent of every
other b, so a stage too large for one chip is cut into even ranges of that axis, one per chip: each chip
holds the slices of A and B (and of the epilogue's operands) its batches read, and writes its rows of C.
That is exactly the numpy result: every output element is computed once, on one chip, from the same
operand elements as on one chip.

What a chip reads is found by following the box (first and last index per axis) of its output slice back
through the epilogue's elementwise ops (numpy broadcasting), the matmul (A and B keep the batch part of
the box, and are read whole along M, K, N), and views (`partition._view_boxes`); anything else is read
whole. Values made on other chips are copied in only in those ranges (`Stage.copies`, made by `Homes.copy`
before the stage is lowered, and counted by `counting` from the same record), so neither side copies a
whole 160 MiB tensor to each chip.
"""

from __future__ import annotations

import math

from ir import ops
from targets.lpu.partition import (Box, Range, _box_rows, _Chips, _full_box, _merge, _missing, _Unsplittable,
                                   _view_boxes, mib)
from targets.lpu.plan import Plan, Stage, _is_view


def batch_splittable(plan: Plan, stage: Stage) -> bool:
    """A matmul stage with a leading batch axis longer than one, written in plain row order."""
    if stage.kind != "matmul" or stage.output != plan.names.get(stage.node):
        return False
    shape = plan.graph.node(stage.node).type.shape
    layout = plan.tensors[stage.output].layout
    return len(shape) >= 3 and shape[0] > 1 and not layout.transposed and not layout.splat


def _operand_box(shape: tuple[int, ...], out_shape: tuple[int, ...], box: Box) -> Box:
    """The box of an operand broadcast (numpy rules) to an output whose box is `box`."""
    offset = len(out_shape) - len(shape)
    return tuple((0, 0) if dim == 1 and out_shape[offset + axis] != 1 else box[offset + axis]
                 for axis, dim in enumerate(shape))


def _matmul_box(shape: tuple[int, ...], out_shape: tuple[int, ...], box: Box) -> Box:
    """The box of a matmul operand: the output box's batch part (broadcast), the last two axes whole."""
    batch = _operand_box(shape[:-2], out_shape[:-2], box[:-2]) if len(shape) > 2 else ()
    return batch + _full_box(shape[-2:])


def batch_reads(plan: Plan, stage: Stage, first: int, end: int) -> dict[str, list[Range]]:
    """Vector ranges of the MEM tensors read to compute indices [first, end) of the output's leading axis."""
    graph = plan.graph
    out_shape = graph.node(stage.node).type.shape
    result: dict[str, list[Range]] = {}

    def add(name: str, box: Box) -> None:
        layout = plan.tensors[name].layout
        whole = not layout.value_shape or layout.splat
        result.setdefault(name, []).append((0, layout.vectors) if whole else _box_rows(plan, name, box))

    def visit(node: int, box: Box) -> None:
        name = plan.names.get(node)
        payload = graph.node(node)
        if name is not None and node != stage.node:
            add(name, box)
        elif node == stage.anchor:
            a, b = graph.operands(node)
            visit(a, _matmul_box(graph.node(a).type.shape, payload.type.shape, box))
            bt = plan.bt.get(node)
            b_box = _matmul_box(graph.node(b).type.shape, payload.type.shape, box)
            if bt is None:
                visit(b, b_box)
            elif plan.tensors[bt].layout.transposed:  # B itself, stored transposed
                add(bt, b_box)
            else:  # a copy of B with its last two axes swapped
                add(bt, b_box[:-2] + (b_box[-1], b_box[-2]))
        elif _is_view(payload.op):
            for base, base_box in _view_boxes(plan, node, box):
                visit(base, base_box)
        elif ops.in_group(payload.op, ops.ELEMENTWISE):
            for operand in graph.operands(node):
                visit(operand, _operand_box(graph.node(operand).type.shape, payload.type.shape, box))
        else:
            for operand in graph.operands(node):
                visit(operand, _full_box(graph.node(operand).type.shape))

    visit(stage.node, ((first, end - 1),) + _full_box(out_shape[1:]))
    return {name: _merge(ranges) for name, ranges in result.items()}


def output_rows(plan: Plan, stage: Stage, first: int, end: int) -> Range:
    """The output vectors of leading indices [first, end) (contiguous: plain row order)."""
    shape = plan.graph.node(stage.node).type.shape
    return _box_rows(plan, stage.output, ((first, end - 1),) + _full_box(shape[1:]))


def split_by_batch(plan: Plan, stage: Stage, chips: _Chips, capacity: int,
                   produced: dict[str, list[tuple[int, int, int]]], chip: int) -> int:
    """Spread a batched matmul stage over fresh chips by even ranges of its leading axis; returns the last
    chip used. Raises `_Unsplittable` when one batch alone does not fit a chip."""
    lead = plan.graph.node(stage.node).type.shape[0]

    def bytes_of(first: int, end: int) -> int:
        first_row, end_row = output_rows(plan, stage, first, end)
        return chips.alone({**batch_reads(plan, stage, first, end), stage.output: [(first_row, end_row)]},
                           exact=True)

    one = max(bytes_of(0, 1), bytes_of(lead - 1, lead))
    if one > capacity:
        raise _Unsplittable(f"the batched matmul writing {stage.output} cannot be split finely enough: one index "
                            f"of its leading axis with its inputs needs {mib(one)}")
    ways = max(2, min(lead, math.ceil(lead * one / capacity)))
    while True:
        bounds = [round(i * lead / ways) for i in range(ways + 1)]
        groups = [(bounds[i], bounds[i + 1]) for i in range(ways)]
        if ways == lead or all(bytes_of(first, end) <= capacity for first, end in groups):
            break
        ways += 1
    first_target = chip if chips.load[chip] == 0 else chips.new()
    targets = [first_target] + [chips.new() for _ in groups[1:]]
    put_batches(plan, stage, chips, groups, targets, produced)
    return targets[-1]


def put_batches(plan: Plan, stage: Stage, chips: _Chips, groups: list[tuple[int, int]], targets: list[int],
                produced: dict[str, list[tuple[int, int, int]]]) -> None:
    """Place leading-axis ranges `groups` of a batched matmul on `targets`, recording the slices of values
    each chip copies in from others."""
    outputs = []
    stage.batch_chips = tuple((first, end, target) for (first, end), target in zip(groups, targets))
    stage.copies = {}
    for (first, end), target in zip(groups, targets):
        reads = batch_reads(plan, stage, first, end)
        copies: dict[str, list[Range]] = {}
        for name, ranges in reads.items():
            if plan.tensors[name].role != "value":
                continue
            held = chips.held[target].get(name, ())
            missing = [gap for lo, hi in ranges for gap in _missing(held, lo, hi)]
            if missing:
                copies[name] = missing
        stage.copies[target] = copies
        chips.put(target, reads, exact=True)
        first_row, end_row = output_rows(plan, stage, first, end)
        chips.put(target, {stage.output: [(first_row, end_row)]}, exact=True)
        outputs.append((target, first_row, end_row - first_row))
    produced[stage.output] = outputs
    stage.chip = targets[0]
