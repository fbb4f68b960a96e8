"""Every example, at its small default size, simulated on a small PE mesh matches the reference interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.checking import compare
from compiler.driver import compile
from compiler.inputs import random_inputs

EXAMPLES = sorted(Path(__file__).resolve().parents[3].joinpath("examples").glob("*.nk"))


def simulate(path: Path, mesh: str, **options):
    program = compile(path, target="wse", mesh=mesh, **options)
    graph = program.graph
    inputs = random_inputs(graph, 1)
    outputs = program.run(inputs)
    expected = program.run_reference(inputs)
    return program, graph, outputs, expected


def test_every_example_is_checked() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"mlp", "sparse_mlp", "attention", "llama_decode", "llama_prefill", "code_completion",
            "video_diffusion"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_matches_reference(path: Path) -> None:
    defines = {"B": 2} if path.stem == "mlp" else {}
    program, graph, outputs, expected = simulate(path, "16x16", defines=defines)
    assert "simulator" in program.artifact.description
    assert len(outputs) == len(expected) == len(graph.outputs)
    for index, (got, want) in enumerate(zip(outputs, expected)):
        result = compare(got, want, graph.node(graph.outputs[index]).type.dtype, f"output {index}")
        assert result.ok, result.message


@pytest.mark.parametrize("name, wafers", [("attention", 1), ("llama_decode", 2)])
def test_unfused_program_on_the_smallest_mesh(name: str, wafers: int) -> None:
    """Without fusion every op is a region; the decode step's do not fit one 8x8 mesh: a pipeline of wafers."""
    path = next(p for p in EXAMPLES if p.stem == name)
    program, graph, outputs, expected = simulate(path, "8x8", passes="")
    count = len(program.artifact.program.wafers)
    assert count >= wafers
    for index, (got, want) in enumerate(zip(outputs, expected)):
        result = compare(got, want, graph.node(graph.outputs[index]).type.dtype, f"output {index}")
        assert result.ok, result.message


def test_f32_decode_is_computed_not_copied() -> None:
    """In f32 the split matmul sums differ from numpy's in the last bits: the outputs are close, not equal."""
    path = next(p for p in EXAMPLES if p.stem == "llama_decode")
    program, graph, outputs, expected = simulate(path, "32x32", defines={"DT": "f32"}, tile=8)
    logits = outputs[0]
    result = compare(logits, expected[0], graph.node(graph.outputs[0]).type.dtype)
    assert result.ok, result.message
    assert result.max_abs_error > 0


def test_streamed_weights_simulate_the_same() -> None:
    path = next(p for p in EXAMPLES if p.stem == "video_diffusion")
    program, graph, outputs, expected = simulate(path, "12x12", weights="streamed")
    assert program.artifact.program.mode == "streamed"
    result = compare(outputs[0], expected[0], graph.node(graph.outputs[0]).type.dtype)
    assert result.ok, result.message
