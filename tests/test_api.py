"""The Python API: compiler.compile / compile_string, calling a Program, symbolic dimensions bound at
call time (specialised again per binding, cached), defines, entry selection and prog.ir()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler import ArgumentError, CompileError, Program

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "examples" / "mlp.nk")


def mlp_args(batch: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    shapes = [(batch, 784), (784, 512), (512,), (512, 10)]
    return tuple((rng.standard_normal(s) / 10).astype(np.float32) for s in shapes)


def mlp_numpy(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    logits = np.maximum(x @ w1 + b1, 0) @ w2
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_quick_start() -> None:
    prog = compiler.compile(MLP, target="ref", defines={"B": 8})
    assert isinstance(prog, Program)
    x, w1, b1, w2 = mlp_args(8)
    by_position = prog(x, w1, b1, w2)
    by_name = prog(w2=w2, x=x, b1=b1, w1=w1)
    mixed = prog(x, w1, b1=b1, w2=w2)
    assert isinstance(by_position, np.ndarray) and by_position.shape == (8, 10) and by_position.dtype == np.float32
    np.testing.assert_array_equal(by_position, by_name)
    np.testing.assert_array_equal(by_position, mixed)
    np.testing.assert_allclose(by_position, mlp_numpy(x, w1, b1, w2), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(by_position, prog.reference(x, w1, b1, w2))


def test_program_facts() -> None:
    prog = compiler.compile(MLP)
    assert prog.name == "mlp"
    assert prog.target == "ref"
    assert prog.param_names == ["x", "w1", "b1", "w2"]
    assert compiler.__version__


def test_several_results_come_as_a_tuple() -> None:
    prog = compiler.compile_string("def f(x: f32[3]) -> (f32[3], f32[]) { return x * 2, sum(x) }")
    result = prog(np.ones(3, np.float32))
    assert isinstance(result, tuple) and len(result) == 2
    np.testing.assert_array_equal(result[0], [2, 2, 2])
    assert float(result[1]) == 3.0


def test_lists_and_scalars_are_accepted_as_arguments() -> None:
    prog = compiler.compile_string("def f(x: f64[3], s: f64[]) -> f64[3] { return x * s }")
    np.testing.assert_array_equal(prog([1.0, 2.0, 3.0], 2.0), [2.0, 4.0, 6.0])


def test_symbolic_dimensions_bind_from_argument_shapes() -> None:
    prog = compiler.compile_string("def f(x: f32[N, K], w: f32[K, M]) -> f32[N, M] { return x @ w }")
    assert prog.free_symbols == {"N", "K", "M"}
    with pytest.raises(CompileError, match="dimension 'N' has no value"):
        prog.graph  # nothing binds N yet
    calls = []
    specialize = prog.source.specialize

    def counting(defines, entry):
        calls.append(dict(defines))
        return specialize(defines, entry)

    prog.source.specialize = counting
    for n, k, m in [(2, 3, 4), (5, 3, 1), (2, 3, 4), (5, 3, 1)]:
        x, w = np.ones((n, k), np.float32), np.ones((k, m), np.float32)
        assert prog(x, w).shape == (n, m)
    assert calls == [{"N": 2, "K": 3, "M": 4}, {"N": 5, "K": 3, "M": 1}]  # one specialisation per binding
    assert prog.graph.dims == {"N": 2, "K": 3, "M": 4}  # the first binding is the program's graph


def test_const_defaults_are_rebound_by_argument_shapes() -> None:
    prog = compiler.compile(MLP)  # B = 8 by default
    assert prog.graph.dims == {"B": 8}
    x, w1, b1, w2 = mlp_args(3)
    assert prog(x, w1, b1, w2).shape == (3, 10)


def test_defines_fix_a_dimension() -> None:
    prog = compiler.compile(MLP, defines={"B": 2})
    assert prog.graph.dims == {"B": 2}
    assert "dims(B=2)" in prog.ir("graph")
    with pytest.raises(ArgumentError, match=r"argument 'x' has shape \[3, 784\], expected \[2, 784\]"):
        prog(*mlp_args(3))


def test_defines_choose_a_dtype() -> None:
    source = "const DT = f32\ndef f(x: DT[2]) -> DT[2] { return x + 1 }"
    prog = compiler.compile_string(source, defines={"DT": "f16"})
    assert prog(np.zeros(2, np.float16)).dtype == np.float16


def test_entry_selection() -> None:
    source = "def first(x: f32[2]) -> f32[2] { return x + 1 }\ndef second(x: f32[2]) -> f32[2] { return x * 3 }"
    assert compiler.compile_string(source).name == "second"
    prog = compiler.compile_string(source, entry="first")
    assert prog.name == "first"
    np.testing.assert_array_equal(prog(np.ones(2, np.float32)), [2, 2])
    with pytest.raises(CompileError, match="no function named 'third'"):
        compiler.compile_string(source, entry="third")


def test_ir_graph_and_dot() -> None:
    prog = compiler.compile(MLP, defines={"B": 4})
    text = prog.ir("graph")
    assert text.startswith("graph @mlp(")
    assert "%x: f32[4,784]" in text and "{weight}" in text and "return %" in text
    assert prog.ir() == text
    assert "digraph" in prog.ir("dot")
    assert prog.emit_kinds[:2] == ("graph", "dot")
    with pytest.raises(CompileError, match="cannot emit 'nonsense'"):
        prog.ir("nonsense")


def test_saved_graph_compiles_again(tmp_path: Path) -> None:
    prog = compiler.compile(MLP, defines={"B": 2})
    saved = tmp_path / "mlp.graph"
    saved.write_text(prog.ir("graph"))
    again = compiler.compile(saved)
    assert again.name == "mlp" and again.param_names == prog.param_names
    args = mlp_args(2)
    np.testing.assert_array_equal(again(*args), prog(*args))
    with pytest.raises(CompileError, match="saved graph with fixed shapes"):
        compiler.compile(saved, defines={"B": 3})


def test_errors_are_exceptions_with_diagnostics(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as caught:
        compiler.compile(tmp_path / "missing.nk")
    assert "cannot read" in caught.value.format()
    bad = tmp_path / "bad.nk"
    bad.write_text("def f(x: f32[2]) -> f32[2] {\n    return y\n}\n")
    with pytest.raises(CompileError) as caught:
        compiler.compile(bad)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.loc.line == 2 and diagnostic.loc.col == 12
    assert diagnostic.message == "unknown name 'y'"
    assert str(caught.value) == caught.value.format()


def test_unknown_target() -> None:
    with pytest.raises(compiler.NicheError, match="unknown target 'nonesuch'"):
        compiler.compile(MLP, target="nonesuch")
