"""The wse report follows the throughput rule of every target (figures for the program as given, one step
in flight; the pipeline-full figures apart, as the capacity), regions are sized by their work as well as
their memory, and the binding resource names what binds (FMAC or vector work)."""

from __future__ import annotations

import pytest

from compiler.driver import compile, compile_string
from targets.base import CompileOptions, get_target
from targets.cost import CostReport
from targets.wse.cost import PricingOptions, price
from targets.wse.pricing import FMAC, VECTOR, Pricer
from targets.wse.sizing import allocate

SMALL_LLAMA = {"L": 2, "D": 256, "Hq": 4, "Hkv": 2, "Dh": 64, "F": 512, "V": 1024, "T": 512}

# Attention scores over 4,096 keys: the softmax holds almost nothing (2 PEs of memory) but does tens of
# millions of vector operations (exp as 17 of them, a divide as 8) per step.
SOFTMAX = """
@tokens(1, users=1)
def scores(q: bf16[64, 128], @weight k: bf16[4096, 128]) -> f32[64, 4096] {
    return softmax(cast(q @ transpose(k, (1, 0)), f32), axis=-1)
}
"""


def _report(program) -> CostReport:
    return get_target("wse").estimate(program.artifact)


def _llama(batch: int, **extra) -> tuple[CostReport, object]:
    program = compile("examples/llama_decode.nk", target="wse", defines={**SMALL_LLAMA, "B": batch},
                      for_pricing=True, **extra)
    return _report(program), program


@pytest.mark.parametrize("batch", [1, 4])
def test_as_given_figures_are_one_step_in_flight(batch: int) -> None:
    report, program = _llama(batch)
    assert report.fits
    tokens = report.tokens
    assert tokens.tokens_per_step == batch and tokens.users == batch
    assert tokens.tokens_per_second == pytest.approx(tokens.tokens_per_step / report.latency)
    assert tokens.tokens_per_second_per_user == pytest.approx(tokens.tokens_per_second / tokens.users)
    machine = get_target("wse").machine
    wafers = report.placement.chips
    assert report.energy.joules == pytest.approx(machine.system_power_w * wafers * report.latency)
    assert report.money.usd == pytest.approx(machine.price_per_hour * wafers * report.latency / 3600)
    assert tokens.joules_per_token == pytest.approx(report.energy.joules / batch)


@pytest.mark.parametrize("batch, extra", [(1, {}), (4, {}), (2, {"chips": 1, "weights": "streamed"})])
def test_capacity_only_when_the_interval_is_shorter_than_the_latency(batch: int, extra: dict) -> None:
    report, program = _llama(batch, **{k: v for k, v in extra.items() if k == "chips"})
    if "weights" in extra:
        target = get_target("wse")
        options = CompileOptions(target="wse", chips=extra["chips"], for_pricing=True,
                                 extra={"weights": extra["weights"]})
        report = target.estimate(target.compile(program.graph, options))
        interval = price(program.graph, target.machine, PricingOptions(1, "streamed")).plan.interval
    else:
        interval = price(program.graph, get_target("wse").machine, PricingOptions()).plan.interval
    assert report.fits and interval > 0
    if interval < report.latency * (1 - 1e-6):
        capacity = report.capacity
        assert capacity is not None
        assert capacity.interval == pytest.approx(interval)
        assert capacity.tokens_per_second == pytest.approx(batch / interval)
        assert capacity.steps_in_flight == pytest.approx(report.latency / interval)
        assert capacity.tokens_per_second > report.tokens.tokens_per_second
        machine = get_target("wse").machine
        joules = machine.system_power_w * report.placement.chips * interval
        assert capacity.joules_per_token == pytest.approx(joules / batch)
        assert capacity.set_by
    else:
        assert report.capacity is None
    if "weights" in extra:  # one wafer, regions one after another: nothing to overlap
        assert report.capacity is None


def test_a_large_softmax_gets_the_pes_its_work_needs() -> None:
    program = compile_string(SOFTMAX, target="wse", name="scores.nk", for_pricing=True)
    machine = get_target("wse").machine
    plan = price(program.graph, machine, PricingOptions()).plan
    pricer = Pricer(machine)
    softmax = next(p for p in plan.priced if "exp" in p.facts.region.label)
    memory = pricer.memory_split(softmax.facts)
    assert memory[0] * memory[1] * memory[2] <= 4  # its memory alone would give it a couple of PEs
    assert softmax.pes >= 1000
    on_memory = softmax.facts.vector_ops / (memory[0] * memory[1] * memory[2]) / machine.lanes(softmax.facts.dtype)
    assert plan.interval * machine.clock_hz < on_memory / 100
    report = _report(program)
    assert report.capacity is None or " 2 PEs," not in report.capacity.set_by  # not set by a 2-PE region
    kernel = next(k for k in report.kernels if "exp" in k.name)
    assert kernel.cost.time.get(FMAC) == 0 and kernel.cost.time.get(VECTOR) > 0
    assert kernel.cost.binding in (VECTOR, "fabric")  # never FMAC-bound: it has no matmul


@pytest.mark.parametrize("source", ["llama", "softmax"])
def test_binding_names_the_work_that_binds(source: str) -> None:
    if source == "llama":
        report, _ = _llama(2)
    else:
        report = _report(compile_string(SOFTMAX, target="wse", name="scores.nk", for_pricing=True))
    for kernel in report.kernels:
        time = kernel.cost.time
        if kernel.cost.binding == FMAC:
            assert time.get(FMAC) >= time.get(VECTOR)
        elif kernel.cost.binding == VECTOR:
            assert time.get(VECTOR) > time.get(FMAC)
    assert report.binding in {FMAC, VECTOR, "fabric", "io", "interconnect", "mem:memoryx"}
    words = {FMAC: "FMAC (matmul) compute at", VECTOR: "vector/elementwise compute, not matmul",
             "fabric": "the fabric at", "io": "off-wafer I/O", "interconnect": "off-wafer I/O"}
    assert words[report.binding] in report.explanation
    assert "FMAC busy" in report.explanation and "vector busy" in report.explanation


def test_vector_binding_quotes_the_rate_the_model_used() -> None:
    from targets.wse.cost import _binding_text
    program = compile_string(SOFTMAX, target="wse", name="scores.nk", for_pricing=True)
    machine = get_target("wse").machine
    plan = price(program.graph, machine, PricingOptions()).plan
    text = _binding_text(VECTOR, plan, machine)
    assert "vector/elementwise" in text and f"f32 {machine.fmac_lanes_f32} lanes/cycle" in text
    assert f"exp = {1 + machine.transcendental_ops} vector ops" in text
    assert "FMAC" in _binding_text(FMAC, plan, machine) and "bf16 8 lanes/cycle" in _binding_text(FMAC, plan, machine)


def test_allocation_gives_spare_pes_to_heavy_work_even_when_memory_nearly_fills_the_wafers() -> None:
    # A matmul whose weights take 10,000 PEs, and a softmax that holds 2 PEs of data but has 4x its work.
    work, rows, floor, cap = [2e6, 8e6], [1, 64], [10_000, 2], [20_000, 20_000]
    sizes = allocate(work, rows, floor, cap, budget=10_302)
    assert sum(sizes) <= 10_302 and sizes[0] >= 10_000 and sizes[1] >= 250
    # nothing spare: the memory sizes
    assert allocate(work, rows, floor, cap, budget=10_002) == floor
    # caps hold: a region gains nothing beyond its cap however much is spare
    assert allocate(work, rows, floor, [10_000, 100], budget=1e9) == [10_000, 100]


def test_softmax_is_sized_by_work_when_weights_nearly_fill_the_wafer() -> None:
    # 15 layers of the 70B model's widths at T=4096: the weights alone take about 97% of one wafer's PEs,
    # and each layer's softmax over 4,097 scores holds 2 PEs of data. Sized by memory only, the softmax
    # would take ~1.7 ms per step on its 2 PEs and set the pace of the whole pipeline.
    defines = {"L": 15, "D": 8192, "Hq": 64, "Hkv": 8, "Dh": 128, "F": 28672, "V": 128256, "B": 1, "T": 4096}
    graph = compile("examples/llama_decode.nk", target="wse", defines=defines, for_pricing=True).graph
    machine = get_target("wse").machine
    plan = price(graph, machine, PricingOptions()).plan
    pricer = Pricer(machine)
    floors = sum(pricer._pes(pricer.memory_split(p.facts)) for p in plan.priced)
    assert plan.wafers == 1 and floors > 0.95 * machine.mesh_pes
    softmaxes = [p for p in plan.priced if "exp" in p.facts.region.label]
    assert len(softmaxes) == 15
    for p in softmaxes:
        assert pricer._pes(pricer.memory_split(p.facts)) <= 4 and p.pes >= 100
    worst = max(plan.priced, key=lambda p: p.busy)
    assert worst.pes > 4 and plan.interval < 1e-4
