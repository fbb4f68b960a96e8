"""Built-in functions of the language, each a small function that adds graph nodes.

A builtin is a Python function `(gen, loc, <parameters>)`; its Python signature is the .nk signature,
so `sum(x, axis=1, keepdims=true)` binds exactly as a Python call would and a wrong call gets
Python's own wording ("sum() got an unexpected keyword argument 'axes'") at the call's location.
`softmax`, `layernorm`, `rmsnorm` and `causal_mask` are not here: the prelude (`prelude.nk`) writes
them in .nk.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import TYPE_CHECKING, Any, Callable

from compiler import operators
from compiler.values import PoisonError, StaticRange, Tensor, Value, describe, is_int, is_number
from ir.dtypes import DType
from ir.graph import Loc
from ir.types import TensorType, normalize_axis

if TYPE_CHECKING:
    from compiler.irgen import IRGen

Builtin = Callable[..., Value]
BUILTINS: dict[str, Builtin] = {}


def builtin(*names: str) -> Callable[[Builtin], Builtin]:
    def register(function: Builtin) -> Builtin:
        for name in names:
            BUILTINS[name] = function
        return function
    return register


@functools.cache
def _signature(function: Builtin) -> inspect.Signature:
    return inspect.signature(function)


@functools.cache
def _parameters(function: Builtin) -> tuple[dict[str, int], tuple[tuple[int, str], ...]] | None:
    """(parameter name -> position, (position, name) of each parameter without a default) when every
    parameter is an ordinary one (positional or keyword), else None. Builtins are module-level
    functions that never change, so this is worked out once per function."""
    parameters = list(_signature(function).parameters.values())
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters):
        return None
    required = tuple((i, p.name) for i, p in enumerate(parameters) if p.default is inspect.Parameter.empty)
    return {p.name: i for i, p in enumerate(parameters)}, required


def _binds(function: Builtin, count: int, keywords: dict[str, Value]) -> bool:
    """Whether `count` positional arguments and `keywords` bind to the function's parameters: with
    ordinary parameters only, Python's rule is no more positionals than parameters, every keyword a
    parameter not given by position, and every parameter without a default given."""
    parameters = _parameters(function)
    if parameters is None:
        return False
    positions, required = parameters
    if count > len(positions):
        return False
    for keyword in keywords:
        position = positions.get(keyword)
        if position is None or position < count:
            return False
    return all(i < count or name in keywords for i, name in required)


def call_builtin(gen: IRGen, name: str, args: list[Value], keywords: dict[str, Value], loc: Loc) -> Value:
    function = BUILTINS[name]
    if _binds(function, len(args) + 2, keywords):
        # The call binds, so calling directly binds the arguments exactly as Signature.bind would.
        return function(gen, loc, *args, **keywords)
    try:
        bound = _signature(function).bind(gen, loc, *args, **keywords)
    except TypeError as error:
        message = str(error).replace("missing a required argument", "needs the argument")
        raise gen.error(f"{name}(): {message}", loc) from None
    return function(*bound.args, **bound.kwargs)


# -- argument helpers ----------------------------------------------------------------------------


def _tensor(gen: IRGen, value: Value, loc: Loc, what: str = "argument") -> Tensor:
    if isinstance(value, Tensor):
        return value
    if is_number(value) or isinstance(value, bool):
        return gen.as_tensor(value, loc)
    raise gen.error(f"{what} must be a tensor, got {describe(value)}", loc)


def _int(gen: IRGen, value: Value, loc: Loc, what: str) -> int:
    if not is_int(value):
        raise gen.error(f"{what} must be a compile-time int, got {describe(value)}", loc)
    return value


def _ints(gen: IRGen, value: Value, loc: Loc, what: str) -> tuple[int, ...]:
    if is_int(value):
        return (value,)
    if isinstance(value, tuple) and all(is_int(v) for v in value):
        return value
    raise gen.error(f"{what} must be an int or a tuple of ints, got {describe(value)}", loc)


def _dtype(gen: IRGen, value: Value, loc: Loc) -> DType:
    if isinstance(value, DType):
        return value
    raise gen.error(f"expected a dtype (f32, f16, bf16, f64, i8, i32, i64, bool), got {describe(value)}", loc)


def _axes(gen: IRGen, axis: Value, rank: int, loc: Loc) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(rank))
    try:
        axes = tuple(normalize_axis(a, rank) for a in _ints(gen, axis, loc, "axis"))
    except ValueError as error:
        raise gen.error(str(error), loc) from None
    if len(set(axes)) != len(axes):
        raise gen.error(f"axis {axis} names an axis twice", loc)
    return tuple(sorted(axes))


def _bool(gen: IRGen, value: Value, loc: Loc, what: str) -> bool:
    if not isinstance(value, bool):
        raise gen.error(f"{what} must be true or false, got {describe(value)}", loc)
    return value


# -- elementwise ---------------------------------------------------------------------------------

_MATH = {
    "exp": math.exp, "log": math.log, "sqrt": math.sqrt, "rsqrt": lambda x: 1.0 / math.sqrt(x),
    "tanh": math.tanh, "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)), "sin": math.sin, "cos": math.cos,
    "abs": abs, "relu": lambda x: max(x, 0),
    "gelu": lambda x: 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
    "silu": lambda x: x / (1.0 + math.exp(-x)),
}


def _make_unary(op: str) -> Builtin:
    def function(gen: IRGen, loc: Loc, x: Value) -> Value:
        if is_number(x):  # fold: sqrt(Dh) is a compile-time float
            try:
                return _MATH[op](x)
            except (ValueError, OverflowError):
                raise gen.error(f"{op}({x}) is undefined", loc) from None
        return gen.emit(op, [_tensor(gen, x, loc)], None, loc)
    function.__name__ = op
    return function


for _op in _MATH:
    builtin(_op)(_make_unary(_op))


@builtin("cast")
def cast(gen: IRGen, loc: Loc, x: Value, dtype: Value) -> Value:
    dtype = _dtype(gen, dtype, loc)
    if is_number(x) or isinstance(x, bool):
        return gen.as_tensor(x, loc, dtype)
    return gen.cast(_tensor(gen, x, loc), dtype, loc)


builtin("astype")(cast)


@builtin("where", "select")
def where(gen: IRGen, loc: Loc, condition: Value, a: Value, b: Value) -> Tensor:
    cond = gen.as_tensor(condition, loc, DType.BOOL)
    if not cond.dtype.is_bool:
        raise gen.error(f"where() needs a bool condition, got {cond.type}", loc)
    tensors = [v for v in (a, b) if isinstance(v, Tensor)]
    dtype = gen.common_dtype([t.dtype for t in tensors]) if tensors else (
        DType.F32 if any(isinstance(v, float) for v in (a, b)) else DType.I32)
    if any(isinstance(v, float) for v in (a, b)) and not dtype.is_float:
        dtype = DType.F32
    a_tensor = gen.cast(gen.as_tensor(a, loc, dtype), dtype, loc)
    b_tensor = gen.cast(gen.as_tensor(b, loc, dtype), dtype, loc)
    return gen.emit("select", [cond, a_tensor, b_tensor], None, loc)


@builtin("maximum")
def maximum(gen: IRGen, loc: Loc, a: Value, b: Value) -> Value:
    return _elementwise_pair(gen, "maximum", a, b, loc)


@builtin("minimum")
def minimum(gen: IRGen, loc: Loc, a: Value, b: Value) -> Value:
    return _elementwise_pair(gen, "minimum", a, b, loc)


def _elementwise_pair(gen: IRGen, op: str, a: Value, b: Value, loc: Loc) -> Value:
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return (max if op == "maximum" else min)(a, b)
    dtype = operators._operand_dtype(gen, a, b)
    a_tensor = gen.cast(gen.as_tensor(a, loc, dtype), dtype, loc)
    b_tensor = gen.cast(gen.as_tensor(b, loc, dtype), dtype, loc)
    return gen.emit(op, [a_tensor, b_tensor], None, loc)


@builtin("pow")
def power(gen: IRGen, loc: Loc, a: Value, b: Value) -> Value:
    return operators.binary(gen, "pow", a, b, loc)


@builtin("matmul")
def matmul(gen: IRGen, loc: Loc, a: Value, b: Value) -> Tensor:
    return operators.matmul(gen, a, b, loc)


# -- reductions ----------------------------------------------------------------------------------


def _reduce(gen: IRGen, op: str, x: Value, axis: Value, keepdims: Value, loc: Loc) -> Tensor:
    tensor = _tensor(gen, x, loc)
    axes = _axes(gen, axis, tensor.type.rank, loc)
    keep = _bool(gen, keepdims, loc, "keepdims")
    if op == "reduce_mean" and not tensor.dtype.is_float:
        tensor = gen.cast(tensor, DType.F32, loc)
    return gen.emit(op, [tensor], {"axes": axes, "keepdims": keep}, loc)


@builtin("sum")
def reduce_sum(gen: IRGen, loc: Loc, x: Value, axis: Value = None, keepdims: Value = False) -> Value:
    if isinstance(x, tuple) and all(is_number(v) for v in x):
        return sum(x)
    return _reduce(gen, "reduce_sum", x, axis, keepdims, loc)


@builtin("mean")
def reduce_mean(gen: IRGen, loc: Loc, x: Value, axis: Value = None, keepdims: Value = False) -> Tensor:
    return _reduce(gen, "reduce_mean", x, axis, keepdims, loc)


def _max_or_min(op: str, fold: Callable) -> Builtin:
    def function(gen: IRGen, loc: Loc, x: Value, y: Value = None, axis: Value = None,
                 keepdims: Value = False) -> Value:
        if y is not None:  # max(a, b) is elementwise, as numpy's maximum
            if axis is not None or keepdims:
                raise gen.error(f"{op}(a, b) is elementwise and takes no axis", loc)
            if not isinstance(x, Tensor) and not isinstance(y, Tensor):
                return fold(x, y)
            return _elementwise_pair(gen, "maximum" if op == "max" else "minimum", x, y, loc)
        if isinstance(x, tuple) and x and all(is_number(v) for v in x):
            return fold(x)
        return _reduce(gen, f"reduce_{op}", x, axis, keepdims, loc)
    function.__name__ = op
    return function


builtin("max")(_max_or_min("max", max))
builtin("min")(_max_or_min("min", min))


# -- shapes --------------------------------------------------------------------------------------


@builtin("transpose", "permute")
def transpose(gen: IRGen, loc: Loc, x: Value, perm: Value = None) -> Tensor:
    tensor = _tensor(gen, x, loc)
    rank = tensor.type.rank
    if perm is None:
        order = tuple(reversed(range(rank)))
    else:
        order = _ints(gen, perm, loc, "perm")
        if len(order) != rank:
            raise gen.error(f"perm {list(order)} must name all {rank} axes of {tensor.type}", loc)
        try:
            order = tuple(normalize_axis(a, rank) for a in order)
        except ValueError as error:
            raise gen.error(str(error), loc) from None
    if order == tuple(range(rank)):
        return tensor
    return gen.emit("transpose", [tensor], {"perm": order}, loc)


@builtin("reshape")
def reshape(gen: IRGen, loc: Loc, x: Value, shape: Value) -> Tensor:
    tensor = _tensor(gen, x, loc)
    dims = list(_ints(gen, shape, loc, "shape"))
    if dims.count(-1) > 1:
        raise gen.error("reshape: only one dimension can be -1", loc)
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or tensor.type.size % known:
            raise gen.error(f"reshape: cannot infer -1 in {dims} for {tensor.type}", loc)
        dims[dims.index(-1)] = tensor.type.size // known
    if tuple(dims) == tensor.shape:
        return tensor
    return gen.emit("reshape", [tensor], {"shape": tuple(dims)}, loc)


@builtin("broadcast", "broadcast_to")
def broadcast(gen: IRGen, loc: Loc, x: Value, shape: Value) -> Tensor:
    tensor = _tensor(gen, x, loc)
    dims = _ints(gen, shape, loc, "shape")
    if dims == tensor.shape:
        return tensor
    return gen.emit("broadcast_to", [tensor], {"shape": dims}, loc)


@builtin("expand_dims")
def expand_dims(gen: IRGen, loc: Loc, x: Value, axis: Value) -> Tensor:
    tensor = _tensor(gen, x, loc)
    position = _int(gen, axis, loc, "axis")
    rank = tensor.type.rank + 1
    if not -rank <= position < rank:
        raise gen.error(f"axis {position} is out of range for the result of rank {rank}", loc)
    shape = list(tensor.shape)
    shape.insert(position % rank, 1)
    return gen.emit("reshape", [tensor], {"shape": tuple(shape)}, loc)


@builtin("squeeze")
def squeeze(gen: IRGen, loc: Loc, x: Value, axis: Value = None) -> Tensor:
    tensor = _tensor(gen, x, loc)
    if axis is None:
        axes = tuple(i for i, d in enumerate(tensor.shape) if d == 1)
    else:
        axes = _axes(gen, axis, tensor.type.rank, loc)
        for a in axes:
            if tensor.shape[a] != 1:
                raise gen.error(f"squeeze: axis {a} has size {tensor.shape[a]}, not 1", loc)
    shape = tuple(d for i, d in enumerate(tensor.shape) if i not in axes)
    return reshape(gen, loc, tensor, shape)


@builtin("slice")
def slice_(gen: IRGen, loc: Loc, x: Value, starts: Value, stops: Value, steps: Value = None) -> Tensor:
    tensor = _tensor(gen, x, loc)
    begin = _ints(gen, starts, loc, "starts")
    end = _ints(gen, stops, loc, "stops")
    step = _ints(gen, steps, loc, "steps") if steps is not None else (1,) * len(begin)
    if not len(begin) == len(end) == len(step) <= tensor.type.rank:
        raise gen.error(f"slice: starts, stops and steps need the same length, at most the rank of {tensor.type}",
                        loc)
    subscripts = [slice(a, b, c) for a, b, c in zip(begin, end, step)]
    return operators.index(gen, tensor, subscripts, loc)


def _tensor_list(gen: IRGen, values: Value, loc: Loc, name: str) -> list[Tensor]:
    if not isinstance(values, tuple) or not values:
        raise gen.error(f"{name}() takes a non-empty tuple of tensors, got {describe(values)}", loc)
    tensors = [_tensor(gen, v, loc) for v in values]
    dtype = gen.common_dtype([t.dtype for t in tensors])
    return [gen.cast(t, dtype, loc) for t in tensors]


@builtin("concat", "concatenate")
def concat(gen: IRGen, loc: Loc, tensors: Value, axis: Value = 0) -> Tensor:
    items = _tensor_list(gen, tensors, loc, "concat")
    try:
        position = normalize_axis(_int(gen, axis, loc, "axis"), items[0].type.rank)
    except ValueError as error:
        raise gen.error(str(error), loc) from None
    if len(items) == 1:
        return items[0]
    return gen.emit("concat", items, {"axis": position}, loc)


@builtin("stack")
def stack(gen: IRGen, loc: Loc, tensors: Value, axis: Value = 0) -> Tensor:
    items = _tensor_list(gen, tensors, loc, "stack")
    expanded = tuple(expand_dims(gen, loc, t, axis) for t in items)
    return concat(gen, loc, expanded, axis)


@builtin("split")
def split(gen: IRGen, loc: Loc, x: Value, sections: Value, axis: Value = 0) -> tuple:
    tensor = _tensor(gen, x, loc)
    try:
        position = normalize_axis(_int(gen, axis, loc, "axis"), tensor.type.rank)
    except ValueError as error:
        raise gen.error(str(error), loc) from None
    count = _int(gen, sections, loc, "sections")
    size = tensor.shape[position]
    if count <= 0 or size % count:
        raise gen.error(f"split: axis {position} of size {size} does not split into {count} equal parts", loc)
    part = size // count
    pieces = []
    for i in range(count):
        subscripts: list[Any] = [slice(None)] * tensor.type.rank
        subscripts[position] = slice(i * part, (i + 1) * part)
        pieces.append(operators.index(gen, tensor, subscripts, loc))
    return tuple(pieces)


# -- creation ------------------------------------------------------------------------------------


@builtin("full")
def full(gen: IRGen, loc: Loc, shape: Value, value: Value, dtype: Value = None) -> Tensor:
    dims = _ints(gen, shape, loc, "shape")
    if not (is_number(value) or isinstance(value, bool)):
        raise gen.error(f"full() needs a compile-time fill value, got {describe(value)}", loc)
    if dtype is None:
        kind = DType.BOOL if isinstance(value, bool) else DType.F32 if isinstance(value, float) else DType.I32
    else:
        kind = _dtype(gen, dtype, loc)
    scalar = gen.as_tensor(value, loc, kind)
    return broadcast(gen, loc, scalar, dims)


@builtin("tensor")
def tensor(gen: IRGen, loc: Loc, values: Value, dtype: Value = None) -> Tensor:
    """A constant tensor from a number or a nested tuple of numbers, as numpy.array:
    `tensor(((1, 2), (3, 4)), f32)`. Without a dtype: bool, else i32 for ints, else f32."""
    flat = _flatten(gen, values, loc)
    if dtype is not None:
        kind = _dtype(gen, dtype, loc)
    elif all(isinstance(v, bool) for v in flat):
        kind = DType.BOOL
    elif any(isinstance(v, float) for v in flat):
        kind = DType.F32
    else:
        kind = DType.I32
    return _literal(gen, values, kind, loc)


def _flatten(gen: IRGen, values: Value, loc: Loc) -> list:
    if is_number(values) or isinstance(values, bool):
        return [values]
    if isinstance(values, tuple) and values:
        return [v for item in values for v in _flatten(gen, item, loc)]
    raise gen.error(f"tensor() takes a number or a non-empty (nested) tuple of numbers, got {describe(values)}", loc)


def _literal(gen: IRGen, values: Value, dtype: DType, loc: Loc) -> Tensor:
    if not isinstance(values, tuple):
        return gen.constant(values, dtype, loc)
    rows = tuple(_literal(gen, v, dtype, loc) for v in values)
    if len({row.shape for row in rows}) != 1:
        raise gen.error("tensor(): the nested tuples have different lengths", loc)
    return stack(gen, loc, rows, 0)


@builtin("zeros")
def zeros(gen: IRGen, loc: Loc, shape: Value, dtype: Value = DType.F32) -> Tensor:
    return full(gen, loc, shape, 0, dtype)


@builtin("ones")
def ones(gen: IRGen, loc: Loc, shape: Value, dtype: Value = DType.F32) -> Tensor:
    return full(gen, loc, shape, 1, dtype)


@builtin("iota")
def iota(gen: IRGen, loc: Loc, shape: Value, axis: Value = 0, dtype: Value = DType.I32) -> Tensor:
    dims = _ints(gen, shape, loc, "shape")
    try:
        position = normalize_axis(_int(gen, axis, loc, "axis"), len(dims))
    except ValueError as error:
        raise gen.error(str(error), loc) from None
    kind = _dtype(gen, dtype, loc)
    if kind.is_bool:
        raise gen.error("iota() needs a numeric dtype", loc)
    return gen.emit("iota", [], {"axis": position}, loc, TensorType(dims, kind))


@builtin("arange")
def arange(gen: IRGen, loc: Loc, start: Value, stop: Value = None, step: Value = 1,
           dtype: Value = DType.I32) -> Tensor:
    """numpy.arange over compile-time ints: `arange(n)` or `arange(start, stop, step)`."""
    if stop is None:
        start, stop = 0, start
    begin, end = _int(gen, start, loc, "start"), _int(gen, stop, loc, "stop")
    stride = _int(gen, step, loc, "step")
    if stride == 0:
        raise gen.error("arange: step must not be 0", loc)
    count = len(range(begin, end, stride))
    kind = _dtype(gen, dtype, loc)
    result = iota(gen, loc, (count,), 0, kind)
    if stride != 1:
        result = operators.binary(gen, "mul", result, stride, loc)
    if begin != 0:
        result = operators.binary(gen, "add", result, begin, loc)
    return result


# -- compile-time helpers ------------------------------------------------------------------------


@builtin("range")
def range_(gen: IRGen, loc: Loc, start: Value, stop: Value = None, step: Value = 1) -> StaticRange:
    if stop is None:
        start, stop = 0, start
    values = [_int(gen, v, loc, "a range bound") for v in (start, stop, step)]
    if values[2] == 0:
        raise gen.error("range() step must not be 0", loc)
    return StaticRange(*values)


@builtin("len")
def length(gen: IRGen, loc: Loc, x: Value) -> int:
    if isinstance(x, Tensor):
        if x.type.rank == 0:
            raise gen.error("len() of a rank-0 tensor", loc)
        return x.shape[0]
    if isinstance(x, tuple):
        return len(x)
    if isinstance(x, StaticRange):
        return len(x.values())
    raise gen.error(f"len() of {describe(x)}", loc)


@builtin("int")
def to_int(gen: IRGen, loc: Loc, x: Value) -> int:
    if is_number(x) or isinstance(x, bool):
        return int(x)
    raise gen.error(f"int() needs a compile-time number, got {describe(x)}", loc)


@builtin("float")
def to_float(gen: IRGen, loc: Loc, x: Value) -> float:
    if is_number(x) or isinstance(x, bool):
        return float(x)
    raise gen.error(f"float() needs a compile-time number, got {describe(x)}", loc)


def builtin_names() -> list[str]:
    return sorted(BUILTINS)


__all__ = ["BUILTINS", "call_builtin", "builtin_names", "PoisonError"]
