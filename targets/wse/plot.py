"""The picture of a placed program: each wafer's mesh with its regions and the routes between them.

One panel per wafer (at most eight drawn): regions are rectangles (matmul regions blue, map regions
orange) labelled with their id and what they compute; the routes between regions are drawn along their
Y-then-X paths, colored by their fabric color; the partial-sum hops inside matmul regions are left out
(one hop each, they would hide the regions). matplotlib is optional: without it `plot_program` raises
`PlotError` saying how to install it.
"""

from __future__ import annotations

import math

from compiler.diagnostics import NicheError
from targets.wse.layout import WaferProgram
from targets.wse.routing import yx_path

MAX_PANELS = 8
_KIND_COLORS = {"matmul": "#4c72b0", "map": "#dd8452"}


class PlotError(NicheError):
    """The picture cannot be drawn (matplotlib missing, or the file cannot be written)."""


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("--plot needs matplotlib, which is not installed: `pip install matplotlib` "
                        "(it is optional; everything else works without it)") from None
    return plt


def plot_program(program: WaferProgram, path: str, target: str) -> None:
    plt = _pyplot()
    wafers = program.wafers[:MAX_PANELS]
    columns = min(len(wafers), 4)
    rows = math.ceil(len(wafers) / columns)
    machine = program.machine
    aspect = machine.mesh_height / machine.mesh_width
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 4.5 * rows * max(0.5, min(aspect, 2))),
                                squeeze=False)
    placed = {p.code.region.id: p for p in program.placed}
    palette = plt.get_cmap("tab20")
    for panel, wafer in zip(axes.flat, wafers):
        panel.set_xlim(-0.5, machine.mesh_width - 0.5)
        panel.set_ylim(machine.mesh_height - 0.5, -0.5)
        panel.set_aspect("equal")
        panel.add_patch(plt.Rectangle((-0.5, -0.5), machine.mesh_width, machine.mesh_height, fill=False,
                                      edgecolor="black", linewidth=1))
        for region_id in wafer.regions:
            here = placed[region_id]
            rows_, cols_ = here.code.grid
            color = _KIND_COLORS.get(here.code.region.kind, "#999999")
            panel.add_patch(plt.Rectangle((here.origin[1] - 0.5, here.origin[0] - 0.5), cols_, rows_,
                                          facecolor=color, alpha=0.45, edgecolor=color, linewidth=1.2))
            label = f"r{region_id}"
            if rows_ * cols_ >= 4:
                label += "\n" + here.code.region.label[:14]
            panel.text(here.origin[1] + cols_ / 2 - 0.5, here.origin[0] + rows_ / 2 - 0.5, label,
                       ha="center", va="center", fontsize=6)
        for route in wafer.routes:
            if "partial sums" in route.purpose:
                continue
            for dest in route.dests:
                hops = yx_path(route.src, dest)
                panel.plot([c for _, c in hops], [r for r, _ in hops], color=palette(route.color % 20),
                           linewidth=0.8, alpha=0.8)
        panel.set_title(f"wafer {wafer.index}: {len(wafer.regions)} regions, {wafer.colors_used} colors",
                        fontsize=9)
        panel.tick_params(labelsize=6)
    for panel in list(axes.flat)[len(wafers):]:
        panel.axis("off")
    more = f" (first {MAX_PANELS} of {len(program.wafers)} wafers)" if len(program.wafers) > MAX_PANELS else ""
    figure.suptitle(f"{program.graph.name} on {target}: {machine.mesh_height}x{machine.mesh_width} PEs per wafer"
                    f"{more}", fontsize=10)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=150)
    except OSError as error:
        raise PlotError(f"cannot write {path}: {error.strerror}") from None
    finally:
        plt.close(figure)
