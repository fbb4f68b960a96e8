"""The simulator follows the router tables: a broken route or a missing message is an error; the wavelets it
moves over each link are exactly the loads the router accounting predicts."""

from __future__ import annotations

import pytest

from compiler.driver import compile
from compiler.inputs import random_inputs
from targets.wse.isa import Recv
from targets.wse.simulator import SimulationError, Simulator


def _attention():
    program = compile("examples/attention.nk", target="wse", mesh="16x16", tile=8)
    return program, program.artifact.program


def test_measured_link_loads_equal_the_accounting() -> None:
    program, wafer = _attention()
    simulator = Simulator(wafer)
    simulator.run(random_inputs(program.graph, 0))
    for w in wafer.wafers:
        measured = {(at, out): n for (index, at, out), n in simulator.stats.link_wavelets.items() if index == w.index}
        assert measured == w.load.link_wavelets
    assert sum(w.load.wavelet_hops for w in wafer.wafers) > 0


def test_a_broken_route_is_an_error() -> None:
    program, wafer = _attention()
    route = max((r for w in wafer.wafers for r in w.routes), key=lambda r: r.hops)
    table = wafer.wafers[0].tables
    # Cut the route after its first router: the next router forgets the color.
    first_hop = next(at for at in route.entries if at != route.src)
    del table[first_hop][route.color]
    with pytest.raises(SimulationError, match="no route for it"):
        Simulator(wafer).run(random_inputs(program.graph, 0))


def test_a_message_that_never_comes_is_a_deadlock() -> None:
    program, wafer = _attention()
    pe_program = next(p for p in wafer.programs.values() if any(isinstance(i, Recv) for i in p.instrs))
    recv = next(i for i in pe_program.instrs if isinstance(i, Recv))
    recv.count += 1  # waits for one element more than is ever sent
    with pytest.raises(SimulationError, match="deadlock"):
        Simulator(wafer).run(random_inputs(program.graph, 0))


def test_colors_stay_within_the_budget() -> None:
    _, wafer = _attention()
    for w in wafer.wafers:
        assert 0 < w.colors_used <= wafer.machine.usable_colors
        assert all(r.color < wafer.machine.usable_colors for r in w.routes)
