"""fuse-elementwise: elementwise/view chains with broadcasts become one ELEMENTWISE group."""

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


def assert_contract(graph: Graph) -> None:
    for members in graph.groups().values():
        classify_group(graph, members)


def test_broadcast_chain_is_one_group_with_one_result(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[16, 32], a: f32[32], b: f32[16, 1]) { return tanh(x * a + b) * 0.5 }")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-elementwise", ctx=ctx)
    (members,) = fused.groups().values()
    assert {fused.node(n).op for n in members} == {"mul", "add", "tanh", "constant"}
    info = classify_group(fused, members)
    assert info.kind is GroupKind.ELEMENTWISE and info.outputs == tuple(fused.outputs)
    (stats,) = ctx.stats
    # x*a, +b and tanh are no longer written and read back: 3 values of 16*32*4 bytes, each twice.
    assert stats.counters["traffic_removed"] == 3 * 2 * 16 * 32 * 4
    assert stats.text == "5 nodes into 1 group, 12.0 KiB of intermediate traffic removed"
    assert_same_outputs(graph, fused)


def test_reductions_and_matmuls_are_boundaries(graph_of, run_passes) -> None:
    graph = graph_of("""
def f(x: f32[4, 8], w: f32[8, 8]) {
    y = exp(x) + 1.0
    s = sum(y, axis=1, keepdims=true)
    return (y / s) @ w
}""")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-elementwise", ctx=ctx)
    by_category = {d.category for d in ctx.fusion_log if not d.fused}
    assert "reduction-boundary" in by_category and "not-fusible" in by_category
    reasons = " ".join(d.reason for d in ctx.fusion_log)
    assert "is a reduction" in reasons and "is a matmul" in reasons
    for node, payload in fused.nodes():
        if payload.op in ("reduce_sum", "matmul"):
            assert payload.group is None
    assert_contract(fused)
    assert_same_outputs(graph, fused)


def test_cheap_value_with_two_consumers_is_recomputed(graph_of, run_passes) -> None:
    """t = x * 2 feeds two groups that cannot merge (a cycle through the sum): each gets its own copy."""
    graph = graph_of("""
def f(x: f32[4, 8]) {
    t = x * 2.0
    return t / sum(t, axis=1, keepdims=true)
}""")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-elementwise", ctx=ctx)
    recomputed = [d for d in ctx.fusion_log if d.how == "recomputed" and "(mul)" in d.producer_label]
    assert recomputed and "cheap (mul)" in recomputed[0].reason and "(reduce_sum)" in recomputed[0].reason
    muls = [n for n, node in fused.nodes() if node.op == "mul"]
    assert len(muls) == 2  # the original (read by the sum) and the division's copy
    assert_contract(fused)
    assert_same_outputs(graph, fused)
    assert ctx.stats[0].counters["recomputed"] >= 1


def test_costly_value_with_two_consumers_is_refused_by_the_multi_consumer_rule(graph_of, run_passes) -> None:
    graph = graph_of("""
def f(x: f32[4, 8]) {
    t = exp(x)
    return t / sum(t, axis=1, keepdims=true)
}""")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-elementwise", ctx=ctx)
    (decision,) = [d for d in ctx.fusion_log if d.category == "multi-consumer"]
    assert "(exp)" in decision.producer_label and "(div)" in decision.consumer_label
    assert "also used by" in decision.reason and "(reduce_sum)" in decision.reason
    assert "exp is too costly to compute twice" in decision.reason
    assert len([n for n, node in fused.nodes() if node.op == "exp"]) == 1
    assert_same_outputs(graph, fused)


def test_recompute_can_be_switched_off(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[4, 8]) { t = x * 2.0; return t / sum(t, axis=1, keepdims=true) }")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-elementwise{recompute=false}", ctx=ctx)
    assert not [d for d in ctx.fusion_log if d.how == "recomputed"]
    assert any("recompute=false" in d.reason for d in ctx.fusion_log if d.category == "multi-consumer")
    assert len([n for n, node in fused.nodes() if node.op == "mul"]) == 1


def test_working_set_limit_from_the_context_and_from_the_option(graph_of, run_passes) -> None:
    source = "def f(x: f32[64, 64], y: f32[64, 64], z: f32[64, 64]) { return (x + y) * z }"
    graph = graph_of(source)
    ctx = PassContext(working_set_limit=40 * 1024)  # x, y, z and the result are 16 KiB each
    fused = run_passes(graph, "fuse-elementwise", ctx=ctx)
    assert not fused.groups()
    (decision,) = [d for d in ctx.fusion_log if not d.fused]
    assert decision.category == "working-set"
    assert "64.0 KiB" in decision.reason and "over the limit of 40.0 KiB" in decision.reason
    fused = run_passes(graph_of(source), "fuse-elementwise{max-working-set=64KiB}",
                       ctx=PassContext(working_set_limit=1))
    assert len(fused.groups()) == 1  # the pass option overrides the context's limit


def test_results_of_different_shapes_do_not_share_a_kernel(graph_of, run_passes) -> None:
    graph = graph_of("def f(x: f32[4, 8]) { y = x + 1.0; return y, reshape(exp(y), (32,)) }")
    fused = run_passes(graph, "fuse-elementwise")
    assert_contract(fused)
    assert_same_outputs(graph, fused)


def test_group_ids_stay_unique_across_passes(graph_of, run_passes) -> None:
    graph = graph_of("""
def f(x: f32[4, 8], w: f32[8, 8], b: f32[8]) {
    h = relu(x @ w + b)
    return softmax(h, axis=-1) * 2.0, tanh(x) + 1.0
}""")
    ctx = PassContext()
    fused = run_passes(graph, "fuse-epilogue,fuse-reductions,fuse-elementwise", ctx=ctx)
    groups = fused.groups()
    assert len(groups) == 3
    kinds = sorted(str(classify_group(fused, m).kind) for m in groups.values())
    assert kinds == ["elementwise", "matmul", "reduction"]
    again = run_passes(fused, "fuse-elementwise", ctx=ctx)  # nothing left to fuse: ids are kept
    assert again.groups() == groups
