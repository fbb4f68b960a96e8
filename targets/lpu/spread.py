"""Placing an LPU program on the number of chips asked for (`--chips N`) with the strategy asked for
(`--partition auto|pipeline|tensor`), or refusing with the count it needs; never a different count.

* no chip count: as few chips as hold the program (`partition.pack`); "pipeline" never splits a stage
  across chips, "tensor" takes the fewest chips its column split fits on;
* pipeline on N chips: stages stay in program order and are cut into N consecutive groups, one per chip.
  The cut is found by bisecting a per-chip byte budget: the smallest budget whose greedy packing takes at
  most N chips; if that takes fewer, the fullest chips' groups are halved until there are N. Halving a
  group only lowers what each half holds (the second half holds copies of what the whole group held), so
  every chip still fits. Fewer stages than N chips is refused;
* tensor on N chips: every matmul with one weight matrix is split by output columns (320-column n-chunks,
  as `partition._split` does for a matmul too big for a chip) into min(N, its n-chunks) even groups on
  chips 0, 1, ...; the other stages run on chip 0 and C2C links copy activations where they are read.
  Refused when no matmul is wide enough to reach N chips, or a chip overflows;
* auto on N chips: the fewest-chips placement when it takes exactly N; otherwise the pipeline cut above
  (matmuls too big for the budget are still split), else the tensor split.

Every placement is checked against the real capacity, and copies between chips are the partitioner's own
(`partition._Chips`), so the build lowers it and the counter prices its C2C traffic like any other.
"""

from __future__ import annotations

from targets.base import TargetError
from targets.lpu.partition import (Partition, _Chips, home_parameters, mib, n_chunks, pack, put_chunks,
                                   read_ranges, unplace, unsplittable)
from targets.lpu.plan import Plan
from targets.partition import STRATEGIES

_MAX_TENSOR_TRIES = 64  # chip counts tried when sizing a refused tensor split


def place(plan: Plan, capacity: int, chips: int | None, strategy: str) -> Partition:
    """The placement of `plan` (see the module docstring); a refusal is returned in `refused`."""
    if strategy not in STRATEGIES:
        raise TargetError(f"unknown partitioning strategy '{strategy}' (strategies: {', '.join(STRATEGIES)})")
    if chips is not None and chips < 1:
        raise TargetError(f"chips must be a positive integer, got {chips}")
    fewest = pack(plan, capacity, split=strategy != "pipeline")
    if strategy == "tensor":
        return _tensor(plan, capacity, chips, fewest)
    if fewest.refused or chips is None:
        return fewest
    if fewest.chips > chips:
        return _too_few(plan, capacity, fewest.chips, chips, strategy)
    if fewest.chips == chips:
        fewest.reason = f"chips={chips}, partition={strategy}: {fewest.reason}"
        return fewest
    spread = _pipeline(plan, capacity, chips, strategy)
    if not spread.refused or strategy == "pipeline":
        return spread
    tensor = _tensor_on(plan, capacity, chips)
    if not tensor.refused:
        return tensor
    message = f"{spread.refused}; nor can its matmuls be split over them ({_strip(tensor.refused)})"
    return _refusal(fewest, message)


def _pipeline(plan: Plan, capacity: int, chips: int, strategy: str) -> Partition:
    split = strategy != "pipeline"
    low, high = 0, capacity  # `high` always packs onto at most `chips` chips
    while high - low > max(1, capacity // 1024):
        middle = (low + high) // 2
        trial = pack(plan, capacity, budget=middle, split=split)
        if not trial.refused and trial.chips <= chips:
            high = middle
        else:
            low = middle
    result = pack(plan, capacity, budget=high, split=split)
    cuts = set(result.starts)
    while result.chips < chips:
        group = _fullest_group(plan, result)
        if group is None:
            break
        cuts.add(group[len(group) // 2])
        result = pack(plan, capacity, budget=high, cuts=frozenset(cuts), split=split)
    if result.chips != chips:
        return _refusal(result, f"lpu target: chips={chips}, partition={strategy}: the program's "
                                f"{len(plan.stages)} stage(s) can be cut into at most {result.chips} consecutive "
                                f"group(s), one per chip, so it cannot be pipelined over {chips} chips")
    result.reason = (f"chips={chips}, partition={strategy}: the stages are cut into {chips} consecutive groups, one "
                     f"per chip, balanced so that no chip holds more than {mib(max(result.chip_bytes))} "
                     f"({mib(capacity)} usable)" + (f"; {result.reason}" if result.tensor_parallel else ""))
    return result


def _fullest_group(plan: Plan, part: Partition) -> list[int] | None:
    """The stage indices of the fullest chip that holds two or more unsplit stages, or None."""
    groups: dict[int, list[int]] = {}
    for stage in plan.stages:
        if not stage.chunk_chips and not stage.batch_chips:
            groups.setdefault(stage.chip, []).append(stage.index)
    candidates = [chip for chip, group in groups.items() if len(group) > 1]
    if not candidates:
        return None
    return groups[max(candidates, key=lambda chip: (part.chip_bytes[chip], -chip))]


def _tensor(plan: Plan, capacity: int, chips: int | None, fewest: Partition) -> Partition:
    if chips is not None:
        result = _tensor_on(plan, capacity, chips)
        if not result.refused:
            return result
        needed = _tensor_need(plan, capacity, chips + 1)
        if needed is not None and "would hold" in result.refused:
            result.needed = needed
            result.refused = result.reason = (f"{result.refused}; split by columns it needs {needed} chips, more "
                                              f"than chips={chips} allows")
        return result
    start = max(1, fewest.needed)
    needed = _tensor_need(plan, capacity, start)
    if needed is None:
        return _refusal(fewest, f"lpu target: partition=tensor: splitting its matmuls by output columns does not "
                                f"fit the program on {start} to {start + _MAX_TENSOR_TRIES - 1} chips")
    return _tensor_on(plan, capacity, needed)


def _tensor_need(plan: Plan, capacity: int, start: int) -> int | None:
    """The fewest chips from `start` on that a tensor split fits, or None. None at once when chip c0 alone
    would hold too much whatever the count (`_c0_floor`): every count is then refused, for that or for its
    width. Else a count is tried only as far as its answer needs (`_tensor_on(..., trial=True)`)."""
    chunks = _split_chunks(plan)
    if _c0_floor(plan, chunks) > capacity:
        return None
    for count in range(start, start + _MAX_TENSOR_TRIES):
        trial = _tensor_on(plan, capacity, count, trial=True, chunks=chunks)
        if not trial.refused:
            return count
        if "would hold" not in trial.refused:
            return None  # not wide enough: more chips do not help
    return None


def _split_chunks(plan: Plan) -> list[int]:
    """Per stage (by index), the n-chunks a tensor split spreads it over when the split has more than one
    chip: a matmul with one weight matrix and more than one 320-column slice; 0 for every other stage."""
    return [n_chunks(plan, stage) if not unsplittable(plan, stage) and n_chunks(plan, stage) > 1 else 0
            for stage in plan.stages]


def _c0_floor(plan: Plan, chunks: list[int]) -> int:
    """Bytes chip c0 holds in a tensor split over any number of chips, at the least: what the stages no
    split spreads put there (every split places them on c0, and a single chip all stages). A chip's bytes
    are those of the union of what is put on it, in any order (a put adds the vectors it lacks), so c0
    holds at least these whatever else it gets."""
    chips = _Chips(plan)
    for stage in plan.stages:
        if not chunks[stage.index]:
            out = plan.tensors[stage.output].layout.vectors
            chips.put(0, {**read_ranges(plan, stage), stage.output: [(0, out)]})
    return chips.load[0]


def _tensor_on(plan: Plan, capacity: int, count: int, trial: bool = False, chunks: list[int] | None = None
               ) -> Partition:
    """Matmuls split by output columns over up to `count` chips, everything else on chip 0. `chunks`:
    `_split_chunks(plan)`, when the caller has it.

    `trial`: only whether it fits matters (`_tensor_need`), so placing stops at the first stage after
    which a chip holds more than `capacity`: what chips hold only grows as stages are placed (a put adds
    the vectors a chip lacks, never takes any away), so the placement is then refused with a chip that
    "would hold" too much, as the whole one would be, unless its widest matmul does not reach `count`
    chips, which the stages alone decide and is checked first, as the whole placement checks it. The
    partition returned then says only that; the stages are left part placed (every placement starts
    with `unplace`)."""
    chunks = _split_chunks(plan) if chunks is None else chunks
    unplace(plan)
    chips = _Chips(plan)
    for _ in range(count - 1):
        chips.new()
    produced: dict[str, list[tuple[int, int, int]]] = {}
    tensor_parallel: dict[int, int] = {}
    head = f"lpu target: chips={count}, partition=tensor"
    if trial:  # the widest split, as `tensor_parallel` will have it: a placement refused for it is placed whole
        widest = min(count, max(chunks)) if count > 1 and any(chunks) else 1
        trial = widest >= count
    for stage in plan.stages:
        out = plan.tensors[stage.output].layout.vectors
        if count > 1 and chunks[stage.index]:
            ways = min(count, chunks[stage.index])
            bounds = [round(i * chunks[stage.index] / ways) for i in range(ways + 1)]
            groups = [range(bounds[i], bounds[i + 1]) for i in range(ways)]
            others = read_ranges(plan, stage, skip_weights_of=stage.anchor)
            put_chunks(plan, stage, chips, groups, list(range(ways)), others, produced)
            tensor_parallel[stage.index] = ways
        else:
            chips.put(0, {**read_ranges(plan, stage), stage.output: [(0, out)]})
            produced[stage.output] = [(0, 0, out)]
        if trial and max(chips.load) > capacity:
            refused = f"{head}: a chip would hold more than one chip's {mib(capacity)} of usable SRAM"
            return Partition(0, {}, chips.load, refused, tensor_parallel, count, refused, "none", 0)
    ranges = home_parameters(plan, chips, produced)
    widest = max(tensor_parallel.values(), default=1)
    refused = ""
    if widest < count:
        refused = (f"{head}: its widest matmul splits into {widest} 320-column slice(s), so splitting matmuls by "
                   f"output columns reaches at most {widest} chip(s)")
    else:
        over = [chip for chip, load in enumerate(chips.load) if load > capacity]
        if over:
            refused = (f"{head}: chip c{over[0]} would hold {mib(chips.load[over[0]])}, more than one chip's "
                       f"{mib(capacity)} of usable SRAM")
    if refused:
        return Partition(0, ranges, chips.load, refused, tensor_parallel, count, refused, "none", 0)
    reason = (f"{_strip(head)}: every matmul with one weight matrix is split by output columns over up to {count} chips "
              "(tensor parallel); the other stages run on chip c0 and C2C links copy activations between chips")
    return Partition(count, ranges, chips.load, reason, tensor_parallel, count, "",
                     "tensor" if count > 1 else "single", 1)


def _too_few(plan: Plan, capacity: int, needed: int, chips: int, strategy: str) -> Partition:
    total = sum(info.layout.nbytes for info in plan.tensors.values())
    message = (f"lpu target: the program needs {needed} chips ({mib(total)} of tensors, {mib(capacity)} of SRAM "
               f"per chip), more than chips={chips} allows")
    if strategy != "auto":
        message += f" (partition={strategy})"
    return Partition(0, {}, [], message, {}, needed, message, "none", 0)


def _refusal(part: Partition, message: str) -> Partition:
    return Partition(0, part.ranges, part.chip_bytes, message, part.tensor_parallel, part.needed, message, "none", 0)


def _strip(message: str) -> str:
    return message.replace("lpu target: ", "")
