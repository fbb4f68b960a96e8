"""Random inputs for a program's parameters (for `niche run` without --input, tests and benchmarks).

A parameter with a sparse storage format gets data that format holds naturally (docs/sparsity.md): an
N:M one keeps n random entries of every m, a CSR/CSC one `SPARSE_DENSITY` of its entries, a BSR one
`SPARSE_DENSITY` of its blocks. The zero pattern comes from its own generator (seeded by the seed and
the parameter's name), so the values of the other parameters do not depend on which ones are sparse.
Weights bound to data at compile time are not inputs and get none.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from ir.dtypes import DType, to_numpy
from ir.graph import Graph
from ir.types import Format

SPARSE_DENSITY = 0.1  # the non-zero fraction of random CSR/CSC entries and BSR blocks


def random_input(shape: tuple[int, ...], dtype: DType, weight: bool, rng: np.random.Generator) -> np.ndarray:
    """Values of a plausible scale: activations ~ N(0, 1); matrix weights ~ N(0, 1/fan_in) so deep
    programs neither explode nor vanish; vector weights (norm scales, biases) ~ 1 + N(0, 0.1)."""
    if dtype.is_bool:
        return rng.random(shape) < 0.5
    if dtype.is_int:
        high = 8 if dtype is DType.I8 else 16
        return rng.integers(-high, high, size=shape).astype(dtype.numpy)
    values = rng.standard_normal(shape)
    if weight and len(shape) >= 2:
        values = values / math.sqrt(max(1, shape[-2]))
    elif weight:
        values = 1.0 + 0.1 * values
    return to_numpy(values, dtype)


def sparse_pattern(values: np.ndarray, fmt: Format, rng: np.random.Generator,
                   density: float = SPARSE_DENSITY) -> np.ndarray:
    """`values` (a matrix) with zeros where `fmt` would typically have them (see the module docstring)."""
    rows, cols = values.shape
    if not values.size:
        return values
    if fmt.kind == "nm":
        n, m = fmt.n, fmt.m
        groups = math.ceil(cols / m)
        scores = rng.random((rows, groups, m))
        scores[:, -1, m - (groups * m - cols):] = 2.0  # columns past the edge are never kept
        keep = np.argsort(scores, axis=2)[:, :, :n]
        mask = np.zeros((rows, groups, m), dtype=bool)
        np.put_along_axis(mask, keep, True, axis=2)
        mask = mask.reshape(rows, groups * m)[:, :cols]
    elif fmt.kind == "bsr":
        r, c = fmt.block
        blocks = rng.random((math.ceil(rows / r), math.ceil(cols / c))) < density
        mask = np.repeat(np.repeat(blocks, r, axis=0), c, axis=1)[:rows, :cols]
    else:
        mask = rng.random((rows, cols)) < density
    return np.where(mask, values, np.zeros((), dtype=values.dtype))


def random_inputs(graph: Graph, seed: int = 0, given: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """An input for every parameter of `graph` not in `given` and not bound to data at compile time,
    drawn in parameter order from `seed`."""
    rng = np.random.default_rng(seed)
    inputs = dict(given or {})
    for param in graph.params:
        node = graph.node(param)
        name = node.attr("name")
        if name in graph.weight_data:
            continue
        value = random_input(node.type.shape, node.type.dtype, bool(node.attr("weight")), rng)
        if not node.type.format.is_dense and value.ndim == 2:
            pattern_rng = np.random.default_rng((seed, zlib.crc32(name.encode())))
            value = sparse_pattern(value, node.type.format, pattern_rng)
        inputs.setdefault(name, value)
    return inputs
