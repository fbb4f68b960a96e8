"""Matmul kernels on the GPU: shared-memory tiles, register accumulators, the epilogue in registers.

Each block computes one BM x BN tile of the output (tiles from `mapping.choose_tiles`):

    for b in 0..batch*tiles_m*tiles_n parallel {
      let batch.., m0 = tile row * BM, n0 = tile column * BN
      local As, Bs (shared), acc[T, E] (private: E accumulators per thread, in registers) {
        for t in 0..T parallel { acc[t, e] = 0 for every e }
        for kt in 0..ceil(K/BK) {
          for t in 0..T parallel { As <- A[m0.., kt*BK..], Bs <- B[kt*BK.., n0..]  (zero outside A, B) }
          for t in 0..T parallel { acc[t, e] += As[.., kk] * Bs[.., kk] over kk in the tile }    # compute
        }
        for t in 0..T parallel { out[m0 + row(t, e), n0 + col(t, e)] = epilogue(acc[t, e]) when inside }
      }
    }

The loads are cooperative: thread t loads elements t, t+T, ... of a panel, with the faster-varying index
along K for A and along N for B so that a warp reads contiguous memory in the usual layouts. The
operand prologue (transposes, broadcasts, casts) is folded into those loads by the spec.

Two element-ownership maps (which outputs thread t accumulates):

* CUDA cores: a TM x TN register tile, rows tr + i*(BM/TM), columns tc + j*(BN/TN) with
  tr = t // (BN/TN), tc = t % (BN/TN). As is [BK, BM], Bs [BK, BN].
* tensor cores (bf16/f16): warps in a WM x WN grid, each owning a (BM/WM) x (BN/WN) tile of 16 x 8
  mma.sync.m16n8k16 tiles; lane l of a warp owns, in each, the accumulator elements c = 0..3 at row
  g + 8*(c // 2), column 2*q + c % 2 with g = l // 4, q = l % 4 (the PTX ISA's fragment layout for
  the f32 accumulator). As is [BM, BK + 8] and Bs [BN, BK + 8] (K contiguous, padded so that the
  fragment loads of a warp hit 32 different banks). The compute phase is written as the plain sum it
  computes (`mma_phase`); the code generator recognises it (`match_mma_phase`) and emits mma.sync.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ir.dtypes import DType
from ir.loops import (Allocate, Binary, Buffer, Cast, Const, Expr, For, Let, Load, LoopKind, Scope, Stmt,
                      Store, Var, add, floordiv, mod, mul, seq)
from passes.lowering.spec import MatmulSpec
from targets.gpu.machine import GpuMachine
from targets.gpu.mapping import MMA_K, MMA_M, MMA_N, MMA_PAD, MatmulTiles, choose_tiles
from targets.gpu.schedules.common import all_of, bind_all, decompose, guarded, less, zero
from targets.gpu.simt import grid_loop, phase


def matmul_operands(spec: MatmulSpec) -> tuple[bool, bool]:
    """Whether A and B have batch dimensions of their own (else one matrix serves every batch)."""
    graph = spec.elemental.graph
    a, b = (graph.node(o).type for o in graph.operands(spec.anchor))
    return math.prod(a.shape[:-2]) > 1, math.prod(b.shape[:-2]) > 1


def tiles_for(spec: MatmulSpec, machine: GpuMachine, tensor_cores: bool) -> MatmulTiles:
    a_batched, b_batched = matmul_operands(spec)
    out_bytes = sum(slot.buffer.nbytes for slot in spec.outputs)
    precision = str(spec.dtype)
    return choose_tiles(machine, math.prod(spec.batch_shape), spec.m, spec.n, spec.k, precision,
                        spec.dtype.itemsize, a_batched, b_batched, out_bytes, tensor_cores)


def matmul(spec: MatmulSpec, tiles: MatmulTiles) -> Stmt:
    tiles_m, tiles_n = math.ceil(spec.m / tiles.bm), math.ceil(spec.n / tiles.bn)
    blocks = math.prod(spec.batch_shape) * tiles_m * tiles_n
    threads = tiles.threads
    block = spec.fresh("b")
    names = [spec.fresh(f"batch{axis}") for axis in range(len(spec.batch_shape))]
    batch = tuple(Var(name) for name in names)
    m0, n0 = spec.fresh("m0"), spec.fresh("n0")
    panel_a, panel_b = _panel_shapes(tiles)
    shared_a = Buffer(spec.fresh("As"), spec.dtype, panel_a, scope=Scope.LOCAL)
    shared_b = Buffer(spec.fresh("Bs"), spec.dtype, panel_b, scope=Scope.LOCAL)
    acc = Buffer(spec.fresh("acc"), spec.acc_dtype, (threads, tiles.accumulators), scope=Scope.LOCAL)

    clear_thread = spec.fresh("t")
    clear_e = spec.fresh("e")
    clear = phase(clear_thread, threads, For(clear_e, Const(0), Const(tiles.accumulators),
                                             Store(acc.name, (Var(clear_thread), Var(clear_e)), spec.init),
                                             LoopKind.UNROLL))
    k_tile = spec.fresh("kt")
    k0 = mul(Var(k_tile), Const(tiles.bk))
    load = _load_phase(spec, tiles, batch, Var(m0), Var(n0), k0, shared_a, shared_b)
    compute = _compute_phase(spec, tiles, shared_a, shared_b, acc)
    steps = For(k_tile, Const(0), Const(math.ceil(spec.k / tiles.bk)), seq(load, compute))
    store = _epilogue_phase(spec, tiles, batch, Var(m0), Var(n0), acc)
    body = Allocate(shared_a, Allocate(shared_b, Allocate(acc, seq(clear, steps, store))))

    per_batch = tiles_m * tiles_n
    where = decompose(floordiv(Var(block), Const(per_batch)), spec.batch_shape) if spec.batch_shape else ()
    tile_row = mod(floordiv(Var(block), Const(tiles_n)), Const(tiles_m))
    tile_col = mod(Var(block), Const(tiles_n))
    body = bind_all(names + [m0, n0], where + (mul(tile_row, Const(tiles.bm)), mul(tile_col, Const(tiles.bn))),
                    body)
    return grid_loop(block, blocks, body)


def _panel_shapes(tiles: MatmulTiles) -> tuple[tuple[int, int], tuple[int, int]]:
    if tiles.mma:
        return (tiles.bm, tiles.bk + MMA_PAD), (tiles.bn, tiles.bk + MMA_PAD)
    return (tiles.bk, tiles.bm), (tiles.bk, tiles.bn)


def _load_phase(spec: MatmulSpec, tiles: MatmulTiles, batch, m0: Expr, n0: Expr, k0: Expr, shared_a: Buffer,
                shared_b: Buffer) -> Stmt:
    thread = spec.fresh("t")
    threads = tiles.threads

    def panel(rows: int, cols: int, fast_is_k: bool, store) -> Stmt:
        """Thread t loads elements t, t+T, ... of a rows x cols panel (cols the faster-varying index)."""
        count = rows * cols
        step, flat = spec.fresh("l"), spec.fresh("f")
        slow, fast = floordiv(Var(flat), Const(cols)), mod(Var(flat), Const(cols))
        body = store(slow, fast)
        check = less(Var(flat), count) if count % threads else None
        return For(step, Const(0), Const(math.ceil(count / threads)),
                   Let(flat, add(mul(Var(step), Const(threads)), Var(thread)), guarded(check, body)))

    def store_a(ii: Expr, kk: Expr) -> Stmt:
        i, k = add(m0, ii), add(k0, kk)
        inside = all_of(_bound(i, spec.m, tiles.bm) + _bound(k, spec.k, tiles.bk))
        target = (ii, kk) if tiles.mma else (kk, ii)
        return guarded(inside, Store(shared_a.name, target, spec.load_a(batch, i, k)),
                       Store(shared_a.name, target, zero(spec.dtype)) if inside is not None else None)

    def store_b(kk: Expr, jj: Expr) -> Stmt:
        k, j = add(k0, kk), add(n0, jj)
        inside = all_of(_bound(k, spec.k, tiles.bk) + _bound(j, spec.n, tiles.bn))
        target = (jj, kk) if tiles.mma else (kk, jj)
        return guarded(inside, Store(shared_b.name, target, spec.load_b(batch, k, j)),
                       Store(shared_b.name, target, zero(spec.dtype)) if inside is not None else None)

    return phase(thread, threads, seq(panel(tiles.bm, tiles.bk, True, store_a),
                                      panel(tiles.bk, tiles.bn, False, store_b)))


def _bound(index: Expr, extent: int, tile: int) -> list[Expr]:
    """[index < extent] when tiles of `tile` can run past `extent`, else []."""
    return [less(index, extent)] if extent % tile else []


def _compute_phase(spec: MatmulSpec, tiles: MatmulTiles, shared_a: Buffer, shared_b: Buffer, acc: Buffer) -> Stmt:
    if tiles.mma:
        fields = MmaPhase(spec.fresh("t"), tiles.threads, spec.fresh("w"), spec.fresh("lane"), spec.fresh("g"),
                          spec.fresh("q"), spec.fresh("wr"), spec.fresh("wc"), spec.fresh("kk"), spec.fresh("mi"),
                          spec.fresh("ni"), spec.fresh("c"), tiles.bk, tiles.bm // tiles.warps_m // MMA_M,
                          tiles.bn // tiles.warps_n // MMA_N, tiles.warps_n, shared_a, shared_b, acc)
        return mma_phase(fields)
    thread, kk, i, j = spec.fresh("t"), spec.fresh("kk"), spec.fresh("i"), spec.fresh("j")
    across = tiles.bn // tiles.tn  # threads along N
    tr, tc = spec.fresh("tr"), spec.fresh("tc")
    row = add(Var(tr), mul(Var(i), Const(tiles.bm // tiles.tm)))
    col = add(Var(tc), mul(Var(j), Const(across)))
    element = (Var(thread), add(mul(Var(i), Const(tiles.tn)), Var(j)))
    a = Load(shared_a.name, (Var(kk), row), spec.dtype)
    b = Load(shared_b.name, (Var(kk), col), spec.dtype)
    update = Store(acc.name, element, spec.multiply_add(Load(acc.name, element, acc.dtype), a, b))
    inner = For(i, Const(0), Const(tiles.tm), For(j, Const(0), Const(tiles.tn), update, LoopKind.UNROLL),
                LoopKind.UNROLL)
    body = Let(tr, floordiv(Var(thread), Const(across)), Let(tc, mod(Var(thread), Const(across)),
                                                             For(kk, Const(0), Const(tiles.bk), inner)))
    return phase(thread, tiles.threads, body)


def _epilogue_phase(spec: MatmulSpec, tiles: MatmulTiles, batch, m0: Expr, n0: Expr, acc: Buffer) -> Stmt:
    thread = spec.fresh("t")
    i_name, j_name = spec.fresh("i"), spec.fresh("j")
    loops, element, row, col, lets = _ownership(spec, tiles, thread)

    def body() -> Stmt:
        value = Load(acc.name, (Var(thread), element), acc.dtype)
        inside = all_of(_bound(Var(i_name), spec.m, tiles.bm) + _bound(Var(j_name), spec.n, tiles.bn))
        stmt = guarded(inside, spec.epilogue_store(value, batch, Var(i_name), Var(j_name)))
        return Let(i_name, add(m0, row), Let(j_name, add(n0, col), stmt))

    stmt = body()
    for var, extent in reversed(loops):
        stmt = For(var, Const(0), Const(extent), stmt, LoopKind.UNROLL)
    return phase(thread, tiles.threads, bind_all([name for name, _ in lets], tuple(v for _, v in lets), stmt))


def _ownership(spec: MatmulSpec, tiles: MatmulTiles, thread: str):
    """(unrolled loops, accumulator index, row in tile, column in tile, lets) of thread `thread`."""
    if not tiles.mma:
        i, j = spec.fresh("i"), spec.fresh("j")
        across = tiles.bn // tiles.tn
        tr, tc = spec.fresh("tr"), spec.fresh("tc")
        lets = [(tr, floordiv(Var(thread), Const(across))), (tc, mod(Var(thread), Const(across)))]
        row = add(Var(tr), mul(Var(i), Const(tiles.bm // tiles.tm)))
        col = add(Var(tc), mul(Var(j), Const(across)))
        return [(i, tiles.tm), (j, tiles.tn)], add(mul(Var(i), Const(tiles.tn)), Var(j)), row, col, lets
    fields = MmaPhase(thread, tiles.threads, spec.fresh("w"), spec.fresh("lane"), spec.fresh("g"), spec.fresh("q"),
                      spec.fresh("wr"), spec.fresh("wc"), "", spec.fresh("mi"), spec.fresh("ni"), spec.fresh("c"),
                      tiles.bk, tiles.bm // tiles.warps_m // MMA_M, tiles.bn // tiles.warps_n // MMA_N,
                      tiles.warps_n, None, None, None)
    row, col = fields.row(), fields.col()
    loops = [(fields.mi, fields.tiles_m), (fields.ni, fields.tiles_n), (fields.c, 4)]
    return loops, fields.element(), row, col, fields.lets()


# -- the tensor-core compute phase ----------------------------------------------------------------


@dataclass(frozen=True)
class MmaPhase:
    """The fields of a tensor-core compute phase (see `mma_phase`)."""

    thread: str
    threads: int
    warp: str
    lane: str
    group: str  # g = lane // 4
    quad: str  # q = lane % 4
    warp_row: str
    warp_col: str
    kk: str
    mi: str
    ni: str
    c: str
    bk: int
    tiles_m: int  # 16-row mma tiles per warp
    tiles_n: int  # 8-column mma tiles per warp
    warps_n: int
    shared_a: Buffer | None
    shared_b: Buffer | None
    acc: Buffer | None

    def lets(self) -> list[tuple[str, Expr]]:
        t = Var(self.thread)
        lane = Var(self.lane)
        return [(self.warp, floordiv(t, Const(32))), (self.lane, mod(t, Const(32))),
                (self.group, floordiv(lane, Const(4))), (self.quad, mod(lane, Const(4))),
                (self.warp_row, floordiv(Var(self.warp), Const(self.warps_n))),
                (self.warp_col, mod(Var(self.warp), Const(self.warps_n)))]

    def row(self) -> Expr:
        """wr * (16 * tiles_m) + mi * 16 + g + 8 * (c // 2)"""
        return add(add(add(mul(Var(self.warp_row), Const(MMA_M * self.tiles_m)), mul(Var(self.mi), Const(MMA_M))),
                       Var(self.group)), mul(floordiv(Var(self.c), Const(2)), Const(8)))

    def col(self) -> Expr:
        """wc * (8 * tiles_n) + ni * 8 + 2 * q + c % 2"""
        return add(add(add(mul(Var(self.warp_col), Const(MMA_N * self.tiles_n)), mul(Var(self.ni), Const(MMA_N))),
                       mul(Var(self.quad), Const(2))), mod(Var(self.c), Const(2)))

    def element(self) -> Expr:
        """(mi * tiles_n + ni) * 4 + c"""
        return add(mul(add(mul(Var(self.mi), Const(self.tiles_n)), Var(self.ni)), Const(4)), Var(self.c))


def mma_phase(f: MmaPhase) -> Stmt:
    """acc[t, e] += sum over kk of As[row(t, e), kk] * Bs[col(t, e), kk], in the mma fragment layout."""
    element = (Var(f.thread), f.element())
    acc_dtype = f.acc.dtype
    a = Cast(acc_dtype, Load(f.shared_a.name, (f.row(), Var(f.kk)), f.shared_a.dtype))
    b = Cast(acc_dtype, Load(f.shared_b.name, (f.col(), Var(f.kk)), f.shared_b.dtype))
    update = Store(f.acc.name, element, Binary("add", Load(f.acc.name, element, acc_dtype), Binary("mul", a, b)))
    body: Stmt = For(f.c, Const(0), Const(4), update, LoopKind.UNROLL)
    body = For(f.ni, Const(0), Const(f.tiles_n), body, LoopKind.UNROLL)
    body = For(f.mi, Const(0), Const(f.tiles_m), body, LoopKind.UNROLL)
    body = For(f.kk, Const(0), Const(f.bk), body)
    lets = f.lets()
    return phase(f.thread, f.threads, bind_all([n for n, _ in lets], tuple(v for _, v in lets), body))


def match_mma_phase(loop: For, buffers: dict[str, Buffer]) -> MmaPhase | None:
    """The fields of `loop` if it is exactly an `mma_phase`, else None."""
    try:
        lets, body = [], loop.body
        while isinstance(body, Let):
            lets.append((body.var, body.value))
            body = body.body
        kk_loop, mi_loop = body, body.body
        ni_loop, c_loop = mi_loop.body, mi_loop.body.body
        update = c_loop.body
        product = update.value.right
        a_load, b_load = product.left.operand, product.right.operand
        warp_row = lets[4][1]  # w // WN, folded to w when WN = 1
        warps_n = warp_row.right.value if isinstance(warp_row, Binary) else 1
        fields = MmaPhase(loop.var, int(loop.extent.value), *(name for name, _ in lets), kk_loop.var, mi_loop.var,
                          ni_loop.var, c_loop.var, int(kk_loop.extent.value), int(mi_loop.extent.value),
                          int(ni_loop.extent.value), int(warps_n), buffers[a_load.buffer], buffers[b_load.buffer],
                          buffers[update.buffer])
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return None
    if fields.shared_a.dtype not in (DType.BF16, DType.F16) or fields.bk % MMA_K:
        return None
    return fields if mma_phase(fields) == loop else None
