"""The graph printer's text, and print -> parse -> print round trips on hand-built graphs."""

from __future__ import annotations

import math

import pytest

from ir import ops
from ir.dtypes import DType
from ir.graph import Graph, Loc
from ir.graph_parser import parse_graph
from ir.graph_printer import format_value, print_graph
from ir.types import Format, TensorType

F32 = DType.F32

MLP_TEXT = """\
graph @mlp(
    %x: f32[8,784],
    %w1: f32[784,512] {weight},
    %b1: f32[512] {weight},
    %w2: f32[512,10] {weight}
) -> (f32[8,10]) dims(B=8) {
  %0 = matmul(%x, %w1) : f32[8,512]
  %1 = add(%0, %b1) : f32[8,512]
  %2 = relu(%1) : f32[8,512]
  %3 = matmul(%2, %w2) : f32[8,10]
  %4 = reduce_max(%3) {axes = [1], keepdims = true} : f32[8,1]
  %5 = sub(%3, %4) : f32[8,10]
  %6 = exp(%5) : f32[8,10]
  %7 = reduce_sum(%6) {axes = [1], keepdims = true} : f32[8,1]
  %8 = div(%6, %7) : f32[8,10]
  return %8
}
"""


def assert_round_trip(graph: Graph) -> str:
    """print(parse(print(g))) == print(g) and parse(print(g)) == g, with and without locations."""
    for print_locs in (False, True):
        text = print_graph(graph, print_locs=print_locs)
        parsed = parse_graph(text)
        assert print_graph(parsed, print_locs=print_locs) == text
        assert parsed == graph
        assert parsed.attributes == graph.attributes
    located = parse_graph(print_graph(graph, print_locs=True))
    assert [node.loc for _, node in located.nodes()] == [node.loc for _, node in graph.nodes()]
    return print_graph(graph)


def test_mlp_text(mlp: Graph) -> None:
    assert print_graph(mlp) == MLP_TEXT


def test_mlp_round_trip(mlp: Graph) -> None:
    assert_round_trip(mlp)
    assert 'mlp.nk":6:16)' in print_graph(mlp, print_locs=True)


def test_examples_round_trip(example: Graph) -> None:
    assert_round_trip(example)


def test_every_op_round_trip(every_op: Graph) -> None:
    text = assert_round_trip(every_op)
    used = {node.op for _, node in every_op.nodes()}
    assert used == set(ops.OPS)
    for fragment in ("<csr>", "<csc>", "<bsr(2,2)>", "<2:4>", "group 1", "group -3", "{weight}",
                     "{dtype = i32}", "{value = nan}", "{value = -inf}", "{value = -0.0}", "{value = true}",
                     "return %0, %1,", "%x, %0\n"):
        assert fragment in text


def test_every_attribute_kind_round_trips_exactly(every_op: Graph) -> None:
    """Graph attributes take every value kind the op attributes use, so they exercise all of them."""
    graph = every_op
    graph.attributes = {
        "int": -12, "big": 2**80, "float": 0.1, "tiny": 5e-324, "inf": math.inf, "ninf": -math.inf,
        "nan": math.nan, "zero": -0.0, "yes": True, "no": False, "text": 'quote " slash \\ tab \t é \n',
        "empty": "", "ints": (3, -1, 0), "none": (), "dtype": DType.BF16,
        "group": 1, "loc": 2, "return": 3, "a key": 4,  # keywords and non-identifiers as keys
    }
    parsed = parse_graph(print_graph(graph))
    for key, value in graph.attributes.items():
        got = parsed.attributes[key]
        assert type(got) is type(value), key
        if isinstance(value, float):
            assert math.copysign(1, got) == math.copysign(1, value) and (got == value or math.isnan(got))
        else:
            assert got == value, key
    assert print_graph(parsed) == print_graph(graph)


@pytest.mark.parametrize("value, text", [
    (3, "3"), (-3, "-3"), (1.0, "1.0"), (1e16, "1e+16"), (-math.inf, "-inf"), (math.nan, "nan"),
    (True, "true"), ("a\"b", '"a\\"b"'), ((1, 2), "[1, 2]"), ((), "[]"), (DType.I8, "i8"),
])
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_format_value_rejects_unprintable_values() -> None:
    with pytest.raises(TypeError, match="cannot print"):
        format_value([1.5])


def test_multiple_outputs_params_as_outputs_and_no_outputs() -> None:
    graph = Graph("pair")
    x = graph.add_param("x", TensorType((3,), F32))
    e = graph.add("exp", [x])
    graph.outputs = [e, x, e]
    text = assert_round_trip(graph)
    assert "-> (f32[3], f32[3], f32[3])" in text and "return %0, %x, %0" in text
    graph.outputs = []
    assert "  return\n" in print_graph(graph)
    assert parse_graph(print_graph(graph)) == graph


def test_params_after_other_values_are_placed() -> None:
    """A constant with a smaller id than a parameter: the text records where the parameter falls."""
    graph = Graph()
    c = graph.add_constant(2.0, TensorType((), F32))
    y = graph.add_param("y", TensorType((2,), F32), loc=Loc("p.nk", 1, 5))
    x = graph.add_param("x", TensorType((2,), F32))
    graph.outputs = [graph.add("mul", [graph.add("add", [x, y]), c])]
    text = assert_round_trip(graph)
    assert "  param %y\n  param %x\n" in text
    graph = Graph()
    a = graph.add_param("a", TensorType((2,), F32))
    c = graph.add_constant(2.0, TensorType((), F32))
    b = graph.add_param("b", TensorType((2,), F32))
    graph.outputs = [graph.add("add", [graph.add("mul", [a, c]), b])]
    text = assert_round_trip(graph)
    assert "param %a" not in text and "  param %b\n" in text


def test_names_that_need_quotes() -> None:
    graph = Graph("my graph")
    x = graph.add_param("0", TensorType((2, 2), F32, Format("csr")))
    y = graph.add_param("a.b", TensorType((2, 2), F32))
    graph.outputs = [graph.add("add", [x, y])]
    graph.dims = {"a b": 1, "group": 2}
    text = assert_round_trip(graph)
    assert text.startswith('graph @"my graph"(%"0": f32[2,2]<csr>, %"a.b": f32[2,2])')
    assert "add(%\"0\", %\"a.b\")" in text


def test_short_signature_stays_on_one_line() -> None:
    """(A long one lists a parameter per line, as MLP_TEXT shows.)"""
    graph = Graph("g")
    x = graph.add_param("x", TensorType((2,), F32))
    graph.outputs = [x]
    assert print_graph(graph).splitlines()[0] == "graph @g(%x: f32[2]) -> (f32[2]) {"


def test_printing_is_deterministic(mlp: Graph) -> None:
    assert print_graph(mlp.copy()) == print_graph(mlp)


def test_module_docstring_example_round_trips() -> None:
    import textwrap

    import ir.graph_printer

    example = textwrap.dedent(ir.graph_printer.__doc__.split("\n\n")[1]) + "\n"
    assert print_graph(parse_graph(example), print_locs=True) == example
