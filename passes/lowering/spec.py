"""Kernel specs: WHAT one kernel computes, separate from HOW its loops are laid out.

Lowering graph IR to loop IR happens in two steps, as in Halide and TVM ("algorithm + schedule"):

1. `passes.lowering.lower` turns each kernel-to-be (one fusion group, or one ungrouped node) into a
   *kernel spec* from this module: the iteration space and, as functions of index expressions, the
   scalar loop-IR expressions of every value the kernel stores. The functions fold view ops into index
   arithmetic and inline every intermediate of a group (XLA's "elemental emitter" idea), so a spec
   never mentions a global buffer for a value that stays inside its group.
2. A *schedule* (`Schedule`) turns each spec into a loop nest (`ir.loops.Stmt`). `NaiveSchedule` gives
   plain serial loops; a target's schedule tiles, vectorizes, parallelizes and packs, calling the same
   functions with its own index expressions (`j * 16 + v`, ...). A schedule never has to know which
   graph ops a kernel came from.

Four spec kinds cover every kernel (`kind` is also the kernel's "kind" attribute):

* `ElementwiseSpec` ("elementwise"): a domain shape and outputs of that shape; `store(index)` is the
  statement that writes every output at one point.
* `ReductionSpec` ("reduction"): a domain D reduced over `reduce_axes`; ordered `stages` (one per
  reduction, each an accumulator with init/combine/finalize), then the epilogue: `reduced_outputs`
  stored once per kept position and `domain_outputs` stored at every domain point. Rows of D may be
  cached in local buffers (`row_candidates`, `row_buffer`, `row_value`, the `cache` arguments).
* `MatmulSpec` ("matmul"): batch shape, M, N, K, operand loads with their prologue folded in
  (`load_a`, `load_b`), the accumulation (`init`, `multiply_add`), and the epilogue (`epilogue_store`).
* `CopySpec` ("copy"): an output written region by region (concat).

Index expressions are tuples of i64 `ir.loops.Expr`s (`Indices`). Values that a point shares between
several uses are bound once with `Let`: functions that compute values return `Scalars` (the `lets`
and the `values`), and `Scalars.bind(body)` wraps a statement in those lets; functions that return a
`Stmt` have already wrapped it. Every name a spec invents (let-bound values, stage results) comes from
the spec's `NameGen`; a schedule takes its loop variable and local buffer names from `spec.fresh(...)`
so that nothing collides.

What a kernel reads and writes: `reads` are the global buffers it loads (program inputs, values
stored by earlier kernels), `writes` the buffers of its outputs (values used by another kernel or
returned); parameters are `reads + writes`. Constants and iotas are never stored unless returned: they
are computed inline wherever they are read. A schedule must store every element of every output once
(or several times with the same value) and may evaluate the spec's functions at any point in any
order, as often as it likes: they only read buffers the kernel does not write.

Writing a schedule (see `NaiveSchedule` for all four kinds, and `tests/passes/test_lowering_spec.py`
for one with tiles, split accumulators and packing):

    def elementwise(self, spec):
        i, j = spec.fresh("i"), spec.fresh("j")
        body = spec.store((Var(i), Var(j)))            # a rank-2 domain
        return For(i, Const(0), Const(spec.domain[0]), For(j, Const(0), Const(spec.domain[1]), body))

Numerics (the reference interpreter is the definition, see `ir.interpreter`): every elementwise op is
the loop IR op of the same name in the value's dtype, so f16 and bf16 round after each op exactly as
the interpreter does. Reductions and matmuls of f16/bf16 accumulate in f32 and round once at the end
(`acc_dtype`), as numpy does for f16 matmul and mean; integers accumulate in their own dtype and wrap,
which equals numpy's wider accumulation followed by the cast back. `mean` divides the f32 (or f64) sum
by the element count before rounding, as numpy does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Mapping, Protocol

import numpy as np

from ir.dtypes import DType
from ir.loops import (Binary, Buffer, Cast, Const, Expr, Let, Load, Scope, Stmt, Store, Var, seq)

if TYPE_CHECKING:
    from passes.lowering.elemental import Elemental

Indices = tuple[Expr, ...]
RowCache = Mapping[int, Buffer]  # graph node -> local buffer holding its values along the current row


class UnsupportedGroup(Exception):
    """A legal fusion group this lowering cannot turn into one kernel; its members are lowered apart."""


class NameGen:
    """Fresh names for one kernel: `fresh("i")` gives "i", then "i_1", "i_2", ..."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken = set(taken)

    def fresh(self, base: str) -> str:
        name = base
        counter = 0
        while name in self._taken:
            counter += 1
            name = f"{base}_{counter}"
        self._taken.add(name)
        return name

    def reserve(self, name: str) -> None:
        self._taken.add(name)


@dataclass(frozen=True)
class Scalars:
    """Scalar values computed at one point of an iteration space.

    `values` may refer to the variables bound in `lets` (in order; each may use the earlier ones), so a
    statement that uses the values must sit inside `bind(...)`.
    """

    lets: tuple[tuple[str, Expr], ...]
    values: tuple[Expr, ...]

    def bind(self, body: Stmt) -> Stmt:
        """`body` inside the let bindings of these values."""
        for name, value in reversed(self.lets):
            body = Let(name, value, body)
        return body

    @property
    def value(self) -> Expr:
        """The only value (for requests of one value)."""
        (only,) = self.values
        return only


@dataclass(frozen=True)
class OutputSlot:
    """One value a kernel stores: graph node `node`, written to the global buffer `buffer`."""

    node: int
    buffer: Buffer


@dataclass(eq=False)
class KernelSpec:
    """What every kernel spec has: its name, the graph nodes it computes and the buffers it touches.

    `reads` are the global buffers it loads (program inputs and intermediates written by earlier
    kernels), `writes` those it stores; the kernel's parameters are `reads + writes` in that order.
    """

    kind: ClassVar[str] = ""
    name: str
    nodes: tuple[int, ...]  # live graph nodes computed by this kernel, topological order
    group: int | None  # the fusion group, or None for an ungrouped node
    reads: tuple[Buffer, ...]
    writes: tuple[Buffer, ...]
    names: NameGen
    elemental: Elemental

    @property
    def params(self) -> tuple[Buffer, ...]:
        return self.reads + self.writes

    def fresh(self, base: str) -> str:
        """A name unused in this kernel (for loop variables, accumulators, local buffers)."""
        return self.names.fresh(base)

    def attrs(self) -> tuple[tuple[str, object], ...]:
        """The kernel attributes later stages read: kind, graph nodes and fusion group."""
        attrs: dict[str, object] = {"kind": self.kind, "nodes": self.nodes}
        if self.group is not None:
            attrs["group"] = self.group
        return tuple(sorted(attrs.items()))


def _stores(slots: tuple[OutputSlot, ...], indices: Iterable[Indices], scalars: Scalars) -> Stmt:
    body = seq(*(Store(slot.buffer.name, index, value)
                 for slot, index, value in zip(slots, indices, scalars.values)))
    return scalars.bind(body)


# -- elementwise ----------------------------------------------------------------------------------


@dataclass(eq=False)
class ElementwiseSpec(KernelSpec):
    """Outputs of shape `domain`, each element a function of the inputs at (broadcast) indices.

    A schedule loops over the domain (any order, any tiling: points are independent) and emits
    `store(index)` at each point. Standalone view ops (a transpose or reshape that is its own kernel)
    are elementwise copies; constant and iota outputs are fills.
    """

    kind: ClassVar[str] = "elementwise"
    domain: tuple[int, ...] = ()
    outputs: tuple[OutputSlot, ...] = ()

    def values(self, index: Indices) -> Scalars:
        """The value of every output (in `outputs` order) at domain point `index`."""
        return self.elemental.compute([(slot.node, index) for slot in self.outputs])

    def store(self, index: Indices) -> Stmt:
        """Store every output at domain point `index`."""
        return _stores(self.outputs, [index] * len(self.outputs), self.values(index))


# -- reduction ------------------------------------------------------------------------------------

_COMBINERS = {"sum": "add", "mean": "add", "max": "maximum", "min": "minimum"}


def accumulator_dtype(dtype: DType) -> DType:
    """The dtype reductions and matmuls accumulate in: f32 for f16/bf16, else the value's own."""
    return DType.F32 if dtype in (DType.F16, DType.BF16) else dtype


@dataclass(frozen=True)
class ReduceStage:
    """One reduction of a reduction kernel: an accumulator over the reduced axes.

    A schedule starts an accumulator at `init`, folds `combine(acc, value)` over every reduced point
    (`value` from `ReductionSpec.stage_input`), and binds `Let(result.name, finalize(acc), rest)`
    around everything that follows (later stages and the epilogue read `result`). `combine` is
    associative and commutative up to rounding, so partial accumulators (vector lanes, threads) may be
    combined with `combine` too.
    """

    node: int
    op: str  # "sum", "mean", "max" or "min"
    dtype: DType  # the reduction's result dtype
    acc_dtype: DType  # the accumulator's dtype (see `accumulator_dtype`)
    count: int  # number of elements reduced into each result
    result: Var  # the finalized scalar, in `dtype`

    @property
    def combiner(self) -> str:
        """The loop IR binary op that folds a value into the accumulator."""
        return _COMBINERS[self.op]

    @property
    def init(self) -> Const:
        """The identity of `combiner`, in `acc_dtype`."""
        dtype = self.acc_dtype
        if self.combiner == "add":
            return Const(0.0 if dtype.is_float else 0, dtype)
        if dtype.is_float:
            return Const(float("-inf") if self.op == "max" else float("inf"), dtype)
        info = np.iinfo(dtype.numpy)
        return Const(int(info.min) if self.op == "max" else int(info.max), dtype)

    def combine(self, acc: Expr, value: Expr) -> Expr:
        """`acc` with `value` folded in (the value is cast to `acc_dtype` when it differs)."""
        if value.dtype != self.acc_dtype:
            value = Cast(self.acc_dtype, value)
        return Binary(self.combiner, acc, value)

    def finalize(self, acc: Expr) -> Expr:
        """The reduction's result from the final accumulator: divided by `count` for a mean, rounded
        to `dtype`."""
        if self.op == "mean":
            acc = Binary("div", acc, Const(float(self.count), self.acc_dtype))
        return acc if self.dtype == self.acc_dtype else Cast(self.dtype, acc)


@dataclass(eq=False)
class ReductionSpec(KernelSpec):
    """Reductions over `reduce_axes` of a domain D, with their prologue and epilogue in one kernel.

    Index spaces: the *kept* index has one entry per kept axis (`kept_axes`, extents `kept_shape`),
    the *reduced* index one per reduced axis (`reduce_shape`); `domain_index(kept, red)` interleaves
    them into a D index. Points of different kept positions are independent (a schedule may run them
    in parallel); within one kept position the schedule must, in order:

    1. for each stage k: accumulate `stage.combine(acc, stage_input(k, kept, red).value)` over every
       reduced index `red`, then bind `stage.result` to `stage.finalize(acc)` around what follows;
    2. emit `reduced_store(kept)` (outputs of the reduced shape, one element per kept position) and,
       at every reduced index, `domain_store(kept, red)` (outputs of shape D).

    Row caching: every function that reads D-shaped values takes an optional `cache` mapping a node of
    `row_candidates` to a local buffer made by `row_buffer(node)` (indexed by the reduced index); the
    node is then read from the buffer instead of being recomputed or reloaded. The schedule fills the
    buffer with `row_value(node, kept, red, cache)` at every reduced index, before stage
    `ready_after(node)` runs and after the stages before it (the value reads their results).
    `row_suggestions` is a good subset: each suggested row is still read by two or more passes when
    the suggested rows after it are cached. For the prelude's softmax it is `exp(x - max)` (x is read
    twice, exp computed once), for layernorm `x - mean`, for rmsnorm `x` (read once).
    """

    kind: ClassVar[str] = "reduction"
    domain: tuple[int, ...] = ()
    reduce_axes: tuple[int, ...] = ()
    stages: tuple[ReduceStage, ...] = ()
    reduced_outputs: tuple[OutputSlot, ...] = ()  # shape: D with reduced axes kept as 1, or dropped
    domain_outputs: tuple[OutputSlot, ...] = ()  # shape D
    row_candidates: tuple[int, ...] = ()  # D-shaped nodes read by several passes over a row, topological
    row_suggestions: tuple[int, ...] = ()  # the candidates worth caching (a subset; see the builder)
    _ready: Mapping[int, int] | None = None  # node -> ready_after

    @property
    def kept_axes(self) -> tuple[int, ...]:
        return tuple(axis for axis in range(len(self.domain)) if axis not in self.reduce_axes)

    @property
    def kept_shape(self) -> tuple[int, ...]:
        return tuple(self.domain[axis] for axis in self.kept_axes)

    @property
    def reduce_shape(self) -> tuple[int, ...]:
        return tuple(self.domain[axis] for axis in self.reduce_axes)

    def domain_index(self, kept: Indices, red: Indices) -> Indices:
        """The D index of kept position `kept` and reduced position `red`."""
        kept_iter, red_iter = iter(kept), iter(red)
        return tuple(next(red_iter) if axis in self.reduce_axes else next(kept_iter)
                     for axis in range(len(self.domain)))

    def stage_input(self, stage: int, kept: Indices, red: Indices, cache: RowCache | None = None) -> Scalars:
        """The operand of stage `stage`'s reduction at one domain point (in the operand's dtype).

        It may read the `result` of earlier stages, never of this or later ones."""
        node = self.elemental.graph.operands(self.stages[stage].node)[0]
        return self.elemental.compute([(node, self.domain_index(kept, red))], kept=kept, cache=cache)

    def reduced_output_index(self, slot: OutputSlot, kept: Indices) -> Indices:
        """Where a reduced output's element for kept position `kept` goes in its buffer."""
        if len(slot.buffer.shape) == len(self.domain):
            return self.domain_index(kept, (Const(0),) * len(self.reduce_axes))
        return kept

    def reduced_values(self, kept: Indices) -> Scalars:
        """Every reduced output's value at kept position `kept` (after all stages)."""
        return self.elemental.compute(
            [(slot.node, self.reduced_output_index(slot, kept)) for slot in self.reduced_outputs], kept=kept)

    def reduced_store(self, kept: Indices) -> Stmt:
        """Store every reduced output at kept position `kept` (after all stages)."""
        indices = [self.reduced_output_index(slot, kept) for slot in self.reduced_outputs]
        return _stores(self.reduced_outputs, indices, self.reduced_values(kept))

    def domain_values(self, kept: Indices, red: Indices, cache: RowCache | None = None) -> Scalars:
        """Every D-shaped output's value at one domain point (after all stages)."""
        index = self.domain_index(kept, red)
        return self.elemental.compute([(slot.node, index) for slot in self.domain_outputs], kept=kept,
                                      cache=cache)

    def domain_store(self, kept: Indices, red: Indices, cache: RowCache | None = None) -> Stmt:
        """Store every D-shaped output at one domain point (after all stages)."""
        index = self.domain_index(kept, red)
        return _stores(self.domain_outputs, [index] * len(self.domain_outputs),
                       self.domain_values(kept, red, cache))

    def ready_after(self, node: int) -> int:
        """How many stages must be finalized before `node` (a row candidate) can be computed."""
        return 0 if self._ready is None else self._ready.get(node, 0)

    def row_buffer(self, node: int, name: str | None = None) -> Buffer:
        """A local buffer for one row of `node`: its dtype, shape `reduce_shape`."""
        dtype = self.elemental.graph.node(node).type.dtype
        return Buffer(name or self.fresh(f"row{node}"), dtype, self.reduce_shape, scope=Scope.LOCAL)

    def row_value(self, node: int, kept: Indices, red: Indices, cache: RowCache | None = None) -> Scalars:
        """`node` at one domain point, computed from its operands (which may come from `cache`; the
        node's own entry in `cache` is ignored): what a schedule stores into the node's row buffer."""
        others = {n: b for n, b in (cache or {}).items() if n != node}
        return self.elemental.compute([(node, self.domain_index(kept, red))], kept=kept, cache=others)


# -- matmul ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class MatmulSpec(KernelSpec):
    """out[b..., i, j] = epilogue(sum over k of A[b..., i, k] * B[b..., k, j]).

    `batch_shape` is the output's batch shape (operand batch dimensions broadcast into it, numpy
    style); `load_a(batch, i, k)` and `load_b(batch, k, j)` give operand elements in `dtype` with any
    prologue (transposes, reshapes, broadcasts, casts) folded into the index arithmetic. A schedule
    keeps an accumulator per output element starting at `init`, folds `multiply_add(acc, a, b)` over k,
    and finishes with `epilogue_store(acc, batch, i, j)`, which stores every output of the kernel (the
    matmul itself if it is needed outside, and its elementwise epilogue: bias, activation, residual).
    Operand loads may be hoisted, packed into local buffers or reordered freely: they read only
    buffers this kernel does not write.
    """

    kind: ClassVar[str] = "matmul"
    batch_shape: tuple[int, ...] = ()
    m: int = 0
    n: int = 0
    k: int = 0
    dtype: DType = DType.F32  # the operands' and the matmul's dtype
    anchor: int = -1  # the matmul node
    outputs: tuple[OutputSlot, ...] = ()  # all of the output's shape batch_shape + (m, n)
    _load_a: Callable[[Indices, Expr, Expr], Expr] | None = None
    _load_b: Callable[[Indices, Expr, Expr], Expr] | None = None

    @property
    def acc_dtype(self) -> DType:
        return accumulator_dtype(self.dtype)

    @property
    def init(self) -> Const:
        return Const(0.0 if self.acc_dtype.is_float else 0, self.acc_dtype)

    def load_a(self, batch: Indices, i: Expr, k: Expr) -> Expr:
        """A[batch, i, k] in `dtype` (no let bindings needed: the prologue is views and casts)."""
        return self._load_a(batch, i, k)

    def load_b(self, batch: Indices, k: Expr, j: Expr) -> Expr:
        """B[batch, k, j] in `dtype`."""
        return self._load_b(batch, k, j)

    def multiply_add(self, acc: Expr, a: Expr, b: Expr) -> Expr:
        """acc + a * b, with a and b converted to `acc_dtype` first."""
        if a.dtype != self.acc_dtype:
            a = Cast(self.acc_dtype, a)
        if b.dtype != self.acc_dtype:
            b = Cast(self.acc_dtype, b)
        return Binary("add", acc, Binary("mul", a, b))

    def result(self, acc: Expr) -> Expr:
        """The matmul's value (in `dtype`) from a finished accumulator."""
        return acc if self.dtype == self.acc_dtype else Cast(self.dtype, acc)

    def epilogue_values(self, acc: Expr, batch: Indices, i: Expr, j: Expr) -> Scalars:
        """Every output's value at [batch, i, j], given the finished accumulator `acc` there."""
        index = tuple(batch) + (i, j)
        matmul_value = self.result(acc)
        return self.elemental.compute([(slot.node, index) for slot in self.outputs],
                                      anchor=(self.anchor, index, matmul_value))

    def epilogue_store(self, acc: Expr, batch: Indices, i: Expr, j: Expr) -> Stmt:
        """Store every output at [batch, i, j], given the finished accumulator `acc` there."""
        index = tuple(batch) + (i, j)
        return _stores(self.outputs, [index] * len(self.outputs), self.epilogue_values(acc, batch, i, j))


# -- copy -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyRegion:
    """A block of the output: positions `offset + index` for every `index` of `shape`, copied from
    the value of graph node `source` at `index`."""

    source: int
    shape: tuple[int, ...]
    offset: tuple[int, ...]


@dataclass(eq=False)
class CopySpec(KernelSpec):
    """An output assembled from regions (a concat): the regions tile the output without overlap.

    A schedule loops over each region's shape (regions are independent) and emits
    `region_store(r, index)`.
    """

    kind: ClassVar[str] = "copy"
    output: OutputSlot | None = None
    regions: tuple[CopyRegion, ...] = ()

    def region_store(self, region: int, index: Indices) -> Stmt:
        """Store the element at `index` of region `region` in its place in the output."""
        spec = self.regions[region]
        scalars = self.elemental.compute([(spec.source, index)])
        target = tuple(Binary("add", i, Const(o)) if o else i for i, o in zip(index, spec.offset))
        return scalars.bind(Store(self.output.buffer.name, target, scalars.value))


# -- schedules ------------------------------------------------------------------------------------


class Schedule(Protocol):
    """Turns kernel specs into loop nests. Each method returns the kernel's body: a statement over the
    spec's `params` (and any local buffers it allocates)."""

    def elementwise(self, spec: ElementwiseSpec) -> Stmt: ...

    def reduction(self, spec: ReductionSpec) -> Stmt: ...

    def matmul(self, spec: MatmulSpec) -> Stmt: ...

    def copy(self, spec: CopySpec) -> Stmt: ...


def schedule_kernel(schedule: Schedule, spec: KernelSpec) -> Stmt:
    """The body `schedule` gives `spec`, dispatched on the spec's kind."""
    if isinstance(spec, ElementwiseSpec):
        return schedule.elementwise(spec)
    if isinstance(spec, ReductionSpec):
        return schedule.reduction(spec)
    if isinstance(spec, MatmulSpec):
        return schedule.matmul(spec)
    if spec.kind == "sparse_matmul":  # a schedule may have `sparse_matmul`; else the naive sparse loops
        from passes.lowering.sparse import schedule_sparse
        return schedule_sparse(schedule, spec)
    if isinstance(spec, CopySpec):
        return schedule.copy(spec)
    raise TypeError(f"not a kernel spec: {spec!r}")


def local_accumulator(spec: KernelSpec, dtype: DType, base: str = "acc") -> Buffer:
    """A one-element local buffer for an accumulator (loop IR has no mutable scalars)."""
    return Buffer(spec.fresh(base), dtype, (1,), scope=Scope.LOCAL)


def accumulate(acc: Buffer, value: Expr) -> Store:
    """acc[0] = value."""
    return Store(acc.name, (Const(0),), value)


def read(acc: Buffer) -> Load:
    """acc[0]."""
    return Load(acc.name, (Const(0),), acc.dtype)


__all__ = [
    "Indices", "RowCache", "UnsupportedGroup", "NameGen", "Scalars", "OutputSlot", "KernelSpec",
    "ElementwiseSpec", "accumulator_dtype", "ReduceStage", "ReductionSpec", "MatmulSpec", "CopyRegion",
    "CopySpec", "Schedule", "schedule_kernel", "local_accumulator", "accumulate", "read",
]
