"""`niche compare` shares work between targets without changing any figure: the optimised graph is built
once per distinct pipeline (`GraphBuilder`), counted once (`shared_counts`), never changed by pricing, and
every shared report equals the one the target gets alone. Also: `--option`/`--mesh` routing, internal
errors of one target, `--measure` on every target and the JSON round trip. Speed is checked by counting
work (pipeline runs, counter runs, graph copies), never by timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import compiler  # noqa: F401  (loads compiler.driver before targets.base, which it imports)
from compiler.diagnostics import ArgumentError
from compiler.driver import Program, Source
from ir.graph import Graph
from ir.graph_printer import print_graph
from passes.manager import fingerprint
from targets.base import CompileOptions, TargetError, get_target, target_names
from targets.comparison import (GraphBuilder, compare, option_value, parse_option, route_options,
                                run_comparison)
from targets.cost import CostReport

LLAMA = "examples/llama_decode.nk"
MLP = "examples/mlp.nk"
SMALL = {"B": 2}
ALL = ["cpu", "gpu:h100", "lpu", "wse:wse3"]


@pytest.fixture(autouse=True)
def _every_target_is_built() -> None:
    missing = {name.split(":")[0] for name in ALL} - set(target_names())
    if missing:
        pytest.skip(f"backends not built: {', '.join(sorted(missing))}")


def pricing_options(target: str = "ref", **changes: object) -> CompileOptions:
    return CompileOptions(target=target, defines=dict(SMALL), for_pricing=True, **changes)


def count_pipeline_runs(monkeypatch: pytest.MonkeyPatch) -> list[Graph]:
    """The graphs `run_graph_pipeline` is called on from now on (the driver imports it at each call)."""
    import passes.graph_pipeline as graph_pipeline
    runs: list[Graph] = []
    real = graph_pipeline.run_graph_pipeline

    def counting(graph: Graph, options: CompileOptions) -> Graph:
        runs.append(graph)
        return real(graph, options)

    monkeypatch.setattr(graph_pipeline, "run_graph_pipeline", counting)
    return runs


# -- the graph is built once --------------------------------------------------------------------------

def test_the_graph_is_built_once_for_every_default_pipeline_target(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = count_pipeline_runs(monkeypatch)
    source = Source.from_file(LLAMA)
    builder = GraphBuilder(source)
    reports, refused = compare(source, ALL, SMALL, builder=builder)
    assert refused == [] and [r.target for r in reports] == ALL
    assert builder.builds == 1 and len(runs) == 1  # not once per target, not again inside a target
    keys = {GraphBuilder.key(pricing_options(name)) for name in ALL}
    assert len(keys) == 1 and None not in keys
    assert builder.graph(pricing_options("lpu")) is builder.graph(pricing_options("cpu"))
    assert builder.builds == 1


def test_a_different_pipeline_is_a_different_build() -> None:
    builder = GraphBuilder(Source.from_file(MLP))
    o2 = builder.graph(pricing_options())
    o1 = builder.graph(pricing_options(opt_level=1))
    assert builder.builds == 2 and o1 is not o2
    assert o2.groups() and not o1.groups()  # -O2 fuses, -O1 does not
    assert builder.graph(pricing_options(opt_level=1)) is o1 and builder.builds == 2


def test_a_pipeline_that_reads_the_target_or_bound_weights_is_not_shared() -> None:
    import numpy as np
    builder = GraphBuilder(Source.from_file(MLP))
    sparsify = pricing_options("cpu", passes="canonicalize,dce,sparsify,fuse-elementwise")
    assert GraphBuilder.key(sparsify) is None and builder.graph(sparsify) is None
    weights = {"w1": np.zeros((784, 512), np.float32)}
    assert GraphBuilder.key(pricing_options("cpu", weights=weights)) is None
    assert builder.graph(pricing_options("cpu", weights=weights)) is None
    assert builder.builds == 0
    assert GraphBuilder.key(pricing_options("cpu", passes="canonicalize,dce")) is not None


# -- pricing does not change numbers, nor the shared graph ----------------------------------------------

def test_pricing_on_every_target_leaves_the_shared_graph_unchanged() -> None:
    source = Source.from_file(LLAMA)
    builder = GraphBuilder(source)
    graph = builder.graph(pricing_options())
    before, text = fingerprint(graph), print_graph(graph)
    attributes, dims = dict(graph.attributes), dict(graph.dims)
    reports, _ = compare(source, ALL, SMALL, builder=builder)
    assert len(reports) == len(ALL)
    assert fingerprint(graph) == before and print_graph(graph) == text
    assert graph.attributes == attributes and graph.dims == dims


@pytest.mark.parametrize("chips,partition", [(None, "auto"), (2, "pipeline")])
def test_shared_reports_equal_the_reports_of_each_target_alone(chips: int | None, partition: str) -> None:
    source = Source.from_file(LLAMA)
    shared, refused = compare(source, ALL, SMALL, chips=chips, partition=partition)
    assert refused == []
    for report in shared:
        options = pricing_options(report.target, chips=chips, partition=partition)
        alone = get_target(report.target).estimate(Program(Source.from_file(LLAMA), options).artifact)
        assert report.latency == alone.latency, report.target
        assert report.total.flops_executed == alone.total.flops_executed, report.target
        assert [(k.name, k.cost) for k in report.kernels] == [(k.name, k.cost) for k in alone.kernels]
        assert report.to_dict() == alone.to_dict(), report.target  # sharing changes speed, never a number


# -- counting work, not time --------------------------------------------------------------------------

def test_counts_are_computed_once_per_graph_and_not_changed_by_the_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    import targets.graph_counts as graph_counts
    from targets.counts import count_graph, shared_counts
    counted: list[tuple[Graph, object]] = []
    real = graph_counts.GraphCounter.count

    def counting(self: graph_counts.GraphCounter):
        counts = real(self)
        counted.append((self.graph, counts))
        return counts

    monkeypatch.setattr(graph_counts.GraphCounter, "count", counting)
    source = Source.from_file(LLAMA)
    builder = GraphBuilder(source)
    graph = builder.graph(pricing_options())
    compare(source, ALL, SMALL, builder=builder)
    ids = [id(g) for g, _ in counted]
    assert ids.count(id(graph)) == 1 and len(ids) == len(set(ids))  # no graph counted twice
    shared = counted[ids.index(id(graph))][1]
    counted.clear()
    assert count_graph(graph) == shared  # counted afresh: the targets did not change the shared counts
    count_graph(graph)
    assert len(counted) == 2  # outside the block each call counts (the patch sees every run)
    counted.clear()
    with shared_counts():
        first = count_graph(graph)
        with shared_counts():
            assert count_graph(graph) is first  # an inner block reuses the outer one's counts
    assert len(counted) == 1


def test_one_frozen_graph_per_graph_is_shared_inside_the_block() -> None:
    """The graph's precomputed lookups (`targets.counts.frozen_graph`) are made once per graph inside
    `shared_counts()`, used by the counter, and never handed out for another graph."""
    from targets.counts import counted_graph, frozen_graph, shared_counts
    builder = GraphBuilder(Source.from_file(MLP))
    fused, plain = builder.graph(pricing_options()), builder.graph(pricing_options(opt_level=1))
    assert fused.name == plain.name and fused is not plain  # the same program, two graphs
    with shared_counts():
        first = frozen_graph(fused)
        assert frozen_graph(fused) is first and first.graph is fused
        other = frozen_graph(plain)
        assert other is not first and other.graph is plain
        assert other.order == plain.topological_order() and first.order == fused.topological_order()
        _, counter = counted_graph(fused)
        assert counter.node is first.payloads and counter.operands is first.operand_lists
    assert frozen_graph(fused) is not frozen_graph(fused)  # outside the block: made afresh


def test_the_pass_manager_copies_no_graph_for_builtin_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    from passes.context import PassContext
    from passes.manager import PassManager
    from passes.pipeline import build_passes, default_pipeline
    copies = {"inside": 0, "outside": 0}
    inside = [False]
    real_copy = Graph.copy

    def counting_copy(self: Graph, *args, **kwargs) -> Graph:
        copies["inside" if inside[0] else "outside"] += 1
        return real_copy(self, *args, **kwargs)

    def observed(pass_):
        run = pass_.run

        def wrapped(graph: Graph, ctx: PassContext) -> Graph:
            inside[0] = True
            try:
                return run(graph, ctx)
            finally:
                inside[0] = False
        return wrapped

    passes = build_passes(default_pipeline(2), "graph")
    for pass_ in passes:
        pass_.run = observed(pass_)
    graph = Source.from_file(LLAMA).specialize({"B": 2, "L": 4}, None)
    monkeypatch.setattr(Graph, "copy", counting_copy)
    PassManager(passes, verify_each=True).run(graph, PassContext())
    assert copies["outside"] == 0  # the manager itself copies nothing (snapshots are fingerprints)
    assert copies["inside"] <= len(passes)  # each pass copies its input at most once, whatever the size


# -- target options -----------------------------------------------------------------------------------

def test_option_values_are_typed() -> None:
    assert option_value("4") == 4 and isinstance(option_value("4"), int)
    assert option_value("0.25") == 0.25 and option_value("1e3") == 1000.0
    assert option_value("true") is True and option_value("False") is False
    assert option_value("8x8") == "8x8" and option_value("fp16") == "fp16"
    assert parse_option("wse.density=0.1") == ("wse", "density", 0.1)
    assert parse_option("wse:wse2.mesh=8x8") == ("wse:wse2", "mesh", "8x8")
    assert parse_option("threads=2") == (None, "threads", 2)
    for bad in ("mesh", "=3", "wse.=3", ".mesh=3", "wse.mesh-size=3"):
        with pytest.raises(ArgumentError, match=r"--option expects \[TARGET\.\]KEY=VALUE"):
            parse_option(bad)


def test_options_reach_only_the_targets_they_are_for() -> None:
    targets = ["cpu", "gpu:h100", "lpu", "wse:wse3", "wse:wse2"]
    routed = route_options(targets, [parse_option("wse.mesh=8x8"), parse_option("threads=2"),
                                     parse_option("wse:wse2.density=0.5"), parse_option("mxm_precision=fp16")])
    assert routed == {"cpu": {"threads": 2}, "gpu:h100": {}, "lpu": {"mxm_precision": "fp16"},
                      "wse:wse3": {"mesh": "8x8"}, "wse:wse2": {"mesh": "8x8", "density": 0.5}}


def test_an_option_no_target_takes_is_an_error_naming_who_takes_what() -> None:
    with pytest.raises(ArgumentError) as bare:
        route_options(["cpu", "lpu"], [parse_option("mesh=8x8")])
    message = str(bare.value)
    assert "--option mesh: none of the targets takes it" in message
    assert "cpu: cache_dir, disk_cache, schedule, threads" in message and "lpu: " in message
    with pytest.raises(ArgumentError, match="no target 'wse' in --targets"):
        route_options(["cpu"], [parse_option("wse.mesh=8x8")])
    with pytest.raises(ArgumentError, match="--option cpu.mesh: cpu does not take mesh"):
        route_options(["cpu", "wse:wse3"], [parse_option("cpu.mesh=8x8")])  # never silently ignored


def test_malformed_option_is_a_usage_error(niche_main) -> None:
    result = niche_main("compare", MLP, "--targets", "cpu", "--option", "threads")
    assert result.returncode == 2
    assert "--option expects [TARGET.]KEY=VALUE" in result.stderr and "Traceback" not in result.stderr
    unknown = niche_main("compare", MLP, "--targets", "cpu,lpu", "--option", "mesh=8x8")
    assert unknown.returncode == 1 and "none of the targets takes it (cpu: " in unknown.stderr


def test_mesh_is_the_wse_mesh_option(niche_main) -> None:
    args = ("compare", MLP, "-D", "B=2", "--targets", "cpu,wse:wse3", "--json")
    by_mesh = json.loads(niche_main(*args, "--mesh", "8x8").stdout)
    by_option = json.loads(niche_main(*args, "--option", "wse.mesh=8x8").stdout)
    plain = json.loads(niche_main(*args).stdout)
    assert by_mesh["options"] == by_option["options"] == {"wse:wse3": {"mesh": "8x8"}}
    assert plain["options"] == {}
    assert by_mesh["reports"] == by_option["reports"]
    assert by_mesh["reports"][0] == plain["reports"][0]  # the cpu got nothing
    wse, full = by_mesh["reports"][1], plain["reports"][1]  # the wse priced wafers of that mesh
    assert wse["latency"] >= full["latency"] and wse["latency"] != full["latency"]
    assert wse["placement"]["capacity_per_chip"] < full["placement"]["capacity_per_chip"]
    assert "8x8" in wse["placement"]["reason"] and any("8x8" in a for a in wse["assumptions"])
    bad = niche_main("compare", MLP, "-D", "B=2", "--targets", "cpu,wse:wse3", "--mesh", "8by8")
    assert bad.returncode == 0 and "skipped wse:wse3: mesh must be written ROWSxCOLUMNS" in bad.stderr  # it reached the wse
    large = niche_main("compare", MLP, "-D", "B=2", "--targets", "cpu,wse:wse3", "--mesh", "2000x8")
    assert large.returncode == 0 and "Traceback" not in large.stderr
    assert "skipped wse:wse3: mesh 2000x8 (rows x columns) is larger than the usable mesh of wse3, 1200x750" in large.stderr
    alone = niche_main("compare", MLP, "-D", "B=2", "--targets", "cpu", "--mesh", "8x8")
    assert alone.returncode == 1 and "no target 'wse' in --targets" in alone.stderr


# -- one target's internal error ----------------------------------------------------------------------

def _break_estimate(monkeypatch: pytest.MonkeyPatch, name: str, error: Exception) -> None:
    def estimate(self, artifact):
        raise error

    monkeypatch.setattr(type(get_target(name)), "estimate", estimate)


def test_an_internal_error_in_one_target_leaves_the_others(niche_main, monkeypatch: pytest.MonkeyPatch) -> None:
    _break_estimate(monkeypatch, "lpu", RuntimeError("boom"))
    comparison = run_comparison(MLP, ["cpu", "lpu", "wse:wse3"], [], SMALL)
    assert [r.target for r in comparison.reports] == ["cpu", "wse:wse3"]
    (failed,) = comparison.errors
    assert failed.target == "lpu" and "RuntimeError: boom" in failed.error
    assert isinstance(failed.cause, RuntimeError) and comparison.skipped == []
    assert "lpu" not in comparison.winners().values()
    result = niche_main("compare", MLP, "-D", "B=2", "--targets", "cpu,lpu,wse:wse3")
    from compiler.cli import EXIT_INTERNAL
    assert result.returncode == EXIT_INTERNAL == 3
    header, latency = result.stdout.splitlines()[1:3]
    assert header.split() == ["cpu", "wse:wse3", "lpu"] and latency.rstrip().endswith("internal error")
    assert "internal error in target 'lpu': RuntimeError: boom" in result.stderr
    assert "this is a bug in Niche" in result.stderr and "Traceback" not in result.stderr
    data = json.loads(niche_main("compare", MLP, "-D", "B=2", "--targets", "cpu,lpu", "--json").stdout)
    assert [r["target"] for r in data["reports"]] == ["cpu"]
    assert data["errors"] == [{"target": "lpu", "error": failed.error}]


def test_every_target_failing_still_prints_and_exits_3(niche_main, monkeypatch: pytest.MonkeyPatch) -> None:
    _break_estimate(monkeypatch, "lpu", RuntimeError("boom"))
    result = niche_main("compare", MLP, "-D", "B=2", "--targets", "lpu")
    assert result.returncode == 3 and "internal error" in result.stdout and "Traceback" not in result.stderr
    data = json.loads(niche_main("compare", MLP, "-D", "B=2", "--targets", "lpu", "--json").stdout)
    assert data["reports"] == [] and data["program"] == "mlp" and data["errors"][0]["target"] == "lpu"


def test_a_target_error_is_a_refusal_not_an_internal_error(niche_main, monkeypatch: pytest.MonkeyPatch) -> None:
    _break_estimate(monkeypatch, "lpu", TargetError("lpu: no model for this"))
    comparison = run_comparison(MLP, ["cpu", "lpu"], [], SMALL)
    assert comparison.errors == [] and [r.target for r in comparison.reports] == ["cpu"]
    assert [(s.target, s.reason) for s in comparison.skipped] == [("lpu", "lpu: no model for this")]
    result = niche_main("compare", MLP, "-D", "B=2", "--targets", "cpu,lpu")
    assert result.returncode == 0 and "skipped lpu: lpu: no model for this" in result.stderr


# -- --measure ----------------------------------------------------------------------------------------

def test_measure_times_the_cpu_and_says_why_the_others_are_not(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    from targets.measure import measure
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the cpu target's object cache
    comparison = run_comparison(MLP, ["cpu", "lpu", "wse:wse3"], [], SMALL)
    import compiler.driver
    compiled: list[str] = []
    real_compile = compiler.driver.compile
    monkeypatch.setattr(compiler.driver, "compile", lambda *a, **k: compiled.append(k["target"]) or real_compile(*a, **k))
    heard: list[str] = []
    notes = measure(comparison, MLP, None, 2, repeats=2, note=heard.append)
    assert compiled == ["cpu"]  # targets that cannot time kernels are not compiled for real
    assert notes == heard and set(comparison.measured) == {"cpu"}
    cpu = comparison.reports[0]
    assert cpu.target == "cpu" and cpu.level == "loops"  # re-priced on the loop IR that ran
    seconds = comparison.measured["cpu"]
    assert set(seconds) == {k.name for k in cpu.kernels} and len(seconds) == len(cpu.kernels)
    assert all(isinstance(s, float) and s > 0 for s in seconds.values())
    for name in ("lpu", "wse:wse3"):
        (note,) = [n for n in notes if n.startswith(f"{name}: ")]
        assert "cannot time kernels on hardware; nothing measured" in note
    assert [r.target for r in comparison.reports] == ["cpu", "lpu", "wse:wse3"]


# -- JSON ---------------------------------------------------------------------------------------------

def test_json_round_trips_with_capacity_errors_and_options(niche_main, monkeypatch: pytest.MonkeyPatch) -> None:
    result = niche_main("compare", LLAMA, "-D", "B=2", "--targets", "gpu:h100,lpu", "--chips", "2",
                        "--partition", "pipeline", "--option", "gpu.tensor_cores=false", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["errors"] == [] and data["options"] == {"gpu:h100": {"tensor_cores": False}}
    assert data["chips"] == 2 and data["partition"] == "pipeline"  # --measure recompiles with these
    gpu = data["reports"][0]
    assert gpu["placement"]["strategy"] == "pipeline" and gpu["capacity"] is not None
    assert gpu["capacity"]["steps_in_flight"] > 1
    for report in data["reports"]:
        back = CostReport.from_dict(report)
        assert back.to_dict() == report
    assert CostReport.from_dict(gpu).capacity.interval == gpu["capacity"]["interval"]
    text = niche_main("compare", LLAMA, "-D", "B=2", "--targets", "gpu:h100,lpu", "--chips", "2",
                      "--partition", "pipeline").stdout
    assert "pipeline full +" in text and "+ not the program as given" in text
