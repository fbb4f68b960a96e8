"""Helpers of the sparsity tests: random matrices of a given density or pattern, and a CPU compile
whose objects are cached in a temporary directory."""

from __future__ import annotations

import numpy as np
import pytest


def _random_matrix(rng: np.random.Generator, shape: tuple[int, int], density: float) -> np.ndarray:
    """f32 values with about `density` of the entries non-zero (exactly 0 and 1 at the ends)."""
    values = rng.standard_normal(shape).astype(np.float32)
    values[values == 0] = 1.0
    return np.where(rng.random(shape) < density, values, np.float32(0))


def _random_nm(rng: np.random.Generator, shape: tuple[int, int], n: int, m: int, fill: float = 1.0) -> np.ndarray:
    """f32 values with at most n non-zeros in every m consecutive entries of a row (`fill` of the
    kept positions non-zero)."""
    rows, cols = shape
    out = np.zeros(shape, dtype=np.float32)
    for start in range(0, cols, m):
        width = min(m, cols - start)
        for row in range(rows):
            keep = rng.choice(width, size=min(n, width), replace=False)
            keep = keep[rng.random(len(keep)) < fill]
            out[row, start + keep] = rng.standard_normal(len(keep)).astype(np.float32) + 2.0
    return out


@pytest.fixture(scope="session")
def sparse_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("niche-sparse-cache"))


@pytest.fixture(scope="session")
def random_matrix():
    """random_matrix(rng, shape, density): f32 values with about `density` of the entries non-zero."""
    return _random_matrix


@pytest.fixture(scope="session")
def random_nm():
    """random_nm(rng, shape, n, m, fill=1.0): f32 values obeying the N:M pattern along rows."""
    return _random_nm
