"""The static schedule: deterministic, and exact: moving one instruction of a listing by a cycle makes
the simulator fail or compute wrong numbers, and the scheduler overlaps independent work."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from compiler.checking import compare
from compiler.inputs import random_inputs
from ir.interpreter import run_graph
from targets.lpu.listing import parse_instruction, parse_listing, print_listing
from targets.lpu.machine import load_machine
from targets.lpu.simulator import SimulationError, simulate

EXACT_OPS = ("READ", "WRITE", "PERMUTE", "MERGE", "LW", "MVM", "TLD", "TST", "ADD", "EXP", "MAXIMUM", "DIV",
             "SUB", "RELU", "SELECT", "MUL", "RSQRT", "SEND", "RECV")


def caught(graph, program, inputs: dict) -> bool:
    """Whether the simulator refuses the program or its results differ from the reference."""
    try:
        outputs = simulate(program, inputs)
    except SimulationError:
        return True
    expected = run_graph(graph, inputs)
    return any(not compare(a, e, graph.node(n).type.dtype).ok for a, e, n in zip(outputs, expected, graph.outputs))


def moved_text(text: str, line_index: int, delta: int) -> str:
    lines = text.splitlines()
    instruction = parse_instruction(lines[line_index])
    lines[line_index] = lines[line_index].replace(f"{instruction.cycle:>9}", f"{instruction.cycle + delta:>9}", 1)
    return "\n".join(lines) + "\n"


def moved_program(program, index: int, delta: int):
    instructions = list(program.instructions)
    instructions[index] = instructions[index].moved(instructions[index].cycle + delta)
    return dataclasses.replace(program, instructions=instructions)


def test_editing_one_cycle_in_the_listing_text_breaks_the_program(lpu) -> None:
    graph = lpu.example_graph("mlp", B=1)
    text = print_listing(lpu.build(graph).program)
    inputs = random_inputs(graph, 1)
    assert not caught(graph, parse_listing(text), inputs)
    index = next(i for i, line in enumerate(text.splitlines()) if " EXP." in line)
    assert caught(graph, parse_listing(moved_text(text, index, -1)), inputs)


@pytest.mark.parametrize("name, defines, sram", [
    ("mlp", {"B": 1}, None),
    ("attention", {"B": 1, "S": 4, "H": 2, "Dh": 4}, None),
    ("mlp", {"B": 1}, 1_500_000),  # two chips: C2C SEND / RECV too
])
def test_moving_one_instruction_one_cycle_is_caught(lpu, name: str, defines: dict, sram: int | None) -> None:
    graph = lpu.example_graph(name, **defines)
    machine = load_machine() if sram is None else load_machine().with_sram(sram)
    program = parse_listing(print_listing(lpu.build(graph, machine).program))
    inputs = random_inputs(graph, 1)
    assert not caught(graph, program, inputs)
    candidates = [i for i, instruction in enumerate(program.instructions) if instruction.op in EXACT_OPS]
    picks = random.Random(7).sample(candidates, 6)
    if sram is not None:
        picks += [i for i in candidates if program.instructions[i].op in ("SEND", "RECV")][:2]
    for index in picks:
        for delta in (-1, 1):
            assert caught(graph, moved_program(program, index, delta), inputs), (delta, program.instructions[index])


def test_same_program_same_schedule(lpu) -> None:
    graph = lpu.example_graph("attention", B=1, S=8, H=2, Dh=8)
    first, second = lpu.build(graph), lpu.build(lpu.example_graph("attention", B=1, S=8, H=2, Dh=8))
    assert first.program.cycles == second.program.cycles
    assert print_listing(first.program) == print_listing(second.program)


def test_independent_matmuls_overlap_on_different_planes(lpu) -> None:
    """q, k and v projections read the same x and nothing else: they run at the same time."""
    result = lpu.build(lpu.example_graph("attention", B=1, S=8, H=2, Dh=8))
    program = result.program
    stages = {s.index: s for s in result.plan.stages}
    spans: dict[int, tuple[int, int, set[str]]] = {}
    for instruction, tag in zip(program.instructions, result.stage_of):
        if instruction.op != "MVM":
            continue
        low, high, planes = spans.get(tag, (instruction.cycle, instruction.cycle, set()))
        spans[tag] = (min(low, instruction.cycle), max(high, instruction.cycle), planes | {instruction.unit})
    first_three = sorted(spans)[:3]
    assert all(stages[t].kind == "matmul" for t in first_three)
    (a0, a1, pa), (b0, b1, pb), (c0, c1, pc) = (spans[t] for t in first_three)
    assert b0 < a1 and c0 < b1  # overlapping in time
    assert len(pa | pb | pc) >= 3  # on different MXM planes


def test_every_unit_issues_at_most_once_per_cycle(lpu) -> None:
    program = lpu.build(lpu.example_graph("decoder_layer", B=1, S=4)).program
    seen = set()
    for instruction in program.instructions:
        if instruction.op == "LW":
            continue  # an MXM plane takes several weight vectors per cycle
        key = (instruction.chip, instruction.unit, instruction.cycle, instruction.op in ("READ",))
        assert key not in seen, instruction
        seen.add(key)


def test_streams_are_never_written_twice_in_one_slot(lpu) -> None:
    """Checked by the simulator on every run; here on a program with many gathers."""
    graph = lpu.example_graph("decoder_layer", B=1, S=4)
    inputs = random_inputs(graph, 0)
    outputs = lpu.simulate_listing(print_listing(lpu.build(graph).program), inputs)
    assert all(np.all(np.isfinite(o)) for o in outputs)
