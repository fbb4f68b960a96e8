"""Comparing a target's outputs with the reference interpreter's, with a tolerance per dtype."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir.dtypes import DType

# (relative, absolute) tolerance. The absolute part is scaled by the largest magnitude in the expected
# output, so a result whose values are all large is not held to an absolute 1e-5.
TOLERANCES: dict[DType, tuple[float, float]] = {
    DType.F64: (1e-9, 1e-12),
    DType.F32: (2e-4, 2e-5),
    DType.F16: (1e-2, 1e-3),
    DType.BF16: (4e-2, 8e-3),
}


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...] | None
    message: str


def compare(actual: np.ndarray, expected: np.ndarray, dtype: DType, what: str = "output") -> CheckResult:
    """Whether `actual` matches `expected` within the tolerance of `dtype`, with the largest error."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return CheckResult(False, float("inf"), float("inf"), None,
                           f"{what}: shape {list(actual.shape)}, expected {list(expected.shape)}")
    if actual.size == 0:
        return CheckResult(True, 0.0, 0.0, None, f"{what}: empty, matches")
    if dtype not in TOLERANCES:  # integers and bools must match exactly
        mismatch = actual != expected
        if mismatch.any():
            index = tuple(int(i) for i in np.argwhere(mismatch)[0])
            diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
            return CheckResult(False, float(diff.max()), float("inf"), index,
                               f"{what}: {int(mismatch.sum())} element(s) differ; first at {list(index)}: "
                               f"{actual[index]} vs expected {expected[index]}")
        return CheckResult(True, 0.0, 0.0, None, f"{what}: exact match")
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return _compare_floats(actual, expected, a, e, dtype, what)


def _compare_floats(actual: np.ndarray, expected: np.ndarray, a: np.ndarray, e: np.ndarray, dtype: DType,
                    what: str) -> CheckResult:
    rtol, atol = TOLERANCES[dtype]
    nan_mismatch = np.isnan(a) != np.isnan(e)
    finite = np.isfinite(e) & np.isfinite(a)
    inf_mismatch = ~finite & ~np.isnan(e) & ~np.isnan(a) & (a != e)
    scale = float(np.max(np.abs(e[np.isfinite(e)]), initial=0.0))
    diff = np.where(finite, np.abs(a - e), 0.0)
    allowed = atol * max(1.0, scale) + rtol * np.abs(np.where(finite, e, 0.0))
    bad = (diff > allowed) | nan_mismatch | inf_mismatch
    max_abs = float(diff.max())
    rel = diff / np.maximum(np.abs(np.where(finite, e, 1.0)), 1e-30)
    max_rel = float(rel.max())
    if bad.any():
        index = tuple(int(i) for i in np.unravel_index(np.argmax(np.where(bad, diff + 1.0, 0.0)), a.shape))
        return CheckResult(False, max_abs, max_rel, index,
                           f"{what}: {int(bad.sum())} of {a.size} element(s) differ beyond rtol={rtol:g}, "
                           f"atol={atol:g}; largest error {max_abs:.3g} at {list(index)}: {actual[index]} vs "
                           f"expected {expected[index]}")
    return CheckResult(True, max_abs, max_rel, None,
                       f"{what}: matches (max abs error {max_abs:.3g}, max rel error {max_rel:.3g})")
