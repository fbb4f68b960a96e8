"""Unstructured sparsity: a PE fires only on the non-zero weights it holds, so FMACs and weight memory
scale with the non-zeros, in the compiled programs and in the price."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.checking import compare
from compiler.driver import compile, compile_string
from targets.base import CompileOptions, get_target
from targets.wse.isa import Fmac, Load

SOURCE = """
def layer(x: f32[4, 64], @weight w: f32[64, 96]) {
    return relu(x @ w)
}
"""


def _sparse_weight(density: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((64, 96)).astype(np.float32)
    w[rng.random(w.shape) >= density] = 0.0
    return w


def _compiled(weight: np.ndarray | None):
    program = compile_string(SOURCE, target="ref")
    graph = program.graph
    if weight is not None:
        graph.weight_data["w"] = weight
    artifact = get_target("wse").compile(graph, CompileOptions(target="wse", extra={"mesh": "8x8", "tile": 16}))
    return program, graph, artifact


def _macs_and_weight_bytes(artifact) -> tuple[int, int]:
    programs = artifact.program.programs.values()
    macs = sum(i.macs for p in programs for i in p.instrs if isinstance(i, Fmac))
    stored = sum(i.dst.nbytes for p in programs for i in p.instrs if isinstance(i, Load) and i.kind == "weight")
    return macs, stored


def test_fmacs_and_weight_memory_scale_with_the_non_zeros() -> None:
    _, _, dense = _compiled(None)
    dense_macs, dense_bytes = _macs_and_weight_bytes(dense)
    assert dense_macs == 4 * 64 * 96 and dense_bytes == 64 * 96 * 4
    weight = _sparse_weight(0.1)
    nonzeros = int(np.count_nonzero(weight))
    _, _, sparse = _compiled(weight)
    macs, stored = _macs_and_weight_bytes(sparse)
    assert macs == pytest.approx(4 * nonzeros, abs=4 * len(sparse.program.programs))  # rounding per tile
    assert stored == nonzeros * (4 + 2)  # value + 16-bit index per non-zero
    assert macs < 0.15 * dense_macs and stored < 0.2 * dense_bytes


def test_sparse_weights_compute_the_same_values() -> None:
    weight = _sparse_weight(0.1, seed=3)
    program, graph, artifact = _compiled(weight)
    x = np.random.default_rng(4).standard_normal((4, 64)).astype(np.float32)
    got = artifact.run({"x": x, "w": weight})[0]
    want = program.run({"x": x, "w": weight})[0]
    assert compare(got, want, graph.node(graph.outputs[0]).type.dtype).ok


def test_denser_data_is_stored_dense() -> None:
    _, _, artifact = _compiled(_sparse_weight(0.9))
    macs, stored = _macs_and_weight_bytes(artifact)
    assert stored == 64 * 96 * 4  # values + indices would take more than the dense tile
    assert macs == 4 * 64 * 96


def test_declared_format_without_data_uses_the_density_option() -> None:
    source = SOURCE.replace("f32[64, 96]", "f32[64, 96]<csr>")
    low = compile_string(source, target="wse", mesh="8x8", tile=16, density=0.25).artifact
    assumed = compile_string(source, target="wse", mesh="8x8", tile=16).artifact
    structured = compile_string(SOURCE.replace("f32[64, 96]", "f32[64, 96]<2:4>"), target="wse", mesh="8x8",
                                tile=16).artifact
    dense_macs = 4 * 64 * 96
    assert _macs_and_weight_bytes(low)[0] == pytest.approx(0.25 * dense_macs, rel=0.02)
    assert _macs_and_weight_bytes(assumed)[0] == dense_macs  # no data, no option: assumed dense
    assert _macs_and_weight_bytes(structured)[0] == pytest.approx(0.5 * dense_macs, rel=0.02)


def test_price_of_a_90_percent_sparse_mlp_shows_the_gain() -> None:
    sizes = {"N": 16, "D": 4096, "F": 14336}
    sparse = compile("examples/sparse_mlp.nk", target="wse", defines=sizes, for_pricing=True, density=0.1)
    dense = compile("examples/sparse_mlp.nk", target="wse", defines=sizes, for_pricing=True, density=1.0)
    target = get_target("wse")
    sparse_report, dense_report = target.estimate(sparse.artifact), target.estimate(dense.artifact)
    assert "sparsity:" in sparse_report.explanation
    assert "sparse weights" in " ".join(sparse_report.assumptions)
    ratio = sparse_report.total.flops_executed / dense_report.total.flops_executed
    assert ratio < 0.45  # three of the four weights at 10%, w_gate at 2:4
    assert sparse_report.total.flops_useful == pytest.approx(dense_report.total.flops_useful)
    sram = sparse_report.total.bytes.get("mem:sram") / dense_report.total.bytes.get("mem:sram")
    assert sram < 0.6
