"""Counting the loop IR analytically (`targets.counts.count_loop_program`): trip counts are multiplied.

One walk over each kernel's tree. A statement inside loops of extents e1, e2, ... executes e1*e2*...
times; its expressions' operations and loads count that many times. Rules:

* Extents are evaluated with every enclosing loop variable at its mean value, which is exact for extents
  affine in them (a triangular `for j in 0..i+1` totals N(N+1)/2). A data-dependent extent (sparse rows,
  `indptr[i+1] - indptr[i]`) is counted from the buffer the loop walks: when the body loads a 1-D buffer
  at exactly the loop variable, the loop runs that buffer's size times over the whole nest. Any other
  data-dependent extent is a CountError, never a guess.
* Operations in stored values and `let`s of non-index type are data operations (FLOPs, with
  transcendental ones apart, `targets.counts.UNARY_COST`); operations in indices, bounds and conditions,
  and any i64 arithmetic, are index operations.
* `if` counts the costlier branch (an upper bound; tail guards are almost always true).
* Bytes: every load and store counts its element size per execution (accesses). The footprint of an
  access is the product of the extents of the loop variables its indices use (through `let`s), at most
  the buffer's size; accesses to one buffer with the same variables overlap, different ones add, and the
  sum is capped at the buffer's size. This is exact for affine injective indexing, and is the traffic of
  a perfect cache (each distinct byte moved once) that the machine models refine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ir.dtypes import DType
from ir.graph import Graph
from ir.loops import (INDEX, LOGIC_OPS, Allocate, Binary, Buffer, Cast, Const, For, If, Kernel, Let, Load,
                      LoopKind, LoopProgram, Scope, Select, Seq, Store, Unary, Var, walk)
from targets.counts import (BINARY_FLOPS, BINARY_TRANSCENDENTALS, UNARY_COST, BufferTraffic, CountError,
                            KernelCounts, ProgramCounts, dominant_dtype, matmul_shape, node_flops)


@dataclass
class _Access:
    accesses: float = 0.0  # element accesses
    footprint: float = 0.0  # distinct elements (max over accesses with the same variables)


@dataclass
class _Tally:
    flops: float = 0.0
    transcendentals: float = 0.0
    index_ops: float = 0.0
    iterations: float = 0.0
    flops_by_dtype: dict = field(default_factory=dict)
    loads: dict = field(default_factory=dict)  # (buffer, vars) -> _Access
    stores: dict = field(default_factory=dict)

    def weight(self) -> float:
        return self.flops + self.transcendentals + sum(a.accesses for a in self.loads.values()) + sum(
            a.accesses for a in self.stores.values())

    def merge(self, other: _Tally) -> None:
        self.flops += other.flops
        self.transcendentals += other.transcendentals
        self.index_ops += other.index_ops
        self.iterations += other.iterations
        for dtype, value in other.flops_by_dtype.items():
            self.flops_by_dtype[dtype] = self.flops_by_dtype.get(dtype, 0.0) + value
        for table, theirs in ((self.loads, other.loads), (self.stores, other.stores)):
            for key, access in theirs.items():
                mine = table.setdefault(key, _Access())
                mine.accesses += access.accesses
                mine.footprint = max(mine.footprint, access.footprint)


@dataclass(frozen=True)
class _LoopVar:
    trips: float  # iterations per execution of the loop
    mean: float  # the variable's mean value


class KernelCounter:
    """Counts one kernel; see the module docstring for the rules."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.buffers: dict[str, Buffer] = {b.name: b for b in kernel.params}
        self.loops: dict[str, _LoopVar] = {}
        self.lets: dict[str, tuple[frozenset[str], object]] = {}  # name -> (loop vars it uses, value)
        self.parallel = 1.0
        self.vector_width = 1
        self.notes: list[str] = []

    def count(self) -> _Tally:
        tally = _Tally()
        self.stmt(self.kernel.body, 1.0, 1.0, tally)
        return tally

    # -- statements -----------------------------------------------------------------------------

    def stmt(self, node: object, mult: float, par: float, tally: _Tally) -> None:
        if isinstance(node, Seq):
            for child in node.stmts:
                self.stmt(child, mult, par, tally)
        elif isinstance(node, For):
            self.loop(node, mult, par, tally)
        elif isinstance(node, Store):
            tally.iterations += mult
            for index in node.indices:
                self.expr(index, mult, tally, data=False)
            self.expr(node.value, mult, tally, data=True)
            self.access(tally.stores, node.buffer, node.indices, mult)
        elif isinstance(node, Let):
            self.expr(node.value, mult, tally, data=node.value.dtype is not INDEX)
            self.lets[node.var] = (self.vars_of(node.value), node.value)
            self.stmt(node.body, mult, par, tally)
        elif isinstance(node, If):
            self.expr(node.cond, mult, tally, data=False)
            then_tally, else_tally = _Tally(), _Tally()
            self.stmt(node.then_body, mult, par, then_tally)
            if node.else_body is not None:
                self.stmt(node.else_body, mult, par, else_tally)
            tally.merge(then_tally if then_tally.weight() >= else_tally.weight() else else_tally)
        elif isinstance(node, Allocate):
            self.buffers[node.buffer.name] = node.buffer
            self.stmt(node.body, mult, par, tally)
        else:
            raise CountError(f"kernel {self.kernel.name}: cannot count statement {type(node).__name__}")

    def loop(self, node: For, mult: float, par: float, tally: _Tally) -> None:
        self.expr(node.start, mult, tally, data=False)
        self.expr(node.extent, mult, tally, data=False)
        extent = self.mean(node.extent)
        if extent is None:
            extent = self.positions_trips(node, mult)
        trips = max(0.0, extent)
        start = self.mean(node.start) or 0.0
        self.loops[node.var] = _LoopVar(trips, start + (trips - 1) / 2 * node.step if trips else start)
        if node.kind is LoopKind.PARALLEL:
            par *= max(trips, 1.0)
            self.parallel = max(self.parallel, par)
        elif node.kind is LoopKind.VECTORIZE:
            self.vector_width = max(self.vector_width, int(trips))
        self.stmt(node.body, mult * trips, par, tally)

    def positions_trips(self, node: For, mult: float) -> float:
        for inner in walk(node.body):
            if (isinstance(inner, Load) and len(inner.indices) == 1 and inner.indices[0] == Var(node.var)
                    and inner.buffer in self.buffers):
                size = self.buffers[inner.buffer].size
                self.notes.append(f"loop {node.var}: data-dependent extent, {size} iterations in all "
                                  f"(the size of {inner.buffer}, which it walks)")
                return size / mult if mult else 0.0
        raise CountError(f"kernel {self.kernel.name}: loop '{node.var}' has a data-dependent trip count "
                         "that walks no buffer at the loop index; the counter cannot bound it")

    # -- expressions ----------------------------------------------------------------------------

    def expr(self, node: object, mult: float, tally: _Tally, data: bool) -> None:
        if isinstance(node, (Const, Var)):
            return
        if isinstance(node, Load):
            for index in node.indices:
                self.expr(index, mult, tally, data=False)
            self.access(tally.loads, node.buffer, node.indices, mult)
            return
        if isinstance(node, Cast):
            self.expr(node.operand, mult, tally, data)
            return
        if isinstance(node, Unary):
            self.expr(node.operand, mult, tally, data)
            flops, transcendentals = UNARY_COST.get(node.op, (1, 0))
            self.op(tally, node.dtype, flops, transcendentals, mult, data)
        elif isinstance(node, Binary):
            self.expr(node.left, mult, tally, data)
            self.expr(node.right, mult, tally, data)
            flops = 0 if node.op in LOGIC_OPS else BINARY_FLOPS.get(node.op, 1)
            self.op(tally, node.left.dtype, flops, BINARY_TRANSCENDENTALS.get(node.op, 0), mult, data)
        elif isinstance(node, Select):
            self.expr(node.cond, mult, tally, data)
            self.expr(node.true_value, mult, tally, data)
            self.expr(node.false_value, mult, tally, data)
            self.op(tally, node.dtype, 1, 0, mult, data)
        else:
            raise CountError(f"kernel {self.kernel.name}: cannot count expression {type(node).__name__}")

    @staticmethod
    def op(tally: _Tally, dtype: DType, flops: int, transcendentals: int, mult: float, data: bool) -> None:
        if not data or dtype is INDEX:
            tally.index_ops += max(1, flops) * mult
            return
        tally.flops += flops * mult
        tally.transcendentals += transcendentals * mult
        tally.flops_by_dtype[dtype] = tally.flops_by_dtype.get(dtype, 0.0) + (flops + transcendentals) * mult

    def access(self, table: dict, buffer: str, indices: tuple, mult: float) -> None:
        variables = frozenset().union(*(self.vars_of(i) for i in indices)) if indices else frozenset()
        footprint = 1.0
        for var in variables:
            footprint *= max(self.loops[var].trips, 1.0) if var in self.loops else 1.0
        size = self.buffers[buffer].size if buffer in self.buffers else math.inf
        entry = table.setdefault((buffer, variables), _Access())
        entry.accesses += mult
        entry.footprint = max(entry.footprint, min(footprint, size))

    def vars_of(self, node: object) -> frozenset[str]:
        """The loop variables an expression depends on, through `let`s."""
        found: set[str] = set()
        for inner in walk(node):
            if isinstance(inner, Var):
                if inner.name in self.loops:
                    found.add(inner.name)
                elif inner.name in self.lets:
                    found |= self.lets[inner.name][0]
        return frozenset(found)

    def mean(self, node: object) -> float | None:
        """The value of an index expression with loop variables at their means; None if data-dependent."""
        if isinstance(node, Const):
            return float(node.value)
        if isinstance(node, Var):
            if node.name in self.loops:
                return self.loops[node.name].mean
            if node.name in self.lets:
                return self.mean(self.lets[node.name][1])
            return None
        if isinstance(node, Cast):
            return self.mean(node.operand)
        if isinstance(node, Binary):
            left, right = self.mean(node.left), self.mean(node.right)
            if left is None or right is None:
                return None
            return _apply(node.op, left, right)
        if isinstance(node, Select):
            cond, a, b = self.mean(node.cond), self.mean(node.true_value), self.mean(node.false_value)
            return None if cond is None or a is None or b is None else (a if cond else b)
        return None  # loads: data-dependent


def _apply(op: str, left: float, right: float) -> float | None:
    table = {"add": left + right, "sub": left - right, "mul": left * right,
             "maximum": max(left, right), "minimum": min(left, right),
             "lt": float(left < right), "le": float(left <= right), "gt": float(left > right),
             "ge": float(left >= right), "eq": float(left == right), "ne": float(left != right)}
    if op in table:
        return table[op]
    exact = float(left).is_integer() and float(right).is_integer()  # constants (or a variable's whole mean)
    if op in ("floordiv", "div"):
        if not right:
            return None
        return float(left // right) if exact and op == "floordiv" else left / right  # ~ the mean of a floor
    if op == "mod":
        if not right:
            return None
        return float(left % right) if exact else (right - 1) / 2  # the mean of i % n over many i
    return None


# -- programs -------------------------------------------------------------------------------------


def count_program(program: LoopProgram, weights: set[str] | frozenset[str] = frozenset(),
                  graph: Graph | None = None) -> ProgramCounts:
    if graph is not None and not weights:
        weights = {graph.node(p).attr("name") for p in graph.params if graph.node(p).attr("weight")}
    for kernel in program.kernels.values():  # a sparse weight's storage buffers (passes.lowering.sparse)
        sparse = kernel.attr("sparse")
        if isinstance(sparse, tuple) and sparse and sparse[0] in weights:
            weights = set(weights) | set(sparse[3:])
    roles = {}
    for name in program.buffers:
        if name in program.inputs:
            roles[name] = "weight" if name in weights else "input"
        elif name in program.outputs:
            roles[name] = "output"
        else:
            roles[name] = "intermediate"
    sizes = {name: float(buffer.nbytes) for name, buffer in program.buffers.items()}
    cache: dict[str, tuple[_Tally, KernelCounter]] = {}
    kernels = []
    for call in program.calls:
        kernel = program.kernels[call.kernel]
        if kernel.name not in cache:
            counter = KernelCounter(kernel)
            cache[kernel.name] = (counter.count(), counter)
        tally, counter = cache[kernel.name]
        binding = dict(zip((p.name for p in kernel.params), call.args))
        kernels.append(_kernel_counts(kernel, tally, counter, binding, roles, graph))
    kernels = tuple(kernels)
    attributes = dict(graph.attributes) if graph is not None else {}
    return ProgramCounts(program.name, "loops", kernels, sizes, roles, tuple(program.outputs), 0.0, attributes,
                         dominant_dtype(kernels))


def _kernel_counts(kernel: Kernel, tally: _Tally, counter: KernelCounter, binding: dict[str, str],
                   roles: dict[str, str], graph: Graph | None) -> KernelCounts:
    per_buffer: dict[str, dict[str, float]] = {}
    groups: dict[str, dict[frozenset, float]] = {}
    for kind, table in (("loaded", tally.loads), ("stored", tally.stores)):
        for (buffer, variables), access in table.items():
            entry = per_buffer.setdefault(buffer, {"loaded": 0.0, "stored": 0.0})
            entry[kind] += access.accesses
            group = groups.setdefault(buffer, {})
            group[variables] = max(group.get(variables, 0.0), access.footprint)
    traffic, reads, writes = [], [], []
    for buffer, entry in per_buffer.items():
        info = counter.buffers[buffer]
        itemsize = info.dtype.itemsize
        name = binding.get(buffer, buffer)
        local = info.scope is Scope.LOCAL or buffer not in binding
        unique = min(float(info.size), sum(groups[buffer].values())) * itemsize
        traffic.append(BufferTraffic(name, "local" if local else roles.get(name, "intermediate"),
                                     entry["loaded"] * itemsize, entry["stored"] * itemsize, unique,
                                     float(info.nbytes)))
        if not local and entry["loaded"]:
            reads.append(name)
        if not local and entry["stored"]:
            writes.append(name)
    flops_by_dtype = tally.flops_by_dtype
    dtype = max(flops_by_dtype, key=flops_by_dtype.get) if flops_by_dtype else (
        kernel.params[-1].dtype if kernel.params else DType.F32)
    useful, kind, matmul = tally.flops, str(kernel.attr("kind", "kernel")), None
    nodes = kernel.attr("nodes")
    notes = list(counter.notes)
    if graph is not None and isinstance(nodes, tuple):
        useful = 0.0
        for node_id in nodes:
            node = graph.node(node_id)
            operand_types = [graph.node(o).type for o in graph.operands(node_id)]
            useful += node_flops(node.op, node.type, operand_types)[0]
            if node.op == "matmul":
                matmul = matmul_shape(node.type, operand_types[0])
    else:
        notes.append("useful FLOPs taken as executed (the kernel does not name its graph nodes)")
    terms = None
    if kind == "sparse_matmul" and graph is not None and matmul is not None:  # targets.sparse_cost
        from targets.sparse_cost import matmul_terms
        anchor = next(n for n in nodes if graph.node(n).op == "matmul")
        terms = matmul_terms(graph, anchor)
        if terms is not None:
            useful += terms.useful_flops - terms.dense_flops
    return KernelCounts(name=kernel.name, kind=kind, dtype=dtype, flops=tally.flops, flops_useful=useful,
                        transcendentals=tally.transcendentals, index_ops=tally.index_ops, traffic=tuple(traffic),
                        iterations=tally.iterations, parallel=counter.parallel,
                        vector_width=counter.vector_width, matmul=matmul, reads=tuple(reads),
                        writes=tuple(writes), notes=tuple(notes), sparse=terms)
