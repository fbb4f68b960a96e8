"""The fusion passes do work linear in the size of the program: their legality searches are bounded
by a topological order of the graph of kernels (`passes.fusion_order`), so the nodes they visit grow in
proportion to the number of layers of a model. Counted, not timed: each pass reports the nodes its
searches visited as the `visited` counter of its statistics."""

from __future__ import annotations

from pathlib import Path

from compiler.driver import Source
from ir.graph import Graph
from passes.context import PassContext
from passes.manager import PassManager
from passes.pipeline import build_passes, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]
FUSION = ("fuse-epilogue", "fuse-reductions", "fuse-elementwise")


def decode_graph(layers: int) -> Graph:
    graph = Source.from_file(ROOT / "examples" / "llama_decode.nk").specialize({"L": layers}, None)
    graph.remove_dead()
    return PassManager(build_passes(parse_pipeline("canonicalize,cse,dce"))).run(graph, PassContext())


def visited(graph: Graph) -> dict[str, int]:
    ctx = PassContext()
    PassManager(build_passes(parse_pipeline(",".join(FUSION)))).run(graph, ctx)
    return {stats.pass_name: stats.counters["visited"] for stats in ctx.stats}


def test_nodes_visited_grow_linearly_with_the_layers() -> None:
    graphs = {layers: decode_graph(layers) for layers in (2, 4, 8)}
    counts = {layers: visited(graph) for layers, graph in graphs.items()}
    for name in FUSION:
        # What each added layer costs stays the same as the model grows. A search over the whole
        # downstream graph for every candidate, as before, costs twice as much per layer at twice the
        # layers (about 13,800 more nodes per layer from 2 to 4 layers, 27,000 from 4 to 8).
        per_layer_small = (counts[4][name] - counts[2][name]) / 2
        per_layer_large = (counts[8][name] - counts[4][name]) / 4
        assert 0 < per_layer_large <= 1.1 * per_layer_small, (name, counts)
        assert counts[8][name] <= 4 * len(graphs[8]), (name, counts[8], len(graphs[8]))
