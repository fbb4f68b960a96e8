"""The group contract across passes: a pass whose groups are each convex but depend on each other both
ways (a cycle in the graph of kernels) is stopped by the verifier, which names the groups; the fusion
passes never form such groups."""

from __future__ import annotations

import pytest

from compiler.diagnostics import CompileError
from ir.graph import Graph
from ir.graph_parser import parse_graph
from ir.graph_verifier import verify_graph
from ir.groups import classify_group, kernels_acyclic
from passes.context import PassContext
from passes.manager import PassManager
from passes.pipeline import build_passes, parse_pipeline
from passes.registry import Pass, register_pass

SOURCE = """
graph @kernels(%x: f32[4]) -> (f32[4]) {
  %0 = exp(%x) : f32[4]
  %1 = neg(%x) : f32[4]
  %2 = abs(%0) : f32[4]
  %3 = relu(%1) : f32[4]
  %4 = add(%2, %3) : f32[4]
  return %4
}"""


def _cross_groups(self, graph: Graph, ctx: PassContext) -> Graph:
    """Groups {exp, relu} and {neg, abs}: exp feeds abs, neg feeds relu."""
    result = graph.copy()
    for node_id, node in list(result.nodes()):
        group = {"exp": 0, "relu": 0, "neg": 1, "abs": 1}.get(node.op)
        result.set_node(node_id, node.replace(group=group))
    return result


def test_a_plugin_pass_that_makes_the_kernels_cyclic_is_stopped(tmp_path) -> None:
    cls = type("CrossGroups", (Pass,), {"name": "cross-groups", "summary": "two groups in a cycle",
                                         "run": _cross_groups})
    cls.__module__ = "user_plugin"
    register_pass(cls)
    manager = PassManager(build_passes(parse_pipeline("cross-groups")), reproducer_dir=str(tmp_path))
    with pytest.raises(CompileError) as info:
        manager.run(parse_graph(SOURCE), PassContext())
    message = str(info.value)
    assert "pass 'cross-groups'" in message
    assert "fusion groups 0 and 1 form a cycle in the graph of kernels" in message


def test_fusion_refuses_a_convex_group_that_would_make_the_kernels_cyclic(run_passes) -> None:
    """{exp, sub} is convex, but exp feeds reduction group 5 and group 5 feeds sub, so that kernel and
    group 5's would each have to run first."""
    graph = parse_graph("""
    graph @rows(%x: f32[4,8]) -> (f32[4,8]) {
      %0 = exp(%x) : f32[4,8]
      %1 = reduce_sum(%0) {axes = [1], keepdims = true} group 5 : f32[4,1]
      %2 = reduce_max(%x) {axes = [1], keepdims = true} group 5 : f32[4,1]
      %3 = sub(%0, %2) : f32[4,8]
      %4 = add(%3, %1) : f32[4,8]
      return %4
    }""")
    ops = {node.op: node_id for node_id, node in graph.nodes()}
    classify_group(graph, {ops["exp"], ops["sub"]})  # convex, and a valid group on its own
    ctx = PassContext()
    fused = run_passes(graph, "fuse-elementwise", ctx=ctx)
    (decision,) = [d for d in ctx.fusion_log if (d.producer, d.consumer) == (ops["exp"], ops["sub"])]
    assert not decision.fused and "reduce_sum) depends on the group and the group depends on it" in decision.reason
    assert fused.node(ops["exp"]).group is None and fused.node(ops["sub"]).group is not None
    assert kernels_acyclic(fused) and verify_graph(fused) == []
