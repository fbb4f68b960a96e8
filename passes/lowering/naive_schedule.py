"""The naive schedule: every kernel spec as plain serial loop nests, in the most obvious order.

It is the definition of what a spec means as loops, used by the ref target's `--emit loops`, by the
lowering tests (through `ir.loop_eval`) and as the fallback of faster schedules. `cache_rows` picks
which rows of a reduction kernel live in local buffers: "none" (recompute and reload), "suggested"
(`ReductionSpec.row_suggestions`) or "all" (every candidate; exercises the row-caching contract).

    elementwise:  for i0.. { for i1.. { out[i0, i1] = f(i0, i1) } }
    reduction:    for kept.. { acc = init; for red.. { acc = combine(acc, in) }; let r = finalize(acc)
                               ...next stages...; reduced outputs; for red.. { domain outputs } }
    matmul:       for batch.., i, j { acc = 0; for k { acc += a[i, k] * b[k, j] }; epilogue(acc) }
    copy:         for each region: for idx.. { out[offset + idx] = in[idx] }
"""

from __future__ import annotations

from typing import Callable

from ir.loops import Allocate, Buffer, Const, For, Let, Seq, Stmt, Store, Var, seq
from passes.lowering.spec import (CopySpec, ElementwiseSpec, Indices, KernelSpec, MatmulSpec, ReductionSpec,
                                  Scalars, accumulate, local_accumulator, read)


def loop_nest(spec: KernelSpec, shape: tuple[int, ...], base: str, body: Callable[[Indices], Stmt]) -> Stmt:
    """Serial loops over `shape` (outermost first) around `body(index)`."""
    names = [spec.fresh(f"{base}{axis}") for axis in range(len(shape))]
    stmt = body(tuple(Var(name) for name in names))
    for name, extent in reversed(list(zip(names, shape))):
        stmt = For(name, Const(0), Const(extent), stmt)
    return stmt


class NaiveSchedule:
    """Serial loop nests, one accumulator per reduction and per matmul output element."""

    def __init__(self, cache_rows: str = "none") -> None:
        if cache_rows not in ("none", "suggested", "all"):
            raise ValueError(f"cache_rows must be 'none', 'suggested' or 'all', not {cache_rows!r}")
        self.cache_rows = cache_rows

    def elementwise(self, spec: ElementwiseSpec) -> Stmt:
        return loop_nest(spec, spec.domain, "i", spec.store)

    def copy(self, spec: CopySpec) -> Stmt:
        nests = [loop_nest(spec, region.shape, "i", lambda index, r=r: spec.region_store(r, index))
                 for r, region in enumerate(spec.regions)]
        return seq(*nests) if nests else Seq(())

    def matmul(self, spec: MatmulSpec) -> Stmt:
        def element(index: Indices) -> Stmt:
            batch, i, j = index[:-2], index[-2], index[-1]
            acc = local_accumulator(spec, spec.acc_dtype)
            update = loop_nest(spec, (spec.k,), "k", lambda k: accumulate(
                acc, spec.multiply_add(read(acc), spec.load_a(batch, i, k[0]), spec.load_b(batch, k[0], j))))
            return Allocate(acc, seq(accumulate(acc, spec.init), update, spec.epilogue_store(read(acc), batch, i, j)))
        return loop_nest(spec, spec.batch_shape + (spec.m, spec.n), "i", element)

    def reduction(self, spec: ReductionSpec) -> Stmt:
        candidates = {"none": (), "suggested": spec.row_suggestions, "all": spec.row_candidates}[self.cache_rows]

        def after(stage: int, kept: Indices, cache: dict) -> Stmt:
            for node in candidates:
                if spec.ready_after(node) == stage and node not in cache:
                    row = spec.row_buffer(node)
                    fill = loop_nest(spec, spec.reduce_shape, "r", lambda red, node=node, row=row: _store_row(
                        spec, row.name, red, spec.row_value(node, kept, red, cache)))
                    return Allocate(row, seq(fill, after(stage, kept, {**cache, node: row})))
            if stage == len(spec.stages):
                return _epilogue(spec, kept, cache)
            current = spec.stages[stage]
            acc = local_accumulator(spec, current.acc_dtype)
            update = loop_nest(spec, spec.reduce_shape, "r", lambda red: _fold(spec, stage, acc, kept, red, cache))
            rest = Let(current.result.name, current.finalize(read(acc)), after(stage + 1, kept, cache))
            return Allocate(acc, seq(accumulate(acc, current.init), update, rest))

        return loop_nest(spec, spec.kept_shape, "i", lambda kept: after(0, kept, {}))


def _store_row(spec: ReductionSpec, row: str, red: Indices, scalars: Scalars) -> Stmt:
    return scalars.bind(Store(row, red, scalars.value))


def _fold(spec: ReductionSpec, stage: int, acc: Buffer, kept: Indices, red: Indices, cache: dict) -> Stmt:
    scalars = spec.stage_input(stage, kept, red, cache)
    return scalars.bind(accumulate(acc, spec.stages[stage].combine(read(acc), scalars.value)))


def _epilogue(spec: ReductionSpec, kept: Indices, cache: dict) -> Stmt:
    parts = []
    if spec.reduced_outputs:
        parts.append(spec.reduced_store(kept))
    if spec.domain_outputs:
        parts.append(loop_nest(spec, spec.reduce_shape, "r", lambda red: spec.domain_store(kept, red, cache)))
    return seq(*parts) if parts else Seq(())
