"""Sparse matmul kernels: a matmul one of whose operands is a weight stored in a sparse format.

A matmul `A @ B` whose A or B is a parameter with a sparse format (`<csr>`, `<csc>`, `<bsr(R,C)>`,
`<N:M>`), directly or through `transpose` (a prologue member of its fusion group), becomes a
`SparseMatmulSpec`. The kernel walks the rows of S, the sparse operand oriented so that its rows
are independent outputs and its columns the contraction:

    sparse on the left,  out = S @ D             S = A (A = W or W^T),  D = B
    sparse on the right, out^T = S @ D           S = B^T,               D = A^T

    out_S[r, c] = epilogue(sum over stored (r, k) of S[r, k] * D[k, c])

so rows of out_S run in parallel with no write shared between them (for `X @ W` the kernel stores
W^T row-compressed, i.e. W in CSC, and rows of out_S are columns of the output).

Storage of S (`SparseStorage`, global buffers the artifact fills; `ir.sparse` has the arrays):

* `<csr>`, `<csc>` -> CSR of S (values, indices, row pointers) plus `chunks`, row boundaries that
  split the rows into runs of about equal non-zeros (`ir.sparse.balanced_chunks`): a schedule
  runs chunks in parallel, so a few dense rows do not leave threads idle;
* `<bsr(R,C)>` -> BSR of S (block (R,C), or (C,R) when S = W^T), with chunks over block rows;
* `<N:M>` -> N:M of S when S = W (groups run along the contraction), CSR of S otherwise.

Buffers of a weight bound at compile time have its exact sizes (the data is converted here, once,
and kept in `SparseStorage.bound`); for a run-time argument the number of stored values is a run-time
size: the value and index buffers are declared at their largest possible size (every entry stored)
and the kernels read only up to `pointers[rows]`, which the artifact checks against the arrays it
passes. The matmul's own dense operand is read through the spec like `MatmulSpec`'s (views and casts
folded), and the epilogue (bias, activation, residual) is the fused group's, so a sparse matmul is
the anchor of a MATMUL group like a dense one.

Legality: out_S[r, c] is the sum over exactly the stored entries of row r of S; the entries not
stored are zero, and dropping a product with zero changes the sum only when the dense operand holds
inf or NaN there (0 * inf is NaN): the one way a sparse kernel may differ from the dense reference,
shared by every sparse library (docs/sparsity.md). The naive schedule here is the definition of the
loops; targets bring faster ones through a `sparse_matmul` method on their `Schedule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping

import numpy as np

from ir.dtypes import DType
from ir.graph import Graph
from ir.loops import (INDEX, Allocate, Binary, Buffer, Cast, Const, Expr, For, If, Load, Select, Stmt, Var, add,
                      floordiv, mul, seq)
from ir.sparse import INDEX_DTYPE, SparseMatrix, balanced_chunks, convert, from_dense
from ir.types import Format
from passes.lowering.context import KernelContext
from passes.lowering.spec import (Indices, KernelSpec, NameGen, OutputSlot, Scalars, accumulate, accumulator_dtype,
                                  local_accumulator, read)
from passes.lowering.views import broadcast_index

MAX_CHUNKS = 64  # parallel work units of a CSR/BSR kernel (runs of rows with about equal non-zeros)
PANEL_COLUMNS = 512  # CSR storage of S with more columns also says where each row's entries cross them


@dataclass(frozen=True, eq=False)
class SparseStorage:
    """How kernels read one sparse parameter: S (the parameter W, or W^T when `transposed`) stored in
    `kind` ("csr", "bsr" or "nm") in `buffers` (values, indices, pointers, chunks; N:M has only values
    and positions). `bound` holds the arrays of a weight bound at compile time."""

    param: str
    node: int
    kind: str
    transposed: bool
    shape: tuple[int, int]  # of S
    dtype: DType
    block: tuple[int, int] | None
    pattern: tuple[int, int] | None  # (n, m)
    buffers: tuple[Buffer, ...]
    bound: tuple[np.ndarray, ...] | None = None

    @property
    def format(self) -> Format:
        if self.kind == "bsr":
            return Format("bsr", block=self.block)
        if self.kind == "nm":
            return Format("nm", n=self.pattern[0], m=self.pattern[1])
        return Format("csr")

    @property
    def values(self) -> Buffer:
        return self.buffers[0]

    @property
    def indices(self) -> Buffer:
        return self.buffers[1]

    @property
    def pointers(self) -> Buffer:
        return self.buffers[2]

    @property
    def chunks(self) -> Buffer:
        return self.buffers[3]

    def variable(self, index: int) -> bool:
        """Whether buffer `index` holds as many elements as the matrix stores (values and indices of
        CSR and BSR), so a run-time argument may fill only a prefix of it."""
        return self.kind != "nm" and index < 2

    def pack(self, matrix: SparseMatrix) -> tuple[np.ndarray, ...]:
        """The arrays of `buffers` for the parameter's value `matrix` (a validated SparseMatrix of W)."""
        return self.pack_oriented(convert(matrix, self.format, self.transposed))

    def pack_oriented(self, s: SparseMatrix) -> tuple[np.ndarray, ...]:
        """The arrays of `buffers` for S itself, already stored in `format`."""
        if self.kind == "nm":
            return (s.values, s.indices)
        lines = len(s.pointers) - 1
        chunks = balanced_chunks(s.pointers, self.chunks.shape[0] - 1 if lines else 1)
        if len(self.buffers) == 4:
            return (s.values, s.indices, s.pointers, chunks)
        return (s.values, s.indices, s.pointers, chunks, panel_ends(s, self.buffers[4].shape[1]))

    @property
    def panels(self) -> Buffer | None:
        """CSR of more than PANEL_COLUMNS columns: [rows, P], where each row's panel p ends."""
        return self.buffers[4] if len(self.buffers) > 4 else None


def panel_ends(s: SparseMatrix, panels: int) -> np.ndarray:
    """[rows, panels]: the entry at which each row's entries of columns < (p+1) x PANEL_COLUMNS end
    (columns are sorted within a row, so a panel's entries are contiguous)."""
    rows = len(s.pointers) - 1
    counts = np.zeros(rows * panels, dtype=np.int64)
    if len(s.indices):
        row_of = np.repeat(np.arange(rows, dtype=np.int64), np.diff(s.pointers.astype(np.int64)))
        panel_of = np.minimum(s.indices.astype(np.int64) // PANEL_COLUMNS, panels - 1)
        counts = np.bincount(row_of * panels + panel_of, minlength=rows * panels)
    ends = np.cumsum(counts.reshape(rows, panels), axis=1) + s.pointers[:-1].astype(np.int64)[:, None]
    return ends.astype(INDEX_DTYPE)


def storage_kind(fmt: Format, transposed: bool) -> str:
    """The kernel storage of S for a parameter declared `fmt` (see the module docstring)."""
    if fmt.kind == "bsr":
        return "bsr"
    if fmt.kind == "nm" and not transposed:
        return "nm"
    return "csr"


def sparse_operand(graph: Graph, anchor: int, members: frozenset[int]) -> tuple[int, int, bool] | None:
    """(operand index, sparse parameter, S = W^T) of a matmul with a sparse parameter operand (read
    directly or through a 2-D transpose in its group), or None. The left operand wins when both are."""
    a_shape = graph.node(graph.operands(anchor)[0]).type.shape
    for index, operand in enumerate(graph.operands(anchor)):
        node = graph.node(operand)
        through_transpose = False
        if node.op == "transpose" and operand in members and node.attr("perm") == (1, 0):
            operand = graph.operands(operand)[0]
            node = graph.node(operand)
            through_transpose = True
        if node.op != "param" or node.type.format.is_dense or node.type.rank != 2 or not a_shape:
            continue
        # left: S = A = W or W^T; right: S = B^T = W^T, or W when B = W^T
        transposed = through_transpose if index == 0 else not through_transpose
        return index, operand, transposed
    return None


def plan_storages(graph: Graph, units: list, names: NameGen,
                  index: Mapping[int, int] | None = None) -> dict[int, SparseStorage]:
    """The storage each sparse matmul (by anchor node) reads; one per (parameter, orientation)."""
    from ir import ops
    from ir.groups import GroupError, classify_group
    by_key: dict[tuple[int, bool], SparseStorage] = {}
    result: dict[int, SparseStorage] = {}
    for unit in units:
        try:
            info = classify_group(graph, unit.members, index)
        except GroupError:
            continue
        if info.anchor is None or not ops.in_group(graph.node(info.anchor).op, ops.MATMUL):
            continue
        found = sparse_operand(graph, info.anchor, frozenset(unit.live))
        if found is None:
            continue
        _, param, transposed = found
        key = (param, transposed)
        if key not in by_key:
            by_key[key] = _storage(graph, param, transposed, names)
        result[info.anchor] = by_key[key]
    return result


def _storage(graph: Graph, param: int, transposed: bool, names: NameGen) -> SparseStorage:
    node = graph.node(param)
    name = node.attr("name")
    fmt = node.type.format
    rows, cols = node.type.shape[::-1] if transposed else node.type.shape
    kind = storage_kind(fmt, transposed)
    block = (fmt.block[::-1] if transposed else fmt.block) if kind == "bsr" else None
    pattern = (fmt.n, fmt.m) if kind == "nm" else None
    dtype = node.type.dtype
    suffix = "_t" if transposed else ""
    bound = None
    data = graph.weight_data.get(name)
    s_matrix = None
    if data is not None:  # converted once, here; the artifact passes these arrays
        storage_format = SparseStorage(name, param, kind, transposed, (rows, cols), dtype, block, pattern, ()).format
        s_matrix = convert(from_dense(np.asarray(data), fmt), storage_format, transposed)
    index, i8 = DType.I32, DType.I8
    if kind == "nm":
        n, m = pattern
        stored = (rows, math.ceil(cols / m) * n)
        buffers = (Buffer(names.fresh(f"{name}{suffix}_values"), dtype, stored),
                   Buffer(names.fresh(f"{name}{suffix}_positions"), i8, stored))
    else:
        if kind == "bsr":
            r, c = block
            lines = math.ceil(rows / r)
            capacity = lines * math.ceil(cols / c)
            value_shape = s_matrix.values.shape if s_matrix is not None else (capacity, r, c)
        else:
            lines = rows
            value_shape = s_matrix.values.shape if s_matrix is not None else (max(1, rows * cols),)
        chunks = max(1, min(MAX_CHUNKS, lines))
        index_shape = (value_shape[0],)
        buffers = (Buffer(names.fresh(f"{name}{suffix}_values"), dtype, tuple(value_shape)),
                   Buffer(names.fresh(f"{name}{suffix}_indices"), index, tuple(index_shape)),
                   Buffer(names.fresh(f"{name}{suffix}_pointers"), index, (lines + 1,)),
                   Buffer(names.fresh(f"{name}{suffix}_chunks"), index, (chunks + 1,)))
        if kind == "csr" and cols > PANEL_COLUMNS:
            buffers += (Buffer(names.fresh(f"{name}{suffix}_panels"), index,
                               (rows, math.ceil(cols / PANEL_COLUMNS))),)
    if s_matrix is not None:
        bound = SparseStorage(name, param, kind, transposed, (rows, cols), dtype, block, pattern,
                              buffers).pack_oriented(s_matrix)
    return SparseStorage(name, param, kind, transposed, (rows, cols), dtype, block, pattern, buffers, bound)


# -- the spec -------------------------------------------------------------------------------------


def _index(expr: Expr) -> Expr:
    return expr if expr.dtype is INDEX else Cast(INDEX, expr)


@dataclass(eq=False)
class SparseMatmulSpec(KernelSpec):
    """out_S[batch, r, c] = epilogue(sum over stored (r, k) of S[r, k] * D[batch, k, c]) (module doc).

    `rows` x `cols` is out_S's shape (per batch element), `k` the contraction. Storage access, by
    `storage.kind`: CSR `row_range(r)`, `column(p)`, `value(p)`; BSR `row_range(br)` over block rows,
    `block_column(p)`, `block_value(p, i, j)`; N:M `stored` entries per row, `nm_column(r, s)`,
    `nm_value(r, s)`. `dense(batch, k, c)` reads D; `epilogue_store(acc, batch, r, c)` stores every
    output of the kernel at out_S's element (r, c)."""

    kind: ClassVar[str] = "sparse_matmul"
    storage: SparseStorage | None = None
    left: bool = True  # the sparse operand is A (else B)
    batch_shape: tuple[int, ...] = ()
    rows: int = 0
    cols: int = 0
    k: int = 0
    dtype: DType = DType.F32
    anchor: int = -1
    outputs: tuple[OutputSlot, ...] = ()
    _dense: Callable[[Indices, Expr, Expr], Expr] | None = None

    @property
    def acc_dtype(self) -> DType:
        return accumulator_dtype(self.dtype)

    @property
    def init(self) -> Const:
        return Const(0.0 if self.acc_dtype.is_float else 0, self.acc_dtype)

    def attrs(self) -> tuple[tuple[str, object], ...]:
        attrs = dict(super().attrs())
        s = self.storage
        attrs["sparse"] = (s.param, str(s.format), "transposed" if s.transposed else "direct") + tuple(
            b.name for b in s.buffers)
        return tuple(sorted(attrs.items()))

    # -- operands --------------------------------------------------------------------------------

    def dense(self, batch: Indices, k: Expr, c: Expr) -> Expr:
        """D[batch, k, c] in `dtype`."""
        return self._dense(batch, k, c)

    def acc(self, value: Expr) -> Expr:
        return value if value.dtype == self.acc_dtype else Cast(self.acc_dtype, value)

    def multiply_add(self, acc: Expr, a: Expr, b: Expr) -> Expr:
        return Binary("add", acc, Binary("mul", self.acc(a), self.acc(b)))

    def row_range(self, line: Expr) -> tuple[Expr, Expr]:
        """(first stored entry, number of entries) of row `line` (CSR) or block row (BSR)."""
        pointers = self.storage.pointers
        start = _index(Load(pointers.name, (line,), pointers.dtype))
        end = _index(Load(pointers.name, (add(line, Const(1)),), pointers.dtype))
        return start, Binary("sub", end, start)

    def chunk_range(self, chunk: Expr) -> tuple[Expr, Expr]:
        """(first row, number of rows) of chunk `chunk` (rows, or block rows for BSR)."""
        chunks = self.storage.chunks
        start = _index(Load(chunks.name, (chunk,), chunks.dtype))
        end = _index(Load(chunks.name, (add(chunk, Const(1)),), chunks.dtype))
        return start, Binary("sub", end, start)

    @property
    def chunk_count(self) -> int:
        return self.storage.chunks.shape[0] - 1

    @property
    def panel_count(self) -> int:
        """CSR: the panels of PANEL_COLUMNS columns of S whose ends the storage records (1: none)."""
        panels = self.storage.panels
        return panels.shape[1] if panels is not None else 1

    def panel_range(self, r: Expr, p: Expr) -> tuple[Expr, Expr]:
        """(first entry, number of entries) of row r in columns [p, p+1) x PANEL_COLUMNS of S (CSR with
        panels). Panel 0 starts at the row's pointer; a later one where the previous one ends."""
        panels = self.storage.panels
        pointers = self.storage.pointers
        previous = Binary("maximum", Binary("sub", p, Const(1)), Const(0))  # never reads panels[r, -1]
        start = Select(Binary("eq", p, Const(0)), _index(Load(pointers.name, (r,), pointers.dtype)),
                       _index(Load(panels.name, (r, previous), panels.dtype)))
        end = _index(Load(panels.name, (r, p), panels.dtype))
        return start, Binary("sub", end, start)

    def column(self, p: Expr) -> Expr:
        return _index(Load(self.storage.indices.name, (p,), self.storage.indices.dtype))

    def value(self, p: Expr) -> Expr:
        return Load(self.storage.values.name, (p,), self.dtype)

    def block_column(self, p: Expr) -> Expr:
        return _index(Load(self.storage.indices.name, (p,), self.storage.indices.dtype))

    def block_value(self, p: Expr, i: Expr, j: Expr) -> Expr:
        return Load(self.storage.values.name, (p, i, j), self.dtype)

    @property
    def stored(self) -> int:
        """N:M: entries stored per row of S."""
        return self.storage.values.shape[1]

    def nm_column(self, r: Expr, s: Expr) -> Expr:
        n, m = self.storage.pattern
        position = _index(Load(self.storage.indices.name, (r, s), self.storage.indices.dtype))
        return add(mul(floordiv(s, Const(n)), Const(m)), position)

    def nm_value(self, r: Expr, s: Expr) -> Expr:
        return Load(self.storage.values.name, (r, s), self.dtype)

    # -- results ---------------------------------------------------------------------------------

    def output_index(self, batch: Indices, r: Expr, c: Expr) -> Indices:
        return tuple(batch) + ((r, c) if self.left else (c, r))

    def epilogue_values(self, acc: Expr, batch: Indices, r: Expr, c: Expr) -> Scalars:
        index = self.output_index(batch, r, c)
        value = acc if self.dtype == self.acc_dtype else Cast(self.dtype, acc)
        return self.elemental.compute([(slot.node, index) for slot in self.outputs],
                                      anchor=(self.anchor, index, value))

    def epilogue_store(self, acc: Expr, batch: Indices, r: Expr, c: Expr) -> Stmt:
        from ir.loops import Store
        index = self.output_index(batch, r, c)
        scalars = self.epilogue_values(acc, batch, r, c)
        return scalars.bind(seq(*(Store(slot.buffer.name, index, value)
                                  for slot, value in zip(self.outputs, scalars.values))))


def build_sparse_matmul(ctx: KernelContext, anchor: int, storage: SparseStorage) -> SparseMatmulSpec:
    graph = ctx.graph
    a, b = graph.operands(anchor)
    out = graph.node(anchor).type
    batch_shape = out.shape[:-2]
    left = sparse_operand(graph, anchor, ctx.members)[0] == 0
    dense_node = b if left else a
    dense_shape = graph.node(dense_node).type.shape
    elemental = ctx.elemental()

    def dense(batch: Indices, k: Expr, c: Expr) -> Expr:
        index = broadcast_index(tuple(batch), dense_shape[:-2], batch_shape) + ((k, c) if left else (c, k))
        return elemental.compute([(dense_node, index)], bind=False).value

    # The matmul's sparse slot reads the storage; the dense buffer stays a read only if something else
    # in the kernel reads the parameter (the epilogue, the other operand, the transpose elsewhere).
    sparse_index = 0 if left else 1
    skipped = {(anchor, sparse_index)}
    sparse_input = graph.operands(anchor)[sparse_index]
    if sparse_input != storage.node and \
            [use for use in graph.uses(sparse_input) if use[0] in ctx.members] == [(anchor, sparse_index)]:
        skipped.add((sparse_input, 0))
    dense_param = ctx.buffers[storage.node]
    still_read = any(operand == storage.node and (node, index) not in skipped for node in ctx.unit.live
                     for index, operand in enumerate(graph.operands(node)))
    reads = tuple(buffer for buffer in ctx.reads if buffer != dense_param or still_read) + storage.buffers
    for buffer in storage.buffers:
        ctx.names.reserve(buffer.name)
    rows, cols = (out.shape[-2], out.shape[-1]) if left else (out.shape[-1], out.shape[-2])
    return SparseMatmulSpec(name=ctx.name, nodes=ctx.unit.live, group=ctx.unit.group, reads=reads,
                            writes=tuple(slot.buffer for slot in ctx.outputs), names=ctx.names,
                            elemental=elemental, storage=storage, left=left, batch_shape=batch_shape, rows=rows,
                            cols=cols, k=storage.shape[1], dtype=out.dtype, anchor=anchor, outputs=ctx.outputs,
                            _dense=dense)


def finish_inputs(program: object, graph: Graph, specs: list[KernelSpec],
                  storages: dict[int, SparseStorage]) -> tuple[SparseStorage, ...]:
    """Give the program the storage buffers as inputs, right after their parameter, and drop the dense
    buffer of a sparse parameter no kernel reads. Returns the storages in input order."""
    read = {buffer.name for spec in specs for buffer in spec.reads}
    used = []
    for storage in storages.values():
        if storage not in used:
            used.append(storage)
    inputs = []
    for param in graph.params:
        node = graph.node(param)
        name = node.attr("name")
        mine = [s for s in used if s.node == param]
        if node.type.format.is_dense or name in read or not mine:
            inputs.append(name)
        else:
            del program.buffers[name]
        for storage in mine:
            for buffer in storage.buffers:
                program.buffers[buffer.name] = buffer
                inputs.append(buffer.name)
    program.inputs = inputs
    return tuple(used)


def storage_arrays(storages: tuple[SparseStorage, ...], dense: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays for the storage buffers from each sparse parameter's dense value (by name), padded to
    the buffers' declared sizes: what a loop-IR evaluator (or any caller of the loop program) passes."""
    arrays = {}
    for storage in storages:
        w = np.asarray(dense[storage.param])
        s = np.ascontiguousarray(w.T if storage.transposed else w)
        parts = storage.pack_oriented(from_dense(s, storage.format))
        for buffer, part in zip(storage.buffers, parts):
            padded = np.zeros(buffer.shape, dtype=part.dtype)
            padded[tuple(slice(0, d) for d in part.shape)] = part
            arrays[buffer.name] = padded
    return arrays


# -- the naive schedule ---------------------------------------------------------------------------


def schedule_sparse(schedule: object, spec: SparseMatmulSpec) -> Stmt:
    """`schedule.sparse_matmul(spec)` when the schedule has one, else the naive loops below."""
    method = getattr(schedule, "sparse_matmul", None)
    return method(spec) if method is not None else naive_sparse_matmul(spec)


def naive_sparse_matmul(spec: SparseMatmulSpec) -> Stmt:
    """Serial loops: for batch, r, c { acc = 0; for each stored (r, k): acc += S[r, k] * D[k, c];
    epilogue(acc) }."""
    names = [spec.fresh(f"b{axis}") for axis in range(len(spec.batch_shape))]
    batch = tuple(Var(n) for n in names)
    r, c = spec.fresh("r"), spec.fresh("c")
    acc = local_accumulator(spec, spec.acc_dtype)
    body = Allocate(acc, seq(accumulate(acc, spec.init), _accumulate(spec, batch, Var(r), Var(c), acc),
                             spec.epilogue_store(read(acc), batch, Var(r), Var(c))))
    stmt: Stmt = For(r, Const(0), Const(spec.rows), For(c, Const(0), Const(spec.cols), body))
    for name, extent in reversed(list(zip(names, spec.batch_shape))):
        stmt = For(name, Const(0), Const(extent), stmt)
    return stmt


def _accumulate(spec: SparseMatmulSpec, batch: Indices, r: Expr, c: Expr, acc: Buffer) -> Stmt:
    storage = spec.storage
    if storage.kind == "csr":
        p = spec.fresh("p")
        start, extent = spec.row_range(r)
        update = accumulate(acc, spec.multiply_add(read(acc), spec.value(Var(p)), spec.dense(batch, spec.column(Var(p)), c)))
        return For(p, start, extent, update)
    if storage.kind == "nm":
        s = spec.fresh("s")
        update = accumulate(acc, spec.multiply_add(read(acc), spec.nm_value(r, Var(s)),
                                                   spec.dense(batch, spec.nm_column(r, Var(s)), c)))
        return For(s, Const(0), Const(spec.stored), update)
    rb, cb = storage.block
    p, j = spec.fresh("p"), spec.fresh("j")
    start, extent = spec.row_range(floordiv(r, Const(rb)))
    k = add(mul(spec.block_column(Var(p)), Const(cb)), Var(j))
    i = Binary("mod", r, Const(rb))
    update: Stmt = accumulate(acc, spec.multiply_add(read(acc), spec.block_value(Var(p), i, Var(j)),
                                                     spec.dense(batch, k, c)))
    if spec.k % cb:
        update = If(Binary("lt", k, Const(spec.k)), update)
    return For(p, start, extent, For(j, Const(0), Const(cb), update))


__all__ = ["SparseStorage", "SparseMatmulSpec", "storage_kind", "sparse_operand", "plan_storages",
           "build_sparse_matmul", "finish_inputs", "schedule_sparse", "naive_sparse_matmul", "MAX_CHUNKS"]
