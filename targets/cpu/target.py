"""The CPU target: graph -> loop IR (lowering with `CpuSchedule`) -> LLVM -> native code for this host.

Options (`CompileOptions.extra`, e.g. `compiler.compile(path, target="cpu", threads=1)`):

* `threads`: OpenMP threads for parallel loops (default: the CPUs this process may use, os.cpu_count()
  narrowed by the affinity mask);
* `cache_dir`: where compiled objects are cached (default `$XDG_CACHE_HOME/niche` or `~/.cache/niche`);
* `disk_cache`: False to skip the disk cache (the in-process cache stays);
* `schedule`: "cpu" (default: tiled, vectorized, parallel loops) or "naive" (plain serial loops,
  the lowering's reference schedule: slow, useful to separate schedule bugs from codegen bugs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ir import ops
from ir.graph import Graph
from targets.base import CompileOptions, PricingArtifact, TargetError
from targets.cpu.host import usable_cpus
from targets.cost import CostReport
from targets.spec import HardwareSpec

if TYPE_CHECKING:  # the code generator (llvmlite) is imported where code is built, never to price
    from passes.lowering import LoweredSpecs
    from targets.cpu.artifact import CpuArtifact
    from targets.cpu.compile import BuildOptions

_OPTIONS = {"threads", "cache_dir", "disk_cache", "schedule"}
# Op groups this target lowers; anything else (an op added to the table later) is refused by name.
_SUPPORTED_GROUPS = (ops.ELEMENTWISE, ops.REDUCTION, ops.MATMUL, ops.SHAPE, ops.SOURCE)


def build_options(options: CompileOptions) -> BuildOptions:
    from targets.cpu.compile import BuildOptions
    extra = options.extra
    unknown = set(extra) - _OPTIONS
    if unknown:
        raise TargetError(f"the cpu target has no option(s) {', '.join(sorted(unknown))} "
                          f"(options: {', '.join(sorted(_OPTIONS))})")
    threads = extra.get("threads", usable_cpus())
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise TargetError(f"the cpu target's 'threads' option must be a positive integer, got {threads!r}")
    cache_dir = extra.get("cache_dir")
    if not 0 <= options.opt_level <= 3:
        raise TargetError(f"the cpu target takes -O0 .. -O3, got -O{options.opt_level}")
    return BuildOptions(opt_level=options.opt_level, threads=threads,
                        cache_dir=Path(cache_dir) if cache_dir is not None else None,
                        disk_cache=bool(extra.get("disk_cache", True)))


def check_supported(graph: Graph) -> None:
    """Raise TargetError naming the first op the cpu target cannot compile."""
    for node_id, node in graph.nodes():
        if node.op == "param":
            continue
        if not any(ops.in_group(node.op, group) for group in _SUPPORTED_GROUPS):
            where = f"{node.loc}: " if node.loc is not None else ""
            raise TargetError(f"{where}the cpu target does not support '{node.op}' (%{node_id}, {node.type})")


def lower(graph: Graph, options: CompileOptions, build: BuildOptions) -> LoweredSpecs:
    from passes.lowering import NaiveSchedule, lower as lower_graph
    from targets.cpu.schedules import CpuSchedule
    choice = options.extra.get("schedule", "cpu")
    if choice == "naive":
        schedule = NaiveSchedule()
    elif choice == "cpu":
        schedule = CpuSchedule(threads=build.threads)
    else:
        raise TargetError(f"the cpu target's 'schedule' option is 'cpu' or 'naive', got {choice!r}")
    return lower_graph(graph, schedule)


class CpuTarget:
    name = "cpu"
    options = frozenset(_OPTIONS)  # the CompileOptions.extra keys it takes (`niche compare --option`)
    times_kernels = True  # its artifacts run on hardware and time their kernels (`niche compare --measure`)
    summary = "this machine's CPU: LLVM (llvmlite) JIT or shared library, SIMD + OpenMP threads"
    # Sparse formats its kernels run and its cost model prices (targets/cpu/schedules/sparse.py,
    # targets/sparse_cost.py); the sparsify pass reads this.
    sparse_formats = ("csr", "csc", "bsr", "nm")

    def __init__(self, variant: str | None = None) -> None:
        # A variant names a CPU spec (shipped name or .toml path) to price with the CPU cost model
        # (`niche compare --target-spec`); code is compiled for this machine only.
        self.variant = variant
        if variant is not None:
            self.spec  # validate the spec now: a bad file is a user error at target lookup

    @property
    def spec(self) -> HardwareSpec:
        from targets.cpu.cost import cpu_spec
        return cpu_spec(self.variant)

    def compile(self, graph: Graph, options: CompileOptions) -> CpuArtifact | PricingArtifact:
        if options.for_pricing:
            return PricingArtifact(graph, options, description=f"cpu ({self.spec.name}), priced only")
        if self.variant is not None:
            raise TargetError(f"'cpu:{self.variant}' only prices a CPU described by a spec; the cpu target "
                              "compiles for this machine: use --target cpu")
        from targets.cpu.artifact import CpuArtifact
        from targets.cpu.compile import compile_loops
        from targets.cpu.inputs import InputLayout
        build = build_options(options)
        check_supported(graph)
        lowered = lower(graph, options, build)
        param_names = [graph.node(p).attr("name") for p in graph.params]
        layout = InputLayout(graph, lowered.program, lowered.sparse)  # sparse storages, bound weights
        artifact = CpuArtifact(compile_loops(lowered.program, build), param_names, layout)
        artifact.graph = graph  # the cost model reads token counts and useful FLOPs from it
        return artifact

    def estimate(self, artifact: CpuArtifact | PricingArtifact) -> CostReport:
        """The cost report of a compiled program (its loop IR) or of a pricing-only one (its graph)."""
        from targets.cpu.cost import estimate_artifact
        return estimate_artifact(artifact, self.spec, "cpu" if self.variant is None else f"cpu:{self.variant}")
