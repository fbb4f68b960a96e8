"""Property: random small DAGs with random legal fusion groupings lower to loop programs that the
verifier accepts, that compute what the reference interpreter computes, that have one kernel per group,
and whose global buffers hold only values that leave their kernel."""

from __future__ import annotations

import math

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.checking import compare
from compiler.inputs import random_inputs
from ir.dtypes import DType
from ir.graph import Graph
from ir.groups import GroupError, assign_groups, classify_group
from ir.interpreter import run_graph
from ir.loop_eval import run_program
from ir.loop_verifier import verify_program
from ir.ops import OpError
from ir.types import TensorType, broadcast_shapes
from passes.lowering import NaiveSchedule, lower

F64 = DType.F64
UNARY = ["neg", "abs", "relu", "tanh", "sigmoid", "sin", "cos", "gelu", "silu"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]
REDUCE = ["reduce_sum", "reduce_max", "reduce_min", "reduce_mean"]


def _shapes_of_size(size: int) -> list[tuple[int, ...]]:
    options = [(size,), (1, size), (size, 1)]
    for a in range(2, size):
        if size % a == 0:
            options += [(a, size // a), (a, 1, size // a)]
    return options


@st.composite
def random_graphs(draw: st.DrawFn) -> Graph:
    graph = Graph("random")
    nodes = [graph.add_param("x", TensorType((2, 3), F64)), graph.add_param("y", TensorType((3,), F64)),
             graph.add_param("z", TensorType((2, 1), F64)), graph.add_param("w", TensorType((3, 3), F64)),
             graph.add_param("v", TensorType((2, 1, 3), F64))]
    for _ in range(draw(st.integers(2, 12))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "view", "matmul", "select",
                                     "concat", "constant"]))
        pick = lambda: draw(st.sampled_from(nodes))  # noqa: E731
        try:
            nodes.append(_random_op(draw, graph, kind, pick))
        except (OpError, ValueError):
            continue
    count = draw(st.integers(1, 3))
    outputs = [nodes[-1]] + [draw(st.sampled_from(nodes)) for _ in range(count - 1)]
    graph.outputs = outputs
    graph.remove_dead()
    return graph


def _random_op(draw: st.DrawFn, graph: Graph, kind: str, pick) -> int:
    if kind == "unary":
        return graph.add(draw(st.sampled_from(UNARY)), [pick()])
    if kind == "binary":
        a, b = pick(), pick()
        broadcast_shapes(graph.node(a).type.shape, graph.node(b).type.shape)
        return graph.add(draw(st.sampled_from(BINARY)), [a, b])
    if kind == "reduce":
        x = pick()
        rank = graph.node(x).type.rank
        axes = tuple(sorted(draw(st.sets(st.integers(0, max(rank - 1, 0)), max_size=rank)))) if rank else ()
        return graph.add(draw(st.sampled_from(REDUCE)), [x], {"axes": axes, "keepdims": draw(st.booleans())})
    if kind == "view":
        x = pick()
        shape = graph.node(x).type.shape
        view = draw(st.sampled_from(["transpose", "reshape", "broadcast_to", "slice"]))
        if view == "transpose":
            perm = tuple(draw(st.permutations(range(len(shape)))))
            return graph.add("transpose", [x], {"perm": perm})
        if view == "reshape":
            return graph.add("reshape", [x], {"shape": draw(st.sampled_from(_shapes_of_size(math.prod(shape))))})
        if view == "broadcast_to":
            return graph.add("broadcast_to", [x], {"shape": draw(st.sampled_from([(2, 3), (2, 2, 3), (3, 3)]))})
        starts = tuple(draw(st.integers(0, max(d - 1, 0))) for d in shape)
        stops = tuple(draw(st.integers(s + 1, d)) if d > s else d for s, d in zip(starts, shape))
        steps = tuple(draw(st.integers(1, 2)) for _ in shape)
        return graph.add("slice", [x], {"starts": starts, "stops": stops, "steps": steps})
    if kind == "matmul":
        return graph.add("matmul", [pick(), pick()])
    if kind == "select":
        a, b = pick(), pick()
        cond = graph.add(draw(st.sampled_from(["lt", "ge"])), [a, b])
        return graph.add("select", [cond, a, pick()])
    if kind == "concat":
        a, b = pick(), pick()
        return graph.add("concat", [a, b], {"axis": 0})
    shape = draw(st.sampled_from([(), (2, 3)]))
    return graph.add_constant(draw(st.sampled_from([0.5, -2.0, 3.0])), TensorType(shape, F64))


def _acyclic(graph: Graph, groups: list[set[int]]) -> bool:
    owner = {n: i for i, g in enumerate(groups) for n in g}
    quotient = nx.DiGraph()
    quotient.add_nodes_from(("n", n) for n in graph.nx.nodes)
    for source, target in graph.nx.edges():
        a, b = owner.get(source, ("n", source)), owner.get(target, ("n", target))
        if a != b:
            quotient.add_edge(a, b)
    return nx.is_directed_acyclic_graph(quotient)


@st.composite
def random_groupings(draw: st.DrawFn, graph: Graph) -> list[set[int]]:
    """Groups grown from random seeds along random edges, keeping each step that `ir.groups` accepts
    and that keeps the groups acyclic."""
    candidates = [n for n in graph.topological_order() if graph.node(n).op != "param"]
    taken: set[int] = set()
    groups: list[set[int]] = []
    for seed in draw(st.permutations(candidates)):
        if seed in taken or not draw(st.booleans()):
            continue
        members = {seed}
        for _ in range(draw(st.integers(0, 6))):
            frontier = sorted({n for m in members for n in graph.operands(m) + graph.users(m)}
                              - members - taken - set(graph.params))
            if not frontier:
                break
            grown = members | {draw(st.sampled_from(frontier))}
            try:
                classify_group(graph, grown)
            except GroupError:
                continue
            if _acyclic(graph, groups + [grown]):
                members = grown
        try:
            classify_group(graph, members)
        except GroupError:
            continue
        if _acyclic(graph, groups + [members]):
            groups.append(members)
            taken |= members
    return groups


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_graphs_with_random_groups(data: st.DataObject) -> None:
    graph = data.draw(random_graphs())
    groups = data.draw(random_groupings(graph))
    grouped = assign_groups(graph, groups)
    schedule = data.draw(st.sampled_from([NaiveSchedule("none"), NaiveSchedule("all")]))
    lowered = lower(grouped, schedule)
    program = lowered.program
    assert verify_program(program) == []

    inputs = random_inputs(graph, seed=1)
    expected = run_graph(graph, inputs)
    actual = run_program(program, inputs)
    for index, (got, want) in enumerate(zip(actual, expected)):
        result = compare(got, want, graph.node(graph.outputs[index]).type.dtype, f"output {index}")
        assert result.ok, result.message

    split = {k.attr("split_group") for k in program.kernels.values()} - {None}
    per_group: dict[int, int] = {}
    for kernel in program.kernels.values():
        if kernel.attr("group") is not None:
            per_group[kernel.attr("group")] = per_group.get(kernel.attr("group"), 0) + 1
    assert all(count == 1 for count in per_group.values()), per_group

    owner = {}
    for kernel in program.kernels.values():
        for node in kernel.attr("nodes"):
            owner[node] = kernel.name
    node_of = {buffer.name: node for node, buffer in lowered.buffers.items()}
    for name in program.intermediates:
        node = node_of[name]
        users = [u for u in graph.users(node) if u in owner]
        assert any(owner[u] != owner[node] for u in users), f"%{node} is stored but used only in its kernel"
    for group, members in enumerate(groups):
        if group in split:
            continue
        for node in members:
            if node in node_of.values() and not graph.is_output(node):
                assert any(u not in members and u in owner for u in graph.users(node))
