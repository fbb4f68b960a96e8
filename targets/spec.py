"""Hardware spec files: loading `targets/specs/*.toml` (or a user's file) into a validated `HardwareSpec`.

A spec is data, one file per chip. Every number is a quantity table that says where it comes from:

    [memory.hbm]
    main = true
    capacity  = { value = 80,   unit = "GB",   source = "ml-engineering memory table", confidence = "S" }
    bandwidth = { value = 3.35, unit = "TB/s", source = "ml-engineering memory table", confidence = "S" }
    latency   = { value = 600,  unit = "ns",   assumption = "typical HBM load-to-use latency; not published" }

`source` (with a `confidence` tag: P primary, S secondary, S2 weak secondary, D derived, U unconfirmed,
M measured on a reference machine) or `assumption` (why the value was chosen) is required, so a report
can always say which of its inputs are published figures. `detect = "NAME"` marks a value the target
reads from the machine it runs on (the host CPU); the file's value is the default when it cannot.
A bare number is refused. The schema (which fields exist, their dimensions, which each kind requires)
is `targets.spec_schema`; `docs/comparing-targets.md` describes it for people writing their own file.

Loading never fits anything: values are taken as written, converted to base units (`targets.units`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from compiler.diagnostics import Diagnostic, NicheError
from ir.dtypes import DType
from ir.graph import Loc
from targets import spec_schema as schema
from targets.units import UnitError, format_si, format_value, parse_unit, units_of

SPEC_DIR = Path(__file__).with_name("specs")
CONFIDENCE_TAGS = {"P": "primary source", "S": "reputable secondary source", "S2": "weak secondary source",
                   "D": "derived from other figures", "U": "unconfirmed", "M": "measured on a reference machine",
                   "H": "read from this machine"}
_QUANTITY_KEYS = {"value", "unit", "source", "confidence", "assumption", "detect", "note"}


class SpecError(NicheError):
    """A spec file is missing, unreadable, or has missing or nonsensical fields (all of them listed)."""


@dataclass(frozen=True)
class Quantity:
    """One number of a spec, in the base unit of its dimension, with where it came from."""

    path: str
    value: float
    dimension: str
    written: str  # as the file wrote it, e.g. "3.35 TB/s"
    source: str | None = None
    confidence: str | None = None
    assumption: str | None = None
    detect: str | None = None
    note: str | None = None

    @property
    def is_assumption(self) -> bool:
        return self.assumption is not None

    @property
    def provenance(self) -> str:
        if self.assumption is not None:
            return f"assumption: {self.assumption}"
        return f"{self.source} [{self.confidence}]"

    def __str__(self) -> str:
        if self.dimension == "rate" and self.path.rsplit(".", 1)[-1].startswith("i"):
            return format_si(self.value, "OP/s")  # integer rates are operations, not FLOPs
        return format_value(self.value, self.dimension)


@dataclass(frozen=True)
class MemoryLevel:
    """A level of the memory hierarchy; levels are listed innermost (closest to compute) first."""

    name: str
    capacity: float | None  # bytes per `per` (a core, an SM, the chip)
    bandwidth: float | None  # bytes/s, the whole chip's
    latency: float | None  # seconds
    main: bool  # where the program's tensors live (HBM, DRAM, the LPU's SRAM)
    per: str  # "chip", "core", "sm", "pe", ...


@dataclass(frozen=True)
class Interconnect:
    """Chip-to-chip links: per-chip bandwidth in one direction, per-message latency, the fast domain."""

    name: str
    topology: str
    bandwidth: float  # bytes/s per chip per direction, all links together
    latency: float  # seconds per message (one hop of a ring step)
    links: int | None
    domain: int | None  # chips in one directly connected domain (an NVLink node, a GroqNode); None: unbounded


@dataclass(frozen=True)
class HardwareSpec:
    name: str
    kind: str  # cpu, gpu, lpu, wse
    description: str
    path: str
    quantities: tuple[Quantity, ...]
    texts: tuple[tuple[str, str | bool], ...] = ()  # non-numeric fields (topology, main = true, ...)
    _index: dict[str, Quantity] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {q.path: q for q in self.quantities})

    # -- reading --------------------------------------------------------------------------------

    def has(self, path: str) -> bool:
        return path in self._index

    def q(self, path: str) -> Quantity:
        try:
            return self._index[path]
        except KeyError:
            raise SpecError(f"{self.path}: the spec has no '{path}'") from None

    def value(self, path: str, default: float | None = None) -> float | None:
        quantity = self._index.get(path)
        return default if quantity is None else quantity.value

    def text(self, path: str, default: str | bool | None = None) -> str | bool | None:
        return dict(self.texts).get(path, default)

    def section(self, prefix: str) -> Iterator[Quantity]:
        """The quantities under `prefix.` in file order."""
        for quantity in self.quantities:
            if quantity.path.startswith(prefix + "."):
                yield quantity

    @property
    def clock(self) -> float:
        return self.q("clock.core").value

    @functools.cached_property
    def _rates(self) -> dict[tuple[str, str], float]:
        rates = {}
        for quantity in self.section("compute"):
            _, unit, precision = quantity.path.split(".")
            rates[(unit, precision)] = quantity.value
        return rates

    def compute_rates(self) -> dict[tuple[str, str], float]:
        """(unit, precision) -> peak dense operations per second."""
        return dict(self._rates)

    def peak(self, dtype: DType | str, unit: str | None = None) -> tuple[str, float] | None:
        """The fastest compute unit for a precision (or the named unit): (unit, ops/s), None if absent."""
        precision = schema.precision_of(dtype)
        best: tuple[str, float] | None = None
        for (unit_name, prec), rate in self._rates.items():
            if prec != precision or (unit is not None and unit_name != unit):
                continue
            if best is None or rate > best[1]:
                best = (unit_name, rate)
        return best

    @functools.cached_property
    def memory(self) -> tuple[MemoryLevel, ...]:
        levels = []
        for name in schema.memory_level_names(self.quantities, self.texts):
            levels.append(MemoryLevel(name, self.value(f"memory.{name}.capacity"),
                                      self.value(f"memory.{name}.bandwidth"), self.value(f"memory.{name}.latency"),
                                      bool(self.text(f"memory.{name}.main", False)),
                                      str(self.text(f"memory.{name}.per", "chip"))))
        return tuple(levels)

    @property
    def main_memory(self) -> MemoryLevel:
        return next(level for level in self.memory if level.main)

    def memory_level(self, name: str) -> MemoryLevel | None:
        return next((level for level in self.memory if level.name == name), None)

    @property
    def interconnect(self) -> Interconnect | None:
        if not self.has("interconnect.bandwidth"):
            return None
        links = self.value("interconnect.links")
        domain = self.value("interconnect.domain")
        return Interconnect(str(self.text("interconnect.name", "interconnect")),
                            str(self.text("interconnect.topology", "switch")),
                            self.value("interconnect.bandwidth"), self.value("interconnect.latency", 0.0),
                            None if links is None else int(links), None if domain is None else int(domain))

    @property
    def tdp(self) -> float:
        return self.q("power.tdp").value

    @property
    def price_per_hour(self) -> Quantity | None:
        return self._index.get("price.per_chip_hour")

    @property
    def assumptions(self) -> list[Quantity]:
        return [q for q in self.quantities if q.is_assumption]

    # -- deriving -------------------------------------------------------------------------------

    def with_values(self, changes: dict[str, dict[str, Any]]) -> HardwareSpec:
        """A copy with some quantities replaced: path -> {"value": base units, and "source" with
        "confidence", or "assumption"} (values read from the machine, or derived from them)."""
        quantities = []
        for quantity in self.quantities:
            change = changes.get(quantity.path)
            if change is not None:
                value = float(change["value"])
                quantity = dataclasses.replace(quantity, value=value, source=change.get("source"),
                                               confidence=change.get("confidence"),
                                               assumption=change.get("assumption"),
                                               written=format_value(value, quantity.dimension))
            quantities.append(quantity)
        return dataclasses.replace(self, quantities=tuple(quantities))


# -- loading --------------------------------------------------------------------------------------


def spec_names() -> list[str]:
    """Names of the shipped spec files."""
    return sorted(path.stem for path in SPEC_DIR.glob("*.toml"))


def resolve_spec_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix == ".toml" or "/" in text or candidate.is_file():
        if not candidate.is_file():
            raise SpecError(f"no spec file '{text}'")
        return candidate.resolve()
    shipped = SPEC_DIR / f"{text}.toml"
    if not shipped.is_file():
        raise SpecError(f"no hardware spec named '{text}' (shipped specs: {', '.join(spec_names())}; "
                        "or give the path of a .toml file)")
    return shipped


def load_spec(name_or_path: str | Path) -> HardwareSpec:
    """The validated spec of a shipped chip (`"h100"`) or of a file (`"my_chip.toml"`)."""
    path = resolve_spec_path(name_or_path)
    return _load_cached(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, _mtime: int) -> HardwareSpec:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise SpecError(f"cannot read spec file {path}: {error.strerror}") from None
    return parse_spec(text, path)


def parse_spec(text: str, path: str = "<spec>") -> HardwareSpec:
    """Parse and validate the text of a spec file; SpecError lists every problem with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(error))
        loc = Loc(path, int(match.group(1)), int(match.group(2))) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise SpecError([Diagnostic(f"not valid TOML: {message}", loc)]) from None
    problems = _Problems(path, text)
    quantities: list[Quantity] = []
    texts: list[tuple[str, str | bool]] = []
    for key in ("name", "kind", "description"):
        if not isinstance(data.get(key), str) or not data.get(key):
            problems.add(key, f"'{key}' must be a non-empty string")
    kind = data.get("kind")
    if isinstance(kind, str) and kind not in schema.KINDS:
        problems.add("kind", f"unknown kind '{kind}' (kinds: {', '.join(schema.KINDS)})")
    for key, value in data.items():
        if key in ("name", "kind", "description", "schema"):
            continue
        if not isinstance(value, dict):
            problems.add(key, f"top-level '{key}' must be a table ([{key}]); numbers belong in a section")
            continue
        _collect(value, key, problems, quantities, texts)
    schema.check_spec(kind if isinstance(kind, str) else None, quantities, texts, problems.add)
    problems.raise_if_any()
    return HardwareSpec(data["name"], kind, data["description"], path, tuple(quantities), tuple(texts))


def _collect(table: dict[str, Any], prefix: str, problems: _Problems, quantities: list[Quantity],
             texts: list[tuple[str, str | bool]]) -> None:
    for key, value in table.items():
        path = f"{prefix}.{key}"
        if isinstance(value, dict) and "value" in value:
            quantity = _quantity(path, value, problems)
            if quantity is not None:
                quantities.append(quantity)
        elif isinstance(value, dict):
            if set(value) & (_QUANTITY_KEYS - {"value"}):
                problems.add(path, "a quantity needs 'value' (with 'unit' and a 'source' or an 'assumption')")
            else:
                _collect(value, path, problems, quantities, texts)
        elif isinstance(value, bool) or isinstance(value, str):
            texts.append((path, value))
        elif isinstance(value, (int, float)):
            problems.add(path, f"bare number {value!r}: write {{ value = {value!r}, unit = \"...\", "
                               "source = \"...\", confidence = \"...\" }} or give an assumption")
        else:
            problems.add(path, f"unexpected {type(value).__name__} value")


def _quantity(path: str, table: dict[str, Any], problems: _Problems) -> Quantity | None:
    unknown = set(table) - _QUANTITY_KEYS
    if unknown:
        problems.add(path, f"unknown key(s) {', '.join(sorted(unknown))} (a quantity has "
                           f"{', '.join(sorted(_QUANTITY_KEYS))})")
    value = table.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.add(path, f"value must be a number, got {value!r}")
        return None
    if not math.isfinite(value):
        problems.add(path, f"value must be finite, got {value!r}")
        return None
    unit = table.get("unit")
    if not isinstance(unit, str):
        problems.add(path, "missing unit (for example unit = \"GB/s\")")
        return None
    try:
        dimension, factor = parse_unit(unit)
    except UnitError:
        expected = schema.expected_dimensions(path)
        hint = f"; {path} takes {', '.join(units_of(expected[0]))}" if expected else ""
        problems.add(path, f"unknown unit '{unit}'{hint}")
        return None
    source, assumption, confidence = table.get("source"), table.get("assumption"), table.get("confidence")
    if not (isinstance(source, str) and source.strip()) and not (isinstance(assumption, str) and assumption.strip()):
        problems.add(path, "missing source: every number needs source = \"...\" (with confidence = \"P\"|\"S\"|..."
                           ") or assumption = \"why this value\"")
    if isinstance(source, str) and source.strip() and confidence not in CONFIDENCE_TAGS:
        problems.add(path, f"source needs a confidence tag, one of {', '.join(CONFIDENCE_TAGS)} (got {confidence!r})")
    detect = table.get("detect")
    if detect is not None and not isinstance(detect, str):
        problems.add(path, "detect must name a probe (a string)")
    return Quantity(path, float(value) * factor, dimension, f"{value:g} {unit}",
                    source if isinstance(source, str) and source.strip() else None,
                    confidence if isinstance(confidence, str) else None,
                    assumption if isinstance(assumption, str) and assumption.strip() else None,
                    detect if isinstance(detect, str) else None,
                    table.get("note") if isinstance(table.get("note"), str) else None)


class _Problems:
    """Collects validation problems as diagnostics located at the field's line where it can be found."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.diagnostics: list[Diagnostic] = []

    def add(self, field_path: str, message: str) -> None:
        line = _locate(self.lines, field_path)
        loc = Loc(self.path, line, 1) if line is not None else None
        where = "" if loc is not None else f"{self.path}: "
        source_line = self.lines[line - 1] if line is not None else None
        self.diagnostics.append(Diagnostic(f"{where}{field_path}: {message}", loc, source_line=source_line))

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise SpecError(self.diagnostics)


def _locate(lines: list[str], field_path: str) -> int | None:
    """1-based line of a dotted field in TOML text (best effort: the deepest table header, then the key)."""
    parts = field_path.split(".")
    start = 0
    rest = parts
    for depth in range(len(parts), 0, -1):
        header = "[" + ".".join(parts[:depth]) + "]"
        for number, line in enumerate(lines):
            if line.strip().startswith(header):
                start, rest = number + 1, parts[depth:]
                if not rest:
                    return number + 1
                break
        else:
            continue
        break
    key = rest[0]
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*(=|\.)")
    for number in range(start, len(lines)):
        if number > start and lines[number].lstrip().startswith("[") and start > 0:
            break
        if pattern.match(lines[number]):
            return number + 1
    return None
