"""State shared by the emitters: per module (`ModuleContext`), per buffer (`BufferRef`), per vector
loop (`VectorContext`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from llvmlite import ir

from ir.loops import Buffer, Expr


@dataclass
class ModuleContext:
    module: ir.Module
    has_fma: bool
    threads: int  # OpenMP threads for PARALLEL loops; 1 emits them as serial loops
    vectorize_hints: bool = True  # llvm.loop vectorize metadata on innermost serial loops
    _names: itertools.count = field(default_factory=itertools.count)

    def unique(self, base: str) -> str:
        return f"{base}.{next(self._names)}"


@dataclass
class BufferRef:
    """A buffer as a function sees it: its loop-IR description and a pointer to element 0.

    `lanes` is set for a local allocated inside a vectorized loop: each lane owns a copy, stored
    interleaved (element i of lane l at i*lanes + l) so that uniform indices become vector accesses.
    """

    buffer: Buffer
    pointer: ir.Value
    local: bool
    lanes: int | None = None


@dataclass
class VectorContext:
    """The vectorized loop being emitted: lane l has var = base + l*step."""

    var: str
    lanes: int
    step: int
    base: ir.Value  # i64 scalar: the variable's value in lane 0
    varying: dict[str, Expr] = field(default_factory=dict)  # lane-dependent Let names -> definitions
    mask: ir.Value | None = None  # <lanes x i1> inside a lane-dependent `if`; None: all lanes
