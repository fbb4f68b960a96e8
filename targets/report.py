"""Turning priced kernels into a `CostReport`: energy, money, token rates, assumptions and a why-line.

Shared by every target's `estimate`: the target prices kernels (its machine model), `partition`
places them on chips, and `build_report` adds what follows from the spec alone:

* energy: with per-op energies in the spec (`[energy.compute]` J/op per precision, `[energy.memory]` J/B
  per level), executed ops x their energy + bytes x their energy + idle power x latency x chips; without
  them, TDP x latency x chips, an upper bound (every chip at full power for the whole step);
* money: `price.per_chip_hour` x chips x latency (none when the spec has no price);
* tokens (programs marked `@tokens(N, users=U)`): N tokens per step, N / latency tokens/s in all,
  N / U / latency per user, dollars and joules per token; one step in flight (no pipelining of steps).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from targets.cost import Cost, CostReport, Energy, KernelReport, Money, TokenMetrics, total_of
from targets.counts import ProgramCounts
from targets.partition import PartitionPlan
from targets.spec import HardwareSpec
from targets.units import format_si, format_time


def energy_of(report_total: Cost, spec: HardwareSpec, chips: int) -> Energy:
    latency = report_total.latency
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


def tokens_of(counts: ProgramCounts, latency: float, money: Money | None, energy: Energy | None) -> TokenMetrics | None:
    tokens = counts.attributes.get("tokens")
    if not tokens or latency <= 0:
        return None
    users = int(counts.attributes.get("users", 1))
    per_token_usd = money.usd / tokens * 1e6 if money is not None else None
    return TokenMetrics(int(tokens), users, tokens / latency, tokens / users / latency, per_token_usd,
                        energy.joules / tokens if energy is not None else None)


def standard_assumptions(counts: ProgramCounts, spec: HardwareSpec, plan: PartitionPlan) -> list[str]:
    items = [f"precision: {counts.dtype} for most FLOPs, as the program declares (no quantisation)"]
    dims = counts.attributes.get("dims")
    if dims:
        items.append("dimensions: " + ", ".join(f"{k}={v}" for k, v in dims.items()))
    if counts.attributes.get("tokens"):
        items.append(f"batch: {counts.attributes.get('users', 1)} user(s), "
                     f"{counts.attributes['tokens']} token(s) per step, one step in flight")
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


def explain(report: CostReport, spec: HardwareSpec, lead: str = "") -> str:
    """One line on why the target costs what it does: the binding resource, its rate, and the layout."""
    if not report.fits:
        return report.placement.reason
    total = report.total
    binding = total.binding or "compute"
    share = total.bound.get(binding) / total.latency if total.latency else 0.0
    if binding.startswith("mem:"):
        level = spec.memory_level(binding[4:])
        rate = format_si(level.bandwidth, "B/s") if level and level.bandwidth else "?"
        why = f"memory-bound at {rate} ({binding[4:]})"
    elif binding == "compute":
        why = f"compute-bound at {format_si(report.peak_flops, 'FLOP/s')} peak ({report.utilization:.0%} utilised)"
    elif binding == "interconnect":
        link = spec.interconnect
        why = f"communication-bound on {link.name} at {format_si(link.bandwidth, 'B/s')} per direction"
    else:
        count = sum(1 for k in report.kernels if k.cost.time.get(binding) > 0)
        why = f"{binding}-bound: {count} kernels, {format_time(total.time.get(binding) / max(count, 1))} each"
    text = f"{why}, {share:.0%} of {format_time(total.latency)}"
    if report.placement.chips > 1:
        text += f"; {report.placement.reason}"
    return f"{lead}: {text}" if lead else text


def build_report(target: str, spec: HardwareSpec, counts: ProgramCounts, plan: PartitionPlan,
                 kernels: Iterable[KernelReport], assumptions: Iterable[str] = (), lead: str = "") -> CostReport:
    """The report of priced kernels: totals, energy, money, tokens, assumptions and the explanation."""
    extra = list(assumptions)
    if not plan.placement.fits:
        report = CostReport(target, spec.name, counts.name, plan.placement,
                            assumptions=tuple(extra + standard_assumptions(counts, spec, plan)), level=counts.level)
        return _with_explanation(report, spec, lead)
    kernels = tuple(kernels)
    total = total_of(kernels)
    chips = max(1, plan.placement.chips)
    energy = energy_of(total, spec, chips)
    money = money_of(total.latency, spec, chips)
    peak = main_peak(spec, counts.dtype)
    report = CostReport(target, spec.name, counts.name, plan.placement, kernels, energy, money,
                        tokens_of(counts, total.latency, money, energy),
                        tuple(extra + standard_assumptions(counts, spec, plan)), "", counts.level, True, total,
                        peak[1] if peak else 0.0, spec.main_memory.bandwidth)
    return _with_explanation(report, spec, lead)


def _with_explanation(report: CostReport, spec: HardwareSpec, lead: str) -> CostReport:
    return replace(report, explanation=explain(report, spec, lead))
