"""The GPU target (`gpu`, `gpu:a100`, `gpu:h100`, `gpu:h200`, `gpu:b200`, `gpu:my_gpu.toml`).

`compile(graph, options)`: graph -> loop IR (lowering with `GpuSchedule`, SIMT form) -> a `GpuArtifact`
whose LLVM module and PTX are built on demand for the variant's architecture (plain `gpu` is the H100,
sm_90). With `for_pricing` it stops before lowering and returns a `PricingArtifact`: the cost model
prices the graph's kernels with the same launch rules, fast for any program size.

Options (`CompileOptions.extra`): `tensor_cores` (default true: bf16/f16 matmuls on mma.sync; false:
CUDA-core FMAs for every matmul).

Refused with a TargetError naming what is missing: sparse storage formats (CSR, CSC, BSR, N:M) — the
GPU code generator has no sparse kernels yet; ops outside the groups below; and everything when
llvmlite's LLVM lacks the NVPTX backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ir import ops
from ir.graph import Graph
from targets.base import CompileOptions, PricingArtifact, TargetError
from targets.cost import CostReport
from targets.gpu.machine import GpuMachine, gpu_spec

if TYPE_CHECKING:  # code generation is imported when a program is compiled, not when it is only priced
    from targets.gpu.artifact import GpuArtifact

_OPTIONS = {"tensor_cores"}
_SUPPORTED_GROUPS = (ops.ELEMENTWISE, ops.REDUCTION, ops.MATMUL, ops.SHAPE, ops.SOURCE)
_FORMAT_NAMES = {"csr": "CSR", "csc": "CSC", "bsr": "BSR (block-sparse)", "nm": "N:M structured sparse"}


def check_supported(graph: Graph) -> None:
    """TargetError naming the first value the gpu target cannot compile."""
    for node_id, node in graph.nodes():
        where = f"{node.loc}: " if node.loc is not None else ""
        if not node.type.format.is_dense:
            kind = _FORMAT_NAMES.get(node.type.format.kind, node.type.format.kind)
            name = node.attr("name") if node.op == "param" else f"%{node_id}"
            raise TargetError(f"{where}the gpu target cannot compile '{name}' stored as {node.type.format} "
                              f"({kind}): the GPU code generator has no sparse kernels yet (no CSR/CSC "
                              "gather loops, no BSR block tiles, no 2:4 metadata for sparse tensor cores). "
                              "Drop the format annotation to compute it densely (the meaning is the same), "
                              "or price it with `niche compare`")
        if node.op != "param" and not any(ops.in_group(node.op, group) for group in _SUPPORTED_GROUPS):
            raise TargetError(f"{where}the gpu target does not support '{node.op}' (%{node_id}, {node.type})")


class GpuTarget:
    name = "gpu"
    options = frozenset(_OPTIONS)  # the CompileOptions.extra keys it takes (`niche compare --option`)
    times_kernels = True  # on a machine with an NVIDIA GPU (`niche compare --measure`)
    summary = "NVIDIA GPU: PTX (sm_80/sm_90/sm_100) through LLVM's NVPTX backend; occupancy-aware roofline model"

    def __init__(self, variant: str | None = None) -> None:
        self.variant = variant
        self.spec = gpu_spec(variant)  # a bad file is a user error at target lookup
        self.machine = GpuMachine.from_spec(self.spec)

    @property
    def target_name(self) -> str:
        return "gpu" if self.variant is None else f"gpu:{self.variant}"

    def compile(self, graph: Graph, options: CompileOptions) -> GpuArtifact | PricingArtifact:
        unknown = set(options.extra) - _OPTIONS
        if unknown:
            raise TargetError(f"the gpu target has no option(s) {', '.join(sorted(unknown))} "
                              f"(options: {', '.join(sorted(_OPTIONS))})")
        tensor_cores = options.extra.get("tensor_cores", True)
        if not isinstance(tensor_cores, bool):
            raise TargetError(f"the gpu target's 'tensor_cores' option is true or false, got {tensor_cores!r}")
        if options.for_pricing:
            return PricingArtifact(graph, options, description=f"{self.target_name} ({self.spec.name}), priced only")
        if not 0 <= options.opt_level <= 3:
            raise TargetError(f"the gpu target takes -O0 .. -O3, got -O{options.opt_level}")
        from targets.gpu.ptx import nvptx_available
        missing = nvptx_available()
        if missing is not None:
            raise TargetError(f"the gpu target cannot emit PTX: {missing}")
        check_supported(graph)
        from passes.lowering import lower
        from targets.gpu.artifact import GpuArtifact
        from targets.gpu.schedules import GpuSchedule
        from targets.gpu.simt import analyze
        schedule = GpuSchedule(self.machine, tensor_cores)
        program = lower(graph, schedule).program
        simt = {name: analyze(kernel) for name, kernel in program.kernels.items()}
        param_names = [graph.node(p).attr("name") for p in graph.params]
        return GpuArtifact(program, simt, dict(schedule.tiles), self.machine, options.opt_level, graph, param_names,
                           self.target_name)

    def estimate(self, artifact: GpuArtifact | PricingArtifact) -> CostReport:
        """The cost report of a compiled program (its SIMT loop IR, with ptxas figures when ptxas is
        installed) or of a pricing-only one (its graph and fusion groups)."""
        from targets.gpu.cost import estimate_artifact
        return estimate_artifact(artifact, self.spec, self.machine, self.target_name)
