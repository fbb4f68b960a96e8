"""The simulator's arithmetic where order matters: the MXM adds a dot product's terms one k after the
other (the systolic array's order, continued across k blocks through the accumulator), and a bf16
program's f32 results (llama prefill's logits) equal the reference's where a different order used to
flip near-ties of the bf16 rounding."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.driver import compile_string
from ir.graph import Graph
from targets.lpu.listing import print_listing

TINY = np.float32(2.0**-24)  # half an f32 ulp of 1.0: 1 + TINY rounds back to 1 (ties to even)


def matvec_graph(k: int) -> Graph:
    source = f"def dot(x: f32[1, {k}], w: f32[{k}, 1]) -> f32[1, 1] {{\n    return x @ w\n}}\n"
    return compile_string(source, target="ref").graph


@pytest.mark.parametrize("k", [64, 700])  # one k block; three blocks chained through the accumulator
def test_mvm_adds_terms_in_k_order(lpu, k: int) -> None:
    """1 + TINY + TINY + ... in k order stays 1; any tree (or per-block sums added at the end) collects
    the TINYs first and ends above 1."""
    graph = matvec_graph(k)
    x = np.full((1, k), TINY, np.float32)
    x[0, 0] = 1.0
    inputs = {"x": x, "w": np.ones((k, 1), np.float32)}
    result = lpu.build(graph)
    (out,) = lpu.simulate_listing(print_listing(result.program), inputs)
    assert out[0, 0] == np.float32(1.0)
    assert np.float32(1.0) + np.float32(k - 1) * TINY > 1.0  # the other orders would show


def test_llama_prefill_bf16_logits_match_the_reference(lpu) -> None:
    """The default-size example (bf16): with the MVM's old order one matmul output rounded a near-tie the
    other way, and the flip spread to a third of the f32 logits through two layers."""
    lpu.run_and_check(lpu.example_graph("llama_prefill"))
