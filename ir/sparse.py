"""Sparse matrices: the arrays each storage format keeps, conversion to and from dense, validation.

A storage format (`ir.types.Format`) never changes what a matrix means: a `SparseMatrix` stands for
the dense matrix `to_dense()` returns, whose entries outside the stored ones are zero. The arrays per
format, for a matrix of shape [M, K] (these are also the tuple forms the Python API accepts):

| format      | values                 | indices                                   | pointers                |
|-------------|------------------------|-------------------------------------------|-------------------------|
| csr         | [nnz]                  | [nnz] column of each value                | [M+1] row starts        |
| csc         | [nnz]                  | [nnz] row of each value                   | [K+1] column starts     |
| bsr(R, C)   | [blocks, R, C]         | [blocks] block column of each block       | [ceil(M/R)+1] block-row starts |
| N:M (n:m)   | [M, G*n], G=ceil(K/m)  | [M, G*n] position (0..m-1) in its group    | none                    |

Indices are sorted and distinct within a row (column, group); `pointers` start at 0, never decrease
and end at the number of stored values. BSR blocks that reach past the matrix's edge (M or K not a
multiple of the block) hold zeros there. An N:M row keeps exactly n entries per group of m
consecutive columns; a group with fewer non-zeros pads with zero values at unused positions.

`validate` checks all of that with a message naming the first problem (`SparseFormatError`), so a
kernel that trusts the arrays never reads out of bounds. `from_dense`, `from_scipy`, `from_arrays`
build one (dense data that does not fit the format, e.g. three non-zeros in a group of a 2:4 matrix,
is an error, never silently dropped); `transpose_csr` and `convert` change format or orientation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ir.types import Format

INDEX_DTYPE = np.int32  # indices and pointers as stored for kernels
POSITION_DTYPE = np.int8  # N:M positions inside a group


class SparseFormatError(ValueError):
    """Arrays that do not form a valid matrix of the format (the message says what is wrong)."""


@dataclass(frozen=True, eq=False)
class SparseMatrix:
    """A matrix of `shape` stored in `format` (see the module docstring for the arrays)."""

    format: Format
    shape: tuple[int, int]
    values: np.ndarray
    indices: np.ndarray
    pointers: np.ndarray | None = None

    ndim = 2  # so that shape checks written for arrays accept a SparseMatrix

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def stored(self) -> int:
        """Values kept, zeros included (padding of BSR blocks and N:M groups)."""
        return int(self.values.size)

    @property
    def nnz(self) -> int:
        """Non-zero entries among the stored values."""
        return int(np.count_nonzero(self.values))

    def to_dense(self) -> np.ndarray:
        rows, cols = self.shape
        kind = self.format.kind
        out = np.zeros(self.shape, dtype=self.values.dtype)
        if kind == "csr":
            row_of = np.repeat(np.arange(rows), np.diff(self.pointers))
            out[row_of, self.indices] = self.values
        elif kind == "csc":
            col_of = np.repeat(np.arange(cols), np.diff(self.pointers))
            out[self.indices, col_of] = self.values
        elif kind == "bsr":
            r, c = self.format.block
            block_rows = len(self.pointers) - 1
            block_cols = math.ceil(cols / c)
            padded = np.zeros((block_rows * r, block_cols * c), dtype=self.values.dtype)
            block_row_of = np.repeat(np.arange(block_rows), np.diff(self.pointers))
            view = padded.reshape(block_rows, r, block_cols, c).transpose(0, 2, 1, 3)
            view[block_row_of, self.indices] = self.values
            out = np.ascontiguousarray(padded[:rows, :cols])
        elif kind == "nm":
            n, m = self.format.n, self.format.m
            groups = np.arange(self.values.shape[1]) // n
            columns = groups[None, :] * m + self.indices.astype(np.int64)
            row_of = np.broadcast_to(np.arange(rows)[:, None], columns.shape)
            out[row_of, columns] = self.values
        else:
            raise SparseFormatError(f"no storage arrays for format {self.format}")
        return out


# -- building -------------------------------------------------------------------------------------


def from_dense(array: np.ndarray, fmt: Format) -> SparseMatrix:
    """The matrix `array` stored in `fmt`; SparseFormatError when it does not fit (N:M)."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise SparseFormatError(f"a {fmt} matrix must have rank 2, got shape {list(array.shape)}")
    rows, cols = array.shape
    kind = fmt.kind
    if kind == "csr":
        counts = np.count_nonzero(array, axis=1)
        _, columns = np.nonzero(array)
        return SparseMatrix(fmt, (rows, cols), array[array != 0], columns.astype(INDEX_DTYPE),
                            _pointers(counts))
    if kind == "csc":
        transposed = from_dense(array.T, Format("csr"))
        return SparseMatrix(fmt, (rows, cols), transposed.values, transposed.indices, transposed.pointers)
    if kind == "bsr":
        r, c = fmt.block
        block_rows, block_cols = math.ceil(rows / r), math.ceil(cols / c)
        padded = np.zeros((block_rows * r, block_cols * c), dtype=array.dtype)
        padded[:rows, :cols] = array
        blocks = padded.reshape(block_rows, r, block_cols, c).transpose(0, 2, 1, 3)
        kept = np.any(blocks != 0, axis=(2, 3))
        block_row_of, block_col_of = np.nonzero(kept)
        return SparseMatrix(fmt, (rows, cols), np.ascontiguousarray(blocks[block_row_of, block_col_of]),
                            block_col_of.astype(INDEX_DTYPE), _pointers(kept.sum(axis=1)))
    if kind == "nm":
        return _nm_from_dense(array, fmt)
    raise SparseFormatError(f"format {fmt} has no sparse storage")


def _pointers(counts: np.ndarray) -> np.ndarray:
    pointers = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=pointers[1:])
    if pointers[-1] > np.iinfo(INDEX_DTYPE).max:
        raise SparseFormatError(f"{pointers[-1]} stored values do not fit 32-bit indices")
    return pointers.astype(INDEX_DTYPE)


def _nm_from_dense(array: np.ndarray, fmt: Format) -> SparseMatrix:
    n, m = fmt.n, fmt.m
    rows, cols = array.shape
    groups = math.ceil(cols / m)
    padded = np.zeros((rows, groups * m), dtype=array.dtype)
    padded[:, :cols] = array
    grouped = padded.reshape(rows, groups, m)
    nonzero = [grouped[:, :, j] != 0 for j in range(m)]  # one (rows, groups) slice per position:
    counts = np.zeros((rows, groups), dtype=np.int16)     # numpy is slow along a tiny last axis
    for flags in nonzero:
        counts += flags
    if counts.size and counts.max() > n:
        row, group = np.argwhere(counts > n)[0]
        raise SparseFormatError(
            f"not {n}:{m} sparse: row {row}, columns {group * m}..{min(cols, group * m + m) - 1} hold "
            f"{counts[row, group]} non-zeros (at most {n} of every {m} consecutive entries)")
    if groups * m - cols and n > m - (groups * m - cols):
        raise SparseFormatError(f"{n}:{m} storage of {cols} columns: the last group has only "
                                f"{m - (groups * m - cols)} columns, fewer than {n}")
    # Keep each group's non-zeros and then its first zeros, up to n entries, in position order (the
    # padding past the last column comes after every real column, so it is never kept).
    positions = np.zeros((rows, groups, n), dtype=np.int8)
    kept_so_far = np.zeros((rows, groups), dtype=np.int16)
    zeros_so_far = np.zeros((rows, groups), dtype=np.int16)
    for j, flags in enumerate(nonzero):
        keep = flags | (counts + zeros_so_far < n)
        for t in range(n):
            positions[:, :, t] += np.int8(j) * (keep & (kept_so_far == t))
        kept_so_far += keep
        zeros_so_far += ~flags
    values = np.take_along_axis(grouped, positions.astype(np.intp), axis=2)
    return SparseMatrix(fmt, (rows, cols), values.reshape(rows, groups * n),
                        positions.reshape(rows, groups * n).astype(POSITION_DTYPE))


def from_arrays(arrays: tuple, fmt: Format, shape: tuple[int, int]) -> SparseMatrix:
    """A matrix from its arrays in the tuple form of `fmt` (validated)."""
    expected = 2 if fmt.kind == "nm" else 3
    if not isinstance(arrays, tuple) or len(arrays) != expected:
        forms = "(values, positions)" if fmt.kind == "nm" else "(values, indices, pointers)"
        raise SparseFormatError(f"a {fmt} matrix as a tuple is {forms}, got "
                                f"{len(arrays) if isinstance(arrays, tuple) else type(arrays).__name__}"
                                f"{' arrays' if isinstance(arrays, tuple) else ''}")
    parts = []
    for what, array in zip(("values", "indices" if fmt.kind != "nm" else "positions", "pointers"), arrays):
        if not isinstance(array, np.ndarray):
            try:
                array = np.asarray(array)
            except Exception:  # noqa: BLE001 - anything numpy refuses
                raise SparseFormatError(f"{what} is not an array ({type(array).__name__})") from None
        parts.append(array)
    if fmt.kind == "nm":
        matrix = SparseMatrix(fmt, tuple(shape), parts[0], parts[1])
    else:
        matrix = SparseMatrix(fmt, tuple(shape), parts[0], parts[1], parts[2])
    validate(matrix)
    return _normalized(matrix)


def _normalized(matrix: SparseMatrix) -> SparseMatrix:
    """The same matrix with index arrays in the kernels' integer types (after `validate`)."""
    if matrix.format.kind == "nm":
        return SparseMatrix(matrix.format, matrix.shape, np.ascontiguousarray(matrix.values),
                            np.ascontiguousarray(matrix.indices, dtype=POSITION_DTYPE))
    return SparseMatrix(matrix.format, matrix.shape, np.ascontiguousarray(matrix.values),
                        np.ascontiguousarray(matrix.indices, dtype=INDEX_DTYPE),
                        np.ascontiguousarray(matrix.pointers, dtype=INDEX_DTYPE))


def is_scipy_sparse(value: Any) -> bool:
    """Whether `value` is a scipy.sparse matrix or array (without importing scipy when it is not)."""
    module = type(value).__module__ or ""
    if not module.startswith("scipy.sparse"):
        return False
    from scipy import sparse
    return bool(sparse.issparse(value))


def from_scipy(value: Any, fmt: Format) -> SparseMatrix:
    """A scipy.sparse matrix stored in `fmt`. CSR, CSC and BSR (of the declared block shape) keep
    their arrays, after scipy's `sum_duplicates` (which sorts indices); other cases convert."""
    kind = fmt.kind
    shape = tuple(int(d) for d in value.shape)
    if kind == "csr" and value.format == "csr" or kind == "csc" and value.format == "csc":
        value = value.copy()
        value.sum_duplicates()
        return from_arrays((value.data, value.indices, value.indptr), fmt, shape)
    if kind == "bsr" and value.format == "bsr" and tuple(value.blocksize) == tuple(fmt.block):
        value = value.copy()
        value.sum_duplicates()
        return from_arrays((value.data, value.indices, value.indptr), fmt, shape)
    if kind in ("csr", "csc"):
        return from_scipy(value.tocsr() if kind == "csr" else value.tocsc(), fmt)
    return from_dense(value.toarray(), fmt)


# -- validation -----------------------------------------------------------------------------------


def validate(matrix: SparseMatrix) -> None:
    """SparseFormatError naming the first way the arrays fail to form a `matrix.format` matrix."""
    fmt, (rows, cols) = matrix.format, matrix.shape
    if rows < 0 or cols < 0:
        raise SparseFormatError(f"negative shape {list(matrix.shape)}")
    if matrix.values.dtype.kind not in "fiub":
        raise SparseFormatError(f"values have dtype {matrix.values.dtype}; expected numbers")
    if fmt.kind == "nm":
        _validate_nm(matrix)
        return
    if fmt.kind not in ("csr", "csc", "bsr"):
        raise SparseFormatError(f"format {fmt} has no sparse storage")
    values, indices, pointers = matrix.values, matrix.indices, matrix.pointers
    for what, array in (("indices", indices), ("pointers", pointers)):
        if array.dtype.kind not in "iu":
            raise SparseFormatError(f"{what} must be integers, got dtype {array.dtype}")
        if array.ndim != 1:
            raise SparseFormatError(f"{what} must be one-dimensional, got shape {list(array.shape)}")
    if fmt.kind == "bsr":
        r, c = fmt.block
        lines, extent, line_name, index_name = math.ceil(rows / r), math.ceil(cols / c), "block row", "block column"
        if values.ndim != 3 or tuple(values.shape[1:]) != (r, c):
            raise SparseFormatError(f"bsr({r},{c}) values must have shape [blocks, {r}, {c}], got "
                                    f"{list(values.shape)}")
    else:
        lines, extent = (rows, cols) if fmt.kind == "csr" else (cols, rows)
        line_name, index_name = ("row", "column") if fmt.kind == "csr" else ("column", "row")
        if values.ndim != 1:
            raise SparseFormatError(f"values must be one-dimensional, got shape {list(values.shape)}")
    stored = values.shape[0]
    if len(pointers) != lines + 1:
        raise SparseFormatError(f"pointers must have {lines + 1} entries (one per {line_name}, plus one), "
                                f"got {len(pointers)}")
    if len(indices) != stored:
        raise SparseFormatError(f"wrong nnz: {stored} values but {len(indices)} indices")
    if pointers[0] != 0:
        raise SparseFormatError(f"pointers must start at 0, got {pointers[0]}")
    steps = np.diff(pointers.astype(np.int64))
    if np.any(steps < 0):
        line = int(np.argmax(steps < 0))
        raise SparseFormatError(f"pointers decrease at {line_name} {line} ({pointers[line]} then "
                                f"{pointers[line + 1]})")
    if pointers[-1] != stored:
        raise SparseFormatError(f"wrong nnz: pointers end at {pointers[-1]} but there are {stored} values")
    if stored > np.iinfo(INDEX_DTYPE).max:
        raise SparseFormatError(f"{stored} stored values do not fit 32-bit indices")
    if stored:
        wide = indices.astype(np.int64)
        bad = (wide < 0) | (wide >= extent)
        if np.any(bad):
            at = int(np.argmax(bad))
            raise SparseFormatError(f"{index_name} index {wide[at]} (entry {at}) is out of range 0..{extent - 1}")
        line_of = np.repeat(np.arange(lines), steps)
        same_line = line_of[1:] == line_of[:-1]
        unsorted = same_line & (wide[1:] <= wide[:-1])
        if np.any(unsorted):
            at = int(np.argmax(unsorted))
            what = "duplicate" if wide[at + 1] == wide[at] else "unsorted"
            raise SparseFormatError(f"{what} {index_name} indices in {line_name} {line_of[at]}: {wide[at]} then "
                                    f"{wide[at + 1]} (indices must increase within a {line_name})")
    if fmt.kind == "bsr" and stored:
        _validate_bsr_padding(matrix)


def _validate_bsr_padding(matrix: SparseMatrix) -> None:
    rows, cols = matrix.shape
    r, c = matrix.format.block
    block_rows = np.repeat(np.arange(len(matrix.pointers) - 1), np.diff(matrix.pointers.astype(np.int64)))
    row_limit = rows - block_rows * r  # valid rows inside each block
    col_limit = cols - matrix.indices.astype(np.int64) * c
    outside = (np.arange(r)[None, :, None] >= row_limit[:, None, None]) | \
              (np.arange(c)[None, None, :] >= col_limit[:, None, None])
    if np.any((matrix.values != 0) & outside):
        block = int(np.argmax(np.any((matrix.values != 0) & outside, axis=(1, 2))))
        raise SparseFormatError(f"block {block} holds non-zeros past the matrix's edge ({rows}x{cols}); "
                                "entries of a block outside the matrix must be zero")


def _validate_nm(matrix: SparseMatrix) -> None:
    fmt, (rows, cols) = matrix.format, matrix.shape
    n, m = fmt.n, fmt.m
    groups = math.ceil(cols / m)
    values, positions = matrix.values, matrix.indices
    want = [rows, groups * n]
    if list(values.shape) != want:
        raise SparseFormatError(f"{n}:{m} values must have shape {want} ([rows, {n} per group of {m} columns]), "
                                f"got {list(values.shape)}")
    if positions.dtype.kind not in "iu":
        raise SparseFormatError(f"positions must be integers, got dtype {positions.dtype}")
    if list(positions.shape) != want:
        raise SparseFormatError(f"{n}:{m} positions must have shape {want}, got {list(positions.shape)}")
    if not positions.size:
        return
    wide = positions.astype(np.int64).reshape(rows, groups, n)
    columns = np.arange(groups)[None, :, None] * m + wide
    bad = (wide < 0) | (wide >= m) | (columns >= cols)
    if np.any(bad):
        row, group, slot = np.argwhere(bad)[0]
        raise SparseFormatError(f"position {wide[row, group, slot]} in row {row}, group {group} is out of range "
                                f"(positions are 0..{m - 1} and must name a column < {cols})")
    if n > 1:
        unsorted = wide[:, :, 1:] <= wide[:, :, :-1]
        if np.any(unsorted):
            row, group, slot = np.argwhere(unsorted)[0]
            raise SparseFormatError(f"positions in row {row}, group {group} must increase: "
                                    f"{wide[row, group].tolist()}")


# -- changing format or orientation -----------------------------------------------------------------


def transpose_csr(matrix: SparseMatrix) -> SparseMatrix:
    """The CSR storage of the transpose of a CSR (or CSC) matrix, without densifying (a stable counting
    sort of the entries by column)."""
    if matrix.format.kind == "csc":  # the CSC arrays of A are the CSR arrays of A^T
        rows, cols = matrix.shape
        return SparseMatrix(Format("csr"), (cols, rows), matrix.values, matrix.indices, matrix.pointers)
    rows, cols = matrix.shape
    order = np.argsort(matrix.indices, kind="stable")
    row_of = np.repeat(np.arange(rows, dtype=INDEX_DTYPE), np.diff(matrix.pointers))
    counts = np.bincount(matrix.indices, minlength=cols)
    return SparseMatrix(Format("csr"), (cols, rows), matrix.values[order], row_of[order], _pointers(counts))


def convert(matrix: SparseMatrix, fmt: Format, transposed: bool = False) -> SparseMatrix:
    """`matrix` (or its transpose) stored in `fmt`. CSR/CSC changes go through `transpose_csr`; the
    others through the dense matrix (N:M conversion checks the pattern)."""
    kind = matrix.format.kind
    if not transposed and matrix.format == fmt:
        return matrix
    if fmt.kind in ("csr", "csc") and kind in ("csr", "csc"):
        # The CSC arrays of A are the CSR arrays of A^T: get A^T (or A) as CSR, then relabel.
        want_t = transposed != (fmt.kind == "csc")  # the CSR matrix whose arrays we return
        have_t = kind == "csc"
        as_csr = transpose_csr(matrix) if kind == "csc" else matrix  # A^T if csc, A if csr
        if want_t != have_t:
            as_csr = transpose_csr(as_csr)
        rows, cols = matrix.shape[::-1] if transposed else matrix.shape
        return SparseMatrix(fmt, (rows, cols), as_csr.values, as_csr.indices, as_csr.pointers)
    dense = matrix.to_dense()
    return from_dense(dense.T if transposed else dense, fmt)


def balanced_chunks(pointers: np.ndarray, chunks: int, row_cost: float = 4.0) -> np.ndarray:
    """Row boundaries [chunks+1] splitting rows into `chunks` runs of about equal work, where a row
    costs its stored entries plus `row_cost` (starting it, storing its results). Rows are never split,
    so a chunk may be empty or heavier than the average when one row dominates."""
    lines = len(pointers) - 1
    cost = pointers.astype(np.float64) + row_cost * np.arange(lines + 1)
    targets = cost[-1] * np.arange(chunks + 1) / chunks
    above = np.clip(np.searchsorted(cost, targets, side="left"), 1, max(1, lines))
    below = above - 1
    nearer_below = targets - cost[below] < cost[np.minimum(above, lines)] - targets
    bounds = np.where(nearer_below, below, above).astype(np.int64)
    bounds[0], bounds[-1] = 0, lines
    return np.maximum.accumulate(np.clip(bounds, 0, lines)).astype(INDEX_DTYPE)


# -- structure of a dense matrix (what the sparsity passes measure) --------------------------------

BLOCK_SHAPES = ((2, 2), (4, 4), (8, 8), (16, 16), (32, 32))
NM_PATTERNS = ((1, 4), (2, 4), (2, 8), (4, 8))


@dataclass(frozen=True)
class Structure:
    """What a weight's zeros look like: its density, the fraction of non-zero blocks for each
    candidate block shape, the N:M patterns it conforms to, and how unevenly rows are filled."""

    shape: tuple[int, int]
    nnz: int
    block_density: tuple[tuple[tuple[int, int], float], ...]  # (block shape, non-zero blocks / blocks)
    nm: tuple[tuple[int, int], ...]  # (n, m) patterns every group of m consecutive entries satisfies
    row_nnz_max: int
    zero_rows: int
    zero_cols: int

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def density(self) -> float:
        return self.nnz / self.size if self.size else 1.0

    @property
    def row_imbalance(self) -> float:
        """The fullest row's non-zeros over the mean row's (1.0 for even rows, or no non-zeros)."""
        mean = self.nnz / self.shape[0] if self.shape[0] else 0.0
        return self.row_nnz_max / mean if mean else 1.0

    def kind(self) -> str:
        """A short summary: 'dense', 'N:M' (the sparsest pattern it conforms to that its density nearly
        fills), 'block RxC' (see `best_block`) or 'unstructured'."""
        if self.nnz == self.size:
            return "dense"
        tight = [(n, m) for n, m in self.nm if self.density >= 0.75 * n / m]  # not just a sparse matrix
        if tight:
            n, m = min(tight, key=lambda p: p[0] / p[1])
            return f"{n}:{m}"
        block = self.best_block()
        return f"block {block[0]}x{block[1]}" if block is not None else "unstructured"

    def best_block(self) -> tuple[int, int] | None:
        """The largest candidate block shape whose non-zero blocks hold at most twice the entries the
        non-zeros need (so BSR computes at most 2x the useful work), or None."""
        best = None
        for (r, c), fraction in self.block_density:
            if self.density and r * c >= 4 and fraction <= 2 * self.density:
                best = (r, c)
        return best


def block_density(array: np.ndarray, block: tuple[int, int]) -> float:
    """Fraction of the [R, C] blocks (the matrix zero-padded to whole blocks) holding a non-zero."""
    rows, cols = array.shape
    r, c = block
    block_rows, block_cols = math.ceil(rows / r), math.ceil(cols / c)
    if not block_rows * block_cols:
        return 0.0
    nonzero = np.zeros((block_rows * r, block_cols * c), dtype=bool)
    nonzero[:rows, :cols] = array != 0
    kept = nonzero.reshape(block_rows, r, block_cols, c).any(axis=(1, 3))
    return float(kept.sum()) / kept.size


def conforms_nm(array: np.ndarray, n: int, m: int) -> bool:
    """Whether every group of m consecutive entries of each row holds at most n non-zeros."""
    rows, cols = array.shape
    groups = math.ceil(cols / m)
    if groups * m - cols and n > m - (groups * m - cols):
        return False  # the last, shorter group could not hold n stored entries
    nonzero = np.zeros((rows, groups * m), dtype=bool)
    nonzero[:, :cols] = array != 0
    return bool(nonzero.reshape(rows, groups, m).sum(axis=2).max(initial=0) <= n)


def analyze(array: np.ndarray, block_shapes: tuple[tuple[int, int], ...] = BLOCK_SHAPES,
            patterns: tuple[tuple[int, int], ...] = NM_PATTERNS) -> Structure:
    """The `Structure` of a dense matrix."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise SparseFormatError(f"structure of a matrix: expected rank 2, got shape {list(array.shape)}")
    nonzero = array != 0
    row_nnz = nonzero.sum(axis=1)
    blocks = tuple((shape, block_density(array, shape)) for shape in block_shapes
                   if shape[0] <= max(1, array.shape[0]) and shape[1] <= max(1, array.shape[1]))
    fitting = tuple(p for p in patterns if conforms_nm(array, *p))
    return Structure(tuple(array.shape), int(nonzero.sum()), blocks, fitting, int(row_nnz.max(initial=0)),
                     int((row_nnz == 0).sum()), int((nonzero.sum(axis=0) == 0).sum()))
