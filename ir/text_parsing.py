"""What the parsers of Niche's textual IRs share: a located parse error and the reading of lark's errors.

The graph IR (`ir.graph_parser`) and the loop IR (`ir.loop_parser`) are both read back from text with
lark; a malformed text is a user error reported as `file:line:col: error: ...` with the line and a caret.
"""

from __future__ import annotations

from typing import Callable

import lark

from compiler.diagnostics import Diagnostic, NicheError
from ir.graph import Loc


class TextParseError(NicheError):
    """An IR text is malformed; `line` and `col` (1-based) say where."""

    def __init__(self, message: str, line: int, col: int, file: str = "<text>",
                 source_line: str | None = None) -> None:
        self.message = message
        self.line = line
        self.col = col
        super().__init__([Diagnostic(message, Loc(file, line, col), source_line=source_line)])


def line_text(text: str, line: int) -> str | None:
    """Line `line` (1-based) of `text`, for the caret display."""
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else None


def syntax_error(error: lark.UnexpectedInput, text: str, file: str, describe: Callable[[str], str],
                 error_class: type[TextParseError]) -> TextParseError:
    """The located error for lark's `error`; `describe` names an expected terminal for a reader."""
    if isinstance(error, lark.UnexpectedCharacters):
        message = f"unexpected character {text[error.pos_in_stream]!r}"
        line, col = error.line, error.column
    elif isinstance(error, lark.UnexpectedToken) and error.token.type != "$END":
        expected = ", ".join(sorted({describe(name) for name in error.expected}))
        message = f"unexpected {error.token.value!r} (expected {expected})"
        line, col = error.token.line, error.token.column
    else:
        lines = text.splitlines() or [""]
        message = "unexpected end of input"
        line, col = len(lines), len(lines[-1]) + 1
    return error_class(message, line, col, file, line_text(text, line))
