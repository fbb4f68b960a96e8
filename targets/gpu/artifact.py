"""What the GPU target compiles to: the SIMT loop program, its LLVM module and PTX, the launch description.

Emit kinds: `loops` (the loop IR in SIMT form), `llvm` (the optimised NVPTX module the PTX comes from),
`ptx`, `launch` (the JSON of `targets.gpu.launch`). Each form is built on first use. `--emit ptx -o k.ptx`
also writes `k.launch.json` beside it (`write_companions`). `ptxas_report()` assembles the PTX with
ptxas when it is installed and keeps the per-kernel figures, which the launch description and the cost
model then use. `run` needs an NVIDIA GPU and a driver package (`targets.gpu.launcher`); without one it
raises TargetError saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from compiler.diagnostics import ArgumentError
from ir.graph import Graph
from ir.loop_printer import print_program
from ir.loops import LoopProgram
from targets.base import TargetError
from targets.gpu import ptx as ptx_backend
from targets.gpu.codegen.module import build_module
from targets.gpu.launch import LaunchDescription, describe
from targets.gpu.machine import GpuMachine
from targets.gpu.mapping import MatmulTiles
from targets.gpu.ptxas import PtxasError, PtxasInfo, assemble, ptxas_path
from targets.gpu.simt import SimtKernel

EMIT_KINDS = ("loops", "llvm", "ptx", "launch")


class GpuArtifact:
    emit_kinds: tuple[str, ...] = EMIT_KINDS

    def __init__(self, program: LoopProgram, simt: dict[str, SimtKernel], tiles: dict[str, MatmulTiles],
                 machine: GpuMachine, opt_level: int, graph: Graph, param_names: Sequence[str], target: str) -> None:
        self.program = program
        self.simt = simt
        self.tiles = tiles
        self.machine = machine
        self.arch = machine.arch
        self.opt_level = opt_level
        self.graph = graph
        self.param_names = list(param_names)
        self.target = target
        self.description = f"PTX for {self.arch} ({machine.name}) from LLVM NVPTX, -O{opt_level}"
        self._module_text: str | None = None
        self._optimized: object | None = None
        self._ptx: str | None = None
        self._ptxas: dict[str, PtxasInfo] | None = None
        self._launcher = None  # on the real GPU: loaded once, buffers reused between runs

    # -- the forms ------------------------------------------------------------------------------

    def module_text(self) -> str:
        """The LLVM IR the code generator wrote, before optimisation."""
        if self._module_text is None:
            self._module_text = str(build_module(self.program, self.simt, ptx_backend.data_layout(self.arch)))
        return self._module_text

    def llvm_ir(self) -> str:
        if self._optimized is None:
            self._optimized = ptx_backend.optimize(self.module_text(), self.arch, self.opt_level)
        return str(self._optimized)

    def ptx(self) -> str:
        if self._ptx is None:
            self.llvm_ir()
            self._ptx = ptx_backend.emit_ptx(self._optimized, self.arch, self.opt_level)
        return self._ptx

    def ptxas_report(self) -> dict[str, PtxasInfo] | None:
        """ptxas's figures per PTX entry (None without ptxas); TargetError if ptxas rejects the PTX."""
        if self._ptxas is None and ptxas_path() is not None:
            try:
                self._ptxas = assemble(self.ptx(), self.arch)
            except PtxasError as error:
                raise TargetError(f"{self.description}: {error}") from None
        return self._ptxas

    def launch(self, ptx_file: str = "kernels.ptx") -> LaunchDescription:
        return describe(self.program, self.simt, self.arch, ptx_file, self.ptxas_report())

    def emit(self, kind: str) -> str:
        if kind == "loops":
            return print_program(self.program)
        if kind == "llvm":
            return self.llvm_ir()
        if kind == "ptx":
            return self.ptx()
        if kind == "launch":
            return self.launch().to_json()
        raise TargetError(f"the gpu target emits no '{kind}' (it emits: {', '.join(EMIT_KINDS)})")

    def write_companions(self, kind: str, path: str) -> list[str]:
        """Files that go with an emitted `kind` written to `path`: the launch description of PTX."""
        if kind != "ptx":
            return []
        target = Path(path)
        companion = target.with_name(target.stem + ".launch.json")
        from compiler.cli import write_atomically
        write_atomically(companion, self.launch(target.name).to_json())
        return [str(companion)]

    # -- running --------------------------------------------------------------------------------

    def launcher(self, driver: object | None = None):
        """A launcher on `driver` (default: the GPU `find_driver` finds, kept for later runs)."""
        from targets.gpu.launcher import GpuUnavailable, Launcher
        if driver is None and self._launcher is not None:
            return self._launcher
        try:
            launcher = Launcher(self.launch(), self.ptx(), driver)
        except GpuUnavailable as error:
            raise TargetError(str(error)) from None
        if driver is None:
            self._launcher = launcher
        return launcher

    def run(self, inputs: Mapping[str, np.ndarray], driver: object | None = None) -> list[np.ndarray]:
        arrays = self._by_buffer(inputs)
        return self._on_gpu(lambda: self.launcher(driver).run(arrays))

    def time_kernels(self, inputs: Mapping[str, np.ndarray], repeats: int = 10,
                     driver: object | None = None) -> dict[str, float]:
        """Median GPU seconds per kernel (all its calls), measured with CUDA events."""
        arrays = self._by_buffer(inputs)
        return self._on_gpu(lambda: self.launcher(driver).time_kernels(arrays, repeats))

    def _on_gpu(self, work):
        from targets.gpu.launcher import GpuRuntimeError
        try:
            return work()
        except GpuRuntimeError as error:
            raise TargetError(f"{self.description}: {error}") from None

    def _by_buffer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = dict(zip(self.param_names, self.program.inputs))
        unknown = set(inputs) - set(names)
        if unknown:
            raise ArgumentError(f"no parameter named {', '.join(sorted(unknown))} "
                                f"(parameters: {', '.join(self.param_names)})")
        missing = [name for name in self.param_names if name not in inputs]
        if missing:
            raise ArgumentError(f"missing argument '{missing[0]}'")
        return {names[name]: np.asarray(value) for name, value in inputs.items()}
