"""Target-independent counts: FLOPs, transcendental ops and bytes per kernel, computed once per program.

Two levels give the same `ProgramCounts`:

* `count_loop_program(program)` walks the loop IR a target compiles (`targets.loop_counts`): trip counts
  are multiplied, never iterated, so a kernel of 10^12 iterations costs as much to count as one of 10.
* `count_graph(graph)` counts from the graph IR and its fusion groups, for targets (or stages) that do not
  build the loop IR: one kernel per group (or per operation when the graph has no groups), with the
  operation formulas below.

Counting reads only shapes and dtypes: it never executes the program or allocates its tensors.

Operation costs (per result element unless said): arithmetic and comparisons 1 op; `select` 1; casts,
views, constants 0; a matmul 2*M*N*K per batch; a reduction one op per reduced element (plus a divide
per result for mean); transcendental unary ops count one transcendental plus the arithmetic around it
(`UNARY_COST`). Bytes: every kernel reads its inputs and writes its outputs; `unique` is the footprint
(distinct bytes touched) and `loaded`/`stored` the accesses (equal at the graph level, where the tiling
that causes re-reads is not known yet).
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Hashable, Iterator, TypeVar

from ir import ops
from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType
from passes.collector import collector_paused

if TYPE_CHECKING:
    from targets.frozen_graph import FrozenGraph
    from targets.graph_counts import GraphCounter

Derived = TypeVar("Derived")

# unary op -> (arithmetic FLOPs, transcendental ops) per element
UNARY_COST: dict[str, tuple[int, int]] = {
    "neg": (1, 0), "abs": (1, 0), "relu": (1, 0), "logical_not": (0, 0),
    "exp": (0, 1), "log": (0, 1), "sqrt": (0, 1), "rsqrt": (0, 1), "tanh": (0, 1), "sin": (0, 1), "cos": (0, 1),
    "sigmoid": (4, 1),  # 1 / (1 + exp(-|x|)) with a select for the sign
    "silu": (5, 1),  # x * sigmoid(x)
    "gelu": (8, 1),  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
}
BINARY_FLOPS: dict[str, int] = {"pow": 1}  # pow is exp(b log a): one op and two transcendentals
BINARY_TRANSCENDENTALS: dict[str, int] = {"pow": 2}

ROLES = ("weight", "input", "output", "intermediate", "local")

# The op table is complete once `ir.ops` is imported (ops register there only): the groups `node_flops` asks
# about for every node of a program, read once as sets.
_MATMUL_OPS = frozenset(ops.ops_in_group(ops.MATMUL))
_REDUCTION_OPS = frozenset(ops.ops_in_group(ops.REDUCTION))
_BINARY_OPS = frozenset(ops.ops_in_group(ops.BINARY))


class CountError(Exception):
    """The counter cannot bound something (a data-dependent loop it does not recognise)."""


@dataclass(frozen=True)
class BufferTraffic:
    """Bytes one kernel moves to or from one buffer (a graph value or a loop-IR buffer)."""

    buffer: str
    role: str  # weight, input (non-weight program input), output, intermediate, local
    loaded: float  # bytes read, all accesses
    stored: float  # bytes written, all accesses
    unique: float  # distinct bytes touched (the footprint), at most the buffer's size
    size: float  # the buffer's size in bytes


@dataclass(frozen=True)
class MatmulShape:
    batch: int
    m: int
    n: int
    k: int


@dataclass(frozen=True)
class KernelCounts:
    name: str
    kind: str  # matmul, reduction, elementwise, copy, kernel
    dtype: DType  # the precision the arithmetic runs in
    flops: float  # executed arithmetic ops on data (an FMA is 2)
    flops_useful: float  # what the program's math needs (graph formulas); equal to flops where unknown
    transcendentals: float
    index_ops: float  # integer arithmetic of addresses and loop bounds (not FLOPs)
    traffic: tuple[BufferTraffic, ...]
    iterations: float  # executions of the innermost statements
    parallel: float  # iterations available to run concurrently (parallel loops, or the output size)
    vector_width: int = 1  # extent of the widest vectorize loop (1: none)
    matmul: MatmulShape | None = None
    reads: tuple[str, ...] = ()  # global buffers / values read, in order
    writes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    weight_density: float = 1.0  # non-zeros / elements of its sparsest weight (targets that skip zeros)
    sparse: object = None  # a matmul with a sparse weight: its per-format terms (targets.sparse_cost.SparseTerms)

    def bytes(self, roles: tuple[str, ...] = ROLES, unique: bool = True) -> float:
        """Bytes moved to and from buffers of the given roles (footprint, or all accesses)."""
        total = 0.0
        for t in self.traffic:
            if t.role in roles:
                total += t.unique if unique else t.loaded + t.stored
        return total

    @property
    def global_bytes(self) -> float:
        """Distinct bytes of global buffers (everything but locals): the main-memory traffic lower bound."""
        return self.bytes(("weight", "input", "output", "intermediate"))

    @property
    def weight_bytes(self) -> float:
        return self.bytes(("weight",))

    @property
    def intensity(self) -> float:
        """FLOPs per byte of main-memory traffic (the roofline's x axis)."""
        return self.flops / self.global_bytes if self.global_bytes else math.inf

    def split(self, ways: int) -> KernelCounts:
        """The share of one of `ways` chips when the kernel's work and data are divided evenly. Built field
        by field (`dataclasses.replace` would cost more than pricing a repeated kernel): tests/targets/
        test_counts.py checks that every field it does not divide comes through."""
        if ways == 1:
            return self
        traffic = tuple(BufferTraffic(t.buffer, t.role, t.loaded / ways, t.stored / ways, t.unique / ways,
                                      t.size / ways) for t in self.traffic)
        mm = self.matmul
        matmul = mm and MatmulShape(mm.batch, mm.m, max(1, mm.n // ways), mm.k)
        return KernelCounts(self.name, self.kind, self.dtype, self.flops / ways, self.flops_useful / ways,
                            self.transcendentals / ways, self.index_ops / ways, traffic, self.iterations / ways,
                            max(1.0, self.parallel / ways), self.vector_width, matmul, self.reads, self.writes,
                            self.notes, self.weight_density, self.sparse)


@dataclass(frozen=True)
class ProgramCounts:
    name: str
    level: str  # "loops" or "graph"
    kernels: tuple[KernelCounts, ...]
    sizes: dict[str, float] = field(default_factory=dict)  # global buffer / value -> bytes
    roles: dict[str, str] = field(default_factory=dict)  # global buffer / value -> role
    outputs: tuple[str, ...] = ()
    fused_away_bytes: float = 0.0  # bytes fusion keeps out of memory (graph level)
    attributes: dict[str, object] = field(default_factory=dict)  # graph attributes (tokens, users)
    dtype: DType = DType.F32  # the dominant precision (of the most FLOPs)

    def bytes_of(self, role: str) -> float:
        return sum(size for name, size in self.sizes.items() if self.roles.get(name) == role)

    @property
    def weight_bytes(self) -> float:
        return self.bytes_of("weight")

    @property
    def flops(self) -> float:
        return sum(k.flops for k in self.kernels)

    @property
    def flops_useful(self) -> float:
        return sum(k.flops_useful for k in self.kernels)

    @property
    def largest_intermediate(self) -> float:
        """Bytes of the largest working set of intermediates one kernel touches (a lower bound on the
        scratch memory the program needs beside its inputs, weights and outputs)."""
        best = 0.0
        for kernel in self.kernels:
            best = max(best, kernel.bytes(("intermediate",)))
        return best

    @property
    def resident_bytes(self) -> float:
        """What must sit in main memory during a step: weights, inputs, outputs, a working set."""
        return (self.bytes_of("weight") + self.bytes_of("input") + self.bytes_of("output")
                + self.largest_intermediate)


def dominant_dtype(kernels: tuple[KernelCounts, ...], default: DType = DType.F32) -> DType:
    by_dtype: dict[DType, float] = {}
    for kernel in kernels:
        by_dtype[kernel.dtype] = by_dtype.get(kernel.dtype, 0.0) + kernel.flops
    return max(by_dtype, key=by_dtype.get) if by_dtype else default


# -- graph level ----------------------------------------------------------------------------------


def node_flops(op: str, result: TensorType, operand_types: list[TensorType]) -> tuple[float, float]:
    """(arithmetic ops, transcendental ops) one graph operation performs, from its op and types alone."""
    if op in _MATMUL_OPS:
        a, b = operand_types
        k = a.shape[-1]
        return 2.0 * result.size * k, 0.0
    if op in _REDUCTION_OPS:
        source = operand_types[0].size
        extra = result.size if op == "reduce_mean" else 0
        return float(max(0, source - result.size) + extra), 0.0
    if op in UNARY_COST:
        flops, transcendentals = UNARY_COST[op]
        return float(flops * result.size), float(transcendentals * result.size)
    if op in _BINARY_OPS:
        if result.dtype.is_bool and operand_types[0].dtype.is_bool:
            return 0.0, 0.0  # logical ops on masks
        return (float(BINARY_FLOPS.get(op, 1) * result.size),
                float(BINARY_TRANSCENDENTALS.get(op, 0) * result.size))
    if op == "select":
        return float(result.size), 0.0
    return 0.0, 0.0  # params, constants, iotas, casts, views, concat


def matmul_shape(result: TensorType, a: TensorType) -> MatmulShape:
    batch = math.prod(result.shape[:-2]) if result.rank > 2 else 1
    return MatmulShape(batch, result.shape[-2], result.shape[-1], a.shape[-1])


# Inside `shared_counts()`: id(graph) -> (the graph, its counts, the counter that made them). The graph is
# held so that its id stays its own for the whole block.
_SHARED: dict[int, tuple[Graph, ProgramCounts, GraphCounter]] | None = None
# Inside `shared_counts()`: (id(counts), what) -> (the counts, what `derived_once` derived from them).
_DERIVED: dict[tuple[int, Hashable], tuple[ProgramCounts, object]] | None = None
# Inside `shared_counts()`: id(graph) -> its `FrozenGraph` (which holds the graph, so its id stays its own).
_FROZEN: dict[int, FrozenGraph] | None = None


@contextmanager
def shared_counts() -> Iterator[None]:
    """Within the block, `count_graph` counts each graph once and hands every caller the same counts:
    `niche compare` prices one graph on several targets, and the counts do not depend on the target
    (counts once, machine models per target). Callers must not change the graph inside the block, nor
    the counts they get (treat `ProgramCounts` as read-only)."""
    global _SHARED, _DERIVED, _FROZEN
    outer = _SHARED, _DERIVED, _FROZEN
    _SHARED = {} if outer[0] is None else outer[0]
    _DERIVED = {} if outer[1] is None else outer[1]
    _FROZEN = {} if outer[2] is None else outer[2]
    try:
        yield
    finally:
        _SHARED, _DERIVED, _FROZEN = outer


def frozen_graph(graph: Graph) -> FrozenGraph:
    """`graph` with its lookups precomputed (`targets.frozen_graph`): inside `shared_counts()`, made once per
    graph and shared by the counter and every target that reads the graph node by node (the graph does not
    change inside the block); outside it, made afresh at each call."""
    from targets.frozen_graph import FrozenGraph
    if _FROZEN is None:
        return FrozenGraph(graph)
    frozen = _FROZEN.get(id(graph))
    if frozen is None or frozen.graph is not graph:
        frozen = _FROZEN[id(graph)] = FrozenGraph(graph)
    return frozen


def derived_once(counts: ProgramCounts, what: Hashable, derive: Callable[[ProgramCounts], Derived]) -> Derived:
    """`derive(counts)`, computed once per counts object and `what` inside `shared_counts()`, where counts
    are read-only: what follows from the counts alone (a partition's per-kernel bytes) is then the same
    for every target. `derive` must read nothing but `counts` and what `what` holds (a name, or a name and
    the values it is derived with). Outside the block it runs every time."""
    if _DERIVED is None:
        return derive(counts)
    key = (id(counts), what)
    if key not in _DERIVED:  # the entry holds the counts, so their id stays theirs for the whole block
        _DERIVED[key] = (counts, derive(counts))
    return _DERIVED[key][1]


def count_graph(graph: Graph) -> ProgramCounts:
    """Counts of a graph with fusion groups (`Node.group`); see `targets.graph_counts`. The graph's
    dimension bindings are in `attributes["dims"]`."""
    return counted_graph(graph)[0]


def counted_graph(graph: Graph) -> tuple[ProgramCounts, GraphCounter]:
    """`count_graph(graph)` and the counter that made the counts, which knows each kernel's graph nodes
    (`GraphCounter.units`, in the order of the kernels): shared with the counts inside `shared_counts()`,
    so a target that also reads the kernels' nodes does not index the graph again. Treat both as read-only."""
    if _SHARED is not None and id(graph) in _SHARED:
        return _SHARED[id(graph)][1:]
    from targets.graph_counts import GraphCounter
    with collector_paused():  # see passes.collector: counting a large graph would rescan it many times
        counter = GraphCounter(frozen_graph(graph))
        counts = counter.count()
    counts.attributes.setdefault("dims", dict(graph.dims))
    if _SHARED is not None:
        _SHARED[id(graph)] = (graph, counts, counter)
    return counts, counter


def is_loop_program(value: object) -> bool:
    """`isinstance(value, ir.loops.LoopProgram)`, without importing the loop IR to ask (pricing a graph never
    needs it): a `LoopProgram` can exist only once `ir.loops` has been imported."""
    loops = sys.modules.get("ir.loops")
    return loops is not None and isinstance(value, loops.LoopProgram)


def count_loop_program(program: object, weights: set[str] | frozenset[str] = frozenset(),
                       graph: Graph | None = None) -> ProgramCounts:
    """Counts of a `LoopProgram`; `weights` names its weight buffers, `graph` (optional) supplies useful
    FLOPs for kernels whose attrs name the graph nodes they compute; see `targets.loop_counts`."""
    from targets.loop_counts import count_program
    return count_program(program, weights, graph)
