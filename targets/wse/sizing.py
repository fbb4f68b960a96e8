"""How many PEs each region of a wafer pipeline gets, given its work, its memory floor and a PE budget.

A region r needs `work[r]` cycles on one PE (FMAC and vector work alike, plus what it receives:
`Pricer.work`), streams `rows[r]` independent rows, must keep at least `floor[r]` PEs (to hold its data)
and gains nothing beyond `cap[r]` (where its own hops outgrow its compute). On n PEs it is busy
work / n cycles and hands its first row on after work / (rows x n). What the sizing minimises is the
latency of one step through the pipeline, the as-given figure every target reports:

    J(n) = sum_r work[r] / (rows[r] n[r])  +  max_r work[r] / n[r]
           (first-row times along the chain)   (the busiest region draining its remaining rows)

subject to sum_r n[r] <= budget and floor <= n <= cap. Counting every region in the sum treats the
program as a chain, which a layer stack is up to its parallel branches (q/k/v, gate/up), a slight
over-weighting of those. For a fixed bound T on the busiest region, the minimum of the sum under the
budget is the classic square-root allocation (Lagrange): n[r] = sqrt(work[r] / (rows[r] lam)), raised to
work[r] / T and clamped to [floor, cap], with the multiplier `lam` found by bisection so the budget is
just met. `allocate` tries a ladder of T from the smallest the budget allows upwards and keeps the
allocation with the least J. A region whose work is large but whose memory is tiny (a softmax over 4,096
scores: 2 PEs of memory, tens of millions of vector ops) thus gets the PEs its work asks for, and a
region that streams many rows gets fewer than one that streams one row of the same work.
"""

from __future__ import annotations

import math

import numpy as np

T_LADDER = (1.0, 1.25, 1.6, 2.0, 3.0, 5.0, 8.0, 16.0, 64.0, math.inf)  # bounds on the busiest, x the least
_STEPS = 48  # bisection steps (geometric: far finer than one PE)


def allocate(work: list[float], rows: list[int], floor: list[int], cap: list[int], budget: float) -> list[int]:
    """PEs per region (in the order given) minimising the step latency J (module docstring) within
    `budget` PEs; the floors when even they exceed it.

    A region's size depends on the budget only through the multiplier and the bound, which every region
    shares, and otherwise on its own (work, rows, floor, cap): regions alike in those four (the same
    region of each layer of a model) get the same size. The bisections run on the distinct regions, each
    counted as often as it occurs; the PE totals they compare with the budget are sums of whole numbers,
    exact in any order. The latencies compared between bounds are taken over every region, in order, as
    given."""
    w = np.maximum(np.asarray(work, dtype=float), 1e-9)
    r = np.maximum(np.asarray(rows, dtype=float), 1.0)
    low = np.asarray(floor, dtype=float)
    high = np.maximum(np.asarray(cap, dtype=float), low)
    if not len(w) or low.sum() >= budget:
        return [int(v) for v in low]
    distinct: dict[tuple[float, float, float, float], int] = {}  # (work, rows, floor, cap) -> its number
    first: list[int] = []  # where each distinct region first occurs
    slots: list[int] = []  # each region's distinct number
    for position, key in enumerate(zip(w.tolist(), r.tolist(), low.tolist(), high.tolist())):
        number = distinct.get(key)
        if number is None:
            number = distinct[key] = len(first)
            first.append(position)
        slots.append(number)
    slot = np.array(slots)
    count = np.bincount(slot, minlength=len(first)).astype(float)
    dw, dr, dlow, dhigh = w[first], r[first], low[first], high[first]

    def least_sizes(bound: float) -> np.ndarray:
        """The sizes of the distinct regions that keep each within `bound` cycles (and above its floor);
        ceil(max(x, y)) = max(ceil(x), ceil(y)), so this is the part of `sizes` that does not move with
        the multiplier, computed once per bound."""
        return dlow if bound == math.inf else np.maximum(np.ceil(dw / bound), dlow)

    def sizes(least_size: np.ndarray, lam: float) -> np.ndarray:
        """The size of each distinct region: the square-root allocation for `lam`, at least
        `least_size`, at most the cap (clipped by the ufuncs: `np.clip`'s wrappers cost more than the
        arithmetic on a few dozen regions)."""
        if lam == math.inf:
            return np.minimum(least_size, dhigh)
        return np.minimum(np.maximum(np.ceil(np.sqrt(dw / (dr * lam))), least_size), dhigh)

    def total(least_size: np.ndarray, lam: float) -> float:
        return float(sizes(least_size, lam) @ count)

    # the least bound on the busiest region the budget allows, with nothing spent on the sum
    lo, hi = 1e-9, float(w.max()) + 1.0
    for _ in range(_STEPS):
        middle = math.sqrt(lo * hi)
        lo, hi = (lo, middle) if total(least_sizes(middle), math.inf) <= budget else (middle, hi)
    least = hi
    best, best_cost = sizes(least_sizes(least), math.inf)[slot], math.inf
    for factor in T_LADDER:
        bound = least * factor
        least_size = least_sizes(bound)
        lo, hi = 1e-30, float((w / r).max()) + 1.0  # multipliers: hi gives sqrt(...) <= 1
        if total(least_size, hi) > budget:
            continue
        for _ in range(_STEPS):
            middle = math.sqrt(lo * hi)
            lo, hi = (middle, hi) if total(least_size, middle) > budget else (lo, middle)
        chosen = sizes(least_size, hi)[slot]
        cost = float((w / (r * chosen)).sum() + (w / chosen).max())
        if cost < best_cost:
            best, best_cost = chosen, cost
    return [int(v) for v in best]
