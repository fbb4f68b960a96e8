"""The op table: every graph-IR operation declared once.

An `OpDef` gives an op's operand count, its attributes and their kinds, its type inference (which is
also its verification: it raises `OpError` with a message fit for a user) and the groups that passes
ask about (`ELEMENTWISE`, `REDUCTION`, ...). Passes and targets query groups, never literal sets of op
names, so a new op needs one entry here and an evaluation rule in the interpreter.

Semantics are numpy's: binary ops and `select` broadcast their operands; `matmul` is `numpy.matmul`
on operands of rank 2 or more (the frontend reshapes vectors); reductions take normalised, sorted axes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ir.dtypes import DType
from ir.types import DENSE, TensorType, broadcast_shapes


class OpError(Exception):
    """An operation was built with operands or attributes it does not accept."""


# Attribute kinds: how a value is validated, printed and parsed.
INT, FLOAT, BOOL, STR, INTS, DTYPE, SCALAR = "int", "float", "bool", "str", "ints", "dtype", "scalar"


@dataclass(frozen=True)
class OpDef:
    name: str
    arity: int | None  # None: variadic, at least one operand
    attrs: dict[str, str] = field(default_factory=dict)
    optional_attrs: dict[str, Any] = field(default_factory=dict)  # name -> default
    infer: Callable[[list[TensorType], dict[str, Any]], TensorType] | None = None
    groups: frozenset[str] = frozenset()
    summary: str = ""

    def in_group(self, group: str) -> bool:
        return group in self.groups

    @functools.cached_property
    def attr_names(self) -> frozenset[str]:
        """Every attribute the op knows, required or optional (an OpDef never changes)."""
        return frozenset(self.attrs) | frozenset(self.optional_attrs)

    @functools.cached_property
    def attr_checks(self) -> tuple[tuple[str, str, Callable[[Any], bool]], ...]:
        """(name, kind, the kind's check) of each required attribute, for `check_attrs`."""
        return tuple((key, kind, _ATTR_CHECKS[kind]) for key, kind in self.attrs.items())

    @functools.cached_property
    def optional_types(self) -> tuple[tuple[str, type], ...]:
        """(name, the type of its default) of each optional attribute, for `check_attrs`."""
        return tuple((key, type(default)) for key, default in self.optional_attrs.items())


# Groups passes ask about.
SOURCE = "source"  # no operands: parameters, constants, iotas
ELEMENTWISE = "elementwise"  # out[i] depends on operands at (broadcast) index i only
UNARY = "unary"
BINARY = "binary"
COMPARISON = "comparison"
TRANSCENDENTAL = "transcendental"  # needs a polynomial or a library routine on a target
REDUCTION = "reduction"
SHAPE = "shape"  # moves elements, computes nothing
VIEW = "view"  # a pure index remapping of one operand (a target may fold it into loads)
MATMUL = "matmul"
COMMUTATIVE = "commutative"

OPS: dict[str, OpDef] = {}


def _register(op: OpDef) -> OpDef:
    OPS[op.name] = op
    return op


def op_def(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise OpError(f"unknown operation '{name}'") from None


def in_group(name: str, group: str) -> bool:
    op = OPS.get(name)
    return op is not None and group in op.groups


def ops_in_group(group: str) -> list[str]:
    return sorted(name for name, op in OPS.items() if group in op.groups)


# ----------------------------------------------------------------------------------------------
# Type rules


def _same_dtype(name: str, types: list[TensorType]) -> DType:
    if not types or any(t.dtype is not types[0].dtype for t in types):  # enum members: equal is identical
        raise OpError(f"{name} needs operands of one dtype, got " + " and ".join(str(t.dtype) for t in types))
    return types[0].dtype


def _broadcast(name: str, types: list[TensorType]) -> tuple[int, ...]:
    try:
        return broadcast_shapes(*(t.shape for t in types))
    except ValueError as error:
        raise OpError(f"{name}: {error}") from None


def _float_only(name: str, dtype: DType) -> None:
    if not dtype.is_float:
        raise OpError(f"{name} needs a floating-point operand, got {dtype}")


def _numeric(name: str, dtype: DType) -> None:
    if dtype.is_bool:
        raise OpError(f"{name} is not defined on bool")


def _unary(kind: str) -> Callable[[list[TensorType], dict], TensorType]:
    def infer(types: list[TensorType], attrs: dict, *, _kind: str = kind) -> TensorType:
        (t,) = types
        if _kind == "float":
            _float_only(attrs["__op__"], t.dtype)
        elif _kind == "numeric":
            _numeric(attrs["__op__"], t.dtype)
        elif _kind == "bool":
            if not t.dtype.is_bool:
                raise OpError(f"{attrs['__op__']} needs a bool operand, got {t.dtype}")
        return TensorType(t.shape, t.dtype)
    return infer


def _binary(kind: str) -> Callable[[list[TensorType], dict], TensorType]:
    def infer(types: list[TensorType], attrs: dict, *, _kind: str = kind) -> TensorType:
        name = attrs["__op__"]
        dtype = _same_dtype(name, types)
        shape = _broadcast(name, types)
        if _kind == "float":
            _float_only(name, dtype)
        elif _kind == "numeric":
            _numeric(name, dtype)
        elif _kind == "bool":
            if not dtype.is_bool:
                raise OpError(f"{name} needs bool operands, got {dtype}")
        elif _kind == "compare":
            return TensorType(shape, DType.BOOL)
        return TensorType(shape, dtype)
    return infer


def _infer_cast(types: list[TensorType], attrs: dict) -> TensorType:
    return TensorType(types[0].shape, attrs["dtype"])


def _infer_select(types: list[TensorType], attrs: dict) -> TensorType:
    cond, a, b = types
    if not cond.dtype.is_bool:
        raise OpError(f"select needs a bool condition, got {cond.dtype}")
    dtype = _same_dtype("select", [a, b])
    return TensorType(_broadcast("select", types), dtype)


def _check_axes(name: str, axes: tuple[int, ...], rank: int) -> None:
    if not all(0 <= a < rank for a in axes):
        raise OpError(f"{name}: axes {list(axes)} out of range for rank {rank}")
    if list(axes) != sorted(set(axes)):
        raise OpError(f"{name}: axes must be sorted and unique, got {list(axes)}")


def _infer_reduce(types: list[TensorType], attrs: dict) -> TensorType:
    (t,) = types
    name = attrs["__op__"]
    axes = attrs["axes"]
    _check_axes(name, axes, t.rank)
    if name == "reduce_mean":
        _float_only(name, t.dtype)
    else:
        _numeric(name, t.dtype)
    if name in ("reduce_max", "reduce_min"):
        if not all(t.shape[a] > 0 for a in axes):
            raise OpError(f"{name} over an empty axis has no identity")
    if attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape))
    else:
        shape = tuple(d for i, d in enumerate(t.shape) if i not in axes)
    return TensorType(shape, t.dtype)


def _infer_matmul(types: list[TensorType], attrs: dict) -> TensorType:
    a, b = types
    dtype = _same_dtype("matmul", types)
    _numeric("matmul", dtype)
    if not (a.rank >= 2 and b.rank >= 2):
        raise OpError(f"matmul needs operands of rank >= 2, got {a} and {b}")
    if a.shape[-1] != b.shape[-2]:
        raise OpError(f"matmul: contracting dimensions differ: {a} @ {b} ({a.shape[-1]} vs {b.shape[-2]})")
    try:
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError as error:
        raise OpError(f"matmul batch dimensions: {error}") from None
    return TensorType(batch + (a.shape[-2], b.shape[-1]), dtype)


def _infer_transpose(types: list[TensorType], attrs: dict) -> TensorType:
    (t,) = types
    perm = attrs["perm"]
    if sorted(perm) != list(range(t.rank)):
        raise OpError(f"transpose: {list(perm)} is not a permutation of the {t.rank} axes of {t}")
    return TensorType(tuple(t.shape[p] for p in perm), t.dtype)


def _infer_reshape(types: list[TensorType], attrs: dict) -> TensorType:
    (t,) = types
    shape = attrs["shape"]
    if not all(d >= 0 for d in shape):
        raise OpError(f"reshape: negative dimension in {list(shape)}")
    if math.prod(shape) != t.size:
        raise OpError(f"reshape: cannot reshape {t} ({t.size} elements) to {list(shape)} "
                      f"({math.prod(shape)} elements)")
    return TensorType(tuple(shape), t.dtype)


def _infer_broadcast(types: list[TensorType], attrs: dict) -> TensorType:
    (t,) = types
    shape = attrs["shape"]
    if len(shape) < t.rank:
        raise OpError(f"broadcast_to: cannot broadcast {t} to fewer dimensions {list(shape)}")
    for have, want in zip(reversed(t.shape), reversed(shape)):
        if have not in (1, want):
            raise OpError(f"broadcast_to: cannot broadcast {t} to {list(shape)}")
    return TensorType(tuple(shape), t.dtype)


def slice_length(start: int, stop: int, step: int) -> int:
    return max(0, (stop - start + step - 1) // step)


def _infer_slice(types: list[TensorType], attrs: dict) -> TensorType:
    (t,) = types
    starts, stops, steps = attrs["starts"], attrs["stops"], attrs["steps"]
    if not (len(starts) == len(stops) == len(steps) == t.rank):
        raise OpError(f"slice: starts, stops and steps need one entry per axis of {t}")
    shape = []
    for axis, (start, stop, step, dim) in enumerate(zip(starts, stops, steps, t.shape)):
        if step < 1:
            raise OpError(f"slice: step must be positive, got {step} on axis {axis}")
        if not (0 <= start <= dim and start <= stop <= dim):
            raise OpError(f"slice: [{start}:{stop}] is out of range for axis {axis} of size {dim}")
        shape.append(slice_length(start, stop, step))
    return TensorType(tuple(shape), t.dtype)


def _infer_concat(types: list[TensorType], attrs: dict) -> TensorType:
    axis = attrs["axis"]
    first = types[0]
    dtype = _same_dtype("concat", types)
    if not (0 <= axis < first.rank):
        raise OpError(f"concat: axis {axis} out of range for rank {first.rank}")
    for t in types[1:]:
        if not (t.rank == first.rank and all(
                d == e for i, (d, e) in enumerate(zip(t.shape, first.shape)) if i != axis)):
            raise OpError(f"concat: shapes {first} and {t} differ outside axis {axis}")
    size = sum(t.shape[axis] for t in types)
    shape = first.shape[:axis] + (size,) + first.shape[axis + 1:]
    return TensorType(shape, dtype)


# ----------------------------------------------------------------------------------------------
# The table

_register(OpDef("param", 0, {"name": STR, "index": INT}, {"weight": False},
                groups=frozenset({SOURCE}), summary="an argument of the program"))
_register(OpDef("constant", 0, {"value": SCALAR}, groups=frozenset({SOURCE}),
                summary="a tensor filled with one value"))
_register(OpDef("iota", 0, {"axis": INT}, groups=frozenset({SOURCE}),
                summary="0, 1, 2, ... along one axis, broadcast over the others"))

_UNARY = {
    "neg": ("numeric", "negation"),
    "abs": ("numeric", "absolute value"),
    "relu": ("numeric", "max(x, 0)"),
    "exp": ("float", "e**x"),
    "log": ("float", "natural logarithm"),
    "sqrt": ("float", "square root"),
    "rsqrt": ("float", "1 / sqrt(x)"),
    "tanh": ("float", "hyperbolic tangent"),
    "sigmoid": ("float", "1 / (1 + exp(-x))"),
    "gelu": ("float", "GELU, tanh approximation: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))"),
    "silu": ("float", "x * sigmoid(x)"),
    "sin": ("float", "sine"),
    "cos": ("float", "cosine"),
    "logical_not": ("bool", "boolean negation"),
}
_TRANSCENDENTAL = {"exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "gelu", "silu", "sin", "cos"}
for _name, (_kind, _summary) in _UNARY.items():
    _groups = {ELEMENTWISE, UNARY} | ({TRANSCENDENTAL} if _name in _TRANSCENDENTAL else set())
    _register(OpDef(_name, 1, infer=_unary(_kind), groups=frozenset(_groups), summary=_summary))

_register(OpDef("cast", 1, {"dtype": DTYPE}, infer=_infer_cast,
                groups=frozenset({ELEMENTWISE, UNARY}), summary="convert the element type (numpy astype)"))

_BINARY = {
    "add": ("numeric", True, "a + b"),
    "sub": ("numeric", False, "a - b"),
    "mul": ("numeric", True, "a * b"),
    "div": ("float", False, "a / b"),
    "pow": ("float", False, "a ** b"),
    "maximum": ("numeric", True, "elementwise maximum"),
    "minimum": ("numeric", True, "elementwise minimum"),
    "eq": ("compare", True, "a == b"),
    "ne": ("compare", True, "a != b"),
    "lt": ("compare", False, "a < b"),
    "le": ("compare", False, "a <= b"),
    "gt": ("compare", False, "a > b"),
    "ge": ("compare", False, "a >= b"),
    "logical_and": ("bool", True, "a and b"),
    "logical_or": ("bool", True, "a or b"),
}
for _name, (_kind, _commutative, _summary) in _BINARY.items():
    _groups = {ELEMENTWISE, BINARY}
    if _commutative:
        _groups.add(COMMUTATIVE)
    if _kind == "compare":
        _groups.add(COMPARISON)
    _register(OpDef(_name, 2, infer=_binary(_kind), groups=frozenset(_groups), summary=_summary))

_register(OpDef("select", 3, infer=_infer_select, groups=frozenset({ELEMENTWISE}),
                summary="where(cond, a, b)"))

for _name, _summary in (("reduce_sum", "sum"), ("reduce_max", "maximum"),
                        ("reduce_min", "minimum"), ("reduce_mean", "mean")):
    _register(OpDef(_name, 1, {"axes": INTS, "keepdims": BOOL}, infer=_infer_reduce,
                    groups=frozenset({REDUCTION}), summary=f"{_summary} over axes"))

_register(OpDef("matmul", 2, infer=_infer_matmul, groups=frozenset({MATMUL}),
                summary="numpy.matmul with broadcast batch dimensions"))
_register(OpDef("transpose", 1, {"perm": INTS}, infer=_infer_transpose,
                groups=frozenset({SHAPE, VIEW}), summary="permute axes"))
_register(OpDef("reshape", 1, {"shape": INTS}, infer=_infer_reshape,
                groups=frozenset({SHAPE, VIEW}), summary="same elements, row-major, new shape"))
_register(OpDef("broadcast_to", 1, {"shape": INTS}, infer=_infer_broadcast,
                groups=frozenset({SHAPE, VIEW}), summary="numpy.broadcast_to"))
_register(OpDef("slice", 1, {"starts": INTS, "stops": INTS, "steps": INTS}, infer=_infer_slice,
                groups=frozenset({SHAPE, VIEW}), summary="a strided window, one range per axis"))
_register(OpDef("concat", None, {"axis": INT}, infer=_infer_concat,
                groups=frozenset({SHAPE}), summary="join along an axis"))


# ----------------------------------------------------------------------------------------------
# Checking attributes and inferring a node's type


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_INT_ONLY = frozenset({int})
_ATTR_CHECKS: dict[str, Callable[[Any], bool]] = {
    INT: _is_int,
    FLOAT: lambda value: isinstance(value, float),
    BOOL: lambda value: isinstance(value, bool),
    STR: lambda value: isinstance(value, str),
    INTS: lambda value: isinstance(value, tuple) and (set(map(type, value)) <= _INT_ONLY  # all exactly int
                                                      or all(_is_int(v) for v in value)),
    DTYPE: lambda value: isinstance(value, DType),
    SCALAR: lambda value: isinstance(value, (int, float, bool)),
}


def check_attrs(name: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Validate `attrs` for op `name`; returns them completed with defaults."""
    op = op_def(name)
    complete = {**op.optional_attrs, **attrs}
    for key, kind, check in op.attr_checks:
        if key not in complete:
            raise OpError(f"{name} needs attribute '{key}'")
        if not check(complete[key]):
            raise OpError(f"{name}: attribute '{key}' must be {kind}, got {complete[key]!r}")
    for key, kind in op.optional_types:
        if type(complete[key]) is not kind:
            raise OpError(f"{name}: attribute '{key}' must be {kind.__name__}, got {complete[key]!r}")
    # Every known attribute is in `complete` by now, so it has another one exactly when it is larger.
    if len(complete) != len(op.attr_names):
        unknown = set(complete) - set(op.attrs) - set(op.optional_attrs)
        raise OpError(f"{name} has no attribute(s) {', '.join(sorted(unknown))}")
    return complete


def infer_type(name: str, operand_types: list[TensorType], attrs: dict[str, Any], *,
               checked: bool = False) -> TensorType:
    """The result type of op `name` applied to operands of `operand_types`; raises OpError. `checked`:
    `attrs` is what `check_attrs` returned for them already."""
    op = op_def(name)
    if op.arity is None:
        if not operand_types:
            raise OpError(f"{name} needs at least one operand")
    else:
        if len(operand_types) != op.arity:
            raise OpError(f"{name} takes {op.arity} operand(s), got {len(operand_types)}")
    if not checked:
        attrs = check_attrs(name, attrs)
    if op.infer is None:
        raise OpError(f"{name} has no operands to infer a type from; its type must be given")
    result = op.infer(list(operand_types), {**attrs, "__op__": name})
    if result.format is DENSE:  # what the rules build: already the dense type returned below
        return result
    return TensorType(result.shape, result.dtype, DENSE)
