"""Reduction kernels: reductions over the same axes of one domain, with prologue and epilogue.

`ir.groups` accepts a REDUCTION group when every reduction reduces the same axes of inputs of one
shape D, the other members have shape D or the reduced shape R, and R values feed D members only with
the reduced axes kept. So one kernel can walk the kept positions (independently: a parallel loop) and,
for each, run the reductions in topological order (each later one may read the earlier results as
scalars), then store the R-shaped and D-shaped outputs. A single reduction node is the one-member case.

Row caching (`ReductionSpec.row_candidates`): a D-shaped value read by two or more of the passes over a
row (the stages' inputs and the D-shaped epilogue) is offered for caching in a local buffer, with the
number of stages it waits for (`ready_after`).
"""

from __future__ import annotations

import math

import networkx as nx

from ir import ops
from ir.loops import Var
from passes.lowering.context import KernelContext
from passes.lowering.scalar_ops import INLINE_SOURCES
from passes.lowering.spec import ReduceStage, ReductionSpec, accumulator_dtype


def build_reduction(ctx: KernelContext, domain: tuple[int, ...], reduce_axes: tuple[int, ...]) -> ReductionSpec:
    graph = ctx.graph
    count = math.prod(domain[a] for a in reduce_axes)
    stages = []
    for node in ctx.unit.live:
        payload = graph.node(node)
        if ops.in_group(payload.op, ops.REDUCTION):
            result = Var(ctx.names.fresh(f"red{node}"), payload.type.dtype)
            stages.append(ReduceStage(node, payload.op.removeprefix("reduce_"), payload.type.dtype,
                                      accumulator_dtype(payload.type.dtype), count, result))
    domain_outputs = tuple(slot for slot in ctx.outputs if slot.buffer.shape == domain)
    reduced_outputs = tuple(slot for slot in ctx.outputs if slot.buffer.shape != domain)
    elemental = ctx.elemental({stage.node: stage.result for stage in stages}, domain, reduce_axes)
    candidates, suggested, ready = _row_candidates(ctx, domain, [s.node for s in stages],
                                                   [s.node for s in domain_outputs])
    return ReductionSpec(name=ctx.name, nodes=ctx.unit.live, group=ctx.unit.group, reads=ctx.reads,
                         writes=tuple(slot.buffer for slot in ctx.outputs), names=ctx.names, elemental=elemental,
                         domain=domain, reduce_axes=reduce_axes, stages=tuple(stages),
                         reduced_outputs=reduced_outputs, domain_outputs=domain_outputs,
                         row_candidates=candidates, row_suggestions=suggested,
                         _ready=ready)


def _row_candidates(ctx: KernelContext, domain: tuple[int, ...], stages: list[int],
                    domain_outputs: list[int]) -> tuple[tuple[int, ...], tuple[int, ...], dict[int, int]]:
    """D-shaped values read by more than one pass over a row, the suggested subset, and how many
    stages each waits for.

    The suggestion is greedy, from the last candidate back: keep a candidate if two or more passes
    still reach it when the passes stop at the candidates already kept (softmax keeps `exp(x - max)`,
    layernorm `x - mean`, rmsnorm `x`)."""
    graph = ctx.graph
    stage_index = {node: k for k, node in enumerate(stages)}
    roots = [graph.operands(node) for node in stages] + [domain_outputs]

    def counts(stop: set[int]) -> dict[int, int]:
        result: dict[int, int] = {}
        for pass_roots in roots:
            for node in _reached(ctx, pass_roots, stage_index.keys() | stop):
                result[node] = result.get(node, 0) + 1
        return result

    def eligible(node: int) -> bool:
        payload = graph.node(node)
        return payload.type.shape == domain and payload.op not in INLINE_SOURCES

    first = counts(set())
    order = graph.topological_order()
    candidates = tuple(node for node in order if first.get(node, 0) >= 2 and eligible(node))
    kept: set[int] = set()
    for node in reversed(candidates):
        if counts(kept).get(node, 0) >= 2:
            kept.add(node)
    suggested = tuple(node for node in candidates if node in kept)
    ready = {}
    for node in candidates:
        waits = [stage_index[a] for a in nx.ancestors(graph.nx, node) if a in stage_index]
        ready[node] = max(waits) + 1 if waits else 0
    return candidates, suggested, ready


def _reached(ctx: KernelContext, roots: list[int], stop: set[int]) -> set[int]:
    """Values a pass starting at `roots` reads: through members, not past `stop` (reached, not entered)."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in ctx.members and node not in stop:
            stack.extend(ctx.graph.operands(node))
    return seen
