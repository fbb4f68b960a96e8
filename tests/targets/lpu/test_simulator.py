"""The cycle-level simulator on small hand-made programs: values travel on streams one slice per cycle,
units read their operands in their issue cycle, and a wrongly timed program fails or computes wrong
numbers."""

from __future__ import annotations

import numpy as np
import pytest

from ir.dtypes import DType
from targets.lpu.isa import Instruction, Stream
from targets.lpu.listing import parse_listing, print_listing
from targets.lpu.machine import load_machine
from targets.lpu.program import Extent, LpuProgram, TensorDecl
from targets.lpu.simulator import SimulationError, simulate
from targets.lpu.vectors import VectorLayout

F32 = DType.F32
MACHINE = load_machine()
LAYOUT = MACHINE.layout
E0 = Stream("E", 0, 4)


def program(instructions: list[Instruction], maps: list[np.ndarray] | None = None,
            shape: tuple[int, ...] = (4,)) -> LpuProgram:
    """x in MEM.W0 word 0 (plus y in MEM.W1 word 0) -> out in MEM.E0 word 0."""
    layout = VectorLayout(shape, F32)
    tensors = {
        "x": TensorDecl("x", layout, "input", [Extent(0, 0, 1, (("MEM.W0", 0),))]),
        "y": TensorDecl("y", layout, "input", [Extent(0, 0, 1, (("MEM.W1", 0),))]),
        "out": TensorDecl("out", layout, "value", [Extent(0, 0, 1, (("MEM.E0", 0),))]),
    }
    return LpuProgram("t", MACHINE, 1, tensors, ["x", "y"], ["out"], maps or [], instructions)


def read(cycle: int, slice_name: str = "MEM.W0", stream: Stream = E0) -> Instruction:
    return Instruction(cycle, 0, slice_name, "READ", F32, (), stream, (("addr", 0),))


def write(cycle: int, stream: Stream = E0) -> Instruction:
    return Instruction(cycle, 0, "MEM.E0", "WRITE", F32, (stream,), None, (("addr", 0), ("valid", 4)))


INPUTS = {"x": np.array([1.0, -2.0, 3.0, -4.0], np.float32), "y": np.array([10.0, 20.0, 30.0, 40.0], np.float32)}


def arrival(source: str, target: str, start: int, op_latency: int) -> int:
    """When a value a unit at `source` produces at `start + op_latency` reaches `target`."""
    distance = abs(LAYOUT.position(target) - LAYOUT.position(source))
    return start + op_latency + distance * MACHINE.stream_hop_cycles


def test_a_correctly_timed_copy_works_and_round_trips_through_text() -> None:
    when = arrival("MEM.W0", "MEM.E0", 0, MACHINE.mem_read_latency)
    prog = program([read(0), write(when)])
    assert np.array_equal(simulate(parse_listing(print_listing(prog)), INPUTS)[0], INPUTS["x"])


@pytest.mark.parametrize("skew", [-1, 1])
def test_a_write_one_cycle_off_finds_the_stream_empty(skew: int) -> None:
    when = arrival("MEM.W0", "MEM.E0", 0, MACHINE.mem_read_latency)
    with pytest.raises(SimulationError, match=rf"stream E0-3 empty at cycle {when + skew}"):
        simulate(program([read(0), write(when + skew)]), INPUTS)


def test_a_wrongly_timed_reader_gets_another_vector() -> None:
    """y and x pass MEM.E0 on one stream one cycle apart: a write one cycle early stores y."""
    instructions = [read(4, "MEM.W1"), read(6, "MEM.W0")]
    when = arrival("MEM.W0", "MEM.E0", 6, MACHINE.mem_read_latency)
    assert arrival("MEM.W1", "MEM.E0", 4, MACHINE.mem_read_latency) == when - 1
    right = simulate(program(instructions + [write(when)]), INPUTS)[0]
    wrong = simulate(program(instructions + [write(when - 1)]), INPUTS)[0]
    assert np.array_equal(right, INPUTS["x"])
    assert np.array_equal(wrong, INPUTS["y"])


def test_the_nearest_upstream_writer_wins_a_diagonal() -> None:
    """Streams carry one value per slot: a value written further downstream on the same diagonal
    replaces the one flowing in from upstream."""
    instructions = [read(4, "MEM.W1"), read(5, "MEM.W0")]  # W1 is one slice west (upstream) of W0
    when = arrival("MEM.W0", "MEM.E0", 5, MACHINE.mem_read_latency)
    assert arrival("MEM.W1", "MEM.E0", 4, MACHINE.mem_read_latency) == when
    assert np.array_equal(simulate(program(instructions + [write(when)]), INPUTS)[0], INPUTS["x"])


def test_two_reads_of_one_slice_in_one_cycle_collide_on_its_port() -> None:
    """(They would also put two values on one stream slot; the port is checked first.)"""
    with pytest.raises(SimulationError, match="port conflict: the read port of MEM.W0"):
        simulate(program([read(3), read(3), write(10)]), INPUTS)


def test_a_vector_read_holds_the_port_for_its_words() -> None:
    """An f32 vector is 4 words: a second read of the slice 3 cycles later still finds the port held."""
    with pytest.raises(SimulationError, match="port conflict"):
        simulate(program([read(0), read(3, stream=Stream("E", 4, 4)), write(20)]), INPUTS)


def test_a_vxm_op_reads_both_operands_in_its_issue_cycle() -> None:
    vxm = "VXM.0"
    t = arrival("MEM.W0", vxm, 1, MACHINE.mem_read_latency)
    assert t == arrival("MEM.W1", vxm, 0, MACHINE.mem_read_latency)  # W1 is one slice further west
    add = Instruction(t, 0, vxm, "ADD", F32, (Stream("E", 0, 4), Stream("E", 4, 4)), Stream("E", 8, 4))
    done = arrival(vxm, "MEM.E0", t, MACHINE.vxm_latency)
    instructions = [read(1, "MEM.W0", Stream("E", 0, 4)), read(0, "MEM.W1", Stream("E", 4, 4)), add,
                    write(done, Stream("E", 8, 4))]
    assert np.array_equal(simulate(program(instructions), INPUTS)[0], INPUTS["x"] + INPUTS["y"])
    late = instructions[:1] + [read(1, "MEM.W1", Stream("E", 4, 4))] + instructions[2:]
    with pytest.raises(SimulationError, match="stream E4-7 empty"):
        simulate(program(late), INPUTS)


def test_permute_moves_lanes_and_zero_fills() -> None:
    sxm = "SXM.W0"
    t = arrival("MEM.W0", sxm, 0, MACHINE.mem_read_latency)
    lane_map = np.full(320, -1)
    lane_map[:4] = [3, 2, 1, 0]
    permute = Instruction(t, 0, sxm, "PERMUTE", F32, (Stream("W", 0, 4),), E0, (("map", "m0"),))
    done = arrival(sxm, "MEM.E0", t, MACHINE.sxm_latency)
    out = simulate(program([read(0, "MEM.W0", Stream("W", 0, 4)), permute, write(done)], [lane_map]), INPUTS)[0]
    assert np.array_equal(out, INPUTS["x"][::-1])


def test_reading_memory_before_it_is_written_fails() -> None:
    copy = [read(0), write(arrival("MEM.W0", "MEM.E0", 0, MACHINE.mem_read_latency))]
    early = Instruction(1, 0, "MEM.E0", "READ", F32, (), Stream("W", 0, 4), (("addr", 0),))
    with pytest.raises(SimulationError, match=r"MEM.E0\[0\] holds no vector"):
        simulate(program(copy + [early]), INPUTS)


def test_a_unit_cannot_run_another_units_instruction() -> None:
    bad = Instruction(0, 0, "MEM.W0", "ADD", F32, (E0, E0), E0)
    with pytest.raises(SimulationError, match="MEM.W0 cannot execute ADD"):
        simulate(program([bad]), INPUTS)


def test_int8_mvm_accumulates_in_int32_and_wraps_like_numpy(lpu) -> None:
    """An int8 dot product that overflows int8 wraps exactly as numpy's int8 matmul does."""
    from compiler.driver import compile_string
    source = "def f(a: i8[3, 40], @weight b: i8[40, 5]) -> i8[3, 5] { return a @ b }"
    graph = compile_string(source, target="ref").graph
    result = lpu.run_and_check(graph)
    assert {i.get("prec") for i in result.program.instructions if i.op == "MVM"} == {"int8"}
