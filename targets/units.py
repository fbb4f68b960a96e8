"""Units of the hardware spec files and of cost reports: parsing unit names, and printing quantities.

Every number in a spec file is written with a unit (`3.35` with `"TB/s"`); the loader converts it to the
base unit of its dimension (bytes, bytes per second, operations per second, hertz, seconds, watts,
joules, US dollars per hour, plain counts) once, so cost models never see a prefix. Decimal prefixes are
powers of ten (1 TB/s = 1e12 B/s, as in hardware-specs.md); binary ones (KiB, MiB, GiB) powers of two;
lower-case `b` is bits (`Gb/s`, `Tb/s`, as link speeds are quoted).
"""

from __future__ import annotations

import math

# dimension of each unit and the factor that converts a value in it to the base unit
_UNITS: dict[str, tuple[str, float]] = {}


def _define(dimension: str, base: str, prefixes: dict[str, float], suffix: str = "") -> None:
    for prefix, factor in prefixes.items():
        _UNITS[f"{prefix}{base}{suffix}"] = (dimension, factor)


_DECIMAL = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0 ** 10, "Mi": 2.0 ** 20, "Gi": 2.0 ** 30, "Ti": 2.0 ** 40}

_define("bytes", "B", {**_DECIMAL, **_BINARY})
_define("bandwidth", "B", {**_DECIMAL, **_BINARY}, "/s")
_define("bandwidth", "b", {k: v / 8 for k, v in _DECIMAL.items()}, "/s")
_define("rate", "FLOP", _DECIMAL, "/s")
_define("rate", "OP", _DECIMAL, "/s")
_define("per_cycle", "FLOP", {"": 1.0}, "/cycle")
_define("per_cycle", "OP", {"": 1.0}, "/cycle")
_define("bytes_per_cycle", "B", {"": 1.0}, "/cycle")
_define("frequency", "Hz", {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9})
_define("power", "W", {"": 1.0, "m": 1e-3, "k": 1e3})
_define("energy", "J", {"": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12})
_define("energy_per_op", "J", {"p": 1e-12, "n": 1e-9}, "/FLOP")
_define("energy_per_op", "J", {"p": 1e-12, "n": 1e-9}, "/OP")
_define("energy_per_byte", "J", {"p": 1e-12, "n": 1e-9}, "/B")
_UNITS.update({
    "s": ("time", 1.0), "ms": ("time", 1e-3), "us": ("time", 1e-6), "ns": ("time", 1e-9),
    "cycles": ("cycles", 1.0),
    "USD/h": ("money_rate", 1.0),
    "1": ("count", 1.0), "count": ("count", 1.0),
    "bits": ("bits", 1.0),
    "fraction": ("fraction", 1.0),
})

# the unit each dimension's values are stored in after loading (what cost models compute with)
BASE_UNITS = {
    "bytes": "B", "bandwidth": "B/s", "rate": "FLOP/s", "per_cycle": "FLOP/cycle", "bytes_per_cycle": "B/cycle",
    "frequency": "Hz", "power": "W", "energy": "J", "energy_per_op": "J/FLOP", "energy_per_byte": "J/B",
    "time": "s", "cycles": "cycles", "money_rate": "USD/h", "count": "1", "bits": "bits", "fraction": "fraction",
}


class UnitError(ValueError):
    """A unit name that Niche does not know."""


def parse_unit(unit: str) -> tuple[str, float]:
    """(dimension, factor to the base unit) of a unit name; UnitError names the known units of a kind."""
    try:
        return _UNITS[unit]
    except KeyError:
        raise UnitError(f"unknown unit '{unit}'") from None


def units_of(dimension: str) -> list[str]:
    """The unit names of one dimension, for error messages."""
    return sorted((u for u, (d, _) in _UNITS.items() if d == dimension), key=lambda u: (_UNITS[u][1], u))


def dimensions() -> list[str]:
    return sorted(BASE_UNITS)


# -- printing -------------------------------------------------------------------------------------

_PRINT_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"), (1.0, ""), (1e-3, "m"),
                   (1e-6, "u"), (1e-9, "n"), (1e-12, "p"))
_PRINT_SUFFIX = {"bytes": "B", "bandwidth": "B/s", "rate": "FLOP/s", "frequency": "Hz", "power": "W"}


def format_si(value: float, suffix: str, digits: int = 3) -> str:
    """`value` with a decimal prefix: format_si(3.35e12, "B/s") == "3.35 TB/s"."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {suffix}".strip()
    magnitude = abs(value)
    for factor, prefix in _PRINT_PREFIXES:
        if magnitude >= factor:
            if prefix == "K" and not suffix.startswith("B"):
                prefix = "k"  # kW, kHz; KB stays as bytes are usually written
            return f"{value / factor:.{digits}g} {prefix}{suffix}".strip()
    return f"{value:.{digits}g} {suffix}".strip()


def format_time(seconds: float) -> str:
    """A duration in the unit that keeps 1-3 digits before the point: 1.5e-4 -> "150 us"."""
    if seconds == 0 or not math.isfinite(seconds):
        return f"{seconds:g} s"
    magnitude = abs(seconds)
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if magnitude >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_value(value: float, dimension: str) -> str:
    """A base-unit value of `dimension` as a person reads it."""
    if dimension in _PRINT_SUFFIX:
        return format_si(value, _PRINT_SUFFIX[dimension])
    if dimension == "time":
        return format_time(value)
    if dimension == "money_rate":
        return f"${value:.4g}/h"
    if dimension == "energy_per_op":
        return f"{value * 1e12:.3g} pJ/op"
    if dimension == "energy_per_byte":
        return f"{value * 1e12:.3g} pJ/B"
    if dimension == "energy":
        return format_si(value, "J")
    if dimension == "count":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
    return f"{value:.4g} {BASE_UNITS.get(dimension, '')}".strip()
