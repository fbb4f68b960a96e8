"""Random inputs for a program's parameters (for `niche run` without --input, tests and benchmarks)."""

from __future__ import annotations

import math

import numpy as np

from ir.dtypes import DType, to_numpy
from ir.graph import Graph


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


def random_inputs(graph: Graph, seed: int = 0, given: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """An input for every parameter of `graph` not in `given`, drawn in parameter order from `seed`."""
    rng = np.random.default_rng(seed)
    inputs = dict(given or {})
    for param in graph.params:
        node = graph.node(param)
        name = node.attr("name")
        value = random_input(node.type.shape, node.type.dtype, bool(node.attr("weight")), rng)
        inputs.setdefault(name, value)
    return inputs
