"""LLVM through llvmlite: initialisation, target machines, the optimisation pipeline and MCJIT loading.

Initialisation uses only `initialize_native_target` and `initialize_native_asmprinter` (`llvm.initialize()`
raises since llvmlite 0.45). Modules are optimised with the new pass manager at the requested speed
level for the host's triple, CPU name and features, so LLVM's cost models and instruction selection
see AVX2/AVX-512 where the host has them.

Two code flavours: JIT objects (MCJIT, the "jitdefault" code model so that the loaded sections may sit
anywhere in the address space) and position-independent objects for shared libraries. A JIT object is
plain ELF; `load_object` puts it into a fresh MCJIT engine, which resolves its external symbols
(libgomp, libc's malloc) in the process.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

_LOCK = threading.Lock()  # LLVM's global state (pass timing, the JIT's symbol table) is not thread-safe


@functools.cache
def initialize_llvm() -> ModuleType:
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


@functools.cache
def load_openmp() -> str | None:
    """Make libgomp's symbols visible to JIT-compiled code; returns the library name, or None if absent."""
    llvm = initialize_llvm()
    for name in ("libgomp.so.1", "libgomp.so"):
        try:
            llvm.load_library_permanently(name)
            return name
        except RuntimeError:
            continue
    return None


@functools.cache
def target_machine(opt_level: int, flavour: str = "jit") -> Any:
    """The shared TargetMachine for optimising and emitting at `opt_level` (never handed to an engine)."""
    return new_target_machine(opt_level, flavour)


def new_target_machine(opt_level: int, flavour: str = "jit") -> Any:
    """A TargetMachine for the host at `opt_level`; flavour "jit" (MCJIT) or "pic" (shared libraries).
    An MCJIT engine takes ownership of its machine, so each engine gets a new one."""
    from targets.cpu.host import host_info
    llvm = initialize_llvm()
    host = host_info()
    target = llvm.Target.from_triple(host.triple)
    if flavour == "jit":
        return target.create_target_machine(cpu=host.cpu, features=host.features, opt=opt_level, jit=True,
                                            codemodel="jitdefault")
    return target.create_target_machine(cpu=host.cpu, features=host.features, opt=opt_level, reloc="pic",
                                        codemodel="default")


def parse(ir_text: str) -> Any:
    """Parse and verify LLVM IR text (a bug in the code generator shows up here, not at run time)."""
    llvm = initialize_llvm()
    module = llvm.parse_assembly(ir_text)
    module.verify()
    return module


def optimize(module: Any, opt_level: int, flavour: str = "jit") -> Any:
    """Run LLVM's default -O<level> pipeline (new pass manager) on `module`, in place; returns it."""
    llvm = initialize_llvm()
    tm = target_machine(opt_level, flavour)
    options = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    options.loop_vectorization = opt_level >= 2
    options.slp_vectorization = opt_level >= 2
    options.loop_unrolling = opt_level >= 2
    with _LOCK:
        builder = llvm.create_pass_builder(tm, options)
        manager = builder.getModulePassManager()
        manager.run(module, builder)
    return module


def emit_object(module: Any, opt_level: int, flavour: str = "jit") -> bytes:
    with _LOCK:
        return target_machine(opt_level, flavour).emit_object(module)


def emit_assembly(module: Any, opt_level: int, flavour: str = "jit") -> str:
    with _LOCK:
        return target_machine(opt_level, flavour).emit_assembly(module)


@dataclass
class LoadedObject:
    """Machine code loaded into an MCJIT engine; keep it alive while its function addresses are used."""

    engine: Any
    addresses: dict[str, int]


def load_objects(objects: list[bytes], symbols: list[str], opt_level: int) -> LoadedObject:
    """Load JIT objects into one new engine (symbols resolve across them) and look up `symbols`;
    raises KeyError for a missing one."""
    llvm = initialize_llvm()
    load_openmp()
    with _LOCK:
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), new_target_machine(opt_level, "jit"))
        for data in objects:
            engine.add_object_file(llvm.ObjectFileRef.from_data(data))
        engine.finalize_object()
        addresses = {}
        for name in symbols:
            address = engine.get_function_address(name)
            if not address:
                raise KeyError(name)
            addresses[name] = address
    return LoadedObject(engine, addresses)


def load_object(data: bytes, symbols: list[str], opt_level: int) -> LoadedObject:
    return load_objects([data], symbols, opt_level)
