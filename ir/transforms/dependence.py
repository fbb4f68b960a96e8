"""Which loop iterations may touch the same memory: the legality test of parallelize, vectorize, reorder.

Two iterations conflict when they access one location of one buffer and at least one access is a
store. The test here is sufficient, not complete (when it cannot prove independence it says why):

1. Buffers allocated inside the analysed body are private to an iteration and never conflict.
2. Every other buffer the body stores to must be accessed (loaded and stored) through one index
   tuple only, equal up to affine rearrangement.
3. That tuple must be an injective function of the *varying* variables it uses (the loops being
   analysed and the loops and lets inside the body): each index is affine in them, each variable
   appears in one index only, and within an index the terms form a mixed radix (sorted by
   |coefficient|, each coefficient exceeds the sum of |coefficient| * span of the smaller ones, span
   being (extent - 1) * step of a constant-extent loop; a loop of one iteration has span 0 and takes
   one value). Variables bound outside are fixed. A pair of indices `e // c` and `e % c` counts as
   the one index `e` (together they determine it). Enclosing `if` guards are not used, so a guarded
   split of an already split loop may be refused although legal.

Then two iterations touching the same location agree on every variable the location depends on, so:
a loop may run its iterations in parallel (or as SIMD lanes) when its variable is among them for
every stored buffer; a band of loops may be reordered when the band variables none of the locations
depends on keep their relative order (the iterations that meet at a location then run in the same
order as before).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ir.loop_printer import format_expr
from ir.loop_simplify import affine, free_vars
from ir.loops import Allocate, Binary, Const, Expr, For, If, Let, Load, Seq, Stmt, Store, Var, walk
from ir.transforms.common import stmt_exprs


@dataclass(frozen=True)
class Access:
    buffer: str
    indices: tuple[Expr, ...]
    is_store: bool


@dataclass
class _Region:
    """What a walk over a loop body collects."""

    accesses: list[Access]
    spans: dict[str, float]  # varying variable -> span of its values (inf when unknown)


def _span(loop: For) -> float:
    if isinstance(loop.extent, Const) and isinstance(loop.extent.value, int):
        return max(loop.extent.value - 1, 0) * loop.step
    return math.inf


def _collect(stmt: Stmt, private: frozenset[str], region: _Region) -> None:
    for expr in stmt_exprs(stmt):
        for node in walk(expr):
            if isinstance(node, Load) and node.buffer not in private:
                region.accesses.append(Access(node.buffer, node.indices, False))
    if isinstance(stmt, Store) and stmt.buffer not in private:
        region.accesses.append(Access(stmt.buffer, stmt.indices, True))
    if isinstance(stmt, For):
        region.spans[stmt.var] = max(region.spans.get(stmt.var, 0), _span(stmt))
    elif isinstance(stmt, Let):
        region.spans[stmt.var] = math.inf
    inner_private = private | {stmt.buffer.name} if isinstance(stmt, Allocate) else private
    children: tuple[Stmt, ...] = ()
    if isinstance(stmt, Seq):
        children = stmt.stmts
    elif isinstance(stmt, (For, Let, Allocate)):
        children = (stmt.body,)
    elif isinstance(stmt, If):
        children = (stmt.then_body,) if stmt.else_body is None else (stmt.then_body, stmt.else_body)
    for child in children:
        _collect(child, inner_private, region)


def _show(buffer: str, indices: tuple[Expr, ...]) -> str:
    return f"{buffer}[{', '.join(format_expr(i) for i in indices)}]"


def _index_key(indices: tuple[Expr, ...]) -> tuple:
    return tuple((affine(i).linear_key(), affine(i).const) for i in indices)


def _merge_div_mod(indices: tuple[Expr, ...]) -> list[Expr]:
    """Replace a pair `e // c`, `e % c` (c > 0) by `e`: the pair determines e (e = c * q + r), as the
    indices of a fused loop or a reshape do."""
    def split_by(index: Expr, op: str) -> tuple[Expr, int] | None:
        if (isinstance(index, Binary) and index.op == op and isinstance(index.right, Const)
                and isinstance(index.right.value, int) and index.right.value > 0):
            return index.left, index.right.value
        return None

    quotients = {split_by(index, "floordiv") for index in indices} - {None}
    remainders = {split_by(index, "mod") for index in indices} - {None}
    paired = quotients & remainders
    merged: list[Expr] = []
    for index in indices:
        quotient, remainder = split_by(index, "floordiv"), split_by(index, "mod")
        if quotient in paired:
            merged.append(quotient[0])
        elif remainder not in paired:
            merged.append(index)
    return merged


def _injective_vars(indices: tuple[Expr, ...], spans: dict[str, float]) -> frozenset[str] | str:
    """The varying variables an index tuple depends on injectively, or why that is not provable."""
    used: set[str] = set()
    for index in _merge_div_mod(indices):
        terms: list[tuple[str, int]] = []
        for atom, coefficient in affine(index).terms:
            if not free_vars(atom) & spans.keys():
                continue  # fixed during the analysed iterations
            if not isinstance(atom, Var):
                return f"index `{format_expr(index)}` is not affine in the loop variables"
            terms.append((atom.name, coefficient))
        for name, _ in terms:
            if name in used:
                return f"'{name}' appears in more than one index"
        total = 0.0
        varying_terms = [(name, abs(c)) for name, c in terms if spans[name] > 0]  # span 0: one value
        for name, coefficient in sorted(varying_terms, key=lambda term: (term[1], spans[term[0]])):
            if coefficient <= total:
                return f"index `{format_expr(index)}` may take one value for two choices of its variables"
            total += coefficient * spans[name]
        used |= {name for name, _ in terms}
    return frozenset(used)


def written_locations(body: Stmt, varying: dict[str, float]) -> dict[str, tuple[str, frozenset[str]]] | str:
    """For each buffer stored to in `body` (not allocated there): (its access, printed, and the
    varying variables its location depends on); or why the locations cannot be told apart.

    `varying` maps the analysed loop variables to their spans; variables bound inside `body` are
    added.
    """
    region = _Region([], dict(varying))
    _collect(body, frozenset(), region)
    by_buffer: dict[str, list[Access]] = {}
    for access in region.accesses:
        by_buffer.setdefault(access.buffer, []).append(access)
    result: dict[str, tuple[str, frozenset[str]]] = {}
    for buffer, accesses in by_buffer.items():
        stores = [a for a in accesses if a.is_store]
        if not stores:
            continue
        first = stores[0]
        for other in accesses:
            if _index_key(other.indices) != _index_key(first.indices):
                kind = "stored" if other.is_store else "loaded"
                return (f"'{buffer}' is stored at `{_show(buffer, first.indices)}` and {kind} at "
                        f"`{_show(buffer, other.indices)}`")
        used = _injective_vars(first.indices, region.spans)
        if isinstance(used, str):
            return f"cannot tell the locations of `{_show(buffer, first.indices)}` apart: {used}"
        result[buffer] = (_show(buffer, first.indices), used)
    return result


def parallel_conflict(loop: For) -> str | None:
    """Why two iterations of `loop` may touch the same location; None when they cannot."""
    locations = written_locations(loop.body, {loop.var: _span(loop)})
    if isinstance(locations, str):
        return locations
    for shown, used in locations.values():
        if loop.var not in used:
            return f"every iteration of '{loop.var}' may write the same location `{shown}`"
    return None


def reorder_conflict(band: list[For], order: list[str]) -> str | None:
    """Why running the perfect nest `band` in loop order `order` may change its result; None if not."""
    innermost = band[-1]
    locations = written_locations(innermost.body, {loop.var: _span(loop) for loop in band})
    if isinstance(locations, str):
        return locations
    old = [loop.var for loop in band]
    for shown, used in locations.values():
        free = [var for var in old if var not in used]
        if [var for var in order if var in free] != free:
            return (f"iterations of {free} meet at `{shown}` and would run in a different order "
                    f"(expected {free} to keep their relative order)")
    return None
