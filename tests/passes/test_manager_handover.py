"""The pass manager hands a graph one of Niche's passes made to the next pass to change in place
(`PassContext.owns_input`), and never a graph anyone else may hold: the caller's, a plugin's result, or
any graph while verifying or instrumented. In place or on a copy, every pass computes the same graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from ir.graph import Graph
from ir.graph_printer import print_graph
from passes import manager as manager_module
from passes.context import PassContext
from passes.instruments import Timing
from passes.manager import PassManager, fingerprint
from passes.pipeline import DEFAULT_PIPELINES, build_passes, parse_pipeline
from passes.registry import Pass, register_pass

ROOT = Path(__file__).resolve().parents[2]
FUSION = "fuse-epilogue,fuse-reductions,fuse-elementwise"


@pytest.fixture(autouse=True)
def _no_verifying(monkeypatch: pytest.MonkeyPatch):
    """Verifying switches the hand-over off; these tests look at the pipeline as the driver runs it."""
    monkeypatch.setattr(manager_module, "VERIFY_EACH_DEFAULT", False)


def _example(graph_of, name: str, defines: dict[str, int] | None = None) -> Graph:
    return graph_of((ROOT / "examples" / name).read_text(), defines)


class _Spy(PassManager):
    """Records, for every pass, whether it was handed its input and whether it returned that object."""

    def __init__(self, *args, **keywords) -> None:
        super().__init__(*args, **keywords)
        self.seen: list[tuple[str, bool, bool]] = []

    def _run_one(self, pass_, graph, ctx):
        result = super()._run_one(pass_, graph, ctx)
        self.seen.append((pass_.name, ctx.owns_input, result is graph))
        return result


def _run(pipeline: str, graph: Graph, record: bool = False, **keywords) -> tuple[Graph, _Spy]:
    spy = _Spy(build_passes(parse_pipeline(pipeline)), **keywords)
    return spy.run(graph, PassContext(record=record)), spy


@pytest.mark.parametrize("name, defines", [("llama_decode.nk", {"L": 3}), ("mlp.nk", None),
                                           ("video_diffusion.nk", None), ("attention.nk", None)])
def test_in_place_and_copied_passes_compute_the_same_graph(graph_of, name: str, defines) -> None:
    graph = _example(graph_of, name, defines)
    before = fingerprint(graph)
    handed, spy = _run(DEFAULT_PIPELINES[2], graph)
    copied, _ = _run(DEFAULT_PIPELINES[2], graph, instruments=[Timing()])  # an instrument: never handed over
    assert print_graph(handed) == print_graph(copied)
    assert fingerprint(handed)[1:] == fingerprint(copied)[1:]  # node ids too (reports name kernels by them)
    assert fingerprint(graph) == before  # the caller's graph is never changed
    # canonicalize makes a new graph, so every fusion pass after it works in place and returns its input
    assert [seen for seen in spy.seen if seen[0].startswith("fuse-")] == [
        ("fuse-epilogue", True, True), ("fuse-reductions", True, True), ("fuse-elementwise", True, True)]


def test_the_callers_graph_is_handed_over_only_when_it_says_so(graph_of) -> None:
    graph = _example(graph_of, "mlp.nk")
    before = fingerprint(graph)
    _, spy = _run(FUSION, graph)
    assert spy.seen[0] == ("fuse-epilogue", False, False) and fingerprint(graph) == before
    owned = graph.copy()
    result = _Spy(build_passes(parse_pipeline(FUSION))).run(owned, PassContext(record=False), owned=True)
    assert result is owned


def test_no_hand_over_while_verifying_or_recording(graph_of) -> None:
    graph = _example(graph_of, "mlp.nk")
    _, verifying = _run("canonicalize," + FUSION, graph, verify_each=True)
    assert not any(owns for _, owns, _ in verifying.seen)
    recorded, spy = _run("canonicalize," + FUSION, graph, record=True)
    # handed over, but a recording fusion pass still works on a copy (its log reads the graph as given)
    assert [(name, same) for name, _, same in spy.seen if name.startswith("fuse-")] == [
        ("fuse-epilogue", False), ("fuse-reductions", False), ("fuse-elementwise", False)]
    assert print_graph(recorded) == print_graph(_run("canonicalize," + FUSION, graph)[0])


def test_a_plugins_result_is_never_handed_on(graph_of) -> None:
    kept: list[Graph] = []

    @register_pass
    class KeepsItsResult(Pass):  # a plugin that holds on to the graph it returns
        name = "keeps-its-result"
        summary = "returns a copy it also keeps"

        def run(self, graph: Graph, ctx: PassContext) -> Graph:
            kept.append(graph.copy())
            return kept[-1]

    graph = _example(graph_of, "mlp.nk")
    result, spy = _run("canonicalize,keeps-its-result," + FUSION, graph)
    assert spy.seen[2] == ("fuse-epilogue", False, False)
    assert result is not kept[0] and all(node.group is None for _, node in kept[0].nodes())
