"""Pricing does each piece of work once for regions that are alike (the layers of a model) and reads each
node once: what it reuses must be what it would have computed. The sizing search over distinct regions
gives the sizes of the plain search over every region; a split, bytes per PE, memory split and cycles
remembered for one region are what a fresh `Pricer` computes for any region with the same sizing key; the
partition read in one pass has the outputs and sources of their definitions."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from compiler.driver import compile
from targets.base import get_target
from targets.wse.analysis import Analysis, default_state
from targets.wse.pricing import Priced, Pricer
from targets.wse.regions import partition
from targets.wse.sizing import T_LADDER, allocate
from targets.wse.sparsity import Sparsity

SMALL_LLAMA = {"L": 4, "D": 256, "Hq": 4, "Hkv": 2, "Dh": 64, "F": 512, "V": 1024, "T": 512, "B": 2}


def _plain_allocate(work: list[float], rows: list[int], floor: list[int], cap: list[int],
                    budget: float) -> list[int]:
    """The sizing search over every region, as `allocate` is specified (module docstring of sizing)."""
    w = np.maximum(np.asarray(work, dtype=float), 1e-9)
    r = np.maximum(np.asarray(rows, dtype=float), 1.0)
    low = np.asarray(floor, dtype=float)
    high = np.maximum(np.asarray(cap, dtype=float), low)
    if not len(w) or low.sum() >= budget:
        return [int(v) for v in low]

    def sizes(bound: float, lam: float) -> np.ndarray:
        wanted = np.sqrt(w / (r * lam)) if lam < math.inf else np.zeros_like(w)
        if bound < math.inf:
            wanted = np.maximum(wanted, w / bound)
        return np.clip(np.ceil(wanted), low, high)

    lo, hi = 1e-9, float(w.max()) + 1.0
    for _ in range(48):
        middle = math.sqrt(lo * hi)
        lo, hi = (lo, middle) if sizes(middle, math.inf).sum() <= budget else (middle, hi)
    least = hi
    best, best_cost = sizes(least, math.inf), math.inf
    for factor in T_LADDER:
        bound = least * factor
        lo, hi = 1e-30, float((w / r).max()) + 1.0
        if sizes(bound, hi).sum() > budget:
            continue
        for _ in range(48):
            middle = math.sqrt(lo * hi)
            lo, hi = (middle, hi) if sizes(bound, middle).sum() > budget else (lo, middle)
        chosen = sizes(bound, hi)
        cost = float((w / (r * chosen)).sum() + (w / chosen).max())
        if cost < best_cost:
            best, best_cost = chosen, cost
    return [int(v) for v in best]


@pytest.mark.parametrize("seed", range(40))
def test_sizing_distinct_regions_gives_the_plain_search(seed: int) -> None:
    rng = random.Random(seed)
    kinds = [(rng.choice([1e-12, rng.uniform(1, 10) * 10 ** rng.randint(0, 10)]),
              rng.choice([1, 2, 64, 4096]), rng.randint(1, 300)) for _ in range(rng.randint(1, 8))]
    regions = [kind for kind in kinds for _ in range(rng.randint(1, 12))]  # layers repeat each region
    rng.shuffle(regions)
    work = [w for w, _, _ in regions]
    rows = [r for _, r, _ in regions]
    floor = [f for _, _, f in regions]
    cap = [max(f, int((w / 2) ** (2 / 3))) for w, _, f in regions]
    budget = sum(floor) * rng.choice([0.9, 1.0, 1.2, 3.0, 50.0]) + rng.uniform(0, 10)
    assert allocate(work, rows, floor, cap, budget) == _plain_allocate(work, rows, floor, cap, budget)


@pytest.fixture(scope="module")
def llama_facts():
    graph = compile("examples/llama_decode.nk", target="ref", defines=SMALL_LLAMA, for_pricing=True).graph
    machine = get_target("wse").machine
    parts = partition(graph)
    facts = Analysis(graph, parts, machine, Sparsity(graph, machine), default_state(graph)).facts
    return graph, parts, machine, facts


def test_regions_of_identical_layers_share_a_sizing_key(llama_facts) -> None:
    _, _, _, facts = llama_facts
    active = [f for f in facts if f.per_step and not f.merged]
    keys = {f.sizing_key for f in active}
    assert len(keys) < len(active) / 2  # four layers: most regions have three others alike


def test_what_a_pricer_remembers_is_what_a_fresh_one_computes(llama_facts) -> None:
    _, _, machine, facts = llama_facts
    shared = Pricer(machine)
    for f in [f for f in facts if f.per_step and not f.merged]:
        memory = shared.memory_split(f)
        assert memory == Pricer(machine).memory_split(f)
        for pes in (1, 7, 64, 1000):
            split = shared.best_split(f, pes)
            fresh = Pricer(machine)
            assert split == fresh.best_split(f, pes)
            assert shared.bytes_per_pe(f, split) == fresh.bytes_per_pe(f, split)
            remembered, computed = Priced(f, split), Priced(f, split)
            shared.cycles(remembered)
            fresh.cycles(computed)
            assert remembered == computed


def test_partition_outputs_and_sources_follow_their_definitions(llama_facts) -> None:
    graph, parts, _, _ = llama_facts
    outputs = set(graph.outputs)
    for region in parts.regions:
        members = set(region.members)
        if region.group is not None:
            leaving = tuple(n for n in region.members
                            if n in outputs or any(u not in members for u in graph.users(n)))
            assert region.outputs == leaving
        for source in region.sources:
            assert source not in members and source not in parts.folded
            if source in parts.region_of:  # regions come in a topological order of the region graph
                assert parts.region_of[source] < region.id
        assert all(isinstance(parts.operands[n], tuple) and list(parts.operands[n]) == graph.operands(n)
                   for n in region.members)
