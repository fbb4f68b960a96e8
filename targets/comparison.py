"""Pricing one program on several targets (what `niche compare` prints), and picking a winner per metric.

A target takes part only when its backend is built and has a cost model (`estimate`); anything else is
skipped with the reason, and never gets a number. `--target-spec FILE` adds a target of the file's kind
(`KIND:FILE`), so hardware that does not exist yet is priced by the same model as shipped chips.

The program is built and optimised once: the graph after the graph passes is the same for every target
whose passes do not read the target (all of the default pipelines; a pipeline with `sparsify`, which
prices formats on its target, or a target with its own fusion working-set limit gets its own run), so it
is built once per distinct pipeline and shared. Each target then compiles that graph with
`for_pricing=True` (it may stop before code generation, and runs its own target-specific steps) and its
`estimate` prices the artifact. Target-independent counts are shared too (`targets.counts.shared_counts`).
Pricing is checked not to change the shared graph (tests/targets/test_compare_sharing.py), which is also
what lets `targets.pricing_pool` price the targets in parallel worker processes (`--jobs`).

Outcomes per target: a `CostReport`; a refusal (`TargetError` or another user error, such as an op the
target does not support or an option it does not take), listed with its message; or an internal error
(a bug in that target's compiler or model), listed as such so that the command can exit non-zero while
still printing the other targets' figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from compiler.diagnostics import ArgumentError, InternalError, NicheError
from compiler.driver import Program, Source
from ir.graph import Graph
from passes.collector import collector_paused
from targets.base import CompileOptions, TargetError, get_target, target_names
from targets.cost import CostReport
from targets.counts import count_graph, frozen_graph, shared_counts
from targets.pricing_pool import price_in_workers, price_outcome, worker_count
from targets.spec import load_spec

SCHEMA = "niche.compare/1"
# Graph passes that read the target they compile for (`passes/sparsify.py` prices formats on it): a
# pipeline holding one is run per target, never shared.
TARGET_DEPENDENT_PASSES = frozenset({"sparsify"})


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    better: str  # "lower" or "higher"
    value: Callable[[CostReport], float | None]


def _per_step(report: CostReport, attribute: str) -> float | None:
    part = getattr(report, attribute)
    return None if part is None or not report.fits else (part.joules if attribute == "energy" else part.usd)


# The as-given figures (targets/report.py states the rule): one step of the program as written, each
# step waiting for the one before. Winners are picked on these only.
METRICS = (
    Metric("latency", "latency / step", "lower", lambda r: r.latency),
    Metric("tokens_per_second", "tokens/s (all users)", "higher",
           lambda r: r.tokens.tokens_per_second if r.tokens else None),
    Metric("tokens_per_second_per_user", "tokens/s per user", "higher",
           lambda r: r.tokens.tokens_per_second_per_user if r.tokens else None),
    Metric("steps_per_second", "steps/s", "higher", lambda r: 1.0 / r.latency if r.latency else None),
    Metric("energy", "energy / step", "lower", lambda r: _per_step(r, "energy")),
    Metric("joules_per_token", "energy / token", "lower",
           lambda r: r.tokens.joules_per_token if r.tokens else None),
    Metric("cost", "cost / step", "lower", lambda r: _per_step(r, "money")),
    Metric("usd_per_million_tokens", "cost / M tokens", "lower",
           lambda r: r.tokens.usd_per_million_tokens if r.tokens else None),
)


@dataclass(frozen=True)
class Skipped:
    target: str
    reason: str


@dataclass(frozen=True)
class Failed:
    """A target whose compiler or cost model raised an internal error (a bug in Niche)."""

    target: str
    error: str  # "ExceptionType: message"
    cause: BaseException | None = field(default=None, compare=False)


@dataclass
class Comparison:
    program: str
    file: str
    defines: dict[str, int | float | str]
    reports: list[CostReport] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    measured: dict[str, dict[str, float]] = field(default_factory=dict)  # target -> kernel -> seconds
    seconds: float = 0.0  # how long pricing took
    errors: list[Failed] = field(default_factory=list)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> the options it was given
    chips: int | None = None  # --chips, as given (None: each target's own choice)
    partition: str = "auto"  # --partition

    def winners(self) -> dict[str, str]:
        """Metric key -> the target that does best on it (among those that fit and report it)."""
        best: dict[str, str] = {}
        for metric in METRICS:
            scored = [(metric.value(r), r.target) for r in self.reports if metric.value(r) is not None]
            if not scored:
                continue
            pick = min(scored) if metric.better == "lower" else max(scored)
            best[metric.key] = pick[1]
        return best

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "program": self.program, "file": self.file, "defines": self.defines,
                "options": self.options, "reports": [r.to_dict() for r in self.reports],
                "winners": self.winners(),
                "skipped": [{"target": s.target, "reason": s.reason} for s in self.skipped],
                "errors": [{"target": f.target, "error": f.error} for f in self.errors],
                "chips": self.chips, "partition": self.partition, "measured": self.measured,
                "pricing_seconds": self.seconds}


def resolve_targets(names: list[str], spec_files: list[str]) -> tuple[list[str], list[Skipped]]:
    """The targets that can be priced, and those skipped with the reason. No names: every target of this
    build that has a cost model, with its default spec (plus the spec files)."""
    entries = list(names)
    if not entries:
        entries = [name for name in target_names() if callable(getattr(get_target(name), "estimate", None))]
    for path in spec_files:
        entries.append(f"{load_spec(path).kind}:{path}")
    usable: list[str] = []
    skipped: list[Skipped] = []
    for entry in entries:
        name = entry.split(":", 1)[0]
        if name not in target_names():
            skipped.append(Skipped(entry, f"no '{name}' backend in this build (built: {', '.join(target_names())})"))
            continue
        target = get_target(entry)
        if not callable(getattr(target, "estimate", None)):
            skipped.append(Skipped(entry, f"the {name} target has no cost model"))
            continue
        if entry not in usable:
            usable.append(entry)
    return usable, skipped


def batch_defines(source: Source, defines: dict, entry: str | None, batch: int | None) -> dict:
    """`--batch N` binds the program's batch dimension B."""
    if batch is None:
        return defines
    if batch < 1:
        raise ArgumentError(f"--batch must be at least 1, got {batch}")
    params, _ = source.signature({}, entry)
    if not any("B" in spec.dims for spec in params):
        raise ArgumentError(f"--batch binds the batch dimension B, which no parameter of {source.path} uses; "
                            "bind the program's own dimension with -D NAME=N")
    return {**defines, "B": batch}


# -- target options ----------------------------------------------------------------------------------

def option_value(text: str) -> int | float | bool | str:
    """A `--option` value: an int, a float, true/false, else the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_option(text: str) -> tuple[str | None, str, int | float | bool | str]:
    """`[TARGET.]KEY=VALUE` -> (the target it is for or None for all, key, value)."""
    name, sep, value = text.partition("=")
    scope, dot, key = name.rpartition(".")
    if not sep or not key.isidentifier() or (dot and not scope):
        raise ArgumentError(f"--option expects [TARGET.]KEY=VALUE (e.g. wse.density=0.1), got '{text}'")
    return (scope or None), key, option_value(value)


def accepted_options(target: object) -> frozenset[str] | None:
    """The `CompileOptions.extra` keys a target takes (its `options` attribute), None when it does not say."""
    declared = getattr(target, "options", None)
    return frozenset(declared) if declared is not None else None


def route_options(targets: list[str], options: list[tuple[str | None, str, Any]]) -> dict[str, dict[str, Any]]:
    """Target -> its `extra` options. `TARGET.KEY=VALUE` goes to the targets named TARGET (`wse` or
    `wse:wse2`), which must take KEY when they declare their options; a bare `KEY=VALUE` to every target
    that declares KEY, or to all of them when none declares its options. An option no listed target can
    take is an error naming who takes what (never silently ignored)."""
    routed: dict[str, dict[str, Any]] = {name: {} for name in targets}
    declared = {n: accepted_options(get_target(n)) for n in targets}
    for scope, key, value in options:
        if scope is not None:
            chosen = [n for n in targets if n == scope or n.split(":", 1)[0] == scope]
            if not chosen:
                raise ArgumentError(f"option {scope}.{key} (--option, or --mesh for wse) is for target '{scope}', "
                                    f"but there is no target '{scope}' in --targets ({', '.join(targets)})")
            refusing = {n: declared[n] for n in chosen if declared[n] is not None and key not in declared[n]}
            if refusing:
                raise ArgumentError(f"--option {scope}.{key}: {', '.join(refusing)} does not take {key} "
                                    f"({_takes(refusing)})")
        else:
            chosen = [n for n in targets if declared[n] is None or key in declared[n]]
            if not chosen:
                raise ArgumentError(f"--option {key}: none of the targets takes it ({_takes(declared)})")
        for name in chosen:
            routed[name][key] = value
    return routed


def _takes(declared: dict[str, frozenset[str] | None]) -> str:
    """'cpu: schedule, threads; lpu: ...': the options each target that declares them takes."""
    return "; ".join(f"{n}: {', '.join(sorted(d)) or 'none'}" for n, d in declared.items() if d is not None)


# -- pricing -----------------------------------------------------------------------------------------

class GraphBuilder:
    """The program's graph after the graph passes, built once per distinct pipeline and shared."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._graphs: dict[tuple, Graph] = {}
        self.builds = 0  # pipelines run (for tests: one for any number of default-pipeline targets)
        self.name = ""  # the program's name, once a graph is built

    @staticmethod
    def key(options: CompileOptions) -> tuple | None:
        """What the graph passes' result depends on besides the source, or None when it depends on the
        target itself (a pass that reads the target)."""
        from passes.graph_pipeline import working_set_limit
        from passes.pipeline import default_pipeline, parse_pipeline
        specs = default_pipeline(options.opt_level) if options.passes is None else parse_pipeline(options.passes)
        if options.weights or any(spec.name in TARGET_DEPENDENT_PASSES for spec in specs):
            return None
        return (tuple(sorted(options.defines.items())), options.entry, options.opt_level, options.passes,
                working_set_limit(options))

    def graph(self, options: CompileOptions) -> Graph | None:
        """The shared graph for `options`, or None when this target must run its own pipeline."""
        key = self.key(options)
        if key is None:
            return None
        if key not in self._graphs:
            limit = key[-1]
            shared = dataclasses.replace(options, target="ref", extra={}, fusion_working_set_limit=limit)
            self._graphs[key] = Program(self.source, shared).graph
            self.name = self._graphs[key].name
            self.builds += 1
        return self._graphs[key]


def price_target(builder: GraphBuilder, name: str, options: CompileOptions) -> CostReport:
    """One target's report. A TargetError (or other user error) is the target refusing the program; any
    other exception is an internal error of that target (re-raised as `InternalError`, cause attached)."""
    target = get_target(name)
    try:
        graph = builder.graph(options)
        if graph is None:
            artifact = Program(builder.source, options).artifact
        else:
            artifact = target.compile(graph, options)
        return target.estimate(artifact)
    except NicheError:
        raise
    except Exception as error:  # a bug in this target: reported for its column only
        raise InternalError(f"internal error in target '{name}': {type(error).__name__}: {error}") from error


@contextlib.contextmanager
def _set_aside() -> Iterator[Callable[[], None]]:
    """The objects alive when the block starts (the graph) set aside from the collector's young
    generations: frozen for the block (`gc.freeze`), then put in the oldest generation (`gc.unfreeze`).
    While the collector is paused (`collector_paused`), everything allocated lands in the youngest
    generation, so the first young collection after it would scan the whole graph (a third of a second
    for an 80-layer model); set aside, only a full collection scans it, as it would the rest of the
    oldest generation, and frees any cycles among it. Frozen objects are also left alone by collections
    in the forked pricing workers. The block is handed a function that sets aside what is alive when it
    is called (the counts, once made). When something else has frozen objects, it is left as it is (and
    the function does nothing)."""
    if gc.get_freeze_count():
        yield _nothing
        return
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


def _nothing() -> None:
    pass


def reads_counts(name: str) -> bool:
    """Whether pricing target `name` reads the shared counts (`Target.pricing_reads_counts`, default
    True): the workers of those that do not start before the counts are made (`targets.pricing_pool`)."""
    return bool(getattr(get_target(name), "pricing_reads_counts", True))


def compare(source: Source, targets: list[str], defines: dict, entry: str | None = None, opt_level: int = 2,
            chips: int | None = None, partition: str = "auto", progress: Callable[[str], None] | None = None,
            extra: dict[str, dict[str, Any]] | None = None,
            errors: list[Failed] | None = None,
            builder: GraphBuilder | None = None, jobs: int | None = None) -> tuple[list[CostReport], list[Skipped]]:
    """A cost report per target (in the order given), and the targets that refused the program (a
    TargetError, such as an op the target does not support, skips that target with its message).
    Internal errors of a target are appended to `errors` when given (else raised). `jobs`: worker
    processes pricing targets in parallel (`targets.pricing_pool`; None: one per core, 0 or 1: none; none
    where workers cannot be forked)."""
    reports, refused = [], []
    builder = builder or GraphBuilder(source)
    base = CompileOptions(target="ref", defines=dict(defines), entry=entry, opt_level=opt_level,
                          chips=chips, partition=partition, for_pricing=True)
    work = [(name, dataclasses.replace(base, target=name, extra=dict((extra or {}).get(name, {}))))
            for name in targets]
    workers = worker_count(jobs, len(work))
    # Building the graph and pricing it allocate many small objects and free them by reference counting;
    # automatic collections would rescan the whole graph again and again (passes.collector).
    with shared_counts(), collector_paused():
        if progress is not None:
            progress("building the graph")
        graph = builder.graph(base)  # user errors in the program surface here, once, not once per target
        if workers and graph is not None:
            frozen_graph(graph)  # the read-only graph the counts and the targets read, inherited by every worker
        with _set_aside() as set_aside_more:
            if workers:
                if progress is not None:
                    progress("pricing " + ", ".join(targets))
                left = list(targets)

                def finished(name: str) -> None:
                    left.remove(name)
                    if left and progress is not None:
                        progress("pricing " + ", ".join(left))

                def count_shared() -> None:  # counted once here, inherited by every worker forked after
                    count_graph(graph)
                    set_aside_more()

                weights = [float(getattr(get_target(name), "pricing_weight", 1.0)) for name, _ in work]
                early = [not reads_counts(name) for name, _ in work]
                prepare = count_shared if graph is not None and not all(early) else None  # none: no one reads them
                outcomes = price_in_workers(price_target, builder, work, workers, finished, weights, early, prepare)
            else:
                outcomes = []
                for name, options in work:
                    if progress is not None:
                        progress(f"pricing {name}")
                    outcomes.append(price_outcome(price_target, builder, name, options))
    for (name, _), (kind, value, cause) in zip(work, outcomes):
        if kind == "report":
            reports.append(value)
        elif kind == "refused":  # this target cannot take the program; the others may
            refused.append(Skipped(name, value))
        elif errors is None:
            raise InternalError(value) from cause
        else:
            errors.append(Failed(name, value, cause))
    return reports, refused


def run_comparison(path: str, targets: list[str], spec_files: list[str], defines: dict, entry: str | None = None,
                   opt_level: int = 2, chips: int | None = None, partition: str = "auto",
                   batch: int | None = None, progress: Callable[[str], None] | None = None,
                   options: list[tuple[str | None, str, Any]] | None = None, jobs: int | None = None) -> Comparison:
    """Price `path` on `targets`. `options` are parsed `--option`s (`parse_option`); internal errors of a
    target are listed in `Comparison.errors`, the other targets still priced."""
    start = time.perf_counter()
    usable, skipped = resolve_targets(targets, spec_files)
    source = Source.from_file(path)
    defines = batch_defines(source, dict(defines), entry, batch)
    if not usable:
        reasons = "; ".join(f"{s.target}: {s.reason}" for s in skipped) or "no targets given"
        raise ArgumentError(f"no target to price ({reasons})")
    extra = route_options(usable, options or [])
    errors: list[Failed] = []
    builder = GraphBuilder(source)
    reports, refused = compare(source, usable, defines, entry, opt_level, chips, partition, progress, extra, errors,
                               builder, jobs)
    if not reports and not errors:
        raise ArgumentError("no target could price the program: "
                            + "; ".join(f"{s.target}: {s.reason}" for s in refused))
    name = reports[0].program if reports else builder.name
    return Comparison(name, path, defines, reports, skipped + refused, seconds=time.perf_counter() - start,
                      errors=errors, options={k: v for k, v in extra.items() if v}, chips=chips,
                      partition=partition)
