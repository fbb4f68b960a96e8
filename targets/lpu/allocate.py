"""MEM allocation: which slice and address holds every vector of every tensor, on which chip.

Each chip has 88 MEM slices of `mem_words_per_slice` words. A tensor (or the part of it one chip holds)
is striped over up to 88 slices, so consecutive vectors sit in different slices and can be read in the
same cycle; a slice holds its share at consecutive addresses from a base. Slices are taken round-robin
in the order nearest the VXM first, alternating hemispheres, so small programs stay near the middle of
the chip and successive tensors start on different slices. Nothing is freed: every value keeps its own
addresses for the whole program (simple, and what makes a schedule's memory traffic checkable; the
cost is SRAM, which the partitioner counts).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from targets.base import TargetError
from targets.lpu.machine import LpuMachine
from targets.lpu.program import Extent


class ChipMemory:
    def __init__(self, machine: LpuMachine, chip: int) -> None:
        self.machine = machine
        self.chip = chip
        self.slices = machine.layout.mem_slices
        self.used = {name: 0 for name in self.slices}
        self.cursor = 0

    @property
    def words_used(self) -> int:
        return sum(self.used.values())

    @property
    def words_free(self) -> int:
        return len(self.slices) * self.machine.mem_words_per_slice - self.words_used

    def allocate(self, first: int, count: int, width: int, what: str, replica: bool = False) -> list[Extent]:
        """Extents holding vectors [first, first + count) of `width` words each: one striped extent when
        enough slices have room, else the range split in halves (fragmented slices)."""
        extent = self._striped(first, count, width, replica)
        if extent is not None:
            return [extent]
        if count == 1:
            need = width * self.machine.word_bytes
            free = self.words_free * self.machine.word_bytes
            raise TargetError(f"lpu target: chip {self.chip} is out of SRAM placing {what} "
                              f"({need / 2**20:.3f} MiB more needed, {free / 2**20:.3f} MiB free of "
                              f"{self.machine.sram_bytes / 2**20:.3f} MiB)")
        half = count // 2
        return (self.allocate(first, half, width, what, replica)
                + self.allocate(first + half, count - half, width, what, replica))

    def _striped(self, first: int, count: int, width: int, replica: bool) -> Extent | None:
        capacity = self.machine.mem_words_per_slice
        for k in sorted({min(count, len(self.slices)), min(count, len(self.slices)) // 2, 8, 1}, reverse=True):
            if k < 1 or k > count:
                continue
            per_slice = math.ceil(count / k) * width
            chosen = []
            for step in range(len(self.slices)):
                name = self.slices[(self.cursor + step) % len(self.slices)]
                if self.used[name] + per_slice <= capacity:
                    chosen.append(name)
                    if len(chosen) == k:
                        break
            if len(chosen) < k:
                continue
            extent = Extent(self.chip, first, count, tuple((name, self.used[name]) for name in chosen), replica)
            for index, name in enumerate(chosen):
                self.used[name] += extent.words_in(index, width)
            self.cursor = (self.slices.index(chosen[-1]) + 1) % len(self.slices)
            return extent
        return None

    def scratch_slice(self, width: int, tests: Sequence[Callable[[str], bool]]) -> str | None:
        """The slice for one parked vector: the first, from the cursor on, with room that passes the first
        test any slice passes (tests in order of preference), or None."""
        capacity = self.machine.mem_words_per_slice
        roomy = [self.slices[(self.cursor + step) % len(self.slices)] for step in range(len(self.slices))]
        roomy = [name for name in roomy if self.used[name] + width <= capacity]
        if not roomy:
            raise TargetError(f"lpu target: chip {self.chip} is out of SRAM for a {width}-word scratch vector")
        for test in tests:
            for name in roomy:
                if test(name):
                    return name
        return None

    def scratch(self, width: int, slice_name: str) -> int:
        """Reserve one vector's words in `slice_name` (a value parked in MEM between two jobs)."""
        address = self.used[slice_name]
        self.used[slice_name] += width
        self.cursor = (self.slices.index(slice_name) + 1) % len(self.slices)
        return address
