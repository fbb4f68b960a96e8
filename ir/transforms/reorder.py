"""Reorder the loops of a perfect nest, and fuse two perfectly nested loops into one.

`reorder` permutes loop headers and keeps the body. It is legal when every loop's bounds only use
variables of loops that stay outside it, no bound loads a buffer the body stores to (bounds are
evaluated a different number of times afterwards), and the iterations that touch one location run
in the same order as before (`ir.transforms.dependence.reorder_conflict`).

`fuse` turns `for i { for j { B } }` into one loop over i * j iterations with `i := f // Ej` and
`j := f % Ej`: the iterations keep their order, so it is legal whenever the inner bounds do not
depend on the outer loop (its extent must be the same in every outer iteration).
"""

from __future__ import annotations

from ir.loop_printer import format_expr
from ir.loop_simplify import free_vars, simplify
from ir.loops import Binary, Const, Expr, For, Kernel, Load, LoopKind, Stmt, Store, Var, walk
from ir.transforms.common import (TransformError, find_loop, fresh_name, names_in_use, perfect_nest,
                                  replace_loop, require_fresh, simplify_stmt, substitute)
from ir.transforms.dependence import reorder_conflict


def reorder(kernel: Kernel, order: list[str] | tuple[str, ...]) -> Kernel:
    """Reorder a perfect nest so that its loops run in `order` (outermost first).

    The loops named in `order` must be a perfect nest (each the whole body of the one before; any
    order may be given). Annotations stay with their loops, but a vectorized loop must stay the
    innermost. Raises TransformError with what it expected and what it found otherwise.

        for i in 0..4 {               for j in 0..8 {
          for j in 0..8 {      ->       for i in 0..4 {
            y[i, j] = x[i, j]             y[i, j] = x[i, j]
          }                             }
        }                             }
    """
    order = list(order)
    if len(order) < 2 or len(set(order)) != len(order):
        raise TransformError(f"expected at least two distinct loop variables but found {order}")
    found = {var: find_loop(kernel, var) for var in order}
    outermost = next((loop for loop in found.values()
                      if all(other is loop or _contains(loop, other) for other in found.values())), None)
    if outermost is None:
        raise TransformError(f"expected loops {order} to be nested in one another but found them in "
                             f"separate nests")
    band = perfect_nest(outermost, len(order))
    band_vars = [loop.var for loop in band]
    if set(band_vars) != set(order):
        raise TransformError(f"expected loops {order} to form a perfect nest but found the nest {band_vars}")
    if band_vars == order:
        return kernel
    by_var = {loop.var: loop for loop in band}
    _check_bounds(band, order)
    _check_vectorize(band, order)
    reason = reorder_conflict(band, order)
    if reason is not None:
        raise TransformError(f"expected the reorder {band_vars} -> {order} to keep the result but found "
                             f"that {reason}")

    def rebuild(_: For) -> Stmt:
        body = band[-1].body
        for var in reversed(order):
            loop = by_var[var]
            body = For(loop.var, loop.start, loop.extent, body, loop.kind, loop.step)
        return body

    return replace_loop(kernel, outermost.var, rebuild)


def _contains(outer: For, inner: For) -> bool:
    return any(node is inner for node in walk(outer.body))


def _check_bounds(band: list[For], order: list[str]) -> None:
    written = _stored_buffers(band[-1].body)
    for position, var in enumerate(order):
        loop = next(loop for loop in band if loop.var == var)
        inside = set(order[position:])
        for what, expr in (("start", loop.start), ("extent", loop.extent)):
            used = free_vars(expr) & inside
            if used:
                raise TransformError(f"expected the {what} of loop '{var}' to use only loops outside it but "
                                     f"found `{format_expr(expr)}` using {sorted(used)}")
            loads = {node.buffer for node in walk(expr) if isinstance(node, Load)} & written
            if loads:
                raise TransformError(f"expected the {what} of loop '{var}' not to load buffers the nest "
                                     f"stores to but found {sorted(loads)}")


def _check_vectorize(band: list[For], order: list[str]) -> None:
    for loop in band:
        if loop.kind is LoopKind.VECTORIZE and order[-1] != loop.var:
            raise TransformError(f"expected the vectorized loop '{loop.var}' to stay innermost but found "
                                 f"it at position {order.index(loop.var)} of {order}")


def _stored_buffers(body: Stmt) -> set[str]:
    return {node.buffer for node in walk(body) if isinstance(node, Store)}


def fuse(kernel: Kernel, outer_var: str, inner_var: str, fused: str | None = None) -> Kernel:
    """Collapse the perfect nest `for outer { for inner { B } }` into one loop `fused`.

    Both loops must be serial or both parallel (the fused loop keeps that kind), and the inner
    loop's bounds may not use the outer variable or load a buffer the body stores to. Raises
    TransformError with what it expected and what it found otherwise.

        for i in 0..4 {                for i_j in 0..32 {
          for j in 0..8 {        ->      y[i_j // 8, i_j % 8] = x[i_j // 8, i_j % 8]
            y[i, j] = x[i, j]          }
          }
        }
    """
    outer = find_loop(kernel, outer_var)
    nest = perfect_nest(outer, 2)
    inner = nest[1]
    if inner.var != inner_var:
        raise TransformError(f"expected loop '{inner_var}' directly inside loop '{outer_var}' but found "
                             f"loop '{inner.var}'")
    kinds = {outer.kind, inner.kind}
    if kinds not in ({LoopKind.SERIAL}, {LoopKind.PARALLEL}):
        raise TransformError(f"expected two serial or two parallel loops but found {outer.kind} and "
                             f"{inner.kind}")
    for what, expr in (("start", inner.start), ("extent", inner.extent)):
        if outer.var in free_vars(expr):
            raise TransformError(f"expected the {what} of loop '{inner_var}' not to use '{outer_var}' but "
                                 f"found `{format_expr(expr)}`")
    written = _stored_buffers(inner.body)
    # After fusion the starts and the inner extent are evaluated in every iteration.
    loads = {node.buffer for e in (outer.start, inner.start, inner.extent) for node in walk(e)
             if isinstance(node, Load)}
    if loads & written:
        raise TransformError(f"expected the starts and the inner extent not to load buffers the body "
                             f"stores to but found {sorted(loads & written)}")
    taken = names_in_use(kernel)
    name = require_fresh(fused, taken, "fused loop") if fused else fresh_name(f"{outer_var}_{inner_var}", taken)
    return replace_loop(kernel, outer_var, lambda loop: _fuse(loop, inner, name))


def _fuse(outer: For, inner: For, name: str) -> Stmt:
    inner_extent = _clamped(inner.extent)
    extent = simplify(Binary("mul", _clamped(outer.extent), inner_extent))
    position = Var(name)
    outer_value = Binary("add", outer.start, Binary("mul", Binary("floordiv", position, inner_extent),
                                                    Const(outer.step)))
    inner_value = Binary("add", inner.start, Binary("mul", Binary("mod", position, inner_extent),
                                                    Const(inner.step)))
    body = substitute(inner.body, {outer.var: simplify(outer_value), inner.var: simplify(inner_value)})
    return For(name, Const(0), extent, simplify_stmt(body), outer.kind)


def _clamped(extent: Expr) -> Expr:
    """A loop extent, negative values read as 0 (no iterations), as the fused extent needs."""
    if isinstance(extent, Const):
        return Const(max(extent.value, 0))
    return Binary("maximum", extent, Const(0))

