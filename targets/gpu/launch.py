"""The launch description: everything a host program needs to run the PTX, as JSON ("niche.gpu-launch/1").

`niche compile FILE --target gpu --emit ptx -o k.ptx` writes it next to the PTX as `k.launch.json`
(`--emit launch` prints it). Layout:

    {"schema": "niche.gpu-launch/1", "program": NAME, "arch": "sm_90", "ptx": "k.ptx",
     "buffers": [{"name", "dtype", "shape", "bytes", "role": "input"|"output"|"intermediate",
                  "storage": "f32"|"bf16 as uint16 bits"|...}],
     "inputs": [buffer names, in parameter order], "outputs": [buffer names, in result order],
     "workspace": {"bytes": N, "alignment": 256, "offsets": {intermediate: byte offset}},
     "kernels": [{"name", "entry" (the PTX .entry), "grid": [G, 1, 1], "block": [T, 1, 1],
                  "shared_bytes" (static, declared in the PTX), "dynamic_shared_bytes": 0,
                  "params": [{"name", "dtype", "shape", "bytes"}] (each a pointer, in order),
                  "ptxas": {"registers", "shared_bytes", "spill_stores", "spill_loads"} or null}],
     "calls": [{"kernel": NAME, "args": [buffer names bound to the params in order]}]}

To run: allocate every input and output, and one workspace holding the intermediates at their offsets;
copy the inputs in; launch the calls in order on one stream (each kernel's parameters are device
pointers to the named buffers); copy the outputs out. An output that is also an input, or is named
twice, is read from wherever that buffer lives. bf16 buffers hold the upper 16 bits of f32 values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ir.dtypes import DType
from ir.loops import Buffer, LoopProgram
from targets.gpu.codegen.module import symbols_for
from targets.gpu.ptxas import PtxasInfo
from targets.gpu.simt import SimtKernel

SCHEMA = "niche.gpu-launch/1"
WORKSPACE_ALIGNMENT = 256  # bytes: what cudaMalloc guarantees, so every intermediate starts aligned


def storage_name(dtype: DType) -> str:
    if dtype is DType.BF16:
        return "bf16 as uint16 bits"
    if dtype is DType.BOOL:
        return "bool as uint8"
    return str(dtype)


@dataclass(frozen=True)
class KernelLaunch:
    name: str
    entry: str
    grid: int
    block: int
    shared_bytes: int
    params: tuple[Buffer, ...]
    ptxas: PtxasInfo | None = None


@dataclass(frozen=True)
class LaunchDescription:
    program: str
    arch: str
    ptx_file: str
    buffers: tuple[Buffer, ...]
    roles: dict[str, str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    offsets: dict[str, int]
    workspace_bytes: int
    kernels: tuple[KernelLaunch, ...]
    calls: tuple[tuple[str, tuple[str, ...]], ...]
    extra: dict = field(default_factory=dict)

    def kernel(self, name: str) -> KernelLaunch:
        return next(k for k in self.kernels if k.name == name)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA, "program": self.program, "arch": self.arch, "ptx": self.ptx_file,
            "buffers": [{"name": b.name, "dtype": str(b.dtype), "shape": list(b.shape), "bytes": b.nbytes,
                         "role": self.roles[b.name], "storage": storage_name(b.dtype)} for b in self.buffers],
            "inputs": list(self.inputs), "outputs": list(self.outputs),
            "workspace": {"bytes": self.workspace_bytes, "alignment": WORKSPACE_ALIGNMENT,
                          "offsets": dict(self.offsets)},
            "kernels": [_kernel_dict(k) for k in self.kernels],
            "calls": [{"kernel": kernel, "args": list(args)} for kernel, args in self.calls],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _kernel_dict(kernel: KernelLaunch) -> dict:
    info = kernel.ptxas
    return {"name": kernel.name, "entry": kernel.entry, "grid": [kernel.grid, 1, 1], "block": [kernel.block, 1, 1],
            "shared_bytes": kernel.shared_bytes, "dynamic_shared_bytes": 0,
            "params": [{"name": p.name, "dtype": str(p.dtype), "shape": list(p.shape), "bytes": p.nbytes}
                       for p in kernel.params],
            "ptxas": None if info is None else {"arch": info.arch, "registers": info.registers,
                                                "shared_bytes": info.shared_bytes, "spill_stores": info.spill_stores,
                                                "spill_loads": info.spill_loads}}


def describe(program: LoopProgram, simt: dict[str, SimtKernel], arch: str, ptx_file: str = "kernels.ptx",
             ptxas: dict[str, PtxasInfo] | None = None) -> LaunchDescription:
    symbols = symbols_for(program)
    roles = {}
    for name in program.buffers:
        roles[name] = "input" if name in program.inputs else "output" if name in program.outputs else "intermediate"
    offsets, position = {}, 0
    for name in program.intermediates:
        offsets[name] = position
        position += -(-program.buffers[name].nbytes // WORKSPACE_ALIGNMENT) * WORKSPACE_ALIGNMENT
    kernels = []
    for name, kernel in program.kernels.items():
        entry = symbols.kernels[name]
        info = simt[name]
        kernels.append(KernelLaunch(name, entry, info.grid, info.block, info.shared_bytes, kernel.params,
                                    (ptxas or {}).get(entry)))
    return LaunchDescription(program.name, arch, ptx_file, tuple(program.buffers.values()), roles,
                             tuple(program.inputs), tuple(program.outputs), offsets, position, tuple(kernels),
                             tuple((call.kernel, call.args) for call in program.calls))


def from_dict(data: dict) -> LaunchDescription:
    """Read a description back (the launcher and benchmarks/gpu_validate.py use the JSON form)."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} description (schema: {data.get('schema')!r})")
    buffers = {b["name"]: Buffer(b["name"], DType(b["dtype"]), tuple(b["shape"])) for b in data["buffers"]}
    kernels = tuple(KernelLaunch(k["name"], k["entry"], k["grid"][0], k["block"][0], k["shared_bytes"],
                                 tuple(Buffer(p["name"], DType(p["dtype"]), tuple(p["shape"])) for p in k["params"]))
                    for k in data["kernels"])
    return LaunchDescription(data["program"], data["arch"], data["ptx"], tuple(buffers.values()),
                             {b["name"]: b["role"] for b in data["buffers"]}, tuple(data["inputs"]),
                             tuple(data["outputs"]), dict(data["workspace"]["offsets"]), data["workspace"]["bytes"],
                             kernels, tuple((c["kernel"], tuple(c["args"])) for c in data["calls"]))
