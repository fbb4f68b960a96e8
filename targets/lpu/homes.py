"""The program's tensors and where their vectors live; copies between chips over C2C links.

Lowering asks `locate(tensor, vector, chip)` for the MEM word to read. When the vector lives only on
other chips (a pipeline stage reading the previous stage's result, a tensor-parallel matmul reading
its activations), the whole tensor's missing vectors are copied to the chip once (a batch-split matmul's
chip first copies only the slices it reads, with `copy`), by transfer jobs
READ -> SEND ~link~ RECV -> WRITE, and the copy is recorded as a replica extent.

Links: with n chips, chip a reaches peer b through `c2c_links_per_peer` of its 16 ports; vector v of a
transfer uses link v mod that number (ports are shared when there are more peers than ports allow).
"""

from __future__ import annotations

import numpy as np

from ir.dtypes import DType
from targets.lpu.allocate import ChipMemory
from targets.lpu.jobs import Job, VOp
from targets.lpu.machine import LpuMachine
from targets.lpu.program import Extent, TensorDecl
from targets.lpu.vectors import VectorLayout


def link_port(machine: LpuMachine, chip: int, peer: int, lane: int) -> int:
    """The port of `chip` that carries lane `lane` of its traffic with `peer`."""
    rank = peer if peer < chip else peer - 1
    return (rank * machine.c2c_links_per_peer + lane) % machine.c2c_links


class Homes:
    def __init__(self, machine: LpuMachine, chips: int, jobs: list[Job]) -> None:
        self.machine = machine
        self.chips = chips
        self.jobs = jobs
        self.memory = [ChipMemory(machine, chip) for chip in range(chips)]
        self.decls: dict[str, TensorDecl] = {}
        self._constants: dict[tuple, str] = {}
        self.transferred_bytes = 0

    def place(self, name: str, layout: VectorLayout, role: str, ranges: list[tuple[int, int, int]],
              data: np.ndarray | None = None) -> TensorDecl:
        """Declare a tensor with vectors [first, first + count) on each (chip, first, count)."""
        decl = TensorDecl(name, layout, role, data=data)
        for chip, first, count in ranges:
            if count > 0:
                decl.extents.extend(self.memory[chip].allocate(first, count, layout.width, name))
        self.decls[name] = decl
        return decl

    def constant(self, value: float | int, dtype: DType, chip: int) -> str:
        """A one-element data tensor holding `value` in every lane (for means, identities)."""
        key = (float(value), dtype, chip)
        if key not in self._constants:
            name = f"%const{len(self._constants)}"
            layout = VectorLayout((), dtype, splat=True)
            self.place(name, layout, "data", [(chip, 0, 1)], data=np.array(value, dtype=dtype.numpy))
            self._constants[key] = name
        return self._constants[key]

    def home(self, name: str, vector: int, chip: int) -> tuple[str, int]:
        """(slice, address) of a vector the stage on `chip` writes (never copied: it must live there)."""
        _, slice_name, address = self.decls[name].home(vector, chip)
        return slice_name, address

    def locate(self, name: str, vector: int, chip: int) -> tuple[str, int]:
        """(slice, address) of a tensor's vector on `chip`, copying the tensor there first if needed."""
        decl = self.decls[name]
        if not decl.has(vector, chip):
            self._replicate(decl, chip)
        _, slice_name, address = decl.home(vector, chip)
        return slice_name, address

    def copy(self, name: str, ranges: list[tuple[int, int]], chip: int) -> None:
        """Copy vectors [first, end) of each range of a tensor to `chip` (those it lacks), ahead of a stage
        that reads only that part of it (a batch-split matmul)."""
        decl = self.decls[name]
        self._copy_vectors(decl, chip, [v for first, end in ranges for v in range(first, end)
                                        if not decl.has(v, chip)])

    def _replicate(self, decl: TensorDecl, chip: int) -> None:
        self._copy_vectors(decl, chip, [v for v in range(decl.layout.vectors) if not decl.has(v, chip)])

    def _copy_vectors(self, decl: TensorDecl, chip: int, missing: list[int]) -> None:
        layout = decl.layout
        runs: list[tuple[int, int]] = []
        for v in missing:
            if runs and runs[-1][0] + runs[-1][1] == v:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((v, 1))
        for first, count in runs:
            extents = self.memory[chip].allocate(first, count, layout.width, f"a copy of {decl.name}", replica=True)
            decl.extents.extend(extents)
            for extent in extents:
                for v in range(extent.first, extent.first + extent.count):
                    self._transfer(decl, v, chip, extent)

    def _transfer(self, decl: TensorDecl, vector: int, chip: int, extent: Extent) -> None:
        layout = decl.layout
        source = min((e for e in decl.extents if e.chip != chip and e.first <= vector < e.first + e.count),
                     key=lambda e: (e.replica, e.chip))
        src_slice, src_address = source.locate(vector, layout.width)
        dst_slice, dst_address = extent.locate(vector, layout.width)
        lane = vector % self.machine.c2c_links_per_peer
        send_port = link_port(self.machine, source.chip, chip, lane)
        recv_port = link_port(self.machine, chip, source.chip, lane)
        nbytes = layout.width * self.machine.lanes
        read = VOp("READ", source.chip, layout.dtype, unit=src_slice, fields={"addr": src_address},
                   reads=(source.chip, src_slice, src_address), busy=layout.width)
        send = VOp("SEND", source.chip, layout.dtype, [read], unit=f"C2C.{send_port}", fields={"peer": chip},
                   busy=self.machine.c2c_cycles(nbytes))
        recv = VOp("RECV", chip, layout.dtype, [send], unit=f"C2C.{recv_port}",
                   fields={"chan": f"c{source.chip}.C2C.{send_port}"})
        write = VOp("WRITE", chip, layout.dtype, [recv], unit=dst_slice,
                    fields={"addr": dst_address, "valid": layout.lanes}, writes=(chip, dst_slice, dst_address),
                    busy=layout.width, comment=f"copy {decl.name} vector {vector} from c{source.chip}")
        self.jobs.append(Job(write, hint=("transfer", decl.name, chip)))
        self.transferred_bytes += nbytes
