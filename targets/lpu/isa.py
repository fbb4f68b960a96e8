"""The LPU instruction set as the compiler, the listing and the simulator see it.

One instruction = one vector (320 lanes) handled by one unit in one cycle. Operands are read from
stream groups at the unit's position in the issue cycle; a result is written onto a stream group at
the unit's position `latency` cycles later. The instructions, after the TSP's published ISA:

  MEM  READ  addr -> stream          WRITE stream -> addr (lanes >= valid are written as zero)
  VXM  <op>  streams -> stream       every elementwise graph op (ADD, EXP, RSQRT, SELECT, CAST, ...),
       MERGE a, b mask -> stream     lane i from a where the mask is set, else from b
  SXM  PERMUTE stream map -> stream  out[i] = in[map[i]] (map[i] < 0: zero); shifts, lane broadcasts
       TLD stream row                load a row into the transposer's load buffer
       TSW                           install the load buffer (the load buffer is cleared)
       TST col -> stream             emit column `col` of the installed block (a transposed row)
  MXM  LW stream row prec            load weight vector `row` (dot-product column) into the load buffer
       IW                            install the loaded weights (the load buffer is cleared)
       MVM stream prec acc mode [->] dot products of the activation with the installed weights, into
                                     accumulator `acc` (mode set or add); with a destination, the
                                     accumulator is also emitted onto the stream
  C2C  SEND stream peer              serialise a vector onto a chip-to-chip link
       RECV chan -> stream           put a vector arriving on a link onto a stream

Streams are written `E4-7` (eastward streams 4..7) or `W0`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ir import ops
from ir.dtypes import DType
from targets.lpu.machine import LpuMachine, unit_kind

MEM_OPS = ("READ", "WRITE")
SXM_OPS = ("PERMUTE", "TLD", "TSW", "TST")
MXM_OPS = ("LW", "IW", "MVM")
C2C_OPS = ("SEND", "RECV")
VXM_EXTRA = ("MERGE",)
PRECISIONS = ("int8", "fp16", "bf16", "fp32")


def vxm_mnemonic(graph_op: str) -> str:
    return graph_op.upper()


def vxm_graph_op(mnemonic: str) -> str | None:
    """The graph op a VXM mnemonic computes (None for MERGE or an unknown name)."""
    name = mnemonic.lower()
    if name in ops.OPS and ops.in_group(name, ops.ELEMENTWISE):
        return name
    return None


@functools.cache
def unit_ops(kind: str) -> tuple[str, ...]:
    """The instructions a unit of `kind` executes."""
    if kind == "MEM":
        return MEM_OPS
    if kind == "SXM":
        return SXM_OPS
    if kind == "MXM":
        return MXM_OPS
    if kind == "C2C":
        return C2C_OPS
    if kind == "VXM":
        return VXM_EXTRA + tuple(vxm_mnemonic(n) for n in ops.ops_in_group(ops.ELEMENTWISE))
    return ()


@dataclass(frozen=True, order=True)
class Stream:
    """A group of `count` adjacent streams flowing one way ('E' or 'W'), starting at `first`."""

    direction: str
    first: int
    count: int

    def __str__(self) -> str:
        if self.count == 1:
            return f"{self.direction}{self.first}"
        return f"{self.direction}{self.first}-{self.first + self.count - 1}"

    @property
    def ids(self) -> range:
        return range(self.first, self.first + self.count)


@dataclass(frozen=True)
class Instruction:
    cycle: int
    chip: int
    unit: str
    op: str
    dtype: DType | None = None  # element type of the vector produced, moved or stored
    srcs: tuple[Stream, ...] = ()
    dst: Stream | None = None
    fields: tuple[tuple[str, int | str], ...] = ()  # addr, valid, map, row, col, prec, acc, mode, peer, chan
    comment: str = field(default="", compare=False)

    def get(self, name: str, default: int | str | None = None) -> int | str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return default

    @property
    def kind(self) -> str:
        return unit_kind(self.unit)

    def moved(self, cycle: int) -> Instruction:
        return Instruction(cycle, self.chip, self.unit, self.op, self.dtype, self.srcs, self.dst, self.fields,
                           self.comment)


def is_transcendental(mnemonic: str) -> bool:
    op = vxm_graph_op(mnemonic)
    return op is not None and ops.in_group(op, ops.TRANSCENDENTAL)


def latency(machine: LpuMachine, instruction_op: str) -> int:
    """Cycles from issue until the result is on the destination stream (or in MEM for WRITE)."""
    if instruction_op == "READ":
        return machine.mem_read_latency
    if instruction_op == "WRITE":
        return machine.mem_write_latency
    if instruction_op in ("PERMUTE", "TST"):
        return machine.sxm_latency
    if instruction_op == "MVM":
        return machine.mxm_latency
    if instruction_op in ("TLD", "LW", "SEND"):
        return 0
    if instruction_op in ("TSW", "RECV"):
        return 1
    if instruction_op == "IW":
        return machine.mxm_install_cycles
    if is_transcendental(instruction_op):
        return machine.vxm_transcendental_latency
    return machine.vxm_latency
