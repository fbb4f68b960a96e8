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


# -- the mesh option: wafers of that mesh -------------------------------------------------------------

def _pes(report: CostReport) -> int:
    """PEs the regions take, from each kernel's note ("RxC PEs at ...")."""
    total = 0
    for kernel in report.kernels:
        rows, cols = kernel.note.split(" PEs at")[0].split("x")
        total += int(rows) * int(cols)
    return total


def test_the_mesh_option_prices_wafers_of_that_mesh() -> None:
    full = _price("examples/mlp.nk", {})
    small = _price("examples/mlp.nk", {}, mesh="16x16")
    assert full.fits and small.fits
    assert small.latency >= full.latency and small.latency != full.latency
    assert _pes(small) < _pes(full) and _pes(small) <= 16 * 16
    assert small.placement.capacity_per_chip == 16 * 16 * (48 - 8) * 1024
    assert "16x16" in small.placement.reason and "16x16" not in full.placement.reason
    assert any("16x16" in a for a in small.assumptions)
    assert not any("16x16" in a for a in full.assumptions)
    assert _price("examples/mlp.nk", {}, mesh="1200x750").latency == full.latency  # the whole usable mesh


def test_a_program_larger_than_the_mesh_takes_more_wafers_or_does_not_fit() -> None:
    more = _price("examples/mlp.nk", {}, mesh="6x8")  # 48 PEs, 1.97 MB: the 1.63 MB of weights on two wafers
    assert more.fits and more.placement.chips == more.placement.chips_needed == 2
    assert "on 2 wafer(s) of 48 PEs" in more.placement.reason and _pes(more) <= 2 * 48
    tiny = _price("examples/mlp.nk", {}, mesh="4x4")  # a region's weights need more than one such wafer
    assert not tiny.fits and "more than one wafer's 16 PEs" in tiny.placement.reason
    assert "4x4" in tiny.placement.reason
    streamed = _price("examples/mlp.nk", {}, mesh="4x4", weights="streamed")
    assert streamed.fits and streamed.placement.strategy == "pipeline, weights streamed"


def test_a_mesh_larger_than_the_spec_is_an_error() -> None:
    from targets.base import TargetError
    for mesh, variant in (("1201x750", "wse:wse3"), ("16x751", "wse:wse3"), ("995x16", "wse:wse2")):
        with pytest.raises(TargetError, match=rf"mesh {mesh} \(rows x columns\) is larger than the usable mesh"):
            compile("examples/mlp.nk", target=variant, defines={}, for_pricing=True, mesh=mesh)
    with pytest.raises(TargetError, match="at most 1200 rows and 750 columns"):
        _price_graph(compile("examples/mlp.nk", target="ref").graph, mesh="2000x10")
