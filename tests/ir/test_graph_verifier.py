"""The verifier: valid graphs pass; each kind of broken graph gets a message naming the node."""

from __future__ import annotations

import pytest

from ir.dtypes import DType
from ir.graph import Graph
from ir.graph_parser import parse_graph
from ir.graph_verifier import GraphVerifyError, assert_valid, verify_graph
from ir.types import TensorType

F32 = DType.F32


def small() -> Graph:
    """%x, %y -> %0 = add, %1 = exp(%0), %2 = mul(%1, %x); output %2."""
    return parse_graph("""
    graph @small(%x: f32[4], %y: f32[4]) -> (f32[4]) {
      %0 = add(%x, %y) : f32[4]
      %1 = exp(%0) : f32[4]
      %2 = mul(%1, %x) : f32[4]
      return %2
    }""")


def node_of(graph: Graph, op: str) -> int:
    (node_id,) = [n for n, node in graph.nodes() if node.op == op]
    return node_id


def test_valid_graphs_have_no_problems(mlp: Graph, every_op: Graph) -> None:
    assert verify_graph(mlp) == []
    assert verify_graph(every_op) == []
    assert verify_graph(small()) == []
    assert_valid(mlp)


def test_examples_are_valid(example: Graph) -> None:
    assert verify_graph(example) == []


def test_cycle_names_its_nodes_by_id() -> None:
    graph = small()
    add, mul = node_of(graph, "add"), node_of(graph, "mul")
    graph.nx.add_edge(mul, add, key=2)
    problems = verify_graph(graph)
    cycle = [p for p in problems if "cycle" in p]
    assert len(cycle) == 1
    for part in (f"node {add} (add)", "(exp)", f"node {mul} (mul)"):
        assert part in cycle[0]
    assert f"node {add} (add): add takes 2 operand(s), found 3" in problems


def test_wrong_type_says_expected_and_found() -> None:
    graph = small()
    add = node_of(graph, "add")
    graph.set_node(add, graph.node(add).replace(type=TensorType((4,), DType.F64)))
    problems = verify_graph(graph)
    assert "%0 (add): expected type f32[4] but found f64[4]" in problems
    assert "%1 (exp): expected type f64[4] but found f32[4]" in problems  # a consumer sees the change too


def test_wrong_operand_type_propagates_as_an_inference_error() -> None:
    graph = small()
    x = graph.params[0]
    graph.set_node(x, graph.node(x).replace(type=TensorType((3,), F32)))
    assert any(p.startswith("%0 (add): add: shapes [3] and [4] do not broadcast") for p in verify_graph(graph))


def test_bad_arity() -> None:
    graph = small()
    exp = node_of(graph, "exp")
    graph.set_node(exp, graph.node(exp).replace(op="add"))
    assert "%1 (add): add takes 2 operand(s), found 1" in verify_graph(graph)


def test_bad_edge_keys() -> None:
    graph = small()
    mul = node_of(graph, "mul")
    source = graph.operands(mul)[1]
    graph.nx.remove_edge(source, mul, key=1)
    graph.nx.add_edge(source, mul, key=5)
    assert "%2 (mul): operand edge keys are [0, 5], expected [0, 1]" in verify_graph(graph)


def test_unknown_op_and_bad_attributes() -> None:
    graph = small()
    exp = node_of(graph, "exp")
    graph.set_node(exp, graph.node(exp).replace(op="frob"))
    mul = node_of(graph, "mul")
    graph.set_node(mul, graph.node(mul).replace(attrs={"axis": 1}))
    problems = verify_graph(graph)
    assert "%1 (frob): unknown op 'frob'" in problems
    assert "%2 (mul): mul has no attribute(s) axis" in problems


def test_missing_default_attribute() -> None:
    graph = small()
    x = graph.params[0]
    graph.set_node(x, graph.node(x).replace(attrs={"name": "x", "index": 0}))
    assert "%x (param): attribute(s) weight missing (defaults are stored explicitly)" in verify_graph(graph)


def test_duplicate_param_names_and_bad_indexes() -> None:
    graph = small()
    y = graph.params[1]
    graph.set_node(y, graph.node(y).replace(attrs={"name": "x", "index": 0, "weight": False}))
    problems = verify_graph(graph)
    assert "%x (param): parameter 1 has index 0" in problems
    assert "%x (param): parameter name 'x' is also used by %x (param)" in problems


def test_param_missing_from_params_list() -> None:
    graph = small()
    graph.params.pop()
    assert any("a param node missing from graph.params" in p for p in verify_graph(graph))


def test_dead_node() -> None:
    graph = small()
    graph.add("neg", [graph.params[1]])
    assert "%3 (neg): dead value, it reaches no output" in verify_graph(graph)


def test_outputs() -> None:
    graph = small()
    graph.outputs = []
    problems = verify_graph(graph)
    assert "the graph has no outputs" in problems
    graph.outputs = [99]
    assert "output 0 is node 99, which is not in the graph" in verify_graph(graph)


def test_non_convex_group_names_the_path() -> None:
    graph = small()
    for op in ("add", "mul"):
        node_id = node_of(graph, op)
        graph.set_node(node_id, graph.node(node_id).replace(group=7))
    assert verify_graph(graph) == [
        "fusion group 7 is not convex: the path %0 (add) -> %1 (exp) -> %2 (mul) leaves the group and re-enters it"]
    exp = node_of(graph, "exp")
    graph.set_node(exp, graph.node(exp).replace(group=7))
    assert verify_graph(graph) == []


def test_params_are_never_fused() -> None:
    graph = small()
    x = graph.params[0]
    graph.set_node(x, graph.node(x).replace(group=0))
    assert verify_graph(graph) == ["%x (param): parameters are never fused, but this one is in group 0"]


def test_assert_valid_names_the_pass() -> None:
    graph = small()
    graph.add("neg", [graph.params[1]])
    with pytest.raises(GraphVerifyError) as info:
        assert_valid(graph, after="fuse-elementwise")
    message = str(info.value)
    assert message.startswith("error: after pass 'fuse-elementwise': graph 'small' is invalid:")
    assert "%3 (neg): dead value" in message
    assert info.value.problems == ["%3 (neg): dead value, it reaches no output"]
    with pytest.raises(GraphVerifyError, match="graph 'small' is invalid"):
        assert_valid(graph)


def test_edge_to_a_node_without_payload() -> None:
    graph = small()
    graph.nx.add_edge(node_of(graph, "mul"), 42, key=0)
    assert verify_graph(graph) == ["node 42 has no payload (an edge was added to a node that is not in the graph)"]


def two_convex_groups_in_a_cycle() -> Graph:
    """Groups {%0, %3} and {%1, %2}: each convex, but %0 -> %2 and %1 -> %3 make the kernels cyclic."""
    return parse_graph("""
    graph @kernels(%x: f32[4]) -> (f32[4]) {
      %0 = exp(%x) group 0 : f32[4]
      %1 = neg(%x) group 1 : f32[4]
      %2 = abs(%0) group 1 : f32[4]
      %3 = relu(%1) group 0 : f32[4]
      %4 = add(%2, %3) : f32[4]
      return %4
    }""")


def test_convex_groups_that_depend_on_each_other_are_a_kernel_cycle() -> None:
    assert verify_graph(two_convex_groups_in_a_cycle()) == [
        "fusion groups 0 and 1 form a cycle in the graph of kernels (each group runs as one kernel, so none of "
        "them can run first): %0 (exp) in group 0 -> %2 (abs) in group 1, %1 (neg) in group 1 -> %3 (relu) in "
        "group 0"]


def test_a_kernel_cycle_through_ungrouped_nodes_names_every_group_on_it() -> None:
    graph = parse_graph("""
    graph @three(%x: f32[4]) -> (f32[4]) {
      %0 = exp(%x) group 0 : f32[4]
      %1 = neg(%0) : f32[4]
      %2 = abs(%1) group 1 : f32[4]
      %3 = relu(%x) group 1 : f32[4]
      %4 = sigmoid(%3) group 2 : f32[4]
      %5 = tanh(%x) group 2 : f32[4]
      %6 = mul(%5, %x) group 0 : f32[4]
      %7 = add(%2, %4) : f32[4]
      %8 = add(%7, %6) : f32[4]
      return %8
    }""")
    (problem,) = verify_graph(graph)
    assert problem.startswith("fusion groups 0, 1 and 2 form a cycle in the graph of kernels")
    for edge in ("%0 (exp) in group 0 -> %1 (neg)", "%1 (neg) -> %2 (abs) in group 1",
                 "%3 (relu) in group 1 -> %4 (sigmoid) in group 2", "%5 (tanh) in group 2 -> %6 (mul) in group 0"):
        assert edge in problem


def test_moving_a_node_out_of_the_cycle_makes_the_graph_valid() -> None:
    graph = two_convex_groups_in_a_cycle()
    relu = node_of(graph, "relu")
    graph.set_node(relu, graph.node(relu).replace(group=None))
    assert verify_graph(graph) == []


def test_a_non_convex_group_is_reported_once_not_as_a_cycle_too() -> None:
    graph = small()
    for op in ("add", "mul"):
        node_id = node_of(graph, op)
        graph.set_node(node_id, graph.node(node_id).replace(group=3))
    exp = node_of(graph, "exp")
    graph.set_node(exp, graph.node(exp).replace(group=4))  # group 3 -> group 4 -> group 3 through group 3's hole
    assert verify_graph(graph) == [
        "fusion group 3 is not convex: the path %0 (add) -> %1 (exp) -> %2 (mul) leaves the group and re-enters it"]


def test_every_kernel_cycle_is_reported() -> None:
    """Two separate cycles (four groups): one message each."""
    graph = parse_graph("""
    graph @twice(%x: f32[4]) -> (f32[4]) {
      %0 = exp(%x) group 0 : f32[4]
      %1 = neg(%x) group 1 : f32[4]
      %2 = abs(%0) group 1 : f32[4]
      %3 = relu(%1) group 0 : f32[4]
      %4 = add(%2, %3) : f32[4]
      %5 = exp(%4) group 2 : f32[4]
      %6 = neg(%4) group 3 : f32[4]
      %7 = abs(%5) group 3 : f32[4]
      %8 = relu(%6) group 2 : f32[4]
      %9 = add(%7, %8) : f32[4]
      return %9
    }""")
    problems = verify_graph(graph)
    assert len(problems) == 2
    assert problems[0].startswith("fusion groups 0 and 1 form a cycle")
    assert problems[1].startswith("fusion groups 2 and 3 form a cycle")


def test_the_fused_examples_have_acyclic_kernels(example: Graph) -> None:
    from passes.context import PassContext
    from passes.manager import PassManager
    from passes.pipeline import build_passes, parse_pipeline
    pipeline = "canonicalize,cse,dce,fuse-epilogue,fuse-reductions,fuse-elementwise"
    fused = PassManager(build_passes(parse_pipeline(pipeline))).run(example, PassContext())
    assert fused.groups() and verify_graph(fused) == []
