"""ir.sparse: every format against the dense matrix it stands for, conversions between formats and
orientations, validation of malformed arrays (one test per kind of mistake), and structure detection."""

from __future__ import annotations

import numpy as np
import pytest

from ir.sparse import (SparseFormatError, SparseMatrix, analyze, balanced_chunks, block_density, conforms_nm,
                       convert, from_arrays, from_dense, from_scipy, validate)
from ir.types import Format

CSR, CSC = Format("csr"), Format("csc")
BSR = Format("bsr", block=(3, 2))  # does not divide the shapes below
NM = Format("nm", n=2, m=4)
SHAPES = [(7, 10), (1, 10), (10, 1), (0, 4), (4, 0), (16, 16)]
DENSITIES = [0.0, 0.01, 0.1, 0.5, 0.9, 1.0]


@pytest.mark.parametrize("fmt", [CSR, CSC, BSR, Format("bsr", block=(4, 4))], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("density", DENSITIES)
def test_round_trip_through_every_format(fmt: Format, shape: tuple[int, int], density: float, random_matrix) -> None:
    dense = random_matrix(np.random.default_rng(1), shape, density)
    matrix = from_dense(dense, fmt)
    validate(matrix)
    assert np.array_equal(matrix.to_dense(), dense)
    for target in (CSR, CSC, Format("bsr", block=(2, 3))):
        for transposed in (False, True):
            converted = convert(matrix, target, transposed)
            validate(converted)
            assert np.array_equal(converted.to_dense(), dense.T if transposed else dense)


@pytest.mark.parametrize("shape", [(5, 8), (1, 4), (3, 10), (6, 6)], ids=str)
@pytest.mark.parametrize("fill", [0.0, 0.5, 1.0])
def test_nm_round_trip_and_layout(shape: tuple[int, int], fill: float, random_nm) -> None:
    dense = random_nm(np.random.default_rng(2), shape, 2, 4, fill)
    matrix = from_dense(dense, NM)
    validate(matrix)
    groups = -(-shape[1] // 4)
    assert matrix.values.shape == matrix.indices.shape == (shape[0], groups * 2)
    assert np.array_equal(matrix.to_dense(), dense)
    assert np.array_equal(convert(matrix, CSR, transposed=True).to_dense(), dense.T)


def test_nm_rejects_data_that_breaks_the_pattern() -> None:
    dense = np.zeros((2, 8), np.float32)
    dense[1, 4:7] = 1.0
    with pytest.raises(SparseFormatError, match=r"not 2:4 sparse: row 1, columns 4..7 hold 3 non-zeros"):
        from_dense(dense, NM)
    with pytest.raises(SparseFormatError, match="the last group has only 1 columns"):
        from_dense(np.zeros((2, 5), np.float32), NM)


def test_scipy_matrices_keep_their_arrays_or_convert(random_matrix) -> None:
    sparse = pytest.importorskip("scipy.sparse")
    dense = random_matrix(np.random.default_rng(3), (6, 9), 0.3)
    for value in (sparse.csr_matrix(dense), sparse.csc_matrix(dense), sparse.coo_matrix(dense),
                  sparse.bsr_matrix(dense[:6, :8], blocksize=(3, 2))):
        for fmt in (CSR, CSC, BSR):
            matrix = from_scipy(value, fmt)
            assert matrix.format == fmt
            assert np.array_equal(matrix.to_dense(), value.toarray())
    duplicated = sparse.csr_matrix((np.array([1.0, 2.0], np.float32), np.array([1, 1]), np.array([0, 2, 2])),
                                   shape=(2, 3))
    assert np.array_equal(from_scipy(duplicated, CSR).to_dense(), [[0, 3, 0], [0, 0, 0]])  # summed, as scipy means


# -- validation: one case per kind of malformed input ------------------------------------------------

GOOD = (np.array([1.0, 2.0, 3.0], np.float32), np.array([0, 2, 1], np.int32), np.array([0, 2, 2, 3], np.int32))

MALFORMED = [
    ("unsorted", (GOOD[0], np.array([2, 0, 1]), GOOD[2]), r"unsorted column indices in row 0: 2 then 0"),
    ("duplicate", (GOOD[0], np.array([1, 1, 1]), GOOD[2]), r"duplicate column indices in row 0"),
    ("out of range", (GOOD[0], np.array([0, 3, 1]), GOOD[2]), r"column index 3 \(entry 1\) is out of range 0..2"),
    ("negative index", (GOOD[0], np.array([-1, 2, 1]), GOOD[2]), r"column index -1 \(entry 0\) is out of range"),
    ("wrong nnz", (GOOD[0], np.array([0, 2]), GOOD[2]), r"wrong nnz: 3 values but 2 indices"),
    ("pointers end", (GOOD[0], GOOD[1], np.array([0, 2, 2, 2])), r"wrong nnz: pointers end at 2 but there are 3"),
    ("pointers start", (GOOD[0], GOOD[1], np.array([1, 2, 2, 3])), r"pointers must start at 0, got 1"),
    ("pointers decrease", (GOOD[0], GOOD[1], np.array([0, 2, 1, 3])), r"pointers decrease at row 1"),
    ("pointers length", (GOOD[0], GOOD[1], np.array([0, 2, 3])), r"pointers must have 4 entries"),
    ("float indices", (GOOD[0], GOOD[1].astype(np.float32), GOOD[2]), r"indices must be integers"),
    ("2-d values", (GOOD[0].reshape(3, 1), GOOD[1], GOOD[2]), r"values must be one-dimensional"),
    ("not a tuple of three", (GOOD[0], GOOD[1]), r"a csr matrix as a tuple is \(values, indices, pointers\)"),
]


@pytest.mark.parametrize("arrays, message", [(a, m) for _, a, m in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_csr_arrays_are_named(arrays: tuple, message: str) -> None:
    with pytest.raises(SparseFormatError, match=message):
        from_arrays(arrays, CSR, (3, 3))


def test_well_formed_arrays_pass() -> None:
    assert np.array_equal(from_arrays(GOOD, CSR, (3, 3)).to_dense(), [[1, 0, 2], [0, 0, 0], [0, 3, 0]])
    assert np.array_equal(from_arrays(GOOD, CSC, (3, 3)).to_dense(), [[1, 0, 0], [0, 0, 3], [2, 0, 0]])


def test_malformed_bsr_and_nm_arrays_are_named() -> None:
    values = np.ones((1, 3, 2), np.float32)
    with pytest.raises(SparseFormatError, match=r"values must have shape \[blocks, 3, 2\]"):
        from_arrays((np.ones((1, 2, 2)), np.array([0]), np.array([0, 1, 1])), BSR, (4, 3))
    with pytest.raises(SparseFormatError, match=r"block column index 2 \(entry 0\) is out of range 0..1"):
        from_arrays((values, np.array([2]), np.array([0, 1, 1])), BSR, (4, 3))
    with pytest.raises(SparseFormatError, match="non-zeros past the matrix's edge"):
        from_arrays((values, np.array([1]), np.array([0, 0, 1])), BSR, (4, 3))  # rows 3..5 of a 4-row matrix
    padded = np.zeros((1, 3, 2), np.float32)
    padded[0, 0, 0] = 5.0  # row 3, column 2: the only entry of this block inside the matrix
    assert from_arrays((padded, np.array([1]), np.array([0, 0, 1])), BSR, (4, 3)).to_dense()[3, 2] == 5.0
    good = (np.ones((2, 2), np.float32), np.array([[0, 3], [1, 2]], np.int8))
    assert from_arrays(good, NM, (2, 4)).to_dense().sum() == 4
    with pytest.raises(SparseFormatError, match=r"positions in row 1, group 0 must increase: \[2, 1\]"):
        from_arrays((good[0], np.array([[0, 3], [2, 1]])), NM, (2, 4))
    with pytest.raises(SparseFormatError, match=r"position 4 in row 0, group 0 is out of range"):
        from_arrays((good[0], np.array([[0, 4], [1, 2]])), NM, (2, 4))
    with pytest.raises(SparseFormatError, match=r"2:4 values must have shape \[2, 2\]"):
        from_arrays((np.ones((2, 3)), good[1]), NM, (2, 4))
    with pytest.raises(SparseFormatError, match=r"a 2:4 matrix as a tuple is \(values, positions\)"):
        from_arrays(GOOD, NM, (2, 4))


# -- structure ---------------------------------------------------------------------------------------


def test_structure_of_unstructured_block_and_nm_weights(random_matrix, random_nm) -> None:
    rng = np.random.default_rng(4)
    unstructured = analyze(random_matrix(rng, (64, 64), 0.1))
    assert 0.05 < unstructured.density < 0.15 and unstructured.kind() == "unstructured"
    assert (2, 4) not in unstructured.nm  # a 4:8 fit is possible at 10%, but not what kind() reports
    blocks = np.kron(rng.random((8, 8)) < 0.2, np.ones((8, 8), np.float32))
    block_structure = analyze(blocks)
    assert block_structure.best_block() in ((8, 8), (4, 4)) and block_structure.kind().startswith("block")
    assert block_density(blocks, (8, 8)) == pytest.approx(block_structure.density)
    nm = analyze(random_nm(rng, (16, 32), 2, 4))
    assert (2, 4) in nm.nm and (4, 8) in nm.nm and (1, 4) not in nm.nm and nm.kind() == "2:4"
    assert analyze(np.ones((3, 3))).kind() == "dense"
    assert conforms_nm(np.eye(8), 1, 4) and not conforms_nm(np.ones((1, 8)), 2, 4)
    rows = np.zeros((4, 4))
    rows[1] = 1
    assert analyze(rows).zero_rows == 3 and analyze(rows).row_imbalance == 4.0


def test_balanced_chunks_split_rows_by_their_entries() -> None:
    pointers = np.array([0, 100, 101, 102, 103, 104, 200], np.int32)  # two heavy rows at the ends
    chunks = balanced_chunks(pointers, 2)
    assert list(chunks) == [0, 3, 6] or list(chunks) == [0, 2, 6]
    assert list(balanced_chunks(np.array([0], np.int32), 4)) == [0, 0, 0, 0, 0]
    even = balanced_chunks(np.arange(0, 101, dtype=np.int32), 4)
    assert list(even) == [0, 25, 50, 75, 100]


def test_sparse_matrix_reports_its_size() -> None:
    matrix = from_dense(np.eye(4, dtype=np.float32), Format("bsr", block=(2, 2)))
    assert isinstance(matrix, SparseMatrix) and matrix.stored == 8 and matrix.nnz == 4 and matrix.ndim == 2
