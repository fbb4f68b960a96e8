"""Every class of user error, with its exact text: `file:line:col: error: ...`, the source line, a caret.

Compile-time errors raise `compiler.CompileError` (its `format()` is what the CLI prints); errors in the
arguments of a call raise `compiler.ArgumentError`. The CLI side (exit status, no traceback) is in
tests/test_cli.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler import ArgumentError, CompileError, NicheError, compile_string


def error_text(source: str, **options: object) -> str:
    """The formatted diagnostics of compiling `source` as file t.nk (with its graph built)."""
    with pytest.raises(CompileError) as caught:
        compile_string(source, name="t.nk", **options).graph
    return caught.value.format()


def test_lexing_bad_character() -> None:
    assert error_text("def f(x: f32[4]) -> f32[4] {\n    return x $ 2\n}\n") == (
        "t.nk:2:14: error: unexpected character '$'\n"
        "        return x $ 2\n"
        "                 ^")


def test_parsing_unexpected_token() -> None:
    assert error_text("def f(x: f32[4]) -> f32[4] {\n    y = x + * 2\n    return y\n}\n") == (
        "t.nk:2:13: error: unexpected '*'\n"
        "        y = x + * 2\n"
        "                ^")


def test_parsing_unexpected_end_of_file() -> None:
    assert error_text("def f(x: f32[4]) -> f32[4] {\n    return x\n") == (
        "t.nk:2:13: error: unexpected end of file (expected 'for', 'return', '}', a name)\n"
        "        return x\n"
        "                ^")


def test_parsing_unclosed_parenthesis() -> None:
    assert error_text("def f(x: f32[4]) -> f32[4] {\n    return (x\n}\n") == (
        "t.nk:3:1: error: unexpected '}'\n    }\n    ^")


def test_unknown_name() -> None:
    assert error_text("def f(x: f32[4]) -> f32[4] {\n    return x + y\n}\n") == (
        "t.nk:2:16: error: unknown name 'y'\n"
        "        return x + y\n"
        "                   ^")


def test_unknown_function_suggests_a_builtin() -> None:
    assert error_text("def f(x: f32[4]) -> f32[4] {\n    return sofmax(x)\n}\n") == (
        "t.nk:2:12: error: unknown function 'sofmax'; did you mean 'softmax'?\n"
        "        return sofmax(x)\n"
        "               ^")


def test_unknown_function_suggests_a_user_function() -> None:
    text = error_text("def helper(x) { return x }\ndef f(x: f32[4]) -> f32[4] {\n    return helpr(x)\n}\n")
    assert text.startswith("t.nk:3:12: error: unknown function 'helpr'; did you mean 'helper'?\n")


def test_unknown_function_without_a_close_match() -> None:
    text = error_text("def f(x: f32[4]) -> f32[4] {\n    return zzzzqqq(x)\n}\n")
    assert text.startswith("t.nk:2:12: error: unknown function 'zzzzqqq'\n")


@pytest.mark.parametrize("call, message", [
    ("sum(x, axes=0)", "sum(): got an unexpected keyword argument 'axes'"),
    ("exp()", "exp(): needs the argument: 'x'"),
    ("exp(x, x)", "exp(): too many positional arguments"),
    ("reshape(x, 2.5)", "shape must be an int or a tuple of ints, got the float 2.5"),
    ("sum(x, axis=3)", "axis 3 is out of range for a tensor of rank 1"),
    ("sum(x, keepdims=1)", "keepdims must be true or false, got the int 1"),
    ("cast(x, 3)", "expected a dtype (f32, f16, bf16, f64, i8, i32, i64, bool), got the int 3"),
    ("transpose(x, (0, 1))", "perm [0, 1] must name all 1 axes of f32[4]"),
])
def test_wrong_builtin_arguments(call: str, message: str) -> None:
    text = error_text(f"def f(x: f32[4]) -> f32[4] {{\n    return {call}\n}}\n")
    assert text.splitlines()[0] == f"t.nk:2:12: error: {message}"
    assert text.splitlines()[2] == "               ^"


def test_dtype_mismatch_with_a_declared_signature() -> None:
    assert error_text("def g(x: f16[N]) -> f16[N] { return x }\n"
                      "def f(x: f32[4]) -> f16[4] {\n    return g(x)\n}\n") == (
        "t.nk:3:12: error: argument 'x' of 'g' has type f32[4], but the signature says f16[N]\n"
        "        return g(x)\n"
        "               ^\n"
        "note: 'x' is declared at t.nk:1:10")


def test_result_type_mismatch() -> None:
    assert error_text("def f(x: f32[4]) -> f16[4] {\n    return x\n}\n") == (
        "t.nk:1:21: error: result 0 of 'f' has type f32[4], but the signature says f16[4]\n"
        "    def f(x: f32[4]) -> f16[4] {\n"
        "                        ^")


def test_bool_arithmetic() -> None:
    assert error_text("def f(m: bool[4]) -> bool[4] {\n    return m + m\n}\n") == (
        "t.nk:2:14: error: '+' is not defined on bool tensors (cast them to a number type first, or use "
        "and/or/not)\n"
        "        return m + m\n"
        "                 ^")


def test_float_only_op_on_integers() -> None:
    text = error_text("def f(x: i32[4]) -> i32[4] {\n    return exp(x)\n}\n")
    assert text.splitlines()[0] == "t.nk:2:12: error: exp needs a floating-point operand, got i32"


def test_shape_error_broadcast() -> None:
    assert error_text("def f(x: f32[4], y: f32[3]) -> f32[4] {\n    return x * y\n}\n") == (
        "t.nk:2:14: error: '*': shapes [4] and [3] do not broadcast (dimension 4 vs 3)\n"
        "        return x * y\n"
        "                 ^")


def test_shape_error_matmul_contracting_dimensions() -> None:
    assert error_text("def f(x: f32[2, 4], y: f32[3, 5]) -> f32[2, 5] {\n    return x @ y\n}\n") == (
        "t.nk:2:14: error: '@': contracting dimensions differ: f32[2,4] @ f32[3,5] (4 vs 3)\n"
        "        return x @ y\n"
        "                 ^")


def test_shape_error_matmul_of_vectors_names_the_vectors() -> None:
    text = error_text("def f(x: f32[4], y: f32[3]) -> f32[] {\n    return x @ y\n}\n")
    assert text.splitlines()[0] == "t.nk:2:14: error: '@': contracting dimensions differ: f32[4] @ f32[3] (4 vs 3)"


def test_shape_error_reshape_size() -> None:
    assert error_text("def f(x: f32[2, 4]) -> f32[3, 3] {\n    return reshape(x, (3, 3))\n}\n") == (
        "t.nk:2:12: error: reshape: cannot reshape f32[2,4] (8 elements) to [3, 3] (9 elements)\n"
        "        return reshape(x, (3, 3))\n"
        "               ^")


def test_shape_polymorphism_mismatch() -> None:
    text = error_text("def g(a: f32[N], b: f32[N]) { return a + b }\n"
                      "def f(x: f32[4], y: f32[5]) -> f32[4] {\n    return g(x, y)\n}\n")
    assert text.splitlines()[0] == ("t.nk:3:12: error: argument 'b' of 'g' has type f32[5], but the signature "
                                    "says f32[4]")


def test_unbound_dimension() -> None:
    assert error_text("def f(x: f32[N, 4]) -> f32[N, 4] {\n    return x\n}\n") == (
        "t.nk:1:14: error: dimension 'N' has no value: define it with -D N=<size> (defines= in Python), a "
        "'const N = ...' in the file, or pass an input whose shape binds it\n"
        "    def f(x: f32[N, 4]) -> f32[N, 4] {\n"
        "                 ^")


def test_each_unbound_dimension_is_reported_once() -> None:
    text = error_text("def f(x: f32[N, K], w: f32[K, M]) -> f32[N, M] {\n    return x @ w\n}\n")
    firsts = [line for line in text.splitlines() if ": error: " in line]
    assert [line.split("'")[1] for line in firsts] == ["N", "K", "M"]


def test_tensor_condition_in_a_conditional_expression() -> None:
    text = error_text("def f(x: f32[4]) -> f32[4] {\n    return x if x > 0 else -x\n}\n")
    assert text.splitlines()[0] == (
        "t.nk:2:19: error: the condition of 'a if c else b' must be a compile-time value; use where(c, a, b) to "
        "choose between tensors elementwise")


def test_a_const_that_is_not_a_dtype_used_as_a_type() -> None:
    text = error_text("const N = 4\ndef f(x: N[4]) -> f32[4] {\n    return x\n}\n")
    assert text.splitlines()[0] == "t.nk:2:10: error: 'N' is the int 4, not a dtype"


def test_unknown_type() -> None:
    text = error_text("def f(x: float32[4]) -> f32[4] {\n    return x\n}\n")
    assert text.splitlines()[0].startswith("t.nk:1:10: error: unknown type 'float32' (dtypes: f32,")


def test_unknown_decorators() -> None:
    text = error_text("@token(4)\ndef f(@weights x: f32[4]) -> f32[4] {\n    return x\n}\n")
    lines = [line for line in text.splitlines() if ": error: " in line]
    assert lines == ["t.nk:1:2: error: unknown function decorator '@token' (known: @tokens)",
                     "t.nk:2:8: error: unknown parameter decorator '@weights' (known: @weight)"]


def test_several_errors_in_one_file_are_reported_together() -> None:
    source = ("const N = 4\n"
              "def f(x: f32[N], y: f32[3], m: bool[N]) -> f32[N] {\n"
              "    a = x + y\n"
              "    b = undefined_thing * 2.0\n"
              "    c = sofmax(x, axis=0)\n"
              "    d = sum(x, axes=0)\n"
              "    e = m + m\n"
              "    f = reshape(x, (3, 3))\n"
              "    g = a * 2.0\n"           # follows from the first error: not reported again
              "    return x\n"
              "}\n")
    text = error_text(source)
    heads = [line for line in text.splitlines() if ": error: " in line]
    assert [head.split(": error: ")[0] for head in heads] == [
        "t.nk:3:11", "t.nk:4:9", "t.nk:5:9", "t.nk:6:9", "t.nk:7:11", "t.nk:8:9"]


def test_errors_inside_a_called_function_name_the_call() -> None:
    text = error_text("def g(x) { return x @ x }\ndef f(x: f32[2, 3]) -> f32[2, 3] {\n    return g(x)\n}\n")
    assert text.splitlines()[0].startswith("t.nk:1:21: error: '@': contracting dimensions differ")
    assert text.splitlines()[-1] == "note: in the call of 'g' at t.nk:3:12"


def test_recursion_is_reported() -> None:
    text = error_text("def g(x) { return g(x) }\ndef f(x: f32[2]) -> f32[2] {\n    return g(x)\n}\n")
    assert "calls nest deeper than 64 (recursion in 'g'?)" in text.splitlines()[0]


def test_bad_entry() -> None:
    with pytest.raises(CompileError) as caught:
        compile_string("def f(x: f32[2]) -> f32[2] { return x }", name="t.nk", entry="g")
    assert caught.value.format() == "error: no function named 'g' in t.nk (defined: f)"


def test_a_file_without_functions() -> None:
    with pytest.raises(CompileError, match="the file defines no function"):
        compile_string("const N = 4\n", name="t.nk")


# -- wrong arguments at call time ------------------------------------------------------------------

MATMUL = "def f(x: f32[N, K], w: f32[K, M]) -> f32[N, M] {\n    return x @ w\n}\n"


def _x() -> np.ndarray:
    return np.ones((2, 3), np.float32)


def _w() -> np.ndarray:
    return np.ones((3, 4), np.float32)


@pytest.mark.parametrize("call, message", [
    (lambda p: p(_x(), np.ones((3, 4), np.float64)),
     "error: argument 'w' has dtype float64, expected f32 (numpy float32)"),
    (lambda p: p(_x()), "error: f() is missing argument(s): w"),
    (lambda p: p(_x(), _w(), z=_x()), "error: f() has no parameter 'z' (parameters: x, w)"),
    (lambda p: p(_x(), _w(), _x()), "error: f() takes 2 arguments, got 3"),
    (lambda p: p(_x(), x=_x()), "error: f() got two values for 'x'"),
    (lambda p: p(np.ones(3, np.float32), _w()),
     "error: argument 'x' has rank 1 (shape [3]), expected rank 2 (f32[N, K])"),
    (lambda p: p(_x(), np.ones((5, 4), np.float32)),
     "error: dimension K is 3 in argument 'x' but 5 in argument 'w'"),
], ids=["dtype", "missing", "unknown-name", "too-many", "twice", "rank", "inconsistent-dimension"])
def test_wrong_arguments_at_call_time(call, message: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        call(compile_string(MATMUL))
    assert caught.value.format() == message
    assert isinstance(caught.value, NicheError)


def test_wrong_shape_for_a_fixed_dimension() -> None:
    prog = compile_string(MATMUL, defines={"N": 2, "K": 3, "M": 4})
    with pytest.raises(ArgumentError) as caught:
        prog(_x(), np.ones((3, 5), np.float32))
    assert caught.value.format() == "error: argument 'w' has shape [3, 5], expected [3, 4]"


def test_a_definition_for_a_name_the_program_does_not_use() -> None:
    with pytest.raises(CompileError, match=r"-D b: t\.nk has no const or dimension named 'b' \(did you mean 'B'\?\)"):
        compile_string("const B = 2\ndef f(x: f32[B]) -> f32[B] { return x }", name="t.nk", defines={"b": 4})
    with pytest.raises(CompileError, match="no const or dimension named 'i'"):  # a loop variable is not a global
        compile_string("def f(x: f32[2]) -> f32[2] {\n for i in range(2) { x = x + 1 }\n return x\n}",
                       name="t.nk", defines={"i": 1})
