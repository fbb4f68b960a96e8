"""Golden fusion results: the attention example's fused graph, and every softmax, layernorm and rmsnorm
of every example in exactly one group.

Regenerate the golden files after an intended change with `python tests/passes/test_golden_fusion.py`
and review the diff.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden")
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.nk"))
NORMS = ("softmax", "layernorm", "rmsnorm")


def prelude_lines() -> dict[str, range]:
    """The lines of each prelude function, from its `def` to the line before the next one."""
    lines = (ROOT / "compiler" / "prelude.nk").read_text().splitlines()
    starts = [(i + 1, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"def (\w+)\(", line))]
    ends = [start for start, _ in starts[1:]] + [len(lines) + 1]
    return {name: range(start, end) for (start, name), end in zip(starts, ends)}


def norm_instances(graph, name: str) -> list[set[int]]:
    """Each call of prelude function `name`: a connected set of nodes located in its body."""
    lines = prelude_lines()[name]
    inside = [n for n, node in graph.nodes() if node.loc is not None and node.loc.file == "<prelude>"
              and node.loc.line in lines]
    return [set(c) for c in nx.weakly_connected_components(graph.nx.subgraph(inside))]


def test_attention_graph_matches_the_golden_file(niche_main) -> None:
    result = niche_main("compile", "examples/attention.nk", "--emit", "graph")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (GOLDEN / "attention.graph").read_text()


def row_shapes(graph, instance: set[int]) -> set[tuple[int, ...]]:
    """The shapes a reduction kernel may compute: the domain it reduces and its reduced shapes."""
    shapes = set()
    for node in instance:
        payload = graph.node(node)
        if payload.op.startswith("reduce_"):
            domain = graph.node(graph.operands(node)[0]).type.shape
            axes = payload.attr("axes")
            shapes |= {domain, tuple(1 if i in axes else d for i, d in enumerate(domain)), payload.type.shape}
    return shapes


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_prelude_norm_is_one_group(example: str) -> None:
    """Each call's operations on rows are in one group. A call's ops on a broadcast operand (the
    `cast(weight)` the frontend adds when a bf16 weight meets f32 rows) are not: ir/groups.py lets a
    REDUCTION group hold only domain- and reduced-shaped values, which the last assert checks."""
    from compiler.driver import compile
    from ir.groups import GroupError, classify_group
    graph = compile(ROOT / "examples" / example).graph
    found = 0
    for name in NORMS:
        for instance in norm_instances(graph, name):
            shapes = row_shapes(graph, instance)
            rows = {n for n in instance if graph.node(n).type.shape in shapes}
            groups = {graph.node(n).group for n in rows}
            assert len(groups) == 1 and None not in groups, f"{example}: a {name} spans groups {groups}"
            (group,) = groups
            for node in instance - rows:
                with pytest.raises(GroupError, match="neither the reduced domain"):
                    classify_group(graph, set(graph.groups()[group]) | {node})
            found += 1
    if example != "sparse_mlp.nk":
        assert found, f"{example} calls no prelude norm: update the test"


def write_golden() -> None:
    from compiler.driver import compile
    GOLDEN.mkdir(exist_ok=True)
    text = compile(ROOT / "examples" / "attention.nk").ir("graph")
    (GOLDEN / "attention.graph").write_text(text if text.endswith("\n") else text + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    write_golden()
