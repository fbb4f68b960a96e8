"""`niche compare`: price one program on several targets side by side, with the winner per metric and why.

    niche compare examples/llama_decode.nk --targets cpu,gpu:h100,lpu,wse:wse3 -D B=16 -D T=4096

Every figure is a cost model's estimate (the output says so). Targets whose backend is not built are
skipped with a note and get no number. `--json` prints the full reports (schema in
docs/comparing-targets.md); `--plot out.png` draws the metrics and a roofline per target (matplotlib);
`--measure` also runs the kernels of every target that can time them here (the CPU; the GPU on a machine
with one) and prints measured beside predicted time. `--option [TARGET.]KEY=VALUE` and `--mesh` pass
target options through. A target that fails with an internal error gets a column saying so, the others
are still printed, and the command exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import TextIO

from compiler.cli import EXIT_INTERNAL, add_chip_arguments, chip_count, parse_define, write_atomically
from compiler.diagnostics import NicheError
from targets.comparison import METRICS, Comparison, parse_option, run_comparison
from targets.cost import CostReport
from targets.units import format_si, format_time

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="price a program on several targets side by side",
        description="Compile FILE for each target (for pricing only) and print its cost model's estimates "
                    "side by side: latency, throughput, energy, cost, the binding resource and the chips "
                    "needed, the best target per metric and why. Estimates, not measurements.")
    parser.add_argument("file", help="a .nk source file")
    parser.add_argument("--targets", default="", metavar="LIST",
                        help="comma-separated targets, NAME or NAME:SPEC, e.g. cpu,gpu:h100,lpu,wse:wse3 "
                             "(default: every target of this build that has a cost model); `niche targets` "
                             "lists them")
    parser.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", type=parse_define,
                        default=[], help="bind a symbolic dimension or override a const (repeatable)")
    parser.add_argument("--entry", metavar="FUNC", help="the function to compile (default: the last def)")
    parser.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=2, metavar="LEVEL",
                        help="optimisation level -O0 .. -O3 (default: -O2)")
    add_chip_arguments(parser, "spread the program over N chips (default: as few as hold it)",
                       "multi-chip strategy (default: auto: tensor-parallel inside a node, pipeline across)")
    parser.add_argument("--batch", type=int, metavar="N", help="bind the batch dimension B (same as -D B=N)")
    parser.add_argument("--target-spec", dest="spec_files", metavar="FILE.toml", action="append", default=[],
                        help="also price the chip this spec file describes, with the model of its kind")
    parser.add_argument("--kernels", type=int, nargs="?", const=10, default=0, metavar="N",
                        help="also list the N costliest kernels of each target (default N: 10)")
    parser.add_argument("--option", dest="options", metavar="[TARGET.]KEY=VALUE", action="append", type=_option,
                        default=[], help="a target option (CompileOptions.extra), e.g. wse.density=0.1 or "
                                         "lpu.mxm_precision=fp16; without TARGET. it goes to every listed target "
                                         "that takes KEY (repeatable)")
    parser.add_argument("--mesh", metavar="RxC", help="wse targets: the PE mesh option (same as --option wse.mesh=RxC)")
    parser.add_argument("--measure", action="store_true",
                        help="also run the kernels of every target that can time them here (cpu; gpu on a machine "
                             "with an NVIDIA GPU) on random inputs and print measured beside predicted time")
    parser.add_argument("-j", "--jobs", type=_jobs, metavar="N",
                        help="price the targets in N worker processes at once (default: one per core, at most one "
                             "per target; 1, or not on Linux: one after another in this process). The figures do "
                             "not depend on it")
    parser.add_argument("--json", action="store_true", help="print the full reports as JSON")
    parser.add_argument("--plot", metavar="OUT.png", help="draw a bar chart per metric and a roofline per target")
    parser.set_defaults(func=run_compare)


class Progress:
    """A one-line progress bar on stderr while targets are priced: shown only on a terminal, and only once
    the comparison has taken more than a second (a background thread redraws it while a target prices)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.label = ""
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.shown = False
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if self.enabled:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def step(self, label: str) -> None:
        """A new stage begins (the previous ones are done)."""
        with self._lock:
            if self.label:
                self.done += 1
            self.label = label
        self.draw()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            self.draw()

    def draw(self) -> None:
        if not self.enabled or time.perf_counter() - self.start < 1.0:
            return
        with self._lock:
            width = 24
            filled = int(width * self.done / max(1, self.total))
            elapsed = time.perf_counter() - self.start
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                              f"{self.label[:30]:<30} {elapsed:5.1f} s")
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.shown:
            self.stream.write("\r" + " " * 72 + "\r")
            self.stream.flush()


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of worker processes, at least 1, got '{text}'")
    return jobs


def _option(text: str) -> tuple:
    try:
        return parse_option(text)
    except NicheError as error:
        raise argparse.ArgumentTypeError(" ".join(d.message for d in error.diagnostics)) from None


def run_compare(args: argparse.Namespace) -> int:
    chip_count(args)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    options = list(args.options) + ([("wse", "mesh", args.mesh)] if args.mesh else [])
    progress = Progress(1 + (len(targets) or 4) + len(args.spec_files) + (1 if args.measure else 0))
    try:
        comparison = run_comparison(args.file, targets, args.spec_files, dict(args.defines), args.entry,
                                    args.opt_level, args.chips, args.partition, args.batch, progress.step,
                                    options, args.jobs)
        if args.measure:
            progress.step("measuring kernels")
            from targets.measure import measure
            notes = measure(comparison, args.file, args.entry, args.opt_level)
    finally:
        progress.close()
    for skipped in comparison.skipped:
        print(f"niche: note: skipped {skipped.target}: {skipped.reason}", file=sys.stderr)
    if args.measure:
        for text in notes:
            print(f"niche: note: --measure: {text}", file=sys.stderr)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(format_comparison(comparison, args.kernels))
    if args.plot:
        from targets.plot import plot_comparison
        write_atomically(args.plot, plot_comparison(comparison))
        print(f"niche: wrote {args.plot}", file=sys.stderr)
    for failed in comparison.errors:
        print(f"niche: {failed.error}", file=sys.stderr)
        print(f"niche: this is a bug in Niche ({failed.target}'s column says 'internal error'); rerun with --debug for "
              "the traceback", file=sys.stderr)
        if getattr(args, "debug", False) and failed.cause is not None:
            import traceback
            traceback.print_exception(failed.cause)
    return EXIT_INTERNAL if comparison.errors else 0


# -- the text table -------------------------------------------------------------------------------

def _money(value: float) -> str:
    if value >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.3g}"


_FORMAT = {
    "latency": format_time, "tokens_per_second": lambda v: f"{v:,.4g}", "tokens_per_second_per_user":
    lambda v: f"{v:,.4g}", "steps_per_second": lambda v: f"{v:,.4g}", "energy": lambda v: format_si(v, "J"),
    "joules_per_token": lambda v: format_si(v, "J"), "cost": _money, "usd_per_million_tokens": _money,
}


def _cells(report: CostReport) -> dict[str, str]:
    cells = {}
    for metric in METRICS:
        value = metric.value(report)
        if not report.fits:
            cells[metric.key] = "does not fit" if metric.key == "latency" else "-"
        else:
            cells[metric.key] = _FORMAT[metric.key](value) if value is not None else "-"
    capacity = report.capacity if report.fits else None
    if capacity is not None:
        rate = capacity.tokens_per_second if capacity.tokens_per_second is not None else capacity.steps_per_second
        cells["capacity"] = f"{rate:,.4g}"
        cells["in_flight"] = f"{capacity.steps_in_flight:,.3g}"
        usd = capacity.usd_per_million_tokens
        cells["capacity_cost"] = _money(usd) if usd is not None else "-"
    placement = report.placement
    cells["binding"] = report.binding or "-"
    cells["utilization"] = f"{report.utilization:.1%}" if report.fits else "-"
    if report.fits:
        cells["chips"] = f"{placement.chips} ({placement.strategy})"
    else:
        if placement.chips_needed > max(placement.chips, 0):
            cells["chips"] = f"needs {placement.chips_needed}"
        else:  # enough chips, but not a layout over the count asked for (the reason says why)
            cells["chips"] = f"not on {placement.chips}" if placement.chips > 0 else "-"
    return cells


def format_comparison(comparison: Comparison, kernels: int = 0) -> str:
    reports = comparison.reports
    defines = ", ".join(f"{k}={v}" for k, v in comparison.defines.items())
    lines = [f"{comparison.program}{f' ({defines})' if defines else ''}: estimates from cost models, "
             "not measurements"]
    columns = [r.target for r in reports] + [f.target for f in comparison.errors]
    cells = [_cells(r) for r in reports] + [{"latency": "internal error"} for _ in comparison.errors]
    rows = [(m.key, m.label) for m in METRICS if any(c.get(m.key, "-") != "-" for c in cells)]
    tokens = any(r.tokens is not None for r in reports)
    capacity_rows = [("capacity", f"{'tokens' if tokens else 'steps'}/s, pipeline full +"),
                     ("in_flight", "  steps in flight needed"), ("capacity_cost", "  cost / M tokens then")]
    rows += [(key, label) for key, label in capacity_rows if any(c.get(key, "-") != "-" for c in cells)]
    rows += [("binding", "binding resource"), ("utilization", "compute utilization"), ("chips", "chips")]
    winners = comparison.winners()
    label_width = max(len(label) for _, label in rows) + 2
    widths = [max(len(name), *(len(c.get(key, "-")) + 2 for key, _ in rows)) + 2 for name, c in zip(columns, cells)]
    lines.append(" " * label_width + "".join(name.rjust(w) for name, w in zip(columns, widths)))
    for key, label in rows:
        row = label.ljust(label_width)
        for name, cell, width in zip(columns, cells, widths):
            mark = " *" if len(reports) > 1 and winners.get(key) == name else "  "
            row += (cell.get(key, "-") + mark).rjust(width)
        lines.append(row.rstrip())
    if len(reports) > 1:
        lines.append("* best on that metric (of the figures for the program as given)")
    if any(key == "capacity" for key, _ in rows):
        lines.append("+ not the program as given: independent steps (other users' batches) started while earlier "
                     "ones are in flight; not compared")
    lines.append("")
    lines.append("why:")
    for report in reports:
        lines.append(f"  {report.target}: {report.explanation}")
        if report.capacity is not None and report.fits:
            c = report.capacity
            lines.append(f"    pipeline full: one step every {format_time(c.interval)} (set by {c.set_by}) with "
                         f"{c.steps_in_flight:,.3g} independent steps in flight")
    for failed in comparison.errors:
        lines.append(f"  {failed.target}: {failed.error} (a bug in Niche; no figures)")
    for report in reports:
        if comparison.measured.get(report.target) or kernels:
            lines.append("")
            lines.extend(_kernel_table(report, comparison.measured.get(report.target, {}), kernels))
    return "\n".join(lines)


def _kernel_table(report: CostReport, measured: dict[str, float], limit: int) -> list[str]:
    rows = list(report.kernels)
    if not measured:
        rows = sorted(rows, key=lambda k: -k.cost.latency)[:limit or len(rows)]
    title = "predicted and measured time per kernel" if measured else f"costliest kernels (of {len(report.kernels)})"
    lines = [f"{report.target}: {title}"]
    header = f"  {'kernel':<28}{'kind':<12}{'predicted':>11}{'bound by':>12}"
    # The bytes column is one level's, the one the tensors live in (summing levels would count a byte
    # once per level it passes through).
    level = report.main_memory
    memory = f"{level.removeprefix('mem:')} bytes" if level else "bytes"
    header += f"{'measured':>11}{'meas/pred':>11}" if measured else f"{'FLOPs':>11}{memory:>13}"
    lines.append(header)
    for kernel in rows:
        cost = kernel.cost
        bound = cost.binding or "-"
        line = f"  {kernel.name[:27]:<28}{kernel.kind[:11]:<12}{format_time(cost.latency):>11}{bound:>{max(12, len(bound) + 1)}}"
        if measured:
            seconds = measured.get(kernel.name)
            ratio = f"{seconds / cost.latency:.2f}x" if seconds is not None and cost.latency else "-"
            line += f"{format_time(seconds) if seconds is not None else '-':>11}{ratio:>11}"
        else:
            moved = cost.bytes.get(level) if level else cost.bytes.total()
            line += f"{format_si(cost.flops_executed, ''):>11}{format_si(moved, 'B'):>13}"
        lines.append(line)
    if measured:
        predicted = sum(k.cost.latency for k in report.kernels if k.name in measured)
        total = sum(measured.values())
        lines.append(f"  {'total':<40}{format_time(predicted):>11}{'':>12}{format_time(total):>11}"
                     f"{(total / predicted if predicted else 0):>10.2f}x")
    return lines
