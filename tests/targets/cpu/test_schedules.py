"""CpuSchedule's loop IR for several machines (AVX2-like, AVX-512-like, tiny caches that force many
panels and blocks), checked without LLVM: the loop verifier accepts it and the loop-IR evaluator
computes what the reference interpreter does. Native runs are in test_ops.py; this file covers
machine parameters the test host does not have."""

from __future__ import annotations

import pytest

from compiler.driver import Source
from ir.loop_printer import print_program
from ir.loop_verifier import verify_program
from ir.loops import For, LoopKind, walk
from passes.lowering import lower_to_loops
from passes.lowering.check import check_lowering
from targets.cpu.schedules import CpuSchedule, Machine
from targets.cpu.schedules.matmul import tiles

AVX2 = Machine(vector_bits=256, vector_registers=16, l1d_bytes=32 << 10, l2_bytes=512 << 10, l3_bytes=32 << 20,
               threads=2)
AVX512 = Machine(vector_bits=512, vector_registers=32, l1d_bytes=48 << 10, l2_bytes=2 << 20, l3_bytes=32 << 20,
                 threads=4)
TINY_CACHES = Machine(vector_bits=128, vector_registers=16, l1d_bytes=1 << 10, l2_bytes=2 << 10, l3_bytes=4 << 10,
                      threads=3)
MACHINES = [pytest.param(AVX2, id="avx2"), pytest.param(AVX512, id="avx512"), pytest.param(TINY_CACHES, id="tiny")]


def graph(text: str):
    return Source.from_text(text).specialize({}, None)


PROGRAMS = {
    "softmax_layernorm": "def f(x: f32[3, 37], g: f32[37], b: f32[37]) { return softmax(x, axis=-1), layernorm(x, g, b) }",
    "column_sums": "def f(x: f32[5, 3, 19]) { return sum(x, axis=(0, 1)), max(x, axis=0, keepdims=true) }",
    "matmul_packed": "def f(a: f32[19, 16], b: f32[16, 70], c: f32[70]) { return relu(a @ b + c) }",
    "matmul_small_m": "def f(a: f32[2, 3, 5], b: f32[5, 37]) { return a @ b }",
    "elementwise": "def f(x: f32[2, 3, 41], y: f32[41]) { return tanh(x * y), transpose(x, (2, 0, 1)) }",
}


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_schedule_is_valid_and_correct(machine: Machine, name: str) -> None:
    result = check_lowering(graph(PROGRAMS[name]), CpuSchedule(machine=machine))
    assert result.ok, result.report()


def test_k_chunks_carry_partial_sums() -> None:
    """With a 1 KiB L1, KC = 64: K = 100 is a chunk of 64 and a ragged one of 36, the first one's
    sums carried in the partial-tile buffer."""
    text = "def f(a: f32[13, 100], b: f32[100, 17]) { return a @ b + 1.0 }"
    result = check_lowering(graph(text), CpuSchedule(machine=TINY_CACHES))
    assert result.ok, result.report()
    assert "local cp" in print_program(result.program)


def test_tile_sizes_follow_the_rule() -> None:
    spec_graph = graph("def f(a: f32[1024, 1024], b: f32[1024, 1024]) { return a @ b }")
    from passes.lowering import lower_specs
    (spec,) = lower_specs(spec_graph).specs
    avx2, avx512 = tiles(spec, AVX2), tiles(spec, AVX512)
    assert (avx2.lanes, avx2.mr, avx2.nr) == (8, 6, 16)
    assert (avx512.lanes, avx512.mr, avx512.nr) == (16, 8, 32)
    assert avx2.kc == 256 and avx512.kc == 192  # a KC x NR sliver of B fills half of L1
    # half of L2 holds 42 six-row slivers of KC: 171 row tiles make 5 blocks, evened to 6 (2 threads)
    assert avx2.mc == 29 * 6
    assert avx2.nc == 1024  # the whole of B fits half of L3


def test_big_kernels_are_parallel_and_vectorized_small_ones_serial() -> None:
    big = lower_to_loops(graph("def f(x: f32[64, 1024]) { return exp(x) }"), CpuSchedule(machine=AVX2))
    small = lower_to_loops(graph("def f(x: f32[4, 8]) { return exp(x) }"), CpuSchedule(machine=AVX2))
    kinds = lambda program: {n.kind for k in program.kernels.values() for n in walk(k.body) if isinstance(n, For)}  # noqa: E731
    assert {LoopKind.PARALLEL, LoopKind.VECTORIZE} <= kinds(big)
    assert LoopKind.PARALLEL not in kinds(small) and LoopKind.VECTORIZE in kinds(small)
    assert not verify_program(big) and not verify_program(small)
