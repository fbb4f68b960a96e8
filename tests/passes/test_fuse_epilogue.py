"""fuse-epilogue: a matmul with its bias, activation, residual and scaling becomes one MATMUL group."""

from __future__ import annotations

from compiler.checking import compare
from compiler.inputs import random_inputs
from ir.graph import Graph
from ir.groups import GroupKind, classify_group
from ir.interpreter import run_graph
from passes.context import PassContext


def assert_same_outputs(before: Graph, after: Graph) -> None:
    inputs = random_inputs(before, 0)
    for index, (want, got) in enumerate(zip(run_graph(before, inputs), run_graph(after, inputs))):
        result = compare(got, want, before.node(before.outputs[index]).type.dtype)
        assert result.ok, result.message


def ops_in_group(graph: Graph, group: int) -> list[str]:
    return sorted(graph.node(n).op for n in graph.groups()[group])


def test_bias_activation_residual_and_scaling(graph_of, run_passes) -> None:
    graph = graph_of("""
def f(x: f32[8, 16], w: f32[16, 32], b: f32[32], r: f32[8, 32]) {
    return gelu(x @ w + b) * 0.5 + r
}""")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-epilogue", ctx=ctx)
    (group,) = fused.groups()
    assert ops_in_group(fused, group) == ["add", "add", "constant", "gelu", "matmul", "mul"]
    info = classify_group(fused, fused.groups()[group])
    assert info.kind is GroupKind.MATMUL and info.outputs == tuple(fused.outputs)
    # The product, +b, gelu and *0.5 (four [8, 32] f32 values) are neither written nor read back.
    assert ctx.stats[0].counters["traffic_removed"] == 4 * 2 * 8 * 32 * 4
    assert_same_outputs(graph, fused)


def test_operand_transpose_folds_into_the_loads(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[8, 16], w: f32[32, 16]) { return relu(x @ transpose(w)) }")
    fused = run_passes(graph, "fuse-epilogue")
    (group,) = fused.groups()
    assert ops_in_group(fused, group) == ["matmul", "relu", "transpose"]
    assert_same_outputs(graph, fused)


def test_shared_operand_view_is_recomputed_in_each_matmul_group(graph_of, run_passes) -> None:
    graph = graph_of("""
def f(x: f32[8, 16], y: f32[4, 16], w: f32[32, 16]) {
    wt = transpose(w)
    return relu(x @ wt), relu(y @ wt)
}""")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-epilogue", ctx=ctx)
    assert len(fused.groups()) == 2
    for group in fused.groups():
        assert ops_in_group(fused, group) == ["matmul", "relu", "transpose"]
    assert any(d.how == "recomputed" and "(transpose)" in d.producer_label for d in ctx.fusion_log)
    assert_same_outputs(graph, fused)


def test_matmul_feeding_a_softmax_is_fused_alone_with_the_reason(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[8, 16], w: f32[16, 32]) { return softmax(x @ w, axis=-1) }")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-epilogue,fuse-reductions", ctx=ctx)
    decisions = {(d.pass_name, d.category) for d in ctx.fusion_log if not d.fused}
    assert ("fuse-epilogue", "reduction-boundary") in decisions  # matmul -> reduce_max
    assert ("fuse-epilogue", "cycle") in decisions  # matmul -> sub, which also reads reduce_max(matmul)
    cycle = next(d for d in ctx.fusion_log if d.category == "cycle")
    assert "(reduce_max)" in cycle.reason and "cycle" in cycle.reason
    matmul = next(n for n, node in fused.nodes() if node.op == "matmul")
    assert fused.node(matmul).group is None
    (softmax,) = fused.groups().values()
    assert len(softmax) == 5
    assert_same_outputs(graph, fused)


def test_a_second_matmul_ends_the_epilogue(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[8, 16], w: f32[16, 16], v: f32[16, 4]) { return relu(x @ w) @ v }")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-epilogue", ctx=ctx)
    assert len(fused.groups()) == 1
    assert any("a group holds at most one matmul" in d.reason or "another matmul" in d.reason
               for d in ctx.fusion_log if not d.fused)
    assert_same_outputs(graph, fused)
