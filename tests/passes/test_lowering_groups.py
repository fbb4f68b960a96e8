"""Fusion groups lower to ONE kernel each, whose intermediates never touch a global buffer, and the
fused programs compute what the reference interpreter computes."""

from __future__ import annotations

import networkx as nx
import pytest

from compiler.driver import Source
from ir.dtypes import DType
from ir.graph import Graph
from ir.groups import assign_groups
from ir.loop_printer import print_program
from ir.loops import Let, walk
from ir.types import TensorType
from passes.lowering import LoweringError, NaiveSchedule, lower_specs, lower_to_loops
from passes.lowering.check import check_lowering

SCHEDULES = [NaiveSchedule("none"), NaiveSchedule("suggested"), NaiveSchedule("all")]
SCHEDULE_IDS = ["no-cache", "suggested-rows", "all-rows"]


def from_source(text: str) -> Graph:
    return Source.from_text(text).specialize({}, None)


def fuse_outputs(graph: Graph, outputs: list[int] | None = None) -> Graph:
    """One group per listed output: the non-parameter, non-scalar-constant nodes it depends on (each
    node in the first group that claims it)."""
    claimed: set[int] = set()
    groups = []
    for output in outputs if outputs is not None else graph.outputs:
        nodes = (nx.ancestors(graph.nx, output) | {output}) - claimed
        members = {n for n in nodes if graph.node(n).op != "param"
                   and not (graph.node(n).op == "constant" and graph.node(n).type.shape == ())}
        claimed |= members
        groups.append(members)
    return assign_groups(graph, groups)


def assert_fused(graph: Graph, kernels: int, schedule: NaiveSchedule | None = None) -> None:
    check = check_lowering(graph, schedule)
    assert check.ok, check.report() + "\n" + print_program(check.program)
    program = check.program
    assert len(program.kernels) == kernels, print_program(program)
    assert all(kernel.attr("group") is not None for kernel in program.kernels.values())
    assert all(kernel.attr("split_group") is None for kernel in program.kernels.values())


NORMS = """
def f(x: f32[3, 8], g: f32[8], b: f32[8]) {
    return softmax(x, axis=-1), softmax(x, axis=0), layernorm(x, g, b), rmsnorm(x, g)
}"""


@pytest.mark.parametrize("schedule", SCHEDULES, ids=SCHEDULE_IDS)
@pytest.mark.parametrize("which", ["softmax_rows", "softmax_columns", "layernorm", "rmsnorm"])
def test_norms_are_one_kernel_without_intermediates(which: str, schedule: NaiveSchedule) -> None:
    graph = from_source(NORMS)
    index = ["softmax_rows", "softmax_columns", "layernorm", "rmsnorm"].index(which)
    graph.outputs = [graph.outputs[index]]
    graph.remove_dead()
    fused = fuse_outputs(graph)
    assert_fused(fused, 1, schedule)
    program = lower_to_loops(fused, schedule)
    assert program.intermediates == []
    (kernel,) = program.kernels.values()
    assert kernel.attr("kind") == "reduction"


@pytest.mark.parametrize("which,rows", [("softmax_rows", ("exp",)), ("layernorm", ("sub",)), ("rmsnorm", ("x",))])
def test_suggested_rows(which: str, rows: tuple[str, ...]) -> None:
    graph = from_source(NORMS)
    index = ["softmax_rows", "softmax_columns", "layernorm", "rmsnorm"].index(which)
    graph.outputs = [graph.outputs[index]]
    graph.remove_dead()
    (spec,) = lower_specs(fuse_outputs(graph)).specs
    names = tuple(graph.node(n).attr("name") if graph.node(n).op == "param" else graph.node(n).op
                  for n in spec.row_suggestions)
    assert names == rows


def test_softmax_with_suggested_rows_reads_input_twice() -> None:
    graph = from_source("def f(x: f32[3, 8]) { return softmax(x, axis=-1) }")
    program = lower_to_loops(fuse_outputs(graph), NaiveSchedule("suggested"))
    (kernel,) = program.kernels.values()
    loads_of_x = [node for node in walk(kernel.body) if getattr(node, "buffer", None) == "x"
                  and type(node).__name__ == "Load"]
    exps = [node for node in walk(kernel.body) if getattr(node, "op", None) == "exp"]
    assert len(loads_of_x) == 2 and len(exps) == 1


def test_all_norms_in_one_program() -> None:
    for schedule in SCHEDULES:
        assert_fused(fuse_outputs(from_source(NORMS)), 4, schedule)


def fuse_all(graph: Graph) -> Graph:
    """One group of every non-parameter node except scalar constants."""
    return assign_groups(graph, [{n for n in graph.topological_order() if graph.node(n).op != "param"
                                  and not (graph.node(n).op == "constant" and graph.node(n).type.shape == ())}])


def test_reduction_group_with_reduced_and_domain_outputs() -> None:
    graph = from_source("""
def f(x: f32[2, 3, 5]) {
    m = mean(x, axis=-1, keepdims=true)
    s = sum(x * x, axis=-1)
    d = x - m
    return d, m, s, reshape(m, (2, 3)) * 2.0, max(exp(d), axis=-1, keepdims=true), s
}""")
    for schedule in SCHEDULES:
        assert_fused(fuse_all(graph), 1, schedule)


def test_reduction_over_leading_and_middle_axes() -> None:
    graph = Graph("middle")
    x = graph.add_param("x", TensorType((2, 3, 4), DType.F32))
    m = graph.add("reduce_max", [x], {"axes": (0, 2), "keepdims": True})
    d = graph.add("sub", [x, m])
    e = graph.add("exp", [d])
    s = graph.add("reduce_sum", [e], {"axes": (0, 2), "keepdims": False})
    r = graph.add("reshape", [s], {"shape": (1, 3, 1)})
    y = graph.add("div", [e, r])
    graph.outputs = [y, s]
    for schedule in SCHEDULES:
        assert_fused(assign_groups(graph, [{m, d, e, s, r, y}]), 1, schedule)


def test_reduction_of_f16_with_epilogue() -> None:
    graph = from_source("def f(x: f16[3, 17]) { return softmax(x, axis=-1) }")
    assert_fused(fuse_outputs(graph), 1)


MATMUL_EPILOGUE = """
def f(x: f32[2, 3, 5], w: f32[4, 5], b: f32[4], r: f32[2, 3, 4]) {
    return relu(x @ transpose(w, (1, 0)) + b) + r
}"""


def test_matmul_bias_relu_residual_is_one_kernel() -> None:
    graph = from_source(MATMUL_EPILOGUE)
    fused = fuse_outputs(graph)
    assert_fused(fused, 1)
    (kernel,) = lower_to_loops(fused).kernels.values()
    assert kernel.attr("kind") == "matmul"
    assert lower_to_loops(fused).intermediates == []


def test_matmul_with_cast_prologue_and_batch_broadcast() -> None:
    graph = Graph("mm")
    a = graph.add_param("a", TensorType((2, 1, 3, 4), DType.F16))
    b = graph.add_param("b", TensorType((5, 4, 2), DType.F32))
    bias = graph.add_param("bias", TensorType((2,), DType.F32))
    ca = graph.add("cast", [a], {"dtype": DType.F32})
    mm = graph.add("matmul", [ca, b])
    out = graph.add("add", [mm, bias])
    act = graph.add("gelu", [out])
    graph.outputs = [act, mm]
    assert_fused(assign_groups(graph, [{ca, mm, out, act}]), 1)


def test_elementwise_chain_with_broadcasts_and_views() -> None:
    graph = from_source("""
def f(x: f32[4, 6], b: f32[6], c: f32[4, 1], z: f32[6, 4]) {
    y = exp(x + b) * c - tanh(x)
    w = y + transpose(z, (1, 0))
    v = reshape(w, (2, 2, 6))
    return sigmoid(v) * 0.5, reshape(v, (4, 6)) + x
}""")
    fused = fuse_outputs(graph)
    assert len(fused.groups()) == 2
    assert_fused(fused, 2)


def test_elementwise_group_with_two_outputs_one_kernel() -> None:
    graph = Graph("two")
    x = graph.add_param("x", TensorType((3, 4), DType.BF16))
    e = graph.add("exp", [x])
    n = graph.add("neg", [e])
    s = graph.add("add", [e, n])
    graph.outputs = [e, s]
    assert_fused(assign_groups(graph, [{e, n, s}]), 1)


def test_shared_values_are_let_bound_and_trees_stay_small() -> None:
    graph = Graph("doubling")
    value = graph.add_param("x", TensorType((2,), DType.F64))
    members = set()
    for _ in range(40):
        value = graph.add("add", [value, value])
        members.add(value)
    graph.outputs = [value]
    fused = assign_groups(graph, [members])
    check = check_lowering(fused)
    assert check.ok, check.report()
    (kernel,) = check.program.kernels.values()
    assert sum(isinstance(node, Let) for node in walk(kernel.body)) == 39
    assert len(print_program(check.program)) < 5000


def test_intermediate_used_by_two_groups_is_stored_once() -> None:
    graph = Graph("shared")
    x = graph.add_param("x", TensorType((3, 4), DType.F32))
    e = graph.add("exp", [x])
    a = graph.add("neg", [e])
    s = graph.add("reduce_sum", [e], {"axes": (1,), "keepdims": False})
    graph.outputs = [a, s]
    fused = assign_groups(graph, [{e, a}, {s}])
    program = lower_to_loops(fused)
    assert len(program.intermediates) == 1
    check = check_lowering(fused)
    assert check.ok, check.report()


def test_transposed_reduction_result_splits_the_group() -> None:
    """A view that reads a reduction result at another kept position cannot stay in one kernel: the
    group is lowered node by node, still correctly."""
    graph = Graph("scrambled")
    x = graph.add_param("x", TensorType((3, 3, 4), DType.F32))
    s = graph.add("reduce_sum", [x], {"axes": (2,), "keepdims": False})
    t = graph.add("transpose", [s], {"perm": (1, 0)})
    y = graph.add("exp", [t])
    graph.outputs = [y]
    fused = assign_groups(graph, [{s, t, y}])
    check = check_lowering(fused)
    assert check.ok, check.report()
    assert {kernel.attr("split_group") for kernel in check.program.kernels.values()} == {0}


def test_cyclic_groups_are_an_error() -> None:
    graph = Graph("cycle")
    x = graph.add_param("x", TensorType((3,), DType.F32))
    a = graph.add("exp", [x])
    b = graph.add("neg", [a])
    c = graph.add("abs", [x])
    d = graph.add("add", [b, c])
    e = graph.add("sin", [c])
    graph.outputs = [d, e]
    grouped = graph.copy()
    for node, group in ((a, 0), (d, 0), (b, 1), (c, 1)):
        grouped.set_node(node, grouped.node(node).replace(group=group))
    with pytest.raises(LoweringError, match="cycle"):
        lower_to_loops(grouped)


def test_illegal_group_is_an_error() -> None:
    graph = Graph("illegal")
    x = graph.add_param("x", TensorType((3,), DType.F32))
    a = graph.add("concat", [x, x], {"axis": 0})
    b = graph.add("exp", [a])
    graph.outputs = [b]
    grouped = graph.copy()
    for node in (a, b):
        grouped.set_node(node, grouped.node(node).replace(group=7))
    with pytest.raises(LoweringError, match="group 7"):
        lower_to_loops(grouped)


def test_long_fused_chain_stays_shallow() -> None:
    """3000 fused ops: no recursion limit is hit, and deep expressions are cut with lets."""
    graph = Graph("chain")
    value = graph.add_param("x", TensorType((2,), DType.F32))
    members = set()
    for step in range(3000):
        value = graph.add("sin" if step % 2 else "neg", [value])
        members.add(value)
    graph.outputs = [value]
    fused = assign_groups(graph, [members])
    check = check_lowering(fused)
    assert check.ok, check.report()
    (kernel,) = check.program.kernels.values()
    lets = sum(isinstance(node, Let) for node in walk(kernel.body))
    assert 3000 // 33 <= lets <= 3000 // 16
