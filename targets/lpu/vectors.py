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
from dataclasses import dataclass

import numpy as np

from ir.dtypes import DType, to_numpy

LANES = 320


_WIDTHS = {dtype: dtype.itemsize for dtype in DType}


def width(dtype: DType) -> int:
    """Bytes per element on the chip: the number of MEM words and streams one vector takes."""
    return _WIDTHS[dtype]


@dataclass(frozen=True)
class VectorLayout:
    value_shape: tuple[int, ...]
    dtype: DType
    stored_shape: tuple[int, ...] | None = None  # None: the value's shape (or its transpose)
    transposed: bool = False
    splat: bool = False
    lanes: int = LANES

    def __post_init__(self) -> None:
        if self.transposed and len(self.value_shape) < 2:
            raise ValueError("only a tensor of rank >= 2 can be stored transposed")
        if self.splat and math.prod(self.value_shape) != 1:
            raise ValueError("only a one-element tensor can be stored as a splat")
        if self.stored_shape is not None and math.prod(self.stored_shape) != math.prod(self.value_shape):
            raise ValueError("stored shape and value shape differ in size")

    @property
    def matrix_shape(self) -> tuple[int, ...]:
        if self.stored_shape is not None:
            return self.stored_shape
        if self.transposed:
            return self.value_shape[:-2] + (self.value_shape[-1], self.value_shape[-2])
        return self.value_shape

    @property
    def cols(self) -> int:
        shape = self.matrix_shape
        return shape[-1] if shape else 1

    @property
    def rows(self) -> int:
        shape = self.matrix_shape
        return math.prod(shape[:-1]) if shape else 1

    @property
    def chunks(self) -> int:
        return max(1, math.ceil(self.cols / self.lanes))

    @property
    def vectors(self) -> int:
        return 1 if self.splat else self.rows * self.chunks

    @property
    def width(self) -> int:
        return _WIDTHS[self.dtype]

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
