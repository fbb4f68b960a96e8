"""The LPU target (`lpu`, or `lpu:FILE.toml` for a user's spec of kind lpu): a Groq TSP program with a
static cycle-level schedule, emitted as a `.lpu` listing and run by the cycle-level simulator.

`compile` returns an `LpuArtifact` at once; the schedule is built when first needed (`emit("lpu")`,
`run`, or pricing a program small enough to schedule). `run` prints the listing, parses it back and
simulates the parsed program, so what runs is exactly what the listing says. `estimate` prices the
schedule when there is one, else counts instructions per stage from a few sample vectors of each stage
without lowering or allocating the program (`targets.lpu.estimate`), which is how a 70B-parameter
decode step is priced.

Options (`CompileOptions.extra`, e.g. `compile(path, target="lpu", sram_bytes=2**20)`):

* `mxm_precision`: "fp32" (default for f32 matmuls: the program's own semantics, at the MXM's fp32 rate)
  or "fp16" (the MXM's fast path: f32 operands rounded to fp16, fp32 accumulation);
* `sram_bytes`: SRAM per chip (default the spec's 220 MiB); smaller values force multi-chip partitions;
* `max_instructions`: the largest program scheduled instruction by instruction (default 2,000,000).
`CompileOptions.chips` (`--chips N`) places the program on exactly N chips and `CompileOptions.partition`
(`--partition auto|pipeline|tensor`) chooses how (`targets.lpu.spread`); a program N chips cannot hold is
refused with the count it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ir.graph import Graph
from targets.base import CompileOptions, TargetError
from targets.lpu.machine import DEFAULT_SPEC, LpuMachine, machine_from_spec
from targets.partition import STRATEGIES

if TYPE_CHECKING:
    from targets.cost import CostReport
    from targets.lpu.build import Build
    from targets.lpu.program import LpuProgram

_OPTIONS = {"mxm_precision", "sram_bytes", "max_instructions"}
DEFAULT_MAX_INSTRUCTIONS = 2_000_000


@dataclass(frozen=True)
class LpuOptions:
    mxm_precision: str = "fp32"
    sram_bytes: int | None = None
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS
    chips: int | None = None
    partition: str = "auto"

    def as_dict(self) -> dict[str, Any]:
        return {"mxm_precision": self.mxm_precision, "chips": self.chips, "partition": self.partition}


def parse_options(options: CompileOptions) -> LpuOptions:
    extra = dict(options.extra or {})
    unknown = set(extra) - _OPTIONS
    if unknown:
        raise TargetError(f"the lpu target has no option(s) {', '.join(sorted(unknown))} "
                          f"(options: {', '.join(sorted(_OPTIONS))})")
    precision = extra.get("mxm_precision", "fp32")
    if precision not in ("fp32", "fp16"):
        raise TargetError(f"the lpu target's mxm_precision is fp32 or fp16, got {precision!r}")
    sram = extra.get("sram_bytes")
    if sram is not None and (not isinstance(sram, int) or isinstance(sram, bool) or sram <= 0):
        raise TargetError(f"the lpu target's sram_bytes must be a positive integer, got {sram!r}")
    limit = extra.get("max_instructions", DEFAULT_MAX_INSTRUCTIONS)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise TargetError(f"the lpu target's max_instructions must be a positive integer, got {limit!r}")
    chips = getattr(options, "chips", None)
    if chips is not None and (not isinstance(chips, int) or chips < 1):
        raise TargetError(f"chips must be a positive integer, got {chips!r}")
    strategy = getattr(options, "partition", None) or "auto"
    if strategy not in STRATEGIES:
        raise TargetError(f"unknown partitioning strategy '{strategy}' (strategies: {', '.join(STRATEGIES)})")
    return LpuOptions(precision, sram, limit, chips, strategy)


class LpuArtifact:
    emit_kinds: tuple[str, ...] = ("lpu",)

    def __init__(self, graph: Graph, machine: LpuMachine, options: LpuOptions, target: str, spec: Any,
                 for_pricing: bool = False) -> None:
        self.graph = graph
        self.machine = machine if options.sram_bytes is None else machine.with_sram(options.sram_bytes)
        self.options = options
        self.target = target
        self.spec = spec
        self.for_pricing = for_pricing

    @property
    def description(self) -> str:
        text = f"the LPU cycle-level simulator ({self.target}"
        if "built" in self.__dict__:
            program = self.built.program
            text += f", {program.chips} chip(s), {program.cycles} cycles"
        return text + ")"

    def instruction_estimate(self) -> int:
        from targets.lpu.counting import count_program
        return int(count_program(self.graph, self.machine, self.options.as_dict()).instructions)

    @cached_property
    def built(self) -> Build:
        """The scheduled program (`targets.lpu.build.Build`), built on first use."""
        from targets.lpu.build import build_program
        estimate = self.instruction_estimate()
        if estimate > self.options.max_instructions:
            raise TargetError(
                f"'{self.graph.name}' would take about {estimate:,} LPU instructions: too many to schedule and "
                f"list one by one (at most {self.options.max_instructions:,}, option max_instructions); run it "
                "at a smaller size (-D), or price it with `niche compare` (counted, not scheduled)")
        return build_program(self.graph, self.machine, self.options.as_dict())

    @property
    def program(self) -> LpuProgram:
        return self.built.program

    @cached_property
    def listing(self) -> str:
        from targets.lpu.listing import print_listing
        return print_listing(self.program)

    def emit(self, kind: str) -> str:
        if kind != "lpu":
            raise TargetError(f"the lpu target emits 'lpu' (the scheduled listing), not '{kind}'")
        return self.listing

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        from targets.lpu.listing import parse_listing
        from targets.lpu.simulator import simulate
        return simulate(parse_listing(self.listing, f"<{self.graph.name}.lpu>"), inputs)


class LpuTarget:
    name = "lpu"
    options = frozenset(_OPTIONS)  # the CompileOptions.extra keys it takes (`niche compare --option`)
    # How long pricing a large program takes next to the other targets (`niche compare` hands its workers the
    # heaviest targets first, `targets.pricing_pool.longest_first`): placing and counting stages is the longest.
    pricing_weight = 4
    summary = ("Groq TSP-style LPU: functional slices, a static cycle-level schedule (.lpu listing) and a "
               "cycle-level simulator; multi-chip over C2C links")

    def __init__(self, variant: str | None = None) -> None:
        """`variant`: none for the Groq TSP spec, or the path of a spec file of kind lpu."""
        from targets.spec import load_spec
        name = variant or DEFAULT_SPEC
        if variant is not None and not (variant.endswith(".toml") or "/" in variant) and variant != DEFAULT_SPEC:
            raise TargetError(f"unknown lpu variant 'lpu:{variant}' (use lpu, lpu:{DEFAULT_SPEC} or lpu:FILE.toml)")
        self.spec = load_spec(name)
        if self.spec.kind != "lpu":
            raise TargetError(f"{name} describes a '{self.spec.kind}' chip, not an lpu")
        try:
            self.machine = machine_from_spec(self.spec)
        except ValueError as error:
            raise TargetError(f"lpu target: {error}") from None
        self.variant = variant

    @property
    def label(self) -> str:
        return "lpu" if self.variant is None else f"lpu:{self.variant}"

    def compile(self, graph: Graph, options: CompileOptions) -> LpuArtifact:
        parsed = parse_options(options)
        return LpuArtifact(graph, self.machine, parsed, self.label, self.spec,
                           bool(getattr(options, "for_pricing", False)))

    def estimate(self, artifact: LpuArtifact) -> CostReport:
        from targets.lpu.estimate import estimate_artifact
        if not isinstance(artifact, LpuArtifact):
            raise TargetError("the lpu target prices artifacts it compiled itself")
        return estimate_artifact(artifact)
