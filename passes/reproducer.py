"""Crash reproducers: when a pass fails, save the IR it was given and the command that replays it.

Modelled on MLIR's crash reproducer: the graph as it was before the failing pass is written as text
(`ir.graph_printer.print_graph`, which `niche compile` reads back) to
`<dir>/<graph>.<pass>.graph` (dir: `--reproducer-dir`, default `./.niche-repro/`), and the one command
that runs just that pass on it (with its options, the plugin files it needs and `--verify-each`) is
returned for the error message. Weights bound to data are not saved; no pass needs their values.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ir.graph import Graph

DEFAULT_DIR = ".niche-repro"


@dataclass(frozen=True)
class Reproducer:
    path: str | None  # None when the file could not be written
    command: str
    problem: str | None = None  # why the file could not be written

    def notes(self) -> tuple[str, ...]:
        if self.path is None:
            return (f"no reproducer written: {self.problem}",)
        return (f"reproducer: {self.path} holds the graph IR before the pass",
                f"replay just that pass with: {self.command}")


def write_reproducer(graph: Graph, pass_spec: str, pass_name: str, directory: str | None = None,
                     plugin_files: tuple[str, ...] = (), target: str | None = None) -> Reproducer:
    """Save `graph` (the input of the failing pass) and build the replay command."""
    from ir.graph_printer import print_graph

    folder = Path(directory if directory is not None else DEFAULT_DIR)
    stem = re.sub(r"[^0-9A-Za-z_.-]", "_", f"{graph.name}.{pass_name}")
    path = folder / f"{stem}.graph"
    command = replay_command(str(path), pass_spec, plugin_files, target)
    try:
        text = print_graph(graph)
    except Exception as error:  # the graph itself is broken (a pass mutated its input into a cycle)
        return Reproducer(None, command, f"the graph before the pass cannot be printed: {error}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as error:
        return Reproducer(None, command, f"cannot write {path}: {error.strerror}")
    return Reproducer(str(path), command)


def replay_command(path: str, pass_spec: str, plugin_files: tuple[str, ...] = (), target: str | None = None) -> str:
    words = ["niche", "compile", path, "--passes", pass_spec]
    for plugin in plugin_files:
        words += ["--load-pass", plugin]
    if target is not None and target != "ref":
        words += ["--target", target]
    words.append("--verify-each")
    return " ".join(shlex.quote(word) for word in words)
