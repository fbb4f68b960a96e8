"""GpuSchedule's loop IR (SIMT form), checked without a GPU: the loop verifier accepts it, the SIMT
analysis classifies its locals, and the loop-IR evaluator (which runs the threads of each phase one after
another) computes what the reference interpreter computes, for every kernel family and mapping mode."""

from __future__ import annotations

import pytest

from ir.loops import For, LoopKind, walk
from passes.lowering import lower, lower_specs
from passes.lowering.check import check_lowering
from targets.gpu.machine import machine_for
from targets.gpu.mapping import MatmulTiles, choose_tiles, elementwise_launch, reduction_launch
from targets.gpu.schedules import GpuSchedule
from targets.gpu.simt import SimtError, analyze

SMALL_MMA = MatmulTiles(16, 16, 16 * 2, True, warps_m=1, warps_n=1, itemsize=2)  # one warp, a 16 x 16 tile
SMALL_FMA = MatmulTiles(16, 16, 16, False, tm=2, tn=2, itemsize=4)

PROGRAMS = {
    "softmax_short_rows": "def f(x: f32[3, 37]) { return softmax(x, axis=-1) }",
    "layernorm_long_rows": "def f(x: f32[2, 130], g: f32[130], b: f32[130]) "
                           "{ return layernorm(x, g, b), sum(x, axis=1) }",
    "column_reductions": "def f(x: f32[70, 3]) { return sum(x, axis=0), max(x, axis=0, keepdims=true) }",
    "integer_sum": "def f(x: i32[2, 100]) { return sum(x, axis=1) }",
    "elementwise_views": "def f(x: f32[2, 3, 41], y: f32[41]) { return tanh(x * y), transpose(x, (2, 0, 1)) }",
    "concat": "def f(x: f32[3, 5], y: f32[3, 7]) { return concat((x, y), axis=1) }",
    "matmul_epilogue": "def f(a: f32[19, 16], b: f32[16, 21], c: f32[21]) { return relu(a @ b + c) }",
    "matmul_batched": "def f(a: f32[2, 3, 5], b: f32[5, 17]) { return a @ b }",
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_schedule_matches_the_interpreter(graph, name: str) -> None:
    result = check_lowering(graph(PROGRAMS[name]), GpuSchedule(force_tiles=SMALL_FMA))
    assert result.ok, result.report()
    for kernel in result.program.kernels.values():
        analyze(kernel)  # raises unless the kernel is in SIMT form


@pytest.mark.parametrize("text", [
    "def f(a: bf16[19, 24], b: bf16[24, 9]) { return a @ b }",  # ragged M, N and K: guards and zero fill
    "def f(a: f16[2, 16, 32], b: f16[2, 8, 32]) { return a @ transpose(b, (0, 2, 1)) }",  # batched, B transposed
])
def test_tensor_core_schedule_matches_the_interpreter(graph, text: str) -> None:
    schedule = GpuSchedule(force_tiles=SMALL_MMA)
    result = check_lowering(graph(text), schedule)
    assert result.ok, result.report()
    assert all(tiles.mma for tiles in schedule.tiles.values())


def test_locals_are_private_or_shared_as_documented(graph) -> None:
    program = lower(graph(PROGRAMS["layernorm_long_rows"]), GpuSchedule()).program
    simt = [analyze(kernel) for kernel in program.kernels.values()]
    private = {b.name for s in simt for b in s.private}
    shared = {b.name for s in simt for b in s.shared}
    assert any(name.startswith("partial") for name in private)  # each thread's running sum: registers
    assert any(name.startswith("total") for name in shared)  # the row's total: shared memory
    program = lower(graph(PROGRAMS["matmul_epilogue"]), GpuSchedule(force_tiles=SMALL_FMA)).program
    (kernel,) = [k for k in program.kernels.values() if k.attr("kind") == "matmul"]
    simt = analyze(kernel)
    assert [b.name for b in simt.private] == ["acc"] and {b.name for b in simt.shared} == {"As", "Bs"}
    assert simt.block == SMALL_FMA.threads and simt.phases == 4  # clear, load, compute, epilogue


def test_grid_and_block_follow_the_launch_rules(graph) -> None:
    program = lower(graph("def f(x: f32[1000]) { return exp(x) }"), GpuSchedule()).program
    (kernel,) = program.kernels.values()
    simt = analyze(kernel)
    assert (simt.grid, simt.block) == (4, 256) == (elementwise_launch(1000).blocks, elementwise_launch(1000).threads)
    assert reduction_launch(3, 37).mode == "thread" and reduction_launch(3, 300) == reduction_launch(3, 300)
    assert (reduction_launch(8, 8192).threads, reduction_launch(8, 8192).blocks) == (256, 8)


def test_analysis_rejects_what_is_not_simt_form(graph) -> None:
    program = lower(graph("def f(x: f32[8]) { return exp(x) }")).program  # the naive schedule
    (kernel,) = program.kernels.values()
    with pytest.raises(SimtError, match="grid loop"):
        analyze(kernel)


def test_matmul_tiles_follow_the_search(graph) -> None:
    h100 = machine_for("h100")
    big = choose_tiles(h100, 1, 4096, 4096, 4096, "bf16", 2, False, False, 4096 * 4096 * 2)
    assert big.mma and (big.bm, big.bn, big.warps_m, big.warps_n) == (128, 256, 2, 4)  # the biggest mma tile
    fp32 = choose_tiles(h100, 1, 4096, 4096, 4096, "f32", 4, False, False, 4096 * 4096 * 4)
    assert not fp32.mma and fp32.tm * fp32.tn == 64  # f32: CUDA cores with an 8 x 8 register tile
    off = choose_tiles(h100, 1, 4096, 4096, 4096, "bf16", 2, False, False, 0, tensor_cores=False)
    assert not off.mma
    spec = next(s for s in lower_specs(graph("def f(a: bf16[64, 64], b: bf16[64, 64]) { return a @ b }")).specs
                if s.kind == "matmul")
    schedule = GpuSchedule(h100)
    body = schedule.matmul(spec)
    assert schedule.tiles[spec.name].mma
    assert any(isinstance(n, For) and n.kind is LoopKind.UNROLL for n in walk(body))
