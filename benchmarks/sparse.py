"""The sparse matmul benchmark: W @ X with W 4096 x 4096 sparse, X dense 4096 x 64 (and x 1).

Cases: W with 50%, 90% and 99% of its entries zero (unstructured, Niche stores it CSR) and a 2:4
weight (Niche stores it N:M), each bound at compile time (`weights=`, so the storage is built once).
Side by side in one run (`side_by_side`: rounds of a few calls of each): Niche's cpu target on T threads and on one
(`niche 1`), scipy.sparse's CSR product `W @ X` (single-threaded) and the dense numpy product (BLAS,
multi-threaded). Ratios above 1 mean Niche is faster: `vs dense` and `vs scipy` compare Niche on T
threads, `1t vs scipy` Niche on one thread with scipy's one thread. On a machine shared with other
busy processes a parallel region waits whenever one of its threads is not scheduled (a time slice,
milliseconds), which the one-thread column does not suffer from; a second table gives the fastest
repeat of each, the best estimate of what the code does when it has the cores.
The `sparsify` column is the format the CPU cost model would choose for the weight (the `sparsify`
pass's decision), printed beside the measured times so model and measurement can be compared.

    python -m benchmarks sparse [--threads T] [--repeats N] [--quick]

Timing rules as in the other cases: Niche writes into a preallocated output; numpy and scipy allocate
theirs. The machine's load average is printed: other processes slow every column alike only on
average, so compare the ratios.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from compiler import compile_string

SIZE = 4096
CASES = (("50%", 0.5), ("90%", 0.1), ("99%", 0.01), ("2:4", None))


@dataclass
class SparseResult:
    name: str
    cols: int
    times: dict[str, float]  # median seconds: niche (T threads), niche1 (one thread), scipy, dense
    best: dict[str, float]  # the fastest repeat of each
    useful_flops: float
    chosen: str
    error: float
    compile_seconds: float


def weight(name: str, density: float | None, size: int, rng: np.random.Generator) -> np.ndarray:
    values = rng.standard_normal((size, size), dtype=np.float32)
    if density is None:  # 2:4: two random positions of every four consecutive entries
        keep = rng.random((size, size // 4, 4)).argsort(axis=2) < 2
        return (values.reshape(size, size // 4, 4) * keep).reshape(size, size)
    return np.where(rng.random((size, size)) < density, values, np.float32(0))


def program_text(size: int, cols: int, fmt: str) -> str:
    return (f"def spmm(@weight w: f32[{size}, {size}]<{fmt}>, x: f32[{size}, {cols}]) -> f32[{size}, {cols}] "
            "{ return w @ x }")


def run_case(name: str, density: float | None, cols: int, threads: int, repeats: int, quick: bool) -> SparseResult:
    from scipy import sparse
    size = 512 if quick else SIZE
    rng = np.random.default_rng(0)
    w = weight(name, density, size, rng)
    x = rng.standard_normal((size, cols), dtype=np.float32)
    fmt = "2:4" if density is None else "csr"
    start = time.perf_counter()
    artifact = _artifact(size, cols, fmt, w, threads)
    seconds = time.perf_counter() - start
    single = _artifact(size, cols, fmt, w, 1) if threads > 1 else artifact
    chosen = compile_string(program_text(size, cols, fmt).replace(f"<{fmt}>", ""), target="cpu", weights={"w": w},
                            for_pricing=True, passes="sparsify")
    fmt_chosen = chosen.graph.node(chosen.graph.param_by_name("w")).type.format
    w_csr = sparse.csr_matrix(w)
    out = np.empty((size, cols), np.float32)
    inputs = {"x": x}
    samples = side_by_side({"niche": lambda: artifact.run(inputs, out=[out]),
                           "niche1": lambda: single.run(inputs, out=[out]), "scipy": lambda: w_csr @ x,
                           "dense": lambda: w @ x}, repeats)
    expected = w.astype(np.float64) @ x
    error = float(np.abs(artifact.run(inputs)[0] - expected).max() / max(1e-30, np.abs(expected).max()))
    times = {key: statistics.median(values) for key, values in samples.items()}
    best = {key: min(values) for key, values in samples.items()}
    return SparseResult(name, cols, times, best, 2.0 * np.count_nonzero(w) * cols,
                        "dense" if fmt_chosen.is_dense else str(fmt_chosen), error, seconds)


def side_by_side(functions: dict[str, Callable[[], object]], repeats: int, rounds: int = 3) -> dict[str, list[float]]:
    """Seconds of every repeat of each function: `rounds` rounds, in each a warm-up call and then
    ceil(repeats / rounds) timed calls of one function after the other. Drifting load hits every
    function alike (the rounds), but consecutive calls are of the same function: with two cores, one
    library's worker threads still spinning after its call (OpenMP's and the BLAS's do) would
    otherwise slow the next library's first call."""
    samples: dict[str, list[float]] = {name: [] for name in functions}
    per_round = max(1, -(-repeats // rounds))
    for _ in range(rounds):
        for name, function in functions.items():
            function()
            for _ in range(per_round):
                start = time.perf_counter()
                function()
                samples[name].append(time.perf_counter() - start)
    return samples


def _artifact(size: int, cols: int, fmt: str, w: np.ndarray, threads: int):
    return compile_string(program_text(size, cols, fmt), target="cpu", weights={"w": w}, threads=threads,
                          passes="canonicalize,cse,dce,fuse-epilogue").artifact  # keeps the declared format


def run_sparse(threads: int, repeats: int, quick: bool) -> list[SparseResult]:
    """Run every case and print the table; returns the results."""
    size = 512 if quick else SIZE
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nsparse W ({size}x{size}) @ X: Niche cpu ({threads} thread{'s' if threads != 1 else ''}) vs scipy "
          f"CSR (1 thread) vs dense numpy; load average {load}")
    print(f"{'case':<6}{'cols':>5}{'dense ms':>10}{'scipy ms':>10}{'niche ms':>10}{'niche 1 ms':>11}{'vs dense':>10}"
          f"{'vs scipy':>10}{'1t vs scipy':>12}{'GFLOP/s':>9}{'sparsify':>11}{'compile s':>10}{'rel err':>9}")
    results = []
    for cols in (64, 1):
        for name, density in CASES:
            result = run_case(name, density, cols, threads, repeats, quick)
            _row(f"{name:<6}{cols:>5}", result.times, result, f"{result.chosen:>11}{result.compile_seconds:>10.2f}"
                                                               f"{result.error:>9.1e}")
            results.append(result)
    print("the same runs, fastest repeat of each (less sensitive to other processes):")
    for result in results:
        _row(f"{result.name:<6}{result.cols:>5}", result.best, result, "")
    return results


def _row(label: str, t: dict[str, float], result: SparseResult, rest: str) -> None:
    print(f"{label}{t['dense'] * 1e3:>10.3f}{t['scipy'] * 1e3:>10.3f}{t['niche'] * 1e3:>10.3f}"
          f"{t['niche1'] * 1e3:>11.3f}{t['dense'] / t['niche']:>9.2f}x{t['scipy'] / t['niche']:>9.2f}x"
          f"{t['scipy'] / t['niche1']:>11.2f}x{result.useful_flops / t['niche'] / 1e9:>9.1f}{rest}", flush=True)
