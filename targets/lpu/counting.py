"""Counting an LPU program's instructions per stage without lowering or allocating it.

Each stage is counted by building the instruction trees of a few sample vectors (first, middle and
last) with the real lowering code against `DryHomes` (every tensor anywhere, no addresses kept, no
copies) and scaling by the number of vectors; matmul loads, installs and products are counted in closed
form from the chain structure. Regular programs (every vector of a stage built alike) are counted
exactly; the tests check the counts against the scheduled listing. Copies between chips are counted
from the partition (`partition.read_ranges`), as the lowering would make them.

From the counts, `StageCount.resource_cycles` gives how long each resource of the chip(s) is busy:
MXM arrays (MVM and IW), weight loading and MEM ports (SRAM streaming), VXM ALUs, SXM units, C2C links.
A stage's predicted time is its busiest resource plus its pipeline depth (the longest chain of
dependent instructions of one of its trees).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ir.dtypes import DType
from ir.graph import Graph
from targets.lpu.isa import is_transcendental, latency
from targets.lpu.jobs import VOp
from targets.lpu.lower_compute import _batch_source
from targets.lpu.lower_matmul import MatmulLowering
from targets.lpu.lower_reduce import reduce_tree
from targets.lpu.machine import LpuMachine
from targets.lpu.partition import Partition, partition, read_tensors
from targets.lpu.plan import Plan, Stage, make_plan
from targets.lpu.program import TensorDecl
from targets.lpu.signatures import slice_key
from targets.lpu.trees import MapTable, TreeBuilder
from targets.lpu.vectors import VectorLayout, width


class _Decls(dict):
    """Tensor name -> its `TensorDecl`, made when first looked up: counting lowers only a few sample
    stages, so most of a large model's tensors never need one."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan

    def __missing__(self, name: str) -> TensorDecl:
        info = self.plan.tensors[name]
        decl = self[name] = TensorDecl(name, info.layout, info.role)
        return decl


class DryHomes:
    """Where tensors live, for counting: every tensor is on every chip, at address 0 of some slice."""

    def __init__(self, plan: Plan, machine: LpuMachine) -> None:
        self.decls = _Decls(plan)
        self.slices = machine.layout.mem_slices
        self._constants: dict[tuple, str] = {}

    def locate(self, name: str, vector: int, chip: int) -> tuple[str, int]:
        return self.slices[(zlib.crc32(name.encode()) + vector) % len(self.slices)], 0

    def home(self, name: str, vector: int, chip: int) -> tuple[str, int]:
        return self.locate(name, vector, chip)

    def constant(self, value: float | int, dtype: DType, chip: int) -> str:
        key = (float(value), dtype)
        if key not in self._constants:
            name = f"%const{len(self._constants)}"
            self.decls[name] = TensorDecl(name, VectorLayout((), dtype, splat=True), "data")
            self._constants[key] = name
        return self._constants[key]


@dataclass
class StageCount:
    index: int
    name: str
    kind: str
    chips: tuple[int, ...]
    ops: Counter = field(default_factory=Counter)
    read_words: float = 0.0
    write_words: float = 0.0
    lw_bytes: float = 0.0
    array_cycles: float = 0.0
    vxm: float = 0.0
    sxm: float = 0.0
    transcendental: float = 0.0
    link_cycles: float = 0.0  # link busy cycles in all (for utilization)
    c2c_cycles: float = 0.0  # cycles the busiest pair of chips serialises (links of a pair work in parallel)
    c2c_bytes: float = 0.0
    transfers: int = 0  # vectors copied in from other chips
    planes: int = 1  # MXM planes the stage can use at once
    depth: float = 0.0
    precision: str | None = None

    def add(self, root: VOp, weight: float, machine: LpuMachine) -> None:
        """Add the instructions of one tree, `weight` times."""
        for node in root.walk():
            self.ops[node.op] += weight
            if node.op == "READ":
                self.read_words += weight * width(node.dtype)
            elif node.op == "WRITE":
                self.write_words += weight * width(node.dtype)
            elif node.op == "LW":
                self.lw_bytes += weight * node.lw_bytes
            elif node.op in ("MVM", "IW"):
                self.array_cycles += weight * node.busy
            elif node.op in ("PERMUTE", "TLD", "TST", "TSW"):
                self.sxm += weight
            elif node.pool == "VXM":
                self.vxm += weight
                if is_transcendental(node.op):
                    self.transcendental += weight

    @property
    def instructions(self) -> float:
        return sum(self.ops.values())

    def totals(self) -> tuple:
        """Every number of the count and how many chips it spans (not its index, name or which chips):
        stages of the same signature (`ProgramCount.same_as`) with equal totals are priced alike."""
        return (tuple(self.ops.items()), self.read_words, self.write_words, self.lw_bytes, self.array_cycles,
                self.vxm, self.sxm, self.transcendental, self.link_cycles, self.c2c_cycles, self.c2c_bytes,
                self.transfers, self.planes, self.depth, self.precision, len(self.chips))

    def memory_cycles(self, machine: LpuMachine) -> dict[str, float]:
        """The two halves of `mem:sram`: MEM ports streaming words (`ports`, `sram_bytes_per_cycle` per
        chip, reads and writes in parallel) and weights loaded into the MXM (`loads`,
        `mxm_weight_load_bytes_per_cycle` per plane)."""
        chips = max(1, len(self.chips))
        words = max(self.read_words, self.write_words)
        return {"ports": words * machine.word_bytes / (machine.sram_bytes_per_cycle * chips),
                "loads": self.lw_bytes / (machine.mxm_weight_load_bytes_per_cycle * self.planes)}

    def resource_cycles(self, machine: LpuMachine) -> dict[str, float]:
        chips = max(1, len(self.chips))
        links = machine.c2c_links_per_peer
        return {
            "compute": self.array_cycles / self.planes,
            "mem:sram": max(self.memory_cycles(machine).values()),
            "vector": self.vxm / (machine.vxm_alus * chips),
            "switch": self.sxm / (2 * machine.sxm_units_per_hemisphere * chips),
            "interconnect": self.c2c_cycles / links + (machine.c2c_latency_cycles if self.transfers else 0),
        }

    def cycles(self, machine: LpuMachine) -> float:
        return max(self.resource_cycles(machine).values()) + self.depth


@dataclass
class ProgramCount:
    name: str
    plan: Plan
    partition: Partition
    stages: list[StageCount]
    # per stage, the first stage of the same signature (`_Counter._signature`): the same operations on
    # the same types, so the same FLOPs, and the same instructions before copies between chips
    same_as: list[int] = field(default_factory=list)

    @property
    def instructions(self) -> float:
        return sum(stage.instructions for stage in self.stages)

    def cycles(self, machine: LpuMachine) -> float:
        return sum(stage.cycles(machine) for stage in self.stages)


def _samples(count: int) -> list[int]:
    return sorted({0, count // 2, count - 1}) if count > 0 else []


def _stretch(values: list[int], count: int) -> list[int]:
    """`count` values spread over `values` (first, middle, last), pairing samples of two dimensions."""
    return [values[min(len(values) - 1, i * len(values) // max(1, count))] for i in range(count)]


def tree_depth(machine: LpuMachine, root: VOp) -> float:
    """Cycles from the first instruction of a tree to the end of its root (MXM chains on the west)."""
    layout = machine.layout
    hop = machine.stream_hop_cycles

    def position(node: VOp) -> int:
        if node.unit is not None:
            return layout.position(node.unit)
        if node.pool == "VXM":
            return layout.vxm_position
        if node.pool is not None:
            return layout.sxm_position[node.pool[-1]]
        return layout.mxm_position["W"] if node.chain[0] == "MXM" else layout.sxm_position["W"]

    nodes = root.walk()
    offsets = {id(root): 0}
    for node in nodes:
        for child in node.inputs:
            if node.op == "RECV":
                offset = offsets[id(node)] - child.busy - machine.c2c_latency_cycles
            else:
                offset = offsets[id(node)] - latency(machine, child.op) - abs(position(node) - position(child)) * hop
            offsets[id(child)] = min(offsets.get(id(child), offset), offset)
    return -min(offsets.values()) + latency(machine, root.op)


class _Counter:
    def __init__(self, graph: Graph, machine: LpuMachine, options: dict[str, Any], plan: Plan | None = None) -> None:
        self.machine = machine
        self.plan = make_plan(graph, options, evaluate=False) if plan is None else plan
        self.partition = partition(self.plan, machine, options.get("chips"),
                                   strategy=options.get("partition", "auto"))
        self.homes = DryHomes(self.plan, machine)
        self.builder = TreeBuilder(self.plan, machine, self.homes, MapTable())
        self.held: dict[str, Counter] = {}  # tensor -> chip -> vectors it holds (`_held`)

    def count(self) -> ProgramCount:
        stages, same_as = [], []
        memo: dict[tuple, tuple[int, StageCount]] = {}  # signature -> the first stage with it, its counts
        for stage in self.plan.stages:
            chips = stage.all_chips()
            body = StageCount(stage.index, stage.output, stage.kind, chips)
            signature = self._signature(stage, chips)
            known = memo.get(signature)
            if known is not None:
                _copy_counts(known[1], body)
            else:
                {"compute": self._compute, "reduce": self._reduce, "matmul": self._matmul,
                 "transpose": self._transpose}[stage.kind](stage, body)
                known = memo[signature] = (stage.index, StageCount(stage.index, stage.output, stage.kind, chips))
                _copy_counts(body, known[1])  # before the copies below, which are this stage's own
            self._transfers(stage, chips, body)
            stages.append(body)
            same_as.append(known[0])
        return ProgramCount(self.plan.graph.name, self.plan, self.partition, stages, same_as)

    def _signature(self, stage: Stage, chips: tuple[int, ...]) -> tuple:
        """The structure of a stage, up to which tensors it reads and where a slice of a tensor starts when
        that only moves the slice by whole stored rows (a layer `wq[l]` of a stacked weight, a layer of
        the KV cache): stages with equal signatures lower to the same instructions on other rows, so one
        count serves all the layers of a model. Nodes are numbered in breadth-first order from the
        stage's node; a tensor it reads ends the walk there."""
        plan = self.plan
        names, tensors, inline = plan.names, plan.tensors, plan.inline
        payloads, operand_lists = plan.graph.payloads, plan.graph.operand_lists  # read-only tables
        local: dict[int, int] = {stage.node: 0}
        order = [stage.node]
        entries: list[tuple] = []
        for node in order:  # grows as the walk finds operands
            name = names.get(node)
            if name is not None and node != stage.node:
                info = tensors[name]
                layout = info.layout
                entries.append(("tensor", layout.value_shape, layout.dtype, layout.transposed,
                                layout.stored_shape, layout.splat, info.role))
                continue
            payload = payloads[node]
            operands = operand_lists[node]
            for operand in operands:
                if operand not in local:
                    local[operand] = len(order)
                    order.append(operand)
            attrs = slice_key(plan, node) if payload.op == "slice" else payload.attrs
            entries.append((payload.op, payload.type, attrs, node in inline,
                            tuple([local[operand] for operand in operands])))
        renumbered = tuple(entries)
        extra = ()
        if stage.anchor is not None:
            bt = plan.bt.get(stage.anchor)
            extra = (plan.precision.get(stage.anchor), None if bt is None else plan.tensors[bt].layout)
        synthetic = stage.output != plan.names.get(stage.node)
        return (stage.kind, len(chips), synthetic, extra, renumbered)

    def _held(self, name: str) -> Counter:
        """Chip -> vectors of tensor `name` it holds: where the partition put it, then the copies counted so
        far (made on first use; counting reads only the tensors that stages copy)."""
        held = self.held.get(name)
        if held is None:
            held = self.held[name] = Counter()
            for chip, _, count in self.partition.ranges.get(name, []):
                held[chip] += count
        return held

    def _transfers(self, stage: Stage, chips: tuple[int, ...], result: StageCount) -> None:
        """Copies of values made on other chips, as `Homes` makes them: every missing vector once per
        chip, each pair of chips over its own links."""
        machine = self.machine
        pairs: Counter = Counter()
        if stage.batch_chips:
            self._copies(stage, result, pairs)
            result.c2c_cycles = max(pairs.values(), default=0)
            return
        for name in read_tensors(self.plan, stage):
            info = self.plan.tensors[name]
            if info.role != "value":
                continue
            held = self._held(name)
            for chip in chips:
                vectors = info.layout.vectors - held[chip]
                if vectors <= 0:
                    continue
                nbytes = info.layout.width * info.layout.lanes
                link_cycles = machine.c2c_cycles(nbytes)  # per vector
                sources = {c: n for c, n in held.items() if c != chip and n > 0}
                for source, count in sources.items():
                    pairs[(source, chip)] += min(count, vectors) * link_cycles
                _count_copy(result, vectors, info.layout.width, nbytes, machine)
                held[chip] = info.layout.vectors
        result.c2c_cycles = max(pairs.values(), default=0)

    def _copies(self, stage: Stage, result: StageCount, pairs: Counter) -> None:
        """The slices of values a batch-split stage's chips copy in (`Stage.copies`, as `Homes.copy` makes
        them), each vector sent by the chip whose stage wrote it (`Homes` copies from there)."""
        machine = self.machine
        for chip, names in sorted(stage.copies.items()):
            for name, ranges in sorted(names.items()):
                info = self.plan.tensors[name]
                held = self._held(name)
                nbytes = info.layout.width * info.layout.lanes
                vectors = sum(end - first for first, end in ranges)
                for source, first, count in self.partition.ranges.get(name, []):
                    if source == chip:
                        continue
                    overlap = sum(max(0, min(end, first + count) - max(lo, first)) for lo, end in ranges)
                    pairs[(source, chip)] += overlap * machine.c2c_cycles(nbytes)
                _count_copy(result, vectors, info.layout.width, nbytes, machine)
                held[chip] += vectors

    def _sampled(self, result: StageCount, count: int, make) -> None:
        samples = _samples(count)
        for index in samples:
            tree = make(index)
            result.add(tree, count / len(samples), self.machine)
            result.depth = max(result.depth, tree_depth(self.machine, tree))

    def _compute(self, stage: Stage, result: StageCount) -> None:
        layout = self.homes.decls[stage.output].layout
        builder = self.builder

        def make(vector: int) -> VOp:
            row, chunk = divmod(vector, layout.chunks)
            return builder.write(builder.produce(stage.node, row, chunk, stage.chip), stage.output, vector, stage.chip)

        self._sampled(result, layout.vectors, make)

    def _reduce(self, stage: Stage, result: StageCount) -> None:
        layout = self.homes.decls[stage.output].layout
        self._sampled(result, layout.vectors, lambda v: reduce_tree(self.builder, stage, v))

    def _transpose(self, stage: Stage, result: StageCount) -> None:
        builder = self.builder
        source, batches = _batch_source(builder, stage)
        shape = builder.graph.node(source).type.shape
        p, q = shape[-2], shape[-1]
        lanes = builder.lanes
        p_chunks, q_chunks = math.ceil(p / lanes), math.ceil(q / lanes)
        layout = self.homes.decls[stage.output].layout
        rows = [(in_batch, i, qb) for in_batch in sorted(set(batches)) for i in range(p) for qb in range(q_chunks)]
        loads = len(batches) * p * q_chunks
        chain = ("SXM", stage.chip, 0)

        def load(index: int) -> VOp:
            in_batch, i, qb = rows[min(index, len(rows) - 1)]
            return VOp("TLD", stage.chip, layout.dtype, [builder.vector(source, in_batch * p + i, qb, stage.chip)],
                       chain=chain, fields={"row": i % lanes})

        self._sampled(result, loads, load)
        blocks = len(batches) * p_chunks * q_chunks
        emits = len(batches) * q * p_chunks
        result.add(VOp("TSW", stage.chip, chain=chain), blocks, self.machine)
        emit = builder.write(VOp("TST", stage.chip, layout.dtype, chain=chain, fields={"col": 0}),
                             stage.output, 0, stage.chip)
        result.add(emit, emits, self.machine)
        result.depth += 1 + tree_depth(self.machine, emit)

    def _matmul(self, stage: Stage, result: StageCount) -> None:
        lowering = MatmulLowering(self.builder, stage)
        machine = self.machine
        groups = lowering.rows_by_weights()
        tiles = {b: math.ceil(len(rows) / lowering.tile_rows) for b, rows in groups.items()}
        chains = sum(tiles.values()) * lowering.n_chunks
        result.planes = max(1, min(chains, 2 * machine.mxm_planes_per_hemisphere * len(result.chips)))
        result.precision = lowering.precision
        chain = ("MXM", stage.chip, 0)
        some_group = min(groups)
        some_batch = some_group[0]
        out_rows = sum(len(rows) for rows in groups.values())
        k_chunks, n_chunks = lowering.k_chunks, lowering.n_chunks
        loads = sum(t * k_chunks * lowering.n for t in tiles.values())
        load_samples = list(zip(_samples(lowering.n), _stretch(_samples(k_chunks), len(_samples(lowering.n)))))
        for j, kb in load_samples:
            tree = lowering.load(some_batch, j, j // lowering.lanes, kb, stage.chip, chain)
            result.add(tree, loads / len(load_samples), machine)
        load_depth = tree_depth(machine, tree)
        result.add(VOp("IW", stage.chip, chain=chain, busy=machine.mxm_install_cycles), chains * k_chunks, machine)
        rows = groups[some_group]
        partial = out_rows * n_chunks * (k_chunks - 1)
        if partial:
            picks = _samples(len(rows))
            samples = [(rows[r][1], kb) for r, kb in zip(picks, _stretch(_samples(k_chunks - 1), len(picks)))]
            for a_row, kb in samples:
                result.add(lowering.mvm(a_row, kb, 0, stage.chip, chain), partial / len(samples), machine)
        picks = _samples(len(rows))
        finals = [(rows[r], nb) for r, nb in zip(picks, _stretch(_samples(n_chunks), len(picks)))]
        depth = 0.0
        for (out_row, a_row), nb in finals:
            mvm = lowering.mvm(a_row, k_chunks - 1, 0, stage.chip, chain)
            tree = lowering.result(mvm, out_row, nb, stage.chip)
            result.add(tree, out_rows * n_chunks / len(finals), machine)
            depth = max(depth, tree_depth(machine, tree))
        result.depth = load_depth + machine.mxm_install_cycles + depth


def _copy_counts(source: StageCount, target: StageCount) -> None:
    target.ops = Counter(source.ops)
    for name in ("read_words", "write_words", "lw_bytes", "array_cycles", "vxm", "sxm", "transcendental",
                 "planes", "depth", "precision"):
        setattr(target, name, getattr(source, name))


def count_program(graph: Graph, machine: LpuMachine, options: dict[str, Any] | None = None,
                  plan: Plan | None = None) -> ProgramCount:
    """Instruction counts per stage of `graph` compiled for `machine` (nothing lowered or allocated).
    `plan`: `make_plan(graph, options, evaluate=False)`, when the caller has made it (it is placed here)."""
    return _Counter(graph, machine, dict(options or {}), plan).count()


def _count_copy(result: StageCount, vectors: int, words: int, nbytes: int, machine: LpuMachine) -> None:
    """`vectors` vectors of `words` words copied chip to chip: READ, SEND, RECV and WRITE each, the MEM
    words at both ends, and the link's busy cycles and bytes."""
    result.transfers += vectors
    ops = result.ops
    for op in ("READ", "SEND", "RECV", "WRITE"):  # as `Counter.update` would add them, in this order
        ops[op] += vectors
    result.read_words += vectors * words
    result.write_words += vectors * words
    result.link_cycles += vectors * machine.c2c_cycles(nbytes)
    result.c2c_bytes += vectors * nbytes
