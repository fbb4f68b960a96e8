"""Running the PTX on an NVIDIA GPU: load it with the CUDA driver API, allocate, copy, launch, time.

Two interchangeable drivers, tried in order (both optional; `pip install niche[gpu]` gives the first):

* `CudaPythonDriver`: NVIDIA's cuda-python (`cuda.bindings.driver`, or `cuda.cuda` before 12.6):
  cuInit, the device's primary context, cuModuleLoadData (the driver JIT-compiles the PTX for the GPU
  it finds), cuMemAlloc/cuMemcpy, cuLaunchKernel on one stream, cuEvent timing.
* `CupyDriver`: CuPy's `cupy.cuda.function.Module` over the same driver calls.

`find_driver()` returns the first that finds a GPU, or raises `GpuUnavailable` starting
"no NVIDIA GPU/driver found:" with what each attempt reported. `Launcher` follows a launch
description (`targets.gpu.launch`): buffers per input and output, one workspace for the intermediates,
the calls in order, the outputs copied back; `time_kernels` times each kernel with events. A driver is
any object with the methods of `Driver`, which is how the tests run the launcher without a GPU.
"""

from __future__ import annotations

import statistics
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from ir.dtypes import DType, round_bf16
from ir.loops import Buffer
from targets.gpu.launch import LaunchDescription


class GpuUnavailable(Exception):
    """No NVIDIA GPU could be used (no driver package, no driver, or no device)."""


class GpuRuntimeError(Exception):
    """A driver call failed after the GPU was found (loading the PTX, a launch, a copy)."""


class Driver(Protocol):
    name: str

    def load(self, ptx: str) -> Any: ...

    def function(self, module: Any, entry: str) -> Any: ...

    def alloc(self, nbytes: int) -> Any: ...  # a device allocation; `address(allocation, offset)` points into it

    def address(self, allocation: Any, offset: int = 0) -> Any: ...

    def to_device(self, allocation: Any, host: np.ndarray) -> None: ...

    def to_host(self, allocation: Any, host: np.ndarray) -> None: ...

    def launch(self, function: Any, grid: int, block: int, shared: int, args: Sequence[Any]) -> None: ...

    def elapsed(self, run: Any) -> float: ...  # seconds `run()` takes on the GPU, timed with events

    def synchronize(self) -> None: ...


# -- host <-> device representation --------------------------------------------------------------


def to_storage(array: np.ndarray, dtype: DType) -> np.ndarray:
    """A host array as the bytes the kernels read: bf16 as the upper 16 bits, bool as one byte."""
    array = np.ascontiguousarray(array)
    if dtype is DType.BF16:
        return (round_bf16(array).view(np.uint32) >> 16).astype(np.uint16)
    if dtype is DType.BOOL:
        return array.astype(np.uint8)
    return array.astype(dtype.numpy, copy=False)


def from_storage(raw: np.ndarray, buffer: Buffer) -> np.ndarray:
    if buffer.dtype is DType.BF16:
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(buffer.shape)
    if buffer.dtype is DType.BOOL:
        return raw.astype(np.bool_).reshape(buffer.shape)
    return raw.reshape(buffer.shape)


def storage_dtype(dtype: DType) -> np.dtype:
    return np.dtype(np.uint16 if dtype is DType.BF16 else np.uint8 if dtype is DType.BOOL else dtype.numpy)


# -- the launcher ---------------------------------------------------------------------------------


class Launcher:
    """Runs one compiled program (its PTX and launch description) on a driver's GPU."""

    def __init__(self, description: LaunchDescription, ptx: str, driver: Driver | None = None) -> None:
        self.description = description
        self.driver = driver or find_driver()
        module = self.driver.load(ptx)
        self.functions = {k.name: self.driver.function(module, k.entry) for k in description.kernels}
        self.buffers = {b.name: b for b in description.buffers}
        self.allocations: dict[str, tuple[Any, int]] = {}  # buffer -> (allocation, offset)
        for name in dict.fromkeys(description.inputs + description.outputs):
            self.allocations[name] = (self.driver.alloc(max(1, self.buffers[name].nbytes)), 0)
        if description.offsets:
            workspace = self.driver.alloc(max(1, description.workspace_bytes))
            for name, offset in description.offsets.items():
                self.allocations[name] = (workspace, offset)

    def _pointer(self, name: str) -> Any:
        allocation, offset = self.allocations[name]
        return self.driver.address(allocation, offset)

    def copy_in(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Copy the inputs (by buffer name, in Niche's host representation) to the device."""
        for name in self.description.inputs:
            buffer = self.buffers[name]
            if name not in inputs:
                raise KeyError(f"missing input '{name}'")
            array = to_storage(np.asarray(inputs[name]), buffer.dtype)
            if array.shape != buffer.shape:
                raise ValueError(f"input '{name}' has shape {array.shape}, expected {buffer.shape}")
            self._to_device(name, array)

    def _to_device(self, name: str, array: np.ndarray) -> None:
        allocation, offset = self.allocations[name]
        if offset:
            raise AssertionError("inputs are never in the workspace")
        self.driver.to_device(allocation, array)

    def launch_all(self) -> None:
        for kernel_name, args in self.description.calls:
            self.launch(kernel_name, args)

    def launch(self, kernel_name: str, args: Sequence[str]) -> None:
        kernel = self.description.kernel(kernel_name)
        self.driver.launch(self.functions[kernel_name], kernel.grid, kernel.block, 0,
                           [self._pointer(arg) for arg in args])

    def copy_out(self) -> list[np.ndarray]:
        self.driver.synchronize()
        results = []
        for name in self.description.outputs:
            buffer = self.buffers[name]
            raw = np.empty(buffer.shape, dtype=storage_dtype(buffer.dtype))
            allocation, offset = self.allocations[name]
            if offset:
                raise AssertionError("outputs are never in the workspace")
            self.driver.to_host(allocation, raw)
            results.append(from_storage(raw, buffer))
        return results

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.copy_in(inputs)
        self.launch_all()
        return self.copy_out()

    def time_kernels(self, inputs: Mapping[str, np.ndarray], repeats: int = 10) -> dict[str, float]:
        """Median GPU seconds of each kernel (summed over its calls), each call timed with events after a
        warm-up run of the whole program."""
        self.copy_in(inputs)
        self.launch_all()
        self.driver.synchronize()
        samples: dict[str, list[float]] = {}
        for _ in range(repeats):
            per_kernel: dict[str, float] = {}
            for kernel_name, args in self.description.calls:
                seconds = self.driver.elapsed(lambda k=kernel_name, a=args: self.launch(k, a))
                per_kernel[kernel_name] = per_kernel.get(kernel_name, 0.0) + seconds
            for name, seconds in per_kernel.items():
                samples.setdefault(name, []).append(seconds)
        return {name: statistics.median(values) for name, values in samples.items()}


# -- drivers --------------------------------------------------------------------------------------


def find_driver() -> Driver:
    reasons = []
    for factory in (CudaPythonDriver, CupyDriver):
        try:
            return factory()
        except GpuUnavailable as error:
            reasons.append(f"{factory.name}: {error}")
    raise GpuUnavailable("no NVIDIA GPU/driver found: " + "; ".join(reasons) +
                         " (install the gpu extra, `pip install niche[gpu]`, on a machine with an NVIDIA GPU)")


class CudaPythonDriver:
    name = "cuda-python"

    def __init__(self) -> None:
        try:
            from cuda.bindings import driver as cu
        except ImportError:
            try:
                from cuda import cuda as cu
            except ImportError:
                raise GpuUnavailable("the cuda-python package is not installed") from None
        self.cu = cu
        try:
            self._check(cu.cuInit(0), "cuInit")
            count = self._check(cu.cuDeviceGetCount(), "cuDeviceGetCount")
            if int(count) < 1:
                raise GpuUnavailable("the CUDA driver sees no device")
            self.device = self._check(cu.cuDeviceGet(0), "cuDeviceGet")
            self.context = self._check(cu.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
            self._check(cu.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
            self.stream = self._check(cu.cuStreamCreate(0), "cuStreamCreate")
        except (RuntimeError, OSError) as error:
            raise GpuUnavailable(str(error)) from None
        self._keep: list[Any] = []

    def _check(self, result: tuple, what: str) -> Any:
        error, *values = result
        if int(error) != 0:
            _, text = self.cu.cuGetErrorString(error)
            message = text.decode() if isinstance(text, bytes) else str(error)
            failure = GpuUnavailable if what.startswith(("cuInit", "cuDevice")) else GpuRuntimeError
            raise failure(f"{what} failed: {message}")
        return values[0] if len(values) == 1 else tuple(values) if values else None

    def load(self, ptx: str) -> Any:
        image = np.frombuffer(ptx.encode() + b"\0", dtype=np.uint8)
        return self._check(self.cu.cuModuleLoadData(image.ctypes.data), "cuModuleLoadData")

    def function(self, module: Any, entry: str) -> Any:
        return self._check(self.cu.cuModuleGetFunction(module, entry.encode()), "cuModuleGetFunction")

    def alloc(self, nbytes: int) -> Any:
        return self._check(self.cu.cuMemAlloc(nbytes), "cuMemAlloc")

    def address(self, allocation: Any, offset: int = 0) -> int:
        return int(allocation) + offset

    def to_device(self, allocation: Any, host: np.ndarray) -> None:
        self._check(self.cu.cuMemcpyHtoD(allocation, host.ctypes.data, host.nbytes), "cuMemcpyHtoD")

    def to_host(self, allocation: Any, host: np.ndarray) -> None:
        self._check(self.cu.cuMemcpyDtoH(host.ctypes.data, allocation, host.nbytes), "cuMemcpyDtoH")

    def launch(self, function: Any, grid: int, block: int, shared: int, args: Sequence[int]) -> None:
        values = np.array(list(args), dtype=np.uint64)  # the pointer arguments
        pointers = np.array([values.ctypes.data + 8 * i for i in range(len(values))], dtype=np.uint64)
        self._keep = [values, pointers]  # alive until the launch has read them (cuLaunchKernel copies)
        self._check(self.cu.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, shared, self.stream,
                                           pointers.ctypes.data, 0), "cuLaunchKernel")

    def elapsed(self, run: Any) -> float:
        start = self._check(self.cu.cuEventCreate(0), "cuEventCreate")
        end = self._check(self.cu.cuEventCreate(0), "cuEventCreate")
        self._check(self.cu.cuEventRecord(start, self.stream), "cuEventRecord")
        run()
        self._check(self.cu.cuEventRecord(end, self.stream), "cuEventRecord")
        self._check(self.cu.cuEventSynchronize(end), "cuEventSynchronize")
        milliseconds = self._check(self.cu.cuEventElapsedTime(start, end), "cuEventElapsedTime")
        self.cu.cuEventDestroy(start)
        self.cu.cuEventDestroy(end)
        return float(milliseconds) / 1e3

    def synchronize(self) -> None:
        self._check(self.cu.cuStreamSynchronize(self.stream), "cuStreamSynchronize")


class CupyDriver:
    name = "cupy"

    def __init__(self) -> None:
        try:
            import cupy
        except ImportError:
            raise GpuUnavailable("CuPy is not installed") from None
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise GpuUnavailable("CuPy sees no device")
        except cupy.cuda.runtime.CUDARuntimeError as error:
            raise GpuUnavailable(str(error)) from None
        self.cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def load(self, ptx: str) -> Any:
        module = self.cupy.cuda.function.Module()
        module.load(ptx.encode())
        return module

    def function(self, module: Any, entry: str) -> Any:
        return module.get_function(entry)

    def alloc(self, nbytes: int) -> Any:
        return self.cupy.empty(nbytes, dtype=self.cupy.uint8)

    def address(self, allocation: Any, offset: int = 0) -> Any:
        return allocation[offset:] if offset else allocation

    def to_device(self, allocation: Any, host: np.ndarray) -> None:
        allocation[:host.nbytes].set(host.reshape(-1).view(np.uint8), stream=self.stream)

    def to_host(self, allocation: Any, host: np.ndarray) -> None:
        host.reshape(-1).view(np.uint8)[...] = allocation[:host.nbytes].get(stream=self.stream)

    def launch(self, function: Any, grid: int, block: int, shared: int, args: Sequence[Any]) -> None:
        function((grid, 1, 1), (block, 1, 1), tuple(args), shared_mem=shared, stream=self.stream)

    def elapsed(self, run: Any) -> float:
        start, end = self.cupy.cuda.Event(), self.cupy.cuda.Event()
        start.record(self.stream)
        run()
        end.record(self.stream)
        end.synchronize()
        return self.cupy.cuda.get_elapsed_time(start, end) / 1e3

    def synchronize(self) -> None:
        self.stream.synchronize()
