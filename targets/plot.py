"""`niche compare --plot`: a bar chart per metric and a roofline per target, as a PNG (matplotlib).

matplotlib is an optional dependency (`pip install 'niche[plot]'`); without it the command says so.
The roofline of a target: attainable FLOP/s = min(peak, bandwidth x intensity) for one chip, with each
kernel as a point at (FLOPs per byte of main memory, FLOPs per second it is predicted to run at).
"""

from __future__ import annotations

import io

from compiler.diagnostics import NicheError
from targets.comparison import METRICS, Comparison

PLOTTED = ("latency", "tokens_per_second", "energy", "cost")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise NicheError("--plot needs matplotlib, which is not installed: pip install 'niche[plot]' "
                         "(or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_comparison(comparison: Comparison) -> bytes:
    """PNG bytes: the metrics as bars (log scale) on the first row, a roofline per target below."""
    plt = _pyplot()
    reports = [r for r in comparison.reports if r.fits]
    metrics = [m for m in METRICS if m.key in PLOTTED and any(m.value(r) is not None for r in reports)]
    columns = max(len(metrics), len(reports), 1)
    figure, axes = plt.subplots(2, columns, figsize=(4.2 * columns, 7.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        values = [(r.target, metric.value(r)) for r in reports if metric.value(r) is not None]
        ax.bar([t for t, _ in values], [v for _, v in values], color="tab:blue")
        ax.set_yscale("log")
        ax.set_title(f"{metric.label} ({metric.better} is better)", fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    for ax in axes[0][len(metrics):]:
        ax.axis("off")
    for ax, report in zip(axes[1], reports):
        _roofline(ax, report)
    for ax in axes[1][len(reports):]:
        ax.axis("off")
    figure.suptitle(f"{comparison.program}: estimates from cost models, not measurements", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _roof(report) -> tuple[float, float]:
    """(peak FLOP/s, bandwidth) of one chip: from the report, else from its shipped spec."""
    if report.peak_flops > 0 and report.memory_bandwidth > 0:
        return report.peak_flops, report.memory_bandwidth
    from targets.report import main_peak
    from targets.spec import SpecError, load_spec
    try:
        spec = load_spec(report.spec)
    except SpecError:
        return 0.0, 0.0
    peak = main_peak(spec, report.total.ops.largest()[0].split(":")[-1] if report.total.ops else "f32")
    return (peak[1] if peak else 0.0), spec.main_memory.bandwidth


def _roofline(ax, report) -> None:
    peak, bandwidth = _roof(report)
    points = []
    for kernel in report.kernels:
        cost = kernel.cost
        main = sum(v for k, v in cost.bytes.items if k.startswith("mem:") and k != "mem:l1") or cost.bytes.total()
        if cost.flops_executed > 0 and main > 0 and cost.latency > 0:
            chips = max(1, kernel.chips)
            points.append((cost.flops_executed / main, cost.flops_executed / chips / cost.latency))
    if peak <= 0 or bandwidth <= 0:
        ax.set_title(f"{report.target}: no roofline (no peak rate or bandwidth known)", fontsize=9)
        return
    low = min([p[0] for p in points] + [peak / bandwidth / 100])
    high = max([p[0] for p in points] + [peak / bandwidth * 100])
    ridge = peak / bandwidth
    xs = [low, ridge, high]
    ax.plot(xs, [min(peak, bandwidth * x) for x in xs], color="black", linewidth=1.2)
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=10, color="tab:red", alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOPs per byte of memory traffic", fontsize=8)
    ax.set_ylabel("FLOP/s per chip", fontsize=8)
    ax.set_title(f"{report.target} roofline (ridge {ridge:.3g} FLOP/B)", fontsize=9)
