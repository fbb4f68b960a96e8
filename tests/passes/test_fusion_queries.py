"""The questions the fusion engine asks (passes/fusion_queries.py) and what a pipeline keeps when nobody
reads the fusion log: `local_order` is the lexicographic topological order of a group's neighbourhood,
whether or not node ids follow the edges, and switching the log off changes no graph."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.driver import Source
from ir.dtypes import DType
from ir.graph import Graph
from ir.graph_printer import print_graph
from ir.groups import GroupError
from ir.types import TensorType
from passes.context import PassContext
from passes.fusion_queries import local_order
from passes.manager import PassManager
from passes.pipeline import build_passes, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]
VALUE = TensorType((2,), DType.F32)


@st.composite
def dags_with_late_operands(draw: st.DrawFn) -> Graph:
    """Random DAGs in which some nodes read values created after them (as copies placed by the fusion
    passes and rewrites by canonicalize are), so ids do not always follow the edges."""
    graph = Graph("dag")
    nodes = [graph.add_param("x", VALUE)]
    for _ in range(draw(st.integers(3, 20))):
        operands = draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=2))
        nodes.append(graph.add("neg" if len(operands) == 1 else "add", operands))
    for _ in range(draw(st.integers(0, 4))):
        user = draw(st.sampled_from(nodes[1:]))
        index = draw(st.integers(0, len(graph.operands(user)) - 1))
        late = graph.add("abs", [graph.operands(user)[index]])  # a newer node computing from an ancestor
        graph.set_operand(user, index, late)
        nodes.append(late)
    graph.outputs = [n for n in graph.nx.nodes if not graph.users(n)]
    return graph


def reference_order(graph: Graph, members: set[int]) -> list[int]:
    """The members in networkx's lexicographic topological order of the neighbourhood: the members and
    the outside values they read, with the edges into members (outside values are ready at once)."""
    neighbourhood = nx.DiGraph()
    neighbourhood.add_nodes_from(members)
    for member in members:
        for source in graph.operands(member):
            neighbourhood.add_edge(source, member)
    return [n for n in nx.lexicographical_topological_sort(neighbourhood) if n in members]


@settings(max_examples=200, deadline=None)
@given(graph=dags_with_late_operands(), data=st.data())
def test_local_order_is_the_lexicographic_order_of_the_neighbourhood(graph: Graph, data: st.DataObject) -> None:
    operations = sorted(n for n in graph.nx.nodes if graph.node(n).op != "param")
    members = set(data.draw(st.lists(st.sampled_from(operations), min_size=1, max_size=6)))
    reads_and_feeds = [source for member in members for source in graph.operands(member)
                       if source not in members and any(o in members for o in graph.operands(source))]
    if reads_and_feeds:
        with pytest.raises(GroupError, match=f"%{min(reads_and_feeds)} "):
            local_order(graph, members)
    else:
        assert local_order(graph, members) == reference_order(graph, members)


def fused(record: bool) -> tuple[str, PassContext]:
    graph = Source.from_file(ROOT / "examples" / "llama_decode.nk").specialize({"L": 3}, None)
    graph.remove_dead()
    ctx = PassContext(record=record)
    pipeline = "canonicalize,cse,dce,fuse-epilogue,fuse-reductions,fuse-elementwise"
    return print_graph(PassManager(build_passes(parse_pipeline(pipeline))).run(graph, ctx)), ctx


def test_without_a_record_the_passes_form_the_same_groups_and_keep_no_log() -> None:
    recorded, with_log = fused(record=True)
    unrecorded, without_log = fused(record=False)
    assert unrecorded == recorded
    assert with_log.fusion_log and not without_log.fusion_log
    assert "traffic_removed" in with_log.stats_of("fuse-epilogue")[0].counters
    assert not without_log.stats_of("fuse-epilogue")
