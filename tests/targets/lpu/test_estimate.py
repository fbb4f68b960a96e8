"""Pricing on the LPU: the report's latency is the schedule's cycle count, counted instructions match
the listing, and a model too large to schedule is priced by counting (no lowering, no tensors), with
the chips it needs and where its time goes."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from compiler.driver import compile as compile_file
from targets.base import get_target
from targets.lpu.counting import count_program
from targets.lpu.machine import load_machine

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


def test_a_70b_wide_decode_is_priced_by_counting_on_many_chips() -> None:
    """Two layers at Llama-3-70B width: too big to schedule or to hold on one chip; priced without
    scheduling (the artifact never builds its program) and without tensors."""
    program, report = price("llama_decode", {**LLAMA_70B_LAYER, "L": 2})
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

