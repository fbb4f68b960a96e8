"""Turning priced kernels into a `CostReport`: energy, money, token rates, assumptions and a why-line.

Shared by every target's `estimate`: the target prices kernels (its machine model), `partition`
places them on chips, and `build_report` adds what follows from the spec alone:

* energy: with per-op energies in the spec (`[energy.compute]` J/op per precision, `[energy.memory]` J/B
  per level), executed ops x their energy + bytes x their energy + idle power x latency x chips; without
  them, TDP x latency x chips, an upper bound (every chip at full power for the whole step);
* money: `price.per_chip_hour` x chips x latency (none when the spec has no price);
* tokens (programs marked `@tokens(N, users=U)`): see the throughput rule below.

The throughput rule, one for every target (`THROUGHPUT_RULE`; docs/comparing-targets.md): figures are for
the program as given. It holds U users' sequences and each step needs the previous step's tokens, so one
step is in flight: tokens/s (all users) = N / latency, tokens/s per user = N / U / latency, and a step
is charged the energy and money of every chip it occupies for its whole latency. A layout pipelined over
chips (pipeline stages, wafer regions) could also start independent steps (other users' batches) before a
step has finished; that is reported apart, as `CostReport.capacity` (`capacity_of`): one step every
`interval` (the busiest stage), the `latency / interval` steps in flight it needs, and the energy and
money per step over that interval. Winners are picked on the as-given figures only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Mapping

from targets.cost import Capacity, Cost, CostReport, Energy, KernelReport, Money, TokenMetrics, total_of
from targets.counts import ProgramCounts
from targets.partition import PartitionPlan
from targets.spec import HardwareSpec
from targets.units import format_si, format_time


THROUGHPUT_RULE = ("as given: one step in flight (each step waits for the previous one), so tokens/s = tokens "
                   "per step / latency and energy and cost per step are every chip's for the whole latency")


def energy_of(report_total: Cost, spec: HardwareSpec, chips: int, seconds: float | None = None) -> Energy:
    """The energy of one step; `seconds` (default: its latency) is how long it occupies the chips."""
    latency = report_total.latency if seconds is None else seconds
    compute = {q.path.rsplit(".", 1)[1]: q.value for q in spec.section("energy.compute")}
    memory = {q.path.rsplit(".", 1)[1]: q.value for q in spec.section("energy.memory")}
    if compute and memory:
        joules = 0.0
        for key, ops in report_total.ops.items:
            joules += ops * compute.get(key.split(":")[-1], max(compute.values()))
        for key, nbytes in report_total.bytes.items:
            level = key.split(":", 1)[-1]
            joules += nbytes * memory.get(level, 0.0)
        idle = spec.value("power.idle", 0.0)
        joules += idle * latency * chips
        return Energy(joules, "per-op energies of the spec (ops x J/op + bytes x J/B per level) + idle power "
                              f"({idle:g} W) x latency x {chips} chip(s)")
    return Energy(spec.tdp * latency * chips,
                  f"TDP ({spec.tdp:g} W) x latency x {chips} chip(s): an upper bound, every chip at full power")


def money_of(latency: float, spec: HardwareSpec, chips: int) -> Money | None:
    price = spec.price_per_hour
    if price is None:
        return None
    basis = "assumed" if price.is_assumption else "published"
    return Money(price.value * chips * latency / 3600.0,
                 f"${price.value:g} per chip-hour ({basis}) x {chips} chip(s) x latency")


def tokens_of(counts: ProgramCounts | Mapping[str, object], latency: float, money: Money | None,
              energy: Energy | None) -> TokenMetrics | None:
    """Token rates of the program as given (one step in flight); `counts` may be the graph's attributes."""
    attributes = counts if isinstance(counts, Mapping) else counts.attributes
    tokens = attributes.get("tokens")
    if not tokens or latency <= 0:
        return None
    users = int(attributes.get("users", 1))
    per_token_usd = money.usd / tokens * 1e6 if money is not None else None
    return TokenMetrics(int(tokens), users, tokens / latency, tokens / users / latency, per_token_usd,
                        energy.joules / tokens if energy is not None else None)


def capacity_of(attributes: Mapping[str, object], latency: float, interval: float, joules: float | None,
                usd: float | None, set_by: str) -> Capacity | None:
    """The pipeline-full figures of a pipelined layout (see the module docstring), None when pipelining
    would not start steps any sooner (one stage, or the interval is the whole latency). `joules` and `usd`
    are one step's share: the chips' energy and money over `interval`."""
    if interval <= 0 or latency <= 0 or interval >= latency * (1 - 1e-6):
        return None
    tokens = attributes.get("tokens")
    per_token = (lambda value: value / tokens if tokens and value is not None else None)
    return Capacity(interval, latency / interval, 1.0 / interval, tokens / interval if tokens else None,
                    per_token(usd) * 1e6 if per_token(usd) is not None else None, per_token(joules), set_by)


def stage_capacity(kernels: tuple[KernelReport, ...], counts: ProgramCounts, spec: HardwareSpec, total: Cost,
                   chips: int, stages: int) -> Capacity | None:
    """Pipeline-full figures of a layout cut into `stages` pipeline stages: a stage's time is the sum of
    its kernels and messages (`KernelReport.stage`), the interval the busiest stage's."""
    if stages <= 1:
        return None
    per_stage: dict[int, float] = {}
    for kernel in kernels:
        per_stage[kernel.stage] = per_stage.get(kernel.stage, 0.0) + kernel.cost.latency
    if not per_stage:
        return None
    busiest = max(per_stage, key=per_stage.get)
    interval = per_stage[busiest]
    energy = energy_of(total, spec, chips, interval)
    money = money_of(interval, spec, chips)
    return capacity_of(counts.attributes, total.latency, interval, energy.joules, money.usd if money else None,
                       f"pipeline stage {busiest} of {stages} ({format_time(interval)})")


def standard_assumptions(counts: ProgramCounts, spec: HardwareSpec, plan: PartitionPlan) -> list[str]:
    items = [f"precision: {counts.dtype} for most FLOPs, as the program declares (no quantisation)"]
    dims = counts.attributes.get("dims")
    if dims:
        items.append("dimensions: " + ", ".join(f"{k}={v}" for k, v in dims.items()))
    if counts.attributes.get("tokens"):
        items.append(f"batch: {counts.attributes.get('users', 1)} user(s), "
                     f"{counts.attributes['tokens']} token(s) per step, one step in flight")
    items.append(f"throughput {THROUGHPUT_RULE}")
    items.append(f"chips: {plan.placement.reason}")
    items.append("kernels and messages run one after another (no overlap between them)")
    items.append("counted from the " + ("loop IR the target compiles" if counts.level == "loops"
                                        else "graph IR and its fusion groups"))
    assumed = [q.path for q in spec.assumptions]
    if assumed:
        items.append(f"spec {spec.name}: {len(assumed)} of {len(spec.quantities)} values are assumptions "
                     f"({', '.join(assumed[:6])}{', ...' if len(assumed) > 6 else ''}); "
                     f"`niche targets --spec {spec.name}` lists them")
    return items


def main_peak(spec: HardwareSpec, dtype: object) -> tuple[str, float] | None:
    """The roof for a program's main precision: its own rate, else the other 16-bit float's, else f32's."""
    precision = str(dtype)
    for candidate in (precision, {"bf16": "f16", "f16": "bf16"}.get(precision, precision), "f32"):
        found = spec.peak(candidate)
        if found is not None:
            return found
    return None


def explain(report: CostReport, spec: HardwareSpec, lead: str = "", rates: Mapping[str, str] | None = None) -> str:
    """One line on why the target costs what it does: the binding resource, the rate the target's model
    used for it (`rates`: resource -> text, from the target; else the spec's figure), and the layout."""
    if not report.fits:
        return report.placement.reason
    rates = dict(rates or {})
    total = report.total
    binding = total.binding or "compute"
    share = total.bound.get(binding) / total.latency if total.latency else 0.0
    if binding.startswith("mem:"):
        level = spec.memory_level(binding[4:])
        rate = rates.get(binding) or (format_si(level.bandwidth, "B/s") if level and level.bandwidth else "?")
        why = f"memory-bound at {rate} ({binding[4:]})"
    elif binding == "compute":
        rate = rates.get("compute") or f"{format_si(report.peak_flops, 'FLOP/s')} peak"
        why = f"compute-bound at {rate} ({report.utilization:.1%} of peak over the step)"
    elif binding == "interconnect":
        link = spec.interconnect
        rate = rates.get("interconnect") or f"{format_si(link.bandwidth, 'B/s')} per direction"
        why = f"communication-bound on {link.name} at {rate}"
    else:
        count = sum(1 for k in report.kernels if k.cost.time.get(binding) > 0)
        why = f"{binding}-bound: {count} kernels, {format_time(total.time.get(binding) / max(count, 1))} each"
        if binding in rates:
            why += f" ({rates[binding]})"
    text = f"{why}, {share:.0%} of {format_time(total.latency)}"
    if report.placement.chips > 1:
        text += f"; {report.placement.reason}"
    return f"{lead}: {text}" if lead else text


def build_report(target: str, spec: HardwareSpec, counts: ProgramCounts, plan: PartitionPlan,
                 kernels: Iterable[KernelReport], assumptions: Iterable[str] = (), lead: str = "",
                 rates: Mapping[str, str] | None = None, capacity: Capacity | None = None,
                 total: Cost | None = None) -> CostReport:
    """The report of priced kernels: totals, energy, money, tokens (as given), the pipeline-full capacity
    (`capacity`, else from the plan's pipeline stages), assumptions and the explanation (`rates`: the rate
    the target's model used per resource, quoted in it). `total` is `total_of(kernels)` when the caller
    has already summed them."""
    extra = list(assumptions)
    if not plan.placement.fits:
        report = CostReport(target, spec.name, counts.name, plan.placement,
                            assumptions=tuple(extra + standard_assumptions(counts, spec, plan)), level=counts.level)
        return replace(report, explanation=explain(report, spec, lead, rates))
    kernels = tuple(kernels)
    if total is None:
        total = total_of(kernels)
    chips = max(1, plan.placement.chips)
    energy = energy_of(total, spec, chips)
    money = money_of(total.latency, spec, chips)
    peak = main_peak(spec, counts.dtype)
    if capacity is None:
        capacity = stage_capacity(kernels, counts, spec, total, chips, plan.placement.pipeline_stages)
    report = CostReport(target, spec.name, counts.name, plan.placement, kernels, energy, money,
                        tokens_of(counts, total.latency, money, energy),
                        tuple(extra + standard_assumptions(counts, spec, plan)), "", counts.level, True, total,
                        peak[1] if peak else 0.0, spec.main_memory.bandwidth, capacity,
                        f"mem:{spec.main_memory.name}")
    return replace(report, explanation=explain(report, spec, lead, rates))
