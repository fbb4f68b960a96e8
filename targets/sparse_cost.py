"""What a matmul with a sparse weight costs, per storage format: the terms cost models price.

For `out = A @ B` with one operand a sparse parameter W, the work is described on S, the sparse
operand oriented as the kernels walk it (`passes.lowering.sparse`: rows of S are independent outputs,
its columns the contraction K) and D, the dense operand with `cols` columns (times the batch):

| term             | csr                    | bsr(R, C)                     | N:M                    | dense          |
|------------------|------------------------|-------------------------------|------------------------|----------------|
| useful FLOPs     | 2 nnz cols             | 2 nnz cols                    | 2 nnz cols             | 2 nnz cols     |
| executed FLOPs   | 2 nnz cols             | 2 blocks R C cols             | 2 rows (K/m) n cols    | 2 rows K cols  |
| value bytes      | nnz x item             | blocks R C x item             | rows (K/m) n x item    | rows K x item  |
| index bytes      | 4 nnz + 4 (rows+1)     | 4 blocks + 4 (rows/R+1)       | rows (K/m) n (1 byte)  | 0              |
| D loads / FMA    | 1                      | 1/R (a D row feeds R rows)    | 1                      | tiled (reuse)  |

`imbalance` is the busiest worker's share of the executed entries over the mean share, for the
rows split the way the CPU kernels split them (chunks of about equal non-zeros, handed out in equal
numbers; N:M rows are all equal): from the actual row counts when the weight's data is bound, 1.0
otherwise. Without bound data a CSR/CSC/BSR weight is assumed dense (an upper bound; `known` is
False), an N:M one holds exactly n of every m.

Who reads these terms (hooks):

* `targets.graph_counts` and `targets.loop_counts` attach them to the matmul kernel's counts
  (`KernelCounts.sparse`), leaving `flops` as the counting level defines it (graph: dense formula;
  loop IR: what the loops execute);
* `cpu_sparse_cost` is the CPU model's use (called from `targets.cpu.cost.CpuModel.price`): the
  executed FLOPs at the FMA rate, scaled by the imbalance, and the gathered rows of D at the bandwidth
  of the cache level that holds the panel of D the kernel walks;
* other targets may price them the same way: a target with sparse tensor cores multiplies its matmul
  rate for N:M (2:4 at 2x), a dataflow target fires only on `useful_flops`, a target without sparse
  support prices the dense terms (docs/sparsity.md lists what each should call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ir.sparse import INDEX_DTYPE, balanced_chunks
from ir.types import Format

if TYPE_CHECKING:
    from ir.graph import Graph
    from targets.counts import KernelCounts
    from targets.spec import HardwareSpec

MAX_CHUNKS = 64  # as passes.lowering.sparse.MAX_CHUNKS (the CPU kernels' parallel work units)
NM_PANEL_ROWS = 128  # rows of D an N:M CPU kernel walks between reuses (targets.cpu.schedules.sparse:
# a sixteenth of a 512 KiB L2 for 64 columns)
CSR_PANEL_ROWS = 512  # passes.lowering.sparse.PANEL_COLUMNS: the CSR kernel's panels of D, when rows are
CSR_PANEL_MIN_ENTRIES = 16  # this full per panel on average
# Cycles a CPU kernel spends per stored entry it steps through, besides the multiply-adds: loading the
# index and the value and broadcasting it (assumptions, chosen a priori: three loads on two ports; an
# N:M row has static bounds and one-byte positions, so a cycle less of bookkeeping per two entries).
ENTRY_CYCLES = {"csr": 1.5, "bsr": 1.5, "nm": 1.0}


@dataclass(frozen=True)
class SparseTerms:
    """The terms of one sparse matmul (see the module docstring); shapes are S's and D's."""

    param: str
    format: str  # the storage of S: "csr", "bsr(R,C)", "N:M" or "dense"
    rows: int
    k: int
    cols: int  # columns of D times the batch
    itemsize: int
    density: float  # non-zeros / entries of W
    known: bool  # the density comes from bound data or an N:M pattern (else assumed 1.0)
    stored: float  # values the format keeps (zeros of BSR blocks and N:M groups included)
    index_bytes: float
    reuse: int  # uses of each loaded element of D (R for BSR, 1 for CSR and N:M)
    panel_rows: int  # rows of D the kernel walks before coming back to the first (its working set)
    imbalance: float = 1.0

    @property
    def useful_flops(self) -> float:
        return 2.0 * self.density * self.rows * self.k * self.cols

    @property
    def executed_flops(self) -> float:
        return 2.0 * self.stored * self.cols

    @property
    def dense_flops(self) -> float:
        return 2.0 * self.rows * self.k * self.cols

    @property
    def value_bytes(self) -> float:
        return self.stored * self.itemsize

    @property
    def weight_bytes(self) -> float:
        return self.value_bytes + self.index_bytes

    @property
    def gathered_bytes(self) -> float:
        """Bytes of D the kernel loads: one element per multiply-add, divided by the reuse."""
        return self.executed_flops / 2.0 * self.itemsize / self.reuse

    def describe(self) -> str:
        how = "bound data" if self.known else "no data: assumed dense"
        return (f"{self.param} as {self.format}: {self.density:.1%} non-zeros ({how}), "
                f"{self.executed_flops / max(1.0, self.useful_flops):.2f}x the useful FLOPs, "
                f"{self.weight_bytes / 1e6:.3g} MB with indices, imbalance {self.imbalance:.2f}")


def sparse_terms(param: str, fmt: Format, rows: int, k: int, cols: int, itemsize: int,
                 data: np.ndarray | None = None, workers: int = 2) -> SparseTerms:
    """Terms of S (rows x k, stored in `fmt`: "csr", "bsr" (block of S), "nm" or "dense") times D
    (k x cols); `data` is S as a dense array when known."""
    size = rows * k
    if data is not None:
        nonzero = np.asarray(data) != 0
        density = float(nonzero.sum()) / size if size else 1.0
        known = True
    elif fmt.kind == "nm":
        nonzero, density, known = None, fmt.n / fmt.m, True
    else:
        nonzero, density, known = None, 1.0, fmt.is_dense
    nnz = density * size
    imbalance = 1.0
    if fmt.kind == "dense":
        return SparseTerms(param, "dense", rows, k, cols, itemsize, density, known, float(size), 0.0, 1, k)
    if fmt.kind == "nm":
        groups = math.ceil(k / fmt.m)
        stored = float(rows * groups * fmt.n)
        return SparseTerms(param, str(fmt), rows, k, cols, itemsize, density, known, stored, stored * 1.0, 1,
                           min(k, NM_PANEL_ROWS))
    if fmt.kind == "bsr":
        r, c = fmt.block
        block_rows, block_cols = math.ceil(rows / r), math.ceil(k / c)
        if nonzero is not None:
            padded = np.zeros((block_rows * r, block_cols * c), dtype=bool)
            padded[:rows, :k] = nonzero
            kept = padded.reshape(block_rows, r, block_cols, c).any(axis=(1, 3))
            blocks = float(kept.sum())
            imbalance = _imbalance(kept.sum(axis=1), workers)
        else:
            blocks = float(block_rows * block_cols) if density >= 1.0 else math.ceil(nnz / (r * c))
        return SparseTerms(param, str(fmt), rows, k, cols, itemsize, density, known, blocks * r * c,
                           4.0 * blocks + 4.0 * (block_rows + 1), r, k, imbalance)
    if nonzero is not None:
        imbalance = _imbalance(nonzero.sum(axis=1), workers)
    panelled = k > CSR_PANEL_ROWS and density * CSR_PANEL_ROWS >= CSR_PANEL_MIN_ENTRIES
    return SparseTerms(param, "csr", rows, k, cols, itemsize, density, known, nnz, 4.0 * nnz + 4.0 * (rows + 1),
                       1, CSR_PANEL_ROWS if panelled else k, imbalance)


def _imbalance(per_row: np.ndarray, workers: int) -> float:
    """The busiest worker's entries over the mean, for rows cut into balanced chunks dealt out in
    equal numbers (as the CPU kernels do)."""
    total = float(per_row.sum())
    if workers <= 1 or total == 0 or len(per_row) == 0:
        return 1.0
    pointers = np.zeros(len(per_row) + 1, dtype=np.int64)
    np.cumsum(per_row, out=pointers[1:])
    chunks = balanced_chunks(pointers.astype(INDEX_DTYPE), max(1, min(MAX_CHUNKS, len(per_row))))
    count = len(chunks) - 1
    loads = []
    for worker in range(min(workers, count)):
        first, last = chunks[count * worker // workers], chunks[count * (worker + 1) // workers]
        loads.append(float(pointers[last] - pointers[first]))
    return max(loads) / (total / min(workers, count)) if loads else 1.0


def matmul_terms(graph: Graph, anchor: int, workers: int = 2) -> SparseTerms | None:
    """The terms of matmul `anchor` when an operand is a sparse parameter (directly or through a
    transpose), in the storage the CPU kernels use; None for a dense matmul."""
    from passes.lowering.sparse import sparse_operand, storage_kind
    found = sparse_operand(graph, anchor, frozenset(graph.nx.nodes))
    if found is None:
        return None
    index, param, transposed = found
    node = graph.node(param)
    fmt = node.type.format
    out = graph.node(anchor).type
    cols = math.prod(out.shape[:-2]) * (out.shape[-1] if index == 0 else out.shape[-2])
    rows, k = node.type.shape[::-1] if transposed else node.type.shape
    kind = storage_kind(fmt, transposed)
    storage = Format("csr")
    if kind == "bsr":
        storage = Format("bsr", block=fmt.block[::-1] if transposed else fmt.block)
    elif kind == "nm":
        storage = fmt
    data = graph.weight_data.get(node.attr("name"))
    if data is not None:
        data = np.asarray(data).T if transposed else np.asarray(data)
    return sparse_terms(node.attr("name"), storage, rows, k, cols, node.type.dtype.itemsize, data, workers)


# -- the CPU model's use -----------------------------------------------------------------------------


def cpu_sparse_cost(spec: HardwareSpec, kernel: KernelCounts, level: str, cores: int,
                    time: dict[str, float]) -> tuple[dict[str, float], float, float]:
    """(time per resource, executed FLOPs, useful FLOPs) of a CPU kernel holding a sparse matmul.

    compute = (executed FLOPs (at the graph level, the dense matmul's replaced by the format's)
               / (peak x compute_fraction x cores used / cores) + ENTRY_CYCLES per entry stepped
               through / (clock x cores used)) x imbalance; CSR and BSR with fewer columns than half a
              vector run scalar: ENTRY_CYCLES + 1 cycles per stored entry and column instead;
    mem:<level> = bytes of D gathered / bandwidth of the first cache level whose share (half of it,
              per core for L1 and L2) holds the panel of D the kernel walks; DRAM if none does."""
    terms: SparseTerms = kernel.sparse
    executed = kernel.flops
    useful = kernel.flops_useful
    if level == "graph":
        executed = kernel.flops - terms.dense_flops + terms.executed_flops
        useful = kernel.flops_useful - terms.dense_flops + terms.useful_flops
    total_cores = spec.value("cpu.cores")
    dtype = "f64" if terms.itemsize == 8 else "f32"
    peak = spec.value(f"compute.vector.{dtype}")
    rate = peak * spec.value("model.compute_fraction") * cores / total_cores
    lanes = spec.value("cpu.fma_width_bits") / (8 * terms.itemsize)
    work = executed + kernel.transcendentals * spec.value("model.transcendental_flops")
    walked = terms.stored / terms.reuse  # entries the kernel steps through (BSR: one per block column)
    kind = "bsr" if terms.format.startswith("bsr") else "csr" if terms.format == "csr" else "nm"
    cycles = walked * ENTRY_CYCLES[kind]
    scalar = (terms.format == "csr" or terms.format.startswith("bsr")) and terms.cols * 2 < lanes
    if scalar:  # few columns: a scalar multiply-add per stored entry and column (schedules/sparse.py)
        cycles = terms.stored * terms.cols * (ENTRY_CYCLES[kind] + 1)
        work = kernel.transcendentals * spec.value("model.transcendental_flops") + executed - terms.executed_flops
    result = dict(time)
    result["compute"] = (work / rate + cycles / (spec.clock * cores)) * terms.imbalance if rate else 0.0
    panel = terms.panel_rows * terms.cols * terms.itemsize
    name, bandwidth = _holding_level(spec, panel, cores, total_cores)
    gather = terms.gathered_bytes / bandwidth * terms.imbalance if bandwidth else 0.0
    result[name] = max(result.get(name, 0.0), gather)
    return result, executed, useful


def _holding_level(spec: HardwareSpec, nbytes: float, cores: int, total_cores: float) -> tuple[str, float]:
    for name in ("l1", "l2", "l3"):
        level = spec.memory_level(name)
        if level is None or not level.capacity or not level.bandwidth:
            continue
        if nbytes <= level.capacity / 2:
            share = cores / total_cores if name in ("l1", "l2") else 1.0
            return f"mem:{name}", level.bandwidth * share
    main = spec.main_memory
    return f"mem:{main.name}", main.bandwidth * spec.value("model.memory_fraction")


def with_terms(kernel: KernelCounts, terms: SparseTerms | None, note: bool = True) -> Any:
    """`kernel` carrying `terms` (and a note saying what they are)."""
    if terms is None:
        return kernel
    notes = kernel.notes + ((f"sparse matmul: {terms.describe()}",) if note else ())
    return replace(kernel, sparse=terms, notes=notes)
