"""Index-expression algebra for the loop IR: affine forms, value ranges, and simplification.

Index expressions (dtype i64) are integers with unbounded range in the reference evaluator and
two's-complement i64 in generated code; sums and products by constants are exact in both, so
`affine` may reorder them freely. Everything else in an index expression (a load, a product of two
variables, floordiv, mod, min, max, select, cast) is an opaque *atom* of an affine form, with one
exception: `(e // c) * (k * c) + (e % c) * k` (c a positive constant) is `e * k`, because floor
division and mod by c satisfy e == c * (e // c) + e % c for every integer e (the reference
evaluator, numpy and generated code all divide by constants this way). Fusing the loops of a split
produces exactly this pair, and reading it back as `e` keeps such indices affine.

`bounds` computes an `Interval` for an index expression from intervals of its variables. An interval
is `exact` when both ends are values the expression really takes (for some choice of the variables
in their ranges): affine expressions in independent exact variables are exact, and so are floordiv
by a positive constant, min and max of independent exact operands. The verifier reports an
out-of-range index only when the range it finds is exact or lies wholly outside the buffer, so an
over-approximation never produces a false report -- for code that runs. Code that never runs may
index anything (the tail iterations of a guarded split do), so the verifier drops what a loop that
never runs, or an enclosing guard that is false for every value of its variables (`never_holds`)
or contradicts the others (`conjoin`), makes unreachable, and confirms what is left with a
concrete iteration (`ir.loop_witness`).

`loop_values`, `never_holds`, `guard_facts` and `guarded_bounds` add what loops and enclosing `if`
guards tell about the range of an index (the verifier's out-of-range check). Guard facts are
about affine forms whose atoms read no memory: such atoms are functions of loop and `let`
variables only, which keep their values inside the guarded code, so the fact holds there (the
verifier drops the facts about a name that an inner `let` binds again).

`simplify` rewrites every i64 sum/difference/scaled subexpression into `a*c1 + b*c2 + ... + k`
(terms in order of first appearance, zero terms dropped, constants folded) and folds constant
floordiv/mod/min/max. Expressions of other dtypes are left as written (folding `x + 0.0` would
change `-0.0`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ir.dtypes import DType
from ir.loops import INDEX, Binary, Cast, Const, Expr, Load, Select, Unary, Var, children


# -- affine forms ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Affine:
    """sum(coefficient * atom) + const, atoms in order of first appearance, no zero coefficients."""

    terms: tuple[tuple[Expr, int], ...]
    const: int

    @property
    def is_constant(self) -> bool:
        return not self.terms

    @property
    def atoms(self) -> tuple[Expr, ...]:
        return tuple(atom for atom, _ in self.terms)

    def coefficient(self, atom: Expr) -> int:
        for candidate, coefficient in self.terms:
            if candidate == atom:
                return coefficient
        return 0

    def linear_key(self) -> frozenset[tuple[Expr, int]]:
        """The terms without the constant, as a set: two forms differ by a constant iff keys match."""
        return frozenset(self.terms)

    def var_names(self) -> frozenset[str]:
        """Names of the variables anywhere in the form (inside opaque atoms too)."""
        names: set[str] = set()
        for atom in self.atoms:
            names |= free_vars(atom)
        return frozenset(names)

    def is_pure(self) -> bool:
        """No atom reads memory: the form's value depends on the values of its variables only."""
        return not any(reads_memory(atom) for atom in self.atoms)


def _combine(a: Affine, b: Affine, scale_b: int) -> Affine:
    coefficients: dict[Expr, int] = {}
    order: list[Expr] = []
    for atom, coefficient in a.terms + tuple((atom, c * scale_b) for atom, c in b.terms):
        if atom not in coefficients:
            order.append(atom)
            coefficients[atom] = 0
        coefficients[atom] += coefficient
    terms = tuple((atom, coefficients[atom]) for atom in order if coefficients[atom] != 0)
    return Affine(terms, a.const + scale_b * b.const)


def _scale(a: Affine, factor: int) -> Affine:
    if factor == 0:
        return Affine((), 0)
    return Affine(tuple((atom, c * factor) for atom, c in a.terms), a.const * factor)


def affine(expr: Expr) -> Affine:
    """The affine form of an i64 expression (non-linear parts become atoms; a quotient and remainder
    pair that recombines into its dividend is replaced by the dividend's form)."""
    if isinstance(expr, Const) and expr.dtype is INDEX and not isinstance(expr.value, bool):
        return Affine((), int(expr.value))
    if isinstance(expr, Binary) and expr.dtype is INDEX and expr.left.dtype is INDEX:
        if expr.op in ("add", "sub"):
            combined = _combine(affine(expr.left), affine(expr.right), 1 if expr.op == "add" else -1)
            return _merge_quotient_remainder(combined)
        if expr.op == "mul":
            left, right = affine(expr.left), affine(expr.right)
            if right.is_constant:
                return _scale(left, right.const)
            if left.is_constant:
                return _scale(right, left.const)
    if isinstance(expr, Unary) and expr.op == "neg" and expr.dtype is INDEX:
        return _scale(affine(expr.operand), -1)
    return Affine(((expr, 1),), 0)


def _by_constant(atom: Expr, op: str) -> tuple[Expr, int] | None:
    """(e, c) for an atom `e <op> c` with a positive constant c."""
    if (isinstance(atom, Binary) and atom.op == op and isinstance(atom.right, Const)
            and atom.right.dtype is INDEX and type(atom.right.value) is int and atom.right.value > 0):
        return atom.left, atom.right.value
    return None


def _same_value(a: Expr, b: Expr) -> bool:
    form_a, form_b = affine(a), affine(b)
    return form_a.linear_key() == form_b.linear_key() and form_a.const == form_b.const


def _merge_quotient_remainder(form: Affine) -> Affine:
    """Replace the terms `(e // c) * (k * c) + (e % c) * k` of a form by `e * k` (c > 0 constant):
    e == c * (e // c) + e % c for floor division."""
    for quotient_atom, quotient_coefficient in form.terms:
        quotient = _by_constant(quotient_atom, "floordiv")
        if quotient is None:
            continue
        dividend, divisor = quotient
        for remainder_atom, k in form.terms:
            remainder = _by_constant(remainder_atom, "mod")
            if (remainder is None or remainder[1] != divisor or quotient_coefficient != k * divisor
                    or not _same_value(remainder[0], dividend)):
                continue
            rest = Affine(tuple(term for term in form.terms if term[0] != quotient_atom and term[0] != remainder_atom),
                          form.const)
            return _merge_quotient_remainder(_combine(rest, affine(dividend), k))
    return form


def from_affine(form: Affine) -> Expr:
    """An expression for an affine form: `a*c1 + b*c2 - d*c3 + k`."""
    result: Expr | None = None
    for atom, coefficient in form.terms:
        if result is None:
            result = atom if coefficient == 1 else Binary("mul", atom, Const(coefficient))
        else:
            magnitude = abs(coefficient)
            term = atom if magnitude == 1 else Binary("mul", atom, Const(magnitude))
            result = Binary("add" if coefficient > 0 else "sub", result, term)
    if result is None:
        return Const(form.const)
    if form.const > 0:
        return Binary("add", result, Const(form.const))
    if form.const < 0:
        return Binary("sub", result, Const(-form.const))
    return result


def free_vars(expr: Expr) -> frozenset[str]:
    """Names of the variables an expression reads."""
    if isinstance(expr, Var):
        return frozenset({expr.name})
    if isinstance(expr, Const):
        return frozenset()
    names: set[str] = set()
    for child in _expr_children(expr):
        names |= free_vars(child)
    return frozenset(names)


def reads_memory(expr: Expr) -> bool:
    """Whether an expression loads from a buffer anywhere."""
    return isinstance(expr, Load) or any(reads_memory(child) for child in _expr_children(expr))


def _expr_children(expr: Expr) -> tuple[Expr, ...]:
    return tuple(children(expr))


# -- simplification -------------------------------------------------------------------------------


def simplify(expr: Expr) -> Expr:
    """Canonical i64 arithmetic inside `expr` (see the module docstring); other dtypes untouched."""
    if isinstance(expr, (Const, Var)):
        return expr
    if isinstance(expr, Load):
        return Load(expr.buffer, tuple(simplify(i) for i in expr.indices), expr.dtype)
    if isinstance(expr, Unary):
        operand = simplify(expr.operand)
        if expr.dtype is INDEX and expr.op == "neg":
            return from_affine(_scale(affine(operand), -1))
        return Unary(expr.op, operand)
    if isinstance(expr, Cast):
        return Cast(expr.dtype, simplify(expr.operand))
    if isinstance(expr, Select):
        return Select(simplify(expr.cond), simplify(expr.true_value), simplify(expr.false_value))
    if isinstance(expr, Binary):
        left, right = simplify(expr.left), simplify(expr.right)
        rebuilt = Binary(expr.op, left, right)
        if left.dtype is not INDEX or right.dtype is not INDEX:
            return rebuilt
        if expr.op in ("add", "sub", "mul"):
            return from_affine(affine(rebuilt))
        if isinstance(left, Const) and isinstance(right, Const):
            folded = _fold(expr.op, int(left.value), int(right.value))
            if folded is not None:
                return folded
        if expr.op in ("floordiv", "mod") and isinstance(right, Const) and right.value == 1:
            return left if expr.op == "floordiv" else Const(0)
        return rebuilt
    return expr


def _fold(op: str, a: int, b: int) -> Const | None:
    if op == "floordiv" and b != 0:
        return Const(a // b)
    if op == "mod" and b != 0:
        return Const(a % b)
    if op == "maximum":
        return Const(max(a, b))
    if op == "minimum":
        return Const(min(a, b))
    return None


# -- value ranges ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """The values an i64 expression can take: [lo, hi] (None: unbounded on that side).

    `exact`: both ends are attained. `depends`: the variables the value depends on (two exact
    intervals with disjoint `depends` vary independently, so their sum is exact too).
    """

    lo: int | None
    hi: int | None
    exact: bool = False
    depends: frozenset[str] = frozenset()

    @property
    def bounded(self) -> bool:
        return self.lo is not None and self.hi is not None

    @staticmethod
    def point(value: int) -> Interval:
        return Interval(value, value, True)

    def inexact(self) -> Interval:
        return Interval(self.lo, self.hi, False, self.depends)


UNBOUNDED = Interval(None, None)


def bounds(expr: Expr, env: Mapping[str, Interval]) -> Interval:
    """The range of an i64 expression given the ranges of its variables (missing: unbounded)."""
    if isinstance(expr, Const):
        if expr.dtype is INDEX and not isinstance(expr.value, bool):
            return Interval.point(int(expr.value))
        return UNBOUNDED
    if isinstance(expr, Var):
        known = env.get(expr.name)
        if known is None:
            return Interval(None, None, False, frozenset({expr.name}))
        return known
    if isinstance(expr, Binary) and expr.dtype is INDEX and expr.left.dtype is INDEX:
        return _binary_bounds(expr.op, bounds(expr.left, env), bounds(expr.right, env))
    if isinstance(expr, Unary) and expr.dtype is INDEX and expr.op == "neg":
        inner = bounds(expr.operand, env)
        return Interval(_neg(inner.hi), _neg(inner.lo), inner.exact, inner.depends)
    if isinstance(expr, Select) and expr.dtype is INDEX:
        a, b = bounds(expr.true_value, env), bounds(expr.false_value, env)
        return Interval(_min(a.lo, b.lo), _max(a.hi, b.hi), False, a.depends | b.depends)
    return Interval(None, None, False, free_vars(expr))


def _neg(value: int | None) -> int | None:
    return None if value is None else -value


def _min(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _binary_bounds(op: str, a: Interval, b: Interval) -> Interval:
    depends = a.depends | b.depends
    independent = a.exact and b.exact and not (a.depends & b.depends)
    if op == "add":
        return Interval(_add(a.lo, b.lo), _add(a.hi, b.hi), independent, depends)
    if op == "sub":
        return Interval(_add(a.lo, _neg(b.hi)), _add(a.hi, _neg(b.lo)), independent, depends)
    if op == "mul":
        for scalar, other in ((b, a), (a, b)):
            if scalar.lo is not None and scalar.lo == scalar.hi:
                c = scalar.lo
                if c == 0:
                    return Interval.point(0)
                lo, hi = (other.lo, other.hi) if c > 0 else (_neg(other.hi), _neg(other.lo))
                lo = None if lo is None else lo * abs(c)
                hi = None if hi is None else hi * abs(c)
                return Interval(lo, hi, other.exact, depends)
        if a.bounded and b.bounded:
            corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            return Interval(min(corners), max(corners), False, depends)
        return Interval(None, None, False, depends)
    if op in ("floordiv", "mod") and b.lo is not None and b.lo == b.hi and b.lo > 0:
        c = b.lo
        if op == "floordiv":
            lo = None if a.lo is None else a.lo // c
            hi = None if a.hi is None else a.hi // c
            return Interval(lo, hi, a.exact, depends)
        if a.bounded and a.lo // c == a.hi // c:  # no wrap-around: mod is a shift
            return Interval(a.lo % c, a.hi % c, a.exact, depends)
        return Interval(0, c - 1, False, depends)
    if op in ("maximum", "minimum"):
        pick = max if op == "maximum" else min
        lo = pick(a.lo, b.lo) if a.lo is not None and b.lo is not None else (
            None if op == "minimum" else (a.lo if b.lo is None else b.lo))
        hi = pick(a.hi, b.hi) if a.hi is not None and b.hi is not None else (
            None if op == "maximum" else (a.hi if b.hi is None else b.hi))
        return Interval(lo, hi, independent, depends)
    return Interval(None, None, False, depends)


# -- loop variables and guards ----------------------------------------------------------------------


def loop_values(var: str, start: Expr | None, extent: Expr | None, step: int,
                ranges: Mapping[str, Interval]) -> Interval | None:
    """The values of a loop variable (None for an unknown start or extent); None when the loop
    certainly never runs. Exact when the start is exact and the extent constant."""
    first = bounds(start, ranges) if start is not None else UNBOUNDED
    count = bounds(extent, ranges) if extent is not None else UNBOUNDED
    if count.hi is not None and count.hi <= 0:
        return None
    depends = first.depends | count.depends | {var}
    last = None if first.hi is None or count.hi is None else first.hi + (count.hi - 1) * step
    constant_count = count.lo is not None and count.lo == count.hi
    return Interval(first.lo, last, first.exact and constant_count, frozenset(depends))


@dataclass(frozen=True)
class Fact:
    """What an enclosing guard says: the affine form with terms `key` lies in [lo, hi] (None:
    unbounded); `names` are the variables it constrains."""

    key: frozenset
    lo: int | None
    hi: int | None
    names: frozenset[str]


IMPOSSIBLE = Fact(frozenset(), 1, 0, frozenset())  # holds inside code that never runs
_NEGATE = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt", "eq": "ne", "ne": "eq"}
_BOUNDS = {"lt": lambda b: (None, b - 1), "le": lambda b: (None, b), "gt": lambda b: (b + 1, None),
           "ge": lambda b: (b, None), "eq": lambda b: (b, b)}


def never_holds(cond: Expr, ranges: Mapping[str, Interval], negate: bool = False) -> bool:
    """True when `cond` (`not cond` when `negate`) is false for every value the variables take in
    `ranges`: a constant, or comparisons of i64 expressions whose difference's interval (see
    `bounds`, an over-approximation) lies wholly on the false side, combined by `and`, `or`, `not`.
    False when unsure."""
    if isinstance(cond, Const) and cond.dtype is DType.BOOL:
        return bool(cond.value) == negate
    if isinstance(cond, Unary) and cond.op == "logical_not":
        return never_holds(cond.operand, ranges, not negate)
    if not isinstance(cond, Binary):
        return False
    if cond.op in ("logical_and", "logical_or"):
        left, right = never_holds(cond.left, ranges, negate), never_holds(cond.right, ranges, negate)
        conjunction = (cond.op == "logical_and") != negate  # not (a or b) == not a and not b
        return (left or right) if conjunction else (left and right)
    if cond.op not in _NEGATE or getattr(cond.left, "dtype", None) is not INDEX \
            or getattr(cond.right, "dtype", None) is not INDEX:
        return False
    op = _NEGATE[cond.op] if negate else cond.op
    difference = bounds(from_affine(affine(Binary("sub", cond.left, cond.right))), ranges)  # <op> 0
    lo, hi = difference.lo, difference.hi
    positive, negative = lo is not None and lo > 0, hi is not None and hi < 0
    if op == "lt":
        return positive or lo == 0
    if op == "le":
        return positive
    if op == "gt":
        return negative or hi == 0
    if op == "ge":
        return negative
    if op == "eq":
        return positive or negative
    return lo == 0 and hi == 0  # ne


def guard_facts(cond: Expr, negate: bool = False) -> list[Fact] | None:
    """Facts implied by `cond` (by `not cond` when `negate`): comparisons of affine i64 expressions
    whose atoms read no memory, and conjunctions of them. None when the condition says something
    these facts cannot hold."""
    if not isinstance(cond, Binary):
        return None
    if cond.op == ("logical_or" if negate else "logical_and"):
        left, right = guard_facts(cond.left, negate), guard_facts(cond.right, negate)
        return None if left is None or right is None else left + right
    if cond.op not in _NEGATE or getattr(cond.left, "dtype", None) is not INDEX \
            or getattr(cond.right, "dtype", None) is not INDEX:
        return None
    op = _NEGATE[cond.op] if negate else cond.op
    if op == "ne":
        return None
    difference = affine(Binary("sub", cond.left, cond.right))  # difference <op> 0
    if not difference.is_pure():
        return None
    lo, hi = _BOUNDS[op](-difference.const)  # terms <op> -const
    if difference.is_constant:  # a condition without variables: always or never true
        holds = (lo is None or lo <= 0) and (hi is None or 0 <= hi)
        return [] if holds else [IMPOSSIBLE]
    return [Fact(difference.linear_key(), lo, hi, difference.var_names())]


def conjoin(facts: tuple[Fact, ...], more: list[Fact]) -> tuple[Fact, ...]:
    """The facts of `facts` and `more` together, those about one form intersected; `(IMPOSSIBLE,)`
    when they cannot all hold."""
    result = list(facts)
    for fact in more:
        for position, old in enumerate(result):
            if old.key == fact.key:
                lo = old.lo if fact.lo is None else fact.lo if old.lo is None else max(old.lo, fact.lo)
                hi = old.hi if fact.hi is None else fact.hi if old.hi is None else min(old.hi, fact.hi)
                result[position] = Fact(old.key, lo, hi, old.names | fact.names)
                break
        else:
            result.append(fact)
    if any(fact.lo is not None and fact.hi is not None and fact.lo > fact.hi for fact in result):
        return (IMPOSSIBLE,)
    return tuple(result)


def guarded_bounds(index: Expr, ranges: Mapping[str, Interval], facts: tuple[Fact, ...],
                   uncertain: frozenset[str] = frozenset()) -> tuple[int | None, int | None, bool, bool] | None:
    """(lo, hi, lo attained, hi attained) of an index under the enclosing guards `facts`; None when
    the guards cannot all hold. A guard on the same affine form (up to a constant) clips the range,
    and the clipped end may not be attained; any other guard on its variables, or a variable in
    `uncertain` (constrained by a guard that is not understood), makes both ends uncertain."""
    form = affine(index)
    value = bounds(from_affine(form), ranges)
    key = form.linear_key()
    names = free_vars(index) | value.depends
    lo, hi = value.lo, value.hi
    lo_exact = hi_exact = value.exact
    for fact in facts:
        if fact.lo is not None and fact.hi is not None and fact.lo > fact.hi:
            return None
        if fact.key == key and form.is_pure():
            if fact.lo is not None and (lo is None or fact.lo + form.const > lo):
                lo, lo_exact = fact.lo + form.const, False
            if fact.hi is not None and (hi is None or fact.hi + form.const < hi):
                hi, hi_exact = fact.hi + form.const, False
        elif fact.names & names:
            lo_exact = hi_exact = False
    if uncertain & names:
        lo_exact = hi_exact = False
    if lo is not None and hi is not None and lo > hi:
        return None
    return lo, hi, lo_exact, hi_exact
