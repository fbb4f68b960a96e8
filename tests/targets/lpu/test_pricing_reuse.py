"""Work the LPU pricing does once and reuses (so that a model's identical layers are priced once) gives
exactly what doing it every time gives: B-operand fan-ins kept by view structure, stages priced by
signature, what stages read kept per plan, chips' held ranges merged only when something is new, rows of
boxes from their corners, and the frozen graph's uses."""

from __future__ import annotations

import dataclasses
import itertools
import random
from types import SimpleNamespace

import numpy as np

from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType
from targets.lpu.counting import count_program
from targets.lpu.estimate import _cost, _counted_kernels, _note
from targets.frozen_graph import FrozenGraph
from targets.lpu.machine import load_machine
from targets.lpu.partition import _box_rows, _Chips, _merge, _missing, read_ranges, read_tensors
from targets.lpu.plan import FANIN_LIMIT, bt_fanin, make_plan
from targets.lpu.signatures import view_key
from targets.lpu.vectors import VectorLayout


def _two_stacks_of_one_weight() -> Graph:
    """x @ B1 and x @ B2, each B five 64-row layers of one weight stacked along K: B1 takes layer 0 five
    times (five slice nodes), B2 layers 0 to 4. The same views but for the slices' starts, and a vector
    of B1 transposed draws from one stored row of the weight where one of B2's draws from five."""
    graph = Graph("stacks")
    weight = graph.add_param("w", TensorType((5, 64, 8), DType.F32), weight=True)
    x = graph.add_param("x", TensorType((1, 320), DType.F32))
    for layers in ((0, 0, 0, 0, 0), (0, 1, 2, 3, 4)):
        parts = []
        for layer in layers:
            piece = graph.add("slice", [weight], {"starts": (layer, 0, 0), "stops": (layer + 1, 64, 8),
                                                  "steps": (1, 1, 1)})
            parts.append(graph.add("reshape", [piece], {"shape": (64, 8)}))
        graph.outputs.append(graph.add("matmul", [x, graph.add("concat", parts, {"axis": 0})]))
    return graph


def _fanin_decisions(plan) -> list[tuple[bool, bool]]:
    """Per matmul whose B is not a tensor stored transposed: (the plan gathers B's vectors on the fly, its
    fan-in worked out afresh allows that)."""
    decisions = []
    for node, payload in plan.graph.nodes():
        b = plan.graph.operands(node)[1] if payload.op == "matmul" else None
        if b is not None and not (b in plan.names and plan.tensors[plan.names[b]].layout.transposed):
            decisions.append((plan.bt[node] is None, bt_fanin(plan, b) <= FANIN_LIMIT))
    return decisions


def test_a_weight_sliced_twice_keeps_its_slices_starts_in_the_fanin_key() -> None:
    plan = make_plan(_two_stacks_of_one_weight(), evaluate=False)
    bs = [plan.graph.operands(n)[1] for n, p in plan.graph.nodes() if p.op == "matmul"]
    assert [bt_fanin(plan, b) for b in bs] == [1, 5]
    assert view_key(plan, bs[0]) != view_key(plan, bs[1])
    assert _fanin_decisions(plan) == [(True, True), (False, False)]


def test_layers_share_fanin_keys_and_decide_as_if_each_were_worked_out(lpu) -> None:
    plan = make_plan(lpu.example_graph("llama_decode", L=3), evaluate=False)
    bs = [plan.graph.operands(n)[1] for n, p in plan.graph.nodes() if p.op == "matmul"]
    assert len({view_key(plan, b) for b in bs}) < len(bs)
    decisions = _fanin_decisions(plan)
    assert len(decisions) > 3 and all(gathers == allowed for gathers, allowed in decisions)


def test_stages_priced_once_per_signature_price_as_each_stage_alone(lpu) -> None:
    machine = load_machine().with_sram(300_000)  # several chips: some layers' stages copy values in
    counted = count_program(lpu.example_graph("llama_decode", L=3), machine)
    assert counted.partition.chips > 1 and any(count.transfers for count in counted.stages)
    assert len(set(counted.same_as)) < len(counted.stages)
    kernels, _, total = _counted_kernels(counted, machine)
    expected_total = 0.0
    for stage, count, kernel in zip(counted.plan.stages, counted.stages, kernels):
        cycles = count.cycles(machine)
        expected_total += cycles
        assert kernel.cost == _cost(counted.plan, stage, count, cycles, machine, count.depth)
        assert kernel.note == _note(count)
    assert total == expected_total


def test_what_a_stage_reads_is_kept_but_handed_out_fresh(lpu) -> None:
    plan = make_plan(lpu.example_graph("llama_decode"), evaluate=False)
    stage = next(s for s in plan.stages if s.kind == "matmul")
    first = read_ranges(plan, stage)
    expected = {name: list(ranges) for name, ranges in first.items()}
    for ranges in first.values():
        ranges.append((10**9, 10**9 + 1))
    assert read_ranges(plan, stage) == expected


def test_held_ranges_are_merged_only_when_something_is_new() -> None:
    layout = SimpleNamespace(vectors=200, width=2, lanes=320)
    plan = SimpleNamespace(tensors={"t": SimpleNamespace(role="weight", layout=layout)})
    rng = random.Random(0)
    for _ in range(200):
        chips = _Chips(plan)  # type: ignore[arg-type]
        everything: list[tuple[int, int]] = []
        load = 0
        for _ in range(rng.randint(1, 8)):
            ranges = []
            for _ in range(rng.randint(0, 3)):
                first = rng.randint(0, 60)
                ranges.append((first, first + rng.randint(0, 12)))  # empty ranges too
            gaps = sum(hi - lo for first, end in ranges
                       for lo, hi in _missing(tuple(_merge(everything)) if everything else (), first, end))
            everything += ranges
            load += gaps * 640
            assert chips.need(0, {"t": ranges}, exact=True) == gaps * 640
            chips.put(0, {"t": ranges}, exact=True)
            assert chips.held[0]["t"] == tuple(_merge(everything))
        assert chips.load[0] == load


def test_box_rows_are_the_least_and_greatest_rows_of_the_box() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 6, rank))
        kind = rng.choice(["plain", "transposed", "keepdims", "splat"])
        stored = shape[:1] + (1,) + shape[1:] if kind == "keepdims" else None
        if kind == "splat":
            shape = (1,) * rank
        layout = VectorLayout(shape, DType.F32, stored_shape=stored, transposed=kind == "transposed" and rank > 1,
                              splat=kind == "splat", lanes=int(rng.choice([2, 3, 320])))
        box = tuple(tuple(sorted(int(i) for i in rng.integers(0, d, 2))) for d in shape)
        plan = SimpleNamespace(tensors={"t": SimpleNamespace(layout=layout)})
        elements = np.array(list(itertools.product(*(range(lo, hi + 1) for lo, hi in box))))
        rows, _ = layout.locate(np.ravel_multi_index(tuple(elements.T), shape))
        expected = (int(rows.min()) * layout.chunks, (int(rows.max()) + 1) * layout.chunks)
        assert _box_rows(plan, "t", box) == expected  # type: ignore[arg-type]
        assert layout.row_of(tuple(lo for lo, _ in box)) == int(rows.min())


def test_layout_sizes_are_worked_out_once_and_take_no_part_in_equality() -> None:
    layout = VectorLayout((3, 700), DType.BF16, transposed=True)
    assert (layout.matrix_shape, layout.rows, layout.cols, layout.chunks, layout.vectors) == ((700, 3), 700, 3, 1, 700)
    assert layout == VectorLayout((3, 700), DType.BF16, transposed=True)
    assert dataclasses.replace(layout, transposed=False).vectors == 3 * 3
    assert "rows" not in repr(layout)


def test_the_frozen_graph_answers_as_the_graph_does(lpu) -> None:
    graph = lpu.example_graph("decoder_layer")
    frozen = FrozenGraph(graph)
    for node in graph.topological_order():
        assert frozen.operands(node) == graph.operands(node)
        assert frozen.uses(node) == graph.uses(node)
        assert frozen.users(node) == graph.users(node)


def test_the_tensors_a_stage_reads_are_the_keys_of_its_ranges_in_order(lpu) -> None:
    plan = make_plan(lpu.example_graph("llama_decode", B=2), evaluate=False)
    for stage in plan.stages:
        assert read_tensors(plan, stage) == list(read_ranges(plan, stage))
    fresh = make_plan(lpu.example_graph("llama_decode", B=2), evaluate=False)
    for stage in fresh.stages:  # asked first, before `read_ranges`
        assert read_tensors(fresh, stage) == list(read_ranges(fresh, stage))


def test_measuring_then_committing_holds_what_putting_holds() -> None:
    layouts = {"t": SimpleNamespace(vectors=200, width=2, lanes=320), "v": SimpleNamespace(vectors=50, width=4, lanes=320)}
    plan = SimpleNamespace(tensors={"t": SimpleNamespace(role="weight", layout=layouts["t"]),
                                    "v": SimpleNamespace(role="value", layout=layouts["v"])})
    rng = random.Random(1)
    for _ in range(100):
        put, measured = _Chips(plan), _Chips(plan)  # type: ignore[arg-type]
        for _ in range(rng.randint(1, 8)):
            reads = {}
            for name in rng.sample(["t", "v"], rng.randint(1, 2)):
                first = rng.randint(0, 40)
                reads[name] = [(first, first + rng.randint(0, 12))]
            exact = rng.random() < 0.5
            added, changes = measured.measure(0, reads, exact)
            assert added == put.need(0, reads, exact)
            put.put(0, reads, exact)
            measured.commit(0, added, changes)
            assert measured.held == put.held and measured.load == put.load


def test_a_tensor_split_tried_for_its_chip_count_answers_as_the_whole_placement(lpu) -> None:
    """`_tensor_need` tries chip counts only until a chip overflows; whether each count fits, and why not,
    is what placing every stage says (checked on capacities that refuse some counts and take others)."""
    from targets.lpu.spread import _c0_floor, _split_chunks, _tensor_need, _tensor_on
    plan = make_plan(lpu.example_graph("mlp", B=2), evaluate=False)
    sizes = sorted(_tensor_on(plan, 2**40, count).chip_bytes[0] for count in (1, 2, 3))
    answers = set()
    for capacity in [sizes[0] // 4, sizes[0] // 2, sizes[0] - 1, sizes[0], sizes[-1], 2**40]:
        for count in range(1, 8):
            whole, trial = _tensor_on(plan, capacity, count), _tensor_on(plan, capacity, count, trial=True)
            assert bool(whole.refused) == bool(trial.refused)
            assert ("would hold" in whole.refused) == ("would hold" in trial.refused)
            if not whole.refused:
                assert trial.chip_bytes == whole.chip_bytes and trial.ranges == whole.ranges
            answers.add((bool(whole.refused), "would hold" in whole.refused))
        expected = None
        for count in range(1, 9):  # `_tensor_need` as it was: every count placed whole
            whole = _tensor_on(plan, capacity, count)
            if not whole.refused or "would hold" not in whole.refused:
                expected = None if whole.refused else count
                break
        assert _tensor_need(plan, capacity, 1) == expected
    assert answers == {(False, False), (True, True), (True, False)}  # fits, too full, not wide enough
    floor = _c0_floor(plan, _split_chunks(plan))
    assert 0 < floor <= min(_tensor_on(plan, 2**40, count).chip_bytes[0] for count in range(1, 8))
    assert _tensor_need(plan, floor - 1, 1) is None  # c0 overflows at any count


def test_where_time_goes_adds_the_stages_bounds_as_pairwise_sums_do() -> None:
    """`_where_time_goes` sums the stages' `bound` amounts in one pass; that must be `a + b + ...` (a new
    Amounts per stage) bit for bit, keys in the order they first appear, a -0.0 among them included."""
    from targets.cost import Amounts, Cost, KernelReport
    from targets.lpu.estimate import _where_time_goes

    rng = random.Random(7)
    names = ["compute", "mem:sram", "vector", "interconnect", "pipeline"]
    bounds = [Amounts.of({rng.choice(names): rng.choice([-0.0, 0.0, 1e-9, 3.3e-7, rng.random() * 1e-5])})
              for _ in range(300)] + [Amounts()]
    kernels = [KernelReport(f"s{i}", "matmul", Cost(bound=b), 1, 0, "") for i, b in enumerate(bounds)]
    pairwise = Amounts()
    for bound in bounds:
        pairwise = pairwise + bound
    total = pairwise.total()
    expected = ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in
                         sorted(pairwise.items, key=lambda item: -item[1]))
    assert _where_time_goes(kernels) == ("where time goes (latency by the resource that bounds each stage): "
                                         + expected)
    assert Amounts.of(item for b in bounds for item in b.items) == pairwise  # the sums themselves, exactly
    assert _where_time_goes(kernels[-1:]) == "where time goes: nothing ran"
