"""What passes share while a pipeline runs: options, statistics, the fusion log and group ids.

A `PassContext` is created once per pipeline run and handed to every pass. Passes report statistics
with `report` (a line for `--pass-stats` plus named counters for tests and tools), fusion passes log
one `FusionDecision` per producer/consumer pair they considered (`--explain-fusion` prints them) and
take fresh group ids from `new_group_id`, which keeps ids unique across all passes of the run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, TextIO

from ir.graph import Graph


@dataclass(frozen=True)
class PassStats:
    """One pass's statistics: the line `--pass-stats` prints and the numbers behind it."""

    pass_name: str
    text: str
    counters: dict[str, int | float] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.pass_name}: {self.text}"


@dataclass(frozen=True)
class FusionDecision:
    """Whether one producer/consumer pair was fused, and the specific reason when it was not.

    `how` is "fused" (the producer joined the consumer's group, or the groups merged), "recomputed"
    (a copy of a cheap producer joined the group; the original stays for its other consumers) or
    "not fused". `category` names the rule that refused a pair: multi-consumer, working-set,
    reduction-boundary, user-rule, max-group, cycle, not-fusible, group-kind, group-contract.
    Labels use the value names of the graph the pass received (`%5 (exp) at file:line:col`).
    """

    pass_name: str
    producer: int
    consumer: int
    producer_label: str
    consumer_label: str
    how: str
    reason: str = ""
    category: str | None = None
    group: int | None = None

    @property
    def fused(self) -> bool:
        return self.how != "not fused"

    def __str__(self) -> str:
        pair = f"{self.producer_label} -> {self.consumer_label}"
        if self.fused:
            where = f" into group {self.group}" if self.group is not None else ""
            detail = f" ({self.reason})" if self.reason else ""
            return f"{self.pass_name}: {pair}: {self.how}{where}{detail}"
        return f"{self.pass_name}: {pair}: not fused [{self.category}]: {self.reason}"


class PassContext:
    """Shared state of one pipeline run (see the module docstring)."""

    def __init__(self, options: Any = None, *, working_set_limit: int | None = None, explain: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None, record: bool = True) -> None:
        self.options = options  # targets.base.CompileOptions, or None outside the driver
        self.working_set_limit = working_set_limit  # bytes a fusion group may touch, None: no limit
        self.explain = explain
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.stats: list[PassStats] = []
        self.fusion_log: list[FusionDecision] = []
        self.current_pass: str | None = None
        # Whether the pipeline checks every pass's result (`--verify-each`, the tests): passes may then
        # also re-check what they guarantee by construction (the fusion passes re-classify their groups).
        self.verify_each = False
        # Whether passes keep what only `--explain-fusion` and `--pass-stats` print: the fusion log and
        # the statistics that cost a walk over the graph (the traffic fusion removed). On by default, for
        # tests and tools that read them; the driver turns it off when neither flag asks for them.
        self.record = record
        # Whether the pass being run may change the graph it is given instead of working on a copy. The
        # pass manager sets it for a graph that an earlier Niche pass of this run made (or that the caller
        # handed over), and only when nothing looks at the passes' inputs: no instrument, no verifying.
        # Passes that honour it skip copying the whole graph.
        self.owns_input = False
        self._next_group = 0

    def report(self, text: str, **counters: int | float) -> PassStats:
        """Record the current pass's statistics line (and counters)."""
        stats = PassStats(self.current_pass or "?", text, dict(counters))
        self.stats.append(stats)
        return stats

    def log_fusion(self, decision: FusionDecision) -> None:
        self.fusion_log.append(decision)

    def new_group_id(self, graph: Graph) -> int:
        """A group id used by no node of `graph` and by no group handed out before in this run."""
        return self.group_id_after(data["node"].group for data in graph.nx._node.values())

    def group_id_after(self, used: Iterable[int | None]) -> int:
        """A group id that is none of `used` (None: no group) and no id handed out before in this run."""
        self._next_group = max([self._next_group] + [g + 1 for g in used if g is not None])
        group = self._next_group
        self._next_group += 1
        return group

    def stats_of(self, pass_name: str) -> list[PassStats]:
        return [s for s in self.stats if s.pass_name == pass_name]


def format_bytes(count: float) -> str:
    """Bytes in binary units: 512 B, 3.0 KiB, 96.0 MiB, 1.50 GiB."""
    if abs(count) < 1024:
        return f"{int(count)} B"
    for unit, scale in (("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3)):
        if abs(count) < scale * 1024 or unit == "GiB":
            value = count / scale
            return f"{value:.2f} {unit}" if unit == "GiB" else f"{value:.1f} {unit}"
    raise AssertionError(count)


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"
