"""Loop transforms on the loop IR, one family per module; `ir.loop_transforms` re-exports them all.

common: TransformError, substitute, find_loop, loop_vars, canonical form. dependence: which
iterations may touch the same memory. split: split and tile. reorder: reorder and fuse. annotate:
unroll, unroll_fully, vectorize, parallelize. hoist: hoist_invariants.
"""
