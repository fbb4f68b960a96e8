"""canonicalize: every rule fires where it should, keeps types, and leaves values bit-for-bit equal."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.inputs import random_inputs
from ir.dtypes import DType
from ir.graph import Graph
from ir.graph_printer import print_graph
from ir.interpreter import run_graph
from ir.types import TensorType
from passes.context import PassContext


def body_ops(graph: Graph) -> list[str]:
    return [node.op for _, node in graph.nodes() if node.op != "param"]


def assert_bitwise_equal(before: Graph, after: Graph) -> None:
    inputs = random_inputs(before, 1)
    for want, got in zip(run_graph(before, inputs), run_graph(after, inputs)):
        assert want.dtype == got.dtype and want.shape == got.shape
        assert np.array_equal(want, got, equal_nan=True) or np.array_equal(want.view(np.uint8), got.view(np.uint8))


CASES = [
    # (source body over x: f32[4, 8], i: i32[4, 8]; expected ops after canonicalize, rule that fired)
    ("return x * 1.0", [], "mul-by-one"),
    ("return 1.0 * x", [], "mul-by-one"),
    ("return x / 1.0", [], "div-by-one"),
    ("return x - 0.0", [], "sub-zero"),
    ("return x + (-0.0)", [], "add-zero"),
    ("return i + 0", [], "add-zero"),
    ("return i * 0", ["constant"], "mul-by-zero"),
    ("return x ** 2", ["mul"], "pow-two"),
    ("return x ** 1", [], "pow-one"),
    ("return -(-x)", [], "neg-neg"),
    ("return transpose(transpose(x))", [], "transpose-transpose"),
    ("return reshape(reshape(x, (32,)), (8, 4))", ["reshape"], "reshape-reshape"),
    ("return reshape(reshape(x, (32,)), (4, 8))", [], "reshape-reshape"),
    ("return cast(cast(x, f64), f32)", [], "cast-round-trip"),
    ("return where(x > 0.0, x, x)", [], "select-same"),
    ("return exp(x) + (2.0 * 3.0 + 1.0)", ["exp", "constant", "add"], None),
]


@pytest.mark.parametrize("body, expected, rule", CASES, ids=[case[0] for case in CASES])
def test_rule(graph_of, run_passes, body: str, expected: list[str], rule: str | None) -> None:
    graph = graph_of(f"def f(x: f32[4, 8], i: i32[4, 8]) {{ {body} }}")
    ctx = PassContext()
    result = run_passes(graph, "canonicalize", ctx=ctx)
    assert body_ops(result) == expected, print_graph(result)
    if rule is not None:
        assert ctx.stats[0].counters[rule.replace("-", "_")] >= 1
    assert_bitwise_equal(graph, result)


KEPT = [
    "return x + 0.0",  # (-0.0) + 0.0 is +0.0: not the identity on floats
    "return x * 0.0",  # inf * 0 is nan
    "return cast(cast(x, i32), f32)",  # truncates
    "return cast(cast(x, bf16), f32)",  # rounds
    "return transpose(reshape(x, (8, 4)))",  # a transpose that restores the shape still moves elements
]


@pytest.mark.parametrize("body", KEPT)
def test_non_identities_are_kept(graph_of, run_passes, body: str) -> None:
    graph = graph_of(f"def f(x: f32[4, 8]) {{ {body} }}")
    result = run_passes(graph, "canonicalize")
    assert_bitwise_equal(graph, result)
    assert body_ops(result) == body_ops(graph)


def test_a_broadcasting_identity_is_not_removed(graph_of, run_passes) -> None:
    """x[4, 1] * 1.0[4, 8] has the shape [4, 8]: replacing it by x would lose the broadcast."""
    graph = graph_of("def f(x: f32[4, 1]) { return x * ones((4, 8)) }")
    result = run_passes(graph, "canonicalize")
    assert [node.type.shape for _, node in result.nodes() if node.op == "mul"] == [(4, 8)]
    assert_bitwise_equal(graph, result)


def test_constant_folding_uses_the_interpreter_including_bf16_rounding() -> None:
    graph = Graph("g")
    a = graph.add_constant(1.0, TensorType((), DType.BF16))
    b = graph.add_constant(0.00390625 / 2, TensorType((), DType.BF16))  # half an ulp of 1.0 in bf16
    total = graph.add("add", [a, b])
    x = graph.add_param("x", TensorType((2,), DType.BF16))
    graph.outputs = [graph.add("add", [x, total])]
    from passes.canonicalize import Canonicalize
    result = Canonicalize().run(graph, PassContext())
    (folded,) = [node for _, node in result.nodes() if node.op == "constant"]
    assert folded.attr("value") == 1.0  # ties to even in bf16
    assert_bitwise_equal(graph, result)


@pytest.mark.parametrize("op, attrs", [("reshape", {"shape": (4, 8)}), ("transpose", {"perm": (0, 1)}),
                                       ("broadcast_to", {"shape": (4, 8)}), ("cast", {"dtype": DType.F32}),
                                       ("slice", {"starts": (0, 0), "stops": (4, 8), "steps": (1, 1)})])
def test_identity_views_and_casts_are_removed(run_passes, op: str, attrs: dict) -> None:
    """The frontend does not build these, but other passes and plugins may."""
    graph = Graph("g")
    x = graph.add_param("x", TensorType((4, 8), DType.F32))
    graph.outputs = [graph.add("exp", [graph.add(op, [x], attrs)])]
    result = run_passes(graph, "canonicalize")
    assert body_ops(result) == ["exp"]
    assert_bitwise_equal(graph, result)


def test_grouped_nodes_are_left_alone(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[4, 8]) { return exp(x * 1.0) }")
    fused = run_passes(graph, "fuse-elementwise,canonicalize")
    assert "mul" in body_ops(fused) and len(fused.groups()) == 1


def test_canonicalize_then_cse_then_dce_reach_a_fixed_point(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[4, 8]) { a = x * 1.0; b = x + 0.0; return exp(a) + exp(x) + b }")
    once = run_passes(graph, "canonicalize,cse,dce")
    twice = run_passes(once, "canonicalize,cse,dce")
    assert print_graph(once) == print_graph(twice)
    assert body_ops(once).count("exp") == 1
