"""The op table's attribute checks and the shape and dtype helpers the type rules use."""

from __future__ import annotations

import enum

import pytest

from ir import ops
from ir.dtypes import DType, parse_dtype
from ir.types import TensorType, broadcast_shapes


class Axis(enum.IntEnum):
    ROWS = 0
    COLS = 1


def test_attributes_are_completed_and_checked() -> None:
    assert ops.check_attrs("param", {"name": "x", "index": 0}) == {"name": "x", "index": 0, "weight": False}
    assert ops.check_attrs("transpose", {"perm": (Axis.COLS, Axis.ROWS)}) == {"perm": (1, 0)}  # int subclasses
    with pytest.raises(ops.OpError, match=r"transpose: attribute 'perm' must be ints, got \(True, 0\)"):
        ops.check_attrs("transpose", {"perm": (True, 0)})
    with pytest.raises(ops.OpError, match="reshape needs attribute 'shape'"):
        ops.check_attrs("reshape", {})
    with pytest.raises(ops.OpError, match="mul has no attribute\\(s\\) axis, perm"):
        ops.check_attrs("mul", {"perm": (0,), "axis": 1})
    with pytest.raises(ops.OpError, match="param: attribute 'weight' must be bool, got 1"):
        ops.check_attrs("param", {"name": "x", "index": 0, "weight": 1})


def test_operands_of_one_dtype() -> None:
    f32 = ops.infer_type("add", [TensorType((2,), DType.F32)] * 2, {})
    assert f32 == TensorType((2,), DType.F32)
    with pytest.raises(ops.OpError, match="add needs operands of one dtype, got f32 and f16"):
        ops.infer_type("add", [TensorType((2,), DType.F32), TensorType((2,), DType.F16)], {})


def test_broadcasting_equal_and_unequal_shapes() -> None:
    assert broadcast_shapes((2, 3), (2, 3), (2, 3)) == (2, 3)
    assert broadcast_shapes((2, 1), (3,)) == (2, 3)
    assert broadcast_shapes() == ()
    with pytest.raises(ValueError, match=r"shapes \[2\] and \[3\] do not broadcast"):
        broadcast_shapes((2,), (3,))


def test_dtype_names() -> None:
    assert parse_dtype("bf16") is DType.BF16 and parse_dtype(DType.I8) is DType.I8
    assert parse_dtype("BF16") is None and parse_dtype("x") is None and parse_dtype(3) is None
