"""Hardware spec files: every shipped spec loads and cites every number; each class of mistake in a user's
file is reported with the field, the file and the line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from targets.spec import CONFIDENCE_TAGS, SpecError, load_spec, parse_spec, spec_names
from targets.spec_schema import KINDS

SHIPPED = ["a100", "b200", "cpu", "groq-tsp", "h100", "h200", "wse2", "wse3"]

MINIMAL_GPU = """
name = "toy"
kind = "gpu"
description = "a toy GPU"

[clock]
core = { value = 1, unit = "GHz", assumption = "round number" }

[compute.tensor]
bf16 = { value = 100, unit = "TFLOP/s", assumption = "round number" }

[memory.l2]
capacity = { value = 10, unit = "MB", assumption = "round number" }

[memory.hbm]
main = true
capacity = { value = 16, unit = "GB", assumption = "round number" }
bandwidth = { value = 1, unit = "TB/s", assumption = "round number" }

[interconnect]
bandwidth = { value = 100, unit = "GB/s", assumption = "round number" }
latency = { value = 1, unit = "us", assumption = "round number" }

[power]
tdp = { value = 300, unit = "W", source = "a datasheet", confidence = "P" }

[gpu]
sm_count = { value = 10, unit = "1", assumption = "round number" }
registers_per_sm = { value = 256, unit = "KiB", assumption = "round number" }
smem_per_sm = { value = 100, unit = "KiB", assumption = "round number" }
smem_per_block = { value = 99, unit = "KiB", assumption = "round number" }
max_threads_per_sm = { value = 2048, unit = "1", assumption = "round number" }
max_threads_per_block = { value = 1024, unit = "1", assumption = "round number" }
max_blocks_per_sm = { value = 32, unit = "1", assumption = "round number" }
warp_size = { value = 32, unit = "1", assumption = "round number" }
launch_overhead = { value = 3, unit = "us", assumption = "round number" }
"""


def test_the_expected_chips_are_shipped() -> None:
    assert set(SHIPPED) <= set(spec_names())


@pytest.mark.parametrize("name", spec_names())
def test_every_shipped_spec_loads_and_cites_every_number(name: str) -> None:
    spec = load_spec(name)
    assert spec.kind in KINDS
    assert spec.quantities
    for quantity in spec.quantities:
        assert math.isfinite(quantity.value) and quantity.value >= 0, quantity.path
        if quantity.assumption is None:
            assert quantity.source and quantity.confidence in CONFIDENCE_TAGS, quantity.path
        else:
            assert len(quantity.assumption) > 10, quantity.path  # says why, not just "assumed"
    main = spec.main_memory
    assert main.capacity > 0 and main.bandwidth > 0
    assert spec.tdp > 0


def test_published_figures_are_converted_to_base_units() -> None:
    h100 = load_spec("h100")
    assert h100.value("memory.hbm.bandwidth") == pytest.approx(3.35e12)
    assert h100.value("memory.hbm.capacity") == pytest.approx(80e9)
    assert h100.peak("bf16") == ("tensor", pytest.approx(989.4e12))
    assert h100.interconnect.bandwidth == pytest.approx(450e9)
    assert load_spec("groq-tsp").main_memory.capacity == 220 * 2 ** 20
    assert load_spec("wse3").interconnect.bandwidth == pytest.approx(1.2e12 / 8)  # 1.2 Tb/s in bytes


def test_a_user_file_goes_through_the_same_loader(tmp_path: Path) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(MINIMAL_GPU)
    spec = load_spec(str(path))
    assert spec.name == "toy" and spec.kind == "gpu"
    assert spec.main_memory.name == "hbm"
    assert [level.name for level in spec.memory] == ["l2", "hbm"]


def _error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    return info.value.format()


def test_missing_required_field_names_the_field_and_file(tmp_path: Path) -> None:
    text = MINIMAL_GPU.replace('warp_size = { value = 32, unit = "1", assumption = "round number" }\n', "")
    message = _error(text, tmp_path)
    assert "bad.toml" in message and "gpu.warp_size: missing" in message


def test_negative_bandwidth_is_refused_with_its_line(tmp_path: Path) -> None:
    text = MINIMAL_GPU.replace('bandwidth = { value = 1, unit = "TB/s"', 'bandwidth = { value = -1, unit = "TB/s"')
    message = _error(text, tmp_path)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "value = -1" in l)
    assert f"bad.toml:{line}:1: error: memory.hbm.bandwidth: must not be negative" in message


def test_unknown_unit_lists_the_units_the_field_takes(tmp_path: Path) -> None:
    message = _error(MINIMAL_GPU.replace('unit = "TB/s"', 'unit = "TB/sec"'), tmp_path)
    assert "memory.hbm.bandwidth: unknown unit 'TB/sec'" in message and "GB/s" in message


def test_a_unit_of_the_wrong_dimension_is_refused(tmp_path: Path) -> None:
    text = MINIMAL_GPU.replace('capacity = { value = 16, unit = "GB"', 'capacity = { value = 16, unit = "GB/s"')
    message = _error(text, tmp_path)
    assert "memory.hbm.capacity: unit 'GB/s' measures bandwidth; memory.hbm.capacity is bytes" in message


def test_a_number_without_source_or_assumption_is_refused(tmp_path: Path) -> None:
    text = MINIMAL_GPU.replace('tdp = { value = 300, unit = "W", source = "a datasheet", confidence = "P" }',
                               'tdp = { value = 300, unit = "W" }')
    assert "power.tdp: missing source" in _error(text, tmp_path)


def test_a_source_needs_a_confidence_tag(tmp_path: Path) -> None:
    text = MINIMAL_GPU.replace('confidence = "P"', 'confidence = "very"')
    assert "power.tdp: source needs a confidence tag" in _error(text, tmp_path)


def test_a_bare_number_is_refused(tmp_path: Path) -> None:
    tdp = 'tdp = { value = 300, unit = "W", source = "a datasheet", confidence = "P" }'
    text = MINIMAL_GPU.replace(tdp, "tdp = 300")
    assert "power.tdp: bare number 300" in _error(text, tmp_path)


def test_counts_must_be_whole_and_fractions_at_most_one(tmp_path: Path) -> None:
    text = MINIMAL_GPU.replace('sm_count = { value = 10,', 'sm_count = { value = 10.5,')
    text += '\n[model]\ncompute_fraction = { value = 1.5, unit = "fraction", assumption = "too optimistic" }\n'
    message = _error(text, tmp_path)
    assert "gpu.sm_count: must be a whole number" in message
    assert "model.compute_fraction: must be a fraction in (0, 1]" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = MINIMAL_GPU.replace('unit = "TB/s"', 'unit = "parsecs"')
    text = text.replace('value = 300, unit = "W"', 'value = -3, unit = "W"')
    message = _error(text, tmp_path)
    assert "unknown unit 'parsecs'" in message and "power.tdp: must not be negative" in message


def test_exactly_one_main_memory_level(tmp_path: Path) -> None:
    message = _error(MINIMAL_GPU.replace("main = true\n", ""), tmp_path)
    assert "exactly one memory level must have main = true" in message


def test_unknown_kind_and_precision(tmp_path: Path) -> None:
    text = MINIMAL_GPU.replace('kind = "gpu"', 'kind = "tpu"').replace("bf16 = {", "bf17 = {")
    message = _error(text, tmp_path)
    assert "unknown kind 'tpu'" in message and "compute.tensor.bf17" in message


def test_invalid_toml_points_at_the_line(tmp_path: Path) -> None:
    message = _error('name = "x"\nkind = gpu\n', tmp_path)
    assert "bad.toml:2:" in message and "not valid TOML" in message


def test_unknown_spec_name_lists_the_shipped_ones() -> None:
    with pytest.raises(SpecError) as info:
        load_spec("h900")
    assert "no hardware spec named 'h900'" in str(info.value) and "h100" in str(info.value)
    with pytest.raises(SpecError):
        load_spec("/nonexistent/chip.toml")


def test_parse_spec_reads_text_directly() -> None:
    spec = parse_spec(MINIMAL_GPU, "inline.toml")
    assert spec.value("gpu.sm_count") == 10
    assert spec.q("power.tdp").provenance == "a datasheet [P]"
    assert spec.q("clock.core").provenance == "assumption: round number"
