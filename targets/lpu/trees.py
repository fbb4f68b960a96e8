"""Building instruction trees that compute one 320-lane vector of a value.

`vector(node, row, chunk)` gives the tree computing a value's vector in the standard layout: a MEM
Read when the value is in MEM, else the VXM instruction of the op over its operands' vectors. Where an
operand's elements are not lane-aligned with the result (broadcasting, views, transposed or keepdims
storage), `elements` traces each lane back to the vector and lane it comes from (`views.trace`) and
gathers: one SXM PERMUTE per source vector (skipped when the lanes already line up) and VXM MERGEs to
join them. Lanes past the end of a row are "don't care" unless the consumer asks for zeros (sums) or
for copies of a valid lane (max/min), which the permutes then supply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ir import ops
from ir.dtypes import DType
from targets.base import TargetError
from targets.lpu.jobs import VOp
from targets.lpu.machine import LpuMachine
from targets.lpu.plan import Plan
from targets.lpu.vectors import VectorLayout
from targets.lpu.views import Index, broadcast_index, trace, unravel, view_operand_index

if TYPE_CHECKING:  # counting builds trees against its own homes, and need not load the allocator
    from targets.lpu.homes import Homes


class MapTable:
    """Lane maps by content, numbered in order of first use (m0, m1, ...)."""

    def __init__(self) -> None:
        self.maps: list[np.ndarray] = []
        self._index: dict[bytes, int] = {}

    def add(self, values: np.ndarray) -> str:
        values = np.asarray(values, dtype=np.int64)
        key = values.tobytes()
        if key not in self._index:
            self._index[key] = len(self.maps)
            self.maps.append(values)
        return f"m{self._index[key]}"


@dataclass
class MatmulContext:
    """While building an epilogue tree: the MVM emitting the matmul's vector (row, chunk)."""

    anchor: int
    row: int
    chunk: int
    mvm: VOp


def standard_index(shape: tuple[int, ...], lanes: int, row: int, chunk: int) -> tuple[Index, int]:
    """Multi-indices of the elements in vector (row, chunk) of a value in the standard layout."""
    cols = shape[-1] if shape else 1
    length = min(lanes, cols - chunk * lanes)
    flat = row * cols + chunk * lanes + np.arange(length, dtype=np.int64)
    return unravel(flat, shape), length


def is_plain(layout: VectorLayout) -> bool:
    return not layout.transposed and layout.stored_shape is None and not layout.splat


class TreeBuilder:
    def __init__(self, plan: Plan, machine: LpuMachine, homes: Homes, maps: MapTable) -> None:
        self.plan = plan
        self.graph = plan.graph
        self.machine = machine
        self.lanes = machine.lanes
        self.homes = homes
        self.maps = maps
        self._toggle = 0
        self._chains = 0

    def new_chain(self, kind: str, chip: int) -> tuple[str, int, int]:
        """A fresh chain: jobs that must run on one MXM plane ('MXM') or SXM transposer ('SXM')."""
        self._chains += 1
        return (kind, chip, self._chains)

    # -- leaves and sinks ------------------------------------------------------------------------

    def read(self, name: str, vector: int, chip: int, comment: str = "") -> VOp:
        layout = self.homes.decls[name].layout
        slice_name, address = self.homes.locate(name, vector, chip)
        return VOp("READ", chip, layout.dtype, unit=slice_name, fields={"addr": address},
                   reads=(chip, slice_name, address), busy=layout.width,
                   comment=comment or f"{name} v{vector}")

    def write(self, child: VOp, name: str, vector: int, chip: int) -> VOp:
        layout = self.homes.decls[name].layout
        slice_name, address = self.homes.home(name, vector, chip)
        row, chunk = divmod(vector, layout.chunks)
        valid = layout.valid_lanes(chunk)
        return VOp("WRITE", chip, layout.dtype, [child], unit=slice_name,
                   fields={"addr": address, "valid": valid}, writes=(chip, slice_name, address),
                   busy=layout.width, comment=f"{name} v{vector}")

    # -- SXM and VXM instructions ----------------------------------------------------------------

    def side(self, child: VOp) -> str:
        if child.unit is not None and child.unit.startswith("MEM."):
            return child.unit[4]
        if child.unit is not None and child.unit.startswith("C2C."):
            return self.machine.layout.link_side(int(child.unit[4:]))
        if child.pool is not None and child.pool.startswith("SXM."):
            return child.pool[4]
        self._toggle += 1
        return "W" if self._toggle % 2 else "E"

    def permute(self, child: VOp, lane_map: np.ndarray, chip: int, side: str | None = None) -> VOp:
        return VOp("PERMUTE", chip, child.dtype, [child], pool=f"SXM.{side or self.side(child)}",
                   fields={"map": self.maps.add(lane_map)})

    def merge(self, a: VOp, b: VOp, mask: np.ndarray, chip: int) -> VOp:
        return VOp("MERGE", chip, a.dtype, [a, b], pool="VXM", fields={"mask": self.maps.add(mask)})

    def vxm(self, op: str, dtype: DType, inputs: list[VOp], chip: int) -> VOp:
        return VOp(op.upper(), chip, dtype, inputs, pool="VXM")

    # -- values ----------------------------------------------------------------------------------

    def vector(self, node: int, row: int, chunk: int, chip: int, ctx: MatmulContext | None = None) -> VOp:
        """The tree giving vector (row, chunk) of `node` in the standard layout."""
        name = self.plan.names.get(node)
        if name is None:
            return self.produce(node, row, chunk, chip, ctx)
        layout = self.homes.decls[name].layout
        if is_plain(layout) or layout.splat:
            return self.read(name, layout.index(row, chunk), chip)
        shape = self.graph.node(node).type.shape
        index, length = standard_index(shape, self.lanes, row, chunk)
        return self.elements(node, index, length, chip, ctx)

    def produce(self, node: int, row: int, chunk: int, chip: int, ctx: MatmulContext | None = None) -> VOp:
        """The tree computing vector (row, chunk) of `node` from its operands (never from its own home)."""
        payload = self.graph.node(node)
        shape = payload.type.shape
        index, length = standard_index(shape, self.lanes, row, chunk)
        if ops.in_group(payload.op, ops.VIEW) or payload.op == "concat":
            return self.elements(node, index, length, chip, ctx, through=True)
        if payload.op == "matmul":
            if ctx is None or ctx.anchor != node or (ctx.row, ctx.chunk) != (row, chunk):
                raise TargetError(f"lpu target: internal error: matmul %{node} vector ({row}, {chunk}) is needed "
                                  "outside its epilogue")
            return ctx.mvm
        if not ops.in_group(payload.op, ops.ELEMENTWISE):
            raise TargetError(f"lpu target: internal error: %{node} ({payload.op}) cannot be computed inline")
        children = []
        for operand in self.graph.operands(node):
            operand_shape = self.graph.node(operand).type.shape
            if (operand_shape == shape and self.plan.is_base(operand)
                    and is_plain(self.plan.layout_of(operand))):
                children.append(self.vector(operand, row, chunk, chip, ctx))
            else:
                sub = broadcast_index(index, shape, operand_shape)
                children.append(self.elements(operand, sub, length, chip, ctx))
        result = self.vxm(payload.op, payload.type.dtype, children, chip)
        result.comment = f"{self.plan.printed.get(node, '')} v{row * self.plan.layout_of(node).chunks + chunk}"
        return result

    def _source(self, base: int, row: int, chunk: int, chip: int, ctx: MatmulContext | None) -> VOp:
        name = self.plan.names.get(base)
        if name is not None:
            return self.read(name, self.homes.decls[name].layout.index(row, chunk), chip)
        return self.produce(base, row, chunk, chip, ctx)

    def elements(self, node: int, index: Index, length: int, chip: int, ctx: MatmulContext | None = None,
                 fill: str = "any", through: bool = False) -> VOp:
        """A vector whose lane l < length holds element index[l] of `node`; lanes >= length hold anything
        (fill 'any'), zero ('zero') or a copy of a valid lane ('dup')."""
        if through:
            parts = []
            for operand, sub, lanes in view_operand_index(self.graph, node, index, length):
                for base, flat, served in trace(self.graph, operand, sub, len(lanes), self.plan.is_base):
                    parts.append((base, flat, lanes[served]))
        else:
            parts = trace(self.graph, node, index, length, self.plan.is_base)
        groups: dict[tuple[int, int, int], list[np.ndarray]] = {}
        for base, flat, lanes in parts:
            layout = self.plan.layout_of(base)
            rows, cols = layout.locate(flat)
            keys = rows * layout.chunks + cols // self.lanes
            first, last = int(keys.min()), int(keys.max())
            # the distinct keys in order (np.unique would import numpy.ma on its first call, some 20 ms)
            for key in ((first,) if first == last else sorted(set(keys.tolist()))):
                selected = lanes if first == last else lanes[keys == key]
                source_lanes = cols if first == last else cols[keys == key]
                row, chunk = divmod(int(key), layout.chunks)
                entry = groups.get((base, row, chunk))
                if entry is None:
                    groups[(base, row, chunk)] = [selected, source_lanes % self.lanes]
                else:
                    entry[0] = np.concatenate([entry[0], selected])
                    entry[1] = np.concatenate([entry[1], source_lanes % self.lanes])
        ordered = sorted(groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][2]))
        pieces: list[tuple[VOp, np.ndarray]] = []
        for position, ((base, row, chunk), (out_lanes, src_lanes)) in enumerate(ordered):
            layout = self.plan.layout_of(base)
            source = self._source(base, row, chunk, chip, ctx)
            lane_map = np.full(self.lanes, -1, dtype=np.int64)
            lane_map[out_lanes] = 0 if layout.splat else src_lanes
            covered = out_lanes
            identity = layout.splat or bool(np.all(src_lanes == out_lanes))
            needs_permute = not identity
            if fill == "dup" and position == 0 and length < self.lanes:
                lane_map[length:] = lane_map[out_lanes[0]]
                covered = np.concatenate([out_lanes, np.arange(length, self.lanes)])
                needs_permute = needs_permute or not layout.splat
            if fill == "zero" and position == len(ordered) - 1:
                zero_padded = (base in self.plan.names and not layout.splat and identity
                               and layout.valid_lanes(chunk) == length and len(ordered) == 1)
                needs_permute = not zero_padded
            vector = self.permute(source, lane_map, chip) if needs_permute else source
            pieces.append((vector, covered))
        return self._join(pieces, chip)

    def _join(self, pieces: list[tuple[VOp, np.ndarray]], chip: int) -> VOp:
        """MERGE the pieces in a chain (the last piece supplies every lane no other piece covers); a
        chain staggers the pieces in time, so they do not all need SXM units in the same cycle."""
        result = pieces[-1][0]
        for vector, lanes in reversed(pieces[:-1]):
            mask = np.zeros(self.lanes, dtype=np.int64)
            mask[lanes] = 1
            result = self.merge(vector, result, mask, chip)
        return result
