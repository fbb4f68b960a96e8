"""The GPU cost model: roofline terms of small kernels against values computed by hand from the spec
figures and the documented formulas (docs/targets/gpu.md), occupancy and waves, decode memory-bound and
prefill compute-bound, multi-GPU all-reduces priced from NVLink, and pricing that allocates nothing."""

from __future__ import annotations

import math
import re
import tracemalloc

import pytest

import compiler
from targets.base import get_target
from targets.comparison import run_comparison
from targets.gpu.machine import machine_for
from targets.gpu.occupancy import memory_efficiency, occupancy, wave_efficiency, waves

H100_BF16 = 989.4e12  # h100.toml compute.tensor.bf16
H100_F32 = 66.9e12  # compute.vector.f32
H100_HBM = 3.35e12
H100_L2 = 8.4e12
H100_SMEM = 30.9e12
TENSOR_FRACTION, VECTOR_FRACTION, MEMORY_FRACTION = 0.7, 0.5, 0.85
LAUNCH = 4e-6
LLAMA_70B = {"D": 8192, "Hq": 64, "Hkv": 8, "Dh": 128, "F": 28672, "V": 128256, "L": 1}


def price(text: str, target: str = "gpu:h100", **options):
    program = compiler.compile_string(text, target=target, for_pricing=True, **options)
    return get_target(target).estimate(program.artifact)


def test_occupancy_and_waves_by_hand() -> None:
    h100 = machine_for("h100")
    # 256 threads x 64 registers: 2048 registers per warp, 32 warps fit the 65536-register file: 4 blocks
    resident = occupancy(h100, 256, 64, 0)
    assert (resident.blocks_per_sm, resident.limiter, resident.occupancy) == (4, "registers", 0.5)
    # 48 KiB of shared memory + 1 KiB reserved per block: 228 KiB holds 4 blocks
    assert occupancy(h100, 128, 16, 48 * 1024).blocks_per_sm == 4
    # 133 blocks, one resident per SM: two waves, the second with one block
    one = occupancy(h100, 1024, 64, 0)
    assert one.blocks_per_sm == 1 and waves(h100, 133, one) == 2
    assert wave_efficiency(h100, 133, one) == pytest.approx(133 / 264)
    # Little's law: 3.35 TB/s x 600 ns / 512 B per warp = 3925.8 warps needed; 132 x 32 warps suffice
    assert memory_efficiency(h100, 10_000, one) == 1.0
    assert memory_efficiency(h100, 10, one) == pytest.approx(10 * 32 / (3.35e12 * 600e-9 / 512))


def test_bf16_matmul_4096_roofline_terms() -> None:
    report = price("def f(a: bf16[4096, 4096], b: bf16[4096, 4096]) { return a @ b }")
    (kernel,) = report.kernels
    n = 4096
    flops = 2 * n ** 3
    size = n * n * 2  # bytes of A, B and the bf16 result
    assert "tile 128x256x32 on mma.sync 2x4 warps" in kernel.note  # the search's pick, see test_schedules
    # 16 x 32 = 512 blocks of 256 threads; 200 estimated registers -> 1 block per SM -> 4 waves of 132
    efficiency = 512 / (4 * 132)
    compute = flops / (H100_BF16 * TENSOR_FRACTION * efficiency)
    # A (33.5 MB) and B exceed half of the 50 MB L2: A is read once (a wave holds whole tile rows), B once
    # per wave that reads it: ceil(32 tile rows / (132 / 16 rows per wave)) = 4 times; C written once
    hbm = (size + 4 * size + size) / (H100_HBM * MEMORY_FRACTION)
    l2 = (size * 16 + size * 32 + size) / H100_L2  # A per tile column, B per tile row, C
    smem = 512 * n * ((128 + 256) * 2 + 8 * (4 * 256 + 8 * 128) * 2 / 16) / H100_SMEM
    cost = kernel.cost
    assert cost.time.get("compute") == pytest.approx(compute, rel=1e-9)
    assert cost.time.get("mem:hbm") == pytest.approx(hbm, rel=1e-9)
    assert cost.time.get("mem:l2") == pytest.approx(l2, rel=1e-9)
    assert cost.time.get("mem:smem") == pytest.approx(smem, rel=1e-9)
    assert cost.latency == pytest.approx(compute + LAUNCH, rel=1e-9)
    assert report.binding == "compute" and cost.flops_useful == flops == cost.flops_executed
    # the plain roofline for comparison: FLOPs at peak vs the compulsory bytes at full bandwidth
    assert flops / H100_BF16 > 3 * size / H100_HBM  # compute-bound even before the efficiency factors


def test_elementwise_roofline_terms() -> None:
    n = 1 << 24
    report = price(f"def f(x: f32[{n}]) {{ return exp(x) }}")
    (kernel,) = report.kernels
    # 65536 blocks x 256 threads, 32 registers: 8 blocks per SM, 63 waves of 1056 blocks
    efficiency = 65536 / (63 * 132 * 8)
    compute = n * 20 / (H100_F32 * VECTOR_FRACTION * efficiency)  # exp: a 20-FLOP polynomial
    hbm = 2 * n * 4 / (H100_HBM * MEMORY_FRACTION)
    assert kernel.cost.time.get("compute") == pytest.approx(compute, rel=1e-9)
    assert kernel.cost.time.get("mem:hbm") == pytest.approx(hbm, rel=1e-9)
    assert kernel.cost.time.get("mem:l2") == pytest.approx(2 * n * 4 / H100_L2, rel=1e-9)
    assert report.binding == "mem:hbm" and kernel.cost.latency == pytest.approx(hbm + LAUNCH)


def test_sparse_two_four_weights_double_the_tensor_rate() -> None:
    dense = price("def f(x: bf16[4096, 4096], w: bf16[4096, 4096]) { return x @ w }")
    sparse = price("def f(x: bf16[4096, 4096], @weight w: bf16[4096, 4096]<2:4>) { return x @ w }")
    assert sparse.kernels[0].cost.time.get("compute") == pytest.approx(
        dense.kernels[0].cost.time.get("compute") / 2, rel=1e-9)


def test_f32_matmul_runs_on_cuda_cores() -> None:
    report = price("def f(a: f32[2048, 2048], b: f32[2048, 2048]) { return a @ b }")
    (kernel,) = report.kernels
    assert "CUDA cores, 8x8 per thread" in kernel.note and "vector:f32" in kernel.cost.ops.keys()


def test_decode_is_memory_bound_and_prefill_compute_bound() -> None:
    decode = run_comparison("examples/llama_decode.nk", ["gpu:h100", "gpu:h200"], [],
                            {**LLAMA_70B, "B": 1, "T": 4096})
    for report in decode.reports:
        assert report.binding == "mem:hbm", report.explanation
        assert "read from HBM each step" in report.explanation
        assert "memory-bound at 0.85 x " in report.explanation  # the rate the model used, not the headline
        assert _share(report.explanation, "HBM-bound kernels") > 0.5, report.explanation
    h100, h200 = decode.reports
    assert h200.latency < h100.latency  # the same chip with faster HBM
    prefill = run_comparison("examples/llama_prefill.nk", ["gpu:h100", "gpu:h200"], [],
                             {**LLAMA_70B, "B": 8, "S": 512})
    for report in prefill.reports:
        assert report.binding == "compute", report.explanation
        assert _share(report.explanation, "compute-bound kernels") > 0.5, report.explanation
        assert "compute-bound at 0.7 x 989 TFLOP/s achievable on tensor cores (bf16)" in report.explanation


def _share(explanation: str, what: str) -> float:
    """The share of the time the report's why-line gives to `what` ("58% in compute-bound kernels ...")."""
    match = re.search(rf"(\d+)% in {what} \(([\d.e+]+) FLOP per HBM byte, (above|below) the ridge", explanation)
    return int(match.group(1)) / 100 if match else 0.0


def test_tensor_parallel_all_reduce_priced_from_nvlink() -> None:
    report = price("def f(x: bf16[64, 8192], @weight w1: bf16[8192, 8192], @weight w2: bf16[8192, 8192]) "
                   "{ return (x @ w1) @ w2 }", chips=2, partition="tensor")
    assert report.placement.chips == 2 and report.placement.tensor_parallel == 2
    (reduce,) = [k for k in report.kernels if k.kind == "all-reduce"]
    nbytes = 64 * 8192 * 2  # the row-parallel matmul's output, summed over the two chips
    expected = 2 * (2 - 1) / 2 * nbytes / 450e9 + 2 * (2 - 1) * 2e-6  # NVLink4: 450 GB/s, 2 us per step
    assert reduce.cost.latency == pytest.approx(expected, rel=1e-9)


def test_compiled_artifact_is_priced_from_its_launches(ptxas: str) -> None:
    program = compiler.compile_string("def f(a: bf16[256, 512], b: bf16[512, 256]) { return tanh(a @ b) }",
                                      target="gpu")
    report = get_target("gpu").estimate(program.artifact)
    assert report.level == "loops"
    (kernel,) = report.kernels
    info = next(iter(program.artifact.ptxas_report().values()))
    assert f"{info.registers} regs (ptxas)" in kernel.note


def test_pricing_allocates_nothing_of_the_program() -> None:
    text = "def f(x: bf16[16384, 16384], w: bf16[16384, 16384]) { return softmax(x @ w, axis=-1) }"
    tracemalloc.start()
    report = price(text)  # tensors of 1.6 GB in all
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.fits and peak < 64 * 2 ** 20
    assert math.isfinite(report.latency) and report.latency > 0


def test_compare_prints_gpu_reports(niche_main) -> None:
    result = niche_main("compare", "examples/mlp.nk", "--targets", "gpu:h100,gpu:h200", "--json")
    assert result.returncode == 0, result.stderr
    import json
    data = json.loads(result.stdout)
    targets = [r["target"] for r in data["reports"]]
    assert targets == ["gpu:h100", "gpu:h200"]
    for report in data["reports"]:
        for kernel in report["kernels"]:
            assert {"compute", "mem:hbm", "launch"} <= set(kernel["cost"]["time"])
            assert "blocks x" in kernel["note"]


def test_the_why_line_places_each_kernel_group_on_the_right_side_of_the_ridge() -> None:
    prefill = run_comparison("examples/llama_prefill.nk", ["gpu:h200"], [], {**LLAMA_70B, "L": 2, "B": 1, "S": 512})
    text = prefill.reports[0].explanation
    ridge = float(re.search(r"ridge ([\d.]+) FLOP/B", text).group(1))
    groups = re.findall(r"\d+% in [\w-]+ kernels \(([\d.e+]+) FLOP per HBM byte, (above|below) the ridge\)", text)
    assert groups, text
    for intensity, side in groups:
        assert (float(intensity) >= ridge) == (side == "above"), text


def _reference_hbm(machine, kernels):
    """HBM bytes per kernel by the rule as documented, done the plain way: the intermediates the last
    kernels wrote, oldest first, summed afresh after every change."""
    limit = machine.l2_bytes * machine.l2_reuse_fraction
    recent, result = [], []
    for kernel in kernels:
        names = {name for name, _ in recent}
        result.append(sum(t.unique for t in kernel.traffic
                          if not (t.role == "local" or (t.role == "intermediate" and t.buffer in names
                                                        and t.loaded and not t.stored and t.unique <= limit))))
        for name in kernel.writes:
            recent.append((name, sum(t.unique for t in kernel.traffic if t.buffer == name)))
        while recent and sum(size for _, size in recent) > limit:
            recent.pop(0)
    return result


def test_l2_reuse_follows_the_documented_rule_for_whole_and_fractional_sizes() -> None:
    from dataclasses import replace

    from ir.dtypes import DType
    from targets.counts import BufferTraffic, KernelCounts
    from targets.gpu.cost import GpuModel

    machine = replace(machine_for("h100"), l2_bytes=1000.0, l2_reuse_fraction=0.5)  # 500 bytes stay in L2

    def kernel(index: int, size: float) -> KernelCounts:  # reads the previous kernel's value, writes its own
        traffic = (BufferTraffic(f"v{index - 1}", "intermediate", size, 0.0, size, size),
                   BufferTraffic(f"v{index}", "intermediate", 0.0, size, size, size))
        return KernelCounts(f"k{index}", "elementwise", DType.F32, 1.0, 1.0, 0.0, 0.0, traffic, 1.0, 1.0,
                            reads=(f"v{index - 1}",), writes=(f"v{index}",))

    sizes = [100.0, 200.0, 150.0, 0.1, 0.2, 300.0, 499.7, 0.3, 120.5, 2.0 ** 60, 10.0, 60.0, 70.0, 80.0]
    kernels = [kernel(i, size) for i, size in enumerate(sizes * 2)]
    model = GpuModel(machine)
    assert [model.hbm_bytes(k) for k in kernels] == _reference_hbm(machine, kernels)


def test_repeated_kernels_are_priced_as_if_each_were_priced_afresh() -> None:
    """`GpuModel.price` keeps one Cost per distinct kernel figures and shape: a layer priced after 79
    others is priced as a model that saw only its L2 state would price it."""
    from targets.counts import count_graph
    from targets.gpu.cost import GpuModel
    from targets.gpu.shapes import from_graph

    program = compiler.compile("examples/llama_decode.nk", target="gpu:h100", for_pricing=True,
                               defines={"L": 3, "D": 256, "Hq": 4, "Hkv": 2, "Dh": 64, "F": 512, "V": 1000,
                                        "B": 1, "T": 64})
    graph = program.artifact.graph
    counts = count_graph(graph)
    machine = machine_for("h100")
    shapes = from_graph(graph, counts, machine)
    shared = GpuModel(machine)
    for index, (kernel, shape) in enumerate(zip(counts.kernels, shapes)):
        fresh = GpuModel(machine)
        for earlier in counts.kernels[:index]:
            fresh.hbm_bytes(earlier)  # the same L2 state, nothing memoised
        assert repr(shared.price(kernel, shape)) == repr(fresh.price(kernel, shape))
    assert len(shared._priced) < len(counts.kernels)  # the layers did repeat


def test_deferred_matmul_tiles_give_the_shapes_of_splitting_the_whole() -> None:
    """`from_graph(..., defer_tiles=True)` chooses a matmul's tiles for the share each chip prices only:
    every split (and the whole) is the shape `KernelShape.split` of the eagerly tiled whole gives."""
    from targets.counts import count_graph
    from targets.gpu.shapes import PendingMatmul, from_graph

    program = compiler.compile("examples/llama_decode.nk", target="gpu:h100", for_pricing=True,
                               defines={"L": 2, "D": 256, "Hq": 4, "Hkv": 2, "Dh": 64, "F": 512, "V": 1000,
                                        "B": 2, "T": 64})
    graph = program.artifact.graph
    counts = count_graph(graph)
    for name in ("h100", "h200"):
        machine = machine_for(name)
        eager, deferred = from_graph(graph, counts, machine), from_graph(graph, counts, machine, defer_tiles=True)
        assert sum(isinstance(shape, PendingMatmul) for shape in deferred) == sum(
            kernel.kind == "matmul" for kernel in counts.kernels) > 0
        for ways in (1, 2, 3, 8):
            for kernel, whole, pending in zip(counts.kernels, eager, deferred):
                share = kernel.split(ways)
                assert pending.split(ways, share, machine) == whole.split(ways, share, machine)
