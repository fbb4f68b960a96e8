"""View ops as index arithmetic: where in its operand an element of a view's result comes from.

A view (transpose, reshape, broadcast_to, slice, and the implicit numpy broadcasting of elementwise
operands) moves no data when it is folded into the loads of its consumer: reading the view at an index
is reading the operand at a remapped index. The maps here are exact, element for element, so folding
is always legal; they are also affine wherever the op allows it (everything but reshapes that split or
merge axes), which keeps loads vectorizable:

* broadcasting: dimensions of size 1 read index 0 (when the result's is not 1 too), missing leading
  dimensions are dropped;
* transpose: `operand[perm[k]] = result[k]`;
* slice: `operand[a] = start[a] + result[a] * step[a]`;
* reshape: axes are matched in groups of equal element count (unit axes read 0); a group of one axis
  on each side is the identity, otherwise the group's index is linearised row-major and split again
  with floordiv and mod.
"""

from __future__ import annotations

import math

from ir.graph import Node
from ir.loops import Const, Expr, add, floordiv, linear_index, mod, mul

Indices = tuple[Expr, ...]


def broadcast_index(index: Indices, operand_shape: tuple[int, ...], result_shape: tuple[int, ...]) -> Indices:
    """The operand index read at `index` of the result when `operand_shape` broadcasts (numpy rules)."""
    offset = len(result_shape) - len(operand_shape)
    return tuple(Const(0) if dim == 1 and result_shape[offset + axis] != 1 else index[offset + axis]
                 for axis, dim in enumerate(operand_shape))


def transpose_index(index: Indices, perm: tuple[int, ...]) -> Indices:
    operand: list[Expr] = [Const(0)] * len(perm)
    for axis, source in enumerate(perm):
        operand[source] = index[axis]
    return tuple(operand)


def slice_index(index: Indices, starts: tuple[int, ...], steps: tuple[int, ...]) -> Indices:
    return tuple(add(Const(start), mul(i, Const(step))) for i, start, step in zip(index, starts, steps))


def _reshape_groups(source: list[tuple[int, int]], result: list[tuple[int, int]]
                    ) -> list[tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
    """Split two lists of (axis, extent >= 2) with equal products into runs of equal products."""
    groups = []
    i = j = 0
    while i < len(source):
        src, dst = [source[i]], [result[j]]
        src_size, dst_size = source[i][1], result[j][1]
        i, j = i + 1, j + 1
        while src_size != dst_size:
            if src_size < dst_size:
                src.append(source[i])
                src_size *= source[i][1]
                i += 1
            else:
                dst.append(result[j])
                dst_size *= result[j][1]
                j += 1
        groups.append((src, dst))
    return groups


def reshape_index(index: Indices, operand_shape: tuple[int, ...], result_shape: tuple[int, ...]) -> Indices:
    """The operand index holding the element at `index` of a row-major reshape to `result_shape`."""
    operand: list[Expr] = [Const(0)] * len(operand_shape)
    if math.prod(operand_shape) == 0:  # no elements: never read
        return tuple(operand)
    source = [(axis, dim) for axis, dim in enumerate(operand_shape) if dim != 1]
    result = [(axis, dim) for axis, dim in enumerate(result_shape) if dim != 1]
    for src, dst in _reshape_groups(source, result):
        if len(src) == 1 and len(dst) == 1:
            operand[src[0][0]] = index[dst[0][0]]
            continue
        dst_strides = _row_major_strides([dim for _, dim in dst])
        linear = linear_index(tuple(index[axis] for axis, _ in dst), dst_strides)
        src_strides = _row_major_strides([dim for _, dim in src])
        for position, ((axis, dim), stride) in enumerate(zip(src, src_strides)):
            part = floordiv(linear, Const(stride))
            operand[axis] = part if position == 0 else mod(part, Const(dim))
    return tuple(operand)


def _row_major_strides(dims: list[int]) -> tuple[int, ...]:
    strides = []
    running = 1
    for dim in reversed(dims):
        strides.append(running)
        running *= dim
    return tuple(reversed(strides))


def view_operand_index(node: Node, index: Indices, operand_shape: tuple[int, ...]) -> Indices:
    """For a view op `node` (transpose, reshape, broadcast_to, slice): the operand index its result's
    element at `index` is read from."""
    op = node.op
    if op == "transpose":
        return transpose_index(index, node.attr("perm"))
    if op == "reshape":
        return reshape_index(index, operand_shape, node.type.shape)
    if op == "broadcast_to":
        return broadcast_index(index, operand_shape, node.type.shape)
    if op == "slice":
        return slice_index(index, node.attr("starts"), node.attr("steps"))
    raise ValueError(f"'{op}' is not a view op")
