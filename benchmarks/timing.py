"""Side-by-side timing: the median of interleaved repeats of several callables after a warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_times(functions: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Seconds per call of each function (median over `repeats`), run in turns so that drifting
    machine load hits them alike."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}
