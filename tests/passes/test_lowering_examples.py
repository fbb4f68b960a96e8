"""Every example program, at tiny sizes, lowered unfused, with greedy fusion groups and after the
default graph pipeline: the loop verifier accepts it and every kernel (within a work budget) matches
the reference interpreter, and every fusion group is one kernel.

The loop-IR evaluator is slow (one Python call per scalar op), so each kernel runs on the
interpreter's values of its inputs and kernels over the budget (the biggest matmuls) are skipped; a
new example gets its defaults and a smaller budget until it is added to TINY.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from compiler.driver import Source, compile
from ir.graph import Graph
from ir.groups import GroupError, assign_groups, classify_group
from ir.loop_parser import parse_program
from ir.loop_printer import print_program
from passes.lowering import lower_to_loops
from passes.lowering.check import check_kernels

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.nk"))

TINY: dict[str, dict[str, int]] = {
    "attention": {"B": 1, "S": 3, "H": 2, "Dh": 2},
    "code_completion": {"B": 1, "P": 2, "T": 3, "L": 1, "D": 4, "Hq": 2, "Hkv": 1, "Dh": 2, "F": 4, "V": 5},
    "llama_decode": {"B": 1, "T": 2, "L": 1, "D": 4, "Hq": 2, "Hkv": 1, "Dh": 2, "F": 4, "V": 5},
    "llama_prefill": {"B": 1, "S": 2, "L": 1, "D": 4, "Hq": 2, "Hkv": 1, "Dh": 2, "F": 4, "V": 5},
    "decoder_layer": {"B": 1, "S": 2, "D": 4, "Hq": 2, "Hkv": 1, "Dh": 2, "F": 4},
    "mlp": {"B": 1},
    "sparse_mlp": {"N": 2, "D": 16, "F": 16},
    "video_diffusion": {"B": 1, "FR": 2, "HH": 1, "WW": 2, "NB": 1, "D": 8, "H": 2},
}


def example_graph(path: Path) -> Graph:
    return Source.from_file(path).specialize(TINY.get(path.stem, {}), None)


def greedy_groups(graph: Graph) -> Graph:
    """Producer-into-consumer fusion, as simple as it gets: from the last node back, each group takes
    in operands whose every user is already in it, while `ir.groups` accepts the group and the groups
    stay acyclic."""
    grouped: dict[int, int] = {}
    groups: list[set[int]] = []
    for node in reversed(graph.topological_order()):
        if node in grouped or graph.node(node).op == "param":
            continue
        members = {node}
        changed = True
        while changed:
            changed = False
            for member in sorted(members):
                for operand in graph.operands(member):
                    if operand in members or operand in grouped or graph.node(operand).op == "param":
                        continue
                    if not set(graph.users(operand)) <= members or graph.is_output(operand):
                        continue
                    try:
                        classify_group(graph, members | {operand})
                    except GroupError:
                        continue
                    members.add(operand)
                    changed = True
        try:
            classify_group(graph, members)
        except GroupError:
            continue
        if not _acyclic(graph, groups + [members]):
            continue
        groups.append(members)
        for member in members:
            grouped[member] = len(groups) - 1
    return assign_groups(graph, groups)


def _acyclic(graph: Graph, groups: list[set[int]]) -> bool:
    owner = {n: i for i, g in enumerate(groups) for n in g}
    quotient = nx.DiGraph()
    for source, target in graph.nx.edges():
        a, b = owner.get(source, ("n", source)), owner.get(target, ("n", target))
        if a != b:
            quotient.add_edge(a, b)
    return nx.is_directed_acyclic_graph(quotient)


@pytest.mark.parametrize("grouping", ["unfused", "greedy-fused", "pipeline"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_lowers_and_matches(path: Path, grouping: str) -> None:
    """Unfused, with the greedy groups above, and as the driver's default graph pipeline (the real
    fusion passes) leaves it."""
    graph = example_graph(path)
    if grouping == "greedy-fused":
        graph = greedy_groups(graph)
        assert graph.groups(), "greedy fusion found no group"
    elif grouping == "pipeline":
        graph = compile(path, target="ref", defines=TINY.get(path.stem, {})).graph
    budget = 200_000 if path.stem in TINY else 20_000
    check = check_kernels(graph, budget=budget)
    assert check.ok, check.report()
    kernel_groups = [k.attr("group") for k in check.program.kernels.values() if k.attr("group") is not None]
    assert len(kernel_groups) == len(set(kernel_groups)), "a group became several kernels"
    assert all(k.attr("split_group") is None for k in check.program.kernels.values())
    assert parse_program(print_program(check.program)).kernels == check.program.kernels
    assert len(check.results) >= len(check.program.calls) - len(check.skipped)
    assert len(check.skipped) <= max(1, len(check.program.calls) // 4), (
        f"kernels too big for the loop evaluator: {check.skipped}; give {path.stem} tiny sizes in TINY")


def test_fused_example_has_fewer_kernels_and_buffers() -> None:
    graph = example_graph(ROOT / "examples" / "mlp.nk")
    plain = lower_to_loops(graph)
    fused = lower_to_loops(greedy_groups(graph))
    assert len(fused.kernels) < len(plain.kernels)
    assert len(fused.intermediates) < len(plain.intermediates)
