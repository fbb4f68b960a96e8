"""LLVM IR -> PTX through llvmlite's NVPTX backend: one target machine per architecture (sm_80/90/100).

`nvptx_available()` says whether this llvmlite's LLVM was built with the NVPTX target; the GPU target
refuses to compile (with that reason) when it was not. The module is verified, optimised with LLVM's
default pipeline at the requested level (the new pass manager, NVPTX's own passes included through
the target machine) and printed as PTX text; the PTX ISA version is LLVM's default for the
architecture (7.0 for sm_80, 7.8 for sm_90, 8.6 for sm_100 with LLVM 22).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from targets.gpu.codegen.module import TRIPLE

_LOCK = threading.Lock()  # LLVM's pass pipelines share global state


class PtxError(Exception):
    """LLVM could not produce PTX (no NVPTX backend, or invalid IR: a code generator bug)."""


@functools.cache
def _llvm() -> Any:
    import llvmlite.binding as llvm
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm


def nvptx_available() -> str | None:
    """None when LLVM has the NVPTX backend, else why not."""
    try:
        _llvm().Target.from_triple(TRIPLE)
    except RuntimeError as error:
        return f"llvmlite's LLVM has no NVPTX backend ({error})"
    return None


@functools.cache
def target_machine(arch: str, opt_level: int) -> Any:
    llvm = _llvm()
    return llvm.Target.from_triple(TRIPLE).create_target_machine(cpu=arch, opt=opt_level)


def data_layout(arch: str) -> str:
    return str(target_machine(arch, 2).target_data)


def optimize(ir_text: str, arch: str, opt_level: int) -> Any:
    """Parse, verify and optimise an LLVM module for `arch`; returns the llvmlite module reference."""
    llvm = _llvm()
    try:
        module = llvm.parse_assembly(ir_text)
        module.verify()
    except RuntimeError as error:
        raise PtxError(f"the GPU code generator produced invalid LLVM IR: {error}") from None
    machine = target_machine(arch, opt_level)
    options = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    options.loop_unrolling = opt_level >= 2
    with _LOCK:
        builder = llvm.create_pass_builder(machine, options)
        builder.getModulePassManager().run(module, builder)
    return module


def emit_ptx(module: Any, arch: str, opt_level: int) -> str:
    with _LOCK:
        return target_machine(arch, opt_level).emit_assembly(module)
