"""The wse cost report: pipeline latency and throughput, wafers needed, resident or streamed weights, the
binding resource; priced analytically, without laying out or allocating the program's tensors."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from compiler.driver import compile
from ir.graph import Graph
from targets.base import CompileOptions, get_target
from targets.cost import CostReport

LLAMA_70B = {"B": 16, "T": 4096, "L": 80, "D": 8192, "Hq": 64, "Hkv": 8, "Dh": 128, "F": 28672, "V": 128256}
RESOURCES = {"compute", "compute:vector", "fabric", "io", "interconnect", "mem:memoryx"}


def _price(path: str, defines: dict, target: str = "wse", chips: int | None = None, **options) -> CostReport:
    program = compile(path, target=target, defines=defines, for_pricing=True, chips=chips, **options)
    report = get_target(target).estimate(program.artifact)
    assert "program" not in program.artifact.__dict__  # the per-PE layout was never built
    return report


@pytest.fixture(scope="module")
def graph70b() -> Graph:
    # Without the graph passes (`passes=""`) the 80-layer graph builds in about a second; fusion does not
    # change what the weights need.
    return compile("examples/llama_decode.nk", target="ref", defines=LLAMA_70B, passes="").graph


def _price_graph(graph: Graph, chips: int | None = None, **extra) -> CostReport:
    target = get_target("wse")
    artifact = target.compile(graph, CompileOptions(target="wse", chips=chips, for_pricing=True, extra=extra))
    return target.estimate(artifact)


@pytest.fixture(scope="module")
def llama70b(graph70b: Graph) -> CostReport:
    return _price_graph(graph70b)


def test_small_program_report() -> None:
    report = _price("examples/mlp.nk", {"B": 64})
    assert report.fits and report.placement.chips == 1
    assert report.binding in RESOURCES
    assert report.latency > 0 and 0 < report.utilization < 1
    kinds = {k.kind for k in report.kernels}
    assert {"matmul", "reduction"} <= kinds
    assert all("PEs at" in k.note and "B/PE" in k.note for k in report.kernels)
    assert "wafer(s) x latency" in report.energy.method
    assert report.energy.joules == pytest.approx(23e3 * report.latency)  # the spec's system power, one wafer
    assert report.money is not None and "per system-hour" in report.money.method
    assert report.capacity is not None and report.capacity.interval < report.latency
    assert "bound by" in report.explanation
    assert any("assumption" in a for a in report.assumptions)  # the spec's assumed values are listed


def test_70b_decode_needs_several_wafers_with_weights_resident(llama70b: CostReport) -> None:
    report = llama70b
    assert report.fits
    assert report.placement.strategy == "pipeline"
    weights = 70.6e9 * 2  # bf16 parameters of the 70B model
    wafer_bytes = 900_000 * (48 - 8) * 1024
    assert report.placement.chips == report.placement.chips_needed >= weights / wafer_bytes
    assert "weights resident" in report.placement.reason and "KV cache" in report.placement.reason
    assert report.tokens is not None and report.tokens.tokens_per_step == 16
    # As given, one step is in flight; with the pipeline full, steps of other batches could overlap it.
    assert report.tokens.tokens_per_second == pytest.approx(16 / report.latency)
    assert report.tokens.tokens_per_second_per_user == pytest.approx(1 / report.latency)
    assert report.capacity is not None and report.capacity.tokens_per_second > 16 / report.latency
    assert report.binding in RESOURCES


def test_pricing_never_allocates_the_tensors() -> None:
    # Eight layers of the 70B model: 9 GB of weights.
    graph = compile("examples/llama_decode.nk", target="ref", defines={**LLAMA_70B, "L": 8}, passes="").graph
    tracemalloc.start()
    report = _price_graph(graph)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.fits and report.placement.resident_bytes > 9e9
    assert peak < 200e6


def test_70b_on_one_wafer_streams_its_weights(graph70b: Graph) -> None:
    report = _price_graph(graph70b, chips=1)
    assert report.fits and report.placement.chips == 1
    assert report.placement.strategy == "pipeline, weights streamed"
    assert "streamed from MemoryX" in report.placement.reason
    assert report.binding == "mem:memoryx"
    assert report.latency > 141e9 / 150e9  # at least the weights over the 1.2 Tb/s I/O


def test_forcing_resident_weights_onto_too_few_wafers_does_not_fit(graph70b: Graph) -> None:
    report = _price_graph(graph70b, chips=2, weights="resident")
    assert not report.fits and "only 2 allowed" in report.placement.reason
    assert report.latency is None


def test_wse2_and_wse3_differ_as_their_specs() -> None:
    three = _price("examples/mlp.nk", {"B": 256}, "wse:wse3")
    two = _price("examples/mlp.nk", {"B": 256}, "wse:wse2")
    assert three.spec == "wse3" and two.spec == "wse2"
    assert three.total.flops_useful == two.total.flops_useful


def test_a_user_spec_file_prices_a_wafer_that_does_not_exist(tmp_path: Path) -> None:
    text = Path("targets/specs/wse3.toml").read_text()
    text = text.replace('name = "wse3"', 'name = "wse-small"')
    text = text.replace('mesh_width = { value = 750,', 'mesh_width = { value = 100,')
    text = text.replace('mesh_height = { value = 1200,', 'mesh_height = { value = 100,')
    path = tmp_path / "wse_small.toml"
    path.write_text(text)
    target = get_target(f"wse:{path}")
    assert target.machine.mesh_pes == 10_000
    report = _price("examples/mlp.nk", {"B": 64}, f"wse:{path}")
    assert report.spec == "wse-small" and report.fits


def test_unknown_variant_is_a_clear_error() -> None:
    from targets.base import TargetError
    with pytest.raises(TargetError, match="unknown wse variant"):
        get_target("wse:wse9")
