"""Shared set-up for the pass tests: the verifier runs after every pass, registrations are undone.

`--verify-each` is always on here (passes.manager.VERIFY_EACH_DEFAULT), so every pipeline a test runs
checks each pass's result with ir/graph_verifier.py. Plugins a test loads, and passes or fusion rules
it registers, are forgotten when the test ends (passes.registry.isolated).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.driver import Source
from ir.graph import Graph
from passes import manager, registry
from passes.context import PassContext

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _verify_each_and_forget_registrations(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(manager, "VERIFY_EACH_DEFAULT", True)
    with registry.isolated():
        yield


def build_graph(text: str, defines: dict[str, int] | None = None) -> Graph:
    """The graph IR of .nk source text, straight from the frontend (no passes), dead values removed."""
    graph = Source.from_text(text).specialize(defines or {}, None)
    graph.remove_dead()
    return graph


def run_pipeline(graph: Graph, pipeline: str, ctx: PassContext | None = None, reproducer_dir: str | None = None,
                 **context: object) -> Graph:
    """Run a pipeline string over `graph` with verification after every pass."""
    from passes.pipeline import build_passes, parse_pipeline
    ctx = ctx if ctx is not None else PassContext(**context)
    manager_ = manager.PassManager(build_passes(parse_pipeline(pipeline)), verify_each=True,
                                   reproducer_dir=reproducer_dir)
    return manager_.run(graph, ctx)


@pytest.fixture
def graph_of():
    """graph_of(source_text, defines=None) -> Graph, before any pass."""
    return build_graph


@pytest.fixture(scope="session")
def reproducer_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where failing passes in tests write their reproducers (never the working tree)."""
    return str(tmp_path_factory.mktemp("niche-repro"))


@pytest.fixture
def run_passes(reproducer_dir: str):
    """run_passes(graph, "canonicalize,cse", ctx=None, **PassContext keywords) -> Graph."""
    def run(graph: Graph, pipeline: str, ctx: PassContext | None = None, **context: object) -> Graph:
        return run_pipeline(graph, pipeline, ctx, reproducer_dir, **context)
    return run
