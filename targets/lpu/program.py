"""A compiled LPU program: the machine it was scheduled for, where every tensor lives, the lane maps,
and the instructions with their cycles. `listing` prints it as a `.lpu` file and parses it back; the
simulator executes it; nothing else is needed to run it (the listing is the program).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from targets.lpu.isa import Instruction
from targets.lpu.machine import LpuMachine
from targets.lpu.vectors import VectorLayout


@dataclass(frozen=True)
class Extent:
    """Vectors [first, first + count) of a tensor on one chip, striped over `slices`: vector v lives in
    slices[i % k] at address base + (i // k) * width, where i = v - first and k = len(slices)."""

    chip: int
    first: int
    count: int
    slices: tuple[tuple[str, int], ...]  # (MEM slice, base address)
    replica: bool = False  # a copy made at run time (by C2C transfers), not loaded by the host

    def locate(self, vector: int, width: int) -> tuple[str, int]:
        i = vector - self.first
        if not 0 <= i < self.count:
            raise IndexError(f"vector {vector} is not in extent [{self.first}, {self.first + self.count})")
        slice_name, base = self.slices[i % len(self.slices)]
        return slice_name, base + (i // len(self.slices)) * width

    def words_in(self, slice_index: int, width: int) -> int:
        """MEM words this extent takes in its `slice_index`-th slice."""
        k = len(self.slices)
        n = self.count // k + (1 if slice_index < self.count % k else 0)
        return n * width


@dataclass
class TensorDecl:
    name: str  # '%12', or the parameter's name
    layout: VectorLayout
    role: str  # 'input', 'weight', 'data', 'value' (computed on chip)
    extents: list[Extent] = field(default_factory=list)
    data: np.ndarray | None = None  # role 'data': the compile-time value (host-loaded)

    def home(self, vector: int, chip: int | None = None) -> tuple[int, str, int]:
        """(chip, slice, address) of a vector, on `chip` if it has a copy there."""
        for extent in self.extents:
            if (chip is None or extent.chip == chip) and extent.first <= vector < extent.first + extent.count:
                slice_name, address = extent.locate(vector, self.layout.width)
                return extent.chip, slice_name, address
        where = "" if chip is None else f" on chip {chip}"
        raise KeyError(f"tensor {self.name} has no copy of vector {vector}{where}")

    def has(self, vector: int, chip: int) -> bool:
        return any(e.chip == chip and e.first <= vector < e.first + e.count for e in self.extents)


@dataclass
class LpuProgram:
    name: str
    machine: LpuMachine
    chips: int
    tensors: dict[str, TensorDecl]
    inputs: list[str]  # parameter names in order
    outputs: list[str]  # tensor names of the results in order
    maps: list[np.ndarray]  # lane maps (PERMUTE sources, MERGE masks), referenced as m0, m1, ...
    instructions: list[Instruction]
    notes: list[str] = field(default_factory=list)  # partition and allocation summary for the header

    @property
    def cycles(self) -> int:
        """Cycles until the last instruction's effect is complete."""
        from targets.lpu.isa import latency
        if not self.instructions:
            return 0
        return max(i.cycle + latency(self.machine, i.op) for i in self.instructions) + 1
