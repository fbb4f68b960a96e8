"""Pipeline strings, pass options and the default pipeline of each -O level.

A pipeline is written as in MLIR's `--pass-pipeline`, flattened to one IR level:

    canonicalize,cse,fuse-elementwise{max-group=8},fuse-reductions{max-working-set=4MiB}

Each element names a registered pass; `{key=value,...}` sets fields of the pass's `Options`
dataclass. Keys are the field names in kebab case; values are converted by the field's annotated type
(int, float, bool, str, or `X | None`, where `none` gives None). Integers accept a byte suffix (KiB,
MiB, GiB, KB, MB, GB), so working-set limits read naturally. Errors quote the string with a caret.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from compiler.diagnostics import CompileError, Diagnostic
from passes.registry import Pass, PassInfo, get_pass

DEFAULT_PIPELINES: dict[int, str] = {
    0: "",
    1: "canonicalize,cse,dce",
    2: "canonicalize,cse,dce,fuse-epilogue,fuse-reductions,fuse-elementwise",
    3: "canonicalize,cse,dce,fuse-epilogue,fuse-reductions,fuse-elementwise",
}

_KEY = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")
_BYTES = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


@dataclass(frozen=True)
class PassSpec:
    """One element of a pipeline string: a pass name and its options as written."""

    name: str
    options: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return self.name + "{" + ",".join(f"{k}={v}" for k, v in self.options) + "}"


class PipelineError(CompileError):
    """A pipeline string or a pass option is malformed."""


def _error(message: str, text: str, column: int, flag: str) -> PipelineError:
    caret = " " * column + "^"
    return PipelineError([Diagnostic(f"{flag}: {message}", notes=(f"in: {text}", f"    {caret}"))])


def parse_pipeline(text: str, flag: str = "--passes") -> list[PassSpec]:
    """The passes of a pipeline string, in order; an empty string is the empty pipeline."""
    specs: list[PassSpec] = []
    pos = 0
    n = len(text)

    def skip_space() -> None:
        nonlocal pos
        while pos < n and text[pos].isspace():
            pos += 1

    def word(what: str, stop: str) -> str:
        nonlocal pos
        skip_space()
        start = pos
        while pos < n and text[pos] not in stop and not text[pos].isspace():
            pos += 1
        if start == pos:
            found = repr(text[pos]) if pos < n else "the end"
            raise _error(f"expected {what}, found {found}", text, pos, flag)
        value = text[start:pos]
        skip_space()
        return value

    skip_space()
    if pos == n:
        return []
    while True:
        name_at = pos
        name = word("a pass name", ",{}=")
        if not _KEY.match(name):
            raise _error(f"'{name}' is not a pass name (kebab-case, like fuse-elementwise)", text, name_at, flag)
        options: list[tuple[str, str]] = []
        if pos < n and text[pos] == "{":
            pos += 1
            skip_space()
            while pos < n and text[pos] != "}":
                key_at = pos
                key = word("an option name", ",{}=")
                if not _KEY.match(key):
                    raise _error(f"'{key}' is not an option name", text, key_at, flag)
                if pos >= n or text[pos] != "=":
                    raise _error(f"expected '=' after option '{key}'", text, pos, flag)
                pos += 1
                value = word(f"a value for option '{key}'", ",{}=")
                options.append((key, value))
                if pos < n and text[pos] == ",":
                    pos += 1
                    skip_space()
                elif pos < n and text[pos] != "}":
                    raise _error("expected ',' or '}' in the options", text, pos, flag)
            if pos >= n:
                raise _error(f"unclosed '{{' in the options of '{name}'", text, pos, flag)
            pos += 1
            skip_space()
        specs.append(PassSpec(name, tuple(options)))
        if pos == n:
            return specs
        if text[pos] != ",":
            raise _error("expected ',' between passes", text, pos, flag)
        pos += 1


def default_pipeline(opt_level: int) -> list[PassSpec]:
    if opt_level not in DEFAULT_PIPELINES:
        raise CompileError([Diagnostic(f"no optimisation level -O{opt_level} (levels: 0 to 3)")])
    return parse_pipeline(DEFAULT_PIPELINES[opt_level])


# ----------------------------------------------------------------------------------------------
# Options


def option_fields(options_cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """kebab-case option name -> (dataclass field, resolved type)."""
    hints = typing.get_type_hints(options_cls)
    return {f.name.replace("_", "-"): (f, hints[f.name]) for f in dataclasses.fields(options_cls)}


def convert_option(value: str, kind: Any) -> Any:
    """A pipeline option value as the annotated type `kind`; ValueError when it does not fit."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        if value.lower() == "none":
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return convert_option(value, inner)
    if kind is bool:
        lowered = value.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if kind is int:
        match = re.fullmatch(r"(-?\d+)\s*([A-Za-z]*)", value)
        if not match or match.group(2).lower() not in _BYTES:
            raise ValueError("expected an integer (a byte size may end in KiB, MiB, GiB, KB, MB or GB)")
        return int(match.group(1)) * _BYTES[match.group(2).lower()]
    if kind is float:
        return float(value)
    if kind is str:
        return value
    raise ValueError(f"options of type {kind} cannot be set from a pipeline string")


def make_options(info: PassInfo, spec: PassSpec) -> Any:
    """The pass's Options instance with the spec's values; PipelineError for unknown or bad values."""
    fields = option_fields(info.cls.Options)
    values: dict[str, Any] = {}
    for key, raw in spec.options:
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise PipelineError([Diagnostic(f"pass '{spec.name}' has no option '{key}' (options: {known})")])
        field, kind = fields[key]
        try:
            values[field.name] = convert_option(raw, kind)
        except ValueError as error:
            raise PipelineError([Diagnostic(f"option '{key}' of pass '{spec.name}': bad value '{raw}': "
                                            f"{error}")]) from None
    try:
        return info.cls.Options(**values)
    except (TypeError, ValueError) as error:  # an Options.__post_init__ that validates
        raise PipelineError([Diagnostic(f"options of pass '{spec.name}': {error}")]) from None


def build_passes(specs: list[PassSpec], level: str = "graph") -> list[Pass]:
    """Instantiate the passes of a pipeline, all of IR level `level`."""
    passes = []
    for spec in specs:
        info = get_pass(spec.name)
        if info.cls.level != level:
            raise PipelineError([Diagnostic(f"pass '{spec.name}' runs on the {info.cls.level} IR; this "
                                            f"pipeline runs on the {level} IR")])
        passes.append(info.cls(make_options(info, spec)))
    return passes


def spec_of(instance: Pass) -> PassSpec:
    """The pipeline element that recreates `instance`: its name and its non-default options."""
    options = []
    defaults = instance.Options()
    for key, (field, _) in option_fields(type(instance.options)).items():
        value = getattr(instance.options, field.name)
        if value != getattr(defaults, field.name):
            options.append((key, format_option(value)))
    return PassSpec(instance.name, tuple(options))


def format_option(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def format_pipeline(passes: list[Pass]) -> str:
    return ",".join(str(spec_of(p)) for p in passes)
