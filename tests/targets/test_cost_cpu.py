"""The CPU cost model: the host spec read from this machine, and the roofline's terms on hand-made kernels.

The model is checked only loosely (the right resource binds, sizes order the times, the terms are the
documented formulas); measured-versus-predicted is printed by `niche compare --measure`, never asserted."""

from __future__ import annotations

import pytest

import compiler  # noqa: F401  (loads compiler.driver before targets.base)
from compiler.driver import Source
from ir.dtypes import DType
from targets.counts import BufferTraffic, KernelCounts
from targets.cpu.cost import CpuModel, apply_detected, estimate, host_spec
from targets.spec import load_spec

F32 = DType.F32


def kernel(flops: float, nbytes: float, parallel: float = 1e6, vector_width: int = 8,
           transcendentals: float = 0.0, role: str = "input") -> KernelCounts:
    traffic = (BufferTraffic("x", role, nbytes / 2, 0.0, nbytes / 2, nbytes / 2),
               BufferTraffic("y", "output", 0.0, nbytes / 2, nbytes / 2, nbytes / 2))
    return KernelCounts("k", "elementwise", F32, flops, flops, transcendentals, 0.0, traffic, parallel, parallel,
                        vector_width, reads=("x",), writes=("y",))


def test_the_host_spec_is_read_from_this_machine() -> None:
    spec = host_spec()
    assert spec.q("cpu.cores").confidence == "H" and spec.value("cpu.cores") >= 1
    assert spec.q("cpu.isa_vector_bits").confidence == "H"
    peak = spec.value("compute.vector.f32")
    expected = (spec.value("cpu.cores") * spec.value("cpu.fma_units") * spec.value("cpu.fma_width_bits") / 32 * 2
                * spec.clock)
    assert peak == pytest.approx(expected)
    assert spec.value("memory.l1.bandwidth") == pytest.approx(
        spec.value("cpu.l1_bytes_per_cycle") * spec.value("cpu.cores") * spec.clock)
    assert spec.q("memory.dram.bandwidth").confidence == "M"  # not readable: the reference measurement


def test_detected_values_replace_defaults_and_derived_values_follow() -> None:
    base = load_spec("cpu")
    spec = apply_detected(base, {"cores": (8.0, "test"), "clock": (2e9, "test")})
    assert spec.value("cpu.cores") == 8 and spec.q("cpu.cores").source == "test"
    assert spec.value("compute.vector.f32") == pytest.approx(8 * 2 * 8 * 2 * 2e9)
    assert spec.value("power.tdp") == pytest.approx(8 * base.value("cpu.power_per_core"))
    assert spec.value("memory.dram.bandwidth") == base.value("memory.dram.bandwidth")


def test_a_streaming_kernel_is_memory_bound_at_the_documented_rate() -> None:
    spec = host_spec()
    cost = CpuModel(spec).price(kernel(flops=1e8, nbytes=8e8))
    assert cost.binding == "mem:dram"
    dram = spec.main_memory.bandwidth * spec.value("model.memory_fraction")
    assert cost.time.get("mem:dram") == pytest.approx(8e8 / dram)
    assert cost.latency == pytest.approx(8e8 / dram + spec.value("model.call_overhead")
                                         + spec.value("model.parallel_overhead"))


def test_a_dense_kernel_is_compute_bound_and_scalar_code_is_slower() -> None:
    spec = host_spec()
    model = CpuModel(spec)
    vector = model.price(kernel(flops=2e10, nbytes=1e6))
    scalar = model.price(kernel(flops=2e10, nbytes=1e6, vector_width=1))
    assert vector.binding == "compute" and scalar.binding == "compute"
    rate = spec.value("compute.vector.f32") * spec.value("model.compute_fraction")
    assert vector.time.get("compute") == pytest.approx(2e10 / rate)
    lanes = spec.value("cpu.fma_width_bits") / 32
    assert scalar.time.get("compute") / vector.time.get("compute") == pytest.approx(
        lanes / spec.value("model.scalar_fraction"))


def test_serial_kernels_use_one_core_and_transcendentals_cost_their_polynomial() -> None:
    spec = host_spec()
    model = CpuModel(spec)
    serial = model.price(kernel(flops=0, transcendentals=1e9, nbytes=1e3, parallel=1))
    rate = spec.value("compute.vector.f32") * spec.value("model.compute_fraction") / spec.value("cpu.cores")
    assert serial.time.get("compute") == pytest.approx(1e9 * spec.value("model.transcendental_flops") / rate)
    assert serial.time.get("launch") == spec.value("model.call_overhead")  # no fork/join on one core


def test_bigger_programs_are_predicted_slower() -> None:
    small = Source.from_file("examples/mlp.nk").specialize({"B": 8}, None)
    large = Source.from_file("examples/mlp.nk").specialize({"B": 4096}, None)
    assert estimate(large).latency > estimate(small).latency


def test_loop_and_graph_estimates_agree_on_useful_work() -> None:
    lowering = pytest.importorskip("passes.lowering")
    graph = Source.from_file("examples/mlp.nk").specialize({"B": 8}, None)
    on_loops = estimate(lowering.lower_to_loops(graph), graph)
    on_graph = estimate(graph)
    assert on_loops.level == "loops" and on_graph.level == "graph"
    assert on_loops.total.flops_useful == pytest.approx(on_graph.total.flops_useful)
    assert on_loops.latency > 0 and on_graph.latency > 0


def test_the_why_line_quotes_the_achievable_rates_the_model_used() -> None:
    spec = host_spec()
    source = Source.from_text("def f(@weight w: f32[4096, 4096], x: f32[4096]) -> f32[4096] { return w @ x }", "mv")
    from compiler.driver import Program
    from targets.base import CompileOptions
    graph = Program(source, CompileOptions(target="ref")).graph
    report = estimate(graph, spec=spec)
    fraction = spec.value("model.memory_fraction")
    assert report.binding == "mem:dram", report.explanation
    assert f"memory-bound at {fraction:g} x " in report.explanation and "achievable" in report.explanation
