"""Values the IR generator computes with while it walks the AST.

A .nk expression evaluates either to a `Tensor` (a value of the graph under construction) or to a
compile-time value: an int, float or bool, a tuple, a dtype, `None`, a `StaticRange`. Shapes, axes,
loop counts and indices are compile-time values, so `reshape(x, (B, S * H))` folds `S * H`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ir.dtypes import DType
from ir.graph import Loc
from ir.types import TensorType


@dataclass(frozen=True)
class Tensor:
    node: int
    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype


@dataclass(frozen=True)
class StaticRange:
    start: int
    stop: int
    step: int

    def values(self) -> range:
        return range(self.start, self.stop, self.step)


class _Poison:
    """The value of an expression whose evaluation already reported an error."""

    def __repr__(self) -> str:
        return "<error>"


POISON = _Poison()

Value = Union[Tensor, int, float, bool, tuple, DType, StaticRange, str, None, _Poison]


class GenError(Exception):
    """A located error found while generating IR (a name, type or shape error)."""

    def __init__(self, message: str, loc: Loc | None, notes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.notes = notes


class PoisonError(Exception):
    """Raised when a computation meets POISON; its error was reported where it arose."""


def describe(value: Any) -> str:
    """How a value is named in error messages."""
    if isinstance(value, Tensor):
        return f"a tensor {value.type}"
    if isinstance(value, bool):
        return f"the bool {str(value).lower()}"
    if isinstance(value, int):
        return f"the int {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, tuple):
        return "a tuple (" + ", ".join(describe(v) for v in value) + ")"
    if isinstance(value, DType):
        return f"the dtype {value}"
    if isinstance(value, StaticRange):
        return "a range"
    if value is None:
        return "None"
    if isinstance(value, str):
        return f"the string {value!r}"
    return repr(value)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
