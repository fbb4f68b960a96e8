"""Tensor types: a concrete shape, an element type and a storage format.

Shapes in the graph IR are always concrete: symbolic dimensions of the source language are bound
(by -D, a default in the file, or the shapes of the inputs) before the graph is built, and a program
is specialised again when the bindings change. The storage format says how a tensor is laid out in
memory (dense, or one of the sparse formats); it never changes what a tensor's values are, so the
reference interpreter ignores it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ir.dtypes import DType

FORMAT_KINDS = ("dense", "csr", "csc", "bsr", "nm")


@dataclass(frozen=True)
class Format:
    """Storage format of a tensor. `block` is the BSR block shape; `n`/`m` the N:M pattern."""

    kind: str = "dense"
    block: tuple[int, int] | None = None
    n: int | None = None
    m: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FORMAT_KINDS:
            raise ValueError(f"unknown storage format '{self.kind}'")
        if self.kind == "bsr" and (self.block is None or min(self.block) < 1):
            raise ValueError("bsr format needs a positive block shape")
        if self.kind == "nm" and (self.n is None or self.m is None or not 0 < self.n <= self.m):
            raise ValueError("N:M format needs 0 < N <= M")

    @property
    def is_dense(self) -> bool:
        return self.kind == "dense"

    def __str__(self) -> str:
        if self.kind == "bsr":
            return f"bsr({self.block[0]},{self.block[1]})"
        if self.kind == "nm":
            return f"{self.n}:{self.m}"
        return self.kind


DENSE = Format()


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: DType
    format: Format = DENSE

    def __hash__(self) -> int:
        # Equal types have equal formats, so the format's kind is enough here; hashing the Format itself
        # would be one more call in Python code, and types are hashed wherever nodes are compared.
        return hash((self.shape, self.dtype, self.format.kind))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the dense representation."""
        return self.size * self.dtype.itemsize

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(tuple(shape), self.dtype, DENSE)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(self.shape, dtype, DENSE)

    def __str__(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        text = f"{self.dtype}[{dims}]"
        if not self.format.is_dense:
            text += f"<{self.format}>"
        return text


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcasting rule; raises ValueError naming the clashing dimensions."""
    if shapes and all(shape == shapes[0] for shape in shapes):  # the common case; the loop gives the same
        return tuple(shapes[0])
    rank = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(rank):
        size = 1
        for shape in shapes:
            offset = axis - (rank - len(shape))
            if offset < 0:
                continue
            dim = shape[offset]
            if dim == 1:
                continue
            if size not in (1, dim):
                listed = " and ".join("[" + ", ".join(map(str, s)) + "]" for s in shapes)
                raise ValueError(f"shapes {listed} do not broadcast (dimension {size} vs {dim})")
            size = dim
        result.append(size)
    return tuple(result)


def normalize_axis(axis: int, rank: int) -> int:
    """Turn a possibly negative axis into 0..rank-1, raising ValueError when out of range."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank
