"""Multi-chip partitioning: tensor parallelism, pipeline parallelism, and what their communication costs.

`plan_partition(counts, spec, chips, strategy)` decides how a program's kernels spread over chips and
checks that every chip's share fits its main memory (`memory.<main>.capacity` x
`model.weight_capacity_fraction`). A program that does not fit is never assumed to: the plan says so,
with the number of chips it needs.

What each chip holds: the bytes of every parameter, divided among the kernels that read it in proportion
to what each reads (a stacked weight `wq[L, D, D]` read one layer per kernel is owned layer by layer), the
outputs, and the largest intermediate working set of its kernels.

Tensor parallel over t chips (Megatron-style, propagated kernel by kernel): a matmul kernel reading a
weight is column-parallel when its activation is replicated (its output becomes sharded) and
row-parallel when its activation is sharded (its output is all-reduced and replicated again); a kernel
reading a sharded value is sharded too; others are replicated. A sharded kernel's work and bytes divide
by t, and non-weight inputs it reads are taken as laid out sharded alike (a KV cache by heads). Sharded
program outputs are all-gathered at the end. Pipeline parallel over p stages: kernels in program order are
cut into contiguous stages (fewest stages that fit, or p balanced by bytes when p is given); every value
crossing a cut is sent once per cut it crosses. `auto` uses tensor parallelism inside the spec's
`interconnect.domain` and pipelines across domains.

Communication (ring algorithms, alpha-beta model; B = `interconnect.bandwidth` per chip per direction,
alpha = `interconnect.latency`, S the tensor's bytes):
    all-reduce over p chips:  2 (p-1)/p * S / B + 2 (p-1) * alpha
    all-gather over p chips:    (p-1)/p * S / B +   (p-1) * alpha
    send between two stages:              S / B +           alpha
Kernels and messages run one after another (no overlap): latency is their sum, one step in flight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from targets.base import PARTITION_STRATEGIES
from targets.cost import Amounts, Cost, KernelReport, Placement
from targets.counts import KernelCounts, ProgramCounts, derived_once
from targets.spec import HardwareSpec, Interconnect

STRATEGIES = PARTITION_STRATEGIES
_MAX_TENSOR = 1 << 16


def all_reduce_time(nbytes: float, chips: int, bandwidth: float, latency: float) -> float:
    if chips <= 1:
        return 0.0
    return 2 * (chips - 1) / chips * nbytes / bandwidth + 2 * (chips - 1) * latency


def all_gather_time(nbytes: float, chips: int, bandwidth: float, latency: float) -> float:
    if chips <= 1:
        return 0.0
    return (chips - 1) / chips * nbytes / bandwidth + (chips - 1) * latency


def send_time(nbytes: float, bandwidth: float, latency: float) -> float:
    return nbytes / bandwidth + latency


@dataclass(frozen=True)
class Collective:
    kind: str  # all-reduce, all-gather, send
    nbytes: float  # the tensor's size
    chips: int
    after: int  # index of the kernel it follows
    stage: int
    what: str  # the value it moves


@dataclass(frozen=True)
class PartitionPlan:
    placement: Placement
    ways: tuple[int, ...] = ()  # per kernel: chips its work is divided over
    stages: tuple[int, ...] = ()  # per kernel: pipeline stage
    collectives: tuple[Collective, ...] = ()


def capacity_per_chip(spec: HardwareSpec) -> float:
    return spec.main_memory.capacity * (spec.value("model.weight_capacity_fraction") or 1.0)


def owned_bytes(counts: ProgramCounts) -> list[float]:
    """Per kernel: the parameter and output bytes it holds (shared parameters split by what each reads)."""
    read_by: dict[str, float] = {}
    for kernel in counts.kernels:
        for t in kernel.traffic:
            if t.role in ("weight", "input"):
                read_by[t.buffer] = read_by.get(t.buffer, 0.0) + t.unique
    sizes = counts.sizes
    owned = []
    for kernel in counts.kernels:
        total = 0.0
        for t in kernel.traffic:
            if t.role in ("weight", "input"):
                readers = read_by[t.buffer]
                total += t.unique * min(1.0, sizes.get(t.buffer, t.size) / readers) if readers else 0.0
            elif t.role == "output":
                total += t.unique
        owned.append(total)
    return owned


def tensor_parallel_roles(counts: ProgramCounts) -> tuple[list[bool], list[bool], set[str]]:
    """(sharded, all-reduced after) per kernel, and the sharded values left at the end."""
    sharded_values: set[str] = set()
    sharded, reduced = [], []
    for kernel in counts.kernels:
        activation_sharded = has_weight = False
        for t in kernel.traffic:
            if t.role == "weight":
                has_weight = True
            elif t.buffer in sharded_values:
                activation_sharded = True
        if kernel.kind == "matmul" and has_weight:
            sharded.append(True)
            reduced.append(activation_sharded)
            out_sharded = not activation_sharded
        else:
            sharded.append(activation_sharded)
            reduced.append(False)
            out_sharded = activation_sharded
        for name in kernel.writes:
            if out_sharded:
                sharded_values.add(name)
            else:
                sharded_values.discard(name)
    return sharded, reduced, sharded_values


def _stage_bytes(owned: tuple[float, ...], work: tuple[float, ...], ways: list[int], kernels: list[int]) -> float:
    held = sum(owned[k] / ways[k] for k in kernels)
    return held + max((work[k] / ways[k] for k in kernels), default=0.0)


def _cut_stages(owned: tuple[float, ...], work: tuple[float, ...], ways: list[int], capacity: float,
                stages: int | None) -> list[int] | int:
    """Stage of each kernel: contiguous cuts, fewest that fit (stages None) or `stages` balanced by bytes;
    or the index of the first kernel that alone does not fit one stage. One pass: linear in the kernels."""
    n = len(owned)
    result = [0] * n
    per = [owned[k] / ways[k] for k in range(n)]
    if stages is not None:  # balanced by bytes, but every stage gets a kernel (no idle chip): the caller
        total = sum(per) or 1.0  # asks for at most n stages
        running = 0.0
        for k in range(n):
            wanted = int(running / total * stages)
            previous = result[k - 1] if k else 0
            lowest = max(previous, stages - (n - k))  # enough kernels left for the stages after this one
            highest = min(previous + 1 if k else 0, stages - 1)  # stages are contiguous
            result[k] = min(max(wanted, lowest), highest)
            running += per[k]
        return result
    stage, held, peak = 0, 0.0, 0.0
    for k in range(n):
        scratch = work[k] / ways[k]
        if per[k] + scratch > capacity:
            return k
        if held + per[k] + max(peak, scratch) > capacity:
            stage, held, peak = stage + 1, 0.0, 0.0
        held += per[k]
        peak = max(peak, scratch)
        result[k] = stage
    return result


def plan_partition(counts: ProgramCounts, spec: HardwareSpec, chips: int | None = None,
                   strategy: str = "auto") -> PartitionPlan:
    """The layout of `counts` on `chips` chips (None: as few as hold it) with a strategy of STRATEGIES."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown partitioning strategy '{strategy}' (strategies: {', '.join(STRATEGIES)})")
    facts = derived_once(counts, "partition", _KernelFacts.of)
    plan = _plan(counts, facts, spec, chips, strategy)
    if not plan.placement.fits and chips is not None:
        plan = replace(plan, placement=replace(plan.placement, chips=chips))  # the count it was refused on
        fewest = _plan(counts, facts, spec, None, strategy).placement
        if fewest.fits:
            placement = replace(plan.placement, chips_needed=fewest.chips,
                                reason=f"{plan.placement.reason}; it fits on {fewest.chips}: {fewest.reason}")
            plan = replace(plan, placement=placement)
    return plan


@dataclass(frozen=True)
class _KernelFacts:
    """What a layout needs of the program that follows from its counts alone, whatever the chip and the
    chip count (shared by the targets that price the same counts: `derived_once`)."""

    resident: float  # `ProgramCounts.resident_bytes`
    owned: tuple[float, ...]  # per kernel: `owned_bytes`
    work: tuple[float, ...]  # per kernel: bytes of the intermediates it touches
    sharded: tuple[bool, ...]  # per kernel: `tensor_parallel_roles`
    reduced: tuple[bool, ...]
    sharded_out: frozenset[str]

    @classmethod
    def of(cls, counts: ProgramCounts) -> _KernelFacts:
        sharded, reduced, sharded_out = tensor_parallel_roles(counts)
        return cls(counts.resident_bytes, tuple(owned_bytes(counts)),
                   tuple(k.bytes(("intermediate",)) for k in counts.kernels), tuple(sharded), tuple(reduced),
                   frozenset(sharded_out))


def _plan(counts: ProgramCounts, facts: _KernelFacts, spec: HardwareSpec, chips: int | None,
          strategy: str) -> PartitionPlan:
    capacity = capacity_per_chip(spec)
    resident, owned, work = facts.resident, facts.owned, facts.work
    sharded, reduced, sharded_out = facts.sharded, facts.reduced, facts.sharded_out
    domain = spec.interconnect.domain if spec.interconnect is not None else 1
    needed = max(1, math.ceil(resident / capacity))
    choice = _choose(needed, chips, strategy, domain, spec.interconnect is not None)
    if isinstance(choice, str):
        return _not_fitting(resident, capacity, needed, choice)
    tensor, stage_count = choice
    if stage_count is not None and stage_count > len(counts.kernels):
        return _not_fitting(resident, capacity, needed, f"the program's {len(counts.kernels)} kernel(s) can be cut "
                            f"into at most {len(counts.kernels)} pipeline stage(s), so it cannot be pipelined over "
                            f"{stage_count * tensor} chips")
    while True:
        ways = [tensor if s else 1 for s in sharded]
        stages = _cut_stages(owned, work, ways, capacity, stage_count)
        if isinstance(stages, list) or chips is not None or strategy == "pipeline" or tensor >= _MAX_TENSOR:
            break
        tensor *= 2  # a kernel alone outgrows a stage: widen the tensor-parallel groups
    if isinstance(stages, int):
        big = stages
        return _not_fitting(resident, capacity, needed,
                            f"kernel {counts.kernels[big].name} alone holds {owned[big] / ways[big] / 1e9:.3g} GB "
                            f"per chip, more than the {capacity / 1e9:.3g} GB usable on one {spec.name}")
    used_stages = (max(stages) + 1) if stages else 1
    members: list[list[int]] = [[] for _ in range(used_stages)]
    for k, stage in enumerate(stages):
        members[stage].append(k)
    for stage in range(used_stages):
        held = _stage_bytes(owned, work, ways, members[stage])
        if held > capacity:
            where = f"pipeline stage {stage} holds" if used_stages > 1 else "each chip holds"
            return _not_fitting(resident, capacity, needed, f"{where} {held / 1e9:.3g} GB, more than the "
                                f"{capacity / 1e9:.3g} GB usable on one {spec.name}")
    kind = "single" if tensor == 1 and used_stages == 1 else (
        "tensor" if used_stages == 1 else "pipeline" if tensor == 1 else "tensor+pipeline")
    reason = _reason(kind, resident, capacity, tensor, used_stages, spec)
    if domain is not None and tensor > domain:
        reason += f"; tensor groups span {tensor} chips, beyond the {domain}-chip {spec.interconnect.name} domain"
    placement = Placement(kind, tensor * used_stages, needed, tensor, used_stages, resident, capacity, True, reason)
    collectives = _collectives(counts, ways, reduced, sharded_out, stages, tensor)
    return PartitionPlan(placement, tuple(ways), tuple(stages), tuple(collectives))


def _choose(needed: int, chips: int | None, strategy: str, domain: int | None,
            has_links: bool) -> tuple[int, int | None] | str:
    """(tensor-parallel width, pipeline stages or None for as few as fit), or why it cannot be placed."""
    count = chips if chips is not None else needed
    if count > 1 and not has_links:
        return f"the spec has no interconnect, so the program cannot span {count} chips"
    if count <= 1:
        return (1, 1 if chips is not None else None)
    if strategy == "tensor":
        return (count, 1)
    if strategy == "pipeline":
        return (1, count if chips is not None else None)
    if domain is None or count <= domain:
        width = count if chips is not None else min(domain or count, 1 << (count - 1).bit_length())
        return (width, 1 if chips is not None else None)
    if chips is not None and count % domain:  # never silently on fewer chips than asked for
        return (f"{count} chips are not whole {domain}-chip interconnect domains (auto puts tensor groups of "
                f"{domain} in pipeline stages); ask for a multiple of {domain}, or --partition tensor or pipeline")
    return (domain, count // domain if chips is not None else None)


def _not_fitting(resident: float, capacity: float, needed: int, why: str) -> PartitionPlan:
    return PartitionPlan(Placement("none", 0, needed, 0, 0, resident, capacity, False,
                                   f"does not fit: {why} (needs at least {needed} chip(s))"))


def _reason(kind: str, resident: float, capacity: float, tensor: int, stages: int, spec: HardwareSpec) -> str:
    held = f"{resident / 1e9:.3g} GB resident, {capacity / 1e9:.3g} GB usable per {spec.name}"
    if kind == "single":
        return f"fits one chip ({held})"
    parts = []
    if tensor > 1:
        parts.append(f"tensor-parallel over {tensor}")
    if stages > 1:
        parts.append(f"{stages} pipeline stages")
    return f"{' x '.join(parts)} ({held})"


def _collectives(counts: ProgramCounts, ways: list[int], reduced: tuple[bool, ...], sharded_out: frozenset[str],
                 stages: list[int], tensor: int) -> list[Collective]:
    kernels = counts.kernels
    result: list[Collective] = []
    if tensor > 1:
        for k, kernel in enumerate(kernels):
            if reduced[k]:
                nbytes = sum(t.unique for t in kernel.traffic if t.buffer in kernel.writes)
                result.append(Collective("all-reduce", nbytes, tensor, k, stages[k], ", ".join(kernel.writes)))
        for name in counts.outputs:
            if name in sharded_out:
                result.append(Collective("all-gather", counts.sizes[name], tensor, len(kernels) - 1,
                                         stages[-1] if stages else 0, name))
    if stages and max(stages) > 0:
        result.extend(_sends(kernels, stages, counts.sizes))
    result.sort(key=lambda c: c.after)
    return result


def _sends(kernels: tuple[KernelCounts, ...], stages: list[int], sizes: dict[str, float]) -> list[Collective]:
    producer: dict[str, int] = {}
    last_use: dict[str, int] = {}
    for k, kernel in enumerate(kernels):
        for name in kernel.reads:
            if name in producer:
                last_use[name] = max(last_use.get(name, stages[k]), stages[k])
        for name in kernel.writes:
            producer[name] = stages[k]
    crossing: dict[int, float] = {}
    names: dict[int, list[str]] = {}
    for name, stage in last_use.items():
        for boundary in range(producer[name], stage):
            crossing[boundary] = crossing.get(boundary, 0.0) + sizes.get(name, 0.0)
            names.setdefault(boundary, []).append(name)
    last_kernel = {stages[k]: k for k in range(len(kernels))}
    return [Collective("send", crossing[b], 2, last_kernel[b], b, f"{len(names[b])} value(s)")
            for b in sorted(crossing)]


def collective_cost(collective: Collective, spec: HardwareSpec) -> Cost:
    return message_cost(collective.kind, collective.nbytes, collective.chips, spec.interconnect)


def message_cost(kind: str, nbytes: float, chips: int, link: Interconnect) -> Cost:
    """The cost of one collective of `kind` moving a tensor of `nbytes` among `chips` chips over `link`."""
    if kind == "all-reduce":
        seconds = all_reduce_time(nbytes, chips, link.bandwidth, link.latency)
        wire = 2 * (chips - 1) * nbytes
    elif kind == "all-gather":
        seconds = all_gather_time(nbytes, chips, link.bandwidth, link.latency)
        wire = (chips - 1) * nbytes
    else:
        seconds = send_time(nbytes, link.bandwidth, link.latency)
        wire = nbytes
    return Cost(bytes=Amounts.of({"interconnect": wire}), time=Amounts.of({"interconnect": seconds}),
                latency=seconds, bound=Amounts.of({"interconnect": seconds}))


def _shares(counts: ProgramCounts, ways: tuple[int, ...]) -> tuple[KernelCounts, ...]:
    """Each kernel's share of one chip, split `ways[k]` ways (no ways: whole): the same for every target
    that places the counts the same way (two GPUs of one program), so `derived_once` keeps them by ways."""
    return tuple(kernel.split(ways[k] if ways else 1) for k, kernel in enumerate(counts.kernels))


def price_partitioned(counts: ProgramCounts, spec: HardwareSpec, plan: PartitionPlan,
                      price_kernel: Callable[[KernelCounts], Cost],
                      describe: Callable[[int], str] | None = None) -> list[KernelReport]:
    """Kernel and message reports in execution order: each kernel priced per chip by the target's model
    on its share of the work (`KernelCounts.split`), counts scaled back to the whole. `describe(k)`, when
    given, is the target's line on kernel k (asked after pricing it), put before the counts' notes."""
    reports: list[KernelReport] = []
    pending = list(plan.collectives)
    position = 0
    link = spec.interconnect if pending else None
    messages: dict[tuple[str, float, int], Cost] = {}  # message_cost per (kind, bytes, chips): all it reads
    # A model may hand back the same Cost object for repeated kernels: scale it back once per way count.
    # Keyed by id; the entry holds the Cost, so no other object can take its id meanwhile.
    scaled: dict[tuple[int, int], tuple[Cost, Cost]] = {}
    shares = derived_once(counts, ("shares", plan.ways), lambda c: _shares(c, plan.ways))
    for k, kernel in enumerate(counts.kernels):
        ways = plan.ways[k] if plan.ways else 1
        stage = plan.stages[k] if plan.stages else 0
        share = price_kernel(shares[k])
        known = scaled.get((id(share), ways))
        if known is None:
            known = scaled[(id(share), ways)] = (share, share.across(ways))
        note = "; ".join(kernel.notes)
        if describe is not None:
            note = "; ".join(part for part in (describe(k), note) if part)
        reports.append(KernelReport(kernel.name, kernel.kind, known[1], ways, stage, note))
        while position < len(pending) and pending[position].after == k:
            message = pending[position]
            key = (message.kind, message.nbytes, message.chips)
            cost = messages.get(key)
            if cost is None:
                cost = messages[key] = message_cost(*key, link)
            reports.append(KernelReport(f"{message.kind} {message.what}", message.kind, cost, message.chips,
                                        message.stage))
            position += 1
    return reports
