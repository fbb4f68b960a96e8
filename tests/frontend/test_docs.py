"""docs/language.md documents every builtin and prelude function; docs/architecture.md names only modules
that exist."""

from __future__ import annotations

import re
from pathlib import Path

from compiler.builtins import BUILTINS
from compiler.frontend import parse

ROOT = Path(__file__).resolve().parents[2]


def test_every_builtin_and_prelude_function_is_documented() -> None:
    text = (ROOT / "docs" / "language.md").read_text()
    prelude = parse((ROOT / "compiler" / "prelude.nk").read_text(), "<prelude>")
    missing = [name for name in [*BUILTINS, *prelude.funcs] if f"`{name}(" not in text]
    assert not missing, f"not in docs/language.md: {missing}"


def test_architecture_names_existing_modules() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    stale = []
    for heading, section in re.findall(r"^## `(\w+)/`.*?\n(.*?)(?=^## )", text, re.S | re.M):
        for name in re.findall(r"`([\w/]+\.(?:py|lark|nk))`", section):
            candidates = [path for path in (ROOT / heading).rglob(Path(name).name)
                          if str(path.relative_to(ROOT / heading)).endswith(name)]
            if not candidates:
                stale.append(f"{heading}/{name}")
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
