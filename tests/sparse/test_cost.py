"""Per-format pricing terms (targets.sparse_cost) and the CPU model and counts that use them."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import compile_string
from ir.types import Format
from targets.base import get_target
from targets.counts import count_graph
from targets.sparse_cost import matmul_terms, sparse_terms

N = 1024


def test_terms_per_format_from_bound_data(random_matrix) -> None:
    rng = np.random.default_rng(0)
    data = random_matrix(rng, (64, 128), 0.1)
    nnz = int(np.count_nonzero(data))
    csr = sparse_terms("w", Format("csr"), 64, 128, 16, 4, data)
    assert csr.useful_flops == csr.executed_flops == 2 * nnz * 16
    assert csr.value_bytes == 4 * nnz and csr.index_bytes == 4 * nnz + 4 * 65 and csr.known
    bsr = sparse_terms("w", Format("bsr", block=(8, 8)), 64, 128, 16, 4, data)
    assert bsr.executed_flops > bsr.useful_flops and bsr.reuse == 8 and bsr.stored % 64 == 0
    nm = sparse_terms("w", Format("nm", n=2, m=4), 64, 128, 16, 4, None)
    assert nm.executed_flops == 2 * 64 * 64 * 16 and nm.index_bytes == 64 * 64 and nm.known
    unknown = sparse_terms("w", Format("csr"), 64, 128, 16, 4, None)
    assert unknown.density == 1.0 and not unknown.known  # no data: an upper bound


def test_imbalance_comes_from_the_row_counts(random_matrix) -> None:
    even = sparse_terms("w", Format("csr"), 256, 256, 8, 4, np.ones((256, 256), np.float32))
    assert even.imbalance == pytest.approx(1.0, abs=0.02)
    skewed = np.zeros((256, 256), np.float32)
    skewed[0] = 1.0  # one full row: its chunk cannot be split
    skewed[1:, 0] = 1.0
    lopsided = sparse_terms("w", Format("csr"), 256, 256, 8, 4, skewed)
    assert lopsided.imbalance > 1.1


def test_matmul_terms_follow_the_orientation(random_matrix) -> None:
    rng = np.random.default_rng(1)
    data = random_matrix(rng, (32, 48), 0.2)
    text = "def f(x: f32[5, 32], @weight w: f32[32, 48]<bsr(4, 2)>) -> f32[5, 48] { return x @ w }"
    graph = compile_string(text, weights={"w": data}, passes="").graph
    matmul = next(n for n, node in graph.nodes() if node.op == "matmul")
    terms = matmul_terms(graph, matmul)
    assert (terms.rows, terms.k, terms.cols) == (48, 32, 5)  # S = W^T
    assert terms.format == "bsr(2,4)" and terms.density == pytest.approx(np.count_nonzero(data) / data.size)
    counted = [k for k in count_graph(graph).kernels if k.sparse is not None]
    assert len(counted) == 1 and counted[0].sparse == terms


def _cpu_latency(data: np.ndarray, fmt: str) -> float:
    annotation = "" if fmt == "dense" else f"<{fmt}>"
    text = f"def f(@weight w: f32[{N}, {N}]{annotation}, x: f32[{N}, 64]) -> f32[{N}, 64] {{ return w @ x }}"
    program = compile_string(text, target="cpu", weights={"w": data}, for_pricing=True, passes="")
    return get_target("cpu").estimate(program.artifact).latency


def test_cpu_model_prices_each_format_of_the_same_weight(random_matrix) -> None:
    rng = np.random.default_rng(2)
    sparse = random_matrix(rng, (N, N), 0.01)
    half = random_matrix(rng, (N, N), 0.5)
    dense = _cpu_latency(sparse, "dense")
    assert _cpu_latency(sparse, "csr") < dense / 5  # 99% zeros: CSR wins by far
    assert _cpu_latency(half, "csr") > _cpu_latency(half, "dense") / 2  # half full: little or no gain
    assert _cpu_latency(sparse, "bsr(16,16)") > _cpu_latency(sparse, "csr")  # scattered: blocks hold zeros


def test_compiled_sparse_kernels_are_priced_from_their_loops(random_matrix) -> None:
    rng = np.random.default_rng(3)
    data = random_matrix(rng, (256, 256), 0.05)
    text = "def f(@weight w: f32[256, 256]<csr>, x: f32[256, 32]) -> f32[256, 32] { return relu(w @ x) }"
    program = compile_string(text, target="cpu", weights={"w": data}, passes="canonicalize,fuse-epilogue")
    report = get_target("cpu").estimate(program.artifact)
    (kernel,) = report.kernels  # one kernel: the sparse matmul with its relu
    nnz = np.count_nonzero(data)
    assert kernel.cost.flops_useful == pytest.approx(2 * nnz * 32 + 256 * 32, rel=0.01)  # + the relu
    assert kernel.cost.flops_executed == pytest.approx(2 * nnz * 32 + 256 * 32, rel=0.01)
