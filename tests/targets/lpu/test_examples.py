"""Every example program at a small size: compiled for the LPU, listed, parsed back, simulated cycle by
cycle, and compared with the reference interpreter (within the output dtype's tolerance: bit-close for
f32, since the MXM runs f32 matmuls in its fp32 mode by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ir.dtypes import DType

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

CASES = [
    ("mlp", None, {"B": 2}),
    ("attention", None, {"B": 1, "S": 8, "H": 2, "Dh": 8}),
    ("decoder_layer", None, {"B": 1, "S": 4}),
    ("llama_decode", None, {}),
    ("llama_prefill", None, {"B": 1, "S": 4, "DT": "f32"}),
    ("code_completion", "prompt", {"P": 4}),
    ("code_completion", "next_token", {}),
    ("sparse_mlp", None, {"N": 4}),
    ("video_diffusion", None, {"FR": 2, "HH": 2, "WW": 2, "D": 32, "H": 2}),
]


def test_every_example_is_checked() -> None:
    """A new example is simulated and checked here too (llama_prefill also at its default bf16 size, in
    test_numerics.py)."""
    assert {path.stem for path in EXAMPLES.glob("*.nk")} == {case[0] for case in CASES}


@pytest.mark.parametrize("name, entry, defines", CASES, ids=[f"{c[0]}-{c[1] or 'main'}" for c in CASES])
def test_example_simulates_like_the_reference(lpu, name: str, entry: str | None, defines: dict) -> None:
    result = lpu.run_and_check(lpu.example_graph(name, entry, **defines))
    assert result.program.cycles > 0
    kinds = {i.kind for i in result.program.instructions}
    assert {"MEM", "VXM"} <= kinds


def test_matmuls_run_on_the_mxm_and_reductions_use_the_sxm(lpu) -> None:
    result = lpu.run_and_check(lpu.example_graph("mlp", B=2))
    ops = {i.op for i in result.program.instructions}
    assert {"LW", "IW", "MVM", "PERMUTE", "MAXIMUM", "EXP", "DIV", "READ", "WRITE"} <= ops


def test_fp16_mxm_mode_is_within_fp16_tolerance(lpu) -> None:
    graph = lpu.example_graph("mlp", B=2)
    result = lpu.run_and_check(graph, tolerance=DType.F16, mxm_precision="fp16")
    precisions = {i.get("prec") for i in result.program.instructions if i.op == "MVM"}
    assert precisions == {"fp16"}


def test_fp16_mode_is_not_bit_close_so_the_check_can_fail(lpu) -> None:
    """The fp32 comparison of an fp16-operand MXM result must notice the rounding (the tests above are not
    vacuous)."""
    graph = lpu.example_graph("mlp", B=2)
    with pytest.raises(AssertionError):
        lpu.run_and_check(graph, tolerance=DType.F32, mxm_precision="fp16")


def test_bf16_program_is_close_to_the_reference(lpu) -> None:
    lpu.run_and_check(lpu.example_graph("decoder_layer", B=1, S=4, DT="bf16"))
