"""Loop IR text -> loop IR: print/parse round trips on hand-built kernels and programs, and errors."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest

from ir.dtypes import DType
from ir.loop_parser import LoopParseError, parse_kernel, parse_program
from ir.loop_printer import print_kernel, print_program
from ir.loop_verifier import verify_kernel, verify_program
from ir.loops import (INDEX, UNARY_OPS, Allocate, Binary, Buffer, Cast, Const, For, If, Kernel, KernelCall, Let,
                      Load, LoopKind, LoopProgram, Scope, Select, Seq, Store, Unary, Var)
from ir.transforms.common import canonical

F32, F64, F16, BF16, I8, I32, I64, BOOL = (DType.F32, DType.F64, DType.F16, DType.BF16, DType.I8, DType.I32,
                                           DType.I64, DType.BOOL)
i, j, v, k = Var("i"), Var("j"), Var("v"), Var("k")


def c(value: int | float | bool, dtype: DType = INDEX) -> Const:
    return Const(value, dtype)


def b(op: str, left, right) -> Binary:
    return Binary(op, left, right)


def every_node_kernel() -> Kernel:
    """Every statement and expression node, loop kind, typed constants, strides, lets and locals."""
    x = Buffer("x", F32, (4, 8))
    xt = Buffer("xt", F32, (8, 4), strides=(1, 8))
    idx = Buffer("idx", I64, (3,))
    half = Buffer("half", F16, (2, 2), strides=(2, 1))
    flags = Buffer("flags", BOOL, (4,))
    y = Buffer("y", F32, (4, 8))
    acc = Buffer("acc", F64, (2,), scope=Scope.LOCAL)
    tmp = Buffer("tmp", BF16, (3, 2), strides=(1, 3), scope=Scope.LOCAL)
    xij = Load("x", (i, j), F32)
    unary = tuple(Store("y", (i, j), Unary(op, xij)) for op in sorted(UNARY_OPS) if op != "logical_not")
    precedence = b("sub", b("sub", xij, b("sub", Load("xt", (j, i), F32), c(1.5, F32))),
                   b("mul", b("add", xij, c(2.0, F32)), b("div", xij, b("mul", xij, c(-3.0, F32)))))
    index_math = b("add", b("mod", b("floordiv", b("mul", i, c(6)), c(4)), c(4)), b("sub", c(0), c(-2)))
    logic = b("logical_or", b("logical_and", Load("flags", (i,), BOOL), b("lt", i, c(3))),
              Unary("logical_not", b("ge", b("le", j, c(4)), b("gt", i, c(0)))))
    compare_chain = b("eq", b("ne", i, j), b("lt", i, j))
    calls = b("pow", b("maximum", xij, c(0.0, F32)), b("minimum", xij, c(math.inf, F32)))
    typed = Seq((
        Store("half", (c(0), c(1)), Cast(F16, b("add", Cast(F32, c(7, I8)), Cast(F32, c(-7, I32))))),
        Store("half", (c(1), c(0)), b("add", c(1.0, F16), c(-0.5, F16))),
        Store("half", (c(1), c(1)), Select(b("eq", c(True, BOOL), c(False, BOOL)), c(math.nan, F16),
                                           c(-math.inf, F16))),
        Store("tmp", (c(2), c(1)), Cast(BF16, c(1e-300, F64))),
        Store("acc", (c(1),), b("mul", c(1.5e300, F64), c(-0.0, F64))),
        Store("idx", (c(2),), b("add", c(2 ** 40), c(-(2 ** 40)))),
    ))
    inner = For("v", c(0), c(4), Store("y", (i, b("add", j, v)), b("mul", Load("x", (i, b("add", j, v)), F32),
                                                                   c(0.5, F32))), LoopKind.VECTORIZE)
    p, s_var, n = Var("p", BOOL), Var("s", F32), Var("n")
    branches = Seq((If(p, Store("y", (i, j), s_var), Store("y", (i, j), Select(p, c(1.0, F32), s_var))),
                    If(b("lt", n, c(3)), Store("idx", (n,), b("add", n, c(1))))))
    lets = Let("s", b("add", xij, c(1.0, F32)),
               Let("n", Load("idx", (c(0),), I64), Let("p", b("gt", s_var, c(0.0, F32)), branches)))
    locals_ = Allocate(acc, Seq((
        Store("acc", (c(0),), c(0.0, F64)),
        Allocate(tmp, Seq((Store("tmp", (c(0), c(0)), c(1.0, BF16)),
                           Store("acc", (c(0),), Cast(F64, Load("tmp", (c(0), c(0)), BF16))), *typed.stmts))),
    )))
    body = Seq((
        For("i", c(0), c(4), Seq((
            For("j", c(0), c(6), Seq((*unary, Store("y", (i, j), precedence),
                                      Store("idx", (c(1),), index_math), Store("flags", (i,), logic),
                                      Store("flags", (i,), compare_chain), Store("y", (i, j), calls),
                                      lets))),
            For("j", c(0), c(2), inner, LoopKind.SERIAL, step=4),
        )), LoopKind.PARALLEL),
        For("k", c(-1), c(3), Store("y", (b("add", k, c(1)), c(0)), c(2.0, F32)), LoopKind.UNROLL),
        For("i", c(0), Load("idx", (c(0),), I64), Store("y", (i, c(0)), c(1.0, F32)), step=2),
        For("i", b("add", c(1), Load("idx", (c(1),), I64)), c(2), Store("y", (c(0), i), c(3.0, F32))),
        For("j", c(0), c(0), Store("y", (j, j), c(0.0, F32))),
        For("i", c(-2), Load("idx", (c(2),), I64), Store("y", (c(0), b("add", i, c(2))), c(4.0, F32))),
        locals_,
    ))
    attrs = (("backslash", "a\\b \"quoted\"\nnewline"), ("dtype", F16), ("empty", ()), ("flag", False),
             ("nested", ((1, -2), ("s", True), (0.25,))), ("nodes", (3, 4, 5)), ("none", None),
             ("rate", -0.5), ("tiny", 1e-300), ("top", math.inf), ("units", -7))
    return Kernel("every_node", (x, xt, idx, half, flags, y), body, ("y", "idx", "half", "flags"), attrs)


def minimal_kernel() -> Kernel:
    return Kernel("empty", (), Seq(()), ())


def assert_round_trip(kernel: Kernel) -> str:
    text = print_kernel(kernel)
    parsed = parse_kernel(text)
    assert print_kernel(parsed) == text
    assert parsed == kernel
    return text


def test_every_node_round_trips_and_is_valid() -> None:
    kernel = every_node_kernel()
    assert verify_kernel(kernel) == []
    text = assert_round_trip(kernel)
    for fragment in ("for v in 0..4 vectorize {", "for i in 0..4 parallel {", "for k in -1..2 unroll {",
                     "for i in 0..+idx[0] step 2 {", "for i in (1 + idx[1])..+2 {", "for i in (-2)..+idx[2] {", "for j in 0..8 step 4 {",
                     "local tmp: bf16[3,2] strides[1,3]", "1e-300:f64", "nan:f16", "-inf:f16", "-7:i32",
                     "(-0.5:f16)", "-0.0:f64", "x[i, j] - (xt[j, i] - 1.5)", "(x[i, j] + 2.0) *",
                     "} else {", "let p: bool = s > 0.0", 'backslash = "a\\\\b \\"quoted\\"'):
        assert fragment in text, fragment


def test_minimal_kernel_round_trips() -> None:
    assert assert_round_trip(minimal_kernel()) == "kernel @empty() writes() {\n}"


def test_nan_attribute_reads_back() -> None:
    kernel = Kernel("k", (), Seq(()), (), (("a", math.nan), ("b", -math.inf)))
    parsed = parse_kernel(print_kernel(kernel))
    assert math.isnan(parsed.attr("a")) and parsed.attr("b") == -math.inf
    assert print_kernel(parsed) == print_kernel(kernel)


def test_text_reads_as_written() -> None:
    text = """\
kernel @scale(x: f32[4,8], n: i64[1], y: f32[4,8]) writes(y) attrs(kind = "elementwise") {
  for i in 0..4 parallel {
    for j in 0..+n[0] step 2 {
      let s: f32 = x[i, j] * 0.5   # comments run to the end of a line
      y[i, j] = select(s > 0.0, s, cast<f32>(j))
    }
  }
}"""
    kernel = parse_kernel(text)
    s = Var("s", F32)
    expected_body = For("i", c(0), c(4), For(
        "j", c(0), Load("n", (c(0),), I64),
        Let("s", b("mul", Load("x", (i, j), F32), c(0.5, F32)),
            Store("y", (i, j), Select(b("gt", s, c(0.0, F32)), s, Cast(F32, j)))), step=2), LoopKind.PARALLEL)
    assert kernel.body == expected_body
    assert kernel.writes == ("y",) and kernel.attrs == (("kind", "elementwise"),)
    assert kernel.param("n") == Buffer("n", I64, (1,))


def test_static_range_counts_iterations_by_ceiling() -> None:
    kernel = parse_kernel("kernel @k(y: f32[10]) writes(y) { for i in 0..10 step 3 { y[i] = 1.0 } }")
    assert kernel.body.extent == c(4)
    assert "for i in 0..12 step 3 {" in print_kernel(kernel)


def test_let_and_local_scope_over_the_rest_of_the_block() -> None:
    acc = Buffer("acc", F32, (1,), scope=Scope.LOCAL)
    first = Store("y", (c(0),), c(1.0, F32))
    noncanonical = Kernel("k", (Buffer("y", F32, (2,)),), Seq((
        Seq((Allocate(acc, Store("acc", (c(0),), c(0.0, F32))),)),
        Let("t", c(2.0, F32), first),
        Store("y", (c(1),), c(3.0, F32)),
    )), ("y",))
    text = print_kernel(noncanonical)
    parsed = parse_kernel(text)
    assert parsed != noncanonical
    assert print_kernel(parsed) == text
    assert parsed.body == canonical(noncanonical.body)
    assert isinstance(parsed.body, Allocate) and isinstance(parsed.body.body, Seq)


def test_names_that_are_words_of_the_text() -> None:
    names = ("for", "if", "let", "local", "in", "step", "serial", "parallel", "vectorize", "unroll", "select",
             "cast", "writes", "kernel", "attrs", "exp")
    params = tuple(Buffer(name, F32, (2,)) for name in names)
    stores = tuple(Store(name, (Var("step"),), b("add", Load(name, (Var("step"),), F32), Load("exp", (c(0),), F32)))
                   for name in names)
    body = For("step", c(0), c(2), Let("in", Cast(F32, Var("step")),
                                       Seq((*stores, Store("cast", (c(1),), Unary("exp", Var("in", F32)))))))
    kernel = Kernel("words", params, body, names)
    assert verify_kernel(kernel) == []
    assert_round_trip(kernel)


def every_program() -> LoopProgram:
    x, w, t, y = (Buffer("x", F32, (2, 3)), Buffer("w", F32, (3,)), Buffer("t", F32, (2, 3)),
                  Buffer("y", F32, (2, 3)))
    scale = Kernel("scale", (x, w, t), For("i", c(0), c(2), For("j", c(0), c(3), Store(
        "t", (i, j), b("mul", Load("x", (i, j), F32), Load("w", (j,), F32))))), ("t",), (("kind", "elementwise"),))
    relu = Kernel("relu", (Buffer("a", F32, (2, 3)), Buffer("out", F32, (2, 3))), For(
        "i", c(0), c(2), For("j", c(0), c(3), Store("out", (i, j), Unary("relu", Load("a", (i, j), F32))))),
        ("out",))
    return LoopProgram("net", {"x": x, "w": w, "t": t, "y": y}, ["x", "w"], ["y", "x", "y"],
                       {"scale": scale, "relu": relu},
                       [KernelCall("scale", ("x", "w", "t")), KernelCall("relu", ("t", "y"))])


def test_program_round_trips() -> None:
    program = every_program()
    assert verify_program(program) == []
    text = print_program(program)
    assert "  buffer y: f32[2,3] (output 0,2)" in text
    assert "  buffer x: f32[2,3] (input 0; output 1)" in text
    parsed = parse_program(text)
    assert parsed == program
    assert print_program(parsed) == text


def test_program_with_a_local_scope_buffer_reads_back() -> None:
    program = LoopProgram("p", {"s": Buffer("s", F32, (1,), scope=Scope.LOCAL)}, [], [])
    text = print_program(program)
    assert "(local)" in text
    assert parse_program(text) == program


@pytest.mark.parametrize("text, message, line, col", [
    ("kernel @k(y: f32[2]) writes(y) {\n  y[0] = 1.0 +\n}", "unexpected '}'", 3, 1),
    ("kernel @k(y: f32[2]) writes(y) {\n  z[0] = 1.0\n}", "unknown buffer 'z' (buffers here: y)", 2, 3),
    ("kernel @k(y: f32[2]) writes(y) {\n  y[0] = q\n}", "unknown variable 'q'", 2, 10),
    ("kernel @k(y: f33[2]) writes(y) {\n}", "expected a dtype (f32, f64, f16, bf16, i8, i32, i64, bool) but "
                                           "found 'f33'", 1, 14),
    ("kernel @k(y: f32[2]) writes(y) {\n  let a: f16 = 1.0\n}", "let 'a' is declared f16 but its value is f32",
     2, 10),
    ("kernel @k(y: f32[2]) writes(y) {\n  y[0] = expo(1.0)\n}", "unknown function 'expo'", 2, 10),
    ("kernel @k(y: f32[2]) writes(y) {\n  y[0] = max(1.0)\n}", "expected 2 arguments for 'max' but found 1",
     2, 10),
    ("kernel @k(y: f32[2]) writes(y) {\n  for i in 0..4 step 0 {\n  }\n}", "expected a positive step but "
                                                                            "found 0", 2, 17),
    ("kernel @k(n: i64[1], y: f32[2]) writes(y) {\n  for i in n[0]..4 {\n  }\n}", "needs a constant integer "
                                                                                  "start", 2, 12),
    ("kernel @k(y: f32[2]) writes(y) {\n  y[0] = 1.5:i32\n}", "expected an integer for a i32 constant", 2, 10),
    ("kernel @k(y: f32[2]) writes(y) {\n  y[0] = cast<f99>(1.0)\n}", "found 'f99'", 2, 15),
    ("kernel @k(y: f32[2], y: f32[2]) writes(y) {\n}", "parameter 'y' is declared twice", 1, 22),
    ("kernel @k(y: f32[2]) writes(y) attrs(a = 1, a = 2) {\n}", "attribute 'a' is given twice", 1, 45),
    ("kernel @k(y: f32[2]) writes(y) {\n  y[0] = 1.0 $ 2.0\n}", "unexpected character '$'", 2, 14),
    ("kernel @k(y: f32[2]) writes(y) {\n  y[0] = 1.0", "unexpected end of input", 2, 13),
])
def test_kernel_errors_name_line_and_column(text: str, message: str, line: int, col: int) -> None:
    with pytest.raises(LoopParseError) as caught:
        parse_kernel(text)
    error = caught.value
    assert message in error.message
    assert (error.line, error.col) == (line, col)
    assert f"<loops>:{line}:{col}: error:" in str(error)


@pytest.mark.parametrize("text, message", [
    ("program @p {\n  buffer x: f32[1] (input 1)\n}", "input 0 is not given to any buffer"),
    ("program @p {\n  buffer x: f32[1] (output 0)\n  buffer y: f32[1] (output 0)\n}", "output 0 is given twice"),
    ("program @p {\n  buffer x: f32[1] (shared)\n}", "expected 'input N', 'output N' or a scope"),
    ("program @p {\n  buffer x: f32[1]\n  buffer x: f32[2]\n}", "buffer 'x' is declared twice"),
])
def test_program_errors(text: str, message: str) -> None:
    with pytest.raises(LoopParseError) as caught:
        parse_program(text)
    assert message in caught.value.message


def test_lowered_example_round_trips() -> None:
    """The lowering's real output (examples/mlp.nk) reads back exactly and verifies."""
    from compiler.driver import compile
    from passes.lowering.lower import lower_to_loops

    example = Path(__file__).resolve().parents[2] / "examples" / "mlp.nk"
    program = lower_to_loops(compile(str(example), target="ref", defines={"B": 2}).graph)
    assert verify_program(program) == []
    text = print_program(program)
    assert parse_program(text) == program
    assert print_program(parse_program(text)) == text


def test_a_kernel_is_not_a_program() -> None:
    with pytest.raises(LoopParseError, match="unexpected 'kernel'"):
        parse_program(print_kernel(minimal_kernel()))


# -- random expressions: the printer's parentheses and the parser's precedence agree ----------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_INDEX_LEAVES = st.one_of(st.sampled_from([i, j]), st.integers(-20, 20).map(c),
                          st.sampled_from([Load("idx", (c(0),), I64), Load("idx", (j,), I64)]))
_FLOAT_LEAVES = st.one_of(st.sampled_from([-2.5, -0.0, 0.0, 0.5, 3.0, 1e-30, math.inf, -math.inf]).map(
    lambda value: c(value, F32)), st.just(Load("x", (i, j), F32)))
_BOOL_LEAVES = st.one_of(st.booleans().map(lambda value: c(value, BOOL)), st.just(Load("flags", (i,), BOOL)))


@functools.cache
def _index(depth: int) -> st.SearchStrategy:
    if depth == 0:
        return _INDEX_LEAVES
    smaller = _index(depth - 1)
    return st.one_of(
        _INDEX_LEAVES,
        st.builds(Binary, st.sampled_from(["add", "sub", "mul", "floordiv", "mod", "maximum", "minimum"]),
                  smaller, smaller),
        st.builds(Unary, st.just("neg"), smaller))


@functools.cache
def _float(depth: int) -> st.SearchStrategy:
    if depth == 0:
        return _FLOAT_LEAVES
    smaller = _float(depth - 1)
    return st.one_of(
        _FLOAT_LEAVES,
        st.builds(Binary, st.sampled_from(["add", "sub", "mul", "div", "pow", "maximum", "minimum"]),
                  smaller, smaller),
        st.builds(Unary, st.sampled_from(["neg", "abs", "exp", "tanh"]), smaller),
        st.builds(Select, _bool(depth - 1), smaller, smaller),
        st.builds(Cast, st.just(F32), _index(depth - 1)),
        st.builds(lambda e: Load("x", (e, i), F32), _index(depth - 1)))


@functools.cache
def _bool(depth: int) -> st.SearchStrategy:
    if depth == 0:
        return _BOOL_LEAVES
    smaller = _bool(depth - 1)
    return st.one_of(
        _BOOL_LEAVES,
        st.builds(Binary, st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]), _float(depth - 1), _float(depth - 1)),
        st.builds(Binary, st.sampled_from(["eq", "lt", "ge"]), _index(depth - 1), _index(depth - 1)),
        st.builds(Binary, st.sampled_from(["logical_and", "logical_or", "eq", "ne"]), smaller, smaller),
        st.builds(Unary, st.just("logical_not"), smaller))


@settings(max_examples=100, deadline=None)
@given(st.one_of(_float(4), _bool(4), _index(4)), _index(3))
def test_random_expressions_round_trip(value, target) -> None:
    params = (Buffer("x", F32, (4, 4)), Buffer("idx", I64, (4,)), Buffer("flags", BOOL, (4,)),
              Buffer("y", value.dtype, (4,)))
    body = For("i", c(0), c(4), For("j", c(0), c(4), Store("y", (target,), value)))
    assert_round_trip(Kernel("random", params, body, ("y",)))
