"""Loop annotations (unroll, vectorize, parallel) and full unrolling.

Annotations do not change what a loop computes when its iterations may run in any interleaving the
annotation allows: `unroll` replicates the body in order (always legal for a constant extent);
`vectorize` runs iterations as SIMD lanes, statement by statement, and `parallel` on different
cores, which is legal when no two iterations touch one location with a store
(`ir.transforms.dependence.parallel_conflict`). `unroll_fully` does the replication itself.
"""

from __future__ import annotations

import dataclasses

from ir.loop_printer import format_expr
from ir.loops import Binary, Const, For, Kernel, LoopKind, Seq, Stmt
from ir.loop_simplify import simplify
from ir.transforms.common import TransformError, find_loop, loops, replace_loop, simplify_stmt, substitute
from ir.transforms.dependence import parallel_conflict


def _constant_extent(loop: For, what: str) -> int:
    if not isinstance(loop.extent, Const) or isinstance(loop.extent.value, bool):
        raise TransformError(f"expected a constant extent to {what} loop '{loop.var}' but found "
                             f"`{format_expr(loop.extent)}`")
    return int(loop.extent.value)


def _mark(kernel: Kernel, loop_var: str, kind: LoopKind) -> Kernel:
    return replace_loop(kernel, loop_var, lambda loop: dataclasses.replace(loop, kind=kind))


def unroll(kernel: Kernel, loop_var: str) -> Kernel:
    """Mark the loop over `loop_var` for unrolling by the code generator (needs a constant extent).

        for k in 0..4 {             for k in 0..4 unroll {
          B                   ->      B
        }                           }
    """
    loop = find_loop(kernel, loop_var)
    _constant_extent(loop, "unroll")
    return _mark(kernel, loop_var, LoopKind.UNROLL)


def unroll_fully(kernel: Kernel, loop_var: str, max_iterations: int = 64) -> Kernel:
    """Replace the loop over `loop_var` by copies of its body with the variable replaced by constants.

    Needs a constant extent of at most `max_iterations`. The copies keep the names bound inside the
    body (sibling loops may then share a variable name).

        for k in 0..3 {             y[0] = x[0]
          y[k] = x[k]         ->    y[1] = x[1]
        }                           y[2] = x[2]
    """
    loop = find_loop(kernel, loop_var)
    extent = _constant_extent(loop, "unroll")
    if extent > max_iterations:
        raise TransformError(f"expected at most {max_iterations} iterations to unroll fully but found "
                             f"{extent} in loop '{loop_var}'")

    def replicate(target: For) -> Stmt:
        copies = []
        for iteration in range(max(extent, 0)):
            value = simplify(Binary("add", target.start, Const(iteration * target.step)))
            copies.append(simplify_stmt(substitute(target.body, {target.var: value})))
        return Seq(tuple(copies))

    return replace_loop(kernel, loop_var, replicate)


def vectorize(kernel: Kernel, loop_var: str) -> Kernel:
    """Mark the loop over `loop_var` to run as SIMD lanes (its extent is the vector width).

    Needs a constant extent, no loop inside it, and iterations that write disjoint locations.

        for v in 0..8 {                 for v in 0..8 vectorize {
          y[i, v] = x[i, v] * 2.0  ->     y[i, v] = x[i, v] * 2.0
        }                               }
    """
    loop = find_loop(kernel, loop_var)
    _constant_extent(loop, "vectorize")
    inner = [other.var for other in loops(loop.body)]
    if inner:
        raise TransformError(f"expected loop '{loop_var}' to be innermost to vectorize it but found loops "
                             f"{inner} inside it")
    _require_independent(loop, "vectorize")
    return _mark(kernel, loop_var, LoopKind.VECTORIZE)


def parallelize(kernel: Kernel, loop_var: str) -> Kernel:
    """Mark the loop over `loop_var` to run its iterations on different cores.

    Needs iterations that write disjoint locations (a store whose index does not depend on the loop
    variable, such as a reduction into one accumulator, is refused).

        for i in 0..4 {                 for i in 0..4 parallel {
          y[i] = x[i] + 1.0      ->       y[i] = x[i] + 1.0
        }                               }
    """
    loop = find_loop(kernel, loop_var)
    if loop.kind is LoopKind.VECTORIZE:
        raise TransformError(f"expected a serial loop to parallelize but found '{loop_var}' vectorized")
    _require_independent(loop, "parallelize")
    return _mark(kernel, loop_var, LoopKind.PARALLEL)


def _require_independent(loop: For, what: str) -> None:
    reason = parallel_conflict(loop)
    if reason is not None:
        raise TransformError(f"expected the iterations of '{loop.var}' to write disjoint locations to {what} "
                             f"it but found that {reason}")
