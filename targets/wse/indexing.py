"""Index maps: which elements of an operand an operation reads to produce given elements of its result.

Values are addressed by flat row-major indices. For a set of result indices, each function returns the
operand indices that produce them, in the same order, so a PE that holds an operand's elements can
compute exactly its share of the result. They follow the op table's semantics (numpy's): elementwise
operands broadcast, a transpose permutes coordinates, a reshape keeps the flat order, a slice is affine,
a reduction reads all positions along the reduced axes, a concatenation splits along its axis.
All functions are vectorised over the index arrays (int64).
"""

from __future__ import annotations

import math

import numpy as np

INDEX = np.int64


def _unravel(idx: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    if not shape:
        return []
    return [np.asarray(c, dtype=INDEX) for c in np.unravel_index(idx, shape)]


def _ravel(coords: list[np.ndarray], shape: tuple[int, ...], n: int) -> np.ndarray:
    if not shape:
        return np.zeros(n, dtype=INDEX)
    return np.ravel_multi_index(tuple(coords), shape).astype(INDEX, copy=False)


def broadcast_map(idx: np.ndarray, result: tuple[int, ...], operand: tuple[int, ...]) -> np.ndarray:
    """Operand indices read by an elementwise op (numpy broadcasting) for result indices `idx`."""
    if operand == result or idx.size == 0:
        return idx.astype(INDEX, copy=True) if operand == result else np.zeros(0, dtype=INDEX)
    coords = _unravel(idx, result)
    offset = len(result) - len(operand)
    mapped = [coords[offset + i] if dim != 1 else np.zeros(idx.size, dtype=INDEX)
              for i, dim in enumerate(operand)]
    return _ravel(mapped, operand, idx.size)


def transpose_map(idx: np.ndarray, result: tuple[int, ...], perm: tuple[int, ...]) -> np.ndarray:
    operand = [0] * len(perm)
    for i, p in enumerate(perm):
        operand[p] = result[i]
    if idx.size == 0:
        return np.zeros(0, dtype=INDEX)
    coords = _unravel(idx, result)
    mapped = [None] * len(perm)
    for i, p in enumerate(perm):
        mapped[p] = coords[i]
    return _ravel(mapped, tuple(operand), idx.size)


def slice_map(idx: np.ndarray, result: tuple[int, ...], operand: tuple[int, ...], starts: tuple[int, ...],
              steps: tuple[int, ...]) -> np.ndarray:
    if idx.size == 0:
        return np.zeros(0, dtype=INDEX)
    coords = _unravel(idx, result)
    mapped = [start + c * step for c, start, step in zip(coords, starts, steps)]
    return _ravel(mapped, operand, idx.size)


def reduction_map(idx: np.ndarray, result: tuple[int, ...], operand: tuple[int, ...], axes: tuple[int, ...],
                  keepdims: bool) -> np.ndarray:
    """[len(idx), reduced size]: row i lists the operand indices that reduce into result index idx[i]."""
    reduced = math.prod(operand[a] for a in axes)
    if idx.size == 0 or reduced == 0:
        return np.zeros((idx.size, reduced), dtype=INDEX)
    coords = _unravel(idx, result)
    kept: list[np.ndarray] = []
    source = iter(coords)
    for axis in range(len(operand)):
        if axis in axes:
            kept.append(np.zeros(idx.size, dtype=INDEX))
            if keepdims:
                next(source)
        else:
            kept.append(next(source))
    base = _ravel(kept, operand, idx.size)
    strides = _strides(operand)
    offsets = np.zeros(1, dtype=INDEX)
    for axis in axes:
        steps = np.arange(operand[axis], dtype=INDEX) * strides[axis]
        offsets = (offsets[:, None] + steps[None, :]).reshape(-1)
    return base[:, None] + offsets[None, :]


def concat_split(idx: np.ndarray, result: tuple[int, ...], operands: list[tuple[int, ...]],
                 axis: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each operand: (positions in `idx` it provides, the operand indices at those positions)."""
    coords = _unravel(idx, result) if idx.size else [np.zeros(0, dtype=INDEX) for _ in result]
    pieces = []
    start = 0
    for shape in operands:
        stop = start + shape[axis]
        positions = np.nonzero((coords[axis] >= start) & (coords[axis] < stop))[0].astype(INDEX)
        mapped = [c[positions] for c in coords]
        mapped[axis] = mapped[axis] - start
        pieces.append((positions, _ravel(mapped, shape, positions.size)))
        start = stop
    return pieces


def iota_values(idx: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The coordinate along `axis` of each flat index: the values of an iota at `idx`."""
    if idx.size == 0:
        return np.zeros(0, dtype=INDEX)
    return _unravel(idx, shape)[axis]


def _strides(shape: tuple[int, ...]) -> list[int]:
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    return strides


def block_ranges(total: int, parts: int) -> list[tuple[int, int]]:
    """`total` positions cut into `parts` contiguous blocks whose sizes differ by at most one."""
    base, extra = divmod(total, parts)
    ranges = []
    start = 0
    for part in range(parts):
        size = base + (1 if part < extra else 0)
        ranges.append((start, start + size))
        start += size
    return ranges


def unique(indices: np.ndarray) -> np.ndarray:
    """Sorted distinct indices (np.unique without its overheads; the arrays here are int64)."""
    flat = np.sort(np.asarray(indices, dtype=INDEX).reshape(-1), kind="stable")
    if flat.size < 2:
        return flat
    keep = np.empty(flat.size, dtype=bool)
    keep[0] = True
    np.not_equal(flat[1:], flat[:-1], out=keep[1:])
    return flat[keep]


def positions_in(sorted_indices: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of `wanted` sits in `sorted_indices` (all of them must be present)."""
    positions = np.searchsorted(sorted_indices, wanted)
    if wanted.size and (positions.max() >= sorted_indices.size
                        or not np.array_equal(sorted_indices[positions], wanted)):
        raise AssertionError("an index needed locally is not held locally")
    return positions.astype(INDEX, copy=False)


def describe(indices: np.ndarray, limit: int = 4) -> str:
    """A short readable form of an index array: arithmetic runs as a:b (step 1), a:b:s, or a*n (a
    repeated n times), at most `limit` of them."""
    flat = np.asarray(indices).reshape(-1)
    if flat.size == 0:
        return "{}"
    runs = []
    position = 0
    while position < flat.size and len(runs) < limit:
        first = int(flat[position])
        if position + 1 == flat.size:
            runs.append(str(first))
            position += 1
            break
        step = int(flat[position + 1]) - first
        end = position + 1
        while end + 1 < flat.size and int(flat[end + 1]) - int(flat[end]) == step:
            end += 1
        count = end - position + 1
        if step == 0:
            runs.append(f"{first}*{count}")
        elif step == 1:
            runs.append(f"{first}:{first + count}")
        else:
            runs.append(f"{first}:{first + step * count}:{step}")
        position = end + 1
    more = f", ... {flat.size - position} more" if position < flat.size else ""
    return "{" + ", ".join(runs) + more + "}"
