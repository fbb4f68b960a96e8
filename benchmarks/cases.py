"""The benchmark cases: each a Niche program for the cpu target and the same computation in numpy.

| case              | program                                        | figure       |
|-------------------|------------------------------------------------|--------------|
| gelu_fused        | gelu_tanh(x * a + b) on 2^24 f32, one kernel   | GB/s (16 B/element) |
| gelu_unfused      | the same, one kernel per op (no fusion passes)  | GB/s         |
| matmul_N          | A @ B, N x N f32, N = 512, 1024, 2048           | GFLOP/s      |
| matmul_bias_relu  | relu(A @ B + bias), 1024^3                      | GFLOP/s      |
| softmax           | row softmax of 4096 x 4096 f32                  | GB/s (8 B/element) |
| layernorm         | row layernorm of 4096 x 4096 f32, scale + shift | GB/s (8 B/element) |

Niche writes into preallocated outputs (`out=`), as a caller running a model does; numpy allocates
its results, as numpy code does. `quick=True` shrinks every size (a smoke test, not a measurement).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from compiler import compile_string
from ir.groups import assign_groups
from targets.base import CompileOptions, get_target


@dataclass
class Case:
    name: str
    niche: Callable[[], object]
    numpy: Callable[[], object]
    work: float  # bytes or FLOPs per call
    unit: str  # "GB/s" or "GFLOP/s"
    compile_seconds: float
    kernels: int
    check: Callable[[], float]  # max relative difference of Niche's result from numpy's


def _fused_artifact(text: str, threads: int):
    """Compile `text` with all its non-parameter nodes in one fusion group (built by hand with
    `ir.groups.assign_groups`, independent of the fusion passes' heuristics)."""
    program = compile_string(text, target="ref", passes="")
    graph = program.graph
    members = {node for node, payload in graph.nodes() if payload.op not in ("param", "constant")}
    grouped = assign_groups(graph, [members])
    options = CompileOptions(target="cpu", extra={"threads": threads, "disk_cache": False})
    return get_target("cpu").compile(grouped, options)


def _artifact(text: str, threads: int, passes: str | None = None):
    return compile_string(text, target="cpu", passes=passes, threads=threads, disk_cache=False).artifact


def _timed(build: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = build()
    return result, time.perf_counter() - start


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    scale = max(float(np.abs(expected).max()), 1e-30)
    return float(np.abs(actual.astype(np.float64) - expected).max() / scale)


def numpy_gelu(y: np.ndarray) -> np.ndarray:
    return 0.5 * y * (1.0 + np.tanh(np.float32(0.7978845608028654) * (y + np.float32(0.044715) * y * y * y)))


def gelu_chain(fused: bool, threads: int, quick: bool) -> Case:
    n = 1 << (16 if quick else 24)
    text = f"def chain(x: f32[{n}], a: f32[{n}], b: f32[{n}]) {{ return gelu(x * a + b) }}"
    artifact, seconds = _timed(lambda: _fused_artifact(text, threads) if fused else _artifact(text, threads, ""))
    rng = np.random.default_rng(0)
    x, a, b = (rng.standard_normal(n, dtype=np.float32) for _ in range(3))
    out = np.empty(n, np.float32)
    inputs = {"x": x, "a": a, "b": b}
    run = lambda: artifact.run(inputs, out=[out])  # noqa: E731
    check = lambda: _relative_error(run()[0], numpy_gelu(x.astype(np.float64) * a + b))  # noqa: E731
    return Case("gelu_fused" if fused else "gelu_unfused", run, lambda: numpy_gelu(x * a + b), 16.0 * n, "GB/s",
                seconds, len(artifact.program.kernels), check)


def matmul(n: int, threads: int, quick: bool, epilogue: bool = False) -> Case:
    n = min(n, 256) if quick else n
    if epilogue:
        text = f"def mm(a: f32[{n}, {n}], b: f32[{n}, {n}], bias: f32[{n}]) {{ return relu(a @ b + bias) }}"
    else:
        text = f"def mm(a: f32[{n}, {n}], b: f32[{n}, {n}]) {{ return a @ b }}"
    artifact, seconds = _timed(lambda: _artifact(text, threads))
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    bias = rng.standard_normal(n, dtype=np.float32)
    inputs = {"a": a, "b": b, "bias": bias} if epilogue else {"a": a, "b": b}
    out = np.empty((n, n), np.float32)
    run = lambda: artifact.run(inputs, out=[out])  # noqa: E731
    reference = (lambda: np.maximum(a @ b + bias, 0)) if epilogue else (lambda: a @ b)
    check = lambda: _relative_error(run()[0], reference().astype(np.float64))  # noqa: E731
    name = "matmul_bias_relu" if epilogue else f"matmul_{n}"
    return Case(name, run, reference, 2.0 * n ** 3, "GFLOP/s", seconds, len(artifact.program.kernels), check)


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + np.float32(1e-5)) * gamma + beta


def row_op(kind: str, threads: int, quick: bool) -> Case:
    rows = cols = 512 if quick else 4096
    if kind == "softmax":
        text = f"def softmax_rows(x: f32[{rows}, {cols}]) {{ return softmax(x, axis=-1) }}"
    else:
        text = (f"def layernorm_rows(x: f32[{rows}, {cols}], g: f32[{cols}], b: f32[{cols}]) "
                f"{{ return layernorm(x, g, b) }}")
    artifact, seconds = _timed(lambda: _fused_artifact(text, threads))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    gamma = (1 + 0.1 * rng.standard_normal(cols)).astype(np.float32)
    beta = (0.1 * rng.standard_normal(cols)).astype(np.float32)
    inputs = {"x": x} if kind == "softmax" else {"x": x, "g": gamma, "b": beta}
    out = np.empty((rows, cols), np.float32)
    run = lambda: artifact.run(inputs, out=[out])  # noqa: E731
    reference = (lambda: numpy_softmax(x)) if kind == "softmax" else (lambda: numpy_layernorm(x, gamma, beta))
    check = lambda: _relative_error(run()[0], reference().astype(np.float64))  # noqa: E731
    return Case(kind, run, reference, 8.0 * rows * cols, "GB/s", seconds, len(artifact.program.kernels), check)


BUILDERS: dict[str, Callable[[int, bool], Case]] = {
    "gelu_fused": lambda threads, quick: gelu_chain(True, threads, quick),
    "gelu_unfused": lambda threads, quick: gelu_chain(False, threads, quick),
    "matmul_512": lambda threads, quick: matmul(512, threads, quick),
    "matmul_1024": lambda threads, quick: matmul(1024, threads, quick),
    "matmul_2048": lambda threads, quick: matmul(2048, threads, quick),
    "matmul_bias_relu": lambda threads, quick: matmul(1024, threads, quick, epilogue=True),
    "softmax": lambda threads, quick: row_op("softmax", threads, quick),
    "layernorm": lambda threads, quick: row_op("layernorm", threads, quick),
}
