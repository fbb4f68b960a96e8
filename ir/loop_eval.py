"""A slow reference evaluator for the loop IR: runs kernels element by element with numpy scalars.

It gives loop IR the graph interpreter's numerics (each scalar op is the interpreter's numpy rule on a
0-d array of the op's dtype), so a lowering can be tested without LLVM on small sizes. Loop
annotations do not change the meaning: parallel, vectorized and unrolled loops run serially. Local
buffers start filled with NaN (floats) or a sentinel (ints), so a read before any write shows up.
Out-of-range accesses raise `LoopEvalError` naming the buffer and the index.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ir.dtypes import DType, to_numpy
from ir.interpreter import _BINARY, _UNARY
from ir.loops import (INDEX, Allocate, Binary, Buffer, Cast, Const, Expr, For, If, Kernel, Let, Load,
                      LoopProgram, Select, Seq, Stmt, Store, Unary, Var)


class LoopEvalError(Exception):
    """The loop IR did something undefined: an out-of-range access, an unknown buffer or variable."""


def _scalar(value: object, dtype: DType) -> np.ndarray:
    return to_numpy(np.asarray(value), dtype).reshape(())


class _Evaluator:
    def __init__(self, buffers: dict[str, np.ndarray]) -> None:
        self.buffers = buffers
        self.scalars: dict[str, object] = {}

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, expr: Expr) -> object:
        if isinstance(expr, Const):
            return int(expr.value) if expr.dtype is INDEX else _scalar(expr.value, expr.dtype)
        if isinstance(expr, Var):
            try:
                return self.scalars[expr.name]
            except KeyError:
                raise LoopEvalError(f"variable '{expr.name}' is not defined here") from None
        if isinstance(expr, Load):
            array = self._buffer(expr.buffer)
            index = self._index(expr.buffer, array, expr.indices)
            value = array[index]
            return int(value) if expr.dtype is INDEX else _scalar(value, expr.dtype)
        if isinstance(expr, Unary):
            operand = self.expr(expr.operand)
            if expr.dtype is INDEX and not isinstance(operand, np.ndarray):
                return -operand if expr.op == "neg" else abs(operand) if expr.op == "abs" else max(operand, 0)
            with np.errstate(all="ignore"):
                return _scalar(_UNARY[expr.op](np.asarray(operand)), expr.dtype)
        if isinstance(expr, Binary):
            return self._binary(expr)
        if isinstance(expr, Select):
            cond = self.expr(expr.cond)
            return self.expr(expr.true_value) if bool(cond) else self.expr(expr.false_value)
        if isinstance(expr, Cast):
            operand = self.expr(expr.operand)
            if expr.dtype is INDEX:
                return int(operand)
            source = np.asarray(operand)
            if expr.dtype.is_int and source.dtype.kind == "f":
                info = np.iinfo(expr.dtype.numpy)
                source = np.clip(np.nan_to_num(source), info.min, info.max)
            return _scalar(source, expr.dtype)
        raise LoopEvalError(f"not a loop IR expression: {expr!r}")

    def _binary(self, expr: Binary) -> object:
        left = self.expr(expr.left)
        right = self.expr(expr.right)
        if not isinstance(left, np.ndarray) and not isinstance(right, np.ndarray):  # index arithmetic
            op = expr.op
            if op == "add":
                return left + right
            if op == "sub":
                return left - right
            if op == "mul":
                return left * right
            if op == "floordiv":
                if right == 0:
                    raise LoopEvalError("index division by zero")
                return left // right
            if op == "mod":
                if right == 0:
                    raise LoopEvalError("index modulo by zero")
                return left % right
            if op == "maximum":
                return max(left, right)
            if op == "minimum":
                return min(left, right)
            if op in ("eq", "ne", "lt", "le", "gt", "ge"):
                return _scalar(_BINARY[op](left, right), DType.BOOL)
            raise LoopEvalError(f"'{op}' is not an index operation")
        with np.errstate(all="ignore"):
            if expr.op == "floordiv":
                value = np.floor_divide(left, right)
            elif expr.op == "mod":
                value = np.mod(left, right)
            else:
                value = _BINARY[expr.op](np.asarray(left), np.asarray(right))
        return _scalar(value, expr.dtype)

    def _buffer(self, name: str) -> np.ndarray:
        try:
            return self.buffers[name]
        except KeyError:
            raise LoopEvalError(f"buffer '{name}' is not defined here") from None

    def _index(self, name: str, array: np.ndarray, indices: tuple[Expr, ...]) -> tuple[int, ...]:
        index = tuple(int(self.expr(i)) for i in indices)
        if len(index) != array.ndim or any(not 0 <= i < d for i, d in zip(index, array.shape)):
            raise LoopEvalError(f"access {name}{list(index)} is out of range for shape {list(array.shape)}")
        return index

    # -- statements ----------------------------------------------------------------------------

    def stmt(self, stmt: Stmt) -> None:
        if isinstance(stmt, Seq):
            for child in stmt.stmts:
                self.stmt(child)
        elif isinstance(stmt, For):
            start = int(self.expr(stmt.start))
            extent = int(self.expr(stmt.extent))
            saved = self.scalars.get(stmt.var)
            for value in range(start, start + extent * stmt.step, stmt.step):
                self.scalars[stmt.var] = value
                self.stmt(stmt.body)
            self._restore(stmt.var, saved)
        elif isinstance(stmt, Store):
            array = self._buffer(stmt.buffer)
            index = self._index(stmt.buffer, array, stmt.indices)
            value = self.expr(stmt.value)
            array[index] = value
        elif isinstance(stmt, If):
            if bool(self.expr(stmt.cond)):
                self.stmt(stmt.then_body)
            elif stmt.else_body is not None:
                self.stmt(stmt.else_body)
        elif isinstance(stmt, Let):
            saved = self.scalars.get(stmt.var)
            self.scalars[stmt.var] = self.expr(stmt.value)
            self.stmt(stmt.body)
            self._restore(stmt.var, saved)
        elif isinstance(stmt, Allocate):
            buffer = stmt.buffer
            saved_buffer = self.buffers.get(buffer.name)
            self.buffers[buffer.name] = _uninitialized(buffer)
            self.stmt(stmt.body)
            if saved_buffer is None:
                del self.buffers[buffer.name]
            else:
                self.buffers[buffer.name] = saved_buffer
        else:
            raise LoopEvalError(f"not a loop IR statement: {stmt!r}")

    def _restore(self, name: str, saved: object) -> None:
        if saved is None:
            self.scalars.pop(name, None)
        else:
            self.scalars[name] = saved


def _uninitialized(buffer: Buffer) -> np.ndarray:
    dtype = buffer.dtype
    if dtype.is_float:
        return np.full(buffer.shape, np.nan, dtype=dtype.numpy)
    if dtype.is_bool:
        return np.zeros(buffer.shape, dtype=np.bool_)
    return np.full(buffer.shape, np.iinfo(dtype.numpy).min // 2, dtype=dtype.numpy)


def run_kernel(kernel: Kernel, arrays: Mapping[str, np.ndarray]) -> None:
    """Run one kernel on named arrays (modified in place for the buffers it writes)."""
    buffers = {}
    for param in kernel.params:
        if param.name not in arrays:
            raise LoopEvalError(f"kernel '{kernel.name}' needs buffer '{param.name}'")
        array = arrays[param.name]
        if tuple(array.shape) != param.shape:
            raise LoopEvalError(f"buffer '{param.name}' has shape {list(array.shape)}, kernel '{kernel.name}' "
                                f"expects {list(param.shape)}")
        buffers[param.name] = array
    _Evaluator(buffers).stmt(kernel.body)


def run_program(program: LoopProgram, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run a whole loop program; `inputs` is keyed by input buffer name. Returns the outputs in order."""
    arrays: dict[str, np.ndarray] = {}
    for name, buffer in program.buffers.items():
        if name in program.inputs:
            if name not in inputs:
                raise LoopEvalError(f"missing input '{name}'")
            arrays[name] = to_numpy(np.array(inputs[name]), buffer.dtype).reshape(buffer.shape)
        else:
            arrays[name] = _uninitialized(buffer)
    for call in program.calls:
        kernel = program.kernels[call.kernel]
        if len(call.args) != len(kernel.params):
            raise LoopEvalError(f"call of '{call.kernel}' passes {len(call.args)} buffers for "
                                f"{len(kernel.params)} parameters")
        run_kernel(kernel, {param.name: arrays[arg] for param, arg in zip(kernel.params, call.args)})
    return [arrays[name].copy() for name in program.outputs]
