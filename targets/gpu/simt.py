"""The SIMT form: loop IR that maps one to one onto a CUDA grid, and the checks that it does.

A kernel in SIMT form has exactly this shape (`GpuSchedule` produces it, `codegen` consumes it):

    for b in 0..G parallel {                 # the grid: one iteration per thread block, b = blockIdx.x
        BLOCK
    }
    BLOCK  := a sequence of
              let x = <uniform value> { BLOCK }       evaluated by every thread, the same in all of them
              local buf[...] { BLOCK }                a block-level local: shared memory or registers
              for k in a..b { BLOCK }                 a serial loop around phases (the k tiles of a matmul)
              if <uniform condition> { BLOCK }
              PHASE
    PHASE  := for t in 0..E parallel { THREAD }      threads t < E of the block run THREAD, t = threadIdx.x
    THREAD := loop IR without parallel loops         (serial and unrolled loops, lets, ifs, thread locals)

The block size is the largest phase extent. Read serially (as `ir.loop_eval` does), the phases of a
block run one after another and the threads of a phase one after another. On the GPU the threads of a
phase run at once and a barrier (`bar.sync`) separates consecutive phases, so both readings agree when
the threads of one phase never touch a location that another thread of the same phase writes. The
schedules guarantee this: each thread stores only its own elements, and values one thread needs from
another (a tile loaded cooperatively, a partial sum) cross a phase boundary. Block-level lets and
conditions mention no thread variable, so every thread computes the same value.

Block-level locals: a buffer is *private* (one copy per thread, in registers) when every access in a
phase indexes its first axis with exactly that phase's thread variable: thread t only ever touches row
t, so the rows can live in t's registers and the first index is dropped. Every other block-level local
is *shared* (one copy per block, in shared memory, address space 3).

Two phase forms are recognised and emitted specially (each by rebuilding the canonical statement from
the fields it found and comparing for equality, so a near miss is never taken for one):

* `block_allreduce`: every thread folds all rows of a private partial into a shared scalar. Emitted as
  warp shuffles (`shfl.sync.bfly`) and one round through shared memory; the fold order differs (a tree),
  which the reduction contract allows (`ReduceStage.combine` is associative up to rounding).
* the tensor-core phase of `schedules.matmul` (`match_mma_phase` there).
"""

from __future__ import annotations

from dataclasses import dataclass

from ir.loops import (Allocate, Binary, Buffer, Const, Expr, For, If, Kernel, Let, Load, LoopKind, Scope, Seq,
                      Stmt, Store, Var, map_expr, walk)
from targets.gpu.occupancy import STATIC_SHARED_LIMIT

WARP = 32
MAX_THREADS = 1024
SHARED_ALIGNMENT = 16  # the code generator aligns every shared array to 16 bytes


class SimtError(Exception):
    """Loop IR that is not in SIMT form (a bug in a GPU schedule: the message says what was expected)."""


@dataclass(frozen=True)
class AllReduce:
    """A recognised block all-reduce phase: dest[0] = fold of source[t, 0] over all threads t."""

    thread_var: str
    threads: int
    source: str  # private partial, shape (threads, 1)
    dest: str  # shared, shape (1,)
    combiner: str  # loop IR binary op
    init: Const
    acc: Buffer  # the thread-local accumulator of the serial reading
    lane_var: str


@dataclass(frozen=True)
class SimtKernel:
    """What the code generator needs to know about a kernel in SIMT form."""

    name: str
    grid: int
    block: int
    grid_var: str
    shared: tuple[Buffer, ...]
    private: tuple[Buffer, ...]
    phases: int
    scratch: tuple[int, ...] = ()  # bytes of the code generator's own shared arrays (all-reduce warp totals)

    @property
    def shared_bytes(self) -> int:
        """Static shared memory per block: every array aligned to `SHARED_ALIGNMENT` bytes."""
        sizes = [buffer.nbytes for buffer in self.shared] + list(self.scratch)
        return sum(-(-size // SHARED_ALIGNMENT) * SHARED_ALIGNMENT for size in sizes)


# -- builders -------------------------------------------------------------------------------------


def grid_loop(var: str, blocks: int, body: Stmt) -> For:
    return For(var, Const(0), Const(blocks), body, LoopKind.PARALLEL)


def phase(var: str, threads: int, body: Stmt) -> For:
    return For(var, Const(0), Const(threads), body, LoopKind.PARALLEL)


def block_allreduce(thread_var: str, threads: int, source: Buffer, dest: Buffer, combiner: str, init: Const,
                    acc: Buffer, lane_var: str) -> For:
    """The canonical all-reduce phase: every thread folds source[0..threads, 0] into dest[0].

        for t in 0..T parallel { local acc[1]; acc[0] = init
                                 for w in 0..T { acc[0] = combine(acc[0], source[w, 0]) }
                                 dest[0] = acc[0] }
    """
    zero = (Const(0),)
    fold = For(lane_var, Const(0), Const(threads),
               Store(acc.name, zero, Binary(combiner, Load(acc.name, zero, acc.dtype),
                                            Load(source.name, (Var(lane_var), Const(0)), source.dtype))))
    body = Allocate(acc, Seq((Store(acc.name, zero, init), fold,
                              Store(dest.name, zero, Load(acc.name, zero, acc.dtype)))))
    return phase(thread_var, threads, body)


def match_block_allreduce(loop: For, dtypes: dict[str, Buffer]) -> AllReduce | None:
    """The fields of `loop` if it is exactly a `block_allreduce` phase, else None."""
    if not (loop.kind is LoopKind.PARALLEL and isinstance(loop.extent, Const) and isinstance(loop.body, Allocate)):
        return None
    inner = loop.body.body
    if not (isinstance(inner, Seq) and len(inner.stmts) == 3):
        return None
    first, fold, last = inner.stmts
    if not (isinstance(first, Store) and isinstance(first.value, Const) and isinstance(fold, For)
            and isinstance(fold.body, Store) and isinstance(fold.body.value, Binary) and isinstance(last, Store)):
        return None
    combine = fold.body.value
    if not isinstance(combine.right, Load):
        return None
    source = dtypes.get(combine.right.buffer)
    dest = dtypes.get(last.buffer)
    if source is None or dest is None:
        return None
    found = AllReduce(loop.var, int(loop.extent.value), source.name, dest.name, combine.op, first.value,
                      loop.body.buffer, fold.var)
    expected = block_allreduce(found.thread_var, found.threads, source, dest, found.combiner, found.init,
                               found.acc, found.lane_var)
    return found if expected == loop else None


# -- analysis -------------------------------------------------------------------------------------


def analyze(kernel: Kernel) -> SimtKernel:
    """Check that `kernel` is in SIMT form and classify its block-level locals; SimtError if not."""
    body = kernel.body
    if not (isinstance(body, For) and body.kind is LoopKind.PARALLEL and body.start == Const(0)
            and isinstance(body.extent, Const)):
        raise SimtError(f"kernel {kernel.name}: expected a parallel grid loop 'for b in 0..G parallel' as the "
                        f"whole body, found {type(body).__name__}")
    walker = _BlockWalker(kernel.name, {p.name: p for p in kernel.params})
    walker.block(body.body)
    if not walker.phases:
        raise SimtError(f"kernel {kernel.name}: expected at least one thread phase")
    shared, private = [], []
    for buffer in walker.block_locals:
        (private if walker.is_private(buffer.name) else shared).append(buffer)
    result = SimtKernel(kernel.name, int(body.extent.value), max(walker.phases), body.var, tuple(shared),
                        tuple(private), len(walker.phases), tuple(walker.scratch))
    if result.block > MAX_THREADS:
        raise SimtError(f"kernel {kernel.name}: a phase of {result.block} threads exceeds {MAX_THREADS}")
    if result.shared_bytes > STATIC_SHARED_LIMIT:
        raise SimtError(f"kernel {kernel.name}: {result.shared_bytes} bytes of shared memory exceed the "
                        f"{STATIC_SHARED_LIMIT}-byte static limit")
    return result


class _BlockWalker:
    def __init__(self, kernel: str, params: dict[str, Buffer]) -> None:
        self.kernel = kernel
        self.buffers: dict[str, Buffer] = dict(params)
        self.block_locals: list[Buffer] = []
        self.phases: list[int] = []
        self.cross_thread: set[str] = set()  # block locals read with another thread's index
        self.scratch: list[int] = []

    def fail(self, what: str) -> None:
        raise SimtError(f"kernel {self.kernel}: {what}")

    def block(self, stmt: Stmt) -> None:
        match stmt:
            case Seq():
                for child in stmt.stmts:
                    self.block(child)
            case Let():
                self.uniform(stmt.value)
                self.block(stmt.body)
            case Allocate():
                self.buffers[stmt.buffer.name] = stmt.buffer
                self.block_locals.append(stmt.buffer)
                self.block(stmt.body)
            case If():
                self.uniform(stmt.cond)
                self.block(stmt.then_body)
                if stmt.else_body is not None:
                    self.block(stmt.else_body)
            case For() if stmt.kind is LoopKind.PARALLEL:
                self.phase(stmt)
            case For():
                if not any(isinstance(n, For) and n.kind is LoopKind.PARALLEL for n in walk(stmt.body)):
                    self.fail(f"the block-level loop '{stmt.var}' holds no thread phase (every thread would "
                              "run it); expected its work inside 'for t in 0..E parallel'")
                self.block(stmt.body)
            case _:
                self.fail(f"expected a let, local, loop, if or thread phase at block level, found "
                          f"{type(stmt).__name__} (a store outside every thread phase)")

    def uniform(self, expr: Expr) -> None:
        """A block-level expression: every block local it reads is shared (no thread owns it)."""
        for node in walk(expr):
            if isinstance(node, Load):
                self.cross_thread.add(node.buffer)

    def phase(self, loop: For) -> None:
        if not (loop.start == Const(0) and isinstance(loop.extent, Const) and loop.step == 1):
            self.fail(f"expected a thread phase 'for {loop.var} in 0..E parallel' with a constant E")
        self.phases.append(int(loop.extent.value))
        allreduce = match_block_allreduce(loop, self.buffers)
        if allreduce is not None:
            self.cross_thread.add(allreduce.dest)
            if allreduce.threads % WARP:
                self.fail(f"a block all-reduce needs a multiple of {WARP} threads, found {allreduce.threads}")
            warps = allreduce.threads // WARP
            if warps > 1:  # one total per warp, through shared memory (codegen/reduce.py)
                self.scratch.append(warps * self.buffers[allreduce.source].dtype.itemsize)
            return
        from targets.gpu.schedules.matmul import match_mma_phase  # the schedule owns its phase form
        if match_mma_phase(loop, self.buffers) is not None:
            return
        for node in walk(loop.body):
            if isinstance(node, For) and node.kind is LoopKind.PARALLEL:
                self.fail(f"a parallel loop '{node.var}' inside the thread phase '{loop.var}'")
            if isinstance(node, (Load, Store)) and node.buffer in self.buffers:
                first = node.indices[0] if node.indices else None
                if first != Var(loop.var):
                    self.cross_thread.add(node.buffer)

    def is_private(self, name: str) -> bool:
        return name not in self.cross_thread


def strip_private(stmt: Stmt, private: frozenset[str]) -> Stmt:
    """`stmt` with the first index of every access to a private buffer dropped (each thread's row)."""
    if not private:
        return stmt
    return _rewrite_stmt(stmt, private)


def _rewrite_stmt(stmt: Stmt, private: frozenset[str]) -> Stmt:
    match stmt:
        case Seq():
            return Seq(tuple(_rewrite_stmt(s, private) for s in stmt.stmts))
        case Store():
            indices = tuple(_rewrite_expr(i, private) for i in stmt.indices)
            if stmt.buffer in private:
                indices = indices[1:]
            return Store(stmt.buffer, indices, _rewrite_expr(stmt.value, private))
        case For():
            return For(stmt.var, _rewrite_expr(stmt.start, private), _rewrite_expr(stmt.extent, private),
                       _rewrite_stmt(stmt.body, private), stmt.kind, stmt.step)
        case If():
            return If(_rewrite_expr(stmt.cond, private), _rewrite_stmt(stmt.then_body, private),
                      None if stmt.else_body is None else _rewrite_stmt(stmt.else_body, private))
        case Let():
            return Let(stmt.var, _rewrite_expr(stmt.value, private), _rewrite_stmt(stmt.body, private))
        case Allocate():
            return Allocate(stmt.buffer, _rewrite_stmt(stmt.body, private))
    raise TypeError(f"not a loop IR statement: {stmt!r}")


def _rewrite_expr(expr: Expr, private: frozenset[str]) -> Expr:
    if isinstance(expr, Load):
        indices = tuple(_rewrite_expr(i, private) for i in expr.indices)
        return Load(expr.buffer, indices[1:] if expr.buffer in private else indices, expr.dtype)
    return map_expr(expr, lambda child: _rewrite_expr(child, private))


def private_buffer(buffer: Buffer) -> Buffer:
    """The per-thread buffer of a private block local: its shape without the thread axis."""
    return Buffer(buffer.name, buffer.dtype, buffer.shape[1:] or (1,), scope=Scope.LOCAL)
