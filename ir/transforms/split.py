"""Split one loop into two nested loops, and tile a perfect nest of two loops.

`split` rewrites `for v in S..+E step s { B }` into an outer loop over blocks of `factor`
iterations and an inner loop within a block, with `v := S + (outer * factor + inner) * s` in `B`.
The iterations run in the same order, so the rewrite is always legal. An extent that `factor` does
not divide is handled one of two ways, chosen by `tail`:

- `"guard"` (the default): the outer loop runs ceil(E / factor) times and the body is guarded by
  `if outer * factor + inner < E`. The guard is placed around the innermost body of the perfect nest
  below the split loop (passing loops whose bounds neither depend on `v` nor load memory: such
  bounds take the values of a legitimate iteration, and the guard then skips the body), so the nest
  stays perfect and can be reordered; `tile` relies on this.
- `"loop"`: the outer loop runs floor(E / factor) times with no guard, and a tail loop `v_tail`
  runs the remaining E mod factor iterations after it (the form vector code wants).

A computed extent that is not plain index arithmetic (it loads memory) is bound once with a `let`
before the loops, so it is evaluated once, as before; a computed start likewise.
"""

from __future__ import annotations

from ir.loop_simplify import free_vars, simplify
from ir.loops import Binary, Const, Expr, For, If, Kernel, Let, LoopKind, Stmt, Var, seq, walk
from ir.transforms.common import (TransformError, canonical, find_loop, fresh_name, names_in_use,
                                  perfect_nest, replace_loop, require_fresh, simplify_stmt, substitute)
from ir.transforms.reorder import reorder


def split(kernel: Kernel, loop_var: str, factor: int, outer: str | None = None, inner: str | None = None,
          tail: str = "guard") -> Kernel:
    """Split the loop over `loop_var` into `outer` (blocks) and `inner` (`factor` iterations each).

    The outer loop keeps a `parallel` annotation, the inner one `vectorize` or `unroll`; other
    combinations become serial. With `tail="loop"` the tail loop is serial (parallel if the split
    loop was). Raises TransformError unless factor >= 1, tail is "guard" or "loop", the loop exists
    once and the new names are fresh.

        for i in 0..10 {             for i_o in 0..3 {                  # tail="guard"
          y[i] = x[i]          ->      for i_i in 0..4 {
        }                                if i_o * 4 + i_i < 10 {
                                           y[i_o * 4 + i_i] = x[i_o * 4 + i_i]
                                         }
                                       }
                                     }
    """
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise TransformError(f"expected a split factor >= 1 but found {factor!r}")
    if tail not in ("guard", "loop"):
        raise TransformError(f"expected tail='guard' or tail='loop' but found {tail!r}")
    loop = find_loop(kernel, loop_var)
    taken = names_in_use(kernel)
    outer = require_fresh(outer, taken, "outer loop") if outer else fresh_name(f"{loop_var}_o", taken)
    inner = require_fresh(inner, taken, "inner loop") if inner else fresh_name(f"{loop_var}_i", taken)
    names = _Names(outer, inner, taken)
    return replace_loop(kernel, loop_var, lambda target: _split(target, factor, names, tail))


class _Names:
    def __init__(self, outer: str, inner: str, taken: set[str]) -> None:
        self.outer = outer
        self.inner = inner
        self.taken = taken

    def fresh(self, base: str) -> str:
        return fresh_name(base, self.taken)


def _split(loop: For, factor: int, names: _Names, tail: str) -> Stmt:
    bindings: list[tuple[str, Expr]] = []
    start, extent = loop.start, loop.extent
    if not _reusable(start):
        name = names.fresh(f"{loop.var}_start")
        bindings.append((name, start))
        start = Var(name)
    if not _reusable(extent):
        name = names.fresh(f"{loop.var}_extent")
        bindings.append((name, extent))
        extent = Var(name)
    # A negative extent means no iterations; clamp it so floor and mod below count blocks right.
    extent = Const(max(extent.value, 0)) if isinstance(extent, Const) else Binary("maximum", extent, Const(0))
    outer_kind = LoopKind.PARALLEL if loop.kind is LoopKind.PARALLEL else LoopKind.SERIAL
    inner_kind = loop.kind if loop.kind in (LoopKind.VECTORIZE, LoopKind.UNROLL) else LoopKind.SERIAL
    position = Binary("add", Binary("mul", Var(names.outer), Const(factor)), Var(names.inner))
    body = _at(loop, start, position)
    divides = isinstance(extent, Const) and extent.value % factor == 0
    if tail == "guard" or divides:
        blocks = simplify(Binary("floordiv", Binary("add", extent, Const(factor - 1)), Const(factor)))
        if not divides:
            body = _guard(body, simplify(Binary("lt", position, extent)), {names.outer, names.inner})
        result: Stmt = For(names.outer, Const(0), blocks,
                           For(names.inner, Const(0), Const(factor), body, inner_kind), outer_kind)
    else:
        blocks = simplify(Binary("floordiv", extent, Const(factor)))
        main = For(names.outer, Const(0), blocks, For(names.inner, Const(0), Const(factor), body, inner_kind),
                   outer_kind)
        tail_var = names.fresh(f"{loop.var}_tail")
        tail_extent = simplify(Binary("mod", extent, Const(factor)))
        tail_kind = LoopKind.PARALLEL if loop.kind is LoopKind.PARALLEL else (
            LoopKind.UNROLL if loop.kind is LoopKind.UNROLL and isinstance(tail_extent, Const) else LoopKind.SERIAL)
        tail_body = _at(loop, start, Binary("add", Binary("mul", blocks, Const(factor)), Var(tail_var)))
        tail_loop = For(tail_var, Const(0), tail_extent, tail_body, tail_kind)
        empty_main = isinstance(blocks, Const) and blocks.value <= 0
        result = tail_loop if empty_main else seq(main, tail_loop)
    for name, value in reversed(bindings):
        result = Let(name, value, result)
    return canonical(result)


def _reusable(expr: Expr) -> bool:
    """Index arithmetic without loads: evaluating it again inside the loops gives the same value."""
    return not any(not isinstance(node, (Const, Var, Binary)) for node in walk(expr))


def _at(loop: For, start: Expr, position: Expr) -> Stmt:
    """The loop body at iteration number `position`: v := start + position * step."""
    value = simplify(Binary("add", start, Binary("mul", position, Const(loop.step))))
    return simplify_stmt(substitute(loop.body, {loop.var: value}))


def _guard(body: Stmt, cond: Expr, position_vars: set[str]) -> Stmt:
    """`if cond { body }`, sunk through the perfect nest of loops whose bounds do not depend on the
    iteration's position (so they take the values of a legitimate iteration) and load nothing."""
    if isinstance(body, For) and _independent_header(body, position_vars, cond):
        return For(body.var, body.start, body.extent, _guard(body.body, cond, position_vars), body.kind, body.step)
    return If(cond, body)


def _independent_header(loop: For, position_vars: set[str], cond: Expr) -> bool:
    header_vars = free_vars(loop.start) | free_vars(loop.extent)
    return (_reusable(loop.start) and _reusable(loop.extent) and not header_vars & position_vars
            and loop.var not in free_vars(cond))


def tile(kernel: Kernel, var_a: str, var_b: str, factor_a: int, factor_b: int,
         names: tuple[str, str, str, str] | None = None) -> Kernel:
    """Tile the perfect nest `for a { for b { B } }` into `a_o, b_o, a_i, b_i` (split both, reorder).

    Non-divisible extents are guarded (`split(tail="guard")`), so the nest stays perfect. `names`
    gives (a_o, a_i, b_o, b_i). Raises TransformError unless the loop over `var_b` is the whole body
    of the loop over `var_a`, or when the reorder is not legal (see `reorder`).

        for i in 0..8 {                for i_o in 0..2 {
          for j in 0..6 {                for j_o in 0..3 {
            y[i, j] = x[j, i]    ->        for i_i in 0..4 {
          }                                  for j_i in 0..2 {
        }                                      y[i_o * 4 + i_i, j_o * 2 + j_i] = x[j_o * 2 + j_i, i_o * 4 + i_i]
                                             }
                                           }
                                         }
                                       }
    """
    outer_loop = find_loop(kernel, var_a)
    nest = perfect_nest(outer_loop, 2)
    if nest[1].var != var_b:
        raise TransformError(f"expected loop '{var_b}' directly inside loop '{var_a}' but found loop "
                             f"'{nest[1].var}'")
    a_o, a_i, b_o, b_i = names if names is not None else (None, None, None, None)
    taken = names_in_use(kernel)
    a_o = a_o or fresh_name(f"{var_a}_o", taken)
    a_i = a_i or fresh_name(f"{var_a}_i", taken)
    b_o = b_o or fresh_name(f"{var_b}_o", taken)
    b_i = b_i or fresh_name(f"{var_b}_i", taken)
    result = split(kernel, var_a, factor_a, a_o, a_i)
    result = split(result, var_b, factor_b, b_o, b_i)
    return reorder(result, [a_o, b_o, a_i, b_i])

