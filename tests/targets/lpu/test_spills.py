"""Values parked in MEM when a job does not fit the machine in one piece: a reduction folding many
vectors reads every MEM slice, so a parked value must share a slice with the job's own reads, at a cycle
its read port is free; jobs too wide for the streams are split. The simulator holds every MEM port to one
access per word-cycle, so a wrongly placed read back fails there."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.driver import compile_string
from compiler.inputs import random_inputs
from targets.lpu.listing import print_listing
from targets.lpu.simulator import SimulationError, simulate

WIDE_MIN = """def f(x: f32[128, 1, 8], y: f32[128, 1, 8]) -> f32[1] {
    return min(x * y, axis=(0, 2))
}
"""


def test_a_reduction_reading_every_slice_parks_values_and_matches(lpu) -> None:
    """This used to stop with "chip 0 is out of SRAM for a 4-word scratch vector" with SRAM nearly empty."""
    graph = compile_string(WIDE_MIN, target="ref").graph
    result = lpu.run_and_check(graph)
    reads = {i.unit for i in result.program.instructions if i.op == "READ" and "parked" not in i.comment}
    parked = {i.unit for i in result.program.instructions if i.op == "READ" and "parked" in i.comment}
    assert result.spills > 0 and len(reads) == 88
    assert parked & reads  # read backs share slices with the job's own reads


def test_a_read_back_on_a_busy_port_fails_in_the_simulator(lpu) -> None:
    """Move one parked read back onto a cycle in which another read holds its slice's port."""
    graph = compile_string(WIDE_MIN, target="ref").graph
    program = lpu.build(graph).program
    inputs = random_inputs(graph, 0)
    others = {i.unit: i.cycle for i in program.instructions if i.op == "READ" and "parked" not in i.comment}
    index, moved = next((k, i) for k, i in enumerate(program.instructions)
                        if i.op == "READ" and "parked" in i.comment and i.unit in others)
    instructions = list(program.instructions)
    instructions[index] = dataclasses.replace(moved, cycle=others[moved.unit])
    broken = dataclasses.replace(program, instructions=instructions)
    with pytest.raises(SimulationError, match="port conflict|empty|holds"):
        simulate(broken, inputs)
    assert print_listing(program)  # the unbroken program still prints


@st.composite
def reductions(draw) -> str:
    shape = (draw(st.sampled_from([1, 7, 40, 96])), draw(st.sampled_from([1, 3])), draw(st.sampled_from([2, 8, 330])))
    axes = draw(st.sampled_from([(0,), (0, 2), (0, 1), (0, 1, 2), (1, 2)]))
    fn = draw(st.sampled_from(["sum", "max", "min", "mean"]))
    kept = [d for i, d in enumerate(shape) if i not in axes] or [1]
    dims = ", ".join(map(str, shape))
    out = ", ".join(map(str, kept))
    body = f"{fn}(x * y, axis={axes if len(axes) > 1 else axes[0]})"
    if len(kept) == 1 and len(axes) == 3:
        body = f"reshape({body}, (1,))"
    return f"def f(x: f32[{dims}], y: f32[{dims}]) -> f32[{out}] {{\n    return {body}\n}}\n"


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(reductions())
def test_random_many_vector_reductions_match_the_reference(lpu, source: str) -> None:
    lpu.run_and_check(compile_string(source, target="ref").graph, seed=1)
