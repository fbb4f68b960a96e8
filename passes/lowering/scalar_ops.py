"""Elementwise and source ops as scalar loop-IR expressions.

Every elementwise graph op has a loop IR op of the same name and meaning in the operands' dtype (see
`ir.loops.UNARY_OPS` and `BINARY_OPS`), so one element of the result is that op applied to one element
of each operand; f16 and bf16 values round after each op just as the reference interpreter does.
Constants become literals (already rounded to their dtype, so every backend sees the same value) and
iotas the index along their axis converted to their dtype.
"""

from __future__ import annotations

import numpy as np

from ir import ops
from ir.dtypes import to_numpy
from ir.graph import Node
from ir.loops import BINARY_OPS, INDEX, UNARY_OPS, Binary, Cast, Const, Expr, Select, Unary


def elementwise_value(node: Node, operands: list[Expr]) -> Expr:
    """One element of elementwise op `node` from one element of each operand."""
    op = node.op
    if op == "cast":
        (value,) = operands
        return value if value.dtype == node.type.dtype else Cast(node.type.dtype, value)
    if op == "select":
        cond, true_value, false_value = operands
        return Select(cond, true_value, false_value)
    if op in UNARY_OPS and ops.in_group(op, ops.UNARY):
        return Unary(op, operands[0])
    if op in BINARY_OPS and ops.in_group(op, ops.BINARY):
        return Binary(op, operands[0], operands[1])
    raise ValueError(f"'{op}' is not an elementwise op the loop IR has")


def constant_value(node: Node) -> Const:
    """The literal of a constant node, converted to its dtype as the interpreter does."""
    dtype = node.type.dtype
    value = to_numpy(np.full((), node.attr("value"), dtype=dtype.numpy), dtype).item()
    if dtype.is_bool:
        return Const(bool(value), dtype)
    if dtype.is_int:
        return Const(int(value), dtype)
    return Const(float(value), dtype)


def iota_value(node: Node, index: tuple[Expr, ...]) -> Expr:
    """One element of an iota: its index along `axis`, in the node's dtype."""
    position = index[node.attr("axis")]
    return position if node.type.dtype == INDEX else Cast(node.type.dtype, position)


def source_value(node: Node, index: tuple[Expr, ...]) -> Expr:
    """One element of a source op that needs no memory (constant, iota)."""
    if node.op == "constant":
        return constant_value(node)
    if node.op == "iota":
        return iota_value(node, index)
    raise ValueError(f"'{node.op}' is not computed inline")


INLINE_SOURCES = frozenset({"constant", "iota"})
