"""prune (graph IR, opt-in): magnitude pruning of bound weights, and the error it introduces.

    --passes "prune{pattern=2:4},sparsify,..."          every bound matrix weight to 2:4
    --passes "prune{weights=w1+w2,density=0.1},..."     w1 and w2 keep their 10% largest entries

For each chosen weight bound to data (`--weights`; all bound matrix weights when `weights` is not
given, names separated by '+'), the pass zeroes the entries of smallest magnitude: with `pattern=N:M`
the M-N smallest of every M consecutive entries of each row (the layout N:M storage and sparse tensor
cores need), with `density=D` all but the round(D x size) largest of the matrix (ties broken by
position, so the result is deterministic). The pruned data replaces the weight's data; its declared
format still holds it (pruning only adds zeros, so an N:M pattern the data had is kept), and
`sparsify`, after it, chooses the format for the new zeros.

Pruning changes the program's results, on purpose: that is why the pass is opt-in, and why it
measures the change. It runs the reference interpreter on the graph before and after, on
`samples` draws of random inputs (`compiler.inputs.random_inputs`, seeded), and reports per output
the largest absolute difference and the relative error ||after - before|| / ||before|| (the
statistics also hold them as counters: `max_abs_error`, `relative_error`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir.graph import Graph
from ir.interpreter import run_graph
from passes.context import PassContext, plural
from passes.registry import Pass, register_pass


@dataclass(frozen=True)
class Options:
    weights: str = ""  # names separated by '+'; empty: every bound matrix weight
    pattern: str = ""  # N:M, e.g. 2:4
    density: float | None = None  # fraction of entries to keep
    samples: int = 1  # random input draws the error is measured on
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pattern and self.density is not None:
            raise ValueError("give one of pattern=N:M and density=D, not both")
        if self.pattern:
            self.nm()
        if self.density is not None and not 0.0 <= self.density <= 1.0:
            raise ValueError(f"density must be between 0 and 1, got {self.density}")
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")

    def nm(self) -> tuple[int, int]:
        try:
            n, m = (int(part) for part in self.pattern.split(":"))
        except ValueError:
            raise ValueError(f"pattern must be N:M like 2:4, got '{self.pattern}'") from None
        if not 0 < n <= m:
            raise ValueError(f"pattern N:M needs 0 < N <= M, got {self.pattern}")
        return n, m

    def names(self) -> list[str]:
        return [name for name in self.weights.split("+") if name]


def prune_nm(data: np.ndarray, n: int, m: int) -> np.ndarray:
    """`data` with the m-n smallest magnitudes of every m consecutive entries of each row zeroed."""
    rows, cols = data.shape
    groups = -(-cols // m)
    padded = np.zeros((rows, groups * m), dtype=data.dtype)
    padded[:, :cols] = data
    grouped = padded.reshape(rows, groups, m)
    order = np.argsort(-np.abs(grouped), axis=2, kind="stable")  # largest first, earlier on ties
    keep = np.zeros(grouped.shape, dtype=bool)
    np.put_along_axis(keep, order[:, :, :n], True, axis=2)
    pruned = np.where(keep, grouped, np.zeros((), dtype=data.dtype)).reshape(rows, groups * m)[:, :cols]
    return np.ascontiguousarray(pruned)


def prune_density(data: np.ndarray, density: float) -> np.ndarray:
    """`data` with all but its round(density x size) largest magnitudes zeroed."""
    flat = data.reshape(-1)
    keep = int(round(density * flat.size))
    result = np.zeros_like(flat)
    if keep:
        order = np.argsort(-np.abs(flat), kind="stable")[:keep]
        result[order] = flat[order]
    return result.reshape(data.shape)


def measure_error(before: Graph, after: Graph, samples: int, seed: int) -> list[tuple[float, float]]:
    """(max |after - before|, ||after - before|| / ||before||) per output, over `samples` input draws."""
    from compiler.inputs import random_inputs
    worst: list[tuple[float, float]] = [(0.0, 0.0)] * len(before.outputs)
    for sample in range(samples):
        inputs = random_inputs(before, seed + sample)
        expected = run_graph(before, {**inputs, **before.weight_data})
        actual = run_graph(after, {**inputs, **after.weight_data})
        for index, (want, got) in enumerate(zip(expected, actual)):
            want64, got64 = np.asarray(want, np.float64), np.asarray(got, np.float64)
            difference = got64 - want64
            largest = float(np.abs(difference).max(initial=0.0))
            scale = float(np.linalg.norm(want64))
            relative = float(np.linalg.norm(difference)) / scale if scale else float(largest > 0)
            worst[index] = (max(worst[index][0], largest), max(worst[index][1], relative))
    return worst


@register_pass
class Prune(Pass):
    name = "prune"
    summary = "zero the smallest-magnitude entries of bound weights (to N:M or a density); reports the error"
    Options = Options

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        from compiler.diagnostics import CompileError, Diagnostic
        if not self.options.pattern and self.options.density is None:
            raise CompileError([Diagnostic("prune needs pattern=N:M or density=D, e.g. prune{pattern=2:4}")])
        bound = {graph.node(p).attr("name"): p for p in graph.params
                 if graph.node(p).attr("name") in graph.weight_data and graph.node(p).type.rank == 2}
        chosen = self.options.names() or sorted(bound)
        missing = [name for name in chosen if name not in bound]
        if missing:
            raise CompileError([Diagnostic(f"prune: {', '.join(missing)} is not a matrix weight bound to data "
                                           f"(bound: {', '.join(sorted(bound)) or 'none; use --weights'})")])
        if not chosen:
            ctx.report("no weights bound to data: nothing pruned", pruned=0)
            return graph
        result = graph.copy()
        lines = []
        for name in chosen:
            param = bound[name]
            data = np.asarray(graph.weight_data[name])
            if self.options.pattern:
                n, m = self.options.nm()
                pruned = prune_nm(data, n, m)
                how = f"to {n}:{m}"
            else:
                pruned = prune_density(data, self.options.density)
                how = f"to density {self.options.density:g}"
            result.weight_data[name] = pruned
            before, after = np.count_nonzero(data), np.count_nonzero(pruned)
            lines.append(f"{name}: {how}, {before} -> {after} non-zeros ({after / max(1, data.size):.1%})")
        errors = measure_error(graph, result, self.options.samples, self.options.seed)
        worst_abs = max((e[0] for e in errors), default=0.0)
        worst_rel = max((e[1] for e in errors), default=0.0)
        error_lines = [f"output {i}: max abs error {a:.3g}, relative error {r:.3g}" for i, (a, r) in enumerate(errors)]
        ctx.report(f"{plural(len(chosen), 'weight')} pruned; error on {plural(self.options.samples, 'random input')} "
                   "(reference interpreter, before vs after):" + "".join(f"\n  {l}" for l in lines + error_lines),
                   pruned=len(chosen), max_abs_error=worst_abs, relative_error=worst_rel)
        return result
