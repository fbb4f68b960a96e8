"""Property tests: the fusion pipeline on random DAGs keeps the graph valid, acyclic and its values.

The generator builds graphs from elementwise ops (with broadcasts and splat constants), reductions
(any axes, with and without keepdims), matmuls, views (transpose, reshape, broadcast_to, slice) and
selects, drawing operands from every earlier value so that many values have several consumers. After
the default -O2 pipeline (verifier after every pass): every group is accepted by classify_group, the
graph of kernels is acyclic, and the reference interpreter gives the same outputs before and after.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.checking import compare
from compiler.inputs import random_inputs
from ir.dtypes import DType
from ir.graph import Graph
from ir.graph_printer import print_graph
from ir.graph_verifier import verify_graph
from ir.groups import classify_group
from ir.interpreter import run_graph
from ir.types import TensorType, broadcast_shapes
from passes.context import PassContext
from passes.fusion_common import kernels_acyclic
from passes.pipeline import DEFAULT_PIPELINES

F32 = DType.F32
UNARY = ["exp", "tanh", "neg", "relu", "sigmoid", "abs", "gelu"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


@st.composite
def random_graphs(draw: st.DrawFn) -> Graph:
    graph = Graph("random")
    names = itertools.count()
    pool = [graph.add_param(f"p{next(names)}", TensorType(shape, F32))
            for shape in ((3, 4), (3, 4), (4,), (3, 1))]

    def pick(condition=lambda node: True) -> int | None:
        choices = [n for n in pool if condition(graph.node(n).type.shape)]
        return draw(st.sampled_from(choices)) if choices else None

    for _ in range(draw(st.integers(3, 16))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "constant", "reduce", "matmul", "view",
                                     "select"]))
        if kind == "unary":
            pool.append(graph.add(draw(st.sampled_from(UNARY)), [pick()]))
        elif kind == "binary":
            a = pick()
            b = pick(lambda shape: _broadcasts(shape, graph.node(a).type.shape))
            pool.append(graph.add(draw(st.sampled_from(BINARY)), [a, b]))
        elif kind == "constant":
            value = draw(st.sampled_from([0.0, 1.0, 2.0, -0.5]))
            constant = graph.add_constant(value, TensorType((), F32))
            pool.append(graph.add(draw(st.sampled_from(["add", "mul", "sub", "maximum"])), [pick(), constant]))
        elif kind == "reduce":
            a = pick(lambda shape: len(shape) >= 1)
            rank = graph.node(a).type.rank
            axes = tuple(sorted(draw(st.sets(st.integers(0, rank - 1), min_size=1, max_size=rank))))
            op = draw(st.sampled_from(["reduce_sum", "reduce_max", "reduce_mean"]))
            pool.append(graph.add(op, [a], {"axes": axes, "keepdims": draw(st.booleans())}))
        elif kind == "matmul":
            a = pick(lambda shape: len(shape) == 2)
            if a is None:
                continue
            inner = graph.node(a).type.shape[1]
            weight = graph.add_param(f"p{next(names)}", TensorType((inner, draw(st.sampled_from([2, 4]))), F32))
            pool.append(graph.add("matmul", [a, weight]))
        elif kind == "view":
            a = pick(lambda shape: len(shape) >= 1)
            shape = graph.node(a).type.shape
            view = draw(st.sampled_from(["transpose", "reshape", "broadcast_to", "slice"]))
            if view == "transpose":
                pool.append(graph.add("transpose", [a], {"perm": tuple(reversed(range(len(shape))))}))
            elif view == "reshape":
                pool.append(graph.add("reshape", [a], {"shape": (graph.node(a).type.size,)}))
            elif view == "broadcast_to":
                pool.append(graph.add("broadcast_to", [a], {"shape": (2,) + shape}))
            else:
                stops = tuple(max(1, d // 2) for d in shape)
                pool.append(graph.add("slice", [a], {"starts": (0,) * len(shape), "stops": stops,
                                                     "steps": (1,) * len(shape)}))
        else:
            a = pick()
            b = pick(lambda shape: _broadcasts(shape, graph.node(a).type.shape))
            condition = graph.add("gt", [a, b])
            pool.append(graph.add("select", [condition, a, b]))
    computed = [n for n in pool if graph.node(n).op != "param"]
    sinks = [n for n in computed if not graph.users(n)]
    extra = draw(st.lists(st.sampled_from(computed), max_size=2, unique=True)) if computed else []
    graph.outputs = sinks + [n for n in extra if n not in sinks]
    if not graph.outputs:
        graph.outputs = [graph.add("neg", [pool[0]])]
    graph.remove_dead()
    return graph


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(graph=random_graphs(), seed=st.integers(0, 3))
def test_fusion_pipeline_keeps_graphs_valid_acyclic_and_equal(graph: Graph, seed: int, run_passes) -> None:
    assert verify_graph(graph) == []
    ctx = PassContext()
    fused = run_passes(graph, DEFAULT_PIPELINES[2], ctx=ctx)
    assert verify_graph(fused) == []
    for members in fused.groups().values():
        classify_group(fused, members)  # raises GroupError when a group breaks the contract
    assert kernels_acyclic(fused)
    inputs = random_inputs(graph, seed)
    for index, (want, got) in enumerate(zip(run_graph(graph, inputs), run_graph(fused, inputs))):
        result = compare(got, want, F32, f"output {index}")
        assert result.ok, result.message
    for decision in ctx.fusion_log:
        assert decision.fused or decision.category and decision.reason
    # Without a fusion log the passes skip what only the log needs (exact refusal reasons, trial copies
    # made only to word a refusal): the groups must be the same.
    unrecorded = run_passes(graph, DEFAULT_PIPELINES[2], ctx=PassContext(record=False))
    assert print_graph(unrecorded) == print_graph(fused)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(graph=random_graphs(), limit=st.sampled_from([48, 96, 200]))
def test_every_group_respects_the_working_set_limit(graph: Graph, limit: int, run_passes) -> None:
    from passes.fusion_cost import working_set
    fused = run_passes(graph, "fuse-epilogue,fuse-reductions,fuse-elementwise", working_set_limit=limit)
    for members in fused.groups().values():
        read, written = working_set(fused, members)
        assert read + written <= limit
