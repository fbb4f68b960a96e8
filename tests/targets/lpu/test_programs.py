"""Small programs that exercise corners of the lowering: outputs that are parameters or views, rank-0
and multi-axis reductions, lane-crossing transposes, integer and bool values, f16/bf16 matmuls, batch
broadcasting in matmuls, strided slices and reshapes across rows."""

from __future__ import annotations

import pytest

from compiler.driver import compile_string

PROGRAMS = [
    "def f(x: f32[3, 5]) -> f32[3, 5] { return x }",
    "def f(x: f32[3, 5]) -> (f32[3, 5], f32[5, 3]) { return x * 2.0, transpose(x, (1, 0)) }",
    "def f(x: f32[4]) -> f32[] { return sum(x, axis=0) }",
    "def f(x: f32[2, 3, 4]) -> f32[3] { return mean(x, axis=(0, 2)) }",
    "def f(x: f32[2, 3, 4]) -> f32[4, 2, 3] { return transpose(x, (2, 0, 1)) }",
    "def f(x: i32[3, 5], y: i32[3, 5]) -> bool[3, 5] { return x * 3 - y > 2 }",
    "def f(x: f32[3, 5], m: bool[3, 5]) -> f32[3, 5] { return where(m, x, 0.0) }",
    "def f(x: f16[3, 40], @weight w: f16[40, 7]) -> f16[3, 7] { return x @ w }",
    "def f(x: bf16[3, 40], @weight w: bf16[40, 7]) -> bf16[3, 7] { return gelu(x @ w) }",
    "def f(x: f32[5, 700]) -> f32[5, 1] { return min(x, axis=-1, keepdims=true) }",
    "def f(x: f32[4, 6]) -> f32[2, 12] { return reshape(x, (2, 12)) }",
    "def f(x: f32[4, 6]) -> f32[4, 3] { return x[:, ::2] }",
    "def f(a: f32[2, 3, 8], b: f32[2, 8, 5]) -> f32[2, 3, 5] { return a @ b }",
    "def f(a: f32[3, 8], b: f32[2, 8, 5]) -> f32[2, 3, 5] { return a @ b }",
    "def f(x: f32[3, 4]) -> f32[3, 4] { return cast(cast(x * 10.0, i32), f32) }",
    # a rank-0 input read through a broadcast (its one element is the whole tensor)
    "def f(x: f32[4, 8], s: f32[]) -> f32[4, 8] { return x * broadcast_to(s, (4, 8)) }",
]


@pytest.mark.parametrize("source", PROGRAMS)
def test_program_matches_reference(lpu, source: str) -> None:
    lpu.run_and_check(compile_string(source, target="ref").graph, seed=5)


def test_decode_softmax_across_a_chunk_boundary_matches_reference(lpu) -> None:
    """The decode's softmax over T + 1 = 321 keys: a second vector with one valid lane (max pads it with
    a copy of a valid lane, sum with zeros), the reductions' lane trees at a chunk boundary."""
    lpu.run_and_check(lpu.example_graph("llama_decode", L=1, B=1, T=320), seed=1)
