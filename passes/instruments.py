"""Pass instruments: hooks the pass manager calls around every pass (STYLE.md habit 6).

Each instrument is switched on by a CLI flag through `CompileOptions`, never by the environment:

* `PrintIR` (`--print-ir-after-all`, `--print-ir-after=NAME`): the graph after a pass, on stdout.
* `Timing` (`--pass-timing`): a table of wall-clock time per pass and for the verifier, on stderr.
* `ExplainFusion` (`--explain-fusion`): each fusion decision a pass logged, on stderr, after the pass.
* `Statistics` (`--pass-stats`): each pass's statistics line, on stderr, after the pipeline.

Verification (`--verify-each`) is not an instrument: a failure there stops the pipeline with a
reproducer, so the manager runs it itself.
"""

from __future__ import annotations

from typing import TextIO

from ir.graph import Graph
from passes.context import PassContext
from passes.registry import Pass


class PassInstrument:
    """Base class: every hook does nothing."""

    def before_pass(self, pass_: Pass, graph: Graph, ctx: PassContext) -> None:
        pass

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, seconds: float) -> None:
        pass

    def after_verify(self, pass_: Pass, seconds: float) -> None:
        pass

    def after_pipeline(self, graph: Graph, ctx: PassContext) -> None:
        pass


class PrintIR(PassInstrument):
    """Print the graph after every pass, or after the passes named in `after`."""

    def __init__(self, after_all: bool = False, after: tuple[str, ...] = (), stream: TextIO | None = None) -> None:
        self.after_all = after_all
        self.after = set(after)
        self.stream = stream

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, seconds: float) -> None:
        if not (self.after_all or pass_.name in self.after):
            return
        from ir.graph_printer import print_graph
        stream = self.stream if self.stream is not None else ctx.out
        stream.write(f"// ----- IR after {pass_.name} ----- //\n{print_graph(graph)}")
        stream.flush()


class Timing(PassInstrument):
    """Collect wall-clock time per pass and print a table after the pipeline."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.rows: list[tuple[str, float]] = []
        self.verify_seconds = 0.0

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, seconds: float) -> None:
        self.rows.append((pass_.name, seconds))

    def after_verify(self, pass_: Pass, seconds: float) -> None:
        self.verify_seconds += seconds

    def table(self) -> str:
        rows = list(self.rows)
        if self.verify_seconds:
            rows.append(("(verifier)", self.verify_seconds))
        total = sum(seconds for _, seconds in rows)
        lines = [f"pass timing (wall clock, {len(self.rows)} passes, total {total * 1e3:.2f} ms):",
                 f"  {'time (ms)':>10}  {'share':>6}  pass"]
        for name, seconds in rows:
            share = 100.0 * seconds / total if total else 0.0
            lines.append(f"  {seconds * 1e3:>10.3f}  {share:>5.1f}%  {name}")
        lines.append(f"  {total * 1e3:>10.3f}  {100.0 if total else 0.0:>5.1f}%  total")
        return "\n".join(lines) + "\n"

    def after_pipeline(self, graph: Graph, ctx: PassContext) -> None:
        (self.stream if self.stream is not None else ctx.err).write(self.table())


class ExplainFusion(PassInstrument):
    """Print the fusion decisions each pass logged, right after that pass."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._seen = 0

    def before_pass(self, pass_: Pass, graph: Graph, ctx: PassContext) -> None:
        self._seen = len(ctx.fusion_log)

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, seconds: float) -> None:
        stream = self.stream if self.stream is not None else ctx.err
        for decision in ctx.fusion_log[self._seen:]:
            stream.write(f"{decision}\n")


class Statistics(PassInstrument):
    """Print every pass's statistics line after the pipeline (passes that report none say so)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self._seen = 0

    def before_pass(self, pass_: Pass, graph: Graph, ctx: PassContext) -> None:
        self._seen = len(ctx.stats)

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, seconds: float) -> None:
        reported = ctx.stats[self._seen:]
        self.lines += [str(s) for s in reported] or [f"{pass_.name}: no statistics reported"]

    def after_pipeline(self, graph: Graph, ctx: PassContext) -> None:
        stream = self.stream if self.stream is not None else ctx.err
        stream.write("pass statistics:\n")
        for line in self.lines:
            stream.write(f"  {line}\n")
