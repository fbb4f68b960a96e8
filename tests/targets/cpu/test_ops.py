"""Every op and dtype the CPU target supports, compiled and run natively, against the reference interpreter.

Sizes 1, 3, 17 and 1023 cover one element, less than a vector, a vector plus a tail and a long loop
with a tail (the schedules vectorize 8 or 16 lanes); several ops share one program so that each
(dtype, size) pair compiles once.
"""

from __future__ import annotations

import numpy as np
import pytest

from ir.dtypes import DType, to_numpy

SIZES = [1, 3, 17, 1023]
FLOATS = ["f32", "f64", "f16", "bf16"]
INTS = ["i8", "i32", "i64"]

UNARY_FLOAT = ["abs", "relu", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "gelu", "silu", "sin", "cos"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", SIZES)
def test_float_unary_ops(check_cpu, dtype: str, n: int) -> None:
    calls = ", ".join(f"{op}(x)" for op in UNARY_FLOAT)
    check_cpu(f"def f(x: {dtype}[{n}]) {{ return -x, {calls} }}")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [3, 1023])
def test_float_binary_ops(check_cpu, dtype: str, n: int) -> None:
    text = (f"def f(x: {dtype}[{n}], y: {dtype}[{n}]) {{ return x + y, x - y, x * y, x / y, maximum(x, y), "
            f"minimum(x, y), pow(abs(x), y), x ** 2.0, x == y, x != y, x < y, x <= y, x > y, x >= y }}")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n)
    y = np.where(rng.random(n) < 0.2, x, rng.standard_normal(n))  # some equal pairs for ==, <=, >=
    dt = DType(dtype)
    check_cpu(text, {"x": to_numpy(x, dt), "y": to_numpy(y, dt)})


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("n", [1, 17, 1023])
def test_integer_ops(check_cpu, dtype: str, n: int) -> None:
    text = (f"def f(x: {dtype}[{n}], y: {dtype}[{n}]) {{ return -x, abs(x), relu(x), x + y, x - y, x * y, "
            f"maximum(x, y), minimum(x, y), x == y, x < y, x >= y, where(x > y, x, y) }}")
    check_cpu(text)


def test_integer_wraparound(check_cpu) -> None:
    x = np.array([127, -128, 100, -100, 0, 1, -1], dtype=np.int8)
    check_cpu("def f(x: i8[7], y: i8[7]) { return x + y, x * y, -x, abs(x) }", {"x": x, "y": x[::-1].copy()})


def test_bool_ops(check_cpu) -> None:
    check_cpu("def f(a: bool[37], b: bool[37]) { return a and b, a or b, not a, a == b, a != b, "
              "where(a, 1.0, 2.0) }")


@pytest.mark.parametrize("source", FLOATS + INTS + ["bool"])
def test_casts_between_all_dtypes(check_cpu, source: str) -> None:
    targets = FLOATS + INTS + ["bool"]
    calls = ", ".join(f"cast(x, {target})" for target in targets)
    rng = np.random.default_rng(2)
    if source == "bool":
        x = rng.random(19) < 0.5
    elif source in INTS:
        x = rng.integers(-100, 100, 19).astype(DType(source).numpy)
    else:
        values = np.concatenate([rng.uniform(-300, 300, 15), [0.0, -0.0, 2.5, -2.5]])
        x = to_numpy(values, DType(source))
    check_cpu(f"def f(x: {source}[19]) {{ return {calls} }}", {"x": x})


def test_float_to_int_saturates_and_nan_is_zero(check_cpu) -> None:
    x = np.array([np.nan, np.inf, -np.inf, 1e10, -1e10, 3.7, -3.7, 0.5], dtype=np.float32)
    check_cpu("def f(x: f32[8]) { return cast(x, i32), cast(x, i8), cast(x, bool) }", {"x": x})


def test_special_values_propagate(check_cpu) -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1.0, 100.0, -100.0], dtype=np.float32)
    calls = ", ".join(f"{op}(x)" for op in UNARY_FLOAT)
    check_cpu(f"def f(x: f32[9], y: f32[9]) {{ return -x, {calls}, maximum(x, y), minimum(x, y), pow(x, y) }}",
              {"x": x, "y": x[::-1].copy()})


@pytest.mark.parametrize("dtype", ["f32", "f64", "f16", "bf16", "i32", "i8"])
@pytest.mark.parametrize("axes", ["0", "1", "-1", "(0, 2)", "(1, 2)", "(0, 1, 2)"])
def test_reductions(check_cpu, dtype: str, axes: str) -> None:
    mean = f", mean(x, axis={axes}, keepdims=true)" if dtype.startswith(("f", "b")) else ""
    text = (f"def f(x: {dtype}[3, 17, 19]) {{ return sum(x, axis={axes}), max(x, axis={axes}), "
            f"min(x, axis={axes}, keepdims=true){mean} }}")
    check_cpu(text)


@pytest.mark.parametrize("n", SIZES)
def test_row_reductions_with_tails(check_cpu, n: int) -> None:
    check_cpu(f"def f(x: f32[5, {n}], g: f32[{n}], b: f32[{n}]) {{ return softmax(x, axis=-1), "
              f"layernorm(x, g, b), rmsnorm(x, g), sum(x, axis=-1) }}")


@pytest.mark.parametrize("dtype", ["f32", "f64", "f16", "bf16", "i32", "i8"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 2), (17, 33, 40), (40, 17, 70)])
def test_matmul(check_cpu, dtype: str, shape: tuple[int, int, int]) -> None:
    m, k, n = shape
    check_cpu(f"def f(a: {dtype}[{m}, {k}], b: {dtype}[{k}, {n}]) {{ return a @ b }}")


def test_matmul_epilogue_and_transposed_operand(check_cpu) -> None:
    check_cpu("def f(a: f32[37, 29], b: f32[45, 29], bias: f32[45]) { return relu(a @ transpose(b) + bias) }")


def test_batched_matmul_with_broadcasting(check_cpu) -> None:
    check_cpu("def f(a: f32[2, 3, 13, 9], b: f32[3, 9, 21]) { return a @ b }")
    check_cpu("def f(a: f32[4, 1, 7, 5], b: f32[1, 3, 5, 33]) { return a @ b }")


def test_matmul_large_enough_to_pack(check_cpu) -> None:
    check_cpu("def f(a: f32[131, 70], b: f32[70, 101], c: f32[131, 101]) { return gelu(a @ b) + c }")


def test_views_and_concat(check_cpu) -> None:
    text = ("def f(x: f32[4, 6, 5], y: f32[4, 3, 5]) { return transpose(x, (2, 0, 1)), reshape(x, (24, 5)), "
            "broadcast_to(y[:, :1, :], (4, 7, 5)), slice(x, (1, 0, 1), (4, 6, 5), (2, 3, 2)), "
            "concat((x, y), axis=1), iota((3, 9), axis=1) }")
    check_cpu(text)


@pytest.mark.parametrize("n", SIZES)
def test_elementwise_tails_on_two_axes(check_cpu, n: int) -> None:
    check_cpu(f"def f(x: f32[3, {n}], y: f32[{n}]) {{ return tanh(x * y + 1.0), transpose(x) }}")


def test_one_thread_and_opt_levels(check_cpu) -> None:
    text = "def f(x: f32[64, 100], w: f32[100, 50]) { return softmax(gelu(x @ w), axis=-1) }"
    for opt_level in (0, 1, 3):
        check_cpu(text, opt_level=opt_level)
    check_cpu(text, threads=1)


def test_naive_schedule_agrees(check_cpu) -> None:
    check_cpu("def f(x: f32[5, 9], w: f32[9, 4]) { return softmax(x @ w, axis=-1), sum(x, axis=0) }",
              schedule="naive")


def test_outputs_that_are_inputs_or_repeated(check_cpu) -> None:
    outputs = check_cpu("def f(x: f32[5], y: f32[5]) { z = x + y\n return x, z, z }")
    assert np.array_equal(outputs[1], outputs[2])


def test_empty_and_rank_zero_tensors(check_cpu) -> None:
    check_cpu("def f(x: f32[0, 3]) { return x + 1.0, sum(x, axis=0) }")
    check_cpu("def f(x: f32[4, 0], w: f32[0, 5]) { return x @ w, sum(x, axis=-1) }")
    check_cpu("def f(x: f32[]) { return exp(x) * 2.0 }")


def test_an_op_outside_the_supported_groups_is_refused_by_name(cpu_program, monkeypatch) -> None:
    from ir import ops
    from targets.base import TargetError
    from targets.cpu import target
    monkeypatch.setattr(target, "_SUPPORTED_GROUPS", (ops.ELEMENTWISE, ops.SHAPE, ops.SOURCE))
    with pytest.raises(TargetError, match="the cpu target does not support 'matmul'"):
        cpu_program("def f(a: f32[2, 3], b: f32[3, 4]) { return a @ b }")
