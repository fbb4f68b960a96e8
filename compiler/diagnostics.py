"""User-facing diagnostics: `file:line:col: error: message`, the source line and a caret.

Every error a user can cause (bad source, bad shapes, bad flags, bad plugin passes, wrong arrays at
call time) ends as a `CompileError` (or `NicheError`) carrying `Diagnostic`s; the CLI prints them and
exits with status 1. Internal errors are reported as such, naming the stage that failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir.graph import Loc


@dataclass(frozen=True)
class Diagnostic:
    message: str
    loc: Loc | None = None
    severity: str = "error"
    source_line: str | None = None  # the text of the line at `loc`, for the caret display
    notes: tuple[str, ...] = ()

    def format(self) -> str:
        where = f"{self.loc}: " if self.loc is not None else ""
        lines = [f"{where}{self.severity}: {self.message}"]
        if self.loc is not None and self.source_line is not None:
            text = self.source_line.rstrip("\n").expandtabs(1)
            lines.append(f"    {text}")
            lines.append("    " + " " * max(0, self.loc.col - 1) + "^")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


class NicheError(Exception):
    """Base of every error Niche reports to a user (never printed with a traceback)."""

    def __init__(self, diagnostics: list[Diagnostic] | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        self.diagnostics = list(diagnostics)
        super().__init__(self.format())

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


class CompileError(NicheError):
    """The program could not be compiled: the diagnostics say where and why."""


class ArgumentError(NicheError):
    """A compiled program was called with arguments that do not match its parameters."""


class InternalError(NicheError):
    """A bug in Niche itself; the message names the stage or pass that failed."""


class SourceMap:
    """The text of each source file, so diagnostics can quote the offending line."""

    def __init__(self) -> None:
        self.files: dict[str, list[str]] = {}

    def add(self, name: str, text: str) -> None:
        self.files[name] = text.splitlines()

    def line(self, loc: Loc | None) -> str | None:
        if loc is None:
            return None
        lines = self.files.get(loc.file)
        if lines is None or not 1 <= loc.line <= len(lines):
            return None
        return lines[loc.line - 1]

    def diagnostic(self, message: str, loc: Loc | None, notes: tuple[str, ...] = ()) -> Diagnostic:
        return Diagnostic(message, loc, source_line=self.line(loc), notes=notes)
