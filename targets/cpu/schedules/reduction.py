"""Reduction kernels: vector accumulators, a horizontal reduce, kept positions on the threads.

Two shapes, by whether the domain's last (contiguous) axis is reduced:

Rows (last axis reduced: softmax, layernorm, sums over rows). Kept positions run in parallel; in
each, every stage is one pass over the row with V partial accumulators in vector registers:

    for k in 0..kept parallel {
      local row: f32[L]                                  rows the spec suggests caching (if small)
      local acc: f32[V]; acc[v] = init                   (V = 2W lanes, or W with transcendental math)
      for j0 .. { for v vectorize { [row[j] = value]; acc[v] = combine(acc[v], input(j)) } }   (+ masked tail)
      for w in V/2, V/4, .. 1 { for v in 0..w vectorize { acc[v] = combine(acc[v], acc[v + w]) } }
      let result = finalize(acc[0])
      ... next stage ...; reduced outputs; for j .. vectorize { domain outputs }
    }

A cached row is filled in the pass of the first stage that may compute it (`ready_after`), in the
same loop iteration that accumulates, so softmax reads x twice (max, then exp + sum) and its row of
exp once more from L1 for the division. Columns (last axis kept: reductions over leading axes): the
vector lanes are W neighbouring kept positions, each with a lane-private accumulator, and the reduced
axes are serial loops inside; every access along the last axis is then contiguous.

Legality: kept positions are independent (`ReductionSpec`); `combine` is associative and commutative
up to rounding, so W partial accumulators combined pairwise give the reduction (summation order
differs from numpy's pairwise sum by rounding only).
"""

from __future__ import annotations

import math

from ir import ops
from ir.dtypes import DType
from ir.loops import (Allocate, Buffer, Const, Expr, For, Let, Load, LoopKind, Scope, Seq, Stmt, Store, Var, add,
                      seq)
from passes.lowering.spec import ReductionSpec, RowCache
from targets.cpu.schedules.common import Machine, loop_kind, serial_nest, unflatten, vector_range


def schedule_reduction(spec: ReductionSpec, machine: Machine) -> Stmt:
    if spec.domain and len(spec.domain) - 1 in spec.reduce_axes:
        return _rows(spec, machine)
    return _columns(spec, machine)


# -- rows ---------------------------------------------------------------------------------------


def _rows(spec: ReductionSpec, machine: Machine) -> Stmt:
    # Two registers per vector give two independent accumulator chains (a max or sum over loads is
    # bound by the chain's latency); kernels with transcendental math are bound by their throughput
    # and keep one register per vector, leaving registers for the polynomial constants.
    graph = spec.elemental.graph
    heavy = any(ops.in_group(graph.node(node).op, ops.TRANSCENDENTAL) for node in spec.nodes)
    lanes = machine.lanes(DType.F32) * (1 if heavy else 2)
    kept_count = math.prod(spec.kept_shape)
    work = math.prod(spec.domain) * max(1, len(spec.stages))
    flat = spec.fresh("k")
    kept = unflatten(Var(flat), spec.kept_shape)
    body = _RowKernel(spec, machine, lanes, kept).build()
    return For(flat, Const(0), Const(kept_count), body, loop_kind(machine.parallel(work) and kept_count > 1))


class _RowKernel:
    """The statements for one kept position of a rows-shaped reduction."""

    def __init__(self, spec: ReductionSpec, machine: Machine, lanes: int, kept: tuple[Expr, ...]) -> None:
        self.spec = spec
        self.lanes = lanes
        self.kept = kept
        row_bytes = math.prod(spec.reduce_shape) * 4
        self.cached = spec.row_suggestions if row_bytes <= machine.l2_bytes // 4 else ()

    def build(self) -> Stmt:
        self.rows = {node: self.spec.row_buffer(node) for node in self.cached}
        body = self._stage(0, {}, self.rows)
        for row in self.rows.values():
            body = Allocate(row, body)
        return body

    def _row_pass(self, body) -> Stmt:
        """One pass over the reduced index space: outer reduced axes serial, the last vectorized."""
        spec = self.spec
        outer = spec.reduce_shape[:-1]
        last = spec.reduce_shape[-1]
        return serial_nest(spec, outer, "r", lambda outer_index: vector_range(
            spec, last, self.lanes, lambda j, lane: body(outer_index + (j,), lane))) if outer else \
            vector_range(spec, last, self.lanes, lambda j, lane: body((j,), lane))

    def _stage(self, stage: int, cache: RowCache, rows: dict[int, Buffer]) -> Stmt:
        spec = self.spec
        filling = [node for node in self.cached if spec.ready_after(node) == stage and node not in cache]
        after_fill = {**cache, **{node: rows[node] for node in filling}}
        if stage == len(spec.stages):
            fills = self._row_pass(lambda red, lane: self._fills(filling, red, cache)) if filling else Seq(())
            return seq(fills, self._epilogue(after_fill))
        current = spec.stages[stage]
        acc = Buffer(spec.fresh("acc"), current.acc_dtype, (self.lanes,), scope=Scope.LOCAL)

        def point(red: tuple[Expr, ...], lane: Expr) -> Stmt:
            scalars = spec.stage_input(stage, self.kept, red, after_fill)
            update = Store(acc.name, (lane,), current.combine(Load(acc.name, (lane,), acc.dtype), scalars.value))
            return seq(self._fills(filling, red, cache), scalars.bind(update))

        lane = spec.fresh("v")
        init = For(lane, Const(0), Const(self.lanes), Store(acc.name, (Var(lane),), current.init), LoopKind.VECTORIZE)
        rest = Let(current.result.name, current.finalize(Load(acc.name, (Const(0),), acc.dtype)),
                   self._stage(stage + 1, after_fill, rows))
        return Allocate(acc, seq(init, self._row_pass(point), _horizontal(spec, acc, current.combine), rest))

    def _fills(self, nodes: list[int], red: tuple[Expr, ...], cache: RowCache) -> Stmt:
        stores = []
        for node in nodes:
            scalars = self.spec.row_value(node, self.kept, red, cache)
            stores.append(scalars.bind(Store(self.rows[node].name, red, scalars.value)))
        return seq(*stores) if stores else Seq(())

    def _epilogue(self, cache: RowCache) -> Stmt:
        spec = self.spec
        parts = []
        if spec.reduced_outputs:
            parts.append(spec.reduced_store(self.kept))
        if spec.domain_outputs:
            parts.append(self._row_pass(lambda red, lane: spec.domain_store(self.kept, red, cache)))
        return seq(*parts) if parts else Seq(())


def _horizontal(spec: ReductionSpec, acc: Buffer, combine) -> Stmt:
    """acc[0] = combine of all lanes, by halving: log2(W) vector steps."""
    steps = []
    width = acc.shape[0] // 2
    while width >= 1:
        lane = spec.fresh("v")
        value = combine(Load(acc.name, (Var(lane),), acc.dtype), Load(acc.name, (add(Var(lane), Const(width)),), acc.dtype))
        kind = LoopKind.VECTORIZE if width > 1 else LoopKind.SERIAL
        steps.append(For(lane, Const(0), Const(width), Store(acc.name, (Var(lane),), value), kind))
        width //= 2
    return seq(*steps) if steps else Seq(())


# -- columns ------------------------------------------------------------------------------------


def _columns(spec: ReductionSpec, machine: Machine) -> Stmt:
    """Lanes over the last kept axis; serial loops over the reduced axes inside (no row caching)."""
    kept_shape = spec.kept_shape
    lanes = machine.lanes(DType.F32)
    work = math.prod(spec.domain) * max(1, len(spec.stages))
    parallel = machine.parallel(work)
    if not kept_shape:
        return _position(spec, ())
    outer, last = kept_shape[:-1], kept_shape[-1]
    outer_count = math.prod(outer)
    outer_parallel = parallel and outer_count >= machine.threads
    flat = spec.fresh("k")
    outer_index = unflatten(Var(flat), outer)
    inner = vector_range(spec, last, lanes, lambda j, lane: _position(spec, outer_index + (j,)),
                         parallel=parallel and not outer_parallel)
    if not outer:
        return inner
    return For(flat, Const(0), Const(outer_count), inner, loop_kind(outer_parallel))


def _position(spec: ReductionSpec, kept: tuple[Expr, ...]) -> Stmt:
    """Every stage and output of one kept position (lanes of a vector loop get private copies)."""

    def after(stage: int) -> Stmt:
        if stage == len(spec.stages):
            parts = []
            if spec.reduced_outputs:
                parts.append(spec.reduced_store(kept))
            if spec.domain_outputs:
                parts.append(serial_nest(spec, spec.reduce_shape, "r", lambda red: spec.domain_store(kept, red)))
            return seq(*parts) if parts else Seq(())
        current = spec.stages[stage]
        acc = Buffer(spec.fresh("acc"), current.acc_dtype, (1,), scope=Scope.LOCAL)
        read = Load(acc.name, (Const(0),), acc.dtype)

        def fold(red: tuple[Expr, ...]) -> Stmt:
            scalars = spec.stage_input(stage, kept, red)
            return scalars.bind(Store(acc.name, (Const(0),), current.combine(read, scalars.value)))

        rest = Let(current.result.name, current.finalize(read), after(stage + 1))
        return Allocate(acc, seq(Store(acc.name, (Const(0),), current.init),
                                 serial_nest(spec, spec.reduce_shape, "r", fold), rest))

    return after(0)
