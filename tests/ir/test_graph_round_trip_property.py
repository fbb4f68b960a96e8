"""Property: printing and parsing random valid graphs gives back the same graph and the same text.

The generator builds graphs step by step from elementwise, comparison, reduction, matmul, shape and
source ops, with parameters interleaved with other values (so `param %w` placement lines occur),
sparse parameter formats, fusion groups, locations, several outputs, dims and attributes.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir import ops
from ir.dtypes import DType
from ir.graph import Graph, Loc
from ir.graph_parser import parse_graph
from ir.graph_printer import print_graph
from ir.graph_verifier import verify_graph
from ir.types import Format, TensorType

DTYPES = [DType.F32, DType.F32, DType.BF16, DType.I32, DType.BOOL]
UNARY = ops.ops_in_group(ops.UNARY)
BINARY = ops.ops_in_group(ops.BINARY)
REDUCTIONS = ops.ops_in_group(ops.REDUCTION)
NAMES = st.sampled_from(["x", "w", "b_1", "0", "a b", "group", "λ"])
STEPS = ["param", "constant", "iota", "unary", "cast", "binary", "select", "reduce", "matmul",
         "transpose", "reshape", "broadcast_to", "slice", "concat"]

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
# NaN is drawn as math.nan itself: Node equality compares attribute tuples, and NaN equals only itself
floats = st.floats(allow_nan=True, allow_infinity=True).map(lambda f: math.nan if math.isnan(f) else f)
scalars = st.one_of(st.integers(-2**40, 2**40), floats, st.booleans())
locs = st.none() | st.builds(Loc, st.sampled_from(["a.nk", "<prelude>", 'q"uote.nk']),
                             st.integers(1, 99), st.integers(1, 99))


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    graph = Graph(draw(st.sampled_from(["main", "mlp", "odd name"])))
    values: list[int] = []
    for _ in range(draw(st.integers(1, 14))):
        step = draw(st.sampled_from(STEPS)) if values else "param"
        try:
            node = _add(draw, graph, step, values)
        except ops.OpError:
            continue  # operands of clashing dtypes or shapes: skip this step
        if node is not None:
            values.append(node)
    graph.outputs = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
    graph.dims = draw(st.dictionaries(st.sampled_from(["B", "N", "loc"]), st.integers(0, 64), max_size=2))
    graph.attributes = draw(st.dictionaries(st.sampled_from(["tokens", "users", "note"]),
                                            st.one_of(st.integers(), floats, st.text(max_size=5), st.booleans()),
                                            max_size=2))
    return graph


def _add(draw: st.DrawFn, graph: Graph, step: str, values: list[int]) -> int | None:
    """Add one node of kind `step` to `graph`; raises OpError when the drawn operands do not fit."""
    loc = draw(locs)
    group = draw(st.none() | st.integers(-1, 3))
    if step == "param":
        name = draw(NAMES)
        if graph.param_by_name(name) is not None:
            return None
        fmt = draw(st.sampled_from([Format(), Format("csr"), Format("bsr", block=(2, 1)), Format("nm", n=2, m=4)]))
        shape = draw(shapes) if fmt.is_dense else (4, 4)
        type = TensorType(shape, draw(st.sampled_from(DTYPES)), fmt)
        return graph.add("param", attrs={"name": name, "index": len(graph.params), "weight": draw(st.booleans())},
                         type=type, loc=loc, group=group)
    if step == "constant":
        type = TensorType(draw(shapes), draw(st.sampled_from(DTYPES)))
        return graph.add("constant", attrs={"value": draw(scalars)}, type=type, loc=loc, group=group)
    if step == "iota":
        shape = draw(shapes.filter(bool))
        return graph.add("iota", attrs={"axis": draw(st.integers(0, len(shape) - 1))},
                         type=TensorType(shape, DType.I32), loc=loc, group=group)
    a = draw(st.sampled_from(values))
    t = graph.node(a).type
    if step in ("unary", "cast", "reduce", "transpose", "reshape", "broadcast_to", "slice"):
        op, attrs = _one_operand(draw, step, t)
        return graph.add(op, [a], attrs, loc=loc, group=group)
    if step == "matmul":
        if t.rank < 2:
            return None
        b = graph.add_constant(1, TensorType((t.shape[-1], draw(st.integers(1, 3))), t.dtype))
        values.append(b)
        return graph.add("matmul", [a, b], loc=loc, group=group)
    alike = st.sampled_from([v for v in values if graph.node(v).type.dtype == t.dtype])
    if step == "binary":
        return graph.add(draw(st.sampled_from(BINARY)), [a, draw(alike)], loc=loc, group=group)
    if step == "select":
        conditions = [v for v in values if graph.node(v).type.dtype.is_bool]
        if not conditions:
            return None
        return graph.add("select", [draw(st.sampled_from(conditions)), a, draw(alike)], loc=loc, group=group)
    operands = [a] + draw(st.lists(alike, min_size=1, max_size=2))
    return graph.add("concat", operands, {"axis": draw(st.integers(0, 2))}, loc=loc, group=group)


def _one_operand(draw: st.DrawFn, step: str, t: TensorType) -> tuple[str, dict]:
    """Op name and attributes for a one-operand step on a value of type `t`."""
    if step == "unary":
        return draw(st.sampled_from(UNARY)), {}
    if step == "cast":
        return "cast", {"dtype": draw(st.sampled_from(DTYPES))}
    if step == "reduce":
        axes = tuple(sorted(draw(st.sets(st.integers(0, max(t.rank - 1, 0)), max_size=t.rank))))
        return draw(st.sampled_from(REDUCTIONS)), {"axes": axes, "keepdims": draw(st.booleans())}
    if step == "transpose":
        return "transpose", {"perm": tuple(draw(st.permutations(range(t.rank))))}
    if step == "reshape":
        return "reshape", {"shape": (t.size,) if draw(st.booleans()) else (1,) + t.shape}
    if step == "broadcast_to":
        return "broadcast_to", {"shape": (draw(st.integers(1, 3)),) + t.shape}
    starts = tuple(draw(st.integers(0, d)) for d in t.shape)
    stops = tuple(draw(st.integers(s, d)) for s, d in zip(starts, t.shape))
    steps = tuple(draw(st.integers(1, 3)) for _ in t.shape)
    return "slice", {"starts": starts, "stops": stops, "steps": steps}


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.booleans())
def test_print_parse_round_trip(graph: Graph, print_locs: bool) -> None:
    text = print_graph(graph, print_locs=print_locs)
    parsed = parse_graph(text)
    assert print_graph(parsed, print_locs=print_locs) == text
    assert parsed == graph
    assert parsed.dims == graph.dims
    assert print_graph(parsed, print_locs=True) == print_graph(graph, print_locs=True) or not print_locs
    # the verifier numbers values as the printer does, so it reports the same problems for both
    assert verify_graph(parsed) == verify_graph(graph)
