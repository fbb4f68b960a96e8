"""The code generator on hand-written loop IR, against the loop-IR reference evaluator (ir.loop_eval).

Each test builds a small LoopProgram that exercises one codegen path (vector loads that are
contiguous, uniform or gathered; masked tails; lane-private locals; lane-dependent lets; the
fallback of an illegal vector loop; parallel outlining; integer and float division semantics; f16,
bf16 and bool storage) and checks the native result equals the evaluator's.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.checking import compare
from ir.dtypes import DType
from ir.loop_eval import run_program
from ir.loops import (Allocate, Binary, Buffer, Cast, Const, For, If, Kernel, KernelCall, Let, Load, LoopKind,
                      LoopProgram, Scope, Select, Store, Unary, Var, add, mul, seq)
from targets.cpu.artifact import CpuArtifact
from targets.cpu.compile import BuildOptions, compile_loops

F32, F64, I32, I64, BOOL = DType.F32, DType.F64, DType.I32, DType.I64, DType.BOOL
V, PAR, UNROLL = LoopKind.VECTORIZE, LoopKind.PARALLEL, LoopKind.UNROLL


def program(buffers: list[Buffer], inputs: list[str], outputs: list[str], body, name: str = "k") -> LoopProgram:
    kernel = Kernel(name, tuple(buffers), body, tuple(outputs))
    return LoopProgram("test_" + name, {b.name: b for b in buffers}, inputs, outputs, {name: kernel},
                       [KernelCall(name, tuple(b.name for b in buffers))])


def run_both(prog: LoopProgram, inputs: dict[str, np.ndarray], cpu_cache, threads: int = 2) -> list[np.ndarray]:
    options = BuildOptions(opt_level=2, threads=threads, cache_dir=cpu_cache)
    native = CpuArtifact(compile_loops(prog, options)).run(inputs)
    expected = run_program(prog, inputs)
    for got, want, name in zip(native, expected, prog.outputs):
        if got.dtype.kind == "f":  # transcendental routines may differ from numpy by an ulp or two
            result = compare(got, want, prog.buffers[name].dtype, name)
            assert result.ok, result.message
        else:
            np.testing.assert_array_equal(got, want)
    return native


def rand(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def vector_body(n: int, lanes: int, make) -> object:
    """for j0 { for v vectorize { make(j0*lanes + v) } } plus a masked tail."""
    full, tail = divmod(n, lanes)
    main = For("j0", Const(0), Const(full),
               For("v", Const(0), Const(lanes), make(add(mul(Var("j0"), Const(lanes)), Var("v"))), V))
    index = add(Const(full * lanes), Var("t"))
    rest = For("t", Const(0), Const(lanes), If(Binary("lt", Var("t"), Const(tail)), make(index)), V)
    return seq(main, rest) if tail else main


@pytest.mark.parametrize("n", [1, 7, 8, 29])
def test_contiguous_uniform_and_masked_tail(cpu_cache, n: int) -> None:
    x, s, y = Buffer("x", F32, (n,)), Buffer("s", F32, (1,)), Buffer("y", F32, (n,))
    body = vector_body(n, 8, lambda j: Store("y", (j,), Binary("add", Unary("exp", Load("x", (j,), F32)),
                                                                    Load("s", (Const(0),), F32))))
    run_both(program([x, s, y], ["x", "s"], ["y"], body), {"x": rand(n), "s": rand(1, seed=1)}, cpu_cache)


def test_gather_scatter_and_reverse(cpu_cache) -> None:
    x, y, z = Buffer("x", F32, (12, 5)), Buffer("y", F32, (5, 12)), Buffer("z", F32, (12,))
    transpose = For("i", Const(0), Const(5), vector_body(12, 4, lambda j: Store("y", (Var("i"), j),
                                                                                  Load("x", (j, Var("i")), F32))))
    reverse = vector_body(12, 8, lambda j: Store("z", (Binary("sub", Const(11), j),), Load("x", (j, Const(0)), F32)))
    run_both(program([x, y, z], ["x"], ["y", "z"], seq(transpose, reverse)), {"x": rand((12, 5))}, cpu_cache)


def test_lane_dependent_let_is_still_contiguous_and_lane_private_local(cpu_cache) -> None:
    x, y = Buffer("x", F32, (16,)), Buffer("y", F32, (16,))
    tmp = Buffer("tmp", F32, (2,), scope=Scope.LOCAL)
    inner = Let("j", add(mul(Var("j0"), Const(8)), Var("v")), Allocate(tmp, seq(
        Store("tmp", (Const(0),), Load("x", (Var("j"),), F32)),
        Store("tmp", (Const(1),), Unary("tanh", Load("tmp", (Const(0),), F32))),
        Store("y", (Var("j"),), Binary("mul", Load("tmp", (Const(1),), F32), Load("tmp", (Const(0),), F32))))))
    body = For("j0", Const(0), Const(2), For("v", Const(0), Const(8), inner, V))
    run_both(program([x, y], ["x"], ["y"], body), {"x": rand(16)}, cpu_cache)


def test_reduction_into_one_address_falls_back_to_serial(cpu_cache) -> None:
    x, y = Buffer("x", F32, (37,)), Buffer("y", F32, (1,))
    body = seq(Store("y", (Const(0),), Const(0.0, F32)),
               For("v", Const(0), Const(37), Store("y", (Const(0),), Binary("add", Load("y", (Const(0),), F32),
                                                                             Load("x", (Var("v"),), F32))), V))
    run_both(program([x, y], ["x"], ["y"], body), {"x": rand(37)}, cpu_cache)


def test_vector_accumulator_with_inner_serial_loop_and_unroll(cpu_cache) -> None:
    x, y = Buffer("x", F32, (6, 16)), Buffer("y", F32, (16,))
    acc = Buffer("acc", F32, (16,), scope=Scope.LOCAL)
    body = Allocate(acc, seq(
        For("v", Const(0), Const(16), Store("acc", (Var("v"),), Const(0.0, F32)), V),
        For("i", Const(0), Const(6), For("u", Const(0), Const(2), For("v", Const(0), Const(8), Store(
            "acc", (add(mul(Var("u"), Const(8)), Var("v")),),
            Binary("add", Load("acc", (add(mul(Var("u"), Const(8)), Var("v")),), F32),
                   Load("x", (Var("i"), add(mul(Var("u"), Const(8)), Var("v"))), F32))), V), UNROLL)),
        For("v", Const(0), Const(16), For("r", Const(0), Const(1), Store(
            "y", (Var("v"),), Load("acc", (Var("v"),), F32))), V)))
    run_both(program([x, y], ["x"], ["y"], body), {"x": rand((6, 16))}, cpu_cache)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_loops_capture_scalars_and_shared_locals(cpu_cache, threads: int) -> None:
    x, y = Buffer("x", F32, (9, 20)), Buffer("y", F32, (9, 20))
    scale = Buffer("scale", F32, (1,), scope=Scope.LOCAL)
    factor = Binary("add", Load("scale", (Const(0),), F32), Var("c", F32))
    store = Store("y", (Var("i"), Var("j")), Binary("mul", Load("x", (Var("i"), Var("j")), F32), factor))
    inner = For("i", Const(0), Const(9), For("j", Const(0), Const(20), store, PAR), PAR)
    body = Allocate(scale, seq(Store("scale", (Const(0),), Const(2.0, F32)), Let("c", Const(0.5, F32), inner)))
    run_both(program([x, y], ["x"], ["y"], body), {"x": rand((9, 20))}, cpu_cache, threads=threads)


def test_large_local_lives_on_the_heap_in_each_thread(cpu_cache) -> None:
    n = 20_000  # 80 kB: above the stack limit for locals (checked against numpy: the evaluator is slow)
    x, y = Buffer("x", F32, (4, n)), Buffer("y", F32, (4,))
    row = Buffer("row", F32, (n,), scope=Scope.LOCAL)
    acc = Buffer("acc", F32, (1,), scope=Scope.LOCAL)
    per_row = Allocate(row, Allocate(acc, seq(
        For("j", Const(0), Const(n), Store("row", (Var("j"),), Load("x", (Var("i"), Var("j")), F32))),
        Store("acc", (Const(0),), Const(0.0, F32)),
        For("j", Const(0), Const(n), Store("acc", (Const(0),), Binary("maximum", Load("acc", (Const(0),), F32),
                                                                     Load("row", (Var("j"),), F32)))),
        Store("y", (Var("i"),), Load("acc", (Const(0),), F32)))))
    prog = program([x, y], ["x"], ["y"], For("i", Const(0), Const(4), per_row, PAR))
    values = rand((4, n))
    (got,) = CpuArtifact(compile_loops(prog, BuildOptions(cache_dir=cpu_cache))).run({"x": values})
    np.testing.assert_array_equal(got, np.maximum(values.max(axis=1), 0.0))


@pytest.mark.parametrize("dtype", [DType.I8, DType.I32, DType.I64])
def test_integer_floordiv_and_mod_follow_numpy(cpu_cache, dtype: DType) -> None:
    """Python's rounding toward minus infinity; x // 0 = x % 0 = 0 and MIN // -1 = MIN as numpy gives
    (the loop evaluator refuses index division by zero, so numpy is the oracle here)."""
    info = np.iinfo(dtype.numpy)
    a = np.array([7, -7, 7, -7, 0, 5, int(info.min), int(info.min), 3, -3], dtype=dtype.numpy)
    b = np.array([2, 2, -2, -2, 3, 0, -1, 1, 0, 7], dtype=dtype.numpy)
    bufs = [Buffer("a", dtype, (10,)), Buffer("b", dtype, (10,)), Buffer("q", dtype, (10,)), Buffer("r", dtype, (10,))]
    load = lambda n: Load(n, (Var("j"),), dtype)  # noqa: E731
    body = vector_body(10, 8, lambda j: Let("j", j, seq(Store("q", (Var("j"),), Binary("floordiv", load("a"), load("b"))),
                                                         Store("r", (Var("j"),), Binary("mod", load("a"), load("b"))))))
    prog = program(bufs, ["a", "b"], ["q", "r"], body)
    q, r = CpuArtifact(compile_loops(prog, BuildOptions(cache_dir=cpu_cache))).run({"a": a, "b": b})
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(q, np.floor_divide(a, b))
        np.testing.assert_array_equal(r, np.mod(a, b))


def test_float_floordiv_and_mod_follow_numpy(cpu_cache) -> None:
    a = np.array([7.5, -7.5, 7.5, -7.5, 0.0, 5.0, 1.0, -0.0, np.inf, 3.0, 1e30], dtype=np.float64)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 0.0, np.inf, 3.0, 2.0, -np.inf, 3.0], dtype=np.float64)
    bufs = [Buffer("a", F64, (11,)), Buffer("b", F64, (11,)), Buffer("q", F64, (11,)), Buffer("r", F64, (11,))]
    load = lambda n, j: Load(n, (j,), F64)  # noqa: E731
    body = vector_body(11, 4, lambda j: seq(Store("q", (j,), Binary("floordiv", load("a", j), load("b", j))),
                                             Store("r", (j,), Binary("mod", load("a", j), load("b", j)))))
    q, r = run_both(program(bufs, ["a", "b"], ["q", "r"], body), {"a": a, "b": b}, cpu_cache)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(q, np.floor_divide(a, b))
        np.testing.assert_array_equal(r, np.mod(a, b))


@pytest.mark.parametrize("dtype", [DType.F16, DType.BF16])
def test_half_precisions_round_after_every_op(cpu_cache, dtype: DType) -> None:
    x, y = Buffer("x", dtype, (19,)), Buffer("y", dtype, (19,))
    value = lambda j: Binary("add", Binary("mul", Load("x", (j,), dtype), Const(1.1, dtype)),  # noqa: E731
                             Unary("exp", Load("x", (j,), dtype)))
    body = vector_body(19, 8, lambda j: Store("y", (j,), value(j)))
    x_values = np.linspace(-3, 3, 19).astype(np.float32)
    run_both(program([x, y], ["x"], ["y"], body), {"x": x_values.astype(dtype.numpy)}, cpu_cache)


def test_bool_storage_and_vector_select(cpu_cache) -> None:
    x, m, y = Buffer("x", F32, (13,)), Buffer("m", BOOL, (13,)), Buffer("y", F32, (13,))
    body = vector_body(13, 8, lambda j: seq(
        Store("m", (j,), Binary("gt", Load("x", (j,), F32), Const(0.0, F32))),
        Store("y", (j,), Select(Load("m", (j,), BOOL), Const(1.0, F32), Cast(F32, j)))))
    run_both(program([x, m, y], ["x"], ["m", "y"], body), {"x": rand(13)}, cpu_cache)


def test_vectorize_with_step_and_non_constant_bounds(cpu_cache) -> None:
    x, y = Buffer("x", F32, (8, 16)), Buffer("y", F32, (8, 16))
    strided = For("i", Const(0), Const(8), For("v", Const(0), Const(8), Store(
        "y", (Var("i"), Var("v")), Unary("sin", Load("x", (Var("i"), Var("v")), F32))), V, step=2))
    triangle = For("i", Const(0), Const(8), For("w", Const(1), Var("i"), Store(
        "y", (Var("i"), Var("w")), Unary("cos", Load("x", (Var("i"), Var("w")), F32))), V))
    fill = For("i", Const(0), Const(8), For("j", Const(0), Const(16), Store("y", (Var("i"), Var("j")), Const(0.0, F32))))
    run_both(program([x, y], ["x"], ["y"], seq(fill, strided, triangle)), {"x": rand((8, 16))}, cpu_cache)
