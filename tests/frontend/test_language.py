"""The language's meaning: bindings, tuples, loops, user functions, shape polymorphism, constants and -D,
dtype aliases, the prelude, decorators and formats, checked by running programs against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compiler import CompileError, compile_string
from compiler.driver import Source
from ir.graph import Graph
from ir.types import Format


def frontend_graph(source: str, defines: dict | None = None) -> Graph:
    """The graph as the IR generator builds it, before any graph pass."""
    return Source.from_text(source).specialize(defines or {}, None)


def ops_of(source: str) -> list[str]:
    return [node.op for _, node in frontend_graph(source).nodes()]


def test_let_bindings_and_rebinding() -> None:
    prog = compile_string("def f(x: f32[3]) -> f32[3] {\n    y = x + 1\n    y = y * y\n    return y\n}")
    x = np.array([0.0, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(prog(x), (x + 1) ** 2)


def test_tuples_unpack_index_and_concatenate() -> None:
    prog = compile_string(
        "def f(x: f32[4]) -> (f32[2], f32[2]) {\n"
        "    parts = split(x, 2)\n"
        "    a, b = parts\n"
        "    both = (a,) + (b,)\n"
        "    return both[1], parts[-2]\n}")
    x = np.arange(4, dtype=np.float32)
    first, second = prog(x)
    np.testing.assert_array_equal(first, [2, 3])
    np.testing.assert_array_equal(second, [0, 1])


def test_compile_time_arithmetic_folds() -> None:
    source = ("const H = 4\nconst Dh = 8\nconst D = H * Dh\n"
              "def f(x: f32[2, D]) -> f32[2, H, Dh] {\n"
              "    n = (D // H) % 5 + 2 ** 2 - len((1, 2))\n"
              "    return reshape(x, (2, H, D // H)) * n\n}")
    prog = compile_string(source)
    assert ops_of(source).count("constant") == 1  # (8 // ... ) folded to one number
    x = np.ones((2, 32), np.float32)
    np.testing.assert_array_equal(prog(x), np.full((2, 4, 8), 3 + 4 - 2))


def test_for_loop_over_range_and_tuples() -> None:
    source = (
        "def f(x: f32[3], w: f32[3, 3, 3]) -> f32[3] {\n"
        "    h = x\n"
        "    for l in range(3) {\n        h = relu(h @ w[l])\n    }\n"
        "    total = 0.0\n"
        "    for scale in (1.0, 2.0) {\n        total = total + scale\n    }\n"
        "    for i in range(5, 1, -2) {\n        total = total + i\n    }\n"
        "    return h * total\n}")
    prog = compile_string(source)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(3).astype(np.float32), rng.standard_normal((3, 3, 3)).astype(np.float32)
    h = x
    for layer in range(3):
        h = np.maximum(h @ w[layer], 0)
    np.testing.assert_allclose(prog(x, w), h * (3.0 + 5 + 3), rtol=1e-5)
    assert ops_of(source).count("matmul") == 3  # the loop is unrolled


def test_user_functions_defaults_keywords_and_results() -> None:
    prog = compile_string(
        "def affine(x, w, b=0.0, scale: float = 1.0) { return (x @ w + b) * scale }\n"
        "def pair(x) { return x, -x }\n"
        "def f(x: f32[2, 3], w: f32[3, 4]) -> (f32[2, 4], f32[2, 4]) {\n"
        "    p, n = pair(affine(x, w, scale=2.0))\n"
        "    return p, affine(x, b=1.0, w=w)\n}")
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    p, q = prog(x, w)
    np.testing.assert_allclose(p, (x @ w) * 2, rtol=1e-5)
    np.testing.assert_allclose(q, x @ w + 1, rtol=1e-5)


def test_shape_polymorphism_binds_dimensions_per_call() -> None:
    prog = compile_string(
        "def head(x: f32[N, M], k: int) -> f32[K] { return x[0, :k] }\n"  # K binds from the result
        "def outer(a: f32[N], b: f32[M]) -> f32[N, M] { return reshape(a, (N, 1)) * reshape(b, (1, M)) }\n"
        "def f(x: f32[3], y: f32[5]) -> (f32[3, 5], f32[5, 3], f32[2]) {\n"
        "    m = outer(x, y)\n"
        "    return m, outer(y, x), head(m, 2)\n}")
    x, y = np.arange(3, dtype=np.float32), np.arange(5, dtype=np.float32)
    m, t, h = prog(x, y)
    np.testing.assert_array_equal(m, np.outer(x, y))
    np.testing.assert_array_equal(t, np.outer(y, x))
    np.testing.assert_array_equal(h, np.outer(x, y)[0, :2])


def test_static_typed_parameters() -> None:
    with pytest.raises(CompileError, match="argument 'k' of 'g' must be a compile-time int, got the float 2.5"):
        compile_string("def g(x, k: int) { return x * k }\ndef f(x: f32[2]) -> f32[2] { return g(x, 2.5) }")


def test_conditional_expression_evaluates_only_the_chosen_side() -> None:
    source = ("const N = 4\n"
              "def f(x: f32[N]) -> f32[N] {\n"
              "    return x * 2.0 if N > 2 else undefined_name\n}")
    x = np.ones(4, np.float32)
    np.testing.assert_array_equal(compile_string(source)(x), 2 * x)
    with pytest.raises(CompileError, match="unknown name 'undefined_name'"):
        compile_string(source, defines={"N": 2}).graph


def test_defines_override_consts_and_derived_consts_follow() -> None:
    source = "const H = 2\nconst D = H * 3\ndef f(x: f32[D]) -> f32[D] { return x }"
    assert frontend_graph(source).dims == {"H": 2, "D": 6}
    assert frontend_graph(source, {"H": 5}).dims == {"H": 5, "D": 15}
    assert frontend_graph(source, {"D": 7}).dims == {"H": 2, "D": 7}


def test_float_defines_and_consts() -> None:
    prog = compile_string("const EPS = 1e-5\ndef f(x: f32[2]) -> f32[2] { return x + EPS }", defines={"EPS": 0.5})
    np.testing.assert_array_equal(prog(np.zeros(2, np.float32)), [0.5, 0.5])


@pytest.mark.parametrize("define, dtype", [(None, np.float32), ("f16", np.float16), ("bf16", np.float32),
                                           ("f64", np.float64)])
def test_dtype_alias_consts(define: str | None, dtype: type) -> None:
    source = ("const DT = f32\n"
              "def g(x: DT[N]) -> DT[N] { return x * 2 }\n"
              "def f(x: DT[3]) -> DT[3] { return cast(g(x), DT) }")
    prog = compile_string(source, defines={"DT": define} if define else None)
    x = np.array([1.0, 2.0, 3.0], dtype)
    y = prog(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, 2 * x)
    if define == "bf16":
        graph = frontend_graph(source, {"DT": define})
        assert str(graph.node(graph.params[0]).type) == "bf16[3]"


def test_bool_tensor_types() -> None:
    prog = compile_string("def g(m: bool[N], x) { return where(m, x, 0.0) }\n"
                          "def f(m: bool[3], x: f32[3]) -> f32[3] { return g(m, x) }")
    np.testing.assert_array_equal(prog(np.array([True, False, True]), np.ones(3, np.float32)), [1, 0, 1])


def test_scalars_and_rank_zero_tensors() -> None:
    prog = compile_string("def f(x: f32[], y: f32) -> f32[] { return x * y + 1 }")
    assert float(prog(np.float32(2.0), np.float32(3.0))) == 7.0


def test_constants_are_shared() -> None:
    assert ops_of("def f(x: f32[2]) -> f32[2] { return x * 2.0 + 2.0 * x - 2.0 }").count("constant") == 1


def test_tensor_literals() -> None:
    prog = compile_string("def f(x: f32[2, 2]) -> (f32[2, 2], i64[3], bool[2]) {\n"
                          "    return (x @ tensor(((1, 2), (3, 4)), f32), tensor((1, 2, 3), i64),\n"
                          "            tensor((true, false)))\n}")
    x = np.eye(2, dtype=np.float32)
    a, b, c = prog(x)
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])
    assert b.dtype == np.int64 and c.dtype == np.bool_
    with pytest.raises(CompileError, match="different lengths"):
        compile_string("def f(x: f32[2]) -> f32[2] { return x + tensor(((1, 2), (3,))) }")


# -- the prelude -----------------------------------------------------------------------------------

def test_prelude_softmax_layernorm_rmsnorm() -> None:
    prog = compile_string(
        "def f(x: f64[3, 5], g: f64[5], b: f64[5]) -> (f64[3, 5], f64[3, 5], f64[3, 5], f64[3, 5]) {\n"
        "    return softmax(x), softmax(x, axis=0), layernorm(x, g, b), rmsnorm(x, g, eps=1e-3)\n}")
    rng = np.random.default_rng(2)
    x, g, b = rng.standard_normal((3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    s1, s0, ln, rms = prog(x, g, b)

    def softmax(v: np.ndarray, axis: int) -> np.ndarray:
        e = np.exp(v - v.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    np.testing.assert_allclose(s1, softmax(x, -1), rtol=1e-12)
    np.testing.assert_allclose(s0, softmax(x, 0), rtol=1e-12)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(ln, (x - mu) / np.sqrt(var + 1e-5) * g + b, rtol=1e-10)
    np.testing.assert_allclose(rms, x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-3) * g, rtol=1e-10)


def test_softmax_is_stable_for_large_inputs() -> None:
    prog = compile_string("def f(x: f32[3]) -> f32[3] { return softmax(x) }")
    np.testing.assert_allclose(prog(np.array([1000.0, 1000.0, -1000.0], np.float32)), [0.5, 0.5, 0.0])


@pytest.mark.parametrize("rows, cols", [(4, 4), (1, 5), (2, 6)])
def test_causal_mask(rows: int, cols: int) -> None:
    prog = compile_string(f"def f(x: f32[1]) -> bool[{rows}, {cols}] {{ return causal_mask({rows}, {cols}) }}")
    expected = np.tril(np.ones((rows, cols), bool), k=cols - rows)
    np.testing.assert_array_equal(prog(np.zeros(1, np.float32)), expected)


def test_user_functions_may_shadow_the_prelude() -> None:
    prog = compile_string("def softmax(x, axis=-1) { return x * 0.0 }\n"
                          "def f(x: f32[2]) -> f32[2] { return softmax(x) }")
    np.testing.assert_array_equal(prog(np.ones(2, np.float32)), [0, 0])


# -- decorators and formats --------------------------------------------------------------------------

def test_weight_tokens_and_formats_reach_the_graph() -> None:
    source = (
        "const B = 2\n"
        "@tokens(B * 3, users=B)\n"
        "def f(x: f32[B, 4], @weight w: f32[4, 4]<csr>, @weight v: f32[4, 8]<bsr(2, 4)>,\n"
        "      @weight n: f32[4, 4]<2:4>, @weight c: f32[4, 4]<csc>) -> f32[B, 8] {\n"
        "    return x @ w @ c @ n @ v\n}")
    prog = compile_string(source)
    graph = frontend_graph(source)
    params = [graph.node(p) for p in graph.params]
    assert [bool(p.attr("weight")) for p in params] == [False, True, True, True, True]
    assert [p.type.format for p in params[1:]] == [Format("csr"), Format("bsr", block=(2, 4)),
                                                 Format("nm", n=2, m=4), Format("csc")]
    assert graph.attributes == {"tokens": 6, "users": 2}
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(graph.node(p).type.shape).astype(np.float32) for p in graph.params]
    x, w, v, n, c = args
    n[:, 2:] = 0.0  # a <2:4> parameter holds at most 2 non-zeros of every 4 (docs/sparsity.md)
    np.testing.assert_allclose(prog(*args), x @ w @ c @ n @ v, rtol=1e-4)  # the meaning is dense


@pytest.mark.parametrize("fmt, message", [
    ("<bsr>", "bsr needs a block shape"),
    ("<csr(2)>", "<csr> takes no arguments"),
    ("<4:2>", "N:M format needs 0 < N <= M"),
    ("<coo>", "unknown storage format 'coo'"),
])
def test_bad_formats(fmt: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        compile_string(f"def f(@weight w: f32[4, 4]{fmt}) -> f32[4, 4] {{ return w }}")


def test_sparse_formats_need_matrices() -> None:
    with pytest.raises(CompileError, match=r"sparse format <csr> needs a matrix \(rank 2\), not rank 1"):
        compile_string("def f(@weight w: f32[4]<csr>) -> f32[4] { return w }")


def test_tokens_decorator_checks_its_arguments() -> None:
    with pytest.raises(CompileError, match="@tokens takes the number of tokens"):
        compile_string("@tokens(1, 2)\ndef f(x: f32[2]) -> f32[2] { return x }")
    with pytest.raises(CompileError, match="users must be a positive int"):
        compile_string("@tokens(1, users=0)\ndef f(x: f32[2]) -> f32[2] { return x }")


def test_entry_selection() -> None:
    source = "def a(x: f32[2]) -> f32[2] { return x + 1 }\ndef b(x: f32[2]) -> f32[2] { return x * 3 }"
    x = np.ones(2, np.float32)
    np.testing.assert_array_equal(compile_string(source)(x), [3, 3])
    np.testing.assert_array_equal(compile_string(source, entry="a")(x), [2, 2])


def test_math_constants() -> None:
    prog = compile_string("def f(x: f64[1]) -> f64[1] { return x + pi }")
    assert prog(np.zeros(1))[0] == math.pi


def test_result_types_of_helpers_mean_the_arguments_dimensions() -> None:
    source = ("def twice(x: f32[N]) -> f32[N] { return concat((x, x)) }\n"
              "def f(x: f32[3]) -> f32[6] { return twice(x) }")
    with pytest.raises(CompileError, match=r"result 0 of 'twice' has type f32\[6\], but the signature says f32\[3\]"):
        compile_string(source)
    good = ("def twice(x: f32[N], k: int) -> f32[2 * N, k] {\n"
            "    return broadcast(reshape(concat((x, x)), (2 * N, 1)), (2 * N, k))\n}\n"
            "def f(x: f32[3]) -> f32[6, 2] { return twice(x, 2) }")
    np.testing.assert_array_equal(compile_string(good)(np.arange(3, dtype=np.float32)),
                                  np.repeat(np.tile(np.arange(3), 2)[:, None], 2, axis=1))
