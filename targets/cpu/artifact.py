"""Calling compiled CPU code from Python: argument checks, output allocation, workspace reuse.

`CpuArtifact.run(inputs, out=None)` checks every array before any native code runs: a missing or
extra name, a non-array, the wrong dtype, shape or rank, a non-C-contiguous or misaligned array, a
read-only or overlapping output all raise `ArgumentError` with the parameter's name, so the kernels
never read or write the wrong memory. `out` may be a list with one array (or None) per output; given
arrays are written in place and returned. bf16 tensors travel as float32 arrays holding bf16 values
(Niche's convention) and are converted to/from the 2-byte storage around the call.

The workspace for intermediates is allocated once per artifact and reused; a call that finds it in use
by another thread (ctypes releases the GIL during the call) gets a fresh one, so concurrent calls are
safe.
"""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Mapping, Sequence

import numpy as np

from compiler.diagnostics import ArgumentError
from ir.dtypes import DType, round_bf16
from ir.loop_printer import print_program
from ir.loops import Buffer
from targets.base import TargetError
from targets.cpu.compile import BuildOptions, CompiledProgram, LlvmBuild
from targets.cpu.host import host_info
from targets.cpu.inputs import InputLayout

EMIT_KINDS = ("loops", "llvm", "asm", "obj")


def _to_bf16_bits(values: np.ndarray) -> np.ndarray:
    return (round_bf16(values).view(np.uint32) >> 16).astype(np.uint16)


def _from_bf16_bits(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    values = (bits.astype(np.uint32) << 16).view(np.float32)
    if out is None:
        return values
    out[...] = values
    return out


class CpuArtifact:
    emit_kinds: tuple[str, ...] = EMIT_KINDS

    sparse_arguments = True  # the driver passes sparse-format arguments as ir.sparse.SparseMatrix

    def __init__(self, compiled: CompiledProgram, param_names: Sequence[str] | None = None,
                 layout: InputLayout | None = None) -> None:
        self.compiled = compiled
        self.program = compiled.program
        self.param_names = list(param_names) if param_names is not None else list(self.program.inputs)
        self.layout = layout  # parameters -> input buffers (sparse storages, bound weights); targets.cpu.inputs
        self.bound_weights = layout.bound_weights if layout is not None else frozenset()
        self.inputs = [self.program.buffers[name] for name in self.program.inputs]
        self.outputs = [self.program.buffers[name] for name in self.program.outputs]
        arity = len(self.inputs) + len(self.outputs) + 1
        address = compiled.loaded.addresses[compiled.symbols.entry]
        self._entry = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * arity)(address)
        self._workspace_lock = threading.Lock()
        self._workspace = self._new_workspace()
        options = compiled.options
        self.description = (f"LLVM JIT for {host_info().triple} ({host_info().cpu}), -O{options.opt_level}, "
                            f"{options.threads} thread{'s' if options.threads != 1 else ''}")
        self._llvm: LlvmBuild | None = None

    # -- emitting ------------------------------------------------------------------------------

    def emit(self, kind: str) -> str | bytes:
        if kind == "loops":
            return print_program(self.program)
        if kind not in EMIT_KINDS:
            raise TargetError(f"the cpu target emits no '{kind}' (it emits: {', '.join(EMIT_KINDS)})")
        build = self.llvm_build()
        if kind == "llvm":
            return build.llvm_ir()
        if kind == "asm":
            return build.assembly()
        return build.object_code()

    def llvm_build(self) -> LlvmBuild:
        if self._llvm is None:
            self._llvm = LlvmBuild(self.program, self.compiled.options)
        return self._llvm

    def write_library(self, path: str) -> tuple[str, str]:
        """Write this program as a shared library `path` plus its C header (see `library`)."""
        from targets.cpu.library import write_shared_library
        library, header = write_shared_library(self.program, self.compiled.options, path)
        return str(library), str(header)

    @property
    def options(self) -> BuildOptions:
        return self.compiled.options

    # -- calling -------------------------------------------------------------------------------

    def run(self, inputs: Mapping[str, np.ndarray], out: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
        """Run on named inputs; returns the outputs (the arrays in `out` where given)."""
        arrays = self._check_inputs(inputs)
        results, raw_outputs = self._prepare_outputs(out, arrays)
        pointers = [a.ctypes.data for a in arrays] + [a.ctypes.data for a in raw_outputs]
        self._call(pointers)
        for index, buffer in enumerate(self.outputs):
            if buffer.dtype is DType.BF16:
                results[index] = _from_bf16_bits(raw_outputs[index], results[index])
        return results

    def _call(self, pointers: list[int]) -> None:
        if self._workspace_lock.acquire(blocking=False):
            try:
                self._entry(*pointers, self._workspace_pointer(self._workspace))
            finally:
                self._workspace_lock.release()
        else:  # another thread is inside this artifact: use a private workspace
            workspace = self._new_workspace()
            self._entry(*pointers, self._workspace_pointer(workspace))

    def _new_workspace(self) -> np.ndarray | None:
        nbytes = self.compiled.layout.nbytes
        return np.empty(nbytes + 64, dtype=np.uint8) if nbytes else None

    @staticmethod
    def _workspace_pointer(workspace: np.ndarray | None) -> int | None:
        if workspace is None:
            return None
        address = workspace.ctypes.data
        return address + (-address) % 64

    def _check_inputs(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if self.layout is not None:
            return self.layout.arrays(inputs)
        names = dict(zip(self.program.inputs, self.param_names))
        unknown = set(inputs) - set(self.param_names)
        if unknown:
            raise ArgumentError(f"no parameter named {', '.join(sorted(unknown))} "
                                f"(parameters: {', '.join(self.param_names)})")
        arrays = []
        for buffer in self.inputs:
            name = names[buffer.name]
            if name not in inputs:
                raise ArgumentError(f"missing argument '{name}'")
            array = _check_array(f"argument '{name}'", inputs[name], buffer)
            if buffer.dtype is DType.BF16:
                array = _to_bf16_bits(array)
            arrays.append(array)
        return arrays

    def _prepare_outputs(self, out: Sequence[np.ndarray | None] | None,
                         inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if out is not None and len(out) != len(self.outputs):
            raise ArgumentError(f"out= needs {len(self.outputs)} entries (one per output, None to allocate), "
                                f"got {len(out)}")
        results: list[np.ndarray] = []
        raw: list[np.ndarray] = []
        for index, buffer in enumerate(self.outputs):
            given = out[index] if out is not None else None
            if given is None:
                result = np.empty(buffer.shape, dtype=buffer.dtype.numpy)
            else:
                result = _check_array(f"output {index}", given, buffer)
                if not result.flags.writeable:
                    raise ArgumentError(f"output {index} is read-only")
                for other in inputs + results:
                    if np.may_share_memory(result, other):
                        raise ArgumentError(f"output {index} overlaps an input or another output; pass a "
                                            "separate array")
            results.append(result)
            raw.append(np.empty(buffer.shape, np.uint16) if buffer.dtype is DType.BF16 else result)
        return results, raw

    # -- profiling (for the cost model's predicted-vs-measured comparison) ---------------------

    def time_kernels(self, inputs: Mapping[str, np.ndarray], repeats: int = 5) -> dict[str, float]:
        """Median seconds per call of each kernel, run in program order on `inputs`."""
        arrays = self._check_inputs(inputs)
        results, raw = self._prepare_outputs(None, arrays)
        workspace = self._new_workspace()
        base = self._workspace_pointer(workspace)
        pointers: dict[str, int] = {}
        for name, array in zip(self.program.inputs, arrays):
            pointers.setdefault(name, array.ctypes.data)
        for name, array in zip(self.program.outputs, raw):
            pointers.setdefault(name, array.ctypes.data)
        for name, offset in self.compiled.layout.offsets.items():
            pointers[name] = base + offset
        addresses = self.compiled.loaded.addresses
        times: dict[str, list[float]] = {}
        for _ in range(repeats):
            for call in self.program.calls:
                symbol = self.compiled.symbols.kernels[call.kernel]
                function = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * len(call.args))(addresses[symbol])
                args = [pointers[a] for a in call.args]
                start = time.perf_counter()
                function(*args)
                times.setdefault(call.kernel, []).append(time.perf_counter() - start)
        return {kernel: float(np.median(values)) for kernel, values in times.items()}


def _check_array(what: str, value: object, buffer: Buffer) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise ArgumentError(f"{what} must be a numpy array, got {type(value).__name__}")
    want = buffer.dtype.numpy
    if value.dtype != want:
        raise ArgumentError(f"{what} has dtype {value.dtype}, expected {buffer.dtype} (numpy {want})")
    if tuple(value.shape) != buffer.shape:
        raise ArgumentError(f"{what} has shape {list(value.shape)}, expected {list(buffer.shape)}")
    if not value.flags.c_contiguous:
        raise ArgumentError(f"{what} is not C-contiguous (strides {list(value.strides)}); pass "
                            "numpy.ascontiguousarray(...) of it")
    if value.size and value.ctypes.data % value.dtype.itemsize:
        raise ArgumentError(f"{what} is not aligned to its {value.dtype.itemsize}-byte elements")
    return value

