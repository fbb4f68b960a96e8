"""Every graph op, reached through the language, against numpy computed directly.

Each test compiles a small .nk program with `compile_string`, runs it on the reference target and
compares with numpy evaluated in float64 (or exactly, in the integer dtype, for integers and bools),
within the per-dtype tolerance of `compiler.checking.compare`. Together they cover the op table
(`ir.ops.OPS`; `test_every_op_is_covered` keeps it so), every dtype each op accepts, numpy
broadcasting, reductions, matmul with batch broadcasting and vectors, basic indexing, the shape ops,
casts between all dtypes, bf16 rounding, the weak typing of literals and dtype promotion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import CompileError, compile_string
from compiler.checking import compare
from compiler.driver import Source
from ir import ops
from ir.dtypes import DType, round_bf16, to_numpy

FLOATS = [DType.F32, DType.F64, DType.F16, DType.BF16]
INTS = [DType.I8, DType.I32, DType.I64]
NUMERIC = FLOATS + INTS
ALL = NUMERIC + [DType.BOOL]


def sample(dtype: DType, shape: tuple[int, ...], seed: int = 0, low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """Random values of `dtype` in its storage container (bf16 values exactly representable)."""
    rng = np.random.default_rng(seed)
    if dtype.is_bool:
        return rng.random(shape) < 0.5
    if dtype.is_int:
        return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype.numpy)
    return to_numpy(rng.uniform(low, high, size=shape), dtype)


def dims(shape: tuple[int, ...]) -> str:
    return ", ".join(str(d) for d in shape)


def check(actual: np.ndarray, expected: np.ndarray, dtype: DType) -> None:
    """`actual` has the container dtype of `dtype` and matches `expected` (rounded to `dtype`)."""
    assert actual.dtype == dtype.numpy
    want = to_numpy(np.asarray(expected), dtype)
    result = compare(actual, want, dtype)
    assert result.ok, result.message


def run1(source: str, *args: np.ndarray) -> np.ndarray:
    return compile_string(source)(*args)


# -- unary ---------------------------------------------------------------------------------------

def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


FLOAT_UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda x: 1.0 / np.sqrt(x), "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "gelu": _gelu, "silu": lambda x: x / (1.0 + np.exp(-x)),
    "sin": np.sin, "cos": np.cos,
}
NUMERIC_UNARY = {"abs": np.abs, "relu": lambda x: np.maximum(x, 0), "neg": np.negative}


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("op", sorted(FLOAT_UNARY))
def test_float_unary(op: str, dtype: DType) -> None:
    positive = op in ("log", "sqrt", "rsqrt")
    x = sample(dtype, (3, 5), low=0.1 if positive else -4.0, high=4.0)
    y = run1(f"def f(x: {dtype}[3, 5]) -> {dtype}[3, 5] {{ return {op}(x) }}", x)
    check(y, FLOAT_UNARY[op](x.astype(np.float64)), dtype)


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("op", sorted(NUMERIC_UNARY))
def test_numeric_unary(op: str, dtype: DType) -> None:
    x = sample(dtype, (4, 3), low=-5, high=5)
    call = "-x" if op == "neg" else f"{op}(x)"
    y = run1(f"def f(x: {dtype}[4, 3]) -> {dtype}[4, 3] {{ return {call} }}", x)
    expected = NUMERIC_UNARY[op](x.astype(np.float64)) if dtype.is_float else NUMERIC_UNARY[op](x)
    check(y, expected, dtype)


def test_logical_not() -> None:
    m = sample(DType.BOOL, (6,))
    y = run1("def f(m: bool[6]) -> bool[6] { return not m }", m)
    np.testing.assert_array_equal(y, ~m)


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "tanh", "sigmoid", "gelu", "silu", "sin", "cos"])
def test_float_unary_rejects_integers(op: str) -> None:
    with pytest.raises(CompileError, match=f"{op} needs a floating-point operand, got i32"):
        compile_string(f"def f(x: i32[3]) -> i32[3] {{ return {op}(x) }}")


def test_unary_of_a_literal_folds_at_compile_time() -> None:
    source = "def f(x: f32[2]) -> f32[2] { return x * sqrt(16) + exp(0) }"
    prog = compile_string(source)
    graph = Source.from_text(source).specialize({}, None)  # as the IR generator built it
    assert [node.op for _, node in graph.nodes()].count("sqrt") == 0
    np.testing.assert_allclose(prog(np.array([1.0, 2.0], np.float32)), [5.0, 9.0])


# -- binary --------------------------------------------------------------------------------------

ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply}
COMPARISONS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
               ">=": np.greater_equal}


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("symbol", sorted(ARITHMETIC))
def test_arithmetic_with_broadcasting(symbol: str, dtype: DType) -> None:
    a, b = sample(dtype, (3, 1, 4), seed=1), sample(dtype, (2, 4), seed=2)
    y = run1(f"def f(a: {dtype}[3, 1, 4], b: {dtype}[2, 4]) -> {dtype}[3, 2, 4] {{ return a {symbol} b }}", a, b)
    expected = ARITHMETIC[symbol](a.astype(np.float64), b.astype(np.float64)) if dtype.is_float else \
        ARITHMETIC[symbol](a, b)
    check(y, expected, dtype)


@st.composite
def broadcastable_shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that numpy broadcasts: per aligned axis, equal sizes or a 1 on either side."""
    result = draw(st.lists(st.integers(1, 3), min_size=0, max_size=4))
    shapes = []
    for _ in range(2):
        rank = draw(st.integers(0, len(result)))
        tail = result[len(result) - rank:]
        shapes.append(tuple(d if draw(st.booleans()) else 1 for d in tail))
    return shapes[0], shapes[1]


@settings(max_examples=25, deadline=None)
@given(shapes=broadcastable_shapes())
def test_broadcasting_property(shapes: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    a_shape, b_shape = shapes
    a, b = sample(DType.F64, a_shape, seed=35), sample(DType.F64, b_shape, seed=36)
    expected = np.where(a > b, a * b - a, b / 2.0)
    y = run1(f"def f(a: f64[{dims(a_shape)}], b: f64[{dims(b_shape)}]) -> f64[{dims(expected.shape)}] "
             "{ return where(a > b, a * b - a, b / 2.0) }", a, b)
    check(y, expected, DType.F64)


def test_integer_arithmetic_wraps_as_numpy() -> None:
    a = np.array([100, -100, 127], np.int8)
    y = run1("def f(a: i8[3]) -> i8[3] { return a + a }", a)
    np.testing.assert_array_equal(y, (a + a).astype(np.int8))


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_division_and_power(dtype: DType) -> None:
    a, b = sample(dtype, (2, 3), seed=3, low=0.5, high=3.0), sample(dtype, (3,), seed=4, low=0.5, high=2.0)
    quotient, power = compile_string(
        f"def f(a: {dtype}[2, 3], b: {dtype}[3]) -> ({dtype}[2, 3], {dtype}[2, 3]) {{ return a / b, a ** b }}")(a, b)
    check(quotient, a.astype(np.float64) / b, dtype)
    check(power, a.astype(np.float64) ** b, dtype)


@pytest.mark.parametrize("dtype", INTS, ids=str)
def test_integer_division_and_power_give_f32(dtype: DType) -> None:
    a, b = np.array([7, -6, 5], dtype.numpy), np.array([2, 4, 5], dtype.numpy)
    quotient, power = compile_string(
        f"def f(a: {dtype}[3], b: {dtype}[3]) -> (f32[3], f32[3]) {{ return a / b, b ** 2 }}")(a, b)
    check(quotient, a / b, DType.F32)
    check(power, b.astype(np.float64) ** 2, DType.F32)


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum(name: str, dtype: DType) -> None:
    a, b = sample(dtype, (4, 1), seed=5), sample(dtype, (1, 3), seed=6)
    short = {"maximum": "max", "minimum": "min"}[name]
    first, second = compile_string(
        f"def f(a: {dtype}[4, 1], b: {dtype}[1, 3]) -> ({dtype}[4, 3], {dtype}[4, 3]) "
        f"{{ return {name}(a, b), {short}(a, b) }}")(a, b)
    expected = getattr(np, name)(a, b)
    check(first, expected, dtype)
    check(second, expected, dtype)


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("symbol", sorted(COMPARISONS))
def test_comparisons(symbol: str, dtype: DType) -> None:
    a, b = sample(dtype, (5, 1), seed=7, low=-2, high=2), sample(dtype, (4,), seed=8, low=-2, high=2)
    y = run1(f"def f(a: {dtype}[5, 1], b: {dtype}[4]) -> bool[5, 4] {{ return a {symbol} b }}", a, b)
    np.testing.assert_array_equal(y, COMPARISONS[symbol](a, b))


def test_logical_and_or() -> None:
    a, b = sample(DType.BOOL, (3, 4), seed=9), sample(DType.BOOL, (4,), seed=10)
    both, either = compile_string(
        "def f(a: bool[3, 4], b: bool[4]) -> (bool[3, 4], bool[3, 4]) { return a and b, a or b }")(a, b)
    np.testing.assert_array_equal(both, a & b)
    np.testing.assert_array_equal(either, a | b)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_where_broadcasts(dtype: DType) -> None:
    cond, a, b = sample(DType.BOOL, (2, 1, 3), seed=11), sample(dtype, (4, 3), seed=12), sample(dtype, (3,), seed=13)
    y = run1(f"def f(c: bool[2, 1, 3], a: {dtype}[4, 3], b: {dtype}[3]) -> {dtype}[2, 4, 3] "
             "{ return where(c, a, b) }", cond, a, b)
    np.testing.assert_array_equal(y, np.where(cond, a, b))
    y = run1(f"def f(c: bool[2, 1, 3], a: {dtype}[4, 3], b: {dtype}[3]) -> {dtype}[2, 4, 3] "
             "{ return select(c, a, b) }", cond, a, b)
    np.testing.assert_array_equal(y, np.where(cond, a, b))


def test_where_with_literals() -> None:
    x = np.array([-1.0, 2.0, -3.0], np.float32)
    y = run1("def f(x: f32[3]) -> f32[3] { return where(x > 0, x, -inf) }", x)
    np.testing.assert_array_equal(y, [-np.inf, 2.0, -np.inf])
    y = run1("def f(x: f32[3]) -> f32[3] { return where(x > 0, 1, 0) * x }", x)
    np.testing.assert_array_equal(y, [0.0, 2.0, 0.0])


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_nan_and_infinity_propagate(dtype: DType) -> None:
    x = np.array([np.nan, np.inf, -np.inf, 1.0], dtype.numpy)
    y = run1(f"def f(x: {dtype}[4]) -> {dtype}[4] {{ return max(x, 0.0) + x * 0 }}", x)
    assert np.isnan(y[0]) and np.isnan(y[1]) and np.isnan(y[2]) and y[3] == 1.0


# -- reductions ----------------------------------------------------------------------------------

REDUCTIONS = {"sum": np.sum, "max": np.max, "min": np.min, "mean": np.mean}
AXES = [None, 0, -1, (0, 2), (2, 0), (0, 1, 2), (-3, -2)]


def _axis_text(axis: object) -> str:
    if axis is None:
        return ""
    return f", axis={axis}" if isinstance(axis, int) else f", axis=({', '.join(map(str, axis))})"


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_over_axes(name: str, axis: object, keepdims: bool) -> None:
    x = sample(DType.F32, (2, 3, 4), seed=14)
    expected = REDUCTIONS[name](x.astype(np.float64), axis=axis, keepdims=keepdims)
    keep = ", keepdims=true" if keepdims else ""
    shape = dims(expected.shape)
    y = run1(f"def f(x: f32[2, 3, 4]) -> f32[{shape}] {{ return {name}(x{_axis_text(axis)}{keep}) }}", x)
    check(y, expected, DType.F32)


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("name", ["sum", "max", "min"])
def test_reductions_per_dtype(name: str, dtype: DType) -> None:
    x = sample(dtype, (3, 4), seed=15)
    y = run1(f"def f(x: {dtype}[3, 4]) -> {dtype}[4] {{ return {name}(x, axis=0) }}", x)
    expected = REDUCTIONS[name](x.astype(np.float64) if dtype.is_float else x, axis=0)
    check(y, expected, dtype)


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_mean_per_dtype(dtype: DType) -> None:
    """mean of an integer tensor is an f32 (it is computed in f32)."""
    x = sample(dtype, (3, 4), seed=16)
    result = dtype if dtype.is_float else DType.F32
    y = run1(f"def f(x: {dtype}[3, 4]) -> {result}[3] {{ return mean(x, axis=1) }}", x)
    check(y, x.astype(np.float64).mean(axis=1), result)


def test_integer_sum_wraps_in_its_dtype() -> None:
    x = np.full((4,), 100, np.int8)
    y = run1("def f(x: i8[4]) -> i8[] { return sum(x) }", x)
    assert y.dtype == np.int8 and int(y) == np.int8(np.int64(400) - 512)


def test_method_call_form() -> None:
    x = sample(DType.F32, (2, 3), seed=17)
    y = run1("def f(x: f32[2, 3]) -> f32[2, 1] { return x.sum(axis=1, keepdims=true) }", x)
    check(y, x.astype(np.float64).sum(axis=1, keepdims=True), DType.F32)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), data=st.data())
def test_reduction_property(shape: list[int], data: st.DataObject) -> None:
    rank = len(shape)
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), unique_by=lambda a: a % rank, max_size=rank))
    keepdims = data.draw(st.booleans())
    name = data.draw(st.sampled_from(sorted(REDUCTIONS)))
    x = sample(DType.F64, tuple(shape), seed=18)
    axis = tuple(axes) if axes else None
    expected = REDUCTIONS[name](x, axis=axis, keepdims=keepdims)
    keep = ", keepdims=true" if keepdims else ""
    y = run1(f"def f(x: f64[{dims(tuple(shape))}]) -> f64[{dims(expected.shape)}] "
             f"{{ return {name}(x{_axis_text(axis)}{keep}) }}", x)
    check(y, expected, DType.F64)


# -- matmul --------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),          # batch on the left only
    ((4,), (4, 5)),               # vector @ matrix
    ((3, 4), (4,)),               # matrix @ vector
    ((4,), (4,)),                 # dot product: rank 0
    ((2, 1, 3, 4), (5, 4, 6)),    # batch dimensions broadcast
    ((7, 4), (2, 4, 3)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_shapes(shapes: tuple) -> None:
    a_shape, b_shape = shapes
    a, b = sample(DType.F64, a_shape, seed=19), sample(DType.F64, b_shape, seed=20)
    expected = np.matmul(a, b)
    y = run1(f"def f(a: f64[{dims(a_shape)}], b: f64[{dims(b_shape)}]) -> f64[{dims(expected.shape)}] "
             "{ return a @ b }", a, b)
    check(y, expected, DType.F64)


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_matmul_per_dtype(dtype: DType) -> None:
    a, b = sample(dtype, (2, 3, 4), seed=21, low=-2, high=2), sample(dtype, (4, 2), seed=22, low=-2, high=2)
    y = run1(f"def f(a: {dtype}[2, 3, 4], b: {dtype}[4, 2]) -> {dtype}[2, 3, 2] {{ return matmul(a, b) }}", a, b)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64)) if dtype.is_float else np.matmul(a, b)
    check(y, expected, dtype)


def test_matmul_promotes_mixed_dtypes() -> None:
    a, b = sample(DType.F16, (2, 3), seed=23), sample(DType.F32, (3, 2), seed=24)
    prog = compile_string("def f(a: f16[2, 3], b: f32[3, 2]) -> f32[2, 2] { return a @ b }")
    check(prog(a, b), a.astype(np.float64) @ b, DType.F32)


# -- indexing and slices -------------------------------------------------------------------------

INDEXES = ["1:5:2, ::3", "-1", "-3:-1", "..., 0", "None, :, 1", "2:100", "::2, -2", "1, ..., 1:",
           ":, None, :, None", "5:1", "-100:2, 0:6:4"]


@pytest.mark.parametrize("index", INDEXES)
def test_indexing_as_numpy(index: str) -> None:
    x = sample(DType.F32, (6, 7), seed=25)
    expected = eval(f"x[{index}]", {"x": x})  # numpy's basic indexing is the specification
    y = run1(f"def f(x: f32[6, 7]) -> f32[{dims(expected.shape)}] {{ return x[{index}] }}", x)
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_slice_builtin_per_dtype(dtype: DType) -> None:
    x = sample(dtype, (5, 6), seed=26)
    y = run1(f"def f(x: {dtype}[5, 6]) -> {dtype}[2, 2] {{ return slice(x, (1, 0), (5, 6), (2, 4)) }}", x)
    np.testing.assert_array_equal(y, x[1:5:2, 0:6:4])


@settings(max_examples=30, deadline=None)
@given(start=st.integers(-9, 9) | st.none(), stop=st.integers(-9, 9) | st.none(), step=st.integers(1, 4) | st.none())
def test_slice_property(start: int | None, stop: int | None, step: int | None) -> None:
    x = np.arange(8, dtype=np.int32)
    text = ":".join("" if v is None else str(v) for v in (start, stop, step))
    expected = x[slice(start, stop, step)]
    y = run1(f"def f(x: i32[8]) -> i32[{len(expected)}] {{ return x[{text}] }}", x)
    np.testing.assert_array_equal(y, expected)


def test_tuple_indexing_and_shape_attributes() -> None:
    x = sample(DType.F32, (2, 3, 4), seed=27)
    y = run1("def f(x: f32[2, 3, 4]) -> f32[4, 6] { return reshape(x, (x.shape[-1], x.size // x.shape[2])) }", x)
    np.testing.assert_array_equal(y, x.reshape(4, 6))


# -- shape ops -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_transpose_reshape_broadcast_per_dtype(dtype: DType) -> None:
    x = sample(dtype, (2, 3, 4), seed=28)
    t, r, b = compile_string(
        f"def f(x: {dtype}[2, 3, 4]) -> ({dtype}[4, 2, 3], {dtype}[3, 8], {dtype}[5, 2, 3, 4]) "
        "{ return transpose(x, (2, 0, 1)), reshape(x, (3, -1)), broadcast(x, (5, 2, 3, 4)) }")(x)
    np.testing.assert_array_equal(t, np.transpose(x, (2, 0, 1)))
    np.testing.assert_array_equal(r, x.reshape(3, -1))
    np.testing.assert_array_equal(b, np.broadcast_to(x, (5, 2, 3, 4)))


def test_transpose_forms() -> None:
    x = sample(DType.F32, (2, 3, 4), seed=29)
    a, b, c = compile_string(
        "def f(x: f32[2, 3, 4]) -> (f32[4, 3, 2], f32[4, 3, 2], f32[2, 4, 3]) "
        "{ return transpose(x), x.T, permute(x, (0, -1, 1)) }")(x)
    np.testing.assert_array_equal(a, x.T)
    np.testing.assert_array_equal(b, x.T)
    np.testing.assert_array_equal(c, np.transpose(x, (0, 2, 1)))


@pytest.mark.parametrize("shape", [(-1,), (4, -1), (-1, 2, 3), (1, 24), (2, 1, -1, 1)], ids=str)
def test_reshape_with_minus_one(shape: tuple) -> None:
    x = sample(DType.F32, (2, 3, 4), seed=30)
    expected = x.reshape(shape)
    text = ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
    y = run1(f"def f(x: f32[2, 3, 4]) -> f32[{dims(expected.shape)}] {{ return reshape(x, ({text})) }}", x)
    np.testing.assert_array_equal(y, expected)


def test_expand_dims_squeeze_broadcast_to() -> None:
    x = sample(DType.F32, (3, 1, 2), seed=31)
    a, b, c, d = compile_string(
        "def f(x: f32[3, 1, 2]) -> (f32[3, 1, 1, 2], f32[3, 2], f32[3, 2], f32[4, 3, 5, 2]) "
        "{ return expand_dims(x, -2), squeeze(x), squeeze(x, axis=1), broadcast_to(x, (4, 3, 5, 2)) }")(x)
    np.testing.assert_array_equal(a, np.expand_dims(x, -2))
    np.testing.assert_array_equal(b, np.squeeze(x))
    np.testing.assert_array_equal(c, np.squeeze(x, axis=1))
    np.testing.assert_array_equal(d, np.broadcast_to(x, (4, 3, 5, 2)))


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_stack_split(dtype: DType, axis: int) -> None:
    a, b = sample(dtype, (2, 4), seed=32), sample(dtype, (2, 4), seed=33)
    joined = np.concatenate((a, b, a), axis=axis)
    stacked = np.stack((a, b), axis=axis)
    pieces = np.split(a, 2, axis=axis)
    prog = compile_string(
        f"def f(a: {dtype}[2, 4], b: {dtype}[2, 4]) -> ({dtype}[{dims(joined.shape)}], "
        f"{dtype}[{dims(stacked.shape)}], {dtype}[{dims(pieces[0].shape)}], {dtype}[{dims(pieces[1].shape)}]) {{\n"
        f"    first, second = split(a, 2, axis={axis})\n"
        f"    return concat((a, b, a), axis={axis}), stack((a, b), axis={axis}), first, second\n}}")
    for got, want in zip(prog(a, b), (joined, stacked, *pieces)):
        np.testing.assert_array_equal(got, want)


def test_concat_promotes_dtypes() -> None:
    a, b = np.array([1, 2], np.int32), np.array([0.5], np.float32)
    y = run1("def f(a: i32[2], b: f32[1]) -> f32[3] { return concatenate((a, b)) }", a, b)
    np.testing.assert_array_equal(y, [1.0, 2.0, 0.5])


# -- sources: constants, iota, arange, full ------------------------------------------------------

def test_creation_builtins() -> None:
    prog = compile_string(
        "def f(x: f32[2]) -> (f32[2, 3], i32[2, 3], f32[4], i32[3], i32[4], bool[2], i64[3], f16[2]) {\n"
        "    return (zeros((2, 3)) + x[0], iota((2, 3), axis=1), ones((4,)), arange(3), arange(1, 9, 2),\n"
        "            full((2,), true), arange(5, 2, -1, dtype=i64), full((2,), 1.5, f16))\n}")
    outs = prog(np.array([2.0, 0.0], np.float32))
    expected = [np.full((2, 3), 2.0, np.float32), np.broadcast_to(np.arange(3), (2, 3)), np.ones(4),
                np.arange(3), np.arange(1, 9, 2), np.array([True, True]), np.arange(5, 2, -1),
                np.full(2, 1.5, np.float16)]
    dtypes = [np.float32, np.int32, np.float32, np.int32, np.int32, np.bool_, np.int64, np.float16]
    for got, want, dtype in zip(outs, expected, dtypes):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_iota_per_dtype(dtype: DType) -> None:
    y = run1(f"def f(x: f32[1]) -> {dtype}[3, 2] {{ return iota((3, 2), axis=0, dtype={dtype}) }}",
             np.zeros(1, np.float32))
    np.testing.assert_array_equal(y, np.broadcast_to(np.arange(3)[:, None], (3, 2)))


def test_special_constants() -> None:
    x = np.zeros(4, np.float32)
    y = run1("def f(x: f32[4]) -> f32[4] { return x + tensor((inf, -inf, pi, nan)) }", x)
    assert y[0] == np.inf and y[1] == -np.inf and y[2] == np.float32(math.pi) and np.isnan(y[3])


# -- casts and bf16 --------------------------------------------------------------------------------

CAST_VALUES = [-100.0, -3.75, -1.5, 0.0, 0.5, 2.25, 7.0, 100.0]


def _cast_input(dtype: DType) -> np.ndarray:
    if dtype.is_bool:
        return np.array([True, False, True, True, False, False, True, False])
    values = np.array(CAST_VALUES)
    if dtype.is_int:
        values = np.trunc(values)
    return values.astype(dtype.numpy)


@pytest.mark.parametrize("target", ALL, ids=str)
@pytest.mark.parametrize("source", ALL, ids=str)
def test_cast_between_all_dtypes(source: DType, target: DType) -> None:
    x = _cast_input(source)
    y = run1(f"def f(x: {source}[8]) -> {target}[8] {{ return cast(x, {target}) }}", x)
    if target is DType.BF16:
        expected = round_bf16(x.astype(np.float32))
    else:
        expected = x.astype(target.numpy)  # float -> int truncates toward zero, as numpy
    assert y.dtype == target.numpy
    np.testing.assert_array_equal(y, expected)


def test_astype_is_cast() -> None:
    x = np.array([1.9, -1.9], np.float32)
    y = run1("def f(x: f32[2]) -> i32[2] { return x.astype(i32) }", x)
    np.testing.assert_array_equal(y, [1, -1])


# Hand-computed round-to-nearest-even on the upper 16 bits of an f32: bf16 keeps 7 fraction bits, so
# next to 1.0 the representable values are 1, 1 + 2**-7, 1 + 2**-6, ...
BF16_CASES = [
    (1.0 + 2.0 ** -8, 1.0),                              # halfway, 1.0 has the even last bit
    (1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -6),              # halfway, rounds up to the even neighbour
    (1.0 + 2.0 ** -8 + 2.0 ** -20, 1.0 + 2.0 ** -7),     # just above halfway
    (1.0 + 2.0 ** -9, 1.0),                              # below halfway
    (-(1.0 + 3 * 2.0 ** -8), -(1.0 + 2.0 ** -6)),        # symmetric for negatives
    (3.4e38, math.inf),                                  # past bf16's largest finite value, 3.3895e38
    (3.3895e38, (2.0 - 2.0 ** -7) * 2.0 ** 127),          # which is itself representable
    (2.0 ** -130, 2.0 ** -130),                          # a subnormal with few bits survives
    (math.inf, math.inf),
]


def test_bf16_rounding_is_round_to_nearest_even() -> None:
    x = np.array([value for value, _ in BF16_CASES], np.float32)
    y = run1(f"def f(x: f32[{len(x)}]) -> bf16[{len(x)}] {{ return cast(x, bf16) }}", x)
    np.testing.assert_array_equal(y, np.array([want for _, want in BF16_CASES], np.float32))
    nan = run1("def f(x: f32[1]) -> bf16[1] { return cast(x, bf16) }", np.array([np.nan], np.float32))
    assert np.isnan(nan[0])


def test_bf16_rounds_after_every_operation() -> None:
    a = np.array([1.0, 1.0 + 2.0 ** -7], np.float32)
    b = np.array([2.0 ** -8, 2.0 ** -8], np.float32)
    y = run1("def f(a: bf16[2], b: bf16[2]) -> bf16[2] { return a + b }", a, b)
    np.testing.assert_array_equal(y, [1.0, 1.0 + 2.0 ** -6])  # both sums are ties: to even
    # Rounded once per op: ((1 + 2**-8) + 2**-8) is 1 + 2**-8 -> 1 after the first add, then 1 again.
    y = run1("def f(a: bf16[1], b: bf16[1]) -> bf16[1] { return (a + b) + b }", a[:1], b[:1])
    np.testing.assert_array_equal(y, [1.0])


def test_bf16_arguments_are_rounded_on_entry() -> None:
    x = np.array([1.0 + 3 * 2.0 ** -8], np.float32)
    y = run1("def f(x: bf16[1]) -> bf16[1] { return x }", x)
    np.testing.assert_array_equal(y, [1.0 + 2.0 ** -6])


# -- weak typing of literals and promotion -------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_float_literal_keeps_a_float_tensors_dtype(dtype: DType) -> None:
    prog = compile_string(f"def f(x: {dtype}[3]) -> {dtype}[3] {{ return x * 0.5 + 1 - 2 * x }}")
    x = sample(dtype, (3,), seed=34)
    check(prog(x), x.astype(np.float64) * 0.5 + 1 - 2 * x.astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", INTS, ids=str)
def test_literals_with_integer_tensors(dtype: DType) -> None:
    x = np.array([1, -2, 3], dtype.numpy)
    prog = compile_string(f"def f(x: {dtype}[3]) -> ({dtype}[3], f32[3]) {{ return x * 3 + 1, x * 0.5 }}")
    same, half = prog(x)
    assert same.dtype == dtype.numpy and half.dtype == np.float32
    np.testing.assert_array_equal(same, x * 3 + 1)
    np.testing.assert_array_equal(half, x * 0.5)


def test_int_literal_with_bool_tensor_gives_i32() -> None:
    m = np.array([True, False])
    y = run1("def f(m: bool[2]) -> i32[2] { return m * 3 }", m)
    np.testing.assert_array_equal(y, [3, 0])


PROMOTIONS = [
    (DType.F16, DType.BF16, DType.F32), (DType.F16, DType.F32, DType.F32), (DType.BF16, DType.F32, DType.F32),
    (DType.F32, DType.F64, DType.F64), (DType.I8, DType.I32, DType.I32), (DType.I32, DType.I64, DType.I64),
    (DType.I64, DType.F16, DType.F16), (DType.I32, DType.BF16, DType.BF16), (DType.BOOL, DType.I8, DType.I8),
    (DType.BOOL, DType.F32, DType.F32),
]


@pytest.mark.parametrize("a_type, b_type, result", PROMOTIONS, ids=str)
def test_promotion_of_two_tensors(a_type: DType, b_type: DType, result: DType) -> None:
    a, b = _cast_input(a_type)[:4], _cast_input(b_type)[4:]
    for text in (f"a + b", f"b + a"):
        y = run1(f"def f(a: {a_type}[4], b: {b_type}[4]) -> {result}[4] {{ return {text} }}", a, b)
        check(y, a.astype(np.float64) + b.astype(np.float64), result)


# -- the op table is covered -------------------------------------------------------------------------

def test_every_op_is_covered() -> None:
    """A new op in the table needs a test here: this list is the ops the tests above reach."""
    covered = {"param", "constant", "iota", *FLOAT_UNARY, *NUMERIC_UNARY, "logical_not", "cast", "add", "sub",
               "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
               "logical_or", "select", "reduce_sum", "reduce_max", "reduce_min", "reduce_mean", "matmul",
               "transpose", "reshape", "broadcast_to", "slice", "concat"}
    assert set(ops.OPS) <= covered, f"ops without a test: {sorted(set(ops.OPS) - covered)}"
