"""The CPU program's input buffers from a call's arguments: dense arrays, sparse matrices, bound weights.

The loop program's inputs are buffers, not parameters: a sparse parameter becomes the arrays of the
storage each kernel reads (`passes.lowering.sparse.SparseStorage`: values, indices, pointers, chunks;
CSR of W^T for `X @ W`), plus its dense buffer when some kernel reads it densely. `InputLayout` maps a
call's arguments (by parameter name) onto those buffers:

* a dense parameter's array is checked as before (dtype, shape, contiguity, alignment);
* a sparse parameter's value (a validated `ir.sparse.SparseMatrix`, from `compiler.weights`, or
  anything that module accepts) is converted to each storage (`SparseStorage.pack`), and every array
  is checked against its buffer: exact shapes for pointers, chunks and N:M arrays; values and indices
  may be shorter than their buffer, which is declared at the largest size the matrix could need (the
  kernels read up to `pointers[rows]`, which `ir.sparse.validate` has checked is their length);
* weights bound at compile time are the artifact's own: converted and packed once, here, when the
  artifact is built; a call that passes one is refused (`bound_weights` tells the driver).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from compiler.diagnostics import ArgumentError
from ir.dtypes import DType, to_numpy
from ir.graph import Graph
from ir.loops import Buffer, LoopProgram


class InputLayout:
    def __init__(self, graph: Graph, program: LoopProgram, storages: tuple = ()) -> None:
        self.program = program
        self.types = {graph.node(p).attr("name"): graph.node(p).type for p in graph.params}
        self.param_names = list(self.types)
        self.bound_weights = frozenset(graph.weight_data)
        self.storages = {name: [s for s in storages if s.param == name] for name in self.types}
        self._own: dict[str, np.ndarray] = {}  # buffer -> array, for bound weights
        for name in self.bound_weights:
            self._own.update(self._buffers_of(name, graph.weight_data[name], bound=True))

    def arrays(self, inputs: Mapping[str, Any]) -> list[np.ndarray]:
        """One array per program input buffer, in order, from the arguments `inputs` (by parameter)."""
        from targets.cpu.artifact import _check_array
        unknown = set(inputs) - set(self.param_names)
        if unknown:
            raise ArgumentError(f"no parameter named {', '.join(sorted(unknown))} "
                                f"(parameters: {', '.join(self.param_names)})")
        by_buffer = dict(self._own)
        for name in self.param_names:
            if name in self.bound_weights:
                if name in inputs:
                    raise ArgumentError(f"'{name}' is a weight bound at compile time; it is not an argument")
                continue
            if name not in inputs:
                raise ArgumentError(f"missing argument '{name}'")
            by_buffer.update(self._buffers_of(name, inputs[name]))
        arrays = []
        for buffer_name in self.program.inputs:
            buffer = self.program.buffers[buffer_name]
            array = by_buffer[buffer_name]
            if buffer_name in self.types:
                array = _check_array(f"argument '{buffer_name}'", array, buffer)
                if buffer.dtype is DType.BF16:
                    array = _bf16_bits(array)
            arrays.append(array)
        return arrays

    def _buffers_of(self, name: str, value: Any, bound: bool = False) -> dict[str, np.ndarray]:
        """The arrays of parameter `name`'s buffers for `value` (dense buffers are checked later)."""
        type = self.types[name]
        storages = self.storages[name]
        if type.format.is_dense:
            array = value
            if bound:
                array = np.ascontiguousarray(to_numpy(np.asarray(value), type.dtype))
            return {name: array}
        dense_read = name in self.program.inputs
        result: dict[str, np.ndarray] = {}
        if bound and not dense_read and all(s.bound is not None for s in storages):
            matrix = None  # packed by the lowering already
        else:
            from compiler.weights import argument_value
            matrix = argument_value(name, value, type)
        if dense_read:
            result[name] = value if bound else np.ascontiguousarray(matrix.to_dense())
        for storage in storages:
            parts = storage.bound if bound and storage.bound is not None else storage.pack(matrix)
            for index, (buffer, array) in enumerate(zip(storage.buffers, parts)):
                result[buffer.name] = _storage_array(name, buffer, array, storage.variable(index))
        return result


def _storage_array(name: str, buffer: Buffer, array: np.ndarray, variable: bool) -> np.ndarray:
    """`array` in `buffer`'s storage type, checked to fit it (see the module docstring)."""
    array = np.ascontiguousarray(to_numpy(array, buffer.dtype))
    if buffer.dtype is DType.BF16:
        array = _bf16_bits(array)
    fits = variable and array.ndim == len(buffer.shape) and tuple(array.shape[1:]) == tuple(buffer.shape[1:]) \
        and array.shape[0] <= buffer.shape[0]
    if tuple(array.shape) != tuple(buffer.shape) and not fits:
        raise ArgumentError(f"argument '{name}': its sparse storage needs {buffer.name} of shape "
                            f"{list(buffer.shape)}, got {list(array.shape)}")
    return array


def _bf16_bits(array: np.ndarray) -> np.ndarray:
    from targets.cpu.artifact import _to_bf16_bits
    return _to_bf16_bits(array)
