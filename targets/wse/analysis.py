"""What each region needs, from shapes only: work, and the bytes it holds and receives (for pricing).

For every region of `targets.wse.regions.partition`: its useful and executed FLOPs, the vector work of its
elementwise and reduction members, its matmul shape, and the bytes of each input by where they live:

* stationary: held in the PEs across steps: weights, state inputs (the KV cache of a decode step), and
  the results of regions that read weights only (a cast of a weight is computed once, at configuration);
  stored sparse (non-zeros plus an index each) when that is smaller (`targets.wse.sparsity`);
* dynamic: produced by other regions every step and sent over the fabric;
* host: program inputs sent in from the host every step.

Regions that only move data for one consumer (`concat(k_cache[l], k)`) are merged into it: the consumer
holds their sources where it uses them (`_movement_regions`).

A source read through folded views counts the bytes the views select (`wq[l]` reads one layer of the
stacked weight), never more than the source. Nothing here allocates or touches the program's tensors:
the counts are products of shapes, so an 80-layer model is analysed in a single pass over its nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from ir import ops
from ir.dtypes import DType
from ir.graph import Graph
from targets.counts import node_flops
from targets.wse.codegen import MatmulShape, matmul_shape
from targets.wse.local_plan import vop_cost
from targets.wse.machine import WseMachine
from targets.wse.regions import MATMUL, Partition, Region
from targets.wse.sparsity import Sparsity

STATIONARY, DYNAMIC, HOST = "stationary", "dynamic", "host"


@dataclass
class Inputs:
    """Bytes of a region's inputs (or of one matmul operand) by where they live."""

    stationary: float = 0.0  # as stored (sparse weights: non-zeros and indices); state included
    dense_stationary: float = 0.0
    state: float = 0.0  # the part of `stationary` that is state inputs (the KV cache), not weights
    dynamic: float = 0.0
    host: float = 0.0
    producers: dict[int, float] = field(default_factory=dict)  # producing region -> dynamic bytes

    @property
    def moving(self) -> float:
        return self.dynamic + self.host

    def add(self, other: Inputs) -> None:
        self.stationary += other.stationary
        self.dense_stationary += other.dense_stationary
        self.state += other.state
        self.dynamic += other.dynamic
        self.host += other.host
        for producer, amount in other.producers.items():
            self.producers[producer] = self.producers.get(producer, 0.0) + amount


@dataclass(frozen=True)
class RegionFacts:
    region: Region
    dtype: DType  # of the arithmetic (the matmul's, else the widest member's)
    flops: float  # useful
    executed: float  # what the PEs fire (sparse weights at their density)
    transcendentals: float
    vector_ops: float  # element operations of the non-matmul members, transcendentals weighted
    matmul: MatmulShape | None
    a: Inputs | None  # the matmul operands
    b: Inputs | None
    other: Inputs  # every other input (epilogue operands; all inputs of a map region)
    out_bytes: float
    density: float  # of the stationary matmul operand's weights (1.0 when dense)
    per_step: bool  # False: reads weights only, computed once at configuration
    merged: bool = False  # moves data only, for one consumer, which holds the result in place
    reductions: int = 0  # reduction members (a row split over PEs combines each one along the row)

    @property
    def rows(self) -> int:
        """Independent rows that stream through the region (a matmul's batch x M; a map's positions)."""
        if self.matmul is not None:
            return max(1, self.matmul.batch * self.matmul.m)
        return max(1, self.region.rows)

    @cached_property
    def inputs(self) -> Inputs:
        total = Inputs()
        for part in (self.a, self.b, self.other):
            if part is not None:
                total.add(part)
        return total


def default_state(graph: Graph) -> set[str]:
    """Inputs that stay on the wafer between steps when the user names none: those called *cache*."""
    names = set()
    for param in graph.params:
        payload = graph.node(param)
        if not payload.attr("weight") and "cache" in payload.attr("name"):
            names.add(payload.attr("name"))
    return names


class Analysis:
    def __init__(self, graph: Graph, parts: Partition, machine: WseMachine, sparsity: Sparsity,
                 state: set[str]) -> None:
        self.graph = graph
        self.parts = parts
        self.machine = machine
        self.sparsity = sparsity
        self.state = state
        self.weight_only: dict[int, bool] = {}
        self.merged = self._movement_regions()
        self.facts: list[RegionFacts] = []
        for region in parts.regions:
            self.weight_only[region.id] = self._reads_weights_only(region)
            self.facts.append(self._facts(region))

    def _movement_regions(self) -> set[int]:
        """Regions that only move data (views, concatenations) for a single consumer region: the consumer
        keeps the result where it is used (`keys = concat(k_cache[l], k)` lives in the attention PEs, the
        new key appended), so they are merged into it and cost nothing of their own."""
        graph, parts = self.graph, self.parts
        outputs = set(graph.outputs)
        consumers: dict[int, set[int]] = {}
        for region in parts.regions:
            for source in region.sources:
                if source in parts.region_of:
                    consumers.setdefault(parts.region_of[source], set()).add(region.id)
        merged = set()
        for region in parts.regions:
            moves_only = all(ops.in_group(graph.node(n).op, ops.SHAPE) or graph.node(n).op in ("constant", "iota")
                             for n in region.members)
            if moves_only and not outputs & set(region.outputs) and len(consumers.get(region.id, ())) == 1:
                merged.add(region.id)
        return merged

    # -- sources -------------------------------------------------------------------------------------

    def _reads_weights_only(self, region: Region) -> bool:
        for source in region.sources:
            payload = self.graph.node(source)
            if payload.op == "param":
                if not payload.attr("weight"):
                    return False
            elif not self.weight_only.get(self.parts.region_of[source], False):
                return False
        return True

    def where(self, source: int) -> str:
        payload = self.graph.node(source)
        if payload.op == "param":
            if payload.attr("weight") or payload.attr("name") in self.state:
                return STATIONARY
            return HOST
        return STATIONARY if self.weight_only[self.parts.region_of[source]] else DYNAMIC

    def bases(self, start: list[int], inside: set[int]) -> dict[int, float]:
        """Sources reached from `start` through `inside` nodes and folded nodes, with the bytes read."""
        found: dict[int, float] = {}
        stack = [(node, float(self.graph.node(node).type.nbytes)) for node in start]
        seen: set[int] = set()  # a value reached again selects the same elements: count it once
        while stack:
            node, limit = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            payload = self.graph.node(node)
            selected = min(limit, float(payload.type.nbytes))
            region = self.parts.region_of.get(node)
            if node in inside or node in self.parts.folded or (region is not None and region in self.merged):
                if payload.op in ("constant", "iota"):
                    continue
                through = ops.in_group(payload.op, ops.VIEW) or payload.op == "cast"
                for operand in self.parts.operands[node]:
                    stack.append((operand, selected if through else float(self.graph.node(operand).type.nbytes)))
                continue
            found[node] = min(float(payload.type.nbytes), found.get(node, 0.0) + selected)
        return found

    def classify(self, bases: dict[int, float]) -> Inputs:
        inputs = Inputs()
        for source, nbytes in bases.items():
            kind = self.where(source)
            if kind == STATIONARY:
                inputs.dense_stationary += nbytes
                inputs.stationary += self._stored(source, nbytes)
                if self.graph.node(source).op == "param" and not self.graph.node(source).attr("weight"):
                    inputs.state += nbytes
            elif kind == HOST:
                inputs.host += nbytes
            else:
                inputs.dynamic += nbytes
                producer = self.parts.region_of[source]
                inputs.producers[producer] = inputs.producers.get(producer, 0.0) + nbytes
        return inputs

    def _stored(self, source: int, nbytes: float) -> float:
        payload = self.graph.node(source)
        if payload.op != "param" or not payload.attr("weight"):
            return nbytes
        density, _ = self.sparsity.density_of(source)
        itemsize = payload.type.dtype.itemsize
        elements = int(nbytes // itemsize)
        return float(self.sparsity.storage(elements, int(round(density * elements)), itemsize).stored_bytes)

    def density(self, bases: dict[int, float]) -> float:
        """Non-zero fraction of the sparse-stored weights among `bases` (1.0 when none is)."""
        for source, nbytes in bases.items():
            payload = self.graph.node(source)
            if payload.op == "param" and payload.attr("weight") and self._stored(source, nbytes) < nbytes:
                return self.sparsity.density_of(source)[0]
        return 1.0

    # -- one region ----------------------------------------------------------------------------------

    def _facts(self, region: Region) -> RegionFacts:
        graph = self.graph
        members = set(region.members)
        flops = transcendentals = vector_ops = 0.0
        widest = None
        for node in region.members:
            payload = graph.node(node)
            operand_types = [graph.node(o).type for o in self.parts.operands[node]]
            f, t = node_flops(payload.op, payload.type, operand_types, payload.attr_dict)
            flops += f
            transcendentals += t
            if node == region.anchor and region.kind == MATMUL:
                continue
            if ops.in_group(payload.op, ops.VIEW) or payload.op in ("constant", "iota"):
                continue
            elements = operand_types[0].size if ops.in_group(payload.op, ops.REDUCTION) else payload.type.size
            vector_ops += elements * vop_cost(payload.op, self.machine)
            if widest is None or payload.type.dtype.bits > widest.bits:
                widest = payload.type.dtype
        everything = self.bases(list(region.outputs), members)
        a = b = None
        matmul = None
        density = 1.0
        executed = flops
        dtype = widest or graph.node(region.members[-1]).type.dtype
        if region.kind == MATMUL:
            anchor = region.anchor
            dtype = graph.node(anchor).type.dtype
            matmul = matmul_shape(graph, anchor)
            a_node, b_node = self.parts.operands[anchor]
            a_bases = self.bases([a_node], members - {anchor})
            b_bases = self.bases([b_node], members - {anchor})
            a, b = self.classify(a_bases), self.classify(b_bases)
            for used in (a_bases, b_bases):
                for source, nbytes in used.items():
                    everything[source] = max(0.0, everything.get(source, 0.0) - nbytes)
            density = min(self.density(a_bases), self.density(b_bases))
            macs = matmul.batch * matmul.m * matmul.k * matmul.n
            executed = flops - 2.0 * macs * (1.0 - density)
        other = self.classify({s: v for s, v in everything.items() if v > 0})
        out_bytes = float(sum(graph.node(o).type.nbytes for o in region.outputs))
        return RegionFacts(region, dtype, flops, executed, transcendentals, vector_ops, matmul, a, b, other,
                           out_bytes, density, not self.weight_only[region.id], region.id in self.merged,
                           sum(1 for n in region.members if ops.in_group(graph.node(n).op, ops.REDUCTION)))


def macs_of(facts: RegionFacts) -> float:
    if facts.matmul is None:
        return 0.0
    shape = facts.matmul
    return shape.batch * shape.m * shape.k * shape.n * facts.density


def accumulator_bytes(dtype: DType) -> int:
    return 8 if dtype is DType.F64 else 4


def tile(total: float, parts: int) -> float:
    return math.ceil(total / max(1, parts))
