"""Operators of the language (`+`, `@`, `<`, `not`, `x[i]`, `x.shape`) on compile-time values and tensors.

Arithmetic between two compile-time values folds with Python's rules (so shapes can be computed);
as soon as a tensor is involved, the operator adds graph nodes. Literal numbers are weakly typed:
they take the tensor's dtype (`h * 0.5` on f16 stays f16), except that a float literal with an
integer tensor gives f32. Two tensors of different dtypes meet at `ir.dtypes.promote`.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from compiler.values import POISON, PoisonError, StaticRange, Tensor, Value, describe, is_int, is_number
from ir.dtypes import DType
from ir.graph import Loc
from ir.types import broadcast_shapes

if TYPE_CHECKING:
    from compiler.irgen import IRGen

_STATIC_BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow,
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
    "ge": operator.ge,
}
_SYMBOL = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "pow": "**", "matmul": "@",
    "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "logical_and": "and",
    "logical_or": "or",
}
_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}


def binary(gen: IRGen, op: str, left: Value, right: Value, loc: Loc) -> Value:
    if left is POISON or right is POISON:
        raise PoisonError()
    left_tensor, right_tensor = isinstance(left, Tensor), isinstance(right, Tensor)
    if not left_tensor and not right_tensor:
        return _static_binary(gen, op, left, right, loc)
    if op == "matmul":
        return matmul(gen, left, right, loc)
    if op in ("floordiv", "mod"):
        raise gen.error(f"'{_SYMBOL[op]}' is only defined on compile-time ints, not on tensors", loc)
    for value, is_tensor in ((left, left_tensor), (right, right_tensor)):
        if not is_tensor and not is_number(value) and not isinstance(value, bool):
            raise gen.error(f"unsupported operand for '{_SYMBOL[op]}': {describe(value)}", loc)
    if op in ("logical_and", "logical_or"):
        a, b = (gen.as_tensor(v, loc, DType.BOOL) for v in (left, right))
        return gen.emit(op, [a, b], None, loc)
    dtype = _operand_dtype(gen, left, right)
    if dtype.is_bool and op not in _COMPARISONS:
        raise gen.error(f"'{_SYMBOL[op]}' is not defined on bool tensors (cast them to a number type first, "
                        "or use and/or/not)", loc)
    if op in ("div", "pow") and not dtype.is_float:
        dtype = DType.F32  # true division and powers of integers give floats
    a = gen.cast(gen.as_tensor(left, loc, dtype), dtype, loc)
    b = gen.cast(gen.as_tensor(right, loc, dtype), dtype, loc)
    try:
        broadcast_shapes(a.shape, b.shape)
    except ValueError as error:
        raise gen.error(f"'{_SYMBOL[op]}': {error}", loc) from None
    return gen.emit(op, [a, b], None, loc)


def _operand_dtype(gen: IRGen, left: Value, right: Value) -> DType:
    tensors = [v for v in (left, right) if isinstance(v, Tensor)]
    dtype = gen.common_dtype([t.dtype for t in tensors])
    static = [v for v in (left, right) if not isinstance(v, Tensor)]
    for value in static:
        if isinstance(value, float) and not dtype.is_float:
            dtype = DType.F32
        elif is_int(value) and dtype.is_bool:
            dtype = DType.I32
    return dtype


def _static_binary(gen: IRGen, op: str, left: Any, right: Any, loc: Loc) -> Value:
    if op == "logical_and":
        return bool(left) and bool(right)
    if op == "logical_or":
        return bool(left) or bool(right)
    if op == "matmul":
        raise gen.error("'@' needs tensors, got compile-time values", loc)
    try:
        return _STATIC_BINARY[op](left, right)
    except ZeroDivisionError:
        raise gen.error("division by zero in a compile-time expression", loc) from None
    except TypeError:
        raise gen.error(f"unsupported operands for '{_SYMBOL[op]}': {describe(left)} and {describe(right)}",
                        loc) from None


def matmul(gen: IRGen, left: Value, right: Value, loc: Loc) -> Tensor:
    """numpy.matmul: 1-D operands are promoted to matrices and the added axis removed afterwards."""
    a = gen.as_tensor(left, loc)
    b = gen.as_tensor(right, loc)
    if a.type.rank == 0 or b.type.rank == 0:
        raise gen.error(f"'@' needs operands of rank >= 1, got {a.type} and {b.type}", loc)
    contracted = b.shape[0] if b.type.rank == 1 else b.shape[-2]
    if a.shape[-1] != contracted:
        raise gen.error(f"'@': contracting dimensions differ: {a.type} @ {b.type} ({a.shape[-1]} vs {contracted})",
                        loc)
    dtype = gen.common_dtype([a.dtype, b.dtype])
    a, b = gen.cast(a, dtype, loc), gen.cast(b, dtype, loc)
    squeeze_rows = a.type.rank == 1
    squeeze_cols = b.type.rank == 1
    if squeeze_rows:
        a = gen.emit("reshape", [a], {"shape": (1,) + a.shape}, loc)
    if squeeze_cols:
        b = gen.emit("reshape", [b], {"shape": b.shape + (1,)}, loc)
    result = gen.emit("matmul", [a, b], None, loc)
    if squeeze_rows or squeeze_cols:
        shape = list(result.shape)
        if squeeze_cols:
            shape.pop(-1)
        if squeeze_rows:
            shape.pop(-1 if squeeze_cols else -2)
        result = gen.emit("reshape", [result], {"shape": tuple(shape)}, loc)
    return result


def unary(gen: IRGen, op: str, value: Value, loc: Loc) -> Value:
    if value is POISON:
        raise PoisonError()
    if op == "pos":
        if isinstance(value, Tensor) or is_number(value):
            return value
        raise gen.error(f"unary '+' needs a number or a tensor, got {describe(value)}", loc)
    if op == "neg":
        if isinstance(value, Tensor):
            return gen.emit("neg", [value], None, loc)
        if is_number(value):
            return -value
        raise gen.error(f"unary '-' needs a number or a tensor, got {describe(value)}", loc)
    if op == "logical_not":
        if isinstance(value, Tensor):
            return gen.emit("logical_not", [value], None, loc)
        return not value
    raise AssertionError(op)


def index(gen: IRGen, value: Value, subscripts: list[Any], loc: Loc) -> Value:
    if isinstance(value, tuple):
        if len(subscripts) != 1 or not (is_int(subscripts[0]) or isinstance(subscripts[0], slice)):
            raise gen.error("a tuple takes one int or slice index", loc)
        try:
            return value[subscripts[0]]
        except IndexError:
            raise gen.error(f"index {subscripts[0]} is out of range for a tuple of {len(value)}", loc) from None
    if isinstance(value, StaticRange):
        return index(gen, tuple(value.values()), subscripts, loc)
    if not isinstance(value, Tensor):
        raise gen.error(f"{describe(value)} cannot be indexed", loc)
    return _index_tensor(gen, value, subscripts, loc)


def _index_tensor(gen: IRGen, tensor: Tensor, subscripts: list[Any], loc: Loc) -> Tensor:
    """numpy basic indexing: ints drop an axis, slices keep it, None adds one, ... fills the rest."""
    ellipses = consumed = 0
    for subscript in subscripts:
        if subscript is Ellipsis:
            ellipses += 1
        elif subscript is not None:
            consumed += 1
    if ellipses > 1:
        raise gen.error("only one '...' is allowed in an index", loc)
    shape = tensor.shape
    rank = len(shape)
    if consumed > rank:
        raise gen.error(f"too many indices ({consumed}) for a tensor of rank {rank}", loc)
    expanded: list[Any] = []
    for subscript in subscripts:
        if subscript is Ellipsis:
            expanded.extend([slice(None)] * (rank - consumed))
        else:
            expanded.append(subscript)
    if not ellipses:  # the axes after the last subscript are taken whole (with '...' there are none)
        expanded.extend([slice(None)] * (rank - consumed))
    starts, stops, steps, out_shape = [], [], [], []
    whole = True  # every axis taken whole, in order: no slice needed
    axis = 0
    for subscript in expanded:
        if subscript is None:
            out_shape.append(1)
            continue
        size = shape[axis]
        if is_int(subscript):
            position = subscript + size if subscript < 0 else subscript
            if not 0 <= position < size:
                raise gen.error(f"index {subscript} is out of range for axis {axis} of size {size}", loc)
            starts.append(position)
            stops.append(position + 1)
            steps.append(1)
            whole = whole and position == 0 and size == 1
        elif isinstance(subscript, slice):
            if subscript.step is not None and subscript.step <= 0:
                raise gen.error("slices with a zero or negative step are not supported", loc)
            start, stop, step = subscript.indices(size)
            stop = max(stop, start)
            starts.append(start)
            stops.append(stop)
            steps.append(step)
            out_shape.append(len(range(start, stop, step)))
            whole = whole and start == 0 and stop == size and step == 1
        else:
            raise gen.error(f"an index must be an int, a slice a:b:c, None or '...', got {describe(subscript)}",
                            loc)
        axis += 1
    result = tensor
    if not whole:
        result = gen.emit("slice", [result], {"starts": tuple(starts), "stops": tuple(stops),
                                              "steps": tuple(steps)}, loc)
    if tuple(out_shape) != result.shape:
        result = gen.emit("reshape", [result], {"shape": tuple(out_shape)}, loc)
    return result


def attribute(gen: IRGen, value: Value, name: str, loc: Loc) -> Value:
    if isinstance(value, Tensor):
        if name == "shape":
            return value.shape
        if name == "dtype":
            return value.dtype
        if name == "ndim":
            return value.type.rank
        if name == "size":
            return value.type.size
        if name == "T":
            perm = tuple(reversed(range(value.type.rank)))
            return gen.emit("transpose", [value], {"perm": perm}, loc)
        raise gen.error(f"a tensor has no attribute '{name}' (attributes: shape, dtype, ndim, size, T)", loc)
    raise gen.error(f"{describe(value)} has no attribute '{name}'", loc)
