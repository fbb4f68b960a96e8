"""Multi-chip partitioning: a model too big for one chip is split (or reported as not fitting), and the
communication terms are the documented ring formulas, checked by hand."""

from __future__ import annotations

import pytest

from ir.dtypes import DType
from targets.cost import Cost, roofline
from targets.counts import BufferTraffic, KernelCounts, ProgramCounts
from targets.partition import (all_gather_time, all_reduce_time, collective_cost, plan_partition,
                               price_partitioned, send_time)
from targets.spec import load_spec, parse_spec

GB = 1e9
CHIP = """
name = "chip10"
kind = "gpu"
description = "10 GB per chip, 100 GB/s links, 1 us per message, 8 chips per node"
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
SPEC = parse_spec(CHIP, "chip10.toml")
NO_LINKS = load_spec("cpu")  # a host: no chip-to-chip links


def _traffic(name: str, role: str, size: float, written: bool = False) -> BufferTraffic:
    return BufferTraffic(name, role, 0.0 if written else size, size if written else 0.0, size, size)


def _kernel(name: str, kind: str, reads: list[tuple[str, str, float]], write: tuple[str, str, float]) -> KernelCounts:
    traffic = tuple(_traffic(*r) for r in reads) + (_traffic(*write, written=True),)
    return KernelCounts(name, kind, DType.BF16, 1e9, 1e9, 0.0, 0.0, traffic, 1.0, 1.0,
                        reads=tuple(r[0] for r in reads), writes=(write[0],))


def mlp_counts(weight: float) -> ProgramCounts:
    """norm -> up (weight w1) -> act -> down (weight w2): the Megatron MLP shape."""
    kernels = (
        _kernel("norm", "reduction", [("x", "input", 1000)], ("h", "intermediate", 1000)),
        _kernel("up", "matmul", [("h", "intermediate", 1000), ("w1", "weight", weight)], ("a", "intermediate", 4000)),
        _kernel("act", "elementwise", [("a", "intermediate", 4000)], ("b", "intermediate", 4000)),
        _kernel("down", "matmul", [("b", "intermediate", 4000), ("w2", "weight", weight)], ("y", "output", 1000)),
    )
    sizes = {"x": 1000, "h": 1000, "w1": weight, "a": 4000, "b": 4000, "w2": weight, "y": 1000}
    roles = {"x": "input", "h": "intermediate", "w1": "weight", "a": "intermediate", "b": "intermediate",
             "w2": "weight", "y": "output"}
    return ProgramCounts("mlp", "graph", kernels, sizes, roles, ("y",), 0.0, {}, DType.BF16)


def test_ring_formulas() -> None:
    assert all_reduce_time(1e9, 4, 1e11, 1e-6) == pytest.approx(2 * 3 / 4 * 1e-2 + 6e-6)
    assert all_gather_time(1e9, 4, 1e11, 1e-6) == pytest.approx(3 / 4 * 1e-2 + 3e-6)
    assert send_time(1e9, 1e11, 1e-6) == pytest.approx(1e-2 + 1e-6)
    assert all_reduce_time(1e9, 1, 1e11, 1e-6) == 0.0


def test_a_model_that_fits_stays_on_one_chip() -> None:
    plan = plan_partition(mlp_counts(2 * GB), SPEC)
    assert plan.placement.fits and plan.placement.strategy == "single" and plan.placement.chips == 1
    assert plan.collectives == ()


def test_a_model_too_big_for_one_chip_is_split_tensor_parallel() -> None:
    plan = plan_partition(mlp_counts(12 * GB), SPEC)  # 24 GB of weights, 10 GB per chip
    placement = plan.placement
    assert placement.fits and placement.strategy == "tensor"
    assert placement.chips_needed == 3 and placement.chips == 4  # rounded up to a power of two
    assert plan.ways == (1, 4, 4, 4)  # the norm is replicated; up, act, down are sharded
    (reduce,) = plan.collectives
    assert (reduce.kind, reduce.nbytes, reduce.chips, reduce.after) == ("all-reduce", 1000, 4, 3)
    cost = collective_cost(reduce, SPEC)
    assert cost.latency == pytest.approx(2 * 3 / 4 * 1000 / 100e9 + 2 * 3 * 1e-6)
    assert cost.bytes.get("interconnect") == 2 * 3 * 1000
    assert cost.binding == "interconnect"


def test_a_model_that_does_not_fit_the_chips_given_says_what_it_needs() -> None:
    plan = plan_partition(mlp_counts(12 * GB), SPEC, chips=1)
    placement = plan.placement
    assert not placement.fits and placement.chips == 1  # the count it was refused on
    assert placement.chips_needed == 4
    assert "does not fit" in placement.reason and "fits on 4" in placement.reason
    assert not plan_partition(mlp_counts(12 * GB), SPEC, chips=2, strategy="tensor").placement.fits


def test_a_chip_without_links_cannot_be_spread() -> None:
    plan = plan_partition(mlp_counts(40 * GB), NO_LINKS)
    assert not plan.placement.fits and "no interconnect" in plan.placement.reason


def test_pipeline_cuts_where_a_stage_fills_and_sends_what_crosses() -> None:
    plan = plan_partition(mlp_counts(8 * GB), SPEC, strategy="pipeline")
    assert plan.placement.fits and plan.placement.strategy == "pipeline"
    assert plan.stages == (0, 0, 0, 1) and plan.placement.chips == 2
    (send,) = plan.collectives
    assert (send.kind, send.nbytes, send.after, send.stage) == ("send", 4000, 2, 0)  # b crosses the cut
    assert collective_cost(send, SPEC).latency == pytest.approx(4000 / 100e9 + 1e-6)


def test_pipeline_with_a_kernel_bigger_than_a_chip_does_not_fit() -> None:
    plan = plan_partition(mlp_counts(12 * GB), SPEC, strategy="pipeline")
    assert not plan.placement.fits and "kernel up alone holds 12 GB" in plan.placement.reason


def test_beyond_one_node_tensor_groups_are_pipelined() -> None:
    plan = plan_partition(mlp_counts(12 * GB), SPEC, chips=16)
    assert plan.placement.fits and plan.placement.strategy == "tensor+pipeline"
    assert (plan.placement.tensor_parallel, plan.placement.pipeline_stages, plan.placement.chips) == (8, 2, 16)
    kinds = [c.kind for c in plan.collectives]
    assert kinds.count("all-reduce") == 1 and kinds.count("send") == 1


def test_priced_kernels_are_split_and_messages_follow_their_kernel() -> None:
    counts = mlp_counts(12 * GB)
    plan = plan_partition(counts, SPEC)

    def price(kernel: KernelCounts) -> Cost:
        return roofline({"mem:hbm": kernel.global_bytes / 1e12}, flops_executed=kernel.flops)

    reports = price_partitioned(counts, SPEC, plan, price)
    assert [r.name for r in reports] == ["norm", "up", "act", "down", "all-reduce y"]
    up = reports[1]
    assert up.chips == 4
    assert up.cost.latency == pytest.approx((12 * GB + 1000 + 4000) / 4 / 1e12)  # a quarter of the bytes per chip
    assert up.cost.flops_executed == pytest.approx(1e9)  # counts scale back to the whole kernel
    assert reports[-1].cost.latency == pytest.approx(2 * 3 / 4 * 1000 / 100e9 + 6e-6)


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown partitioning strategy"):
        plan_partition(mlp_counts(GB), SPEC, strategy="diagonal")


def test_pipeline_over_more_chips_than_kernels_is_refused_and_no_stage_is_empty() -> None:
    counts = mlp_counts(1 * GB)
    kernels = len(counts.kernels)
    too_many = plan_partition(counts, SPEC, chips=kernels + 1, strategy="pipeline").placement
    assert not too_many.fits and too_many.chips == kernels + 1
    assert f"at most {kernels} pipeline stage(s)" in too_many.reason
    for chips in range(2, kernels + 1):
        plan = plan_partition(counts, SPEC, chips=chips, strategy="pipeline")
        assert plan.placement.fits and plan.placement.pipeline_stages == chips
        assert sorted(set(plan.stages)) == list(range(chips))  # every chip holds a kernel, in order
        assert list(plan.stages) == sorted(plan.stages)


def test_auto_over_a_chip_count_that_is_not_whole_domains_is_refused_not_rounded_down() -> None:
    domain = SPEC.interconnect.domain
    plan = plan_partition(mlp_counts(1 * GB), SPEC, chips=domain + 1)
    assert not plan.placement.fits and f"ask for a multiple of {domain}" in plan.placement.reason
    assert plan_partition(mlp_counts(1 * GB), SPEC, chips=2 * domain).placement.chips == 2 * domain


def test_kernel_shares_are_kept_per_counts_and_ways_inside_the_block() -> None:
    """`price_partitioned` splits each kernel once per counts and ways inside `shared_counts()` (two GPUs
    placing a program alike share the shares); other ways get their own split, outside the block each call
    splits afresh, and the reports are those of splitting every time."""
    from dataclasses import replace

    from targets.counts import shared_counts
    counts = mlp_counts(12 * GB)
    seen: list[KernelCounts] = []

    def price(kernel: KernelCounts) -> Cost:
        seen.append(kernel)
        return roofline({"mem:hbm": kernel.global_bytes / 1e12}, flops_executed=kernel.flops)

    four, eight = plan_partition(counts, SPEC), plan_partition(counts, SPEC, chips=8, strategy="tensor")
    assert four.ways != eight.ways and 4 in four.ways and 8 in eight.ways
    alone = {plan.ways: price_partitioned(counts, SPEC, plan, price) for plan in (four, eight)}
    fresh = list(seen)
    seen.clear()
    with shared_counts():
        for plan in (four, eight, four, replace(eight)):
            assert price_partitioned(counts, SPEC, plan, price) == alone[plan.ways]
    assert seen[:8] == fresh  # each ways' shares are those of splitting afresh
    assert all(a is b for a, b in zip(seen[8:12], seen[:4])) and all(a is b for a, b in zip(seen[12:], seen[4:8]))
    assert seen[1] != seen[5]  # four ways is not eight ways
