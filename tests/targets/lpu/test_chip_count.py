"""`--chips N` and `--partition` on the LPU: exactly N chips (pipeline, tensor or auto), priced with their
C2C copies, simulated to the reference's results, or refused with the count the program needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from compiler.driver import compile as compile_file
from targets.base import TargetError, get_target
from targets.lpu.machine import load_machine

ROOT = Path(__file__).resolve().parents[3]


def price(name: str, defines: dict, **options):
    program = compile_file(ROOT / "examples" / f"{name}.nk", target="lpu", defines=defines, for_pricing=True,
                           **options)
    return get_target("lpu").estimate(program.artifact)


def test_pipeline_over_two_chips_is_priced_with_its_c2c_copies() -> None:
    one = price("mlp", {"B": 2})
    two = price("mlp", {"B": 2}, chips=2, partition="pipeline")
    assert one.placement.chips == 1
    assert two.fits and two.placement.chips == 2
    assert two.placement.strategy == "pipeline" and two.placement.pipeline_stages == 2
    assert "partition=pipeline" in two.placement.reason
    assert two.total.time.get("interconnect") > 0 and two.total.bytes.get("interconnect") > 0
    assert two.latency >= one.latency


def test_tensor_over_two_chips_splits_the_matmul_columns() -> None:
    report = price("mlp", {"B": 2}, chips=2, partition="tensor")
    assert report.fits and report.placement.chips == 2
    assert report.placement.strategy == "tensor" and report.placement.tensor_parallel == 2
    assert report.total.time.get("interconnect") > 0


@pytest.mark.parametrize("chips, partition", [(2, "pipeline"), (2, "tensor"), (3, "auto")])
def test_the_chips_asked_for_run_and_match_the_reference(lpu, chips: int, partition: str) -> None:
    result = lpu.run_and_check(lpu.example_graph("mlp", B=2), chips=chips, partition=partition)
    assert result.program.chips == chips == len(result.partition.chip_bytes)
    assert {i.chip for i in result.program.instructions} == set(range(chips))
    assert {"SEND", "RECV"} <= {i.op for i in result.program.instructions}


def test_more_chips_than_needed_pipeline_the_layers_evenly(lpu) -> None:
    """llama_decode needs 3 chips of 0.6 MB; on 4 every chip runs stages and the result still matches."""
    result = lpu.run_and_check(lpu.example_graph("llama_decode"), load_machine().with_sram(600_000), chips=4,
                               partition="pipeline")
    assert result.program.chips == 4
    assert all(any(s.chip == c for s in result.plan.stages) for c in range(4))
    assert max(result.partition.chip_bytes) <= 600_000


def test_too_few_chips_are_refused_with_the_count_needed(lpu) -> None:
    graph = lpu.example_graph("llama_decode")
    with pytest.raises(TargetError, match=r"needs 3 chips .* more than chips=2 allows \(partition=pipeline\)"):
        lpu.build(graph, load_machine().with_sram(600_000), chips=2, partition="pipeline")
    report = price("llama_decode", {}, chips=2, partition="pipeline", sram_bytes=600_000)
    assert not report.fits and report.placement.chips_needed == 3
    assert "more than chips=2" in report.placement.reason


def test_counts_no_strategy_can_reach_are_refused(lpu) -> None:
    graph = lpu.example_graph("mlp", B=2)
    with pytest.raises(TargetError, match=r"6 stage\(s\) can be cut into at most 6 .* over 9 chips"):
        lpu.build(graph, chips=9, partition="pipeline")
    with pytest.raises(TargetError, match=r"widest matmul splits into 2 320-column slice\(s\)"):
        lpu.build(graph, chips=3, partition="tensor")


def test_niche_run_on_two_chips_checks_against_the_reference() -> None:
    result = subprocess.run([sys.executable, "-m", "compiler", "run", str(ROOT / "examples" / "mlp.nk"),
                             "--target", "lpu", "--chips", "2", "--partition", "pipeline", "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "2 chip(s)" in result.stdout and "matches" in result.stdout
