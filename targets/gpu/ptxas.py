"""Assembling PTX with NVIDIA's `ptxas -v` (where it is installed) and reading what it reports per kernel.

`ptxas -arch=sm_90 -v k.ptx -o /dev/null` prints, for each entry function,

    ptxas info    : Compiling entry function 'fused3' for 'sm_90'
    ptxas info    : Function properties for fused3
        0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 368 bytes cmem[0]

which `assemble` turns into a `PtxasInfo` per kernel: the registers a thread uses and the static shared
memory a block holds (the figures occupancy depends on), and the bytes spilled to local memory. The
cost model uses these in place of its estimates. `ptxas_path()` is None without ptxas; nothing here is
needed to compile or price, only to check and refine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_BARRIERS = re.compile(r"used (\d+) barriers")


class PtxasError(Exception):
    """ptxas rejected the PTX; the message holds what it printed."""


@dataclass(frozen=True)
class PtxasInfo:
    kernel: str
    arch: str
    registers: int
    shared_bytes: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int
    barriers: int

    @property
    def spills(self) -> bool:
        return bool(self.spill_stores or self.spill_loads)


def ptxas_path() -> str | None:
    return shutil.which("ptxas")


def version() -> str | None:
    path = ptxas_path()
    if path is None:
        return None
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    lines = [line for line in result.stdout.splitlines() if "release" in line]
    return lines[-1].strip() if lines else result.stdout.strip()


def assemble(ptx: str, arch: str, timeout: float = 300) -> dict[str, PtxasInfo]:
    """Assemble `ptx` for `arch` with ptxas -v; the report of every kernel, by PTX entry name."""
    path = ptxas_path()
    if path is None:
        raise PtxasError("ptxas is not on the PATH (it comes with the CUDA toolkit)")
    with tempfile.TemporaryDirectory(prefix="niche-ptxas-") as folder:
        source = Path(folder) / "kernels.ptx"
        source.write_text(ptx)
        result = subprocess.run([path, f"-arch={arch}", "-v", str(source), "-o", str(Path(folder) / "k.cubin")],
                                capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise PtxasError(f"ptxas -arch={arch} rejected the PTX:\n{output.strip()}")
    return parse_report(output)


def parse_report(text: str) -> dict[str, PtxasInfo]:
    """The per-kernel figures of `ptxas -v` output."""
    found: dict[str, PtxasInfo] = {}
    current: dict | None = None
    for line in text.splitlines():
        entry = _ENTRY.search(line)
        if entry:
            current = {"kernel": entry.group(1), "arch": entry.group(2), "stack": 0, "stores": 0, "loads": 0}
            continue
        if current is None:
            continue
        frame = _FRAME.search(line)
        if frame:
            current["stack"], current["stores"], current["loads"] = (int(g) for g in frame.groups())
        used = _USED.search(line)
        if used:
            smem = _SMEM.search(line)
            barriers = _BARRIERS.search(line)
            found[current["kernel"]] = PtxasInfo(current["kernel"], current["arch"], int(used.group(1)),
                                                 int(smem.group(1)) if smem else 0, current["stack"],
                                                 current["stores"], current["loads"],
                                                 int(barriers.group(1)) if barriers else 0)
            current = None
    return found
