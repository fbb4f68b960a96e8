"""Accuracy of the vector math routines (targets/cpu/vmath) against numpy, in ulps, scalar and vector.

Each routine is compiled into a tiny loop (scalar, and 8 lanes wide) and run on 2^14 points spread
over a range, plus the special values; the error bound asserted here is the one documented in
docs/targets/cpu.md ("Vector math accuracy"). The reference is numpy in float64 (scipy's expit for
sigmoid), rounded to the routine's type.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
import pytest
from llvmlite import ir
from scipy import special

from targets.cpu import jit
from targets.cpu.codegen.helpers import for_range
from targets.cpu.codegen.lltypes import F32, F64, I64, PTR, VOID
from targets.cpu.host import host_info
from targets.cpu.vmath.functions import emit_math


@functools.cache
def compiled(name: str, dtype: type, lanes: int | None, arity: int):
    """A native function f(args..., out, n) applying routine `name` elementwise."""
    element = F32 if dtype is np.float32 else F64
    module = ir.Module(name=f"vmath_{name}")
    module.triple = host_info().triple
    function = ir.Function(module, ir.FunctionType(VOID, [PTR] * (arity + 1) + [I64]), name="apply")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    value_type = ir.VectorType(element, lanes) if lanes else element
    with for_range(b, ir.Constant(I64, 0), function.args[-1], lanes or 1) as i:
        args = [b.load(b.gep(function.args[k], [i], source_etype=element), typ=value_type, align=4)
                for k in range(arity)]
        result = emit_math(b, name, args, host_info().has_fma)
        b.store(result, b.gep(function.args[arity], [i], source_etype=element), align=4)
    b.ret_void()
    optimized = jit.optimize(jit.parse(str(module)), 2)
    loaded = jit.load_object(jit.emit_object(optimized, 2), ["apply"], 2)
    signature = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (arity + 1), ctypes.c_int64)
    return loaded, signature(loaded.addresses["apply"])


def evaluate(name: str, dtype: type, lanes: int | None, *args: np.ndarray) -> np.ndarray:
    loaded, function = compiled(name, dtype, lanes, len(args))
    width = lanes or 1
    arrays = [np.ascontiguousarray(a, dtype=dtype) for a in args]
    count = len(arrays[0])
    padded = (count + width - 1) // width * width
    arrays = [np.concatenate([a, np.ones(padded - count, dtype)]) for a in arrays]
    out = np.empty(padded, dtype)
    function(*[a.ctypes.data for a in arrays], out.ctypes.data, padded)
    return out[:count]


def ulp_error(actual: np.ndarray, expected: np.ndarray, dtype: type) -> float:
    """Largest |actual - expected| in units of the last place of `expected` (in `dtype`)."""
    expected_t = expected.astype(dtype)
    both_nan = np.isnan(actual) & np.isnan(expected_t)
    assert np.array_equal(np.isnan(actual), np.isnan(expected_t)), "NaN where numpy has none, or the reverse"
    infinite = np.isinf(expected_t)
    assert np.array_equal(actual[infinite], expected_t[infinite]), "wrong infinities"
    finite = ~(both_nan | infinite)
    spacing = np.spacing(np.abs(expected_t[finite])).astype(np.float64)
    spacing = np.maximum(spacing, np.finfo(dtype).smallest_subnormal)
    error = np.abs(actual[finite].astype(np.float64) - expected[finite].astype(np.float64)) / spacing
    return float(error.max(initial=0.0))


def points(dtype: type, low: float, high: float, count: int = 1 << 14, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(low, high, count), np.linspace(low, high, 257)]).astype(dtype)


def _gelu(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x * special.expit(2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))


# (routine, numpy reference in f64, range, max ulp f32, max ulp f64)
CASES = [
    ("exp", np.exp, (-103.0, 88.7), 2, 2),
    ("exp", np.exp, (-740.0, 709.0), None, 2),
    ("log", np.log, (1e-30, 1e30), 2, 2),
    ("log", np.log, (0.5, 2.0), 3, 2),
    ("tanh", np.tanh, (-10.0, 10.0), 4, 4),
    ("tanh", np.tanh, (-0.01, 0.01), 4, 4),
    ("sigmoid", special.expit, (-100.0, 100.0), 3, 4),
    ("silu", lambda x: x * special.expit(x), (-30.0, 30.0), 4, 5),
    ("gelu", _gelu, (-2.0, 10.0), 10, 10),
    # below -2 the result is tiny and its relative error follows the exp argument's (~|2z| ulp)
    ("gelu", _gelu, (-5.0, 10.0), 40, 40),
    ("sin", np.sin, (-100.0, 100.0), 2, 2),
    ("cos", np.cos, (-1e5, 1e5), 2, 2),
]


ACCURACY = [pytest.param(name, reference, bounds, dtype, bound, id=f"{name}{bounds}-{np.dtype(dtype).name}")
            for name, reference, bounds, bound32, bound64 in CASES
            for dtype, bound in ((np.float32, bound32), (np.float64, bound64)) if bound is not None]


@pytest.mark.parametrize("lanes", [None, 8])
@pytest.mark.parametrize("name, reference, bounds, dtype, bound", ACCURACY)
def test_accuracy(name: str, reference, bounds: tuple[float, float], dtype: type, bound: int, lanes: int | None) -> None:
    low, high = bounds
    x = points(dtype, low, high)
    with np.errstate(all="ignore"):
        expected = reference(x.astype(np.float64))
    assert ulp_error(evaluate(name, dtype, lanes, x), expected, dtype) <= bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow_accuracy(dtype: type) -> None:
    x = points(dtype, 0.0, 8.0, seed=1)
    y = points(dtype, -8.0, 8.0, seed=2)
    with np.errstate(divide="ignore"):
        expected = np.power(x.astype(np.float64), y.astype(np.float64))
    bound = 1 if dtype is np.float32 else 64  # f64: |y log x| <= 17 here, error ~ |y log x| ulp
    assert ulp_error(evaluate("pow", dtype, 8, x, y), expected, dtype) <= bound


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 1e-310, 1.0, -1.0, 3.0, -3.0, 0.5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "silu", "sin", "cos"])
def test_special_values_like_numpy(name: str, dtype: type) -> None:
    x = SPECIAL.astype(dtype)
    references = {"sigmoid": special.expit, "silu": lambda v: v * special.expit(v)}
    reference = references[name] if name in references else getattr(np, name)
    with np.errstate(all="ignore"):
        expected = reference(x).astype(dtype)
    actual = evaluate(name, dtype, 4, x)
    assert ulp_error(actual, expected, dtype) <= 4
    exact = np.isinf(expected) | np.isnan(expected) | (expected == 0) | (np.abs(expected) == 1)
    np.testing.assert_array_equal(actual[exact], expected[exact])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow_special_cases_like_numpy(dtype: type) -> None:
    values = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, np.inf, -np.inf, np.nan], dtype)
    x, y = (a.ravel() for a in np.meshgrid(values, values))
    with np.errstate(all="ignore"):
        expected = np.power(x, y)
    actual = evaluate("pow", dtype, 4, x, y)
    exact = np.isinf(expected) | np.isnan(expected) | (expected == 0) | (np.abs(expected) == 1)
    np.testing.assert_array_equal(actual[exact], expected[exact])
    numbers = ~np.isnan(expected)  # (a NaN's sign is not specified)
    assert np.array_equal(np.signbit(actual[numbers]), np.signbit(expected[numbers]))
    assert ulp_error(actual, expected, dtype) <= 2


def test_no_libm_calls_in_vector_code() -> None:
    """The routines are inline IR: the optimised vector loop calls nothing."""
    for name in ("exp", "log", "tanh", "sigmoid", "gelu", "silu", "sin", "cos"):
        loaded, _ = compiled(name, np.float32, 8, 1)
        assembly = _assembly(name)
        assert "call" not in assembly, f"{name} calls out of line"


def _assembly(name: str) -> str:
    module = ir.Module(name="asm")
    module.triple = host_info().triple
    function = ir.Function(module, ir.FunctionType(ir.VectorType(F32, 8), [ir.VectorType(F32, 8)]), name="f")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    b.ret(emit_math(b, name, [function.args[0]], host_info().has_fma))
    return jit.emit_assembly(jit.optimize(jit.parse(str(module)), 2), 2)
