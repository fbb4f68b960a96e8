"""The graph parser's errors: each kind names a line and column and says what is wrong."""

from __future__ import annotations

import pytest

from compiler.diagnostics import NicheError
from ir.graph_parser import GraphParseError, parse_graph

HEAD = "graph @g(%x: f32[2,3], %y: f32[3,4]) -> (f32[2,3]) {\n"


def parse_error(text: str) -> GraphParseError:
    with pytest.raises(GraphParseError) as info:
        parse_graph(text, file="t.graph")
    error = info.value
    assert f"t.graph:{error.line}:{error.col}: error: {error.message}" in str(error)
    return error


@pytest.mark.parametrize("body, line, col, message", [
    ("  %0 = frob(%x) : f32[2,3]\n  return %0\n}", 2, 8, "unknown operation 'frob'"),
    ("  %0 = exp(%z) : f32[2,3]\n  return %0\n}", 2, 12, "%z is used before it is defined"),
    ("  %0 = exp(%1) : f32[2,3]\n  %1 = exp(%x) : f32[2,3]\n  return %0\n}", 2, 12, "%1 is used before"),
    ("  %0 = exp(%x) : f32[2,3]\n  %0 = exp(%x) : f32[2,3]\n  return %0\n}", 3, 3,
     "%0 is defined twice (first at 2:3)"),
    ("  %0 = exp(%x) : f32[3,2]\n  return %0\n}", 2, 18, "%0 is printed as f32[3,2], but exp of its operands"
     " gives f32[2,3]"),
    ("  %0 = matmul(%y, %x) : f32[3,3]\n  return %0\n}", 2, 8, "matmul: contracting dimensions differ"),
    ("  %0 = reduce_sum(%x) {axes = [1]} : f32[2]\n  return %0\n}", 2, 8, "needs attribute 'keepdims'"),
    ("  %0 = cast(%x) {dtype = f33} : f32[2,3]\n  return %0\n}", 2, 26, "unknown value 'f33'"),
    ("  %0 = constant(%x) {value = 1.0} : f32[]\n  return %0\n}", 2, 8, "constant takes 0 operand(s), got 1"),
    ("  %0 = param() {index = 2, name = \"z\"} : f32[]\n  return %0\n}", 2, 8, "declared in the graph signature"),
    ("  %0 = exp(%x) : f33[2,3]\n  return %0\n}", 2, 18, "unknown dtype 'f33'"),
    ("  %0 = exp(%x) : f32[2,3]\n  return %0, %0\n}", 3, 3, "returns 2 value(s) but its signature declares 1"),
    ("  %0 = reduce_sum(%x) {axes = [1], keepdims = false} : f32[2]\n  return %0\n}", 3, 10,
     "result 0 (%0) has type f32[2], but the signature says f32[2,3]"),
    ("  param %z\n  return %x\n}", 2, 9, "%z is not a parameter of the graph"),
    ("  param %y\n  param %y\n  return %x\n}", 3, 9, "parameter %y is placed twice"),
    ("  %0 = exp(%x) {axes = [1], axes = [2]} : f32[2,3]\n  return %0\n}", 2, 29, "'axes' is given twice"),
])
def test_semantic_errors(body: str, line: int, col: int, message: str) -> None:
    error = parse_error(HEAD + body)
    assert (error.line, error.col) == (line, col)
    assert message in error.message


@pytest.mark.parametrize("text, line, col, message", [
    ("graph @g(%x: f32[2], %x: f32[3]) -> () {\n  return\n}", 1, 22, "parameter %x is declared twice (first at 1:10)"),
    ("graph @g(%0: f32[2]) -> () {\n  return\n}", 1, 10, "needs a name"),
    ("graph @g(%x: f32[-2]) -> () {\n  return\n}", 1, 18, "cannot be negative"),
    ("graph @g(%x: f32[4,4]<bsr>) -> () {\n  return\n}", 1, 23, "bsr format needs a positive block shape"),
    ("graph @g(%x: f32[4,4]<5:4>) -> () {\n  return\n}", 1, 23, "N:M format needs 0 < N <= M"),
    ("graph @g(%x: f32[4,4]<coo>) -> () {\n  return\n}", 1, 23, "unknown storage format 'coo'"),
    ("graph @g() -> () dims(B=1.5) {\n  return\n}", 1, 23, "dimension 'B' must be an int"),
    ('graph @"a\\q"() -> () {\n  return\n}', 1, 7, "bad string \"a\\q\": Invalid \\escape"),
    ('graph @g() -> () attributes(s="a\nb") {\n  return\n}', 1, 31, "Invalid control character"),
])
def test_signature_errors(text: str, line: int, col: int, message: str) -> None:
    error = parse_error(text)
    assert (error.line, error.col) == (line, col)
    assert message in error.message


@pytest.mark.parametrize("text, line, col, message", [
    ("graph @g(%x f32[2]) -> () {\n  return\n}", 1, 13, "unexpected 'f32'"),
    ("graph @g() -> () {\n  %0 = exp(%x) $ f32[2]\n}", 2, 16, "unexpected character '$'"),
    ("graph @g() -> () {\n  return\n", 2, 9, "unexpected end of input"),
    ("graph @g() -> () {\n  return\n}\nextra", 4, 1, "unexpected 'extra'"),
])
def test_syntax_errors(text: str, line: int, col: int, message: str) -> None:
    error = parse_error(text)
    assert (error.line, error.col) == (line, col)
    assert message in error.message


def test_error_is_a_user_error_with_a_caret() -> None:
    with pytest.raises(NicheError) as info:
        parse_graph(HEAD + "  %0 = frob(%x) : f32[2,3]\n  return %0\n}")
    assert str(info.value).splitlines() == [
        "<graph>:2:8: error: unknown operation 'frob'",
        "      %0 = frob(%x) : f32[2,3]",
        "           ^",
    ]


def test_accepts_comments_blank_space_and_locs_anywhere() -> None:
    text = """
    // a comment
    graph @g(%x: f32[2] loc("a.nk":1:2)) -> (f32[2]) {
      %0 = exp(%x) : f32[2]   // another
      %1 = neg(%0) : f32[2] loc("a.nk":3:4)
      return %1
    }
    """
    graph = parse_graph(text)
    assert [node.op for _, node in graph.nodes()] == ["param", "exp", "neg"]
    assert graph.node(graph.outputs[0]).loc is not None
