"""Where the elements of a view come from: index arithmetic through view ops, for a few lanes at a time.

A view op (transpose, reshape, broadcast_to, slice, concat) moves elements without computing, so the
element at multi-index i of a view is element f(i) of a "base" value: a value held in MEM or computed
on the fly. `trace` maps the multi-indices of one output vector (at most 320 lanes) back through a
chain of views to (base node, flat index in the base) pairs. It never builds arrays of a tensor's size,
so it is cheap enough to run per vector and when pricing programs too large to lower.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ir.graph import Graph

Index = tuple[np.ndarray, ...]  # one int64 array per axis, all of the same length


def unravel(flat: np.ndarray, shape: tuple[int, ...]) -> Index:
    if not shape:
        return ()
    return tuple(np.asarray(a, dtype=np.int64) for a in np.unravel_index(flat, shape))


def ravel(index: Index, shape: tuple[int, ...], length: int) -> np.ndarray:
    if not shape:
        return np.zeros(length, dtype=np.int64)
    return np.ravel_multi_index(index, shape).astype(np.int64)


def broadcast_index(index: Index, out_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> Index:
    """Indices into an operand of `in_shape` that numpy broadcasts to `out_shape`."""
    offset = len(out_shape) - len(in_shape)
    return tuple(np.zeros_like(index[offset + j]) if in_shape[j] == 1 and out_shape[offset + j] != 1
                 else index[offset + j] for j in range(len(in_shape)))


def view_operand_index(graph: Graph, node: int, index: Index, length: int) -> list[tuple[int, Index, np.ndarray]]:
    """For a view node: (operand, operand multi-index, lanes it serves) for the elements `index` of the view."""
    payload = graph.node(node)
    op, out_shape = payload.op, payload.type.shape
    operands = graph.operands(node)
    lanes = np.arange(length)
    if op == "concat":
        axis = payload.attr("axis")
        results = []
        start = 0
        for operand in operands:
            size = graph.node(operand).type.shape[axis]
            mask = (index[axis] >= start) & (index[axis] < start + size)
            if mask.any():
                sub = tuple(a[mask] - (start if k == axis else 0) for k, a in enumerate(index))
                results.append((operand, sub, lanes[mask]))
            start += size
        return results
    (operand,) = operands
    in_shape = graph.node(operand).type.shape
    if op == "transpose":
        perm = payload.attr("perm")
        source: list[np.ndarray] = [None] * len(perm)  # type: ignore[list-item]
        for out_axis, in_axis in enumerate(perm):
            source[in_axis] = index[out_axis]
        return [(operand, tuple(source), lanes)]
    if op == "reshape":
        flat = ravel(index, out_shape, length)
        return [(operand, unravel(flat, in_shape), lanes)]
    if op == "broadcast_to":
        return [(operand, broadcast_index(index, out_shape, in_shape), lanes)]
    if op == "slice":
        starts, steps = payload.attr("starts"), payload.attr("steps")
        return [(operand, tuple(s + p * a for s, p, a in zip(starts, steps, index)), lanes)]
    raise ValueError(f"'{op}' is not a view")


def trace(graph: Graph, node: int, index: Index, length: int,
          is_base: Callable[[int], bool]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(base node, flat indices in the base, lanes) for the elements `index` of `node`, following views
    until `is_base` says stop. The lanes of all results together are 0 .. length-1."""
    results: list[tuple[int, np.ndarray, np.ndarray]] = []
    pending = [(node, index, np.arange(length))]
    while pending:
        current, current_index, lanes = pending.pop()
        if is_base(current):
            shape = graph.node(current).type.shape
            results.append((current, ravel(current_index, shape, len(lanes)), lanes))
            continue
        for operand, sub, served in view_operand_index(graph, current, current_index, len(lanes)):
            pending.append((operand, sub, lanes[served]))
    return results
