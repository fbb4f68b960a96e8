"""Matmul kernels: packed panels, an MR x NR register-tiled micro-kernel, the epilogue from registers.

Per batch element (batch elements in parallel when there are enough of them):

    for each panel of NC columns:                                            (static list)
      local Bp[NC/NR][K][NR]
      for jr in 0..NC/NR parallel { for k { Bp[jr, k, :] = B[k, panel + jr*NR + :] (0 past N) } }
      for ic in 0..blocks parallel {                               MC rows of C per block
        local Ap[MC/MR][KC][MR]; local Cp[MC/MR][NC/NR][MR*NR]     (Cp only when K > KC)
        for p in 0..ceil(K/KC) {                                   K in chunks of KC
          Ap[ir, kk, i] = A[row ic*MC + ir*MR + i, p*KC + kk]      (the last row repeated past M)
          for jr { for ir { micro(rows ic*MC + ir*MR .., columns jr*NR .., k in the chunk) } }
        }
      }

    micro:  local acc[MR*NR]                  (promoted to MR * NR/W vector registers)
      acc = p == 0 ? 0 : Cp[ir, jr]
      for kk in chunk { let a_i = Ap[ir, kk, i] (i < MR); for v in 0..NR vectorize {
                          let b = Bp[jr, p*KC + kk, v]; acc[i*NR + v] += a_i * b (each i) } }   (FMA)
      last chunk ? epilogue(acc) at (row, col) for rows < M, columns < N : Cp[ir, jr] = acc

One vector of NR = 2W lanes carries a row of the tile, so each broadcast of A meets both registers of
B; the B sliver of a chunk (KC x NR) stays in L1 while every row tile of the block uses it, the A block
(MC x KC) in L2. Columns past N only exist in the last sliver: its stores are masked. Small M (a few
rows, e.g. an LLM decode step) skips packing: B is then streamed once, straight from memory, by column
slivers spread over the threads (`direct`).

Tile sizes (`tiles`): W = SIMD lanes of the accumulator type, NR = 2W, MR = min(8, (registers-4)//2)
(6 with 16 AVX2 registers: 12 accumulators + 2 B vectors + 1 broadcast; 8 with AVX-512's 32);
KC = the depth whose B sliver fills half of L1 (at least 64, a multiple of 16); MC = the rows whose
KC-long A slivers fill half of L2, then evened out so the blocks split equally over the threads;
NC = the columns whose packed K x NC panel fills half of L3 (shared by the threads), rounded to NR.

Legality: each output element is one accumulator folded over k in increasing order with
`multiply_add` (partial sums of earlier chunks are carried in Cp unchanged), then the spec's
epilogue; packing copies operand values unchanged (converted to the accumulator type, which
`multiply_add` would do anyway); zero padding only feeds accumulators whose results are never stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ir.loops import (Allocate, Binary, Buffer, Cast, Const, Expr, For, If, Let, Load, LoopKind, Scope, Seq, Stmt,
                      Store, Var, add, mul, seq, sub)
from passes.lowering.spec import Indices, MatmulSpec
from targets.cpu.schedules.common import Machine, loop_kind, unflatten


@dataclass(frozen=True)
class Tiles:
    lanes: int  # W
    mr: int
    nr: int
    kc: int
    mc: int
    nc: int


def tiles(spec: MatmulSpec, machine: Machine) -> Tiles:
    lanes = machine.lanes(spec.acc_dtype)
    itemsize = max(4, spec.acc_dtype.itemsize)
    mr = min(8, max(1, (machine.vector_registers - 4) // 2))
    nr = 2 * lanes
    k = max(1, spec.k)
    kc = max(64, (machine.l1d_bytes // 2) // (nr * itemsize) // 16 * 16)
    kc = min(kc, k)
    row_blocks = math.ceil(max(1, spec.m) / mr)
    per_block = max(1, min(row_blocks, (machine.l2_bytes // 2) // (kc * itemsize) // mr))
    blocks = math.ceil(row_blocks / per_block)
    if machine.threads > 1 and blocks > 1:  # even the blocks out over the threads
        blocks = math.ceil(blocks / machine.threads) * machine.threads
        per_block = math.ceil(row_blocks / blocks)
    nc = max(nr, (machine.l3_bytes // 2) // (k * itemsize) // nr * nr)
    nc = min(nc, math.ceil(spec.n / nr) * nr)
    return Tiles(lanes, mr, nr, kc, per_block * mr, nc)


def schedule_matmul(spec: MatmulSpec, machine: Machine) -> Stmt:
    t = tiles(spec, machine)
    batches = math.prod(spec.batch_shape)
    if batches == 0 or spec.m == 0 or spec.n == 0:
        return Seq(())
    flops = 2 * batches * spec.m * spec.n * max(1, spec.k)
    parallel = machine.parallel(flops // 8)
    batch_parallel = parallel and batches >= machine.threads
    inner_parallel = parallel and not batch_parallel
    flat = spec.fresh("b")
    batch = unflatten(Var(flat), spec.batch_shape)
    packed = spec.m >= 2 * t.mr and spec.n >= 2 * t.nr and spec.k >= 16
    builder = _MatmulBuilder(spec, t, batch, inner_parallel)
    body = builder.packed() if packed else builder.direct()
    if not spec.batch_shape:
        return body
    return For(flat, Const(0), Const(batches), body, loop_kind(batch_parallel))


@dataclass(frozen=True)
class _Chunk:
    """Where a micro-kernel's k range sits in K, and where its partial sums live between chunks."""

    start: Expr  # first k of the chunk
    extent: Expr  # its length
    partial: Buffer | None = None  # Cp, indexed (ir, jr, i*NR + c); None when K is one chunk
    slot: tuple[Expr, Expr] = (Const(0), Const(0))  # (ir, jr)
    first: Expr | None = None  # bool: the chunk starts at k = 0
    last: Expr | None = None  # bool: the chunk ends at K


class _MatmulBuilder:
    def __init__(self, spec: MatmulSpec, t: Tiles, batch: Indices, parallel: bool) -> None:
        self.spec = spec
        self.t = t
        self.batch = batch
        self.parallel = parallel

    # -- the micro-kernel ----------------------------------------------------------------------

    def micro(self, row0: Expr, col0: Expr, b_value, ragged_columns: bool, masked_loads: bool = False,
              a_value=None, chunk: _Chunk | None = None) -> Stmt:
        """An MR x NR tile at (row0, col0); `b_value(k, c)` reads B at column col0 + c, `a_value(i, kk)`
        A at row row0 + i and the chunk's kk-th k (default: all of K, A read from A itself).

        Rows past M read A's last row (their results are not stored); with `ragged_columns` the tile
        may reach past N: those columns are not stored, and with `masked_loads` not read either."""
        spec, t = self.spec, self.t
        chunk = chunk or _Chunk(Const(0), Const(spec.k))
        acc = Buffer(spec.fresh("acc"), spec.acc_dtype, (t.mr * t.nr,), scope=Scope.LOCAL)
        k = spec.fresh("k")
        rows_ragged = spec.m % t.mr != 0
        a_names = [spec.fresh("a") for _ in range(t.mr)]

        def slot(i: int, column: Expr) -> tuple[Expr, ...]:
            return (add(Const(i * t.nr), column),)

        def partial(i: int, column: Expr) -> tuple[Expr, ...]:
            return chunk.slot + slot(i, column)

        def row(i: int) -> Expr:
            index = add(row0, Const(i))
            return Binary("minimum", index, Const(spec.m - 1)) if rows_ragged else index

        def columns(body, guard_columns: bool) -> Stmt:
            """for v in 0..NR vectorize { body(v) }: one vector of NR lanes (NR/W registers), so each
            broadcast of A meets every register of B at once; optionally guarded to columns < N."""
            lane = spec.fresh("v")
            stmt = body(Var(lane))
            if guard_columns:
                stmt = If(Binary("lt", add(col0, Var(lane)), Const(spec.n)), stmt)
            return For(lane, Const(0), Const(t.nr), stmt, LoopKind.VECTORIZE)

        init: Stmt = columns(lambda c: seq(*(Store(acc.name, slot(i, c), spec.init) for i in range(t.mr))), False)
        if chunk.partial is not None:
            resume = columns(lambda c: seq(*(Store(acc.name, slot(i, c), Load(
                chunk.partial.name, partial(i, c), acc.dtype)) for i in range(t.mr))), False)
            init = If(chunk.first, init, resume)

        def update(c: Expr) -> Stmt:
            b = spec.fresh("bv")
            stores = [Store(acc.name, slot(i, c), spec.multiply_add(
                Load(acc.name, slot(i, c), acc.dtype), Var(a_names[i], spec.acc_dtype), Var(b, spec.acc_dtype)))
                for i in range(t.mr)]
            return Let(b, b_value(add(chunk.start, Var(k)), c), seq(*stores))

        body: Stmt = columns(update, masked_loads)
        for i in reversed(range(t.mr)):
            if a_value is not None:
                value = a_value(i, Var(k))
            else:
                value = spec.load_a(self.batch, row(i), add(chunk.start, Var(k)))
                if value.dtype != spec.acc_dtype:
                    value = Cast(spec.acc_dtype, value)
            body = Let(a_names[i], value, body)
        loop = For(k, Const(0), chunk.extent, body)

        # The epilogue runs from a copy of the tile, one loop over its rows: its code is emitted once
        # rather than once per accumulator register (the copy costs MR*NR/W vector stores).
        tile = Buffer(spec.fresh("tile"), spec.acc_dtype, (t.mr * t.nr,), scope=Scope.LOCAL)
        spill = columns(lambda c: seq(*(Store(tile.name, slot(i, c), Load(acc.name, slot(i, c), acc.dtype))
                                        for i in range(t.mr))), False)
        r = spec.fresh("i")
        rows: Expr = Const(t.mr)
        if rows_ragged:
            rows = Binary("minimum", Const(t.mr), sub(Const(spec.m), row0))

        def stores(guard_columns: bool) -> Stmt:
            element = lambda c: (add(mul(Var(r), Const(t.nr)), c),)  # noqa: E731
            body = columns(lambda c: spec.epilogue_store(Load(tile.name, element(c), tile.dtype), self.batch,
                                                         add(row0, Var(r)), add(col0, c)), guard_columns)
            return For(r, Const(0), rows, body)

        if ragged_columns:  # interior tiles store whole vectors; the last column sliver is masked
            finish: Stmt = If(Binary("le", add(col0, Const(t.nr)), Const(spec.n)), stores(False), stores(True))
        else:
            finish = stores(False)
        finish = Allocate(tile, seq(spill, finish))
        if chunk.partial is not None:
            keep = columns(lambda c: seq(*(Store(chunk.partial.name, partial(i, c), Load(acc.name, slot(i, c), acc.dtype))
                                           for i in range(t.mr))), False)
            finish = If(chunk.last, finish, keep)
        return Allocate(acc, seq(init, loop, finish))

    # -- packed operands, register tiles ---------------------------------------------------------

    def packed(self) -> Stmt:
        spec, t = self.spec, self.t
        panels = []
        for start in range(0, spec.n, t.nc):
            panels.append(self._panel(start, min(t.nc, spec.n - start)))
        return seq(*panels)

    def _panel(self, start: int, width: int) -> Stmt:
        spec, t = self.spec, self.t
        slivers = math.ceil(width / t.nr)
        packed_b = Buffer(spec.fresh("bp"), spec.acc_dtype, (slivers, max(1, spec.k), t.nr), scope=Scope.LOCAL)
        pack = self._pack_b(packed_b, start, width, slivers)
        row_blocks = math.ceil(spec.m / t.mr)
        per_block = t.mc // t.mr
        blocks = math.ceil(row_blocks / per_block)
        chunks = math.ceil(spec.k / t.kc)
        ic, jr, ir, p = spec.fresh("ic"), spec.fresh("jr"), spec.fresh("ir"), spec.fresh("p")
        ir_extent: Expr = Const(per_block)
        if row_blocks % per_block:  # the last block of rows is shorter (or empty)
            remaining = sub(Const(row_blocks), mul(Var(ic), Const(per_block)))
            ir_extent = Binary("minimum", Const(per_block), Binary("maximum", remaining, Const(0)))
        row0 = mul(add(mul(Var(ic), Const(per_block)), Var(ir)), Const(t.mr))
        col0 = add(Const(start), mul(Var(jr), Const(t.nr)))
        k0 = mul(Var(p), Const(t.kc))
        kc: Expr = Const(t.kc)
        if spec.k % t.kc:
            kc = Binary("minimum", Const(t.kc), sub(Const(spec.k), k0))
        packed_a = Buffer(spec.fresh("ap"), spec.acc_dtype, (per_block, t.kc, t.mr), scope=Scope.LOCAL)
        partial = None
        if chunks > 1:
            partial = Buffer(spec.fresh("cp"), spec.acc_dtype, (per_block, slivers, t.mr * t.nr), scope=Scope.LOCAL)
        chunk = _Chunk(k0, kc, partial, (Var(ir), Var(jr)), Binary("eq", Var(p), Const(0)),
                       Binary("eq", Var(p), Const(chunks - 1)))
        tile = self.micro(row0, col0, lambda k, c: Load(packed_b.name, (Var(jr), k, c), packed_b.dtype),
                          ragged_columns=width % t.nr != 0, chunk=chunk,
                          a_value=lambda i, kk: Load(packed_a.name, (Var(ir), kk, Const(i)), packed_a.dtype))
        per_chunk = seq(self._pack_a(packed_a, ic, per_block, ir_extent, k0, kc),
                        For(jr, Const(0), Const(slivers), For(ir, Const(0), ir_extent, tile)))
        block: Stmt = Allocate(packed_a, For(p, Const(0), Const(chunks), per_chunk))
        if partial is not None:
            block = Allocate(partial, block)
        compute = For(ic, Const(0), Const(blocks), block, loop_kind(self.parallel))
        return Allocate(packed_b, seq(pack, compute))

    def _pack_b(self, packed: Buffer, start: int, width: int, slivers: int) -> Stmt:
        """Bp[jr, k, c] = B[k, start + jr*NR + c], zero for columns past the panel."""
        spec, t = self.spec, self.t
        jr, k, lane = spec.fresh("jr"), spec.fresh("k"), spec.fresh("v")
        column_in_panel = add(mul(Var(jr), Const(t.nr)), Var(lane))
        value = spec.load_b(self.batch, Var(k), add(Const(start), column_in_panel))
        if value.dtype != spec.acc_dtype:
            value = Cast(spec.acc_dtype, value)
        store: Stmt = Store(packed.name, (Var(jr), Var(k), Var(lane)), value)
        if width % t.nr:
            zero = Store(packed.name, (Var(jr), Var(k), Var(lane)), spec.init)
            store = If(Binary("lt", column_in_panel, Const(width)), store, zero)
        inner = For(k, Const(0), Const(spec.k), For(lane, Const(0), Const(t.nr), store, LoopKind.VECTORIZE))
        return For(jr, Const(0), Const(slivers), inner, loop_kind(self.parallel))

    def _pack_a(self, packed_a: Buffer, ic: str, per_block: int, ir_extent: Expr, k0: Expr, kc: Expr) -> Stmt:
        """Ap[ir, kk, i] = A[ic*MC + ir*MR + i, k0 + kk] (the last row repeated past M): each tile then
        reads its MR rows of A as one contiguous stream instead of MR strided ones."""
        spec, t = self.spec, self.t
        ir, kk = spec.fresh("ir"), spec.fresh("kk")
        stores = []
        for i in range(t.mr):
            row = add(mul(add(mul(Var(ic), Const(per_block)), Var(ir)), Const(t.mr)), Const(i))
            if spec.m % t.mr:
                row = Binary("minimum", row, Const(spec.m - 1))
            value = spec.load_a(self.batch, row, add(k0, Var(kk)))
            if value.dtype != spec.acc_dtype:
                value = Cast(spec.acc_dtype, value)
            stores.append(Store(packed_a.name, (Var(ir), Var(kk), Const(i)), value))
        return For(ir, Const(0), ir_extent, For(kk, Const(0), kc, seq(*stores)))

    # -- small M: no packing ---------------------------------------------------------------------

    def direct(self) -> Stmt:
        """Column slivers of NR in parallel; each runs MR-row tiles reading B straight from memory."""
        spec, t = self.spec, self.t

        def b_value(col0: Expr):
            def load(k: Expr, c: Expr) -> Expr:
                value = spec.load_b(self.batch, k, add(col0, c))
                return Cast(spec.acc_dtype, value) if value.dtype != spec.acc_dtype else value
            return load

        full_slivers, tail_cols = divmod(spec.n, t.nr)
        row_blocks = math.ceil(spec.m / t.mr)
        parts = []
        if full_slivers:
            jr, ir = spec.fresh("jr"), spec.fresh("ir")
            col0 = mul(Var(jr), Const(t.nr))
            tile = self.micro(mul(Var(ir), Const(t.mr)), col0, b_value(col0), ragged_columns=False)
            parts.append(For(jr, Const(0), Const(full_slivers), For(ir, Const(0), Const(row_blocks), tile),
                             loop_kind(self.parallel)))
        if tail_cols:
            ir = spec.fresh("ir")
            col0 = Const(full_slivers * t.nr)
            tile = self.micro(mul(Var(ir), Const(t.mr)), col0, b_value(col0), ragged_columns=True, masked_loads=True)
            parts.append(For(ir, Const(0), Const(row_blocks), tile))
        return seq(*parts)
