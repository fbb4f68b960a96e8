"""Binding weights to data: the Python API (arrays, scipy matrices, storage tuples), `--weights FILE.npz`
on the command line (dense and split sparse arrays), and the errors of both."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import ArgumentError, CompileError, compile_string

TEXT = ("def f(x: f32[B, 8], @weight w: f32[8, 6]<csr>, @weight b: f32[6]) -> f32[B, 6] "
        "{ return relu(x @ w + b) }")


def test_bound_weights_bind_dimensions_and_leave_the_arguments(random_matrix) -> None:
    rng = np.random.default_rng(0)
    w, b = random_matrix(rng, (8, 6), 0.4), rng.standard_normal(6).astype(np.float32)
    text = TEXT.replace("f32[8, 6]", "f32[K, 6]").replace("f32[B, 8]", "f32[B, K]")
    program = compile_string(text, weights={"w": w, "b": b})
    assert program.param_names == ["x"]
    x = rng.standard_normal((3, 8)).astype(np.float32)
    assert np.allclose(program(x), np.maximum(x @ w + b, 0), atol=1e-6)
    assert np.allclose(program.reference(x), program(x))


def test_weights_in_sparse_containers() -> None:
    sparse = pytest.importorskip("scipy.sparse")
    w = np.zeros((8, 6), np.float32)
    w[2, 3], w[7, 0] = 1.5, -2.0
    b = np.zeros(6, np.float32)
    m = sparse.csr_matrix(w)
    x = np.ones((1, 8), np.float32)
    for value in (m, (m.data, m.indices, m.indptr)):
        assert np.allclose(compile_string(TEXT, weights={"w": value, "b": b})(x), np.maximum(x @ w, 0))


def test_binding_errors_name_the_weight() -> None:
    with pytest.raises(CompileError, match="'q' is not a parameter of the entry function"):
        compile_string(TEXT, weights={"q": np.ones(3)})
    with pytest.raises(CompileError, match="'x' is a parameter but not a @weight"):
        compile_string(TEXT, weights={"x": np.ones((2, 8))})
    with pytest.raises(CompileError, match=r"<string>:1:.*weight 'w' \(bound at compile time\) has shape \[3, 3\]"):
        compile_string(TEXT, weights={"w": np.ones((3, 3)), "b": np.ones(6)}, defines={"B": 2})
    nm = TEXT.replace("<csr>", "<2:4>")
    with pytest.raises(CompileError, match=r"weight 'w' \(bound at compile time\): not 2:4 sparse"):
        compile_string(nm, weights={"w": np.ones((8, 6))}, defines={"B": 2})
    with pytest.raises(CompileError, match="unsorted column indices"):
        compile_string(TEXT, weights={"w": (np.ones(2), np.array([1, 0]), np.array([0, 2] + [2] * 7))},
                       defines={"B": 2})
    program = compile_string(TEXT, weights={"w": np.zeros((8, 6))}, defines={"B": 2})
    with pytest.raises(ArgumentError, match="'w' is a weight bound at compile time"):
        program(np.ones((2, 8), np.float32), w=np.zeros((8, 6), np.float32), b=np.ones(6, np.float32))


def test_weights_from_an_npz_file_on_the_command_line(tmp_path, niche, random_matrix) -> None:
    rng = np.random.default_rng(1)
    w = random_matrix(rng, (64, 256), 0.02)
    source = tmp_path / "mlp.nk"
    source.write_text("def mlp(x: f32[4, 64], @weight w: f32[64, 256], @weight b: f32[256]) -> f32[4, 256] {\n"
                      "    return relu(x @ w + b)\n}\n")
    dense = tmp_path / "dense.npz"
    np.savez(dense, w=w, b=np.ones(256, np.float32))
    result = niche("run", str(source), "--target", "cpu", "--weights", str(dense), "--check", "--pass-stats")
    assert result.returncode == 0, result.stderr
    assert "matches" in result.stdout
    assert "sparsify: 1 weight changed format on 'cpu'" in result.stderr and "-> csr" in result.stderr
    sparse = pytest.importorskip("scipy.sparse").csr_matrix(w)
    split = tmp_path / "split.npz"
    np.savez(split, **{"w.values": sparse.data, "w.indices": sparse.indices, "w.pointers": sparse.indptr},
             b=np.ones(256, np.float32))
    result = niche("run", str(source), "--target", "cpu", "--weights", str(split), "--check")
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.npz"
    np.savez(bad, w=np.ones((3, 3), np.float32))
    result = niche("run", str(source), "--weights", str(bad))
    assert result.returncode == 1 and "weight 'w' (bound at compile time) has shape [3, 3]" in result.stderr
    result = niche("run", str(source), "--weights", str(tmp_path / "missing.npz"))
    assert result.returncode == 1 and "--weights: no such file" in result.stderr
