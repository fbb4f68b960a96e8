"""Sparse matmul kernels on the CPU target against the dense reference interpreter.

One program per (format, side, columns) with a fused epilogue (bias + relu), called with sparse
arguments at run time (no recompilation per matrix: the number of stored values is a run-time size),
at densities 0% to 100%, with empty rows, a single row, and block shapes that do not divide the
matrix; SpMV (one column) and SpMM (13 columns: a masked vector tail), the sparse operand on the left
(W @ X) and on the right (X @ W, stored transposed). Weights bound at compile time go through the
same kernels with exact buffer sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler import ArgumentError, compile_string
from compiler.checking import compare
from ir.types import Format

FORMATS = ["csr", "csc", "bsr(3, 2)", "2:4"]
M, K = 7, 10  # neither divisible by the 3x2 blocks' rows, nor K by 4 (2:4's last group has 2 columns)
DENSITIES = [0.0, 0.01, 0.1, 0.5, 0.9, 1.0]


def source(fmt: str, left: bool, cols: int, rows: int = M) -> str:
    if left:
        return (f"def f(x: f32[{K}, {cols}], @weight w: f32[{rows}, {K}]<{fmt}>, b: f32[{cols}]) -> f32[{rows}, {cols}] "
                "{ return relu(w @ x + b) }")
    return (f"def f(x: f32[{cols}, {K}], @weight w: f32[{K}, {rows}]<{fmt}>, b: f32[{rows}]) -> f32[{cols}, {rows}] "
            "{ return relu(x @ w + b) }")


def weight(rng: np.random.Generator, fmt: str, shape: tuple[int, int], density: float, random_matrix,
           random_nm) -> np.ndarray:
    if fmt == "2:4":
        return random_nm(rng, shape, 2, 4, fill=density)
    return random_matrix(rng, shape, density)


def expected(x: np.ndarray, w: np.ndarray, b: np.ndarray, left: bool) -> np.ndarray:
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    return np.maximum((w64 @ x64 if left else x64 @ w64) + b, 0)


@pytest.mark.parametrize("cols", [1, 13], ids=["spmv", "spmm"])
@pytest.mark.parametrize("left", [True, False], ids=["w@x", "x@w"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_run_time_sparse_arguments_match_the_dense_reference(fmt: str, left: bool, cols: int, sparse_cache,
                                                            random_matrix, random_nm) -> None:
    sparse = pytest.importorskip("scipy.sparse")
    program = compile_string(source(fmt, left, cols), target="cpu", cache_dir=sparse_cache)
    kernels = [k for k in program.artifact.program.kernels.values() if k.attr("kind") == "sparse_matmul"]
    assert len(kernels) == 1 and kernels[0].attr("group") is not None  # the epilogue is fused into it
    rng = np.random.default_rng(hash((fmt, left, cols)) % 2**32)
    w_shape = (M, K) if left else (K, M)
    for density in DENSITIES:
        w = weight(rng, fmt, w_shape, density, random_matrix, random_nm)
        x = rng.standard_normal((K, cols) if left else (cols, K)).astype(np.float32)
        b = rng.standard_normal(cols if left else M).astype(np.float32)
        want = expected(x, w, b, left)
        passed = [w, sparse.csr_matrix(w), sparse.csc_matrix(w)] if fmt != "2:4" else [w]
        for value in passed:
            got = program(x, value, b)
            result = compare(got, want, program.graph.node(program.graph.outputs[0]).type.dtype)
            assert result.ok, f"{fmt} density {density} ({type(value).__name__}): {result.message}"
    assert len(program._cache) == 1  # nnz is a run-time size: no specialisation per matrix


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_rows_single_row_and_tuple_arguments(fmt: str, sparse_cache, random_matrix, random_nm) -> None:
    rng = np.random.default_rng(5)
    w = weight(rng, fmt, (M, K), 0.5, random_matrix, random_nm)
    w[[0, 3, 6]] = 0.0  # empty rows, first and last among them
    program = compile_string(source(fmt, True, 9), target="cpu", cache_dir=sparse_cache)
    x = rng.standard_normal((K, 9)).astype(np.float32)
    b = np.zeros(9, np.float32)
    from ir.sparse import from_dense
    declared = {"csr": Format("csr"), "csc": Format("csc"), "bsr(3, 2)": Format("bsr", block=(3, 2)),
                "2:4": Format("nm", n=2, m=4)}[fmt]
    matrix = from_dense(w, declared)
    arrays = (matrix.values, matrix.indices) if fmt == "2:4" else (matrix.values, matrix.indices, matrix.pointers)
    assert np.allclose(program(x, arrays, b), expected(x, w, b, True), rtol=1e-5, atol=1e-5)
    single = compile_string(source(fmt, True, 9, rows=1), target="cpu", cache_dir=sparse_cache)
    assert np.allclose(single(x, w[1:2], b), expected(x, w[1:2], b, True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("left", [True, False], ids=["w@x", "x@w"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_bound_weights_bake_their_storage_into_the_program(fmt: str, left: bool, sparse_cache, random_matrix,
                                                          random_nm) -> None:
    rng = np.random.default_rng(6)
    w = weight(rng, fmt, (M, K) if left else (K, M), 0.3, random_matrix, random_nm)
    program = compile_string(source(fmt, left, 5), target="cpu", cache_dir=sparse_cache, weights={"w": w},
                             passes="canonicalize,cse,dce,fuse-epilogue")
    assert program.param_names == ["x", "b"]
    buffers = program.artifact.program.inputs
    assert "w" not in buffers and any(name.startswith("w_") for name in buffers)
    values = program.artifact.program.buffers[buffers[1]]
    if fmt in ("csr", "csc"):
        assert values.shape == (np.count_nonzero(w),)  # exactly the non-zeros: nnz known at compile time
    x = rng.standard_normal((K, 5) if left else (5, K)).astype(np.float32)
    b = rng.standard_normal(5 if left else M).astype(np.float32)
    assert np.allclose(program(x, b), expected(x, w, b, left), rtol=1e-5, atol=1e-5)
    with pytest.raises(ArgumentError, match="'w' is a weight bound at compile time"):
        program(x, w=w, b=b)


def test_batched_dense_operand_and_a_weight_read_twice(sparse_cache, random_matrix) -> None:
    rng = np.random.default_rng(7)
    text = ("def f(x: f32[2, 10, 6], @weight w: f32[10, 10]<csr>) -> f32[2, 10, 6] "
            "{ return w @ x + transpose(w) @ x + w[:, 0:6] }")
    program = compile_string(text, target="cpu", cache_dir=sparse_cache)
    w = random_matrix(rng, (10, 10), 0.3)
    x = rng.standard_normal((2, 10, 6)).astype(np.float32)
    want = w.astype(np.float64) @ x + w.T.astype(np.float64) @ x + w[:, 0:6]
    assert np.allclose(program(x, w), want, rtol=1e-5, atol=1e-5)
    storages = {k.attr("sparse")[2] for k in program.artifact.program.kernels.values() if k.attr("sparse")}
    assert storages == {"direct", "transposed"}  # W and W^T, each row-compressed
    assert "w" in program.artifact.program.inputs  # the slice reads the dense matrix too


def test_half_precision_weights_accumulate_in_f32(sparse_cache, random_matrix) -> None:
    rng = np.random.default_rng(8)
    text = "def f(x: f16[32, 16], @weight w: f16[24, 32]<csr>) -> f16[24, 16] { return w @ x }"
    program = compile_string(text, target="cpu", cache_dir=sparse_cache)
    w = random_matrix(rng, (24, 32), 0.2).astype(np.float16)
    x = rng.standard_normal((32, 16)).astype(np.float16)
    got = program(x, w)
    result = compare(got, program.reference(x, w), program.graph.node(program.graph.outputs[0]).type.dtype)
    assert result.ok, result.message


def test_malformed_arguments_are_argument_errors(sparse_cache) -> None:
    program = compile_string(source("csr", True, 3), target="cpu", cache_dir=sparse_cache)
    x, b = np.ones((K, 3), np.float32), np.ones(3, np.float32)
    values = np.ones(2, np.float32)
    cases = [
        ((values, np.array([3, 1]), np.array([0, 2, 2, 2, 2, 2, 2, 2])), "unsorted column indices in row 0"),
        ((values, np.array([1, 10]), np.array([0, 2, 2, 2, 2, 2, 2, 2])), "column index 10 .* out of range"),
        ((values, np.array([1, 2]), np.array([0, 2, 2, 2, 2, 2, 2, 3])), "wrong nnz: pointers end at 3"),
        ((values, np.array([1, 2]), np.array([0, 2, 2])), "pointers must have 8 entries"),
        (np.ones((K, M), np.float32), r"has shape \[10, 7\], expected \[7, 10\]"),
        ((values, np.array([1, 2])), r"a csr matrix as a tuple is \(values, indices, pointers\)"),
    ]
    for value, message in cases:
        with pytest.raises(ArgumentError, match=f"argument 'w' .*{message}"):
            program(x, value, b)
    nm = compile_string(source("2:4", True, 3), target="cpu", cache_dir=sparse_cache)
    with pytest.raises(ArgumentError, match="not 2:4 sparse"):
        nm(x, np.ones((M, K), np.float32), b)


def test_long_2_4_rows_run_in_panels(sparse_cache, random_nm) -> None:
    """K long enough that the N:M kernel walks D in panels (partial sums kept between them), with a
    last block of rows shorter than the others."""
    rng = np.random.default_rng(9)
    text = ("def f(x: f32[1000, 20], @weight w: f32[200, 1000]<2:4>, b: f32[20]) -> f32[200, 20] "
            "{ return relu(w @ x + b) }")
    program = compile_string(text, target="cpu", cache_dir=sparse_cache)
    body = str(program.ir("loops"))
    assert "part" in body  # the panelled loop nest
    w = random_nm(rng, (200, 1000), 2, 4, fill=0.9)
    x = rng.standard_normal((1000, 20)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    result = compare(program(x, w, b), expected(x, w, b, True), program.graph.node(program.graph.outputs[0]).type.dtype)
    assert result.ok, result.message


@pytest.mark.parametrize("left", [True, False], ids=["w@x", "x@w"])
@pytest.mark.parametrize("bound", [True, False], ids=["bound", "argument"])
def test_wide_csr_rows_run_in_panels(left: bool, bound: bool, sparse_cache, random_matrix) -> None:
    """More than 512 columns of S: the CSR kernel walks D in panels, with partial sums per row."""
    rng = np.random.default_rng(10)
    k, rows, cols = 1300, 70, 24
    if left:
        text = (f"def f(x: f32[{k}, {cols}], @weight w: f32[{rows}, {k}]<csr>, b: f32[{cols}]) -> f32[{rows}, {cols}] "
                "{ return relu(w @ x + b) }")
        w, x = random_matrix(rng, (rows, k), 0.3), rng.standard_normal((k, cols)).astype(np.float32)
    else:
        text = (f"def f(x: f32[{cols}, {k}], @weight w: f32[{k}, {rows}]<csr>, b: f32[{rows}]) -> f32[{cols}, {rows}] "
                "{ return relu(x @ w + b) }")
        w, x = random_matrix(rng, (k, rows), 0.3), rng.standard_normal((cols, k)).astype(np.float32)
    w[5] = 0.0  # an empty row (left) or an empty column of S (right)
    b = rng.standard_normal(cols if left else rows).astype(np.float32)
    options = {"weights": {"w": w}, "passes": "canonicalize,fuse-epilogue"} if bound else {}
    program = compile_string(text, target="cpu", cache_dir=sparse_cache, **options)
    assert any(b.name.endswith("_panels") for b in program.artifact.program.buffers.values())
    assert "panel" in str(program.ir("loops"))
    got = program(x, b) if bound else program(x, w, b)
    result = compare(got, expected(x, w, b, left), program.graph.node(program.graph.outputs[0]).type.dtype)
    assert result.ok, result.message
