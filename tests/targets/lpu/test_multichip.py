"""Programs that do not fit one chip's SRAM: pipelined across chips, tensor-parallel matmuls,
batched matmuls split by batch, copies over C2C links, and refusals that say how much is needed. SRAM is
shrunk so small programs need several chips."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from compiler.driver import compile as compile_file
from compiler.driver import compile_string
from targets.base import TargetError, get_target
from targets.lpu.counting import count_program
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


BATCHED = """
def scores(x: f32[4, 2, 24, 64], w: f32[64, 64], k: f32[4, 2, 64, 40], b: f32[2, 1, 40]) -> f32[4, 2, 24, 40] {
    q = relu(x @ w)
    return (q @ k) * 0.5 + b
}
"""


def _counted_ops(graph, machine) -> dict[str, int]:
    counted: collections.Counter = collections.Counter()
    for stage in count_program(graph, machine).stages:
        counted.update(stage.ops)
    return {op: round(n) for op, n in counted.items()}


def test_a_batched_matmul_of_two_activations_is_split_by_batch(lpu) -> None:
    """q @ k (both activations, 0.86 MiB with its inputs) outgrows a 0.85 MiB chip: its leading axis is
    split over two chips, each copying in only its half of q; the listing simulates to the reference and
    the counter prices the same instructions and copies."""
    graph = compile_string(BATCHED, target="ref").graph
    machine = load_machine().with_sram(1_000_000)
    result = lpu.run_and_check(graph, machine)
    (stage,) = [s for s in result.plan.stages if s.batch_chips]
    assert [(first, end) for first, end, _ in stage.batch_chips] == [(0, 2), (2, 4)]
    chips = {chip for _, _, chip in stage.batch_chips}
    assert len(chips) == 2 and stage.index in result.partition.tensor_parallel
    assert chips <= {i.chip for i in result.program.instructions if i.op == "MVM"}
    q = result.plan.names[graph.operands(stage.anchor)[0]]
    vectors = result.plan.tensors[q].layout.vectors
    assert [sum(e - f for f, e in stage.copies[chip][q]) for chip in sorted(chips)] == [vectors // 2] * 2
    sends = sum(1 for i in result.program.instructions if i.op == "SEND")
    assert sends == vectors  # q crosses once, in halves, not once whole per chip
    assert any(note.startswith("batch split:") for note in result.program.notes)
    assert _counted_ops(graph, machine) == dict(collections.Counter(i.op for i in result.program.instructions))


def test_a_matmul_too_narrow_to_split_by_columns_is_split_by_batch(lpu) -> None:
    """x @ w has one 320-column slice, too big for a 0.5 MiB chip: its batch axis is split instead."""
    graph = compile_string(BATCHED, target="ref").graph
    machine = load_machine().with_sram(600_000)
    result = lpu.run_and_check(graph, machine)
    assert result.program.chips == 4
    assert [len(s.batch_chips) for s in result.plan.stages if s.kind == "matmul"] == [2, 2]
    assert _counted_ops(graph, machine) == dict(collections.Counter(i.op for i in result.program.instructions))


def test_grouped_query_attention_over_users_kv_caches_is_split_by_user(lpu) -> None:
    """Llama decode's attention (GQA, slices of the KV caches) split by user over chips, simulated."""
    graph = lpu.example_graph("llama_decode", B=4, T=64)
    machine = load_machine().with_sram(400_000)
    result = lpu.run_and_check(graph, machine)
    split = [s for s in result.plan.stages if s.batch_chips]
    assert split and all(len({c for _, _, c in s.batch_chips}) == 2 for s in split)
    counted = count_program(graph, machine)
    actual = collections.Counter()
    for instruction, index in zip(result.program.instructions, result.stage_of):
        if instruction.op == "SEND":
            actual[index] += 1
    assert {s.index: round(s.ops["SEND"]) for s in counted.stages if s.ops["SEND"]} == dict(actual)


def test_a_batch_too_big_for_one_chip_is_refused(lpu) -> None:
    graph = compile_string("def f(q: f32[2, 2, 64, 640], k: f32[2, 2, 640, 40]) -> f32[2, 2, 64, 40] {\n"
                           "    return q @ k\n}\n", target="ref").graph
    with pytest.raises(TargetError, match="cannot be split finely enough: one index of its leading axis"):
        lpu.build(graph, load_machine().with_sram(300_000))
