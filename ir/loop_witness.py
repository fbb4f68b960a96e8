"""Concrete iterations behind the verifier's out-of-range reports: a report must name code that runs.

Interval analysis (`ir.loop_simplify`) over-approximates the values of an index, and it cannot see
every guard that makes an access unreachable (`if not (j <= max(i, j))`, or the dead tail of a
guarded split that later transforms rewrote into floordiv and mod). So before the verifier reports
an index as out of range, `out_of_range_witness` looks for one iteration that reaches the access and
indexes outside the buffer: it walks the enclosing loops, `let`s and guards (a `Path`, outermost
first), giving each loop variable a concrete value, and evaluates the guards and the index with
Python integers, as the reference evaluator does (floor division and mod). It tries the first and
last iteration of every loop first (exact interval ends are attained there), then every iteration
up to a budget of steps; when the budget runs out it has found nothing, and nothing is reported
(a missed report, never a false one).

The iteration must run whatever the inputs are. A value that loads memory is unknown, and a loop
whose bounds are unknown, or a guard whose value is, stops the walk: such an access may run only
for inputs the kernel was never meant to see (a guarded split of `for j in 0..+n[0]`, unrolled,
holds copies for large j that valid inputs never reach). An index of unknown value counts as out
of range only when the interval test found its whole range outside the buffer.
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from typing import Iterable, Iterator

from ir.dtypes import DType
from ir.loops import INDEX, Binary, Cast, Const, Expr, Select, Unary, Var


@dataclass(frozen=True)
class LoopStep:
    """Entering `for var in start..+extent step step`."""

    var: str
    start: Expr | None  # None: not an i64 expression (the verifier reports it)
    extent: Expr | None
    step: int


@dataclass(frozen=True)
class LetStep:
    """Entering `let var = value`."""

    var: str
    value: Expr


@dataclass(frozen=True)
class GuardStep:
    """Entering the then branch of `if cond` (the else branch when `negate`)."""

    cond: Expr
    negate: bool


Step = LoopStep | LetStep | GuardStep
Path = tuple[Step, ...]


class _Unknown:
    """A value the walk cannot compute: it depends on memory."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
BUDGET = 20_000  # path steps evaluated by the exhaustive search, at most
_CORNER_SEARCH_LOOPS = 10  # deeper nests try all-first, all-last and single flips only


class _NoValue(Exception):
    """The walk divided by zero: not an iteration that can report an index."""


def out_of_range_witness(path: Path, index: Expr, extent: int, wholly_outside: bool = False,
                         budget: int = BUDGET) -> bool:
    """Whether some iteration along `path` runs the access, whatever the inputs, and has `index`
    outside [0, extent); `wholly_outside`: every value the index may take is outside."""
    target = _Target(index, extent, wholly_outside)
    loops = sum(isinstance(step, LoopStep) for step in path)
    if any(_Search(path, target, _CornerChoice(corner), budget).walk(0, {}, 0) for corner in _corners(loops)):
        return True
    return _Search(path, target, _AllChoices(), budget).walk(0, {}, 0)


@dataclass(frozen=True)
class _Target:
    index: Expr
    extent: int
    wholly_outside: bool

    def outside(self, env: dict[str, object]) -> bool:
        value = _value(self.index, env)
        if type(value) is not int:
            return self.wholly_outside
        return value < 0 or value >= self.extent


def _corners(loops: int) -> Iterator[tuple[bool, ...]]:
    """Which loops take their last iteration (True) or their first (False)."""
    if loops <= _CORNER_SEARCH_LOOPS:
        yield from itertools.product((False, True), repeat=loops)
        return
    yield (False,) * loops
    yield (True,) * loops
    for flipped in range(loops):
        yield tuple(position == flipped for position in range(loops))
        yield tuple(position != flipped for position in range(loops))


class _CornerChoice:
    """The first or the last iteration of each loop, as `corner` says."""

    def __init__(self, corner: tuple[bool, ...]) -> None:
        self.corner = corner

    def values(self, number: int, first: int, count: int, step: int) -> Iterable[int]:
        return (first + (count - 1) * step if self.corner[number] else first,)


class _AllChoices:
    """Every iteration of each loop: the first, the last, then the ones between."""

    def values(self, number: int, first: int, count: int, step: int) -> Iterable[int]:
        last = first + (count - 1) * step
        if count == 1:
            return (first,)
        return itertools.chain((first, last), range(first + step, last, step))


class _Search:
    """A depth-first walk down `path` that gives up after `budget` steps."""

    def __init__(self, path: Path, target: _Target, choice: _CornerChoice | _AllChoices, budget: int) -> None:
        self.path = path
        self.target = target
        self.choice = choice
        self.budget = budget

    def walk(self, position: int, env: dict[str, object], loop_number: int) -> bool:
        """Whether a witness lies below step `position`, given the values in `env`."""
        self.budget -= 1
        if self.budget < 0:
            return False
        try:
            if position == len(self.path):
                return self.target.outside(env)
            step = self.path[position]
            if isinstance(step, GuardStep):
                holds = _value(step.cond, env)
                return type(holds) is bool and holds != step.negate and self.walk(position + 1, env, loop_number)
            if isinstance(step, LetStep):
                return self.walk(position + 1, {**env, step.var: _value(step.value, env)}, loop_number)
            for value in _loop_values(step, env, self.choice, loop_number):
                if self.walk(position + 1, {**env, step.var: value}, loop_number + 1):
                    return True
                if self.budget < 0:
                    return False
            return False
        except _NoValue:
            return False


def _loop_values(step: LoopStep, env: dict[str, object], choice: _CornerChoice | _AllChoices,
                 number: int) -> Iterable[int]:
    """The values to try for a loop variable: none when the bounds are unknown (the loop may not run)."""
    first = UNKNOWN if step.start is None else _value(step.start, env)
    count = UNKNOWN if step.extent is None else _value(step.extent, env)
    if type(first) is not int or type(count) is not int or count <= 0:
        return []
    return choice.values(number, first, count, step.step)


def _value(expr: Expr, env: dict[str, object]) -> object:
    """An i64 or bool expression's value (int or bool), or UNKNOWN."""
    if isinstance(expr, Const):
        if expr.dtype is DType.BOOL:
            return bool(expr.value)
        if expr.dtype is INDEX and isinstance(expr.value, numbers.Integral):
            return int(expr.value)
        return UNKNOWN
    if isinstance(expr, Var):
        return env.get(expr.name, UNKNOWN)
    if isinstance(expr, Binary):
        return _binary(expr, env)
    if isinstance(expr, Unary):
        operand = _value(expr.operand, env)
        if operand is UNKNOWN:
            return UNKNOWN
        if expr.op == "logical_not" and isinstance(operand, bool):
            return not operand
        if type(operand) is int and expr.op in ("neg", "abs", "relu"):
            return -operand if expr.op == "neg" else abs(operand) if expr.op == "abs" else max(operand, 0)
        return UNKNOWN
    if isinstance(expr, Select):
        cond = _value(expr.cond, env)
        if cond is UNKNOWN:
            values = {_value(expr.true_value, env), _value(expr.false_value, env)}
            return values.pop() if len(values) == 1 else UNKNOWN
        return _value(expr.true_value if cond else expr.false_value, env)
    if isinstance(expr, Cast) and expr.dtype is INDEX:
        operand = _value(expr.operand, env)
        return int(operand) if type(operand) is int else UNKNOWN
    return UNKNOWN  # loads, float arithmetic


def _binary(expr: Binary, env: dict[str, object]) -> object:
    left, right = _value(expr.left, env), _value(expr.right, env)
    if expr.op in ("logical_and", "logical_or"):
        deciding = expr.op == "logical_or"  # the operand value that decides the result alone
        if left is deciding or right is deciding:
            return deciding
        return UNKNOWN if UNKNOWN in (left, right) else not deciding
    if type(left) is not int or type(right) is not int:
        return UNKNOWN
    match expr.op:
        case "add":
            return left + right
        case "sub":
            return left - right
        case "mul":
            return left * right
        case "floordiv" | "mod" if right == 0:
            raise _NoValue()
        case "floordiv":
            return left // right
        case "mod":
            return left % right
        case "maximum":
            return max(left, right)
        case "minimum":
            return min(left, right)
        case "lt":
            return left < right
        case "le":
            return left <= right
        case "gt":
            return left > right
        case "ge":
            return left >= right
        case "eq":
            return left == right
        case "ne":
            return left != right
    return UNKNOWN
