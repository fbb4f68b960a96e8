"""fuse-reductions: softmax, layernorm and rmsnorm from the prelude each become one REDUCTION group."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from compiler.checking import compare
from compiler.inputs import random_inputs
from ir.graph import Graph
from ir.groups import GroupKind, classify_group
from ir.interpreter import run_graph
from passes.context import PassContext

NORMS = """
def f(x: f32[3, 8], g: f32[8], b: f32[8]) {
    return softmax(x, axis=-1), softmax(x, axis=0), layernorm(x, g, b), rmsnorm(x, g)
}"""


def computed_ancestors(graph: Graph, node: int) -> set[int]:
    """The operations an output depends on, leaving out parameters (never fused)."""
    nodes = nx.ancestors(graph.nx, node) | {node}
    return {n for n in nodes if graph.node(n).op != "param"}


def assert_same_outputs(before: Graph, after: Graph, seed: int = 0) -> None:
    inputs = random_inputs(before, seed)
    for index, (want, got) in enumerate(zip(run_graph(before, inputs), run_graph(after, inputs))):
        result = compare(got, want, before.node(before.outputs[index]).type.dtype, f"output {index}")
        assert result.ok, result.message


@pytest.mark.parametrize("index, name", [(0, "softmax rows"), (1, "softmax columns"), (2, "layernorm"),
                                         (3, "rmsnorm")])
def test_each_norm_is_one_reduction_group(graph_of, run_passes, index: int, name: str) -> None:
    graph = graph_of(NORMS)
    fused = run_passes(graph, "canonicalize,cse,dce,fuse-reductions")
    output = fused.outputs[index]
    members = computed_ancestors(fused, output)
    groups = {fused.node(n).group for n in members}
    assert len(groups) == 1 and None not in groups, f"{name}: groups {groups}"
    (group,) = groups
    assert set(fused.groups()[group]) == members  # nothing else joined, nothing left out
    info = classify_group(fused, members)
    assert info.kind is GroupKind.REDUCTION
    assert info.outputs == (output,)  # no intermediate goes to memory
    assert_same_outputs(graph, fused)


def test_layernorm_reads_its_input_in_one_kernel(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[64, 256], g: f32[256], b: f32[256]) { return layernorm(x, g, b) }")
    ctx = PassContext()
    run_passes(graph, "fuse-reductions", ctx=ctx)
    (stats,) = ctx.stats_of("fuse-reductions")
    assert stats.counters["groups"] == 1
    # Unfused, each op is a kernel: mu = mean(x), d = x - mu, dd = d * d, var = mean(dd), var + eps,
    # r = rsqrt(.), dr = d * r, drg = dr * g, out = drg + b. F bytes per [64, 256] value, R per [64, 1].
    # Removed reads: x once more (two kernels read it), d twice, dd, dr, drg (6 F); mu, var, var+eps, r (4 R).
    # Removed writes: d, dd, dr, drg (4 F); mu, var, var+eps, r (4 R). The splat eps costs nothing.
    full, reduced = 64 * 256 * 4, 64 * 4
    assert stats.counters["traffic_removed"] == 10 * full + 8 * reduced
    assert "1 group" in stats.text and "642.0 KiB of intermediate traffic removed" in stats.text


def test_reductions_over_different_axes_are_a_boundary(graph_of, run_passes) -> None:
    graph = graph_of("""
def f(x: f32[4, 6]) {
    y = exp(x)
    return sum(y, axis=0, keepdims=true) + 0.0 * sum(y, axis=1, keepdims=true)
}""")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-reductions", ctx=ctx)
    reductions = [n for n, node in fused.nodes() if node.op == "reduce_sum"]
    assert fused.node(reductions[0]).group != fused.node(reductions[1]).group
    boundary = [d for d in ctx.fusion_log if d.category == "reduction-boundary"]
    assert boundary and "reduces axes [1]" in boundary[0].reason and "reduces axes [0]" in boundary[0].reason
    for group, members in fused.groups().items():
        classify_group(fused, members)
    assert_same_outputs(graph, fused)


def test_reduced_value_without_keepdims_is_a_boundary(graph_of, run_passes) -> None:
    graph = graph_of("""
def f(x: f32[4, 6]) {
    s = sum(x, axis=1)
    return x * reshape(s, (4, 1)), s
}""")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-reductions", ctx=ctx)
    for members in fused.groups().values():
        classify_group(fused, members)
    assert_same_outputs(graph, fused)


def test_chained_norms_over_the_same_rows_share_one_kernel(graph_of, run_passes) -> None:
    """rmsnorm(layernorm(x)) reduces the same rows twice: the contract allows one kernel for both."""
    graph = graph_of("def f(x: f32[4, 8], g: f32[8], b: f32[8]) { return rmsnorm(layernorm(x, g, b), g) }")
    fused = run_passes(graph, "canonicalize,cse,fuse-reductions")
    assert len(fused.groups()) == 1
    assert computed_ancestors(fused, fused.outputs[0]) == set(next(iter(fused.groups().values())))
    assert_same_outputs(graph, fused)


def test_max_group_limits_the_size(graph_of, run_passes) -> None:
    graph = graph_of(NORMS)
    ctx = PassContext()
    fused = run_passes(graph, "fuse-reductions{max-group=3}", ctx=ctx)
    assert all(len(members) <= 3 for members in fused.groups().values())
    assert any(d.category == "max-group" and "max-group=3" in d.reason for d in ctx.fusion_log)
    assert_same_outputs(graph, fused)


def test_values_are_unchanged_on_random_inputs(graph_of, run_passes) -> None:
    graph = graph_of(NORMS)
    fused = run_passes(graph, "canonicalize,cse,dce,fuse-epilogue,fuse-reductions,fuse-elementwise")
    for seed in range(3):
        assert_same_outputs(graph, fused, seed)
    assert np.isfinite(run_graph(fused, random_inputs(graph, 0))[0]).all()
