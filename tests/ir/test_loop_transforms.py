"""Loop transforms preserve meaning (run before and after with ir.loop_eval), verify, and refuse clearly.

Every transformed kernel is run on the same random inputs as the original and must produce
bit-identical buffers: the transforms here keep the order of the operations that reach any one
location, so not even rounding may change.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ir.dtypes import DType
from ir.loop_eval import run_kernel
from ir.loop_parser import parse_kernel
from ir.loop_printer import print_kernel
from ir.loop_verifier import verify_kernel
from ir.loop_transforms import (TransformError, canonical, find_loop, fuse, hoist_invariants, loop_vars,
                                parallelize, reorder, split, substitute, tile, unroll, unroll_fully, vectorize)
from ir.loops import Binary, Const, For, Kernel, Let, LoopKind, Seq, Store, Var

KERNELS = {
    "elementwise": """\
kernel @elementwise(x: f32[3,5], s: f32[1], y: f32[3,5]) writes(y) {
  for i in 0..3 {
    for j in 0..5 {
      y[i, j] = exp(x[i, j]) * s[0] + 1.0
    }
  }
}""",
    "rowsum": """\
kernel @rowsum(x: f32[3,7], scale: f32[1], y: f32[3]) writes(y) {
  for i in 0..3 {
    local acc: f32[1]
    acc[0] = 0.0
    for k in 0..7 {
      acc[0] = acc[0] + x[i, k] * scale[0]
    }
    y[i] = acc[0]
  }
}""",
    "matmul": """\
kernel @matmul(a: f32[3,4], b: f32[4,5], c: f32[3,5]) writes(c) {
  for i in 0..3 {
    for j in 0..5 {
      c[i, j] = 0.0
    }
  }
  for ii in 0..3 {
    for jj in 0..5 {
      for k in 0..4 {
        c[ii, jj] = c[ii, jj] + a[ii, k] * b[k, jj]
      }
    }
  }
}""",
    "odd": """\
kernel @odd(x: f32[7,6], n: i64[1], y: f32[7,6]) writes(y) {
  for i in 0..7 {
    for j in 0..+n[0] {
      y[i, j] = x[i, j] * 2.0 - x[i, 5]
    }
  }
  for r in 1..7 step 2 {
    y[r, 5] = x[r, 0] + x[r, 1]
  }
}""",
}


def kernel(name: str) -> Kernel:
    return parse_kernel(KERNELS[name])


def run(k: Kernel, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for param in k.params:
        if param.dtype is DType.I64:
            arrays[param.name] = np.full(param.shape, 5, dtype=np.int64)  # the dynamic extent n[0]
        else:
            arrays[param.name] = rng.standard_normal(param.shape).astype(param.dtype.numpy)
    run_kernel(k, arrays)
    return arrays


def assert_same_meaning(before: Kernel, after: Kernel, seeds: tuple[int, ...] = (0, 1)) -> None:
    assert verify_kernel(after) == [], print_kernel(after)
    for seed in seeds:
        expected, actual = run(before, seed), run(after, seed)
        for name in expected:
            assert np.array_equal(expected[name], actual[name], equal_nan=True), (name, print_kernel(after))


SINGLE = [
    ("elementwise", lambda k: split(k, "j", 2)),
    ("elementwise", lambda k: split(k, "j", 2, tail="loop")),
    ("elementwise", lambda k: split(k, "i", 3, outer="io", inner="ii")),
    ("elementwise", lambda k: split(k, "j", 8)),
    ("elementwise", lambda k: tile(k, "i", "j", 2, 2)),
    ("elementwise", lambda k: reorder(k, ["j", "i"])),
    ("elementwise", lambda k: fuse(k, "i", "j")),
    ("elementwise", lambda k: unroll(k, "j")),
    ("elementwise", lambda k: unroll_fully(k, "i")),
    ("elementwise", lambda k: vectorize(k, "j")),
    ("elementwise", lambda k: parallelize(k, "i")),
    ("elementwise", lambda k: parallelize(k, "j")),
    ("elementwise", hoist_invariants),
    ("elementwise", lambda k: parallelize(fuse(k, "i", "j"), "i_j")),
    ("rowsum", lambda k: split(k, "k", 3)),
    ("rowsum", lambda k: split(k, "k", 2, tail="loop")),
    ("rowsum", lambda k: unroll_fully(k, "k")),
    ("rowsum", lambda k: parallelize(k, "i")),
    ("rowsum", hoist_invariants),
    ("matmul", lambda k: reorder(k, ["k", "ii", "jj"])),
    ("matmul", lambda k: reorder(k, ["jj", "k", "ii"])),
    ("matmul", lambda k: tile(k, "ii", "jj", 2, 3)),
    ("matmul", lambda k: split(k, "k", 3, tail="loop")),
    ("matmul", lambda k: fuse(k, "ii", "jj")),
    ("matmul", lambda k: fuse(k, "i", "j")),
    ("matmul", lambda k: parallelize(k, "jj")),
    ("matmul", lambda k: parallelize(fuse(k, "ii", "jj"), "ii_jj")),
    ("matmul", lambda k: unroll_fully(k, "k")),
    ("matmul", lambda k: hoist_invariants(reorder(k, ["ii", "k", "jj"]))),
    ("odd", lambda k: split(k, "j", 2)),
    ("odd", lambda k: split(k, "j", 2, tail="loop")),
    ("odd", lambda k: split(k, "i", 3)),
    ("odd", lambda k: split(k, "r", 2)),
    ("odd", lambda k: split(k, "r", 2, tail="loop")),
    ("odd", lambda k: fuse(k, "i", "j")),
    ("odd", lambda k: unroll_fully(k, "r")),
    ("odd", lambda k: parallelize(k, "i")),
    ("odd", lambda k: parallelize(k, "r")),
    ("odd", hoist_invariants),
]


@pytest.mark.parametrize("name, transform", SINGLE)
def test_single_transform_keeps_meaning(name: str, transform) -> None:
    before = kernel(name)
    after = transform(before)
    assert after != before
    assert_same_meaning(before, after)


def test_split_with_guard_text() -> None:
    k = parse_kernel("kernel @k(x: f32[10], y: f32[10]) writes(y) {\n  for i in 0..10 {\n    y[i] = x[i]\n  }\n}")
    assert print_kernel(split(k, "i", 4)) == """\
kernel @k(x: f32[10], y: f32[10]) writes(y) {
  for i_o in 0..3 {
    for i_i in 0..4 {
      if i_o * 4 + i_i < 10 {
        y[i_o * 4 + i_i] = x[i_o * 4 + i_i]
      }
    }
  }
}"""
    assert print_kernel(split(k, "i", 4, tail="loop")) == """\
kernel @k(x: f32[10], y: f32[10]) writes(y) {
  for i_o in 0..2 {
    for i_i in 0..4 {
      y[i_o * 4 + i_i] = x[i_o * 4 + i_i]
    }
  }
  for i_tail in 0..2 {
    y[i_tail + 8] = x[i_tail + 8]
  }
}"""


def test_split_keeps_annotations_and_binds_loaded_extents_once() -> None:
    text = ("kernel @k(n: i64[1], y: f32[8]) writes(y) {\n  for i in 0..+n[0] parallel {\n    y[i] = 1.0\n  }\n"
            "  for v in 0..8 vectorize {\n    y[v] = 2.0\n  }\n}")
    result = split(split(parse_kernel(text), "i", 4), "v", 4)
    printed = print_kernel(result)
    assert "let i_extent: i64 = n[0]" in printed
    assert "for i_o in 0..+((max(i_extent, 0) + 3) // 4) parallel {" in printed
    assert "for v_i in 0..4 vectorize {" in printed
    assert find_loop(result, "v_o").kind is LoopKind.SERIAL


def test_tile_text() -> None:
    k = parse_kernel("kernel @t(x: f32[6,8], y: f32[8,6]) writes(y) {\n  for i in 0..8 {\n    for j in 0..6 {\n"
                     "      y[i, j] = x[j, i]\n    }\n  }\n}")
    tiled = tile(k, "i", "j", 4, 2)
    assert loop_vars(tiled) == ["i_o", "j_o", "i_i", "j_i"]
    assert "y[i_o * 4 + i_i, j_o * 2 + j_i] = x[j_o * 2 + j_i, i_o * 4 + i_i]" in print_kernel(tiled)
    assert_same_meaning(k, tiled)


def test_hoist_text() -> None:
    hoisted = hoist_invariants(kernel("elementwise"))
    assert print_kernel(hoisted) == """\
kernel @elementwise(x: f32[3,5], s: f32[1], y: f32[3,5]) writes(y) {
  let inv: f32 = s[0]
  for i in 0..3 {
    for j in 0..5 {
      y[i, j] = exp(x[i, j]) * inv + 1.0
    }
  }
}"""


def test_hoist_moves_invariant_computation_through_several_loops() -> None:
    text = """\
kernel @k(x: f32[2,3], w: f32[3], b: f32[2], y: f32[2,3]) writes(y) {
  for i in 0..2 {
    for j in 0..3 {
      y[i, j] = x[i, j] * exp(b[i]) + tanh(w[1] * 2.0)
    }
  }
}"""
    before = parse_kernel(text)
    after = hoist_invariants(before)
    assert print_kernel(after) == """\
kernel @k(x: f32[2,3], w: f32[3], b: f32[2], y: f32[2,3]) writes(y) {
  let inv_2: f32 = tanh(w[1] * 2.0)
  for i in 0..2 {
    let inv: f32 = exp(b[i])
    for j in 0..3 {
      y[i, j] = x[i, j] * inv + inv_2
    }
  }
}"""
    assert_same_meaning(before, after)


def test_hoist_never_moves_loads_of_written_buffers_or_unsafe_loads() -> None:
    text = """\
kernel @k(x: f32[6], n: i64[1], y: f32[6]) writes(y) {
  for i in 0..4 {
    y[0] = y[0] + x[i] * x[0]
  }
  for j in 0..+n[0] {
    y[j] = x[3]
  }
  for m in 0..4 {
    if m > 1 {
      y[m] = x[2] + 1.0
    }
  }
}"""
    before = parse_kernel(text)
    printed = print_kernel(hoist_invariants(before))
    assert "let inv: f32 = x[0]" in printed
    assert "y[0] = y[0] + x[i] * inv" in printed
    assert "y[j] = x[3]" in printed  # the loop may run zero times: x[3] might not be loaded at all
    assert "y[m] = x[2] + 1.0" in printed  # only loaded when m > 1
    assert printed.count("let ") == 1
    assert_same_meaning(before, hoist_invariants(before))


def test_hoist_leaves_a_kernel_without_invariants_alone() -> None:
    k = kernel("rowsum")
    assert hoist_invariants(hoist_invariants(k)) == hoist_invariants(k)
    assert hoist_invariants(parse_kernel(
        "kernel @k(x: f32[4], y: f32[4]) writes(y) {\n  for i in 0..4 {\n    y[i] = x[i]\n  }\n}")) is not None


def test_unroll_fully_text() -> None:
    k = parse_kernel("kernel @k(x: f32[6], y: f32[6]) writes(y) {\n  for i in 1..6 step 2 {\n    y[i] = x[i - 1]\n"
                     "  }\n}")
    assert print_kernel(unroll_fully(k, "i")) == """\
kernel @k(x: f32[6], y: f32[6]) writes(y) {
  y[1] = x[0]
  y[3] = x[2]
  y[5] = x[4]
}"""


def test_fuse_text() -> None:
    fused = fuse(kernel("elementwise"), "i", "j", fused="f")
    assert "for f in 0..15 {" in print_kernel(fused)
    assert "y[f // 5, f % 5] = exp(x[f // 5, f % 5]) * s[0] + 1.0" in print_kernel(fused)


# -- refusals -------------------------------------------------------------------------------------

REDUCE2 = """\
kernel @r(x: f32[2,3,4], y: f32[2]) writes(y) {
  for i in 0..2 {
    for k in 0..3 {
      for l in 0..4 {
        y[i] = y[i] + x[i, k, l]
      }
    }
  }
}"""

STENCIL = """\
kernel @s(y: f32[4,5]) writes(y) {
  for i in 0..4 {
    for j in 1..5 {
      y[i, j] = y[i, j - 1] + 1.0
    }
  }
}"""

TRIANGLE = """\
kernel @t(y: f32[4,4]) writes(y) {
  for i in 0..4 {
    for j in 0..+(i + 1) {
      y[i, j] = 1.0
    }
  }
}"""

DIAGONAL_SUM = """\
kernel @d(x: f32[3,3], y: f32[5]) writes(y) {
  for i in 0..3 {
    for j in 0..3 {
      y[i + j] = y[i + j] + x[i, j]
    }
  }
}"""


@pytest.mark.parametrize("text, transform, message", [
    (KERNELS["rowsum"], lambda k: reorder(k, ["k", "i"]),
     "expected a loop directly inside loop 'i' (a perfect nest) but found `local acc: f32[1] ...`"),
    (KERNELS["matmul"], lambda k: reorder(k, ["i", "ii"]), "to be nested in one another but found them in separate"),
    (KERNELS["matmul"], lambda k: reorder(k, ["ii", "k"]), "expected loops ['ii', 'k'] to form a perfect nest but "
                                                           "found the nest ['ii', 'jj']"),
    (KERNELS["matmul"], lambda k: reorder(k, ["q", "k"]), "expected exactly one loop over 'q' in kernel 'matmul' but "
                                                          "found 0"),
    (REDUCE2, lambda k: reorder(k, ["i", "l", "k"]), "iterations of ['k', 'l'] meet at `y[i]` and would run in a "
                                                     "different order"),
    (STENCIL, lambda k: reorder(k, ["j", "i"]), "'y' is stored at `y[i, j]` and loaded at `y[i, j - 1]`"),
    (TRIANGLE, lambda k: reorder(k, ["j", "i"]), "expected the extent of loop 'j' to use only loops outside it but "
                                                 "found `i + 1` using ['i']"),
    (DIAGONAL_SUM, lambda k: reorder(k, ["j", "i"]), "index `i + j` may take one value for two choices"),
    (KERNELS["rowsum"], lambda k: parallelize(k, "k"), "every iteration of 'k' may write the same location `acc[0]`"),
    (STENCIL, lambda k: parallelize(k, "j"), "'y' is stored at `y[i, j]` and loaded at `y[i, j - 1]`"),
    (DIAGONAL_SUM, lambda k: parallelize(k, "i"), "cannot tell the locations of `y[i + j]` apart"),
    (KERNELS["matmul"], lambda k: vectorize(k, "jj"), "expected loop 'jj' to be innermost to vectorize it but found "
                                                      "loops ['k'] inside it"),
    (KERNELS["matmul"], lambda k: vectorize(k, "k"), "every iteration of 'k' may write the same location `c[ii, jj]`"),
    (KERNELS["odd"], lambda k: vectorize(k, "j"), "expected a constant extent to vectorize loop 'j' but found `n[0]`"),
    (KERNELS["odd"], lambda k: unroll(k, "j"), "expected a constant extent to unroll loop 'j' but found `n[0]`"),
    (KERNELS["rowsum"], lambda k: unroll_fully(k, "k", max_iterations=4),
     "expected at most 4 iterations to unroll fully but found 7"),
    (KERNELS["rowsum"], lambda k: fuse(k, "i", "k"), "(a perfect nest) but found `local acc: f32[1] ...`"),
    (KERNELS["matmul"], lambda k: fuse(k, "ii", "k"), "expected loop 'k' directly inside loop 'ii' but found loop 'jj'"),
    (TRIANGLE, lambda k: fuse(k, "i", "j"), "expected the extent of loop 'j' not to use 'i' but found `i + 1`"),
    (KERNELS["elementwise"], lambda k: fuse(vectorize(k, "j"), "i", "j"),
     "expected two serial or two parallel loops but found serial and vectorize"),
    (KERNELS["matmul"], lambda k: tile(k, "ii", "k", 2, 2), "expected loop 'k' directly inside loop 'ii' but found "
                                                            "loop 'jj'"),
    (KERNELS["elementwise"], lambda k: split(k, "j", 0), "expected a split factor >= 1 but found 0"),
    (KERNELS["elementwise"], lambda k: split(k, "j", 2, tail="mask"), "expected tail='guard' or tail='loop' but "
                                                                     "found 'mask'"),
    (KERNELS["elementwise"], lambda k: split(k, "j", 2, outer="i"), "expected a fresh name for the outer loop but "
                                                                     "found 'i' already in use"),
    (KERNELS["elementwise"], lambda k: reorder(vectorize(k, "j"), ["j", "i"]),
     "expected the vectorized loop 'j' to stay innermost"),
])
def test_transforms_refuse_with_expected_and_found(text: str, transform, message: str) -> None:
    with pytest.raises(TransformError) as caught:
        transform(parse_kernel(text))
    assert message in str(caught.value)
    assert "expected" in str(caught.value) and "found" in str(caught.value)


def test_legal_reorders_of_reductions() -> None:
    before = parse_kernel(REDUCE2)
    for order in (["k", "i", "l"], ["k", "l", "i"], ["i", "k", "l"]):
        assert_same_meaning(before, reorder(before, order))


def test_transforms_do_not_change_their_input() -> None:
    k = kernel("matmul")
    text = print_kernel(k)
    tile(k, "ii", "jj", 2, 2)
    hoist_invariants(k)
    assert print_kernel(k) == text


# -- helpers --------------------------------------------------------------------------------------


def test_substitute_respects_scopes_and_refuses_capture() -> None:
    i, j = Var("i"), Var("j")
    body = Seq((Store("y", (i,), Const(1.0, DType.F32)),
                For("i", Const(0), i, Store("y", (i,), Const(2.0, DType.F32)))))
    result = substitute(body, {"i": Binary("add", j, Const(1))})
    assert result.stmts[0].indices == (Binary("add", j, Const(1)),)
    assert result.stmts[1].extent == Binary("add", j, Const(1))  # the header is outside the loop's scope
    assert result.stmts[1].body.indices == (i,)  # the loop rebinds i
    capture = For("j", Const(0), Const(2), Store("y", (i,), Const(1.0, DType.F32)))
    with pytest.raises(TransformError, match="would capture"):
        substitute(capture, {i: j})
    with pytest.raises(TransformError, match="expected a i64 expression for 'i' but found f32"):
        substitute(i, {"i": Const(1.0, DType.F32)})


def test_find_loop_and_loop_vars() -> None:
    k = kernel("matmul")
    assert loop_vars(k) == ["i", "j", "ii", "jj", "k"]
    assert find_loop(k, "jj").body == find_loop(k, "k")
    twice = unroll_fully(k, "i")
    assert loop_vars(twice).count("j") == 3
    with pytest.raises(TransformError, match="expected exactly one loop over 'j' in kernel 'matmul' but found 3"):
        find_loop(twice, "j")


def test_canonical_absorbs_only_when_meaning_is_kept() -> None:
    y0 = Store("y", (Const(0),), Var("t", DType.F32))
    let = Let("t", Const(1.0, DType.F32), y0)
    assert canonical(Seq((let, Store("y", (Const(1),), Const(2.0, DType.F32))))) == Let(
        "t", Const(1.0, DType.F32), Seq((y0, Store("y", (Const(1),), Const(2.0, DType.F32)))))
    uses_outer_t = Seq((let, y0))
    assert canonical(uses_outer_t) == uses_outer_t
    assert canonical(Seq((Seq((y0,)), Seq(())))) == y0


# -- random sequences -----------------------------------------------------------------------------

STEP = st.tuples(st.sampled_from(["split_guard", "split_loop", "tile", "reorder", "fuse", "unroll", "unroll_fully",
                                  "vectorize", "parallelize", "hoist"]),
                 st.integers(0, 20), st.integers(0, 20), st.integers(1, 4))


def apply_step(k: Kernel, step: tuple[str, int, int, int]) -> Kernel:
    name, a, b, factor = step
    names = loop_vars(k)
    if not names:  # everything was unrolled
        return k
    first, second = names[a % len(names)], names[b % len(names)]
    if name == "split_guard":
        return split(k, first, factor)
    if name == "split_loop":
        return split(k, first, factor, tail="loop")
    if name == "tile":
        inner = find_loop(k, first).body
        return tile(k, first, inner.var if isinstance(inner, For) else second, factor, factor + 1)
    if name == "reorder":
        inner = find_loop(k, first).body
        return reorder(k, [inner.var if isinstance(inner, For) else second, first])
    if name == "fuse":
        inner = find_loop(k, first).body
        return fuse(k, first, inner.var if isinstance(inner, For) else second)
    if name == "unroll":
        return unroll(k, first)
    if name == "unroll_fully":
        return unroll_fully(k, first, max_iterations=8)
    if name == "vectorize":
        return vectorize(k, first)
    if name == "parallelize":
        return parallelize(k, first)
    return hoist_invariants(k)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(KERNELS)), st.lists(STEP, min_size=1, max_size=4))
def test_random_transform_sequences_keep_meaning(name: str, steps: list) -> None:
    before = kernel(name)
    after = before
    for step in steps:
        try:
            after = apply_step(after, step)
        except TransformError:
            continue
        assert verify_kernel(after) == [], print_kernel(after)
    assert_same_meaning(before, after, seeds=(0,))


@pytest.mark.parametrize("name, steps", [
    # The first falsifying example: the tail of split_loop holds only dead iterations of the guard
    # from split_guard, written through the fuse as `(t + 3) // 2 * 2 + (t + 3) % 2`.
    ("elementwise", [("split_guard", 0, 0, 2), ("fuse", 0, 0, 1), ("split_loop", 0, 0, 3)]),
    # The same with a guard that stays non-affine (`(t + 9) // 5 + 2 < 3` once i_o is unrolled).
    ("elementwise", [("split_guard", 0, 0, 2), ("fuse", 1, 0, 1), ("split_loop", 1, 0, 3),
                     ("unroll_fully", 0, 0, 1)]),
    # Unrolled copies under data-dependent guards, for iterations valid inputs never reach.
    ("odd", [("split_guard", 1, 0, 2), ("split_guard", 1, 0, 2), ("split_guard", 1, 0, 3),
             ("split_guard", 0, 0, 1), ("unroll_fully", 10, 0, 1)]),
])
def test_transform_sequences_found_by_hypothesis(name: str, steps: list) -> None:
    before = kernel(name)
    after = before
    for step in steps:
        after = apply_step(after, step)
    assert_same_meaning(before, after)


def test_fusing_a_split_gives_back_the_split_variable() -> None:
    after = fuse(split(kernel("elementwise"), "i", 2), "i_o", "i_i")
    assert "if i_o_i_i < 3 {\n        y[i_o_i_i, j] =" in print_kernel(after)


def test_split_guard_stays_above_loops_whose_bounds_depend_on_the_split_variable() -> None:
    before = parse_kernel(TRIANGLE)
    after = split(before, "i", 3)
    assert "    for i_i in 0..3 {\n      if i_o * 3 + i_i < 4 {\n        for j in 0..+(i_o * 3 + i_i + 1) {" in \
        print_kernel(after)
    assert_same_meaning(before, after)
