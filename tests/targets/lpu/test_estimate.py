"""Pricing on the LPU: the report's latency is the schedule's cycle count, counted instructions match
the listing, and a model too large to schedule is priced by counting (no lowering, no tensors), with
the chips it needs and where its time goes."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from compiler.driver import compile as compile_file
from targets.base import get_target
from targets.lpu.counting import StageCount, count_program
from targets.lpu.machine import load_machine
from targets.lpu.rates import model_rates, mxm_rate, sram_rate, weight_load_rate
from targets.spec import load_spec
from targets.units import format_si

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
LLAMA_70B_LAYER = {"D": 8192, "Hq": 64, "Hkv": 8, "Dh": 128, "F": 28672, "V": 128256, "B": 1, "T": 4096}


def price(name: str, defines: dict, **options):
    program = compile_file(EXAMPLES / f"{name}.nk", target="lpu", defines=defines, for_pricing=True, **options)
    return program, get_target("lpu").estimate(program.artifact)


def test_small_program_latency_is_the_scheduled_cycle_count() -> None:
    program, report = price("mlp", {"B": 2})
    cycles = program.artifact.program.cycles
    machine = load_machine()
    assert report.fits and report.placement.chips == 1
    assert report.latency == pytest.approx(cycles / machine.clock_hz)
    assert sum(k.cost.latency for k in report.kernels) == pytest.approx(report.latency)
    assert report.energy.joules == pytest.approx(machine.power_w * report.latency)
    assert report.money is not None and report.money.usd > 0
    assert report.total.flops_useful == pytest.approx(2 * 2 * 784 * 512 + 2 * 2 * 512 * 10, rel=0.01)
    assert any(a.startswith("utilization by unit") and "MXM" in a for a in report.assumptions)
    assert any("cycle count of the static schedule" in a for a in report.assumptions)


@pytest.mark.parametrize("name, defines", [("mlp", {"B": 2}), ("sparse_mlp", {"N": 4}),
                                           ("mlp", {"B": 70})])
def test_counted_instructions_match_the_listing(lpu, name: str, defines: dict) -> None:
    graph = lpu.example_graph(name, **defines)
    machine = load_machine()
    counted = collections.Counter()
    for stage in count_program(graph, machine).stages:
        counted.update(stage.ops)
    actual = collections.Counter(i.op for i in lpu.build(graph, machine).program.instructions)
    assert {op: round(n) for op, n in counted.items()} == dict(actual)


@pytest.mark.parametrize("name, defines", [("mlp", {"B": 2}), ("attention", {"B": 1, "S": 8, "H": 2, "Dh": 8}),
                                           ("llama_decode", {})])
def test_counted_latency_is_within_a_small_factor_of_the_schedule(lpu, name: str, defines: dict) -> None:
    graph = lpu.example_graph(name, **defines)
    machine = load_machine()
    counted = count_program(graph, machine).cycles(machine)
    scheduled = lpu.build(graph, machine).program.cycles
    assert 0.5 * scheduled <= counted <= 2.5 * scheduled


@pytest.fixture(scope="module")
def wide_decode():
    """Two layers at Llama-3-70B width, priced once for the tests that read its report."""
    return price("llama_decode", {**LLAMA_70B_LAYER, "L": 2})


def test_a_70b_wide_decode_is_priced_by_counting_on_many_chips(wide_decode) -> None:
    """Two layers at Llama-3-70B width: too big to schedule or to hold on one chip; priced without
    scheduling (the artifact never builds its program) and without tensors."""
    program, report = wide_decode
    assert "built" not in program.artifact.__dict__
    assert report.fits
    assert report.placement.chips > 10 and report.placement.strategy == "tensor+pipeline"
    assert "tensor parallel" in report.placement.reason
    assert any("counted, not scheduled" in a for a in report.assumptions)
    where = {key for k in report.kernels for key, _ in k.cost.bound.items}
    assert {"mem:sram", "interconnect"} <= where
    assert report.tokens is not None and report.tokens.tokens_per_second > 0


def test_a_chip_cap_gives_a_report_that_does_not_fit() -> None:
    _, report = price("llama_decode", {**LLAMA_70B_LAYER, "L": 2}, chips=4)
    assert not report.fits
    assert report.placement.chips_needed > 4
    assert "more than chips=4" in report.placement.reason



def test_the_why_line_quotes_the_rates_the_model_used_not_the_spec_headline(wide_decode) -> None:
    """The 70B-wide decode is bound by SRAM streaming; the line quotes the model's own rate (MEM ports or
    MXM weight loads, from the same machine constants `resource_cycles` divides by), never the spec's
    80 TB/s vendor aggregate, which the model does not use."""
    _, report = wide_decode
    machine = load_machine()
    spec = load_spec("groq-tsp")
    assert report.total.binding == "mem:sram"
    headline = format_si(spec.main_memory.bandwidth, "B/s")
    assert sram_rate(machine) != pytest.approx(spec.main_memory.bandwidth)  # the case this test is about
    assert headline not in report.explanation
    quoted = {format_si(sram_rate(machine), "B/s"), format_si(weight_load_rate(machine), "B/s")}
    assert any(f"memory-bound at {rate}" in report.explanation for rate in quoted)
    assert "as scheduled" in report.explanation


def test_quoted_rates_are_the_ones_resource_cycles_divides_by() -> None:
    """A stage streaming W words, loading L weight bytes and copying N bytes to a peer is busy exactly
    W x 320 / (quoted SRAM rate), L / (quoted load rate) and N / (quoted C2C pair rate) + link latency."""
    machine = load_machine()
    spec = load_spec("groq-tsp")
    count = StageCount(0, "%t", "compute", (0,), read_words=88_000, lw_bytes=5_120_000)
    nbytes = 320 * 1000
    count.c2c_cycles, count.transfers = machine.c2c_cycles(nbytes), 1
    clock = machine.clock_hz
    parts = count.memory_cycles(machine)
    assert parts["ports"] / clock == pytest.approx(88_000 * machine.word_bytes / sram_rate(machine))
    assert parts["loads"] / clock == pytest.approx(5_120_000 / weight_load_rate(machine))
    link = count.resource_cycles(machine)["interconnect"] - machine.c2c_latency_cycles
    assert link / clock == pytest.approx(nbytes / machine.c2c_pair_bytes_per_s, rel=1e-3)
    rates = model_rates(machine, ["fp16"], [])
    assert rates["interconnect"].startswith(format_si(machine.c2c_pair_bytes_per_s, "B/s"))
    assert format_si(spec.interconnect.bandwidth, "B/s") not in rates["interconnect"]  # 240 GB/s: not the model's
    assert rates["mem:sram"].startswith(format_si(sram_rate(machine), "B/s"))  # no stage says loads bound
    assert rates["compute"].startswith(format_si(mxm_rate(machine, "fp16"), "FLOP/s"))
