"""Every op of the graph IR, lowered one node per kernel and run by the loop-IR evaluator, must match
the reference interpreter; the loop verifier must accept every lowered program."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ir import ops
from ir.dtypes import DType
from ir.graph import Graph
from ir.loops import Scope, walk, Allocate
from ir.types import TensorType
from passes.lowering import NaiveSchedule, lower_to_loops
from passes.lowering.check import check_lowering

FLOATS = [DType.F32, DType.F64, DType.F16, DType.BF16]
INTS = [DType.I8, DType.I32, DType.I64]
NUMERIC = FLOATS + INTS
ALL = NUMERIC + [DType.BOOL]


def single_op(op: str, operand_types: list[TensorType], attrs: dict | None = None,
              type: TensorType | None = None) -> Graph:
    graph = Graph(op)
    params = [graph.add_param(f"p{i}", t) for i, t in enumerate(operand_types)]
    graph.outputs = [graph.add(op, params, attrs, type=type)]
    return graph


def assert_lowers(graph: Graph, schedule: NaiveSchedule | None = None, seed: int = 0) -> None:
    check = check_lowering(graph, schedule, seed)
    assert check.ok, check.report()


def t(shape: tuple[int, ...], dtype: DType) -> TensorType:
    return TensorType(shape, dtype)


UNARY_FLOAT = [op for op in ops.ops_in_group(ops.UNARY) if op not in ("cast", "logical_not", "neg", "abs", "relu")]


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("op", UNARY_FLOAT + ["neg", "abs", "relu"])
def test_unary_float(op: str, dtype: DType) -> None:
    assert_lowers(single_op(op, [t((2, 3), dtype)]))


@pytest.mark.parametrize("dtype", INTS, ids=str)
@pytest.mark.parametrize("op", ["neg", "abs", "relu"])
def test_unary_int(op: str, dtype: DType) -> None:
    assert_lowers(single_op(op, [t((2, 3), dtype)]))


def test_logical_not_and_rank_zero() -> None:
    assert_lowers(single_op("logical_not", [t((3,), DType.BOOL)]))
    assert_lowers(single_op("exp", [t((), DType.F32)]))


@pytest.mark.parametrize("source,target", list(itertools.product(ALL, ALL)), ids=str)
def test_cast(source: DType, target: DType) -> None:
    assert_lowers(single_op("cast", [t((2, 3), source)], {"dtype": target}))


BROADCASTS = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((4, 1, 3), (2, 1))]


@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "maximum", "minimum", "lt", "eq"])
def test_binary_numeric(op: str, dtype: DType, shapes: tuple) -> None:
    assert_lowers(single_op(op, [t(shapes[0], dtype), t(shapes[1], dtype)]))


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("op", ["div", "pow", "ne", "le", "gt", "ge"])
def test_binary_float(op: str, dtype: DType) -> None:
    assert_lowers(single_op(op, [t((2, 3), dtype), t((3,), dtype)]))


@pytest.mark.parametrize("op", ["logical_and", "logical_or", "eq", "ne"])
def test_binary_bool(op: str) -> None:
    assert_lowers(single_op(op, [t((2, 3), DType.BOOL), t((2, 1), DType.BOOL)]))


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_select_broadcasts(dtype: DType) -> None:
    assert_lowers(single_op("select", [t((2, 1), DType.BOOL), t((3,), dtype), t((2, 3), dtype)]))


REDUCE_AXES = [(), (0,), (1,), (2,), (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axes", REDUCE_AXES, ids=str)
@pytest.mark.parametrize("op", ["reduce_sum", "reduce_max", "reduce_min", "reduce_mean"])
def test_reductions_f32(op: str, axes: tuple[int, ...], keepdims: bool) -> None:
    assert_lowers(single_op(op, [t((2, 3, 4), DType.F32)], {"axes": axes, "keepdims": keepdims}))


REDUCTION_DTYPES = [(op, dtype) for op in ("reduce_sum", "reduce_max", "reduce_min", "reduce_mean")
                    for dtype in (DType.F64, DType.F16, DType.BF16, DType.I8, DType.I32, DType.I64)
                    if dtype.is_float or op != "reduce_mean"]


@pytest.mark.parametrize("op,dtype", REDUCTION_DTYPES, ids=str)
def test_reductions_dtypes(op: str, dtype: DType) -> None:
    assert_lowers(single_op(op, [t((3, 17), dtype)], {"axes": (1,), "keepdims": False}))


def test_reduction_accumulates_half_precision_in_f32() -> None:
    """Summing 64 f16 values of 1000 in f16 would stall at 32768+ rounding steps; f32 does not."""
    graph = single_op("reduce_sum", [t((64,), DType.F16)], {"axes": (0,), "keepdims": False})
    program = lower_to_loops(graph)
    accumulators = [node.buffer for node in walk(program.kernels[program.calls[0].kernel].body)
                    if isinstance(node, Allocate)]
    assert [(b.dtype, b.scope) for b in accumulators] == [(DType.F32, Scope.LOCAL)]
    from ir.loop_eval import run_program
    values = np.full(64, 1000.5, dtype=np.float16)
    (result,) = run_program(program, {"p0": values})
    assert result == np.float16(64 * 1000.5)


def test_mean_and_sum_over_empty_axes() -> None:
    assert_lowers(single_op("reduce_sum", [t((2, 0), DType.F32)], {"axes": (1,), "keepdims": True}))
    assert_lowers(single_op("reduce_mean", [t((0, 3), DType.F32)], {"axes": (0,), "keepdims": False}))


MATMULS = [((2, 3), (3, 4)), ((2, 2, 3), (3, 4)), ((2, 3), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 4)),
           ((1, 3), (3, 1)), ((2, 0), (0, 3))]


@pytest.mark.parametrize("shapes", MATMULS, ids=str)
def test_matmul_shapes(shapes: tuple) -> None:
    assert_lowers(single_op("matmul", [t(shapes[0], DType.F32), t(shapes[1], DType.F32)]))


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_matmul_dtypes(dtype: DType) -> None:
    assert_lowers(single_op("matmul", [t((2, 5), dtype), t((5, 3), dtype)]))


def test_matmul_f16_accumulates_in_f32_like_numpy() -> None:
    graph = single_op("matmul", [t((1, 300), DType.F16), t((300, 1), DType.F16)])
    assert_lowers(graph, seed=3)


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))), ids=str)
def test_transpose(perm: tuple[int, ...]) -> None:
    assert_lowers(single_op("transpose", [t((2, 3, 4), DType.F32)], {"perm": perm}))


RESHAPES = [((2, 3, 4), (6, 4)), ((2, 3, 4), (4, 6)), ((2, 3, 4), (24,)), ((2, 3, 4), (4, 3, 2)),
            ((2, 3, 4), (1, 2, 1, 12, 1)), ((6, 4), (2, 3, 4)), ((1, 1), ()), ((), (1, 1)), ((2, 0), (0, 5)),
            ((4, 6), (3, 8))]


@pytest.mark.parametrize("shapes", RESHAPES, ids=str)
def test_reshape(shapes: tuple) -> None:
    assert_lowers(single_op("reshape", [t(shapes[0], DType.I32)], {"shape": shapes[1]}))


@pytest.mark.parametrize("shapes", [((3,), (2, 3)), ((2, 1), (4, 2, 3)), ((1,), (2, 2)), ((), (2, 3))], ids=str)
def test_broadcast_to(shapes: tuple) -> None:
    assert_lowers(single_op("broadcast_to", [t(shapes[0], DType.F16)], {"shape": shapes[1]}))


@pytest.mark.parametrize("window", [((1, 0), (5, 6), (2, 3)), ((0, 0), (5, 6), (1, 1)), ((2, 6), (2, 6), (1, 4)),
                                    ((4, 1), (5, 6), (3, 5))], ids=str)
def test_slice_with_steps(window: tuple) -> None:
    starts, stops, steps = window
    assert_lowers(single_op("slice", [t((5, 6), DType.F32)], {"starts": starts, "stops": stops, "steps": steps}))


@pytest.mark.parametrize("axis", [0, 1])
def test_concat(axis: int) -> None:
    graph = Graph("concat")
    a = graph.add_param("a", t((2, 3), DType.BF16))
    b = graph.add_param("b", t((2, 3) if axis == 0 else (2, 1), DType.BF16))
    graph.outputs = [graph.add("concat", [a, b, a], {"axis": axis})]
    assert_lowers(graph)


def test_concat_of_computed_and_constant_operands() -> None:
    graph = Graph("concat")
    a = graph.add_param("a", t((2, 3), DType.F32))
    e = graph.add("exp", [a])
    c = graph.add_constant(2.5, t((1, 3), DType.F32))
    empty = graph.add("slice", [a], {"starts": (0, 0), "stops": (0, 3), "steps": (1, 1)})
    graph.outputs = [graph.add("concat", [e, c, empty, a], {"axis": 0})]
    assert_lowers(graph)


@pytest.mark.parametrize("dtype,value", [(DType.F32, 0.1), (DType.F16, 0.1), (DType.BF16, 0.1), (DType.I8, -7),
                                         (DType.I64, 2**40), (DType.BOOL, True), (DType.F32, float("inf")),
                                         (DType.F64, float("nan"))], ids=str)
def test_constant_output(dtype: DType, value: object) -> None:
    graph = Graph("constant")
    graph.add_param("unused", t((1,), DType.F32))
    graph.outputs = [graph.add_constant(value, t((2, 2), dtype)), graph.add_constant(value, t((), dtype))]
    assert_lowers(graph)


@pytest.mark.parametrize("dtype", [DType.I32, DType.I64, DType.F32, DType.BF16], ids=str)
@pytest.mark.parametrize("axis", [0, 1])
def test_iota(axis: int, dtype: DType) -> None:
    graph = Graph("iota")
    x = graph.add_param("x", t((3, 4), dtype))
    iota = graph.add("iota", attrs={"axis": axis}, type=t((3, 4), dtype))
    graph.outputs = [iota, graph.add("add", [x, iota])]
    assert_lowers(graph)


def test_constants_and_iotas_are_computed_inline_not_stored() -> None:
    graph = Graph("inline")
    x = graph.add_param("x", t((3, 4), DType.F32))
    half = graph.add_constant(0.5, t((), DType.F32))
    graph.outputs = [graph.add("mul", [x, half])]
    program = lower_to_loops(graph)
    assert list(program.buffers) == ["x", "out0"]
    assert len(program.calls) == 1


def test_outputs_that_are_params_or_repeated() -> None:
    graph = Graph("outputs")
    x = graph.add_param("x", t((2, 3), DType.F32))
    y = graph.add_param("y", t((3,), DType.I32))
    e = graph.add("exp", [x])
    graph.outputs = [x, e, e, y, x]
    program = lower_to_loops(graph)
    assert program.outputs == ["x", "out1", "out1", "y", "x"]
    assert len(program.calls) == 1
    assert_lowers(graph)


def test_program_with_only_params_as_outputs_has_no_kernels() -> None:
    graph = Graph("identity")
    x = graph.add_param("x", t((2,), DType.F32))
    graph.outputs = [x]
    program = lower_to_loops(graph)
    assert program.kernels == {} and program.outputs == ["x"]
    assert_lowers(graph)


def test_dead_nodes_are_not_lowered() -> None:
    graph = Graph("dead")
    x = graph.add_param("x", t((2,), DType.F32))
    graph.add("exp", [x])
    graph.outputs = [graph.add("neg", [x])]
    program = lower_to_loops(graph)
    assert [kernel.attr("nodes") for kernel in program.kernels.values()] == [(graph.outputs[0],)]


def test_buffer_names_avoid_parameter_names() -> None:
    graph = Graph("names")
    out0 = graph.add_param("out0", t((2,), DType.F32))
    t2 = graph.add_param("t2", t((2,), DType.F32))
    a = graph.add("exp", [out0])
    graph.outputs = [graph.add("add", [a, t2])]
    program = lower_to_loops(graph)
    assert len(set(program.buffers)) == 4
    assert_lowers(graph)


def test_kernel_attrs_name_kind_and_nodes() -> None:
    graph = single_op("reduce_sum", [t((2, 3), DType.F32)], {"axes": (1,), "keepdims": False})
    (kernel,) = lower_to_loops(graph).kernels.values()
    assert kernel.attr("kind") == "reduction"
    assert kernel.attr("nodes") == tuple(graph.outputs)
    assert kernel.attr("group") is None
