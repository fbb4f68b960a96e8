"""CostReport arithmetic (costs add, roofline, energy, money, token rates) and its JSON round trip."""

from __future__ import annotations

import json

import pytest

from ir.dtypes import DType
from targets.cost import (SCHEMA, Amounts, Cost, CostReport, KernelReport, Placement, roofline, sum_costs,
                          total_of)
from targets.counts import BufferTraffic, KernelCounts, ProgramCounts
from targets.partition import PartitionPlan, plan_partition
from targets.report import build_report
from targets.spec import parse_spec

TOY = """
name = "toy"
kind = "gpu"
description = "a toy accelerator with round numbers"
[clock]
core = { value = 1, unit = "GHz", assumption = "round" }
[compute.tensor]
bf16 = { value = 100, unit = "TFLOP/s", assumption = "round" }
[memory.l2]
capacity = { value = 10, unit = "MB", assumption = "round" }
[memory.hbm]
main = true
capacity = { value = 10, unit = "GB", assumption = "round" }
bandwidth = { value = 1, unit = "TB/s", assumption = "round" }
[interconnect]
bandwidth = { value = 100, unit = "GB/s", assumption = "round" }
latency = { value = 1, unit = "us", assumption = "round" }
domain = { value = 8, unit = "1", assumption = "round" }
[power]
tdp = { value = 500, unit = "W", assumption = "round" }
[price]
per_chip_hour = { value = 3.6, unit = "USD/h", assumption = "round: a cent per 10 seconds" }
[gpu]
sm_count = { value = 10, unit = "1", assumption = "round" }
registers_per_sm = { value = 256, unit = "KiB", assumption = "round" }
smem_per_sm = { value = 100, unit = "KiB", assumption = "round" }
smem_per_block = { value = 99, unit = "KiB", assumption = "round" }
max_threads_per_sm = { value = 2048, unit = "1", assumption = "round" }
max_threads_per_block = { value = 1024, unit = "1", assumption = "round" }
max_blocks_per_sm = { value = 32, unit = "1", assumption = "round" }
warp_size = { value = 32, unit = "1", assumption = "round" }
launch_overhead = { value = 0, unit = "us", assumption = "none, to keep sums round" }
"""


def test_amounts_add_key_by_key() -> None:
    a = Amounts.of({"mem:hbm": 2.0, "compute": 1.0})
    b = Amounts.of({"compute": 3.0, "interconnect": 5.0})
    total = a + b
    assert total.as_dict() == {"mem:hbm": 2.0, "compute": 4.0, "interconnect": 5.0}
    assert total.largest() == ("interconnect", 5.0)
    assert total.scale(2).get("compute") == 8.0 and total.get("missing") == 0.0


def test_roofline_takes_the_busiest_resource_plus_overheads() -> None:
    cost = roofline({"compute": 2e-6, "mem:hbm": 5e-6}, {"launch": 1e-6}, flops_executed=10.0)
    assert cost.latency == pytest.approx(6e-6)
    assert cost.binding == "mem:hbm"
    assert cost.time.get("launch") == 1e-6
    overhead_bound = roofline({"compute": 1e-7}, {"launch": 4e-6})
    assert overhead_bound.binding == "launch"


def test_costs_add_and_scale_across_chips() -> None:
    one = Cost(flops_useful=1, flops_executed=2, bytes=Amounts.of({"mem:hbm": 10}), time=Amounts.of({"compute": 1}),
               latency=1, bound=Amounts.of({"compute": 1}), peak_chip_seconds=0.5)
    two = Cost(flops_executed=3, latency=4, bound=Amounts.of({"mem:hbm": 4}), bytes=Amounts.of({"mem:hbm": 5}))
    total = one + two
    assert (total.flops_useful, total.flops_executed, total.latency) == (1, 5, 5)
    assert total.bytes.get("mem:hbm") == 15 and total.binding == "mem:hbm"
    assert total_of([KernelReport("a", "matmul", one), KernelReport("b", "copy", two)]) == total
    split = one.across(4)
    assert split.flops_executed == 8 and split.bytes.get("mem:hbm") == 40 and split.latency == 1
    assert split.utilization(4) == pytest.approx(0.5)


def test_sum_costs_is_the_sum_of_costs_bit_for_bit() -> None:
    """`sum_costs` (and `total_of`) must give what adding Costs one by one gives, down to the last bit and
    the number types: repeated keys inside one Amounts, integers, -0.0 and keys that come and go."""
    def amounts(*pairs: tuple[str, float]) -> Amounts:
        return Amounts(tuple(pairs))  # as written: not merged, not converted

    costs = [Cost(1, 0.1, 0.0, amounts(("mem:hbm", 3), ("mem:hbm", 0.2)), amounts(("compute", -0.0)), 0.3,
                  amounts(("compute", 0.3)), 1e-9, amounts(("tensor:bf16", 7))),
             Cost(0.2, 1e300, -0.0, amounts(("mem:l2", 0.1)), amounts(("compute", 0.7), ("launch", 4e-6)), 0.1,
                  amounts(("launch", 0.1)), 2e-9, amounts()),
             Cost(),
             Cost(3e-17, 0.3, 1.0, amounts(("mem:l2", 0.2), ("mem:hbm", 0.1)), amounts(("compute", -0.0)),
                  1e-20, amounts(("compute", 1e-20)), 0.0, amounts(("vector:f32", 0.1)))]
    for count in range(len(costs) + 1):
        chosen = costs[:count] * 3
        assert repr(sum_costs(chosen)) == repr(sum(chosen, Cost()))
        assert repr(total_of(KernelReport("k", "matmul", c) for c in chosen)) == repr(sum(chosen, Cost()))


def _counts(tokens: int | None = 4, users: int = 2) -> ProgramCounts:
    """One kernel that reads 1 GB of weights and does 1 TFLOP."""
    weights = BufferTraffic("w", "weight", 1e9, 0.0, 1e9, 1e9)
    out = BufferTraffic("y", "output", 0.0, 1e3, 1e3, 1e3)
    kernel = KernelCounts("k", "matmul", DType.BF16, 1e12, 1e12, 0.0, 0.0, (weights, out), 1.0, 1.0,
                          reads=("w",), writes=("y",))
    attributes = {"tokens": tokens, "users": users} if tokens else {}
    return ProgramCounts("toy_program", "graph", (kernel,), {"w": 1e9, "y": 1e3}, {"w": "weight", "y": "output"},
                         ("y",), 0.0, attributes, DType.BF16)


def _price(kernel: KernelCounts) -> Cost:
    return roofline({"compute": kernel.flops / 100e12, "mem:hbm": kernel.global_bytes / 1e12},
                    flops_executed=kernel.flops, flops_useful=kernel.flops_useful,
                    peak_chip_seconds=kernel.flops / 100e12)


def _report(tokens: int | None = 4) -> CostReport:
    spec = parse_spec(TOY, "toy.toml")
    counts = _counts(tokens)
    plan = plan_partition(counts, spec)
    kernels = [KernelReport(k.name, k.kind, _price(k)) for k in counts.kernels]
    return build_report("gpu:toy", spec, counts, plan, kernels, ["weights resident in HBM"], "weights from HBM")


def test_report_arithmetic_by_hand() -> None:
    report = _report()
    # compute 1e12 / 1e14 = 10 ms; HBM (1e9 + 1e3) B / 1e12 B/s = 1.000001 ms: compute-bound at 10 ms
    assert report.latency == pytest.approx(0.01)
    assert report.binding == "compute"
    assert report.utilization == pytest.approx(1.0)
    assert report.energy.joules == pytest.approx(500 * 0.01)  # TDP x latency x 1 chip
    assert "TDP" in report.energy.method
    assert report.money.usd == pytest.approx(3.6 * 0.01 / 3600)
    tokens = report.tokens
    assert tokens.tokens_per_second == pytest.approx(400)  # 4 tokens per 10 ms step
    assert tokens.tokens_per_second_per_user == pytest.approx(200)
    assert tokens.usd_per_million_tokens == pytest.approx(report.money.usd / 4 * 1e6)
    assert tokens.joules_per_token == pytest.approx(5.0 / 4)
    assert report.estimate is True
    assert "weights resident in HBM" in report.assumptions
    assert any(a.startswith("chips: fits one chip") for a in report.assumptions)
    assert report.explanation.startswith("weights from HBM: compute-bound at 100 TFLOP/s")


def test_programs_without_tokens_have_no_token_metrics() -> None:
    assert _report(tokens=None).tokens is None


def test_per_op_energies_replace_tdp_when_the_spec_has_them() -> None:
    text = TOY + """
[energy.compute]
bf16 = { value = 1, unit = "pJ/FLOP", assumption = "round" }
[energy.memory]
hbm = { value = 10, unit = "pJ/B", assumption = "round" }
"""
    spec = parse_spec(text, "toy.toml")
    counts = _counts()
    cost = _price(counts.kernels[0])
    cost = Cost(cost.flops_useful, cost.flops_executed, 0.0, Amounts.of({"mem:hbm": 1e9}), cost.time, cost.latency,
                cost.bound, cost.peak_chip_seconds, Amounts.of({"tensor:bf16": 1e12}))
    report = build_report("gpu:toy", spec, counts, plan_partition(counts, spec), [KernelReport("k", "matmul", cost)])
    assert report.energy.joules == pytest.approx(1e12 * 1e-12 + 1e9 * 10e-12)
    assert "per-op energies" in report.energy.method


def test_json_round_trip() -> None:
    report = _report()
    text = report.to_json()
    data = json.loads(text)
    assert data["schema"] == SCHEMA and data["estimate"] is True
    assert data["latency"] == pytest.approx(0.01) and data["binding"] == "compute"
    assert data["kernels"][0]["cost"]["time"]["compute"] == pytest.approx(0.01)
    assert CostReport.from_json(text) == report


def test_a_report_that_does_not_fit_has_no_numbers() -> None:
    placement = Placement("none", 0, 3, 0, 0, 200e9, 80e9, False, "does not fit: needs 3 chips")
    report = CostReport("gpu:toy", "toy", "p", placement)
    assert report.latency is None and report.binding is None and report.utilization is None
    data = json.loads(report.to_json())
    assert data["latency"] is None and data["kernels"] == [] and data["energy"] is None
    assert CostReport.from_json(report.to_json()) == report


def test_reports_from_another_schema_are_refused() -> None:
    with pytest.raises(ValueError, match="not a niche.cost-report/1"):
        CostReport.from_dict({"schema": "other/1"})


def test_partition_plan_default_is_a_single_chip() -> None:
    plan = PartitionPlan(Placement("single", 1, 1, 1, 1, 1.0, 2.0, True, "fits"))
    assert plan.ways == () and plan.collectives == ()
