"""The loop IR verifier: valid kernels and programs pass; each kind of mistake is reported, by name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ir.dtypes import DType
from ir.loop_eval import LoopEvalError, run_kernel
from ir.loop_parser import parse_kernel, parse_program
from ir.loop_printer import print_kernel
from ir.loop_verifier import LoopVerifyError, assert_valid_loops, verify_kernel, verify_program
from ir.loops import (Allocate, Binary, Buffer, Cast, Const, For, If, Kernel, KernelCall, Let, Load, LoopKind,
                      Scope, Select, Seq, Stmt, Store, Unary, Var, walk)

F32, I8, I32, I64, BOOL = DType.F32, DType.I8, DType.I32, DType.I64, DType.BOOL
i, j = Var("i"), Var("j")

ROWSUM = """\
kernel @rowsum(x: f32[3,7], y: f32[3]) writes(y) attrs(kind = "reduction") {
  for i in 0..3 parallel {
    local acc: f32[1]
    acc[0] = 0.0
    for k in 0..7 {
      acc[0] = acc[0] + x[i, k]
    }
    y[i] = acc[0]
  }
}"""

MATMUL = """\
kernel @matmul(a: f32[3,4], b: f32[4,5], c: f32[3,5]) writes(c) {
  for i in 0..3 {
    for j in 0..5 {
      c[i, j] = 0.0
    }
  }
  for ii in 0..3 {
    for jj in 0..5 {
      for k in 0..4 unroll {
        c[ii, jj] = c[ii, jj] + a[ii, k] * b[k, jj]
      }
    }
  }
}"""


def problems(text: str) -> list[str]:
    return verify_kernel(parse_kernel(text))


def body_problems(body: Stmt, params: tuple[Buffer, ...] | None = None,
                  writes: tuple[str, ...] = ("y",)) -> list[str]:
    if params is None:
        params = (Buffer("x", F32, (4, 8)), Buffer("y", F32, (4, 8)))
    return verify_kernel(Kernel("k", params, body, writes))


def nest(store: Store) -> For:
    return For("i", Const(0), Const(4), For("j", Const(0), Const(8), store))


@pytest.mark.parametrize("text", [ROWSUM, MATMUL])
def test_valid_kernels_have_no_problems(text: str) -> None:
    assert problems(text) == []
    assert_valid_loops(parse_kernel(text))


def test_messages_name_the_kernel_and_print_the_statement() -> None:
    found = body_problems(nest(Store("y", (i, j), Var("q", F32))))
    assert found == ["kernel 'k': variable 'q' is not defined here in `y[i, j] = q`"]


@pytest.mark.parametrize("store, message", [
    (Store("y", (i, j), Load("x", (i,), F32)), "'x' has rank 2 but is accessed with 1 index"),
    (Store("y", (i, j), Load("x", (i, Cast(I32, j)), F32)), "index 1 of 'x' (`cast<i32>(j)`) has type i32, expected i64"),
    (Store("y", (i, j), Load("x", (i, j), I32)), "load of f32 buffer 'x' has dtype i32"),
    (Store("y", (i, j), Const(1, I32)), "stores a i32 value into f32 buffer 'y'"),
    (Store("y", (i, j), Binary("add", Load("x", (i, j), F32), Const(1, I32))),
     "add operands have types f32 and i32 (`x[i, j] + 1:i32`)"),
    (Store("y", (i, j), Select(Const(1), Const(1.0, F32), Const(2.0, F32))), "select condition `1` has type i64"),
    (Store("y", (i, j), Select(Const(True, BOOL), Const(1.0, F32), Const(2, I32))),
     "select branches have types f32 and i32"),
    (Store("y", (i, j), Binary("lt", Load("x", (i, j), F32), Const(0.0, F32))), "stores a bool value into f32"),
    (Store("y", (i, j), Binary("logical_and", Const(1.0, F32), Const(1.0, F32))),
     "logical_and needs bool operands, found f32"),
    (Store("y", (i, j), Cast(F32, Unary("exp", Cast(I32, i)))), "exp needs a floating-point operand, found i32"),
    (Store("y", (i, j), Cast(F32, Binary("div", i, j))), "div needs floating-point operands, found i64"),
    (Store("y", (i, j), Cast(F32, Unary("neg", Const(True, BOOL)))), "neg is not defined on bool"),
    (Store("y", (i, j), Cast(F32, Binary("add", Const(True, BOOL), Const(True, BOOL)))), "add is not defined on bool"),
    (Store("y", (i, j), Unary("expo", Const(1.0, F32))), "unknown unary op 'expo'"),
    (Store("y", (i, j), Binary("plus", Const(1.0, F32), Const(1.0, F32))), "unknown binary op 'plus'"),
    (Store("y", (i, j), Cast(F32, Const(300, I8))), "constant 300 is not a i8 value"),
    (Store("y", (i, j), Cast(F32, Const(1.5, I32))), "constant 1.5 is not a i32 value"),
    (Store("y", (i, j), Cast(F32, Const(1, BOOL))), "constant 1 is not a bool value"),
    (Store("y", (i, j), Var("i", F32)), "variable 'i' is used as f32 but defined as i64"),
    (Store("z", (i, j), Const(1.0, F32)), "buffer 'z' is not a parameter or an enclosing local (buffers here: x, y)"),
    (Store("x", (i, j), Const(1.0, F32)), "stores to parameter 'x', which is not in writes(y)"),
])
def test_expression_and_store_problems(store: Store, message: str) -> None:
    found = body_problems(Seq((nest(store), nest(Store("y", (i, j), Const(0.0, F32))))))
    assert any(message in problem for problem in found), found


@pytest.mark.parametrize("text, message", [
    ("for i in 0..4 { y[i + 1, 0] = 1.0 }", "index 0 of 'y' (`i + 1`) ranges over [1, 4] but axis 0 has extent 4"),
    ("for i in 0..8 step 2 { y[0, i + 2] = 1.0 }", "index 1 of 'y' (`i + 2`) ranges over [2, 8] but axis 1"),
    ("for o in 0..3 { for n in 0..4 { y[0, o * 4 + n] = 1.0 } }", "`o * 4 + n`) ranges over [0, 11]"),
    ("for i in 0..4 { for j in 0..4 { y[i, j - i] = 1.0 } }", "index 1 of 'y' (`j - i`) ranges over [-3, 3]"),
    ("for j in 0..4 { if j < 2 { y[0, j + 8] = 1.0 } }", "index 1 of 'y' (`j + 8`) ranges over [8, 9]"),
    ("for j in 0..4 { if j + 1 < 8 { y[0, j - 1] = 1.0 } }", "(`j - 1`) ranges over [-1, 2]"),
    ("for j in 0..4 { y[0, (j + 4) // 2 + 5] = 1.0 }", "ranges over [7, 8] but axis 1 has extent 8"),
    ("for j in 0..4 { y[0, -1] = 1.0 }", "index 1 of 'y' (`-1`) ranges over [-1, -1]"),
])
def test_out_of_range_indices_are_found(text: str, message: str) -> None:
    found = problems(f"kernel @k(n: i64[1], y: f32[4,8]) writes(y) {{\n  {text}\n}}")
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize("text", [
    "for i in 0..4 { if i + 1 < 4 { y[i + 1, 0] = 1.0 } }",
    "for o in 0..3 { for n in 0..3 { if o * 3 + n < 8 { y[0, o * 3 + n] = 1.0 } } }",
    "for i in 0..+n[0] { y[0, i] = 1.0 }",
    "for i in 0..0 { y[0, i + 100] = 1.0 }",
    "for i in 0..4 { for j in i..+2 { y[0, j] = 1.0 } }",
    "for i in 0..4 { let m: i64 = i * 2 y[i, m] = 1.0 }",
    "for j in 0..12 { y[0, j % 8] = 1.0 }",
    "for j in 0..12 { if j < 8 { y[0, j] = 1.0 } else { y[0, j - 8] = 2.0 } }",
    "for j in 0..8 { if 1 < 0 { y[0, j + 8] = 1.0 } }",
])
def test_in_range_or_unknown_indices_are_not_reported(text: str) -> None:
    assert problems(f"kernel @k(n: i64[1], y: f32[4,8]) writes(y) {{\n  {text}\n}}") == []


@pytest.mark.parametrize("text, message", [
    # Found only away from the first and last iterations: j = 5 reaches the store.
    ("for j in 0..10 { if j == 5 { y[0, j + 4] = 1.0 } }", "(`j + 4`) ranges over [9, 9]"),
    ("for i in 0..4 { for k in 0..9 { if k == 5 { y[i - 1, 0] = 1.0 } } }", "(`i - 1`) ranges over [-1, 2]"),
    # A guard on a quotient clips the range of the same form; the store runs at t = 0.
    ("for t in 0..3 { if (t + 5) // 2 < 4 { y[(t + 5) // 2 + 1, 0] = 1.0 } }", "ranges over [3, 4]"),
    # A let that rebinds a guarded name is not bound by the guard.
    ("for i in 0..4 { let m: i64 = i if m < 2 { let m: i64 = i + 6 y[0, m + 2] = 1.0 } }",
     "(`m + 2`) ranges over"),
])
def test_out_of_range_indices_under_guards_are_found(text: str, message: str) -> None:
    found = problems(f"kernel @k(n: i64[1], y: f32[4,8]) writes(y) {{\n  {text}\n}}")
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize("text", [
    # Dead tails of guarded splits after fuse, split and unroll rewrote the guard (the hypothesis
    # falsifying example and a relative of it): the guard never holds there.
    "for t in 0..1 { if (t + 5) // 2 * 2 + (t + 5) % 2 < 4 { y[(t + 5) // 2 * 2 + (t + 5) % 2, 0] = 1.0 } }",
    "for t in 0..1 { if (t + 9) // 5 + 3 < 4 { y[(t + 9) // 5 + 3, 0] = 1.0 } }",
    # Never holds, though interval arithmetic cannot tell (j <= max(i - 1, j) always).
    "for i in 0..1 { for j in 0..2 { if logical_not(j <= max(i - 1, j)) { y[i - 1, 0] = 1.0 } } }",
    # Contradicting guards.
    "for j in 0..8 { if j < 2 { if j + 1 > 4 { y[0, j + 8] = 1.0 } } }",
    "for j in 0..8 { if j * 2 < 4 { if j * 2 > 6 { y[0, j + 8] = 1.0 } } }",
    # Runs only for some inputs (which the kernel may never be given).
    "for j in 0..4 { if n[0] > 100 { y[0, j + 8] = 1.0 } }",
    "for j in 0..+n[0] { y[0, j + 8] = 1.0 }",
])
def test_code_that_may_never_run_is_not_reported(text: str) -> None:
    assert problems(f"kernel @k(n: i64[1], y: f32[4,8]) writes(y) {{\n  {text}\n}}") == []


# The kernel the random transform test produced (split_guard i by 2, fuse, split_loop by 3) before
# simplify read the quotient and remainder pair back as its dividend: correct, as its tail only
# holds dead code, which the verifier used to report as out of range.
SPLIT_FUSE_SPLIT = """\
kernel @elementwise(x: f32[3,5], s: f32[1], y: f32[3,5]) writes(y) {
  for i_o_i_i_o in 0..1 {
    for i_o_i_i_i in 0..3 {
      for j in 0..5 {
        if (i_o_i_i_o * 3 + i_o_i_i_i) // 2 * 2 + (i_o_i_i_o * 3 + i_o_i_i_i) % 2 < 3 {
          y[(i_o_i_i_o * 3 + i_o_i_i_i) // 2 * 2 + (i_o_i_i_o * 3 + i_o_i_i_i) % 2, j] = exp(x[(i_o_i_i_o * 3 + i_o_i_i_i) // 2 * 2 + (i_o_i_i_o * 3 + i_o_i_i_i) % 2, j]) * s[0] + 1.0
        }
      }
    }
  }
  for i_o_i_i_tail in 0..1 {
    for j in 0..5 {
      if (i_o_i_i_tail + 3) // 2 * 2 + (i_o_i_i_tail + 3) % 2 < 3 {
        y[(i_o_i_i_tail + 3) // 2 * 2 + (i_o_i_i_tail + 3) % 2, j] = exp(x[(i_o_i_i_tail + 3) // 2 * 2 + (i_o_i_i_tail + 3) % 2, j]) * s[0] + 1.0
      }
    }
  }
}"""


def test_dead_tail_of_a_fused_guarded_split_is_valid() -> None:
    assert problems(SPLIT_FUSE_SPLIT) == []
    live_tail = SPLIT_FUSE_SPLIT.replace("(i_o_i_i_tail + 3) % 2 < 3 {", "(i_o_i_i_tail + 3) % 2 < 4 {")
    found = problems(live_tail)
    assert len(found) == 2 and all("ranges over [3, 3] but axis 0 has extent 3" in p for p in found), found


def _grow_index(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(Binary, st.sampled_from(["add", "sub", "maximum", "minimum"]), children, children),
        st.builds(lambda e, c: Binary("mul", e, Const(c)), children, st.integers(-3, 4)),
        st.builds(Binary, st.just("mul"), children, children),
        st.builds(Binary, st.sampled_from(["floordiv", "mod"]), children, st.integers(1, 4).map(Const)),
        st.builds(Unary, st.just("neg"), children))


INDEX_EXPR = st.recursive(st.one_of(st.sampled_from([i, j, Var("t")]), st.integers(-3, 6).map(Const)),
                          _grow_index, max_leaves=5)
CONDITION = st.recursive(
    st.builds(Binary, st.sampled_from(["lt", "le", "gt", "ge", "eq", "ne"]), INDEX_EXPR, INDEX_EXPR),
    lambda c: st.one_of(st.builds(Binary, st.sampled_from(["logical_and", "logical_or"]), c, c),
                        st.builds(Unary, st.just("logical_not"), c)), max_leaves=3)


ZERO = st.sampled_from([  # expressions that are always 0 but whose intervals are not [0, 0]
    Binary("sub", Binary("add", Binary("maximum", i, j), Binary("minimum", i, j)), Binary("add", i, j)),
    Binary("sub", Binary("mul", i, j), Binary("mul", j, i)),
    Binary("sub", Binary("minimum", i, j), Binary("minimum", j, i)),
])
BOUNDS = st.tuples(st.integers(-2, 2), st.integers(0, 4), st.integers(1, 2))  # start, count, step


@st.composite
def guarded_stores(draw: st.DrawFn) -> Kernel:
    """`for i { for j { let t = ... { if ... { if ... { y[index] = 1.0 } else { y[0] = 2.0 } } } } }`
    with random guards and guards that never hold, written (with a `ZERO` term) so that interval
    arithmetic cannot tell, as transforms write the guards of the tails of splits."""
    (i_start, i_count, i_step), (j_start, j_count) = draw(BOUNDS), draw(BOUNDS)[:2]
    index = Binary("add", draw(st.one_of(INDEX_EXPR, st.sampled_from([i, j]))), Const(draw(st.integers(-6, 8))))
    body: Stmt = Store("y", (index,), Const(1.0, F32))
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.booleans()):
            body = If(Binary("ge", Binary("add", j, draw(ZERO)), Const(j_start + j_count)), body)  # never holds
            continue
        cond = draw(CONDITION)
        body = If(cond, body) if draw(st.booleans()) else If(cond, Store("y", (Const(0),), Const(2.0, F32)), body)
    body = Let("t", draw(INDEX_EXPR.filter(lambda e: Var("t") not in walk(e))), body)
    loop_j = For("j", Const(j_start), Const(j_count), body)
    loop_i = For("i", Const(i_start), Const(i_count), loop_j, step=i_step)
    return Kernel("k", (Buffer("y", F32, (5,)),), Seq((Store("y", (Const(0),), Const(0.0, F32)), loop_i)), ("y",))


@settings(max_examples=60, deadline=None)
@given(guarded_stores())
def test_every_out_of_range_report_is_an_access_that_runs(kernel: Kernel) -> None:
    """No false reports: when the verifier says an index is out of range, running the kernel goes
    out of range (guards that never hold, tails of splits and dead branches are not reported)."""
    reports = [problem for problem in verify_kernel(kernel) if "ranges over" in problem]
    if not reports:
        return
    try:
        run_kernel(kernel, {"y": np.zeros(5, np.float32)})
    except LoopEvalError as error:
        assert "out of range" in str(error), error
        return
    pytest.fail(f"{reports} but every access is in range:\n{print_kernel(kernel)}")


def test_scoping_problems() -> None:
    text = """\
kernel @k(x: f32[4,8], y: f32[4,8]) writes(y) {
  for i in 0..4 {
    for i in 0..4 {
      let j: i64 = 1
      y[i, j] = 1.0
    }
    let s: f32 = 1.0
    let s: f32 = s + 1.0
    y[i, 0] = s
  }
}"""
    found = problems(text)
    assert found == ["kernel 'k': loop variable 'i' shadows an enclosing loop variable in `for i in 0..4`"]
    let_over_loop = For("j", Const(0), Const(8), Let("j", Const(1), Store("y", (j, j), Const(1.0, F32))))
    assert any("let 'j' shadows a loop variable" in p for p in body_problems(let_over_loop))
    for_over_let = Let("i", Const(1), For("i", Const(0), Const(1), Store("y", (i, i), Const(1.0, F32))))
    assert any("loop variable 'i' shadows an enclosing let variable" in p for p in body_problems(for_over_let))


def test_locals_are_scoped_local_buffers() -> None:
    tmp = Buffer("tmp", F32, (2,), scope=Scope.LOCAL)
    after_scope = Seq((Allocate(tmp, Store("tmp", (Const(0),), Const(1.0, F32))),
                       Store("y", (Const(0), Const(0)), Load("tmp", (Const(0),), F32))))
    assert any("buffer 'tmp' is not a parameter or an enclosing local" in p for p in body_problems(after_scope))
    global_scope = Allocate(Buffer("tmp", F32, (2,)), Store("y", (Const(0), Const(0)), Const(1.0, F32)))
    assert any("local 'tmp' has scope global" in p for p in body_problems(global_scope))
    named_like_param = Allocate(Buffer("x", F32, (2,), scope=Scope.LOCAL), Store("y", (Const(0), Const(0)),
                                                                             Const(1.0, F32)))
    assert any("local 'x' has the name of a parameter" in p for p in body_problems(named_like_param))


def test_loop_header_problems() -> None:
    store = Store("y", (Const(0), i), Const(1.0, F32))
    dynamic = Load("n", (Const(0),), I64)
    params = (Buffer("n", I64, (1,)), Buffer("y", F32, (4, 8)))
    assert any("a vectorize loop needs a constant extent, found `n[0]`" in p
               for p in body_problems(For("i", Const(0), dynamic, store, LoopKind.VECTORIZE), params))
    assert any("an unroll loop needs a constant extent" in p
               for p in body_problems(For("i", Const(0), dynamic, store, LoopKind.UNROLL), params))
    assert any("expected a positive integer step but found 0" in p
               for p in body_problems(For("i", Const(0), Const(4), store, step=0)))
    assert any("loop start has type f32, expected i64" in p
               for p in body_problems(For("i", Const(0.0, F32), Const(4), store)))


def test_writes_must_match_the_stores() -> None:
    params = (Buffer("x", F32, (4,)), Buffer("y", F32, (4,)), Buffer("e", F32, (0,)))
    body = For("i", Const(0), Const(4), Store("y", (i,), Load("x", (i,), F32)))
    assert verify_kernel(Kernel("k", params, body, ("y", "e"))) == []  # an empty output needs no store
    found = verify_kernel(Kernel("k", params, body, ("x", "y", "y", "q")))
    assert "kernel 'k': writes lists 'y' more than once" in found
    assert "kernel 'k': writes names 'q', which is not a parameter" in found
    assert "kernel 'k': writes names 'x' but the kernel never stores to it" in found


def test_names_attrs_and_params() -> None:
    params = (Buffer("and", F32, (1,)), Buffer("y", F32, (1,)), Buffer("y", F32, (1,)),
              Buffer("l", F32, (1,), scope=Scope.LOCAL), Buffer("s", F32, (2,), strides=(1, 1)))
    kernel = Kernel("bad name", params, Store("y", (Const(0),), Const(1.0, F32)), ("y",),
                    (("z", 1), ("a", [1, 2]), ("b", np.float64(0.5))))
    found = verify_kernel(kernel)
    expected = ["name 'bad name' is not a name the text form can carry",
                "parameter 'and': not a name the text form can carry",
                "parameter 'y' is declared twice",
                "parameter 'l' has scope local; parameters are global",
                "parameter 's': 2 strides for 1 dimensions",
                "attrs keys ['z', 'a', 'b'] must be sorted and unique",
                "attr 'a' holds a list, which the text form cannot carry",
                "attr 'b' holds a float64, which the text form cannot carry"]
    for fragment in expected:
        assert any(fragment in problem for problem in found), (fragment, found)


def test_assert_valid_loops_lists_every_problem_and_the_pass() -> None:
    kernel = Kernel("k", (Buffer("y", F32, (2,)),), Store("y", (Const(5),), Var("q", F32)), ("y",))
    with pytest.raises(LoopVerifyError) as caught:
        assert_valid_loops(kernel, after="split")
    error = caught.value
    assert len(error.problems) == 2
    assert str(error).startswith("error: after pass 'split': loop IR 'k' is invalid:\n")


# -- programs -------------------------------------------------------------------------------------

PROGRAM = """\
program @net {
  buffer x: f32[2,3] (input 0)
  buffer w: f32[3] (input 1)
  buffer t: f32[2,3]
  buffer y: f32[2,3] (output 0)

  kernel @scale(x: f32[2,3], w: f32[3], t: f32[2,3]) writes(t) {
    for i in 0..2 {
      for j in 0..3 {
        t[i, j] = x[i, j] * w[j]
      }
    }
  }

  kernel @relu(a: f32[2,3], out: f32[2,3]) writes(out) {
    for i in 0..2 {
      for j in 0..3 {
        out[i, j] = relu(a[i, j])
      }
    }
  }

  call @scale(x, w, t)
  call @relu(t, y)
}
"""


def test_valid_program() -> None:
    program = parse_program(PROGRAM)
    assert verify_program(program) == []
    assert_valid_loops(program)


@pytest.mark.parametrize("change, message", [
    ({"calls": []}, "output 'y' is never written"),
    ({"calls": ["relu-first"]}, "call 0 (`call @relu(t, y)`): reads 't' (parameter 'a') before any call writes it"),
    ({"calls": [("scale", ("x", "w"))]}, "expected 3 buffers for the parameters of 'scale' but found 2"),
    ({"calls": [("softmax", ("x",))]}, "there is no kernel 'softmax'"),
    ({"calls": [("scale", ("x", "w", "q"))]}, "'q' is not a buffer of the program"),
    ({"calls": [("scale", ("x", "x", "t"))]}, "parameter 'w' expects f32[3] but 'x' is f32[2, 3]"),
    ({"calls": [("scale", ("x", "w", "x"))]}, "writes program input 'x' (parameter 't')"),
    ({"calls": [("relu", ("y", "y"))]}, "'y' is passed for written parameter 'out' and also for ['a']"),
    ({"inputs": ["x", "w", "x"]}, "inputs ['x'] are listed more than once"),
    ({"outputs": ["z"]}, "output 'z' is not a buffer of the program"),
])
def test_program_problems(change: dict, message: str) -> None:
    program = parse_program(PROGRAM)
    calls = change.get("calls")
    if calls == ["relu-first"]:
        change = {"calls": [program.calls[1], program.calls[0]]}
    elif calls is not None:
        change = {"calls": [KernelCall(name, args) for name, args in calls]}
    found = verify_program(dataclasses.replace(program, **change))
    assert any(message in problem for problem in found), found


def test_program_buffers_and_strides() -> None:
    program = parse_program(PROGRAM)
    program.buffers["t"] = Buffer("t", F32, (2, 3), strides=(1, 2))
    program.buffers["w"] = Buffer("ww", F32, (3,))
    program.kernels["relu2"] = program.kernels["relu"]
    found = verify_program(program)
    assert any("parameter 't' expects strides [3, 1] but 't' has [1, 2]" in p for p in found), found
    assert "buffer 'ww' is listed under the name 'w'" in found
    assert "kernel 'relu' is listed under the name 'relu2'" in found


def test_program_reports_kernel_problems() -> None:
    program = parse_program(PROGRAM.replace("out[i, j] = relu(a[i, j])", "out[i, j + 1] = relu(a[i, j])"))
    assert verify_program(program) == [
        "kernel 'relu': index 1 of 'out' (`j + 1`) ranges over [1, 3] but axis 1 has extent 3 in "
        "`out[i, j + 1] = relu(a[i, j])`"]
