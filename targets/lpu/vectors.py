"""How a tensor is laid out in MEM as 320-lane vectors.

A tensor is stored as a matrix: its last axis runs along the lanes, every other axis is flattened into
rows (a rank-0 or rank-1 tensor is one row). Each row is cut into ceil(cols / 320) vectors; lanes past
the end of a row are padding and always hold zero in MEM (every MEM Write zeroes them), which is what
lets an MXM dot product or a sum read whole vectors. So an f32[2, 784] tensor takes 2 x 3 vectors and
wastes 2 x 176 lanes.

Three variants of the stored matrix:
* transposed: the matrix stored is the value with its last two axes swapped (weights that are the
  right operand of a matmul: the MXM wants their columns as vectors; the host writes them so);
* stored_shape differing from the value's shape with the same element order (a reduction's result
  kept in keepdims form);
* splat: a one-element value stored as a single vector holding the value in every lane (constants).

A vector of a dtype of w bytes takes w MEM words (one byte per lane per word) and w streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ir.dtypes import DType, to_numpy

LANES = 320


_WIDTHS = {dtype: dtype.itemsize for dtype in DType}


def width(dtype: DType) -> int:
    """Bytes per element on the chip: the number of MEM words and streams one vector takes."""
    return _WIDTHS[dtype]


@dataclass(frozen=True)
class VectorLayout:
    """A tensor's place in MEM as vectors. Its sizes (`matrix_shape` to `width`) are worked out once, when
    it is made: a layout is frozen, and the partitioner and the counter ask for them tens of thousands of
    times. They are not arguments and take no part in equality, hashing or the repr."""

    value_shape: tuple[int, ...]
    dtype: DType
    stored_shape: tuple[int, ...] | None = None  # None: the value's shape (or its transpose)
    transposed: bool = False
    splat: bool = False
    lanes: int = LANES
    matrix_shape: tuple[int, ...] = field(init=False, repr=False, compare=False)  # the matrix stored
    cols: int = field(init=False, repr=False, compare=False)  # elements per stored row
    rows: int = field(init=False, repr=False, compare=False)
    chunks: int = field(init=False, repr=False, compare=False)  # vectors per row
    vectors: int = field(init=False, repr=False, compare=False)
    width: int = field(init=False, repr=False, compare=False)  # bytes per element: MEM words per vector

    def __post_init__(self) -> None:
        if self.transposed and len(self.value_shape) < 2:
            raise ValueError("only a tensor of rank >= 2 can be stored transposed")
        if self.splat and math.prod(self.value_shape) != 1:
            raise ValueError("only a one-element tensor can be stored as a splat")
        if self.stored_shape is not None and math.prod(self.stored_shape) != math.prod(self.value_shape):
            raise ValueError("stored shape and value shape differ in size")
        if self.stored_shape is not None:
            matrix = self.stored_shape
        elif self.transposed:
            matrix = self.value_shape[:-2] + (self.value_shape[-1], self.value_shape[-2])
        else:
            matrix = self.value_shape
        cols = matrix[-1] if matrix else 1
        rows = math.prod(matrix[:-1]) if matrix else 1
        chunks = max(1, math.ceil(cols / self.lanes))
        sizes = {"matrix_shape": matrix, "cols": cols, "rows": rows, "chunks": chunks,
                 "vectors": 1 if self.splat else rows * chunks, "width": _WIDTHS[self.dtype]}
        for name, value in sizes.items():
            object.__setattr__(self, name, value)  # a frozen dataclass's own way to set derived fields

    @property
    def words(self) -> int:
        """MEM words the whole tensor takes."""
        return self.vectors * self.width

    @property
    def nbytes(self) -> int:
        return self.words * self.lanes

    def index(self, row: int, chunk: int) -> int:
        return 0 if self.splat else row * self.chunks + chunk

    def valid_lanes(self, chunk: int) -> int:
        if self.splat:
            return self.lanes
        return min(self.lanes, self.cols - chunk * self.lanes)

    # -- element positions ---------------------------------------------------------------------

    def locate(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) in the stored matrix of value elements given by flat (row-major) indices."""
        flat = np.asarray(flat, dtype=np.int64)
        if self.splat:
            return np.zeros_like(flat), np.zeros_like(flat)
        if self.transposed:
            index = np.unravel_index(flat, self.value_shape)
            swapped = index[:-2] + (index[-1], index[-2])
            flat = np.ravel_multi_index(swapped, self.matrix_shape)
        cols = self.cols
        return flat // cols, flat % cols

    def row_of(self, index: tuple[int, ...]) -> int:
        """The stored row of the value element at multi-index `index`: `locate`'s row for one element, in
        plain integers. It never decreases as any one index grows (a row-major flat index, permuted for a
        transposed layout, divided by the row length)."""
        if self.splat:
            return 0
        shape = self.value_shape
        if self.transposed:
            index = index[:-2] + (index[-1], index[-2])
            shape = self.matrix_shape
        flat = 0
        for position, dim in zip(index, shape):
            flat = flat * dim + position
        return flat // self.cols

    # -- host transfers ----------------------------------------------------------------------------

    def pack(self, value: np.ndarray) -> np.ndarray:
        """The vectors ([vectors, lanes], zero padding) holding `value` (of the value shape)."""
        array = np.asarray(value).reshape(self.value_shape)
        container = self.dtype.numpy
        if self.splat:
            return np.full((1, self.lanes), array.reshape(-1)[0], dtype=container)
        if self.transposed:
            array = np.swapaxes(array, -1, -2)
        matrix = np.ascontiguousarray(array).reshape(self.rows, self.cols)
        padded = np.zeros((self.rows, self.chunks * self.lanes), dtype=container)
        padded[:, :self.cols] = matrix
        return padded.reshape(self.rows * self.chunks, self.lanes)

    def unpack(self, vectors: np.ndarray) -> np.ndarray:
        """The value held by `vectors` ([vectors, lanes])."""
        if self.splat:
            return to_numpy(np.full(self.value_shape, vectors[0][0]), self.dtype)
        matrix = np.asarray(vectors).reshape(self.rows, self.chunks * self.lanes)[:, :self.cols]
        array = matrix.reshape(self.matrix_shape)
        if self.transposed:
            array = np.swapaxes(array, -1, -2)
        return np.ascontiguousarray(to_numpy(array, self.dtype)).reshape(self.value_shape)


def standard_layout(shape: tuple[int, ...], dtype: DType) -> VectorLayout:
    return VectorLayout(tuple(shape), dtype)
