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
    `budget` PEs; the floors when even they exceed it."""
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

    # the least bound on the busiest region the budget allows, with nothing spent on the sum
    lo, hi = 1e-9, float(w.max()) + 1.0
    for _ in range(_STEPS):
        middle = math.sqrt(lo * hi)
        lo, hi = (lo, middle) if sizes(middle, math.inf).sum() <= budget else (middle, hi)
    least = hi
    best, best_cost = sizes(least, math.inf), math.inf
    for factor in T_LADDER:
        bound = least * factor
        lo, hi = 1e-30, float((w / r).max()) + 1.0  # multipliers: hi gives sqrt(...) <= 1
        if sizes(bound, hi).sum() > budget:
            continue
        for _ in range(_STEPS):
            middle = math.sqrt(lo * hi)
            lo, hi = (middle, hi) if sizes(bound, middle).sum() > budget else (lo, middle)
        chosen = sizes(bound, hi)
        cost = float((w / (r * chosen)).sum() + (w / chosen).max())
        if cost < best_cost:
            best, best_cost = chosen, cost
    return [int(v) for v in best]
