"""A loop program in SIMT form -> one LLVM module for nvptx64-nvidia-cuda: one kernel function per kernel.

Each kernel is `define ptx_kernel void @NAME(ptr addrspace(1) %p0, ...)` (LLVM's kernel calling
convention, which replaced the `kernel` entry of `nvvm.annotations`), one parameter per loop-IR
parameter in order, `noalias` when every call passes distinct buffers. `nvvm.annotations` carries
`maxntidx/y/z`, the block size, so that ptxas allocates registers for the threads the launch uses
(`.maxntid` in the PTX). Shared arrays are internal addrspace(3) globals named after their kernel.
No host code is emitted: the launch description (`targets.gpu.launch`) says how to call the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ir.loops import LoopProgram
from targets.cpu.codegen.context import ModuleContext
from targets.cpu.codegen.lltypes import I32, VOID
from targets.cpu.codegen.program import c_identifier
from targets.gpu.codegen.kernel import GpuKernelEmitter
from targets.gpu.simt import SimtKernel

TRIPLE = "nvptx64-nvidia-cuda"
GLOBAL = 1


@dataclass(frozen=True)
class KernelSymbols:
    kernels: dict[str, str]  # kernel name -> PTX entry name


def symbols_for(program: LoopProgram) -> KernelSymbols:
    return KernelSymbols({name: c_identifier(name) for name in program.kernels})


def build_module(program: LoopProgram, simt: dict[str, SimtKernel], data_layout: str = "") -> ir.Module:
    module = ir.Module(name=program.name)
    module.triple = TRIPLE
    if data_layout:
        module.data_layout = data_layout
    ctx = ModuleContext(module, has_fma=True, threads=1, vectorize_hints=False)
    symbols = symbols_for(program)
    annotations = module.add_named_metadata("nvvm.annotations")
    functions = {}
    for name, kernel in program.kernels.items():  # declare everything first, then define
        pointer = ir.PointerType(addrspace=GLOBAL)
        function = ir.Function(module, ir.FunctionType(VOID, [pointer] * len(kernel.params)),
                               name=symbols.kernels[name])
        function.calling_convention = "ptx_kernel"
        function.attributes.add("nounwind")
        for arg, param in zip(function.args, kernel.params):
            arg.name = param.name
        if all(len(set(call.args)) == len(call.args) for call in program.calls if call.kernel == name):
            for arg in function.args:
                arg.add_attribute("noalias")
        for axis, extent in (("x", simt[name].block), ("y", 1), ("z", 1)):
            annotations.add(module.add_metadata([function, ir.MetaDataString(module, f"maxntid{axis}"),
                                                 ir.Constant(I32, extent)]))
        functions[name] = function
    for name, kernel in program.kernels.items():
        GpuKernelEmitter(ctx, functions[name], kernel, simt[name]).emit_kernel()
    return module
