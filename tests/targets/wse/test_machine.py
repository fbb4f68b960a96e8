"""The machine model: published figures from the spec files, assumptions marked, options validated."""

from __future__ import annotations

import pytest

from compiler.driver import compile
from ir.dtypes import DType
from targets.base import TargetError
from targets.wse.machine import MachineError, load_machine, parse_mesh


def test_wse3_from_its_spec_file() -> None:
    machine = load_machine("wse3")
    assert (machine.mesh_width, machine.mesh_height) == (750, 1200)
    assert machine.sram_per_pe == 48 * 1024 and machine.usable_bytes_per_pe == 40 * 1024
    assert machine.fmac_lanes_f16 == 8 and machine.fmac_lanes_f32 == 2
    assert machine.link_bits_per_cycle == 32 and machine.wavelet_bytes == 4
    assert machine.colors == 24 and machine.usable_colors == 21
    assert machine.io_bytes_per_s == pytest.approx(150e9)
    assert machine.clock_hz == pytest.approx(1.1e9)


def test_wse2_differs_where_published() -> None:
    two, three = load_machine("wse2"), load_machine("wse3")
    assert two.fmac_lanes_f16 == 4 and two.clock_hz == pytest.approx(0.85e9)
    assert two.mesh_pes < three.mesh_pes


def test_every_value_says_where_it_comes_from() -> None:
    machine = load_machine("wse3")
    rows = machine.provenance()
    assert rows and all(source for _, _, source in rows)
    assumed = " ".join(machine.assumptions())
    for name in ("clock_hz", "code_reserve", "mesh_width", "transcendental_ops"):
        assert name in assumed, name
    assert "sram_per_pe" not in assumed  # published


def test_lanes_and_wavelets() -> None:
    machine = load_machine("wse3")
    assert machine.lanes(DType.BF16) == 8 and machine.lanes(DType.F32) == 2 and machine.lanes(DType.F64) == 1
    assert machine.wavelets(10, DType.BF16) == 5 and machine.wavelets(10, DType.F32) == 10
    assert machine.wavelets(3, DType.F64) == 6


def test_mesh_option() -> None:
    assert parse_mesh("8x16") == (8, 16) and parse_mesh((4, 4)) == (4, 4)
    for bad in ("8", "0x4", "axb", "8x8x8"):
        with pytest.raises(MachineError):
            parse_mesh(bad)
    machine = load_machine("wse3").with_mesh(16, 8)
    assert (machine.mesh_width, machine.mesh_height) == (16, 8)
    assert "simulated mesh" in dict((n, s) for n, _, s in machine.provenance())["mesh_width"]


@pytest.mark.parametrize("options, message", [
    ({"mesh": "16"}, "ROWSxCOLUMNS"),
    ({"weights": "cached"}, "auto, resident or streamed"),
    ({"density": 1.5}, "fraction"),
    ({"tile": 0}, "positive integer"),
    ({"threads": 2}, "no option"),
])
def test_bad_options_are_user_errors(options: dict, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        compile("examples/mlp.nk", target="wse", **options)
