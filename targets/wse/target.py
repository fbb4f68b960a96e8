"""The wafer-scale target (`wse`, `wse:wse3`, `wse:wse2`): compile to a placed wafer program, simulate it.

`compile(graph, options)` returns a `WseArtifact` at once; the placement and the per-PE programs are
built when first needed (`emit("wse")`, `run`, `plot`), on the simulated mesh, and pricing
(`estimate`) never builds them: it is analytical (`targets.wse.cost`) so a 70B-parameter program is
priced without touching its tensors.

Options (`CompileOptions.extra`, e.g. `compile(path, target="wse", mesh="16x16")`):

* `mesh`: the PE mesh, "ROWSxCOLUMNS" (the CLI's `--mesh`): the one laid out and simulated (default 16x16)
  and, when given, the mesh of each wafer pricing places on (default: the spec's full usable mesh); it
  must fit in the spec's usable mesh;
* `weights`: "resident" (loaded once), "streamed" (from MemoryX every step) or "auto" (default:
  resident when the weights fit the wafers, else streamed; the simulator always lays weights out
  resident or streamed as asked and treats "auto" as resident);
* `density`: the fraction of non-zeros assumed for CSR/CSC/BSR weights that have no data bound;
* `tile`, `max_region`: the first grid a region gets (a PE's share of a matmul dimension, and the
  largest side); memory grows it as needed;
* `wafers` (or `CompileOptions.chips`, the CLI's `--chips`): how many wafers pricing may use (default:
  as many as resident weights need);
* `state`: names of inputs that stay on the wafer between steps (default: inputs named `*cache*`, the
  KV cache of a decode step), priced as resident rather than sent over the I/O each step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

import numpy as np

from ir import ops
from ir.graph import Graph
from targets.base import CompileOptions, TargetError
from targets.cost import CostReport
from targets.wse.machine import DEFAULT_VARIANT, MachineError, VARIANTS, WseMachine, load_machine, parse_mesh

DEFAULT_MESH = (16, 16)
MAX_SIMULATED_ELEMENTS = 20_000_000  # values (weights included) the per-PE layout may index
_OPTIONS = {"mesh", "weights", "density", "tile", "max_region", "wafers", "state"}
_SUPPORTED_GROUPS = (ops.ELEMENTWISE, ops.REDUCTION, ops.MATMUL, ops.SHAPE, ops.SOURCE)


@dataclass(frozen=True)
class WseOptions:
    mesh: tuple[int, int] | None = None  # (rows, columns) asked for; None: simulate 16x16, price the full wafer
    weights: str = "auto"
    density: float | None = None
    tile: int = 32
    max_region: int = 4
    wafers: int | None = None
    state: tuple[str, ...] | None = None


def parse_options(extra: Mapping[str, Any]) -> WseOptions:
    unknown = set(extra) - _OPTIONS
    if unknown:
        raise TargetError(f"the wse target has no option(s) {', '.join(sorted(unknown))} "
                          f"(options: {', '.join(sorted(_OPTIONS))})")
    try:
        mesh = parse_mesh(extra["mesh"]) if extra.get("mesh") is not None else None
    except MachineError as error:
        raise TargetError(str(error)) from None
    weights = extra.get("weights", "auto")
    if weights not in ("auto", "resident", "streamed"):
        raise TargetError(f"the wse target's 'weights' option is auto, resident or streamed, got {weights!r}")
    density = extra.get("density")
    if density is not None and (not isinstance(density, (int, float)) or not 0 <= density <= 1):
        raise TargetError(f"the wse target's 'density' option is a fraction in [0, 1], got {density!r}")
    ints = {}
    for key, default in (("tile", 32), ("max_region", 4)):
        value = extra.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TargetError(f"the wse target's '{key}' option must be a positive integer, got {value!r}")
        ints[key] = value
    wafers = extra.get("wafers")
    if wafers is not None and (not isinstance(wafers, int) or isinstance(wafers, bool) or wafers < 1):
        raise TargetError(f"the wse target's 'wafers' option must be a positive integer, got {wafers!r}")
    state = extra.get("state")
    if isinstance(state, str):
        state = tuple(s for s in state.split(",") if s)
    elif state is not None:
        state = tuple(state)
    return WseOptions(mesh, weights, None if density is None else float(density), ints["tile"],
                      ints["max_region"], wafers, state)


def check_supported(graph: Graph) -> None:
    """Refuses a program with an op the target cannot run, naming its first such node (in topological
    order). Each op the graph uses is asked once; only a refused program walks it in order."""
    if all(_supported(op) for op in {node.op for _, node in graph.nx.nodes(data="node")}):
        return
    for node_id, node in graph.nodes():
        if not _supported(node.op):
            where = f"{node.loc}: " if node.loc is not None else ""
            raise TargetError(f"{where}the wse target does not support '{node.op}' (%{node_id}, {node.type})")


def _supported(op: str) -> bool:
    return op == "param" or any(ops.in_group(op, g) for g in _SUPPORTED_GROUPS)


class WseArtifact:
    emit_kinds: tuple[str, ...] = ("wse",)

    def __init__(self, graph: Graph, machine: WseMachine, options: WseOptions, target: str) -> None:
        self.graph = graph
        self.full_machine = machine
        self.options = options
        self.target = target
        rows, cols = options.mesh or DEFAULT_MESH
        self.machine = machine.with_mesh(cols, rows)
        self.description = f"the wafer-scale simulator ({machine.name}, {rows}x{cols} PE mesh)"

    @cached_property
    def program(self):
        """The placed wafer program on the simulated mesh (built on first use)."""
        from targets.wse.codegen import RegionCompiler, SizingOptions
        from targets.wse.layout import lay_out
        from targets.wse.regions import partition
        from targets.wse.sparsity import Sparsity
        self._check_size()
        parts = partition(self.graph)
        sparsity = Sparsity(self.graph, self.machine, self.options.density)
        compiler = RegionCompiler(self.graph, parts, self.machine, sparsity,
                                  SizingOptions(self.options.tile, self.options.max_region))
        rows, cols = self.options.mesh or DEFAULT_MESH
        codes = {region.id: compiler.size_region(region, rows, cols) for region in parts.regions}
        mode = "streamed" if self.options.weights == "streamed" else "resident"
        return lay_out(self.graph, parts, compiler, codes, mode)

    def _check_size(self) -> None:
        elements = sum(node.type.size for _, node in self.graph.nodes())
        if elements > MAX_SIMULATED_ELEMENTS:
            raise TargetError(
                f"'{self.graph.name}' has {elements:,} tensor elements: too many to lay out PE by PE for the "
                f"simulator (at most {MAX_SIMULATED_ELEMENTS:,}); run it at a smaller size (-D), or price it "
                f"with `niche compare` (analytical, no layout)")

    def emit(self, kind: str) -> str:
        if kind != "wse":
            raise TargetError(f"the wse target emits 'wse' (the placed program listing), not '{kind}'")
        from targets.wse.listing import listing
        return listing(self.program, self.target)

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        from targets.wse.simulator import Simulator
        return Simulator(self.program).run(inputs)

    def plot(self, path: str) -> None:
        from targets.wse.plot import plot_program
        plot_program(self.program, path, self.target)


class WseTarget:
    name = "wse"
    options = frozenset(_OPTIONS)  # the CompileOptions.extra keys it takes (`niche compare --option`)
    pricing_weight = 3  # relative pricing time, for the order `niche compare` prices targets in (see the lpu's)
    # Pricing reads its regions (`targets.wse.regions`), never the shared counts (`targets.counts.count_graph`):
    # `niche compare` starts its worker while the counts are being made (`targets.pricing_pool`).
    pricing_reads_counts = False
    summary = "Cerebras-style wafer-scale engine: regions of PEs, fabric routes, per-PE programs (simulated)"

    def __init__(self, variant: str | None = None) -> None:
        """`variant`: wse3 (default), wse2, or the path of a spec file of kind wse (`--target-spec`)."""
        variant = variant or DEFAULT_VARIANT
        from targets.spec import load_spec
        try:
            if variant in VARIANTS:
                self.spec = load_spec(variant)
                self.machine = load_machine(variant, self.spec)
            elif variant.endswith(".toml") or "/" in variant:
                self.spec = load_spec(variant)
                if self.spec.kind != "wse":
                    raise TargetError(f"{variant} describes a '{self.spec.kind}' chip, not a wse")
                self.machine = load_machine(None, self.spec)
            else:
                raise TargetError(f"unknown wse variant 'wse:{variant}' (variants: "
                                  f"{', '.join('wse:' + v for v in VARIANTS)}, or a spec file)")
        except MachineError as error:
            raise TargetError(str(error)) from None
        self.variant = variant

    def compile(self, graph: Graph, options: CompileOptions) -> WseArtifact:
        check_supported(graph)
        parsed = parse_options(options.extra)
        if options.chips is not None:
            parsed = dataclasses.replace(parsed, wafers=options.chips)
        self._machine_on(parsed.mesh)  # a mesh larger than the wafer is refused here, for pricing and simulator alike
        return WseArtifact(graph, self.machine, parsed, f"wse:{self.variant}")

    def estimate(self, artifact: WseArtifact) -> CostReport:
        """The analytical cost report (`targets.wse.cost`): never lays out or simulates the program."""
        from targets.wse.cost import PricingOptions, estimate_graph
        graph = artifact.graph
        options = getattr(artifact, "options", None)
        if not isinstance(options, WseOptions):
            extra = getattr(options, "extra", {}) or {}
            parsed = parse_options(extra)
            chips = getattr(options, "chips", None)
            options = dataclasses.replace(parsed, wafers=chips) if chips is not None else parsed
        pricing = PricingOptions(options.wafers, options.weights, options.density, options.state, options.mesh)
        return estimate_graph(graph, self._machine_on(options.mesh), self.spec, f"wse:{self.variant}", pricing)

    def _machine_on(self, mesh: tuple[int, int] | None) -> WseMachine:
        """The machine pricing places on: the spec's usable mesh, or the `mesh` option's part of it."""
        if mesh is None:
            return self.machine
        try:
            return self.machine.on_mesh(*mesh)
        except MachineError as error:
            raise TargetError(str(error)) from None
