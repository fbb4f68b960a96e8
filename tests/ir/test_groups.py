"""The fusion-group contract (ir/groups.py): one group at a time (`classify_group`), and the whole
grouping, whose graph of kernels must be acyclic even when every group is convex."""

from __future__ import annotations

import pytest

from ir.graph import Graph
from ir.graph_parser import parse_graph
from ir.groups import (GroupError, assign_groups, check_convex, classify_convex, classify_group, kernel_cycles,
                       kernels_acyclic, topological_index)

CYCLE = """
graph @kernels(%x: f32[4]) -> (f32[4]) {
  %0 = exp(%x) : f32[4]
  %1 = neg(%x) : f32[4]
  %2 = abs(%0) : f32[4]
  %3 = relu(%1) : f32[4]
  %4 = add(%2, %3) : f32[4]
  return %4
}"""


def nodes_by_op(graph: Graph) -> dict[str, int]:
    return {node.op: node_id for node_id, node in graph.nodes()}


def test_convex_groups_can_still_make_the_kernels_cyclic() -> None:
    graph = parse_graph(CYCLE)
    n = nodes_by_op(graph)
    first, second = {n["exp"], n["relu"]}, {n["neg"], n["abs"]}
    for members in (first, second):
        classify_group(graph, members)  # each is a valid group on its own
    with pytest.raises(GroupError, match="the groups make the graph of kernels cyclic"):
        assign_groups(graph, [first, second])
    grouped = assign_groups(graph, [first, {n["neg"]}])
    assert kernels_acyclic(grouped) and kernel_cycles(grouped) == []


def test_kernel_cycles_name_the_crossing_edges() -> None:
    graph = parse_graph(CYCLE)
    n = nodes_by_op(graph)
    for op, group in (("exp", 0), ("relu", 0), ("neg", 1), ("abs", 1)):
        graph.set_node(n[op], graph.node(n[op]).replace(group=group))
    assert not kernels_acyclic(graph)
    (cycle,) = kernel_cycles(graph)
    assert sorted(cycle) == sorted([(n["exp"], n["abs"]), (n["neg"], n["relu"])])
    assert kernel_cycles(graph, contract={0}) == []  # group 1 taken apart: no cycle left


def test_check_convex_finds_a_path_back_within_the_window() -> None:
    graph = parse_graph(CYCLE)
    n = nodes_by_op(graph)
    index = topological_index(graph)
    with pytest.raises(GroupError, match=r"%\d+ \(abs\) depends on the group"):
        check_convex(graph, {n["exp"], n["add"]}, index)
    check_convex(graph, {n["exp"], n["abs"], n["add"]}, index)


def test_classify_with_an_index_or_as_convex_agrees_with_plain_classify(example: Graph) -> None:
    from passes.context import PassContext
    from passes.manager import PassManager
    from passes.pipeline import build_passes, parse_pipeline
    pipeline = "canonicalize,cse,dce,fuse-epilogue,fuse-reductions,fuse-elementwise"
    fused = PassManager(build_passes(parse_pipeline(pipeline))).run(example, PassContext())
    index = topological_index(fused)
    for members in fused.groups().values():
        info = classify_group(fused, members)
        assert classify_group(fused, members, index) == info
        assert classify_convex(fused, set(members), info.members) == info
