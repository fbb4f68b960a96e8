"""The .lpu listing: lane-map encoding, printing and parsing back, and readable errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.lpu.listing import ListingError, decode_map, encode_map, parse_listing, print_listing


@st.composite
def lane_maps(draw) -> np.ndarray:
    """320 lanes made of random runs: zeros, repeats of one lane, ascending lanes, or any lanes."""
    values: list[int] = []
    while len(values) < 320:
        count = draw(st.integers(1, 320 - len(values)))
        kind = draw(st.sampled_from(["zero", "repeat", "ascend", "any"]))
        if kind == "zero":
            values += [-1] * count
        elif kind == "repeat":
            values += [draw(st.integers(0, 319))] * count
        elif kind == "ascend":
            start = draw(st.integers(0, 320 - count))
            values += list(range(start, start + count))
        else:
            values += draw(st.lists(st.integers(-1, 319), min_size=min(count, 8), max_size=min(count, 8)))
    return np.array(values)


@settings(max_examples=60, deadline=None)
@given(lane_maps())
def test_lane_maps_round_trip(values: np.ndarray) -> None:
    assert np.array_equal(decode_map(encode_map(values)), values)


def test_lane_map_text_is_compact_for_shifts_and_broadcasts() -> None:
    shift = np.where(np.arange(320) < 304, np.arange(320) + 16, -1)
    assert encode_map(shift) == "16+304,z*16"
    assert encode_map(np.zeros(320, dtype=int)) == "0*320"


def test_listing_round_trips_exactly(lpu) -> None:
    program = lpu.build(lpu.example_graph("attention", B=1, S=8, H=2, Dh=8)).program
    text = print_listing(program)
    assert print_listing(parse_listing(text)) == text


def test_listing_has_header_and_one_line_per_instruction(lpu) -> None:
    program = lpu.build(lpu.example_graph("mlp", B=2)).program
    text = print_listing(program)
    assert text.startswith("; Niche LPU listing: @mlp on 1 chip(s)")
    assert ".machine clock_hz=900000000.0 lanes=320" in text
    assert ".tensor w1 f32[784,512] role=weight transposed" in text
    lines = [line for line in text.splitlines() if line and line[0] == " "]
    assert len(lines) == len(program.instructions)
    read = next(line for line in lines if " READ." in line)
    assert "addr=" in read and "->" in read and "MEM." in read


def test_parse_errors_name_the_line(lpu) -> None:
    text = print_listing(lpu.build(lpu.example_graph("mlp", B=1)).program).splitlines()
    index = next(i for i, line in enumerate(text) if " READ." in line)
    text[index] = text[index].replace("READ.f32", "READ.q99")
    with pytest.raises(ListingError, match=rf"<listing>:{index + 1}: error: unknown element type 'q99'"):
        parse_listing("\n".join(text))


def test_truncated_listing_is_refused(lpu) -> None:
    text = print_listing(lpu.build(lpu.example_graph("mlp", B=1)).program)
    with pytest.raises(ListingError, match="no .end line"):
        parse_listing(text[: len(text) // 2])
