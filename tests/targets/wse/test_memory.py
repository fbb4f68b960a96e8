"""A placement that overflows a PE's memory is an error that says so, never a wrong result."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.driver import compile
from compiler.inputs import random_inputs
from targets.wse.codegen import WseMemoryError
from targets.wse.isa import Load
from targets.wse.simulator import Simulator

MLP = "examples/mlp.nk"


def test_region_too_big_for_the_mesh_is_a_located_error() -> None:
    # w1 is 784 x 512 f32 (1.6 MB): 16 PEs hold at most 16 x 40 KiB.
    program = compile(MLP, target="wse", defines={"B": 2}, mesh="4x4")
    with pytest.raises(WseMemoryError) as caught:
        program.artifact.program
    message = caught.value.format()
    assert message.startswith("examples/mlp.nk:")
    assert "does not fit the PEs' memory" in message
    assert "40,960 usable" in message and "--mesh" in message


def test_cli_reports_the_overflow_without_a_traceback(niche) -> None:
    result = niche("run", MLP, "--target", "wse", "--mesh", "4x4", "-D", "B=2")
    assert result.returncode == 1
    assert "does not fit the PEs' memory" in result.stderr
    assert "Traceback" not in result.stderr


def test_memory_grows_the_region_until_it_fits() -> None:
    program = compile(MLP, target="wse", defines={"B": 2}, mesh="16x16")
    wafer = program.artifact.program
    usable = wafer.machine.usable_bytes_per_pe
    assert all(p.peak_bytes() <= usable for p in wafer.programs.values())
    first = wafer.placed[0].code
    assert first.grid[0] * first.grid[1] >= 1.6e6 / usable  # w1 alone needs that many PEs


def test_simulator_stops_when_a_pe_runs_out_of_memory() -> None:
    """The simulator checks memory as it runs: make one PE load four times its weight tile."""
    program = compile(MLP, target="wse", defines={"B": 2}, mesh="16x16")
    wafer = program.artifact.program
    usable = wafer.machine.usable_bytes_per_pe
    load = next(i for p in wafer.programs.values() for i in p.instrs
                if isinstance(i, Load) and i.kind == "weight" and i.dst.nbytes > usable / 4)
    load.indices = np.concatenate([load.indices] * 4)
    load.dst.length = load.indices.size
    with pytest.raises(WseMemoryError, match="out of memory") as caught:
        Simulator(wafer).run(random_inputs(program.graph, 0))
    assert f"more than the {usable:,} usable" in caught.value.format()
