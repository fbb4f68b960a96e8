"""How many chips a program needs and which chip runs each stage.

A TSP keeps everything in its 220 MiB of SRAM, so a program whose tensors do not fit one chip is split:

* layer pipeline: stages are taken in program order and packed onto a chip until its SRAM is full,
  then onto the next chip. A chip holds the parts of the parameters its stages read (loaded by the
  host: a stacked weight `wq[L, D, N]` read one layer per stage is loaded layer by layer where each
  layer runs), the values its stages produce, and copies of values produced on earlier chips (sent
  over C2C links at run time);
* tensor parallel: a matmul whose weights alone exceed a chip is split by output columns (n-chunks of
  320) across as many chips as its weights need; each holds its share of the weights and a copy of the
  activations, and writes its share of the result;
* batch split: a batched matmul too large for a chip (attention over many heads or users' KV caches) is
  split by even ranges of its output's leading axis, each chip holding only the slices of both operands
  its batches read (`targets.lpu.batch_split`).

Stages fill `usable_sram_fraction` of a chip's SRAM (the spec's weight capacity fraction); the rest is
left for copies made at run time, constants, vectors parked between jobs, and striping waste.
`max_chips` caps the chip count: a program that needs more is refused with the size it needs. A stage
that alone outgrows a chip and cannot be split (not a matmul, a matmul whose single 320-column slice or
single batch is too big) makes the program unplaceable; packing still goes on, counting that stage
as the whole chips its bytes fill, so the refusal says how many chips the program needs at least.
Nothing here allocates or evaluates tensors: sizes come from layouts and the vectors a stage reads
from index arithmetic at the corners of each view, so pricing a 70B model is cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from targets.base import TargetError
from targets.lpu.machine import LpuMachine
from targets.lpu.plan import Plan, Stage, _is_view

Range = tuple[int, int]  # vectors [first, end)


@dataclass
class Partition:
    chips: int
    ranges: dict[str, list[tuple[int, int, int]]]  # tensor -> (chip, first vector, count): where it lives
    chip_bytes: list[int]
    reason: str
    tensor_parallel: dict[int, int] = field(default_factory=dict)  # stage index -> chips it spans
    needed: int = 0  # chips the program needs (equal to `chips` unless refused)
    refused: str = ""  # why the program cannot be placed (then `needed` is a lower bound), or ""
    strategy: str = "single"  # single, pipeline, tensor, tensor+pipeline (none when refused)
    pipeline_stages: int = 1
    starts: tuple[int, ...] = ()  # stage indices that begin a new chip (not counting split matmuls)


class _Unsplittable(Exception):
    """A stage too large for one chip that `_split` cannot spread over chips."""


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:.3f} MiB"


# -- what a stage reads --------------------------------------------------------------------------------


Box = tuple[tuple[int, int], ...]  # per axis, the first and last index


def _flat_box(first: int, last: int, shape: tuple[int, ...]) -> Box:
    """The smallest box holding the row-major elements first..last of `shape`."""
    box: list[tuple[int, int]] = []
    for axis, dim in enumerate(shape):
        inner = math.prod(shape[axis + 1:])
        low, high = first // inner, last // inner  # equal prefixes up to the previous axis
        if low == high:
            box.append((low % dim, low % dim))
            continue
        box.append((low % dim, high % dim))
        box.extend((0, d - 1) for d in shape[axis + 1:])
        break
    return tuple(box)


def _view_boxes(plan: Plan, node: int, box: Box) -> list[tuple[int, Box]]:
    """(base, box of the base) holding every element of `box` of the view `node`."""
    graph = plan.graph
    if node in plan.names:
        return [(node, box)]
    payload = graph.payloads[node]
    if not _is_view(payload.op):  # `Plan.is_base` spelled out: asked for every view a stage reads
        return [(node, box)]
    operands = graph.operand_lists[node]
    if payload.op == "concat":
        axis = payload.attr("axis")
        result, offset = [], 0
        for operand in operands:
            size = graph.payloads[operand].type.shape[axis]
            lo, hi = max(box[axis][0], offset), min(box[axis][1], offset + size - 1)
            if lo <= hi:
                sub = box[:axis] + ((lo - offset, hi - offset),) + box[axis + 1:]
                result.extend(_view_boxes(plan, operand, sub))
            offset += size
        return result
    (operand,) = operands
    in_shape = graph.payloads[operand].type.shape
    if payload.op == "transpose":
        sub: list[tuple[int, int]] = [(0, 0)] * len(in_shape)
        for out_axis, in_axis in enumerate(payload.attr("perm")):
            sub[in_axis] = box[out_axis]
        return _view_boxes(plan, operand, tuple(sub))
    if payload.op == "slice":
        starts, steps = payload.attr("starts"), payload.attr("steps")
        sub = tuple([(s + p * lo, s + p * hi) for s, p, (lo, hi) in zip(starts, steps, box)])
        return _view_boxes(plan, operand, sub)
    if payload.op == "broadcast_to":
        offset = len(box) - len(in_shape)
        sub = tuple([(0, 0) if in_shape[j] == 1 else box[offset + j] for j in range(len(in_shape))])
        return _view_boxes(plan, operand, sub)
    shape = payload.type.shape  # reshape: trailing axes it keeps map box to box; the rest by flat range
    keep, most = 0, min(len(shape), len(in_shape))
    while keep < most and shape[-1 - keep] == in_shape[-1 - keep]:
        keep += 1
    lead, in_lead = shape[:len(shape) - keep], in_shape[:len(in_shape) - keep]
    trailing = box[len(shape) - keep:]
    if not lead:
        return _view_boxes(plan, operand, tuple((0, 0) for _ in in_lead) + trailing)
    first = _ravel([lo for lo, _ in box], lead)  # the corners' leading axes (zip stops at `lead`)
    last = _ravel([hi for _, hi in box], lead)
    return _view_boxes(plan, operand, _flat_box(first, last, in_lead) + trailing)


def _ravel(index: list[int], shape: tuple[int, ...]) -> int:
    """The row-major flat position of a multi-index (of a box corner: inside `shape`)."""
    flat = 0
    for position, dim in zip(index, shape):
        flat = flat * dim + position
    return flat


def _box_rows(plan: Plan, name: str, box: Box) -> Range:
    """The vectors of a MEM tensor holding a box of its elements: the rows from its lowest corner's to its
    highest corner's (`VectorLayout.row_of` never decreases as an index grows, so these are the least and
    the greatest rows of all its corners)."""
    layout = plan.tensors[name].layout
    if not layout.value_shape:  # a rank-0 tensor (broadcast by a view): its one element is all of it
        return 0, layout.vectors
    lowest = tuple([min(lo, hi) for lo, hi in box])
    highest = tuple([max(lo, hi) for lo, hi in box])
    return layout.row_of(lowest) * layout.chunks, (layout.row_of(highest) + 1) * layout.chunks


def _full_box(shape: tuple[int, ...]) -> Box:
    return tuple([(0, d - 1) for d in shape])


def read_ranges(plan: Plan, stage: Stage, skip_weights_of: int | None = None) -> dict[str, list[Range]]:
    """Vector ranges of the MEM tensors a stage reads (through views and values computed on the fly).

    A view's elements are followed back as boxes (first and last index per axis) through slices,
    transposes, broadcasts, concats and reshapes (a reshaped box becomes the smallest box holding its
    flat range), so a stacked weight read one layer at a time is read one layer's rows at a time.
    `skip_weights_of`: leave out that matmul's B operand.

    Packing asks for every stage once per placement tried and counting asks again, so the answer is
    kept in `plan.memo`: it depends on the plan (fixed once made: graph, tensors, materialised nodes,
    matmul operands) and on the stage's node, kind and output, never on where stages are placed.
    """
    key = _stage_key(stage, skip_weights_of)
    return _kept(plan, key, lambda: _read_ranges(plan, stage, skip_weights_of))


def _stage_key(stage: Stage, skip_weights_of: int | None) -> tuple:
    """What `read_ranges` depends on besides the plan."""
    return ("stage", stage.node, stage.kind, stage.output, skip_weights_of)


def read_tensors(plan: Plan, stage: Stage) -> list[str]:
    """The MEM tensors a stage reads: the keys of `read_ranges(plan, stage)`, in its order (from the same
    kept answer, without making its lists)."""
    key = _stage_key(stage, None)
    if key not in plan.memo:
        read_ranges(plan, stage)
    return [name for name, _ in plan.memo[key]]


def _kept(plan: Plan, key: tuple, find: Callable[[], dict[str, list[Range]]]) -> dict[str, list[Range]]:
    """`find()`, found once per plan and `key` (what it depends on besides the plan) and kept in
    `plan.memo` as (tensor, its ranges) pairs of tuples, which the garbage collector soon stops tracking
    (a tensor without ranges is left out); each caller gets a dict of fresh lists."""
    kept = plan.memo.get(key)
    if kept is None:
        kept = plan.memo[key] = tuple([(name, tuple(ranges)) for name, ranges in find().items() if ranges])
    return {name: list(ranges) for name, ranges in kept}


def _read_ranges(plan: Plan, stage: Stage, skip_weights_of: int | None) -> dict[str, list[Range]]:
    payloads, operand_lists = plan.graph.payloads, plan.graph.operand_lists  # read-only tables
    names, tensors = plan.names, plan.tensors
    result: dict[str, list[Range]] = {}

    def add(name: str, first: int, end: int) -> None:
        result.setdefault(name, []).append((first, end))

    def whole(name: str) -> None:
        add(name, 0, tensors[name].layout.vectors)

    def operands_of(node: int) -> list[int]:
        operands = list(operand_lists[node])
        if payloads[node].op == "matmul":
            if node == skip_weights_of:
                return operands[:1]
            if plan.bt.get(node) is not None:
                whole(plan.bt[node])
                return operands[:1]
        return operands

    if stage.kind == "transpose" and stage.output != names.get(stage.node):
        pending = [stage.node]  # the B^T copy of a matmul operand reads B
    else:
        pending = operands_of(stage.node)
    seen: set[int] = set()
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        name = names.get(node)
        if name is not None:
            whole(name)
            continue
        payload = payloads[node]
        if _is_view(payload.op):
            for base, box in _view_boxes(plan, node, _full_box(payload.type.shape)):
                base_name = names.get(base)
                if base_name is not None:
                    add(base_name, *_box_rows(plan, base_name, box))
                else:
                    pending.append(base)
        else:
            pending.extend(operands_of(node))
    return {name: _merge(ranges) for name, ranges in result.items()}


def weight_ranges(plan: Plan, stage: Stage, first_col: int, end_col: int) -> dict[str, list[Range]]:
    """Vector ranges of a matmul's weights (B transposed) that columns [first_col, end_col) read. Each
    placement tried asks again (kept in `plan.memo`, as `read_ranges` is: they depend on the plan, the
    matmul and the columns only)."""
    key = ("weights", stage.anchor, first_col, end_col)
    return _kept(plan, key, lambda: _weight_ranges(plan, stage.anchor, first_col, end_col))


def _weight_ranges(plan: Plan, matmul: int, first_col: int, end_col: int) -> dict[str, list[Range]]:
    graph = plan.graph
    bt = plan.bt.get(matmul)
    b = graph.operands(matmul)[1]
    k = graph.node(b).type.shape[-2]
    if bt is not None:
        layout = plan.tensors[bt].layout
        return {bt: [(first_col * layout.chunks, end_col * layout.chunks)]}
    result: dict[str, list[Range]] = {}
    for base, box in _view_boxes(plan, b, ((0, k - 1), (first_col, end_col - 1))):
        if base in plan.names:
            result.setdefault(plan.names[base], []).append(_box_rows(plan, plan.names[base], box))
    return {name: _merge(ranges) for name, ranges in result.items()}


def _merge(ranges: list[Range]) -> list[Range]:
    merged: list[Range] = []
    for first, end in sorted(ranges):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((first, end))
    return merged


def _missing(held: tuple[Range, ...] | list[Range], first: int, end: int) -> list[Range]:
    gaps, cursor = [], first
    for lo, hi in held:
        if hi <= cursor or lo >= end:
            continue
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


# -- packing stages onto chips --------------------------------------------------------------------


class _Chips:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        # per chip, tensor -> the merged ranges it holds; tuples, which the garbage collector soon stops
        # tracking (a placement holds thousands of them while the rest of the program is priced)
        self.held: list[dict[str, tuple[Range, ...]]] = [{}]
        self.load = [0]

    def new(self) -> int:
        self.held.append({})
        self.load.append(0)
        return len(self.load) - 1

    def vector_bytes(self, name: str) -> int:
        layout = self.plan.tensors[name].layout
        return layout.width * layout.lanes

    def wanted(self, name: str, ranges: list[Range], exact: bool = False) -> list[Range]:
        """Values from other chips are copied whole; parameters only in the ranges read."""
        if self.plan.tensors[name].role == "value" and not exact:
            return [(0, self.plan.tensors[name].layout.vectors)]
        return ranges

    def need(self, chip: int, reads: dict[str, list[Range]], exact: bool = False) -> int:
        """The bytes `reads` would add to what `chip` holds."""
        return self.measure(chip, reads, exact)[0]

    def alone(self, reads: dict[str, list[Range]], exact: bool = False) -> int:
        return sum((end - first) * self.vector_bytes(name) for name, ranges in reads.items()
                   for first, end in self.wanted(name, ranges, exact))

    def put(self, chip: int, reads: dict[str, list[Range]], exact: bool = False) -> None:
        """Make `chip` hold `reads` (and count the bytes that adds)."""
        self.commit(chip, *self.measure(chip, reads, exact))

    def measure(self, chip: int, reads: dict[str, list[Range]], exact: bool = False) -> tuple[int, list[tuple]]:
        """(the bytes `reads` add to what `chip` holds, the changes that `commit` makes to hold them: per
        tensor with something new, what the chip held of it and the ranges wanted). A tensor's ranges are
        merged in only when something is new: a non-empty range with nothing missing lies inside one of
        the held ranges (merged ranges neither overlap nor touch), so merging it in would give the held
        ranges back. `commit` on the same chip, with nothing put there in between, makes it hold them."""
        held = self.held[chip]
        total = 0
        changes = []
        for name, ranges in reads.items():
            kept = held.get(name)
            wanted = self.wanted(name, ranges, exact)
            vectors = 0
            new = kept is None
            for first, end in wanted:
                for lo, hi in _missing(kept or (), first, end):
                    vectors += hi - lo
                    new = True
                new = new or first >= end
            total += vectors * self.vector_bytes(name)
            if new:
                changes.append((name, kept, wanted))
        return total, changes

    def commit(self, chip: int, added: int, changes: list[tuple]) -> None:
        """Make `chip` hold what `measure(chip, ...)` found, `added` bytes more."""
        held = self.held[chip]
        for name, kept, wanted in changes:
            held[name] = tuple(_merge([*(kept or ()), *wanted]))
        self.load[chip] += added


def partition(plan: Plan, machine: LpuMachine, chips: int | None = None, sizing: bool = False,
              strategy: str = "auto") -> Partition:
    """Chips for the plan's stages (see the module docstring). `chips`: exactly that many (None: as few
    as hold the program); `strategy` ("auto", "pipeline", "tensor"): see `targets.lpu.spread`. A program
    that cannot be placed raises a `TargetError` saying what it needs, unless `sizing`: then the
    partition comes back with `refused` set and `needed` the fewest chips it could take."""
    from targets.lpu.spread import place
    capacity = int(machine.sram_bytes * machine.usable_sram_fraction)
    result = place(plan, capacity, chips, strategy)
    if result.refused and not sizing:
        raise TargetError(result.refused)
    return result


def unplace(plan: Plan) -> None:
    """Every stage back on chip 0, unsplit: where each placement attempt starts."""
    for stage in plan.stages:
        stage.chip = 0
        stage.chunk_chips.clear()
        stage.batch_chips = ()
        stage.copies.clear()


def pack(plan: Plan, capacity: int, budget: int | None = None, cuts: frozenset[int] = frozenset(),
         split: bool = True) -> Partition:
    """Stages in program order onto as few chips as hold them: a new chip when the current one would pass
    `budget` bytes (default `capacity`) or at a stage index in `cuts`; a stage alone over `budget` is split
    by output columns when `split`, else refused. Never raises: a refusal is in the result's `refused`."""
    budget = capacity if budget is None else budget
    unplace(plan)
    chips = _Chips(plan)
    produced: dict[str, list[tuple[int, int, int]]] = {}
    tensor_parallel: dict[int, int] = {}
    starts: list[int] = []
    reason = "the program fits one chip"
    refusals: list[str] = []
    chip = 0
    for stage in plan.stages:
        reads = read_ranges(plan, stage)
        out = plan.tensors[stage.output].layout.vectors
        wanted = {**reads, stage.output: [(0, out)]}
        if stage.index in cuts and chips.load[chip] > 0:
            chip = chips.new()
            starts.append(stage.index)
        added, changes = chips.measure(chip, wanted)
        if chips.load[chip] + added > budget:
            alone = chips.alone(wanted)
            if alone <= budget:
                if chips.load[chip] > 0:
                    chip = chips.new()
                    starts.append(stage.index)
                    added, changes = chips.measure(chip, wanted)
                reason = (f"the program's tensors do not fit one chip's {mib(capacity)} of SRAM: its stages are "
                          "pipelined across chips")
            else:
                try:
                    if not split:
                        raise _Unsplittable(f"stage {stage.output} needs more SRAM than one chip and the pipeline "
                                            "partition does not split stages (partition auto or tensor does)")
                    chip = _split(plan, stage, chips, budget, produced, chip)
                except _Unsplittable as error:
                    refusals.append(f"{error} (it alone needs {mib(alone)}, one chip holds {mib(budget)})")
                    chip = _reserve(chips, chip, stage.output, out, alone, budget)
                    stage.chip = chip
                    produced[stage.output] = [(chip, 0, out)]
                    continue
                tensor_parallel[stage.index] = len(stage.all_chips())
                room = f"one chip's {mib(budget)}" if budget == capacity else f"the {mib(budget)} each chip is given"
                how = "by batch" if stage.batch_chips else "by output columns (tensor parallel)"
                reason = (f"stage {stage.output} alone needs {mib(alone)}, more than {room} of "
                          f"SRAM: its matmul is split {how} and the stages are pipelined across chips")
                continue
        stage.chip = chip
        chips.commit(chip, added, changes)  # as `put` would: nothing was put on `chip` since `measure`
        produced[stage.output] = [(chip, 0, out)]
    ranges = home_parameters(plan, chips, produced)
    needed = len(chips.load)
    if needed > 1 and reason == "the program fits one chip":
        reason = "stages are pipelined across chips"
    strategy = "single" if needed == 1 else ("tensor+pipeline" if tensor_parallel else "pipeline")
    stages = max(1, needed - sum(w - 1 for w in tensor_parallel.values()))
    if refusals:
        total = sum(info.layout.nbytes for info in plan.tensors.values())
        refused = (f"lpu target: {refusals[0]}; so the program cannot be placed on any number of chips (it "
                   f"would take {needed} chips, {mib(total)} of tensors, were that stage split evenly)")
        return Partition(0, ranges, chips.load, refused, tensor_parallel, needed, refused, "none", 0, tuple(starts))
    return Partition(needed, ranges, chips.load, reason, tensor_parallel, needed, "", strategy, stages,
                     tuple(starts))


def home_parameters(plan: Plan, chips: _Chips, produced: dict[str, list[tuple[int, int, int]]]
                    ) -> dict[str, list[tuple[int, int, int]]]:
    """Where every tensor lives: values where their stages wrote them, parameters where they are read
    (a parameter nothing reads goes to chip 0)."""
    ranges: dict[str, list[tuple[int, int, int]]] = dict(produced)
    where: dict[str, list[tuple[int, int, int]]] = {}  # parameter -> its ranges on every chip, in chip order
    for chip, held in enumerate(chips.held):
        for name, kept in held.items():
            if plan.tensors[name].role != "value":
                where.setdefault(name, []).extend((chip, first, end - first) for first, end in kept)
    for name, info in plan.tensors.items():
        if info.role == "value":
            continue
        entries = where.get(name, [])
        if not entries:
            entries = [(0, 0, info.layout.vectors)]
            chips.put(0, {name: [(0, info.layout.vectors)]})
        ranges[name] = entries
    return ranges


def put_chunks(plan: Plan, stage: Stage, chips: _Chips, groups: list[range], targets: list[int],
               others: dict[str, list[Range]], produced: dict[str, list[tuple[int, int, int]]]) -> None:
    """Place a matmul's n-chunk `groups` on `targets`: each chip holds its columns' weights, the other
    inputs, and its share of the result."""
    lanes = plan.tensors[stage.output].layout.lanes
    n = plan.graph.node(plan.graph.operands(stage.anchor)[1]).type.shape[-1]
    out_layout = plan.tensors[stage.output].layout
    outputs = []
    for group, target in zip(groups, targets):
        for nb in group:
            stage.chunk_chips[nb] = target
        weights = weight_ranges(plan, stage, group.start * lanes, min(n, group.stop * lanes))
        chips.put(target, {**others, **weights})
        rows = [(row * out_layout.chunks + group.start, len(group)) for row in range(out_layout.rows)]
        chips.put(target, {stage.output: [(first, first + count) for first, count in rows]}, exact=True)
        outputs.extend((target, first, count) for first, count in rows)
    produced[stage.output] = outputs
    stage.chip = stage.chunk_chips[0]


def unsplittable(plan: Plan, stage: Stage) -> str:
    """Why a stage cannot be split by output columns across chips, or "" when it can."""
    if stage.kind != "matmul":
        return (f"stage {stage.output} ({plan.graph.node(stage.node).op}) needs more SRAM than one chip and only "
                "matmuls can be split across chips")
    b_shape = plan.graph.node(plan.graph.operands(stage.anchor)[1]).type.shape
    if math.prod(b_shape[:-2]) != 1:
        return (f"the batched matmul writing {stage.output} is too large for one chip and only matmuls with one "
                "weight matrix are split across chips")
    return ""


def n_chunks(plan: Plan, stage: Stage) -> int:
    """The 320-column slices of a matmul stage's result."""
    n = plan.graph.node(plan.graph.operands(stage.anchor)[1]).type.shape[-1]
    return math.ceil(n / plan.tensors[stage.output].layout.lanes)


def _split(plan: Plan, stage: Stage, chips: _Chips, capacity: int,
           produced: dict[str, list[tuple[int, int, int]]], chip: int) -> int:
    """Spread a matmul stage over fresh chips by n-chunks (a batched matmul: by batch, see
    `targets.lpu.batch_split`); returns the last chip used."""
    from targets.lpu.batch_split import batch_splittable, split_by_batch
    why = unsplittable(plan, stage)
    if why and batch_splittable(plan, stage):
        return split_by_batch(plan, stage, chips, capacity, produced, chip)
    if why:
        raise _Unsplittable(why)
    lanes = plan.tensors[stage.output].layout.lanes
    n = plan.graph.node(plan.graph.operands(stage.anchor)[1]).type.shape[-1]
    chunks = n_chunks(plan, stage)
    out_layout = plan.tensors[stage.output].layout
    others = read_ranges(plan, stage, skip_weights_of=stage.anchor)
    fixed = chips.alone(others)
    share_bytes = out_layout.rows * out_layout.width * lanes  # one n-chunk of the result
    one = chips.alone(weight_ranges(plan, stage, 0, min(n, lanes))) + share_bytes  # every chunk alike
    if fixed + one > capacity and batch_splittable(plan, stage):
        return split_by_batch(plan, stage, chips, capacity, produced, chip)
    if fixed + one > capacity:
        raise _Unsplittable(f"the matmul writing {stage.output} cannot be split finely enough: one 320-column "
                            f"slice of its weights with its inputs needs {mib(fixed + one)}")
    per_chip = max(1, min(chunks - 1, (capacity - fixed) // one))
    groups = [range(first, min(chunks, first + per_chip)) for first in range(0, chunks, per_chip)]
    first_target = chip if chips.load[chip] == 0 else chips.new()
    targets = [first_target] + [chips.new() for _ in groups[1:]]
    put_chunks(plan, stage, chips, groups, targets, others, produced)
    return targets[-1]


def _reserve(chips: _Chips, chip: int, output: str, vectors: int, alone: int, capacity: int) -> int:
    """Count an unsplittable stage as the fresh chips its bytes would fill were it split evenly (a lower
    bound for the refusal); its result is taken to live on the last of them. Returns that chip."""
    count = math.ceil(alone / capacity)
    target = chip if chips.load[chip] == 0 else chips.new()
    for index in range(count):
        if index:
            target = chips.new()
        chips.load[target] = math.ceil(alone / count)
    chips.held[target][output] = ((0, vectors),)
    return target
