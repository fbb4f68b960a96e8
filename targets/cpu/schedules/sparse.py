"""Sparse matmul kernels on the CPU: rows of S in parallel, a register tile of out_S per row, SIMD
over the dense operand's columns (`passes.lowering.sparse` defines S, D and the storage).

CSR, columns of D >= W/2 (SpMM, W = SIMD lanes):

    for chunk in 0..chunks parallel {                 runs of rows with about equal non-zeros
      for r in chunk's rows {
        for each column tile [j0, j0+T) {             T = W x (registers for the tile), static list
          local acc[T] = 0
          for p in row r's entries { let k = col[p], a = val[p]
                                     for v in 0..T vectorize { acc[v] += a * D[k, j0+v] } }
          for v in 0..T vectorize { epilogue(acc[v]) at (r, j0+v) }      (masked past the last column)
    }}}

Each stored value is loaded once per tile and meets T/W vector FMAs; the row of D it selects is one
contiguous stream. Chunks come with the storage (`ir.sparse.balanced_chunks`): each holds about the
same number of non-zeros, and OpenMP's static split hands every thread the same number of chunks,
so threads finish together even when a few rows are much fuller than the rest.

BSR (R x C blocks): the same walk over block rows; each block column reads C rows of D once and
feeds R accumulator rows (`acc[R][T]`), so a block's values reuse every D load R times. Block
entries past K are skipped (`k < K` guard) when K is not a multiple of C; rows past the last are
not stored.

N:M: every row stores the same number of entries, so rows split statically (`parallel` over rows);
entry s of row r sits in column (s / n) * m + position[r, s].

Few columns (SpMV, D of 1..W/2-1 columns): one scalar accumulator per (r, c) for CSR and BSR (the
walk is memory-bound: a value, an index and a gathered D element per entry); N:M splits each row's
entries over W lanes (`acc[v]`, gathered D) and sums the lanes at the end.

X @ W (the sparse operand on the right): D[k, c] = X[c, k] is strided along c, so X is first
transposed into a local buffer shared by the threads (K x cols, filled in parallel over k).

Legality: every accumulator sums the stored entries of its row in storage order (f32 for f16/bf16),
then the spec's epilogue stores it once; tiles, chunks and lanes only partition rows, columns and
(N:M SpMV) the terms of one sum, and masked lanes neither read nor write past the last column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ir.loops import (Allocate, Binary, Buffer, Const, Expr, For, If, Let, Load, LoopKind, Scope, Seq, Stmt, Store,
                      Var, add, mul, seq)
from passes.lowering.spec import Indices
from passes.lowering.sparse import SparseMatmulSpec
from targets.cpu.schedules.common import Machine, loop_kind, unflatten

MAX_TILE_VECTORS = 8  # accumulator registers per row of a tile
# Multiply-adds below which a sparse kernel runs on one thread: about a millisecond of work. A parallel
# region costs a fork/join, and on a busy machine waking a sleeping worker can take a scheduler time
# slice (milliseconds), which a sparse product of a few hundred thousand entries never wins back.
PARALLEL_MIN_MULTIPLY_ADDS = 1 << 22
NM_BLOCK_L1 = 0.25  # the panelled N:M kernel: a block's partial sums fill this share of L1,
NM_PANEL_L2 = 1 / 16  # and a panel of D this share of L2 (32 KiB of 512: the panel stays near L1)


def schedule_sparse_matmul(spec: SparseMatmulSpec, machine: Machine) -> Stmt:
    batches = math.prod(spec.batch_shape)
    if batches == 0 or spec.rows == 0 or spec.cols == 0:
        return Seq(())
    builder = _Builder(spec, machine)
    flat = spec.fresh("b")
    batch = unflatten(Var(flat), spec.batch_shape)
    body = builder.batch_body(batch)
    if not spec.batch_shape:
        return body
    return For(flat, Const(0), Const(batches), body)


class _Builder:
    def __init__(self, spec: SparseMatmulSpec, machine: Machine) -> None:
        self.spec = spec
        self.machine = machine
        self.lanes = machine.lanes(spec.acc_dtype)
        self.vector = spec.cols * 2 >= self.lanes
        storage = spec.storage
        stored = storage.values.size  # a bound upper bound for run-time arguments (their capacity)
        self.parallel = machine.threads > 1 and stored * spec.cols >= PARALLEL_MIN_MULTIPLY_ADDS and spec.rows > 1

    # -- shared pieces ----------------------------------------------------------------------------

    def tiles(self, rows_per_tile: int) -> list[tuple[int, int]]:
        """(first column, width) of each column tile; widths are multiples of the lanes."""
        spec, lanes = self.spec, self.lanes
        budget = max(1, (self.machine.vector_registers - 4) // rows_per_tile)
        vectors = max(1, min(MAX_TILE_VECTORS, budget))
        needed = math.ceil(spec.cols / lanes)
        count = math.ceil(needed / vectors)
        width = math.ceil(needed / count) * lanes
        return [(start, width) for start in range(0, spec.cols, width)]

    def rows_loop(self, body) -> Stmt:
        """`body(r)` for every row (block row for BSR) of S: over the chunks when the storage has them."""
        spec = self.spec
        r = spec.fresh("r")
        if spec.storage.kind == "nm":
            return For(r, Const(0), Const(spec.rows), body(Var(r)), loop_kind(self.parallel))
        chunk = spec.fresh("chunk")
        first, count = spec.chunk_range(Var(chunk))
        return For(chunk, Const(0), Const(spec.chunk_count), For(r, first, count, body(Var(r))),
                   loop_kind(self.parallel))

    def batch_body(self, batch: Indices) -> Stmt:
        spec = self.spec
        dense = lambda k, c: spec.acc(spec.dense(batch, k, c))  # noqa: E731
        packed = None
        if self.vector and not spec.left:
            packed = Buffer(spec.fresh("xt"), spec.acc_dtype, (max(1, spec.k), spec.cols), scope=Scope.LOCAL)
            dense = lambda k, c: Load(packed.name, (k, c), packed.dtype)  # noqa: E731
        kind = spec.storage.kind
        if kind == "bsr":
            body = self.rows_loop(lambda br: self.bsr_row(batch, br, dense))
        elif self.vector and kind == "nm" and self.nm_panels() > 1:
            body = self.nm_panelled(batch, dense)
        elif self.vector and kind == "csr" and self.csr_panels():
            body = self.csr_panelled(batch, dense)
        elif self.vector:
            body = self.rows_loop(lambda r: self.vector_row(batch, r, dense))
        elif kind == "nm":
            body = self.rows_loop(lambda r: self.nm_lanes_row(batch, r, dense))
        else:
            body = self.rows_loop(lambda r: self.scalar_row(batch, r, dense))
        if packed is None:
            return body
        return Allocate(packed, seq(self.pack(packed, batch), body))

    def pack(self, packed: Buffer, batch: Indices) -> Stmt:
        """packed[k, c] = D[k, c] (= X[c, k]), in parallel over k."""
        spec = self.spec
        k, c = spec.fresh("k"), spec.fresh("c")
        store = Store(packed.name, (Var(k), Var(c)), spec.acc(spec.dense(batch, Var(k), Var(c))))
        return For(k, Const(0), Const(spec.k), For(c, Const(0), Const(spec.cols), store), loop_kind(self.parallel))

    def entries(self, r: Expr, body, panel: _Panel | None = None) -> Stmt:
        """`body(k, a)` for every stored entry (column k, value a) of row r (CSR or N:M), or only for
        those of `panel`."""
        spec = self.spec
        if spec.storage.kind == "nm":
            s = spec.fresh("s")
            first, count = panel.span if panel is not None else (Const(0), Const(spec.stored))
            return For(s, first, count,
                       _let2(spec, spec.nm_column(r, Var(s)), spec.acc(spec.nm_value(r, Var(s))), body))
        p = spec.fresh("p")
        start, count = spec.row_range(r) if panel is None else spec.panel_range(r, panel.index)
        return For(p, start, count, _let2(spec, spec.column(Var(p)), spec.acc(spec.value(Var(p))), body))

    # -- CSR and N:M, many columns ------------------------------------------------------------------

    def column_lanes(self, start: int, width: int) -> Callable[..., Stmt]:
        """`lanes(body, guard)`: a vectorized loop over the `width` output columns from `start`, `body`
        given the lane variable; a tile running past the last column guards each lane unless told not to."""
        spec = self.spec
        ragged = start + width > spec.cols

        def lanes(body: Callable[[Expr], Stmt], guard: bool = ragged) -> Stmt:
            v = spec.fresh("v")
            stmt = body(Var(v))
            if guard:
                stmt = If(Binary("lt", add(Const(start), Var(v)), Const(spec.cols)), stmt)
            return For(v, Const(0), Const(width), stmt, LoopKind.VECTORIZE)
        return lanes

    def vector_row(self, batch: Indices, r: Expr, dense, panel: _Panel | None = None) -> Stmt:
        """Row r of out_S, a register tile at a time; with `panel`, only the panel's entries, the
        tile resumed from and saved to the panel's partial sums except on the first and last panel."""
        spec = self.spec
        parts = []
        for start, width in self.tiles(1):
            acc = Buffer(spec.fresh("acc"), spec.acc_dtype, (width,), scope=Scope.LOCAL)
            lanes = self.column_lanes(start, width)

            init: Stmt = lanes(lambda v: Store(acc.name, (v,), spec.init), guard=False)
            update = self.entries(r, lambda k, a: lanes(lambda v: Store(acc.name, (v,), Binary(
                "add", Load(acc.name, (v,), acc.dtype), Binary("mul", a, dense(k, add(Const(start), v)))))), panel)
            finish: Stmt = lanes(lambda v: spec.epilogue_store(Load(acc.name, (v,), acc.dtype), batch, r,
                                                               add(Const(start), v)))
            if panel is not None:
                saved = lambda v: (panel.row, add(Const(start), v))  # noqa: E731
                resume = lanes(lambda v: Store(acc.name, (v,), Load(panel.part.name, saved(v), acc.dtype)),
                               guard=False)
                init = If(panel.first, init, resume)
                keep = lanes(lambda v: Store(panel.part.name, saved(v), Load(acc.name, (v,), acc.dtype)),
                             guard=False)
                finish = If(panel.last, finish, keep)
            parts.append(Allocate(acc, seq(init, update, finish)))
        return seq(*parts)

    # -- N:M, many columns, long rows: panels of D that stay in cache ----------------------------------

    def nm_shape(self) -> tuple[int, int, int]:
        """(rows per block, entries per panel, padded columns) of the panelled N:M kernel: a block's
        partial sums fill at most half of L1, a panel of D (its rows for those entries) a quarter of L2."""
        spec, machine = self.spec, self.machine
        n, m = spec.storage.pattern
        padded = self.tiles(1)[-1][0] + self.tiles(1)[-1][1]
        row_bytes = padded * spec.acc_dtype.itemsize
        block = max(1, int(machine.l1d_bytes * NM_BLOCK_L1) // row_bytes)
        panel_rows = max(m, int(machine.l2_bytes * NM_PANEL_L2) // max(1, spec.cols * spec.dtype.itemsize) // m * m)
        return block, panel_rows // m * n, padded

    def nm_panels(self) -> int:
        return math.ceil(self.spec.stored / self.nm_shape()[1])

    def nm_panelled(self, batch: Indices, dense) -> Stmt:
        """for block of rows (parallel) { for panel { for row of the block { row tiles over the panel's
        entries, partial sums kept between panels } } }: the panel of D is reused by every row of the
        block while it is in L2, instead of each row walking all of D."""
        spec = self.spec
        block, per_panel, padded = self.nm_shape()
        panels = self.nm_panels()
        rb, p, i = spec.fresh("rb"), spec.fresh("p"), spec.fresh("i")
        part = Buffer(spec.fresh("part"), spec.acc_dtype, (block, padded), scope=Scope.LOCAL)
        first_entry = mul(Var(p), Const(per_panel))
        count: Expr = Const(per_panel)
        if spec.stored % per_panel:
            count = Binary("minimum", Const(per_panel), Binary("sub", Const(spec.stored), first_entry))
        panel = _Panel(part, Var(i), Var(p), Binary("eq", Var(p), Const(0)), Binary("eq", Var(p), Const(panels - 1)),
                       (first_entry, count))
        rows_here: Expr = Const(block)
        if spec.rows % block:
            rows_here = Binary("minimum", Const(block), Binary("sub", Const(spec.rows), mul(Var(rb), Const(block))))
        row = add(mul(Var(rb), Const(block)), Var(i))
        body = For(p, Const(0), Const(panels), For(i, Const(0), rows_here, self.vector_row(batch, row, dense, panel)))
        return For(rb, Const(0), Const(math.ceil(spec.rows / block)), Allocate(part, body),
                   loop_kind(self.parallel))

    # -- CSR, many columns, many entries per row: panels of D ------------------------------------------

    def csr_panels(self) -> bool:
        """Whether to walk D in the storage's panels: it records more than one, and a row holds enough
        entries per panel (16, on average: the stored values, or every entry for a run-time argument)
        to pay for resuming and saving its tile at each."""
        spec = self.spec
        panels = spec.panel_count
        return panels > 1 and spec.storage.values.size / max(1, spec.rows) / panels >= 16

    def csr_panelled(self, batch: Indices, dense) -> Stmt:
        """for chunk (parallel) { for panel { for row of the chunk { row tiles over the row's entries in
        the panel } } }: partial sums of every row in a buffer the threads share (each writes only its
        chunks' rows), so the panel of D stays in cache while the chunk's rows use it."""
        spec = self.spec
        padded = self.tiles(1)[-1][0] + self.tiles(1)[-1][1]
        panels = spec.panel_count
        chunk, p, r = spec.fresh("chunk"), spec.fresh("panel"), spec.fresh("r")
        part = Buffer(spec.fresh("part"), spec.acc_dtype, (spec.rows, padded), scope=Scope.LOCAL)
        panel = _Panel(part, Var(r), Var(p), Binary("eq", Var(p), Const(0)), Binary("eq", Var(p), Const(panels - 1)))
        first, count = spec.chunk_range(Var(chunk))
        rows = For(r, first, count, self.vector_row(batch, Var(r), dense, panel))
        body = For(chunk, Const(0), Const(spec.chunk_count), For(p, Const(0), Const(panels), rows),
                   loop_kind(self.parallel))
        return Allocate(part, body)

    # -- CSR, few columns ---------------------------------------------------------------------------

    def scalar_row(self, batch: Indices, r: Expr, dense) -> Stmt:
        spec = self.spec
        c = spec.fresh("c")
        acc = Buffer(spec.fresh("acc"), spec.acc_dtype, (1,), scope=Scope.LOCAL)
        zero = (Const(0),)
        update = self.entries(r, lambda k, a: Store(acc.name, zero, Binary(
            "add", Load(acc.name, zero, acc.dtype), Binary("mul", a, dense(k, Var(c))))))
        body = Allocate(acc, seq(Store(acc.name, zero, spec.init), update,
                                 spec.epilogue_store(Load(acc.name, zero, acc.dtype), batch, r, Var(c))))
        return For(c, Const(0), Const(spec.cols), body)

    # -- N:M, few columns: the row's entries over the lanes ------------------------------------------

    def nm_lanes_row(self, batch: Indices, r: Expr, dense) -> Stmt:
        spec, lanes = self.spec, self.lanes
        c = spec.fresh("c")
        partial = Buffer(spec.fresh("lanes"), spec.acc_dtype, (lanes,), scope=Scope.LOCAL)
        acc = Buffer(spec.fresh("acc"), spec.acc_dtype, (1,), scope=Scope.LOCAL)
        zero = (Const(0),)

        def term(s: Expr, v: Expr) -> Stmt:
            value = spec.acc(spec.nm_value(r, s))
            return Store(partial.name, (v,), Binary("add", Load(partial.name, (v,), partial.dtype),
                                                    Binary("mul", value, dense(spec.nm_column(r, s), Var(c)))))

        full, tail = divmod(spec.stored, lanes)
        v0 = spec.fresh("v")
        parts: list[Stmt] = [For(v0, Const(0), Const(lanes), Store(partial.name, (Var(v0),), spec.init),
                                 LoopKind.VECTORIZE)]
        if full:
            block, v = spec.fresh("sb"), spec.fresh("v")
            s = add(mul(Var(block), Const(lanes)), Var(v))
            parts.append(For(block, Const(0), Const(full),
                             For(v, Const(0), Const(lanes), term(s, Var(v)), LoopKind.VECTORIZE)))
        if tail:
            v = spec.fresh("v")
            s = add(Const(full * lanes), Var(v))
            parts.append(For(v, Const(0), Const(lanes), If(Binary("lt", Var(v), Const(tail)), term(s, Var(v))),
                             LoopKind.VECTORIZE))
        v1 = spec.fresh("v")
        parts.append(Store(acc.name, zero, spec.init))
        parts.append(For(v1, Const(0), Const(lanes), Store(acc.name, zero, Binary(
            "add", Load(acc.name, zero, acc.dtype), Load(partial.name, (Var(v1),), partial.dtype)))))
        parts.append(spec.epilogue_store(Load(acc.name, zero, acc.dtype), batch, r, Var(c)))
        return For(c, Const(0), Const(spec.cols), Allocate(partial, Allocate(acc, seq(*parts))))

    # -- BSR ------------------------------------------------------------------------------------------

    def bsr_row(self, batch: Indices, br: Expr, dense) -> Stmt:
        spec = self.spec
        rb, cb = spec.storage.block
        rows_here: Expr = Const(rb)
        if spec.rows % rb:
            rows_here = Binary("minimum", Const(rb), Binary("sub", Const(spec.rows), mul(br, Const(rb))))
        if not self.vector:
            return self._bsr_scalar(batch, br, rows_here, dense)
        parts = []
        for start, width in self.tiles(rb):
            acc = Buffer(spec.fresh("acc"), spec.acc_dtype, (rb * width,), scope=Scope.LOCAL)
            lanes = self.column_lanes(start, width)

            def slot(i: Expr, v: Expr) -> tuple[Expr, ...]:
                return (add(mul(i, Const(width)), v),)

            i0 = spec.fresh("i")
            init = For(i0, Const(0), Const(rb), lanes(lambda v: Store(acc.name, slot(Var(i0), v), spec.init),
                                                      guard=False), LoopKind.UNROLL)

            def per_column(p: Expr, k: Expr, j: Expr) -> Stmt:
                i = spec.fresh("i")
                a = spec.fresh("a")
                fma = lanes(lambda v: Store(acc.name, slot(Var(i), v), Binary(
                    "add", Load(acc.name, slot(Var(i), v), acc.dtype),
                    Binary("mul", Var(a, spec.acc_dtype), dense(k, add(Const(start), v))))))
                body = Let(a, spec.acc(spec.block_value(p, Var(i), j)), fma)
                return For(i, Const(0), Const(rb), body, LoopKind.UNROLL)

            update = self._blocks(br, per_column)
            i1 = spec.fresh("i")
            row = add(mul(br, Const(rb)), Var(i1))
            finish = For(i1, Const(0), rows_here, lanes(lambda v: spec.epilogue_store(
                Load(acc.name, slot(Var(i1), v), acc.dtype), batch, row, add(Const(start), v))))
            parts.append(Allocate(acc, seq(init, update, finish)))
        return seq(*parts)

    def _blocks(self, br: Expr, per_column) -> Stmt:
        """`per_column(p, k, j)` for each stored block p of block row br and each column j of it
        (k = its column of S), skipping columns past K."""
        spec = self.spec
        rb, cb = spec.storage.block
        p, j, k = spec.fresh("p"), spec.fresh("j"), spec.fresh("k")
        start, count = spec.row_range(br)
        column = add(mul(spec.block_column(Var(p)), Const(cb)), Var(j))
        body = per_column(Var(p), Var(k), Var(j))
        if spec.k % cb:
            body = If(Binary("lt", Var(k), Const(spec.k)), body)
        inner = For(j, Const(0), Const(cb), Let(k, column, body))
        return For(p, start, count, inner)

    def _bsr_scalar(self, batch: Indices, br: Expr, rows_here: Expr, dense) -> Stmt:
        spec = self.spec
        rb, _ = spec.storage.block
        c = spec.fresh("c")
        acc = Buffer(spec.fresh("acc"), spec.acc_dtype, (rb,), scope=Scope.LOCAL)
        i0 = spec.fresh("i")
        init = For(i0, Const(0), Const(rb), Store(acc.name, (Var(i0),), spec.init), LoopKind.UNROLL)

        def per_column(p: Expr, k: Expr, j: Expr) -> Stmt:
            i = spec.fresh("i")
            term = Binary("mul", spec.acc(spec.block_value(p, Var(i), j)), dense(k, Var(c)))
            return For(i, Const(0), Const(rb), Store(acc.name, (Var(i),), Binary(
                "add", Load(acc.name, (Var(i),), acc.dtype), term)), LoopKind.UNROLL)

        i1 = spec.fresh("i")
        finish = For(i1, Const(0), rows_here, spec.epilogue_store(
            Load(acc.name, (Var(i1),), acc.dtype), batch, add(mul(br, Const(rb)), Var(i1)), Var(c)))
        return For(c, Const(0), Const(spec.cols), Allocate(acc, seq(init, self._blocks(br, per_column), finish)))


@dataclass(frozen=True)
class _Panel:
    """One panel of a panelled row: partial sums in `part` (at row `row`), the panel's number `index`,
    whether it is the first or last (bool expressions) and, for N:M, its entries `span` (first, count)."""

    part: Buffer
    row: Expr
    index: Expr
    first: Expr
    last: Expr
    span: tuple[Expr, Expr] = (Const(0), Const(0))


def _let2(spec: SparseMatmulSpec, k: Expr, a: Expr, body) -> Stmt:
    """let k = ...; let a = ...; body(Var(k), Var(a))."""
    kn, an = spec.fresh("k"), spec.fresh("a")
    return Let(kn, k, Let(an, a, body(Var(kn), Var(an, a.dtype))))


__all__ = ["schedule_sparse_matmul"]
