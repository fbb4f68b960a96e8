"""The protocol every target implements, and the registry that finds targets by name.

A target turns a graph (after the graph passes) into an `Artifact`: the code it emits (printable in
the kinds listed by `emit_kinds`) and, where the target can execute, a `run` method. Targets are named
on the command line as `NAME` or `NAME:VARIANT` (`gpu:h100`); the variant selects a hardware spec.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import numpy as np

from compiler.diagnostics import NicheError
from ir.graph import Graph

if TYPE_CHECKING:
    from targets.cost import CostReport
    from targets.spec import HardwareSpec


# How `--chips` spreads a program (`CompileOptions.partition`; targets/partition.py, targets/lpu/spread.py).
PARTITION_STRATEGIES = ("auto", "tensor", "pipeline")


@dataclass
class CompileOptions:
    """Everything that shapes a compilation besides the source; the CLI flags map onto these fields."""

    target: str = "ref"
    defines: dict[str, int | float] = field(default_factory=dict)
    entry: str | None = None
    opt_level: int = 2
    extra: dict[str, Any] = field(default_factory=dict)  # target-specific options (e.g. mesh size)
    # Graph passes (passes/graph_pipeline.py; the flags are in passes/flags.py).
    passes: str | None = None  # a pipeline string; None runs the default pipeline of opt_level
    load_passes: tuple[str, ...] = ()  # plugin files whose @register_pass classes register
    verify_each: bool = False  # run the graph verifier after every pass
    print_ir_after_all: bool = False  # print the graph (stdout) after every pass
    print_ir_after: tuple[str, ...] = ()  # ... after the passes with these names
    pass_timing: bool = False  # a table of time per pass (stderr)
    pass_stats: bool = False  # each pass's statistics (stderr)
    explain_fusion: bool = False  # every fusion decision with its reason (stderr)
    reproducer_dir: str | None = None  # where a failing pass's reproducer goes (default ./.niche-repro)
    fusion_working_set_limit: int | None = None  # bytes a fusion group may read and write; None: target's
    # Pricing (`niche compare`; targets/partition.py): chips to spread the program over (None: as few as
    # hold it), the partitioning strategy, and whether the artifact is only priced (a target may then
    # stop before code generation and return a `PricingArtifact`).
    chips: int | None = None
    partition: str = "auto"  # one of PARTITION_STRATEGIES
    for_pricing: bool = False
    # Weights bound to data at compile time (`--weights FILE.npz`, `weights={name: array}`): a path or a
    # mapping, read by compiler/weights.py; bound weights are no longer arguments (docs/sparsity.md).
    weights: Any = None

    @property
    def target_name(self) -> str:
        return self.target.split(":", 1)[0]

    @property
    def target_variant(self) -> str | None:
        parts = self.target.split(":", 1)
        return parts[1] if len(parts) == 2 else None


class Artifact(Protocol):
    emit_kinds: tuple[str, ...]
    description: str  # where results come from, e.g. "LLVM JIT for x86_64 (znver4), -O2"

    def emit(self, kind: str) -> str | bytes: ...

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


class Target(Protocol):
    """A target: its name, the hardware spec it prices (`targets.spec`; None for the reference
    interpreter), `compile` (the code it emits) and `estimate` (a `targets.cost.CostReport` of an
    artifact it compiled, from its cost model). A target without a cost model has no `estimate`. Optional
    class attributes: `options` (the `CompileOptions.extra` keys it takes), `times_kernels` (True when
    its artifacts run on hardware and have `time_kernels(inputs, repeats)`, for `niche compare --measure`)
    and `pricing_weight` (how long pricing takes next to other targets, default 1: `niche compare` starts
    the heaviest first; it changes no figure) and `pricing_reads_counts` (False when `estimate` never
    reads the shared counts, `targets.counts.count_graph`: `niche compare` may then start pricing it
    before they are made; default True)."""

    name: str
    summary: str
    spec: HardwareSpec | None

    def compile(self, graph: Graph, options: CompileOptions) -> Artifact: ...

    def estimate(self, artifact: Artifact) -> CostReport: ...


class PricingArtifact:
    """What a target compiled with `for_pricing` returns when it stops before code generation: the
    graph, the loop program where the target built one, and the options; it is priced, never run."""

    emit_kinds: tuple[str, ...] = ()

    def __init__(self, graph: Graph, options: CompileOptions, loops: Any = None, description: str = "") -> None:
        self.graph = graph
        self.options = options
        self.loops = loops  # an ir.loops.LoopProgram, or None
        self.description = description or f"{options.target} (compiled for pricing only)"

    def emit(self, kind: str) -> str | bytes:
        raise TargetError(f"{self.description}: nothing to emit ('{kind}'); compile without pricing")

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        raise TargetError(f"{self.description}: cannot run; compile without pricing")


class TargetError(NicheError):
    """A target was asked for something it cannot do (unknown name, unsupported op or emit kind)."""


# name -> "module:attribute" of a factory taking the variant (or None); imported on first use so that
# `niche --help` does not pay for LLVM.
_TARGETS: dict[str, str] = {
    "ref": "targets.ref:ReferenceTarget",
    "cpu": "targets.cpu.target:CpuTarget",
    "gpu": "targets.gpu.target:GpuTarget",
    "wse": "targets.wse.target:WseTarget",
    "lpu": "targets.lpu.target:LpuTarget",
}
_INSTANCES: dict[str, Target] = {}


def register_target(name: str, factory_path: str) -> None:
    _TARGETS[name] = factory_path


def target_names() -> list[str]:
    return sorted(_TARGETS)


def get_target(spec: str) -> Target:
    """The target named `spec` (`NAME` or `NAME:VARIANT`)."""
    name, _, variant = spec.partition(":")
    if name not in _TARGETS:
        raise TargetError(f"unknown target '{spec}' (targets: {', '.join(target_names())})")
    if spec not in _INSTANCES:
        module_name, attribute = _TARGETS[name].split(":")
        factory: Callable[[str | None], Target] = getattr(importlib.import_module(module_name), attribute)
        _INSTANCES[spec] = factory(variant or None)
    return _INSTANCES[spec]
