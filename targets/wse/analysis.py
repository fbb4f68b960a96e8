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

from ir.dtypes import DType
from ir.graph import Graph
from targets.counts import MatmulShape, matmul_shape, node_flops
from targets.wse.machine import WseMachine
from targets.wse.regions import MATMUL, REDUCTION_OPS, SHAPE_OPS, VIEW_OPS, Partition, Region
from targets.wse.sparsity import Sparsity
from targets.wse.work import vop_cost

STATIONARY, DYNAMIC, HOST = "stationary", "dynamic", "host"
# How a walk for sources (`Analysis.bases`) passes through a node it may enter: constants and iotas are
# generated in place (nothing to read); views and casts select elements of their operand (each operand
# read as far as the selection reaches); any other op reads its operands whole.
_GENERATED, _SELECTS, _WHOLE = 0, 1, 2


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

    @cached_property
    def sizing_key(self) -> tuple:
        """Every field of the facts but the region's identity (its id, nodes, label, group, and the ids
        of the regions its dynamic inputs come from): the domain and reduced axes stand for the region.
        Sizing a region and its cycles on a split (`targets.wse.pricing.Pricer`) read nothing else, so
        regions with equal keys (the same region of identical layers) size alike. Plain tuples and
        names only (the dtype's name, the matmul's four sizes), so that the key hashes fast."""
        region, shape = self.region, self.matmul
        matmul = None if shape is None else (shape.batch, shape.m, shape.k, shape.n)
        return (region.kind, region.domain, region.reduce_axes, self.dtype.name, self.flops, self.executed,
                self.transcendentals, self.vector_ops, matmul, _amounts(self.a), _amounts(self.b),
                _amounts(self.other), self.out_bytes, self.density, self.per_step, self.merged, self.reductions)


def _passage(op: str) -> int:
    """How `Analysis.bases` passes through a node of `op` (`_GENERATED`, `_SELECTS` or `_WHOLE`)."""
    if op in ("constant", "iota"):
        return _GENERATED
    return _SELECTS if op in VIEW_OPS or op == "cast" else _WHOLE


def _amounts(inputs: Inputs | None) -> tuple[float, ...] | None:
    """An `Inputs` without its producers: the byte counts sizing reads."""
    if inputs is None:
        return None
    return inputs.stationary, inputs.dense_stationary, inputs.state, inputs.dynamic, inputs.host


def default_state(graph: Graph) -> set[str]:
    """Inputs that stay on the wafer between steps when the user names none: those called *cache*."""
    names = set()
    for param in graph.params:
        payload = graph.node(param)
        if not payload.attr("weight") and "cache" in payload.attr("name"):
            names.add(payload.attr("name"))
    return names


class Analysis:
    """The facts of every region, in one pass over the regions. Node payloads and byte sizes are read once
    (`Partition.payloads`, `_nbytes`) and each weight's density once (`_density_of`): an 80-layer model
    reads the same stacked weights from every layer."""

    def __init__(self, graph: Graph, parts: Partition, machine: WseMachine, sparsity: Sparsity,
                 state: set[str]) -> None:
        self.graph = graph
        self.parts = parts
        self.machine = machine
        self.sparsity = sparsity
        self.state = state
        self.payloads = parts.payloads
        self._nbytes = {node: float(payload.type.nbytes) for node, payload in self.payloads.items()}
        self._passage = {node: _passage(payload.op) for node, payload in self.payloads.items()}
        self._wheres: dict[int, str] = {}  # source -> `where` (fixed once its producer's facts are known)
        self._stored_bytes: dict[tuple[int, float], float] = {}  # (weight, bytes read) -> `_stored`
        self._densities: dict[int, float] = {}
        self._vops: dict[str, int] = {}  # op -> `vop_cost` on this machine
        self.weight_only: dict[int, bool] = {}
        self.merged = self._movement_regions()
        # nodes a walk for sources passes through: folded ones and the members of merged regions
        self._through = parts.folded | {n for r in parts.regions if r.id in self.merged for n in r.members}
        self.facts: list[RegionFacts] = []
        for region in parts.regions:
            self.weight_only[region.id] = self._reads_weights_only(region)
            self.facts.append(self._facts(region))

    def _movement_regions(self) -> set[int]:
        """Regions that only move data (views, concatenations) for a single consumer region: the consumer
        keeps the result where it is used (`keys = concat(k_cache[l], k)` lives in the attention PEs, the
        new key appended), so they are merged into it and cost nothing of their own."""
        payloads, parts = self.payloads, self.parts
        outputs = set(self.graph.outputs)
        consumer: dict[int, int | None] = {}  # region -> its only consumer region (None: several)
        for region in parts.regions:
            for source in region.sources:
                if source in parts.region_of:
                    producer = parts.region_of[source]
                    if consumer.get(producer, region.id) != region.id:
                        consumer[producer] = None
                    elif producer not in consumer:
                        consumer[producer] = region.id
        merged = set()
        for region in parts.regions:
            moves_only = all(payloads[n].op in SHAPE_OPS or payloads[n].op in ("constant", "iota")
                             for n in region.members)
            if moves_only and not outputs & set(region.outputs) and consumer.get(region.id) is not None:
                merged.add(region.id)
        return merged

    # -- sources -------------------------------------------------------------------------------------

    def _reads_weights_only(self, region: Region) -> bool:
        for source in region.sources:
            payload = self.payloads[source]
            if payload.op == "param":
                if not payload.attr("weight"):
                    return False
            elif not self.weight_only.get(self.parts.region_of[source], False):
                return False
        return True

    def where(self, source: int) -> str:
        kind = self._wheres.get(source)
        if kind is None:
            kind = self._wheres[source] = self._where(source)
        return kind

    def _where(self, source: int) -> str:
        payload = self.payloads[source]
        if payload.op == "param":
            if payload.attr("weight") or payload.attr("name") in self.state:
                return STATIONARY
            return HOST
        return STATIONARY if self.weight_only[self.parts.region_of[source]] else DYNAMIC

    def bases(self, start: list[int], inside: set[int]) -> dict[int, float]:
        """Sources reached from `start` through `inside` nodes and folded nodes, with the bytes read."""
        nbytes, operands, through, passage = self._nbytes, self.parts.operands, self._through, self._passage
        found: dict[int, float] = {}
        stack = [(node, nbytes[node]) for node in start]
        seen: set[int] = set()  # a value reached again selects the same elements: count it once
        while stack:
            node, limit = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            size = nbytes[node]
            selected = size if size < limit else limit  # min(limit, size)
            if node in inside or node in through:
                how = passage[node]
                if how == _SELECTS:
                    stack += [(operand, selected) for operand in operands[node]]
                elif how == _WHOLE:
                    stack += [(operand, nbytes[operand]) for operand in operands[node]]
                continue
            found[node] = min(size, found.get(node, 0.0) + selected)
        return found

    def classify(self, bases: dict[int, float]) -> Inputs:
        inputs = Inputs()
        for source, nbytes in bases.items():
            kind = self.where(source)
            if kind == STATIONARY:
                inputs.dense_stationary += nbytes
                inputs.stationary += self._stored(source, nbytes)
                payload = self.payloads[source]
                if payload.op == "param" and not payload.attr("weight"):
                    inputs.state += nbytes
            elif kind == HOST:
                inputs.host += nbytes
            else:
                inputs.dynamic += nbytes
                producer = self.parts.region_of[source]
                inputs.producers[producer] = inputs.producers.get(producer, 0.0) + nbytes
        return inputs

    def _stored(self, source: int, nbytes: float) -> float:
        payload = self.payloads[source]
        if payload.op != "param" or not payload.attr("weight"):
            return nbytes
        stored = self._stored_bytes.get((source, nbytes))
        if stored is None:
            stored = self._stored_bytes[source, nbytes] = self._stored_weight(source, nbytes)
        return stored

    def _stored_weight(self, source: int, nbytes: float) -> float:
        payload = self.payloads[source]
        density = self._density_of(source)
        itemsize = payload.type.dtype.itemsize
        elements = int(nbytes // itemsize)
        return float(self.sparsity.storage(elements, int(round(density * elements)), itemsize).stored_bytes)

    def _density_of(self, weight: int) -> float:
        """`Sparsity.density_of` of a whole weight (counted once: bound data are scanned for non-zeros)."""
        density = self._densities.get(weight)
        if density is None:
            density = self._densities[weight] = self.sparsity.density_of(weight)[0]
        return density

    def density(self, bases: dict[int, float]) -> float:
        """Non-zero fraction of the sparse-stored weights among `bases` (1.0 when none is)."""
        for source, nbytes in bases.items():
            payload = self.payloads[source]
            if payload.op == "param" and payload.attr("weight") and self._stored(source, nbytes) < nbytes:
                return self._density_of(source)
        return 1.0

    def _vop_cost(self, op: str) -> int:
        cost = self._vops.get(op)
        if cost is None:
            cost = self._vops[op] = vop_cost(op, self.machine)
        return cost

    # -- one region ----------------------------------------------------------------------------------

    def _facts(self, region: Region) -> RegionFacts:
        payloads, operands = self.payloads, self.parts.operands
        members = set(region.members)
        flops = transcendentals = vector_ops = 0.0
        widest = None
        reductions = 0
        for node in region.members:
            payload = payloads[node]
            op = payload.op
            operand_types = [payloads[o].type for o in operands[node]]
            f, t = node_flops(op, payload.type, operand_types)
            flops += f
            transcendentals += t
            reduction = op in REDUCTION_OPS
            reductions += reduction
            if node == region.anchor and region.kind == MATMUL:
                continue
            if op in VIEW_OPS or op in ("constant", "iota"):
                continue
            elements = operand_types[0].size if reduction else payload.type.size
            vector_ops += elements * self._vop_cost(op)
            member_dtype = payload.type.dtype
            if widest is None or (member_dtype is not widest and member_dtype.bits > widest.bits):
                widest = member_dtype
        everything = self.bases(list(region.outputs), members)
        a = b = None
        matmul = None
        density = 1.0
        executed = flops
        dtype = widest or payloads[region.members[-1]].type.dtype
        if region.kind == MATMUL:
            anchor = region.anchor
            dtype = payloads[anchor].type.dtype
            a_node, b_node = operands[anchor]
            matmul = matmul_shape(payloads[anchor].type, payloads[a_node].type)
            prologue = members - {anchor}
            a_bases = self.bases([a_node], prologue)
            b_bases = self.bases([b_node], prologue)
            a, b = self.classify(a_bases), self.classify(b_bases)
            for used in (a_bases, b_bases):
                for source, nbytes in used.items():
                    everything[source] = max(0.0, everything.get(source, 0.0) - nbytes)
            density = min(self.density(a_bases), self.density(b_bases))
            macs = matmul.batch * matmul.m * matmul.k * matmul.n
            executed = flops - 2.0 * macs * (1.0 - density)
        other = self.classify({s: v for s, v in everything.items() if v > 0})
        out_bytes = float(sum(self._nbytes[o] for o in region.outputs))  # whole numbers: exact as floats
        return RegionFacts(region, dtype, flops, executed, transcendentals, vector_ops, matmul, a, b, other,
                           out_bytes, density, not self.weight_only[region.id], region.id in self.merged,
                           reductions)


def macs_of(facts: RegionFacts) -> float:
    if facts.matmul is None:
        return 0.0
    shape = facts.matmul
    return shape.batch * shape.m * shape.k * shape.n * facts.density


def accumulator_bytes(dtype: DType) -> int:
    return 8 if dtype is DType.F64 else 4


def tile(total: float, parts: int) -> float:
    return math.ceil(total / max(1, parts))
