"""The reference interpreter: executes graph IR with numpy. It is the definition of every op.

Each op's result is the numpy function of the same name applied to its operands, converted to the
node's dtype. bf16 values are computed in f32 and rounded to bf16 after every op (`round_bf16`).
Transcendental ops on f16 compute in f32 and round once, which is what numpy does for float16 ufuncs.
Integer overflow wraps as in numpy. Every other target is tested against this module.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from ir.dtypes import DType, to_numpy
from ir.graph import Graph, Node


class InterpreterError(Exception):
    """The program cannot be run on the given inputs."""


def _gelu(x: np.ndarray) -> np.ndarray:
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(inner))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Stable for large |x| in either direction.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.zeros((), dtype=x.dtype))


_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neg": np.negative,
    "abs": np.abs,
    "relu": _relu,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: np.reciprocal(np.sqrt(x)),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "gelu": _gelu,
    "silu": lambda x: x * _sigmoid(x),
    "sin": np.sin,
    "cos": np.cos,
    "logical_not": np.logical_not,
}

_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
}

_REDUCE = {"reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min, "reduce_mean": np.mean}


def evaluate_node(node: Node, operands: list[np.ndarray]) -> np.ndarray:
    """The value of one operation applied to numpy operands (already in their storage dtypes)."""
    op, attrs, out = node.op, node.attr_dict, node.type
    with np.errstate(all="ignore"):
        if op in _UNARY:
            result = _UNARY[op](operands[0])
        elif op in _BINARY:
            result = _BINARY[op](operands[0], operands[1])
        elif op == "select":
            result = np.where(operands[0], operands[1], operands[2])
        elif op == "cast":
            result = operands[0]
            if out.dtype.is_int and operands[0].dtype.kind == "f":
                # Float to int truncates toward zero; NaN and out-of-range values are undefined in C.
                # Define them as numpy's astype does on this platform, after clipping to the range.
                info = np.iinfo(out.dtype.numpy)
                result = np.clip(np.nan_to_num(result), info.min, info.max)
        elif op in _REDUCE:
            axes = attrs["axes"]
            result = _REDUCE[op](operands[0], axis=axes, keepdims=attrs["keepdims"])
        elif op == "matmul":
            result = np.matmul(operands[0], operands[1])
        elif op == "transpose":
            result = np.transpose(operands[0], attrs["perm"])
        elif op == "reshape":
            result = np.reshape(operands[0], attrs["shape"])
        elif op == "broadcast_to":
            result = np.broadcast_to(operands[0], attrs["shape"])
        elif op == "slice":
            index = tuple(slice(a, b, c) for a, b, c in zip(attrs["starts"], attrs["stops"], attrs["steps"]))
            result = operands[0][index]
        elif op == "concat":
            result = np.concatenate(operands, axis=attrs["axis"])
        elif op == "constant":
            result = np.full(out.shape, attrs["value"], dtype=out.dtype.numpy)
        elif op == "iota":
            axis = attrs["axis"]
            line = np.arange(out.shape[axis], dtype=out.dtype.numpy)
            shape = [1] * out.rank
            shape[axis] = out.shape[axis]
            result = np.broadcast_to(line.reshape(shape), out.shape)
        else:
            raise InterpreterError(f"the reference interpreter has no rule for '{op}'")
        return np.ascontiguousarray(to_numpy(np.asarray(result), out.dtype)).reshape(out.shape)


def check_input(name: str, value: np.ndarray, node: Node) -> np.ndarray:
    """Check one argument against its parameter's type; returns it in the storage dtype."""
    expected = node.type
    array = np.asarray(value)
    if tuple(array.shape) != expected.shape:
        raise InterpreterError(
            f"argument '{name}' has shape {list(array.shape)}, expected {list(expected.shape)}")
    want = expected.dtype.numpy
    if array.dtype != want:
        lossless = expected.dtype is DType.BF16 and array.dtype.kind == "f"
        if not lossless:
            raise InterpreterError(f"argument '{name}' has dtype {array.dtype}, expected {expected.dtype}"
                                   f" (numpy {want})")
    return to_numpy(array, expected.dtype)


def run_graph(graph: Graph, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run `graph` on named inputs; returns the outputs in order."""
    values: dict[int, np.ndarray] = {}
    names = {graph.node(p).attr("name") for p in graph.params}
    unknown = set(inputs) - names
    if unknown:
        raise InterpreterError(f"no parameter named {', '.join(sorted(unknown))}")
    for node_id, node in graph.nodes():
        if node.op == "param":
            name = node.attr("name")
            if name not in inputs:
                raise InterpreterError(f"missing argument '{name}'")
            values[node_id] = check_input(name, inputs[name], node)
        else:
            values[node_id] = evaluate_node(node, [values[o] for o in graph.operands(node_id)])
    return [values[o] for o in graph.outputs]
