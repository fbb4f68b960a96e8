"""Helpers the GPU schedules share: linear indices, guards, and mapping a naive loop nest onto threads.

`decompose(linear, shape)` turns a linear (row-major) index into one index per axis with `//` and `%`,
which is how a block or thread number becomes a position in a domain. `peel_nest` takes the serial
loops `NaiveSchedule` puts around each point of a domain and binds their variables to given index
expressions instead, so a kernel spec's per-point code (the naive reduction of one row, say) runs as
one thread's work without being rewritten: only where the point comes from changes.
"""

from __future__ import annotations

import math
from functools import reduce

from ir.dtypes import DType
from ir.loops import Binary, Const, Expr, For, If, Let, Stmt, add, floordiv, mod, mul

Indices = tuple[Expr, ...]


def decompose(linear: Expr, shape: tuple[int, ...]) -> Indices:
    """The row-major multi-index of `linear` in `shape` (the outermost axis needs no `%`)."""
    indices = []
    stride = math.prod(shape)
    for axis, extent in enumerate(shape):
        stride //= extent
        index = floordiv(linear, Const(stride))
        if axis > 0:
            index = mod(index, Const(extent))
        indices.append(index)
    return tuple(indices)


def linear(block: Expr, threads: int, thread: Expr) -> Expr:
    """block * threads + thread."""
    return add(mul(block, Const(threads)), thread)


def less(a: Expr, bound: int) -> Expr:
    return Binary("lt", a, Const(bound))


def all_of(conditions: list[Expr]) -> Expr | None:
    if not conditions:
        return None
    return reduce(lambda a, b: Binary("logical_and", a, b), conditions)


def guarded(condition: Expr | None, body: Stmt, otherwise: Stmt | None = None) -> Stmt:
    """`if condition { body }` (else `otherwise`), or just `body` when there is nothing to check."""
    return body if condition is None else If(condition, body, otherwise)


def zero(dtype: DType) -> Const:
    return Const(0.0 if dtype.is_float else (False if dtype.is_bool else 0), dtype)


def bind_all(names: list[str], values: Indices, body: Stmt) -> Stmt:
    """let names[0] = values[0] { let names[1] = ... { body } }"""
    for name, value in reversed(list(zip(names, values))):
        body = Let(name, value, body)
    return body


class NestMismatch(Exception):
    """The naive nest did not have the loops expected (a change in NaiveSchedule's output shape)."""


def peel_nest(stmt: Stmt, shape: tuple[int, ...], index: Indices) -> Stmt:
    """Replace the `len(shape)` outermost serial loops of `stmt` (0..extent each, as `loop_nest` makes
    them) by lets binding their variables to `index`."""
    names = []
    body = stmt
    for extent in shape:
        if not (isinstance(body, For) and body.start == Const(0) and body.extent == Const(extent) and body.step == 1):
            raise NestMismatch(f"expected a loop 0..{extent}, found {type(body).__name__}")
        names.append(body.var)
        body = body.body
    return bind_all(names, index, body)


