"""Jobs: what lowering hands the scheduler.

A job is a tree of instructions-to-be (`VOp`) rooted at a sink (a MEM Write, an MXM weight load or
accumulate, a transposer load, an IW/TSW). Each non-root node sends its result to its parent over a
stream (or, from SEND to RECV, over a C2C link); a node may feed several parents when they all read
its stream where it passes them (two SXM units of one side in the same cycle, say). Because a stream
value passes a position in exactly one cycle, a job's instruction cycles are fixed relative to its
root once its units are chosen: the scheduler places the whole job at once (see `schedule`).

Units are given as a fixed name (MEM slices, C2C ports), a pool (any VXM ALU, any SXM unit on one
side), or a chain: a sequence of jobs that must use the same MXM plane or SXM transposer, because they
fill its weight buffer, install it and use it. The scheduler binds a chain to a unit at its first job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable

from ir.dtypes import DType


@dataclass(eq=False)
class VOp:
    op: str
    chip: int
    dtype: DType | None = None
    inputs: list[VOp] = field(default_factory=list)
    unit: str | None = None  # a fixed unit (MEM slice, C2C port)
    pool: str | None = None  # 'VXM', 'SXM.W', 'SXM.E': any free unit of the pool
    chain: tuple | None = None  # ('MXM' | 'SXM', chip, id): the unit bound to this chain
    fields: dict[str, int | str] = field(default_factory=dict)
    reads: tuple[int, str, int] | None = None  # READ: the MEM word it reads (chip, slice, address)
    writes: tuple[int, str, int] | None = None  # WRITE: the MEM word it writes
    busy: int = 1  # cycles it occupies its unit or port
    lw_bytes: int = 0  # LW: bytes of the MXM plane's weight-load bandwidth it takes
    comment: str = ""

    def walk(self) -> list[VOp]:
        """This node and every node below it, once each, every parent before its children (a node may
        feed several parents when they all read its stream where it passes them)."""
        order: list[VOp] = []
        done: set[int] = set()
        stack: list[tuple[VOp, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in done:
                continue
            done.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.inputs) if id(child) not in done)
        return order[::-1]


@dataclass(eq=False)
class Job:
    root: VOp
    hint: Hashable | None = None  # jobs with the same hint are placed at non-decreasing cycles
    tag: int | None = None  # the stage it belongs to (for reports)

