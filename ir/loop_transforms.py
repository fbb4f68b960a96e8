"""Loop transforms on the loop IR: checked rewrites `(kernel, ...) -> kernel` (STYLE.md habit 8).

Each transform checks that it applies and is legal before it rewrites, and raises `TransformError`
("expected ... but found ...") otherwise; none mutates its input. They live in `ir/transforms/`, one
family per module, each module saying why its rewrites preserve meaning:

- `split(kernel, var, factor, outer=, inner=, tail="guard"|"loop")`, `tile(kernel, a, b, fa, fb)`
- `reorder(kernel, vars)`, `fuse(kernel, outer, inner, fused=)`
- `unroll`, `unroll_fully`, `vectorize`, `parallelize` (annotations; the last two check that
  iterations write disjoint locations)
- `hoist_invariants(kernel)`
- helpers: `substitute(node, {var: expr})`, `find_loop(kernel, var)`, `loop_vars(kernel)`,
  `canonical(stmt)` (the parser's normal form)
"""

from __future__ import annotations

from ir.transforms.annotate import parallelize, unroll, unroll_fully, vectorize
from ir.transforms.common import TransformError, canonical, find_loop, loop_vars, substitute
from ir.transforms.hoist import hoist_invariants
from ir.transforms.reorder import fuse, reorder
from ir.transforms.split import split, tile

__all__ = ["TransformError", "canonical", "find_loop", "fuse", "hoist_invariants", "loop_vars", "parallelize",
           "reorder", "split", "substitute", "tile", "unroll", "unroll_fully", "vectorize"]
