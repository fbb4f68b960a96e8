"""Values for weights bound at compile time, and for sparse-format parameters at call time.

Binding (`--weights FILE.npz`, `compile(..., weights={name: value})`): each named `@weight`
parameter gets its data before the graph passes run, in `Graph.weight_data` (a dense array in the
parameter's dtype, the meaning of the weight whatever its format), so passes see the real zeros and
patterns and targets bake the data into what they build. A bound weight is no longer an argument:
calling the program with it is an error, since passes may have specialised the program to its data
(pruned it, chosen a format for its zeros). Its shape binds symbolic dimensions like an argument's.

Accepted values, for a weight or for an argument of a parameter declared `<csr>`, `<csc>`,
`<bsr(R, C)>` or `<N:M>`: a numpy array (dense; converted to the format, which must be able to hold
it: an N:M parameter rejects a group with too many non-zeros), a scipy.sparse matrix, an
`ir.sparse.SparseMatrix`, or the format's arrays as a tuple (see `ir.sparse`): CSR/CSC/BSR
`(values, indices, pointers)`, N:M `(values, positions)`. A matrix parameter without a format takes
the same containers (a tuple is read as CSR) and gets their dense values. In a .npz file a sparse weight may be stored
as `NAME.values`, `NAME.indices`, `NAME.pointers` (`NAME.positions` for N:M) instead of `NAME`.
Malformed arrays (unsorted, duplicate or out-of-range indices, wrong nnz, bad pointers) are reported
with the parameter's name and never reach a kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from compiler.diagnostics import ArgumentError, CompileError, Diagnostic
from ir.dtypes import to_numpy
from ir.graph import Graph
from ir.sparse import SparseFormatError, SparseMatrix, from_arrays, from_dense, from_scipy, is_scipy_sparse
from ir.types import Format, TensorType

_PARTS = ("values", "indices", "pointers", "positions")


def load_weights(source: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """name -> value from a .npz path or a mapping (values are converted when bound, not here)."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    if not isinstance(source, (str, Path)):
        raise CompileError([Diagnostic(f"weights= takes a .npz path or a mapping of name -> array, got "
                                       f"{type(source).__name__}")])
    path = Path(source)
    if not path.is_file():
        raise CompileError([Diagnostic(f"--weights: no such file '{source}'")])
    try:
        with np.load(path, allow_pickle=False) as loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, AttributeError) as error:
        raise CompileError([Diagnostic(f"--weights: cannot read '{source}' as a .npz file: {error}")]) from None
    return _group_parts(arrays, str(source))


def _group_parts(arrays: dict[str, np.ndarray], where: str) -> dict[str, Any]:
    """`NAME.values`, `NAME.indices`, ... become one tuple per NAME; other keys stay arrays."""
    weights: dict[str, Any] = {}
    parts: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        name, dot, part = key.rpartition(".")
        if dot and part in _PARTS:
            parts.setdefault(name, {})[part] = array
        else:
            weights[key] = array
    for name, found in parts.items():
        if name in weights:
            raise CompileError([Diagnostic(f"--weights {where}: '{name}' is stored both dense and as "
                                           f"{', '.join(f'{name}.{p}' for p in found)}")])
        if "positions" in found:
            order = ("values", "positions")
        else:
            order = ("values", "indices", "pointers")
        missing = [p for p in order if p not in found]
        extra = [p for p in found if p not in order]
        if missing or extra:
            raise CompileError([Diagnostic(
                f"--weights {where}: sparse weight '{name}' needs {', '.join(f'{name}.{p}' for p in order)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unexpected {', '.join(extra)}" if extra else ""))])
        weights[name] = tuple(found[p] for p in order)
    return weights


def bound_shapes(weights: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape of each bound value that has one by itself (tuples need their parameter's type)."""
    shapes = {}
    for name, value in weights.items():
        if isinstance(value, tuple):
            continue
        shape = getattr(value, "shape", None)
        if shape is None:
            shape = np.shape(value)
        shapes[name] = tuple(int(d) for d in shape)
    return shapes


# -- conversion -----------------------------------------------------------------------------------


def as_matrix(value: Any, type: TensorType) -> SparseMatrix | np.ndarray:
    """`value` for a parameter of `type`: a validated SparseMatrix for a sparse format, else an array.

    Raises ValueError (a SparseFormatError for malformed sparse data) with a message that names what
    is wrong but not the parameter (the caller adds it)."""
    fmt = type.format
    if fmt.is_dense:
        if isinstance(value, SparseMatrix):
            return value.to_dense()
        if is_scipy_sparse(value):
            return value.toarray()
        if isinstance(value, tuple):  # read as CSR: the parameter declares no format to say otherwise
            if len(value) != 3 or type.rank != 2:
                raise ValueError(f"a tuple of arrays for a parameter without a format ({type}) is read as CSR "
                                 f"(values, indices, pointers) of a matrix; got {len(value)} arrays")
            return from_arrays(value, Format("csr"), type.shape).to_dense()
        return value if isinstance(value, np.ndarray) else np.asarray(value)
    if isinstance(value, SparseMatrix):
        matrix = value if value.format == fmt else _convert(value, fmt)
    elif is_scipy_sparse(value):
        matrix = from_scipy(value, fmt)
    elif isinstance(value, tuple):
        matrix = from_arrays(value, fmt, type.shape)
    else:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        if tuple(array.shape) != type.shape:
            raise ValueError(f"has shape {list(array.shape)}, expected {list(type.shape)}")
        matrix = from_dense(array, fmt)
    if tuple(matrix.shape) != type.shape:
        raise ValueError(f"has shape {list(matrix.shape)}, expected {list(type.shape)}")
    return _in_dtype(matrix, type)


def _convert(matrix: SparseMatrix, fmt: Any) -> SparseMatrix:
    from ir.sparse import convert, validate
    validate(matrix)
    return convert(matrix, fmt)


def _in_dtype(matrix: SparseMatrix, type: TensorType) -> SparseMatrix:
    want = type.dtype
    kind = matrix.values.dtype.kind
    if want.is_float and kind not in "fiu" or want.is_int and kind not in "iu" or want.is_bool and kind != "b":
        raise ValueError(f"has values of dtype {matrix.values.dtype}, expected {want}")
    values = to_numpy(matrix.values, want)
    return SparseMatrix(matrix.format, matrix.shape, np.ascontiguousarray(values), matrix.indices, matrix.pointers)


def weight_data(name: str, value: Any, type: TensorType) -> np.ndarray:
    """The dense data of weight `name` in its parameter's dtype; ValueError saying what is wrong."""
    if isinstance(value, np.ndarray) or not (isinstance(value, (tuple, SparseMatrix)) or is_scipy_sparse(value)):
        array = np.asarray(value)
        if tuple(array.shape) != type.shape:
            raise ValueError(f"has shape {list(array.shape)}, but the parameter is {type}")
        kind = array.dtype.kind
        want = type.dtype
        if want.is_float and kind not in "fiu" or want.is_int and kind not in "iu" or want.is_bool and kind != "b":
            raise ValueError(f"has dtype {array.dtype}, but the parameter is {type}")
        if not type.format.is_dense:
            from_dense(array, type.format)  # checks that the format can hold it (N:M patterns)
        return np.ascontiguousarray(to_numpy(array, want))
    matrix = as_matrix(value, type)
    return matrix.to_dense() if isinstance(matrix, SparseMatrix) else matrix


def bind_weights(graph: Graph, weights: Mapping[str, Any], sources: Any = None) -> Graph:
    """A copy of `graph` with `weights` in its `weight_data`; CompileError (at the parameter's place in
    the source, with `sources` a SourceMap) for a name that is no weight, or data that does not fit."""
    if not weights:
        return graph
    graph = graph.copy()
    declared = [graph.node(p).attr("name") for p in graph.params if graph.node(p).attr("weight")]
    problems = []
    for name, value in weights.items():
        param = graph.param_by_name(name)
        if param is None or not graph.node(param).attr("weight"):
            what = "a parameter but not a @weight" if param is not None else "not a parameter"
            problems.append(Diagnostic(f"--weights: '{name}' is {what} of '{graph.name}' (weights: "
                                       f"{', '.join(declared) or 'none'})"))
            continue
        node = graph.node(param)
        try:
            graph.weight_data[name] = weight_data(name, value, node.type)
        except (ValueError, TypeError) as error:
            separator = ": " if isinstance(error, SparseFormatError) else " "
            message = f"weight '{name}' (bound at compile time){separator}{error}"
            problems.append(sources.diagnostic(message, node.loc) if sources is not None
                            else Diagnostic(message, node.loc))
    if problems:
        raise CompileError(problems)
    return graph


def argument_value(name: str, value: Any, type: TensorType) -> SparseMatrix | np.ndarray:
    """A call argument for a parameter of `type` (see `as_matrix`); ArgumentError naming `name`."""
    try:
        return as_matrix(value, type)
    except SparseFormatError as error:
        raise ArgumentError(f"argument '{name}' ({type}): {error}") from None
    except (ValueError, TypeError) as error:
        raise ArgumentError(f"argument '{name}' {error}") from None
