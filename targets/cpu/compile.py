"""Loop program -> loaded machine code, through the caches: the CPU target's build pipeline.

    per kernel:  canonical form -> cache key -> [memory | disk | codegen -> parse -> optimise -> object]
    per program: entry module (calls the kernels by symbol) -> object;  all objects -> one MCJIT engine

Kernels are compiled one module each, named by the hash of their canonical form (`canonical`), so
identical kernels (the repeated layers of a model, the same softmax in two programs) compile once
per machine. `LlvmBuild` gives the whole program as one module for `--emit llvm/asm/obj` and shared
libraries.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ir.loop_printer import print_kernel, print_program
from ir.loops import LoopProgram
from targets.cpu import jit
from targets.cpu.cache import DiskCache, cache_key
from targets.cpu.canonical import canonical_kernel
from targets.cpu.codegen.program import (ModuleSymbols, WorkspaceLayout, build_entry_module, build_kernel_module,
                                         build_module, noalias_params, symbols_for, workspace_layout)
from targets.cpu.host import host_info, usable_cpus


@dataclass(frozen=True)
class BuildOptions:
    """Everything besides the loop IR that changes the machine code, plus where to cache it."""

    opt_level: int = 2
    threads: int = field(default_factory=lambda: usable_cpus())
    cache_dir: Path | None = None  # None: cache.default_cache_dir()
    disk_cache: bool = True


@dataclass
class CompiledProgram:
    program: LoopProgram
    loop_ir: str
    key: str
    symbols: ModuleSymbols
    layout: WorkspaceLayout
    loaded: jit.LoadedObject
    source: str  # "memory", "disk" or "compiled": where the machine code came from (worst of its parts)
    options: BuildOptions


class LlvmBuild:
    """The LLVM forms of one program as a single module, built lazily: the optimised module text,
    assembly and object code (JIT or PIC flavour)."""

    def __init__(self, program: LoopProgram, options: BuildOptions) -> None:
        self.program = program
        self.options = options
        self._optimized: dict[str, object] = {}

    def module_text(self) -> str:
        host = host_info()
        module = build_module(self.program, triple=host.triple, has_fma=host.has_fma, threads=self.options.threads,
                              data_layout=_data_layout(self.options.opt_level))
        return str(module)

    def optimized(self, flavour: str = "jit") -> object:
        if flavour not in self._optimized:
            module = jit.parse(self.module_text())
            self._optimized[flavour] = jit.optimize(module, self.options.opt_level, flavour)
        return self._optimized[flavour]

    def llvm_ir(self) -> str:
        return str(self.optimized())

    def assembly(self, flavour: str = "jit") -> str:
        return jit.emit_assembly(self.optimized(flavour), self.options.opt_level, flavour)

    def object_code(self, flavour: str = "jit") -> bytes:
        return jit.emit_object(self.optimized(flavour), self.options.opt_level, flavour)


def _data_layout(opt_level: int) -> str:
    return str(jit.target_machine(opt_level).target_data)


def _object_from_ir(ir_text: str, opt_level: int) -> bytes:
    module = jit.optimize(jit.parse(ir_text), opt_level)
    return jit.emit_object(module, opt_level)


_PROGRAMS: dict[str, jit.LoadedObject] = {}  # program key -> loaded engine
_OBJECTS: dict[str, bytes] = {}  # kernel or entry key -> object code
_LOCK = threading.Lock()


class _ObjectSource:
    """Object code by key: this process's memory, then the disk cache, then `build()` (stored in both)."""

    def __init__(self, options: BuildOptions) -> None:
        self.disk = DiskCache(options.cache_dir) if options.disk_cache else None
        self.sources: set[str] = set()

    def get(self, key: str, build: Callable[[], bytes]) -> bytes:
        with _LOCK:
            data = _OBJECTS.get(key)
        source = "memory"
        if data is None and self.disk is not None:
            data = self.disk.load(key)
            source = "disk"
        if data is None:
            data = build()
            source = "compiled"
            if self.disk is not None:
                self.disk.store(key, data)
        with _LOCK:
            _OBJECTS.setdefault(key, data)
        self.sources.add(source)
        return data

    def discard(self, keys: list[str]) -> None:
        with _LOCK:
            for key in keys:
                _OBJECTS.pop(key, None)
        if self.disk is not None:
            for key in keys:
                self.disk.discard(key)

    @property
    def worst(self) -> str:
        for source in ("compiled", "disk", "memory"):
            if source in self.sources:
                return source
        return "memory"


def compile_loops(program: LoopProgram, options: BuildOptions = BuildOptions()) -> CompiledProgram:
    """Machine code for `program`, loaded and ready to call (from the caches when possible)."""
    host = host_info()
    if options.threads > 1 and jit.load_openmp() is None:  # no libgomp here: parallel loops run serially
        options = dataclasses.replace(options, threads=1)
    key_of = lambda text: cache_key(text, host.triple, host.cpu, host.features,  # noqa: E731
                                    options.opt_level, options.threads)
    loop_ir = print_program(program)
    key = key_of(loop_ir)
    layout = workspace_layout(program)
    kernel_keys = {}
    for name, kernel in program.kernels.items():
        noalias = noalias_params(program, name)
        kernel_keys[name] = key_of(f"noalias={noalias}\n" + print_kernel(canonical_kernel(kernel)))
    symbols = symbols_for(program, {name: f"niche_k_{kernel_key[:24]}" for name, kernel_key in kernel_keys.items()})
    wanted = [symbols.entry, symbols.workspace_bytes] + sorted(set(symbols.kernels.values()))
    with _LOCK:
        loaded = _PROGRAMS.get(key)
    if loaded is not None:
        return CompiledProgram(program, loop_ir, key, symbols, layout, loaded, "memory", options)

    objects = _ObjectSource(options)
    data_layout = _data_layout(options.opt_level)
    codes: dict[str, bytes] = {}
    for name, kernel in program.kernels.items():
        symbol = symbols.kernels[name]
        if symbol not in codes:
            build = lambda kernel=kernel, symbol=symbol, name=name: _object_from_ir(str(build_kernel_module(  # noqa: E731
                kernel, symbol, noalias_params(program, name), triple=host.triple, has_fma=host.has_fma,
                threads=options.threads, data_layout=data_layout)), options.opt_level)
            codes[symbol] = objects.get(kernel_keys[name], build)
    entry_key = key_of("entry\n" + loop_ir)
    codes["entry"] = objects.get(entry_key, lambda: _object_from_ir(str(build_entry_module(
        program, symbols.kernels, triple=host.triple, data_layout=data_layout)), options.opt_level))
    try:
        loaded = jit.load_objects(list(codes.values()), wanted, options.opt_level)
    except (KeyError, RuntimeError):  # a cached object that passed its checksum but will not load
        objects.discard(list(kernel_keys.values()) + [entry_key])
        return compile_loops(program, dataclasses.replace(options, disk_cache=False))
    with _LOCK:
        _PROGRAMS.setdefault(key, loaded)
    return CompiledProgram(program, loop_ir, key, symbols, layout, loaded, objects.worst, options)


def forget_memory_cache() -> None:
    """Drop the in-process caches (tests use it to exercise the disk cache)."""
    with _LOCK:
        _PROGRAMS.clear()
        _OBJECTS.clear()
