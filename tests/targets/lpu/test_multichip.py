"""Programs that do not fit one chip's SRAM: pipelined across chips, tensor-parallel matmuls, copies
over C2C links, and refusals that say how much is needed. SRAM is shrunk so small programs need
several chips."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.driver import compile as compile_file
from targets.base import TargetError, get_target
from targets.lpu.machine import load_machine
from targets.lpu.partition import partition
from targets.lpu.plan import make_plan

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_tensor_parallel_matmul_over_two_chips(lpu) -> None:
    """w1 (1.5 MiB) does not fit a 1.4 MiB chip: its columns are split over two chips."""
    result = lpu.run_and_check(lpu.example_graph("mlp", B=2), load_machine().with_sram(1_500_000))
    program = result.program
    assert program.chips == 2
    assert result.partition.tensor_parallel
    assert {i.chip for i in program.instructions} == {0, 1}
    assert {i.op for i in program.instructions} >= {"SEND", "RECV"}
    assert any(i.op == "MVM" and i.chip == 0 for i in program.instructions)
    assert any(i.op == "MVM" and i.chip == 1 for i in program.instructions)


def test_layers_are_pipelined_across_chips(lpu) -> None:
    result = lpu.run_and_check(lpu.example_graph("llama_decode"), load_machine().with_sram(600_000))
    assert result.program.chips == 3
    assert not result.partition.tensor_parallel
    stages_per_chip = {c: sum(1 for s in result.plan.stages if s.chip == c) for c in range(3)}
    assert all(count > 0 for count in stages_per_chip.values())
    assert any("pipelined" in note for note in result.program.notes)


def test_a_stacked_weight_is_loaded_one_layer_per_chip(lpu) -> None:
    """wq[L, D, N] is read one layer at a time: each chip holds only the layers its stages use."""
    result = lpu.build(lpu.example_graph("llama_decode"), load_machine().with_sram(300_000))
    extents = result.program.tensors["wq"].extents
    chips = {e.chip for e in extents}
    assert len(chips) == 2
    total = result.program.tensors["wq"].layout.vectors
    assert sum(e.count for e in extents) == total  # each layer on one chip only


def test_chip_cap_refuses_with_the_size_needed(lpu) -> None:
    graph = lpu.example_graph("mlp", B=2)
    with pytest.raises(TargetError, match=r"needs 2 chips \(.* MiB of tensors, .* MiB of SRAM per chip\), more "
                                          r"than chips=1 allows"):
        lpu.build(graph, load_machine().with_sram(1_500_000), chips=1)


def test_a_matmul_that_cannot_be_split_enough_is_refused(lpu) -> None:
    graph = lpu.example_graph("mlp", B=2)
    with pytest.raises(TargetError, match="cannot be split finely enough: one 320-column slice"):
        lpu.build(graph, load_machine().with_sram(1_000_000))


def test_a_stage_that_cannot_be_split_is_refused_with_its_size_and_the_chips_it_would_take(lpu) -> None:
    """The video DiT's softmax stages outgrow a 0.75 MiB chip and only matmuls are split: refused (not
    'does not fit' with 0 chips), naming the stage's size and the chips the program would take."""
    graph = lpu.example_graph("video_diffusion")
    machine = load_machine().with_sram(900_000)
    with pytest.raises(TargetError, match=r"needs more SRAM than one chip .* \(it alone needs 0\.938 MiB, one "
                                          r"chip holds 0\.749 MiB\); .* would take \d+ chips"):
        lpu.build(graph, machine)
    sized = partition(make_plan(graph, evaluate=False), machine, sizing=True)
    total = sum(info.layout.nbytes for info in make_plan(graph, evaluate=False).tensors.values())
    assert sized.refused and sized.chips == 0
    assert sized.needed >= total / (machine.sram_bytes * machine.usable_sram_fraction) > 1
    program = compile_file(EXAMPLES / "video_diffusion.nk", target="lpu", for_pricing=True, sram_bytes=900_000)
    report = get_target("lpu").estimate(program.artifact)
    assert not report.fits
    assert report.placement.chips_needed == sized.needed
    assert f"would take {sized.needed} chips" in report.placement.reason
