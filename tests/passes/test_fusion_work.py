"""The fusion passes check each candidate group a bounded number of times: the number of legality
checks (`Fuser._check`) and of group classifications (`fusion_queries.classify_local`) grows in
proportion to the number of layers of a model, never with its square. Counted, not timed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from compiler.driver import Source
from ir.graph import Graph
from passes import fusion_engine
from passes.context import PassContext
from passes.manager import PassManager
from passes.pipeline import build_passes, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]
FUSION = "fuse-epilogue,fuse-reductions,fuse-elementwise"


def decode_graph(layers: int) -> Graph:
    graph = Source.from_file(ROOT / "examples" / "llama_decode.nk").specialize({"L": layers}, None)
    graph.remove_dead()
    return PassManager(build_passes(parse_pipeline("canonicalize,cse,dce"))).run(graph, PassContext())


def count_work(graph: Graph, monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Legality checks and classifications the fusion pipeline does on `graph`."""
    counts: Counter = Counter()
    check, classify = fusion_engine.Fuser._check, fusion_engine.classify_local

    def counted_check(self, graph, union):  # noqa: ANN001, ANN202 - a transparent wrapper
        counts["checks"] += 1
        return check(self, graph, union)

    def counted_classify(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        counts["classifications"] += 1
        return classify(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(fusion_engine.Fuser, "_check", counted_check)
        patch.setattr(fusion_engine, "classify_local", counted_classify)
        PassManager(build_passes(parse_pipeline(FUSION))).run(graph, PassContext())
    return counts


def test_checks_per_layer_stay_the_same_as_the_model_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    graphs = {layers: decode_graph(layers) for layers in (2, 4, 8)}
    counts = {layers: count_work(graph, monkeypatch) for layers, graph in graphs.items()}
    for kind in ("checks", "classifications"):
        per_layer_small = (counts[4][kind] - counts[2][kind]) / 2
        per_layer_large = (counts[8][kind] - counts[4][kind]) / 4
        # Quadratic work (re-checking every earlier group for each new one) would double the cost of a
        # layer from 4 to 8 layers; linear work keeps it the same.
        assert 0 < per_layer_large <= 1.1 * per_layer_small, (kind, counts)
        # Each node is checked a few times (once per pass it might join, plus retries), not per layer.
        assert counts[8][kind] <= 4 * len(graphs[8]), (kind, counts[8], len(graphs[8]))
