"""The per-PE instruction set: what one processing element runs, and how the listing prints it.

A PE program is a straight-line list of instructions over named local buffers (vectors in the PE's
SRAM). Data enter a PE three ways: loaded by the host before the step (`LOAD`: weights at configuration
time, inputs and values from an earlier wafer through the memcpy infrastructure on its reserved colors),
or received from the fabric (`RECV` on a color). They leave by `SEND` (wavelets on a color) or `STORE`
(to the host). Between them the PE computes with vector instructions:

    LOAD   dst <- name[indices] (weight | stream | input | stage)
    ALLOC  dst[n]                        space that RECVs fill
    RECV   ch -> dst[slots]              count wavelets' worth of elements, keeps the positions `keep`
    SEND   ch <- src[positions]
    GATHER dst <- src[positions]         local access pattern (strides, broadcasts, reduction rows)
    VOP    op dst <- srcs                elementwise, one result per element (SIMD lanes per cycle)
    VRED   op dst <- src[n, r]           reduce each row of r elements
    ASSEMBLE dst <- pieces               concatenation: copies pieces of sources into slots of dst
    CONST / IOTA                         generated values
    FMAC   acc += a @ b                  the matmul tile product (fires only on non-zero weights)
    VADD   acc += part                   partial sums arriving from the PE above
    ROUND  dst <- acc                    accumulator to the value's dtype
    STORE  name[indices] <- src          (output | stage)
    FREE   buffers                       end of the buffers' lifetimes

Channels (`ch`) are logical until routing gives each a color; the listing prints the color.
Instructions carry the cycles the machine model charges them, so a listing shows where a PE's time goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ir.dtypes import DType
from targets.wse.indexing import describe


@dataclass(eq=False)
class Buffer:
    name: str
    length: int
    dtype: DType
    stored_bytes: int | None = None  # when the PE keeps fewer bytes than length x itemsize (sparse weights)

    @property
    def nbytes(self) -> int:
        if self.stored_bytes is not None:
            return self.stored_bytes
        return self.length * self.dtype.itemsize


@dataclass(eq=False)
class Instr:
    cycles: float = field(default=0.0, kw_only=True)

    opcode = "?"

    def defines(self) -> tuple[Buffer, ...]:
        return ()

    def reads(self) -> tuple[Buffer, ...]:
        return ()

    def text(self, colors: dict[int, int] | None = None) -> str:
        return self.opcode


def _ch(channel: int, colors: dict[int, int] | None) -> str:
    if colors and channel in colors:
        return f"c{colors[channel]}"
    return f"ch{channel}"


@dataclass(eq=False)
class Load(Instr):
    dst: Buffer
    name: str  # host-side name: a parameter, or a value passed between wafers (%ID)
    indices: np.ndarray
    kind: str  # weight | stream | input | stage
    opcode = "LOAD"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        sparse = f", stored {self.dst.nbytes} B sparse" if self.dst.stored_bytes is not None else ""
        return (f"LOAD     {self.dst.name}[{self.dst.length}] <- {self.name}{describe(self.indices)}  "
                f"({self.kind}{sparse})")


@dataclass(eq=False)
class Alloc(Instr):
    dst: Buffer
    opcode = "ALLOC"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        return f"ALLOC    {self.dst.name}[{self.dst.length}] {self.dst.dtype}"


@dataclass(eq=False)
class Recv(Instr):
    channel: int
    dst: Buffer
    count: int  # elements on the channel
    keep: np.ndarray  # positions in the stream this PE keeps
    slots: np.ndarray  # where they go in dst
    source: str = ""  # for the listing: who sends
    opcode = "RECV"

    def reads(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        kept = "all" if self.keep.size == self.count else f"keep {self.keep.size}"
        return f"RECV     {_ch(self.channel, colors)} -> {self.dst.name}{describe(self.slots)}  " \
               f"({self.count} elements, {kept}; from {self.source})"


@dataclass(eq=False)
class Send(Instr):
    channel: int
    src: Buffer
    positions: np.ndarray
    dest: str = ""  # for the listing
    opcode = "SEND"

    def reads(self) -> tuple[Buffer, ...]:
        return (self.src,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        return f"SEND     {_ch(self.channel, colors)} <- {self.src.name}{describe(self.positions)}  " \
               f"({self.positions.size} elements to {self.dest})"


@dataclass(eq=False)
class Gather(Instr):
    dst: Buffer
    src: Buffer
    positions: np.ndarray  # 1-D, or 2-D [n, r] for the rows of a reduction
    what: str = ""
    opcode = "GATHER"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def reads(self) -> tuple[Buffer, ...]:
        return (self.src,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        shape = "x".join(str(d) for d in self.positions.shape)
        note = f"  ; {self.what}" if self.what else ""
        return f"GATHER   {self.dst.name}[{shape}] <- {self.src.name}{describe(self.positions)}{note}"


@dataclass(eq=False)
class Vop(Instr):
    op: str
    dst: Buffer
    srcs: tuple[Buffer, ...]
    attrs: tuple[tuple[str, Any], ...] = ()
    opcode = "VOP"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def reads(self) -> tuple[Buffer, ...]:
        return self.srcs

    def text(self, colors: dict[int, int] | None = None) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.attrs)
        return f"VOP      {self.op:<9} {self.dst.name}[{self.dst.length}] <- " \
               f"{', '.join(s.name for s in self.srcs)}{extra}"


@dataclass(eq=False)
class Vred(Instr):
    op: str
    dst: Buffer
    src: Buffer
    rows: int
    width: int
    opcode = "VRED"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def reads(self) -> tuple[Buffer, ...]:
        return (self.src,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        return f"VRED     {self.op:<9} {self.dst.name}[{self.rows}] <- {self.src.name}[{self.rows}x{self.width}]"


@dataclass(eq=False)
class Assemble(Instr):
    dst: Buffer
    pieces: tuple[tuple[Buffer, np.ndarray, np.ndarray], ...]  # (src, src positions, dst slots)
    opcode = "ASSEMBLE"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def reads(self) -> tuple[Buffer, ...]:
        return tuple(p[0] for p in self.pieces)

    def text(self, colors: dict[int, int] | None = None) -> str:
        parts = ", ".join(f"{src.name}{describe(pos, 2)}" for src, pos, _ in self.pieces)
        return f"ASSEMBLE {self.dst.name}[{self.dst.length}] <- {parts}"


@dataclass(eq=False)
class Const(Instr):
    dst: Buffer
    value: float | int | bool
    opcode = "CONST"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        return f"CONST    {self.dst.name}[{self.dst.length}] = {self.value!r}"


@dataclass(eq=False)
class Iota(Instr):
    dst: Buffer
    values: np.ndarray
    opcode = "IOTA"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        return f"IOTA     {self.dst.name}[{self.dst.length}] = coordinates {describe(self.values, 3)}"


@dataclass(eq=False)
class Fmac(Instr):
    acc: Buffer  # [batch, M, n]
    a: Buffer  # [batch_a, M, k]
    b: Buffer  # [batch_b, k, n]
    shape: tuple[int, int, int, int]  # batch, M, k, n
    a_batch: np.ndarray  # output batch -> batch of a
    b_batch: np.ndarray  # output batch -> batch of b
    macs: int  # multiply-adds it fires (non-zero weights only)
    opcode = "FMAC"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.acc,)

    def reads(self) -> tuple[Buffer, ...]:
        return (self.a, self.b)

    def text(self, colors: dict[int, int] | None = None) -> str:
        batch, m, k, n = self.shape
        lead = f"{batch}x" if batch > 1 else ""
        return (f"FMAC     {self.acc.name}[{lead}{m}x{n}] += {self.a.name}[{lead}{m}x{k}] @ "
                f"{self.b.name}[{k}x{n}]  ({self.macs} MACs)")


@dataclass(eq=False)
class Vadd(Instr):
    acc: Buffer
    part: Buffer
    opcode = "VADD"

    def reads(self) -> tuple[Buffer, ...]:
        return (self.acc, self.part)

    def text(self, colors: dict[int, int] | None = None) -> str:
        return f"VADD     {self.acc.name} += {self.part.name}"


@dataclass(eq=False)
class Round(Instr):
    dst: Buffer
    src: Buffer
    opcode = "ROUND"

    def defines(self) -> tuple[Buffer, ...]:
        return (self.dst,)

    def reads(self) -> tuple[Buffer, ...]:
        return (self.src,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        return f"ROUND    {self.dst.name}[{self.dst.length}] {self.dst.dtype} <- {self.src.name}"


@dataclass(eq=False)
class Store(Instr):
    src: Buffer
    name: str
    indices: np.ndarray
    kind: str  # output | stage
    opcode = "STORE"

    def reads(self) -> tuple[Buffer, ...]:
        return (self.src,)

    def text(self, colors: dict[int, int] | None = None) -> str:
        return f"STORE    {self.name}{describe(self.indices)} <- {self.src.name}  ({self.kind})"


@dataclass(eq=False)
class Free(Instr):
    buffers: tuple[Buffer, ...]
    opcode = "FREE"

    def text(self, colors: dict[int, int] | None = None) -> str:
        return "FREE     " + ", ".join(b.name for b in self.buffers)


@dataclass(eq=False)
class PeProgram:
    """What one PE runs; `pe` is (row, column) inside its region until placement makes it absolute."""

    region: int
    pe: tuple[int, int]
    role: str
    instrs: list[Instr] = field(default_factory=list)

    @property
    def cycles(self) -> float:
        return sum(i.cycles for i in self.instrs)

    def resident(self) -> list[Buffer]:
        """Buffers loaded at configuration time (weights), alive for the whole program."""
        return [i.dst for i in self.instrs if isinstance(i, Load) and i.kind == "weight"]

    def peak_bytes(self) -> int:
        """The most bytes of data the program holds at once (resident weights included)."""
        live = sum(b.nbytes for b in self.resident())
        peak = live
        for instr in self.instrs:
            if isinstance(instr, Load) and instr.kind == "weight":
                continue
            for buffer in instr.defines():
                live += buffer.nbytes
            if isinstance(instr, Free):
                live -= sum(b.nbytes for b in instr.buffers)
            peak = max(peak, live)
        return peak

    def signature(self) -> tuple:
        """Opcodes and shapes without data: PEs with the same signature run 'the same' program."""
        return tuple(i.opcode for i in self.instrs)
