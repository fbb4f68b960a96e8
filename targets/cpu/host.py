"""What the host CPU is: LLVM triple, CPU name and features, SIMD width, cores and cache sizes.

Everything here is read from the running machine (LLVM's host queries and Linux's sysfs), once per
process. The code generator uses the features and width; the schedules use the widths, register
count and cache sizes to pick tile sizes; the cost model reads the same record. Cache sizes fall back
to typical values (marked `assumed`) where sysfs is not readable.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from ir.dtypes import DType

_FALLBACK_CACHES = {1: 32 * 1024, 2: 512 * 1024, 3: 8 * 1024 * 1024}


@dataclass(frozen=True)
class HostInfo:
    triple: str
    cpu: str
    features: str  # LLVM feature string, "+avx2,-avx512f,..."
    vector_bits: int  # widest SIMD register: 512 (AVX-512), 256 (AVX/AVX2), 128 (SSE/NEON)
    vector_registers: int  # architectural SIMD registers of that width (32 with AVX-512, else 16)
    has_fma: bool
    cores: int  # CPUs this process may run on
    l1d_bytes: int  # per core
    l2_bytes: int  # per core
    l3_bytes: int  # shared
    caches_assumed: bool  # True when sysfs could not be read and the sizes are typical values

    def lanes(self, dtype: DType) -> int:
        """SIMD lanes of one register for `dtype` (f16/bf16 compute in f32 lanes; bool in i8 lanes)."""
        bits = 32 if dtype in (DType.F16, DType.BF16) else max(8, dtype.bits)
        return max(1, self.vector_bits // bits)

    def has(self, feature: str) -> bool:
        return f"+{feature}" in self.features.split(",")

    @property
    def description(self) -> str:
        return f"{self.triple} ({self.cpu}, {self.vector_bits}-bit SIMD, {self.cores} cores)"


def _cache_sizes() -> tuple[int, int, int, bool]:
    sizes: dict[int, int] = {}
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for index in sorted(root.glob("index*")):
            kind = (index / "type").read_text().strip()
            if kind == "Instruction":
                continue
            level = int((index / "level").read_text())
            sizes[level] = _parse_size((index / "size").read_text().strip())
    except (OSError, ValueError):
        sizes = {}
    assumed = not all(level in sizes for level in (1, 2, 3))
    for level, size in _FALLBACK_CACHES.items():
        sizes.setdefault(level, size)
    return sizes[1], sizes[2], sizes[3], assumed


def _parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024 * 1024, "G": 1024 ** 3}
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; `taskset -c 0,1` gives 2)."""
    return _cores()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.cache
def host_info() -> HostInfo:
    """The host, as LLVM and the OS describe it (cached for the process)."""
    from targets.cpu.jit import initialize_llvm
    llvm = initialize_llvm()
    features = llvm.get_host_cpu_features().flatten()
    enabled = set(f[1:] for f in features.split(",") if f.startswith("+"))
    if "avx512f" in enabled:
        bits, registers = 512, 32
    elif "avx" in enabled:
        bits, registers = 256, 16
    else:
        bits, registers = 128, 16
    l1, l2, l3, assumed = _cache_sizes()
    return HostInfo(triple=llvm.get_process_triple(), cpu=llvm.get_host_cpu_name(), features=features,
                    vector_bits=bits, vector_registers=registers, has_fma="fma" in enabled, cores=_cores(),
                    l1d_bytes=l1, l2_bytes=l2, l3_bytes=l3, caches_assumed=assumed)
