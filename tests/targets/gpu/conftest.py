"""Fixtures of the GPU target's tests: graphs from .nk text, the ptxas skip, and the GPU skip.

Nothing here needs a GPU except tests marked `gpu`, which skip (with the reason) when no NVIDIA GPU and
driver package are found. Tests that take the `ptxas` fixture skip when `ptxas` is not on the PATH.
"""

from __future__ import annotations

import numpy as np
import pytest

import compiler  # the compiler package first: targets.base imports it
from ir.loop_eval import run_kernel


@pytest.fixture
def graph():
    """graph(text, defines=None): the graph of .nk text after the default graph passes (with fusion groups)."""

    def build(text: str, defines: dict | None = None):
        return compiler.compile_string(text, target="ref", defines=defines or {}).graph

    return build


@pytest.fixture
def ptxas() -> str:
    """The path of ptxas; skips the test (saying why) when the CUDA toolkit is not installed."""
    from targets.gpu.ptxas import ptxas_path
    path = ptxas_path()
    if path is None:
        pytest.skip("ptxas (CUDA toolkit) is not on the PATH: PTX cannot be assembled here")
    return path


@pytest.fixture
def gpu_driver():
    """A CUDA driver for the real GPU; skips the test when there is none."""
    from targets.gpu.launcher import GpuUnavailable, find_driver
    try:
        return find_driver()
    except GpuUnavailable as error:
        pytest.skip(str(error))


class LoopDriver:
    """A driver without a GPU: memory is numpy bytes, a launch evaluates the kernel's loop IR."""

    name = "loop-ir"

    def __init__(self, program) -> None:
        from targets.gpu.codegen.module import symbols_for
        self.program = program
        self.entries = {entry: program.kernels[name] for name, entry in symbols_for(program).kernels.items()}
        self.launches: list[tuple[str, int, int]] = []

    def load(self, ptx: str):
        assert ".entry" in ptx
        return ptx

    def function(self, module, entry: str):
        return self.entries[entry]

    def alloc(self, nbytes: int) -> np.ndarray:
        return np.full(nbytes, 0xAB, dtype=np.uint8)  # garbage, as fresh device memory may hold

    def address(self, allocation: np.ndarray, offset: int = 0):
        return allocation, offset

    def to_device(self, allocation: np.ndarray, host: np.ndarray) -> None:
        allocation[:host.nbytes] = host.reshape(-1).view(np.uint8)

    def to_host(self, allocation: np.ndarray, host: np.ndarray) -> None:
        host.reshape(-1).view(np.uint8)[...] = allocation[:host.nbytes]

    def launch(self, kernel, grid: int, block: int, shared: int, args) -> None:
        from targets.gpu.launcher import from_storage, storage_dtype, to_storage
        self.launches.append((kernel.name, grid, block))
        views = {}
        for param, (allocation, offset) in zip(kernel.params, args):
            raw = allocation[offset:offset + param.nbytes].view(storage_dtype(param.dtype))
            views[param.name] = (raw, from_storage(raw.copy(), param).copy())
        arrays = {name: host for name, (_, host) in views.items()}
        run_kernel(kernel, arrays)
        for param in kernel.params:
            if param.name in kernel.writes:
                raw, _ = views[param.name]
                raw[...] = to_storage(arrays[param.name], param.dtype).reshape(-1)

    def elapsed(self, run) -> float:
        run()
        return 1e-6

    def synchronize(self) -> None:
        pass


@pytest.fixture
def loop_driver():
    """LoopDriver(program): a stand-in CUDA driver that runs each launch as the kernel's loop IR."""
    return LoopDriver
