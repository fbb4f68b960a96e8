"""Cost reports: what a program costs on one target, per kernel and in total, and how sure we are.

Every target's `estimate(artifact)` returns a `CostReport`. The parts are frozen dataclasses; `Cost` and
`Amounts` add, so a total is `sum(kernel costs, Cost())`. A report always carries `estimate = True` and
the assumptions it rests on (batch, precision, chip count, weights resident or streamed, the spec's
assumed values): it is a model's prediction, never a measurement. Measured times are reported beside it
(`niche compare --measure`), not inside it.

Units are base units: FLOPs, bytes, seconds, joules, US dollars. `to_json()` writes the schema documented
in docs/comparing-targets.md ("niche.cost-report/1"); `CostReport.from_json` reads it back.
"""

from __future__ import annotations

import json
import dataclasses
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any, Iterable, Mapping

SCHEMA = "niche.cost-report/1"


@dataclass(frozen=True)
class Amounts:
    """A frozen name -> number mapping that adds key by key (bytes per memory level, seconds per resource)."""

    items: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, mapping: Mapping[str, float] | Iterable[tuple[str, float]] = ()) -> Amounts:
        pairs = mapping.items() if hasattr(mapping, "items") else mapping
        merged: dict[str, float] = {}
        for key, value in pairs:
            merged[key] = merged.get(key, 0.0) + float(value)
        return cls(tuple(merged.items()))

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts.of(chain(self.items, other.items))

    def scale(self, factor: float) -> Amounts:
        return Amounts(tuple((key, value * factor) for key, value in self.items))

    def get(self, key: str, default: float = 0.0) -> float:
        for name, value in self.items:
            if name == key:
                return value
        return default

    def keys(self) -> list[str]:
        return [key for key, _ in self.items]

    def as_dict(self) -> dict[str, float]:
        return dict(self.items)

    def largest(self) -> tuple[str, float] | None:
        """The entry with the largest value (the first one on a tie), None when empty."""
        best: tuple[str, float] | None = None
        for key, value in self.items:
            if best is None or value > best[1]:
                best = (key, value)
        return best

    def total(self) -> float:
        return sum(value for _, value in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass(frozen=True)
class Cost:
    """What a kernel (or a sum of kernels) costs.

    `time` holds the seconds each resource is busy on one chip ("compute", "mem:<level>", "interconnect",
    "launch"); `latency` is the predicted wall time, which a model derives from them (for a roofline, the
    largest of them plus the non-overlapping overheads). `bound` attributes the latency to the resource
    that bound it, so a sum of kernels says where the time went. `peak_chip_seconds` is the chip-seconds
    the executed operations would take at each unit's peak rate: utilization = peak_chip_seconds /
    (latency x chips). `ops` splits executed operations by "unit:precision" for per-op energies.
    """

    flops_useful: float = 0.0
    flops_executed: float = 0.0
    transcendentals: float = 0.0
    bytes: Amounts = Amounts()
    time: Amounts = Amounts()
    latency: float = 0.0
    bound: Amounts = Amounts()
    peak_chip_seconds: float = 0.0
    ops: Amounts = Amounts()

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops_useful + other.flops_useful, self.flops_executed + other.flops_executed,
                    self.transcendentals + other.transcendentals, self.bytes + other.bytes,
                    self.time + other.time, self.latency + other.latency, self.bound + other.bound,
                    self.peak_chip_seconds + other.peak_chip_seconds, self.ops + other.ops)

    @property
    def binding(self) -> str | None:
        """The resource that accounts for most of the latency."""
        largest = self.bound.largest()
        return None if largest is None else largest[0]

    def utilization(self, chips: int = 1) -> float:
        return self.peak_chip_seconds / (self.latency * chips) if self.latency > 0 else 0.0

    def across(self, ways: int) -> Cost:
        """A per-chip cost of work split `ways` ways: counts scale back up to the whole, times stay.
        One way is the cost itself (an integer 1 leaves every number as it is)."""
        if ways == 1:
            return self
        return replace(self, flops_useful=self.flops_useful * ways,
                       flops_executed=self.flops_executed * ways, transcendentals=self.transcendentals * ways,
                       bytes=self.bytes.scale(ways), peak_chip_seconds=self.peak_chip_seconds * ways,
                       ops=self.ops.scale(ways))


def roofline(time: Mapping[str, float], overhead: Mapping[str, float] | None = None, **counts: Any) -> Cost:
    """A Cost whose latency is the busiest resource's time plus overheads that do not overlap with it
    (launch, synchronisation); the binding resource is the busiest one, or an overhead if it is larger."""
    overhead = dict(overhead or {})
    busy = Amounts.of(time)
    largest = busy.largest() or ("compute", 0.0)
    extra = sum(overhead.values())
    latency = largest[1] + extra
    top_overhead = max(overhead.items(), key=lambda item: item[1], default=None)
    binder = top_overhead[0] if top_overhead is not None and top_overhead[1] > largest[1] else largest[0]
    return Cost(time=busy + Amounts.of(overhead), latency=latency, bound=Amounts.of({binder: latency}), **counts)


@dataclass(frozen=True)
class KernelReport:
    name: str
    kind: str  # matmul, reduction, elementwise, copy, all-reduce, all-gather, send
    cost: Cost
    chips: int = 1  # chips the kernel is spread over
    stage: int = 0  # pipeline stage
    note: str = ""


@dataclass(frozen=True)
class Placement:
    """How the program is laid out on chips, and whether it fits."""

    strategy: str  # single, tensor, pipeline, tensor+pipeline
    chips: int  # chips used (0 when it does not fit)
    chips_needed: int  # fewest chips whose main memory holds the resident bytes
    tensor_parallel: int
    pipeline_stages: int
    resident_bytes: float  # weights + inputs + outputs + largest intermediate working set
    capacity_per_chip: float  # usable bytes of main memory per chip
    fits: bool
    reason: str  # one line: why this layout, or why it does not fit


@dataclass(frozen=True)
class Energy:
    joules: float
    method: str  # how it was computed, e.g. "TDP x latency x chips"


@dataclass(frozen=True)
class Money:
    usd: float
    method: str


@dataclass(frozen=True)
class TokenMetrics:
    tokens_per_step: int
    users: int
    tokens_per_second: float
    tokens_per_second_per_user: float
    usd_per_million_tokens: float | None
    joules_per_token: float | None


@dataclass(frozen=True)
class Capacity:
    """Throughput with the pipeline full: a layout whose stages sit on different chips (or regions of a
    wafer) can start a new, independent step every `interval` while earlier ones are still in flight. This
    is not what the program as given gets (its steps depend on each other: `CostReport.tokens`); it needs
    `steps_in_flight` independent steps (other users' batches) at once, and is reported beside it."""

    interval: float  # seconds between steps entering the pipeline
    steps_in_flight: float  # latency / interval: the concurrency that fills the pipeline
    steps_per_second: float
    tokens_per_second: float | None
    usd_per_million_tokens: float | None
    joules_per_token: float | None
    set_by: str  # what sets the interval (the busiest stage)


@dataclass(frozen=True)
class CostReport:
    target: str  # as named on the command line, e.g. "gpu:h100"
    spec: str  # the hardware spec's name
    program: str
    placement: Placement
    kernels: tuple[KernelReport, ...] = ()
    energy: Energy | None = None
    money: Money | None = None
    tokens: TokenMetrics | None = None
    assumptions: tuple[str, ...] = ()
    explanation: str = ""
    level: str = "graph"  # what was counted: "loops" (the loop IR the target compiles) or "graph"
    estimate: bool = True  # always: reports are predictions, never measurements
    total: Cost = field(default=Cost())
    peak_flops: float = 0.0  # one chip's peak for the program's main precision (the roofline's roof)
    memory_bandwidth: float = 0.0  # one chip's main-memory bandwidth (the roofline's slope)
    capacity: Capacity | None = None  # pipelined layouts: throughput with the pipeline full (not as given)
    main_memory: str = ""  # the bytes key of the level the program's tensors live in ("mem:hbm", "mem:sram")

    @property
    def fits(self) -> bool:
        return self.placement.fits

    @property
    def latency(self) -> float | None:
        return self.total.latency if self.fits else None

    @property
    def binding(self) -> str | None:
        return self.total.binding if self.fits else None

    @property
    def utilization(self) -> float | None:
        return self.total.utilization(max(1, self.placement.chips)) if self.fits else None

    def to_dict(self) -> dict[str, Any]:
        data = _plain(self)
        data["schema"] = SCHEMA
        data["latency"] = self.latency
        data["binding"] = self.binding
        data["utilization"] = self.utilization
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostReport:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} report (schema: {data.get('schema')!r})")
        return cls(data["target"], data["spec"], data["program"], Placement(**data["placement"]),
                   tuple(KernelReport(k["name"], k["kind"], _cost(k["cost"]), k["chips"], k["stage"], k["note"])
                         for k in data["kernels"]),
                   Energy(**data["energy"]) if data["energy"] else None,
                   Money(**data["money"]) if data["money"] else None,
                   TokenMetrics(**data["tokens"]) if data["tokens"] else None,
                   tuple(data["assumptions"]), data["explanation"], data["level"], data["estimate"],
                   _cost(data["total"]), data["peak_flops"], data["memory_bandwidth"],
                   Capacity(**data["capacity"]) if data.get("capacity") else None, data.get("main_memory", ""))

    @classmethod
    def from_json(cls, text: str) -> CostReport:
        return cls.from_dict(json.loads(text))


def _plain(value: Any) -> Any:
    if isinstance(value, Amounts):
        return value.as_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _cost(data: Mapping[str, Any]) -> Cost:
    amounts = {"bytes", "time", "bound", "ops"}
    return Cost(**{key: Amounts.of(value) if key in amounts else value for key, value in data.items()})


def sum_costs(costs: Iterable[Cost]) -> Cost:
    """`sum(costs, Cost())`, bit for bit, in one pass instead of a new Cost (and four merged Amounts) per
    addition. Every field is added in the same order from the same 0.0: the scalars left to right, each
    Amounts key in its own running total, keys in the order they first appear. `Amounts.__add__` also
    re-adds the running totals to 0.0 when it merges, which changes no value: a running total is never
    -0.0 (it starts as 0.0 + x, and a sum is -0.0 only when both terms are), and 0.0 + y == y otherwise."""
    useful = executed = transcendentals = latency = peak = 0.0
    moved: dict[str, float] = {}
    busy: dict[str, float] = {}
    bound: dict[str, float] = {}
    ops: dict[str, float] = {}
    moved_get, busy_get, bound_get, ops_get = moved.get, busy.get, bound.get, ops.get  # bound once: hot loop
    for cost in costs:
        useful += cost.flops_useful
        executed += cost.flops_executed
        transcendentals += cost.transcendentals
        latency += cost.latency
        peak += cost.peak_chip_seconds
        for key, value in cost.bytes.items:
            moved[key] = moved_get(key, 0.0) + float(value)
        for key, value in cost.time.items:
            busy[key] = busy_get(key, 0.0) + float(value)
        for key, value in cost.bound.items:
            bound[key] = bound_get(key, 0.0) + float(value)
        for key, value in cost.ops.items:
            ops[key] = ops_get(key, 0.0) + float(value)
    return Cost(useful, executed, transcendentals, Amounts(tuple(moved.items())), Amounts(tuple(busy.items())),
                latency, Amounts(tuple(bound.items())), peak, Amounts(tuple(ops.items())))


def total_of(kernels: Iterable[KernelReport]) -> Cost:
    return sum_costs(k.cost for k in kernels)
