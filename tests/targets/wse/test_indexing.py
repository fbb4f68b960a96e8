"""Index maps agree with numpy: operand elements read at the mapped indices are the result's elements."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.wse import indexing as ix

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def _all(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(shapes, st.data())
def test_broadcast_map(shape: tuple[int, ...], data: st.DataObject) -> None:
    operand = tuple(data.draw(st.sampled_from([d, 1])) for d in shape[data.draw(st.integers(0, len(shape))):])
    x = np.random.default_rng(0).standard_normal(operand)
    y = np.broadcast_to(x, shape)
    idx = _all(shape)
    assert np.array_equal(x.reshape(-1)[ix.broadcast_map(idx, shape, operand)], y.reshape(-1))


@settings(max_examples=60, deadline=None)
@given(shapes, st.randoms(use_true_random=False))
def test_transpose_map(shape: tuple[int, ...], rng) -> None:
    perm = list(range(len(shape)))
    rng.shuffle(perm)
    x = np.arange(np.prod(shape)).reshape(shape)
    y = np.transpose(x, perm)
    idx = _all(y.shape)
    assert np.array_equal(x.reshape(-1)[ix.transpose_map(idx, y.shape, tuple(perm))], y.reshape(-1))


@settings(max_examples=60, deadline=None)
@given(shapes, st.data())
def test_slice_map(shape: tuple[int, ...], data: st.DataObject) -> None:
    starts, stops, steps = [], [], []
    for dim in shape:
        start = data.draw(st.integers(0, dim - 1))
        stops.append(data.draw(st.integers(start + 1, dim)))
        starts.append(start)
        steps.append(data.draw(st.integers(1, 2)))
    x = np.arange(np.prod(shape)).reshape(shape)
    y = x[tuple(slice(a, b, c) for a, b, c in zip(starts, stops, steps))]
    idx = _all(y.shape)
    mapped = ix.slice_map(idx, y.shape, shape, tuple(starts), tuple(steps))
    assert np.array_equal(x.reshape(-1)[mapped], y.reshape(-1))


@settings(max_examples=60, deadline=None)
@given(shapes, st.data(), st.booleans())
def test_reduction_map(shape: tuple[int, ...], data: st.DataObject, keepdims: bool) -> None:
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    x = np.random.default_rng(1).standard_normal(shape)
    y = x.sum(axis=axes, keepdims=keepdims)
    idx = _all(y.shape)
    rows = ix.reduction_map(idx, y.shape, shape, axes, keepdims)
    assert rows.shape == (idx.size, int(np.prod([shape[a] for a in axes])))
    assert np.allclose(x.reshape(-1)[rows].sum(axis=1), y.reshape(-1))


def test_concat_split() -> None:
    a, b = np.arange(6).reshape(2, 3), 100 + np.arange(4).reshape(2, 2)
    y = np.concatenate((a, b), axis=1)
    idx = np.array([0, 3, 4, 9], dtype=np.int64)  # (0,0) (0,3) (0,4) (1,4)
    (pa, ia), (pb, ib) = ix.concat_split(idx, y.shape, [a.shape, b.shape], 1)
    assert list(pa) == [0] and list(pb) == [1, 2, 3]
    assert list(a.reshape(-1)[ia]) == [0] and list(b.reshape(-1)[ib]) == [100, 101, 103]


def test_block_ranges_cover_evenly() -> None:
    assert ix.block_ranges(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert ix.block_ranges(3, 3) == [(0, 1), (1, 2), (2, 3)]


def test_describe_runs() -> None:
    assert ix.describe(np.array([0, 1, 2, 5, 5, 5, 8, 10, 12])) == "{0:3, 5*3, 8:14:2}"
    assert ix.describe(np.arange(100), limit=1) == "{0:100}"
    assert ix.describe(np.array([], dtype=np.int64)) == "{}"
