"""Pricing one program on several targets (what `niche compare` prints), and picking a winner per metric.

A target takes part only when its backend is built and has a cost model (`estimate`); anything else is
skipped with the reason, and never gets a number. Each target compiles the program with
`for_pricing=True` (it may stop before code generation) and its `estimate` prices the artifact.
`--target-spec FILE` adds a target of the file's kind (`KIND:FILE`), so hardware that does not exist
yet is priced by the same model as shipped chips.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from compiler.diagnostics import ArgumentError
from compiler.driver import Program, Source
from targets.base import CompileOptions, TargetError, get_target, target_names
from targets.cost import CostReport
from targets.spec import load_spec

SCHEMA = "niche.compare/1"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    better: str  # "lower" or "higher"
    value: Callable[[CostReport], float | None]


def _per_step(report: CostReport, attribute: str) -> float | None:
    part = getattr(report, attribute)
    return None if part is None or not report.fits else (part.joules if attribute == "energy" else part.usd)


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


@dataclass
class Comparison:
    program: str
    file: str
    defines: dict[str, int | float | str]
    reports: list[CostReport] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    measured: dict[str, dict[str, float]] = field(default_factory=dict)  # target -> kernel -> seconds
    seconds: float = 0.0  # how long pricing took

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
                "reports": [r.to_dict() for r in self.reports], "winners": self.winners(),
                "skipped": [{"target": s.target, "reason": s.reason} for s in self.skipped],
                "measured": self.measured, "pricing_seconds": self.seconds}


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


def compare(source: Source, targets: list[str], defines: dict, entry: str | None = None, opt_level: int = 2,
            chips: int | None = None, partition: str = "auto",
            progress: Callable[[str], None] | None = None) -> tuple[list[CostReport], list[Skipped]]:
    """A cost report per target (in the order given), and the targets that refused the program (a
    TargetError, such as an op the target does not support, skips that target with its message)."""
    reports, refused = [], []
    for name in targets:
        if progress is not None:
            progress(name)
        options = CompileOptions(target=name, defines=dict(defines), entry=entry, opt_level=opt_level,
                                 chips=chips, partition=partition, for_pricing=True)
        try:
            program = Program(source, options)
            reports.append(get_target(name).estimate(program.artifact))
        except TargetError as error:  # this target cannot take the program; the others may
            refused.append(Skipped(name, " ".join(d.message for d in error.diagnostics)))
    return reports, refused


def run_comparison(path: str, targets: list[str], spec_files: list[str], defines: dict, entry: str | None = None,
                   opt_level: int = 2, chips: int | None = None, partition: str = "auto",
                   batch: int | None = None, progress: Callable[[str], None] | None = None) -> Comparison:
    start = time.perf_counter()
    usable, skipped = resolve_targets(targets, spec_files)
    source = Source.from_file(path)
    defines = batch_defines(source, dict(defines), entry, batch)
    if not usable:
        reasons = "; ".join(f"{s.target}: {s.reason}" for s in skipped) or "no targets given"
        raise ArgumentError(f"no target to price ({reasons})")
    reports, refused = compare(source, usable, defines, entry, opt_level, chips, partition, progress)
    if not reports:
        raise ArgumentError("no target could price the program: "
                            + "; ".join(f"{s.target}: {s.reason}" for s in refused))
    return Comparison(reports[0].program, path, defines, reports, skipped + refused,
                      seconds=time.perf_counter() - start)
