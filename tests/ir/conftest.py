"""Graphs shared by the graph-IR tests: the quick-start MLP and a graph that uses every op."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from compiler.diagnostics import SourceMap
from compiler.frontend import parse, parse_file
from compiler.irgen import build_graph
from ir.dtypes import DType
from ir.graph import Graph, Loc
from ir.types import Format, TensorType

ROOT = Path(__file__).resolve().parents[2]
F32, I32, BOOL = DType.F32, DType.I32, DType.BOOL


def build_example(name: str, defines: dict[str, int] | None = None) -> Graph:
    """The graph of examples/<name>.nk, built as the driver does (with the prelude)."""
    sources = SourceMap()
    prelude_path = ROOT / "compiler" / "prelude.nk"
    prelude = parse(prelude_path.read_text(), "<prelude>", sources)
    module = parse_file(ROOT / "examples" / f"{name}.nk", sources)
    return build_graph(module, prelude, sources, defines)


EXAMPLES = sorted(path.stem for path in (ROOT / "examples").glob("*.nk"))


def build_every_op() -> Graph:
    """A graph with every op of the table, sparse parameter formats, groups, locations and outputs."""
    g = Graph("every_op")
    here = Loc("every.nk", 1, 1)
    x = g.add_param("x", TensorType((2, 4), F32), loc=here)
    y = g.add_param("y", TensorType((2, 4), F32))
    mask = g.add_param("mask", TensorType((2, 4), BOOL))
    w = g.add_param("w", TensorType((4, 4), F32, Format("csr")), weight=True)
    g.add_param("wc", TensorType((4, 4), F32, Format("csc")), weight=True)
    g.add_param("wb", TensorType((4, 4), F32, Format("bsr", block=(2, 2))), weight=True)
    g.add_param("wn", TensorType((4, 4), F32, Format("nm", n=2, m=4)), weight=True)
    outputs = []
    for op in ("neg", "abs", "relu", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "gelu", "silu",
               "sin", "cos"):
        outputs.append(g.add(op, [x], loc=Loc("every.nk", 2, len(outputs) + 1)))
    outputs.append(g.add("logical_not", [mask]))
    outputs.append(g.add("cast", [x], {"dtype": I32}))
    outputs.append(g.add("cast", [mask], {"dtype": DType.BF16}))
    for op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"):
        outputs.append(g.add(op, [x, y], group=1))
    outputs.append(g.add("logical_and", [mask, mask]))
    outputs.append(g.add("logical_or", [mask, mask]))
    outputs.append(g.add("select", [mask, x, y], group=2))
    for op in ("reduce_sum", "reduce_max", "reduce_min", "reduce_mean"):
        outputs.append(g.add(op, [x], {"axes": (1,), "keepdims": op == "reduce_max"}))
    outputs.append(g.add("matmul", [x, w]))
    outputs.append(g.add("transpose", [x], {"perm": (1, 0)}))
    outputs.append(g.add("reshape", [x], {"shape": (4, 2)}))
    row = g.add("reshape", [y], {"shape": (1, 2, 4)})
    outputs.append(g.add("broadcast_to", [row], {"shape": (3, 2, 4)}))
    outputs.append(g.add("slice", [x], {"starts": (0, 1), "stops": (2, 4), "steps": (1, 2)}))
    outputs.append(g.add("concat", [x, y, x], {"axis": 0}))
    for value in (0, -7, 2**40, 0.1, -0.0, 1e-300, 1.5e300, math.inf, -math.inf, math.nan, True, False):
        dtype = BOOL if isinstance(value, bool) else (F32 if isinstance(value, float) else DType.I64)
        outputs.append(g.add_constant(value, TensorType((), dtype)))
    outputs.append(g.add("iota", attrs={"axis": 1}, type=TensorType((2, 3), I32), group=-3))
    outputs.append(x)
    g.outputs = outputs + [outputs[0]]
    g.dims = {"B": 2, "N": 4}
    g.attributes = {"tokens": 8, "users": 2, "rate": 0.5, "target": "cpu", "fused": True}
    return g


@pytest.fixture
def mlp() -> Graph:
    return build_example("mlp")


@pytest.fixture
def every_op() -> Graph:
    return build_every_op()


@pytest.fixture(params=EXAMPLES)
def example(request: pytest.FixtureRequest) -> Graph:
    """The graph of each program in examples/, at its default sizes."""
    return build_example(request.param)
