"""The compiler driver: one `compile(...)` that takes a .nk (or saved .graph) file to a callable Program.

Stages, in order: parse (.nk -> AST) -> specialise (AST + dimension bindings -> graph IR) -> target
compile (graph -> artifact). A saved graph (`niche compile saved.graph`) enters at the graph stage, as
IREE's `--compile-from` does. Symbolic dimensions left free by -D are bound at call time from the
shapes of the arguments; each new binding specialises the program again (cached per binding).

Weights bound to data (`weights=`, `--weights FILE.npz`; `compiler/weights.py`) are attached to every
specialised graph before the passes and are no longer arguments. Arguments of sparse-format
parameters may be scipy matrices or storage tuples; they are validated and handed to artifacts that
take them (`sparse_arguments`) as `ir.sparse.SparseMatrix`, to the others dense (docs/sparsity.md).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from compiler import syntax as ast
from compiler.diagnostics import ArgumentError, CompileError, Diagnostic, InternalError, NicheError, SourceMap
from compiler.frontend import parse, parse_file
from compiler.irgen import IRGen
from compiler.values import is_int
from ir.graph import Graph
from ir.interpreter import InterpreterError, check_input, run_graph
from ir.sparse import SparseMatrix
from targets.base import Artifact, CompileOptions, get_target

PRELUDE = Path(__file__).with_name("prelude.nk")
GRAPH_SUFFIXES = (".graph",)


@functools.cache
def _prelude_text() -> str:
    return PRELUDE.read_text()


def load_prelude(sources: SourceMap) -> ast.Module:
    return parse(_prelude_text(), "<prelude>", sources)


@dataclass(frozen=True)
class ParamSpec:
    """An entry parameter as declared: a dimension is an int, or the name of a symbol inputs may bind."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]
    weight: bool


@dataclass
class Source:
    """A loaded program: a parsed .nk module, or a graph read from its textual form."""

    path: str
    sources: SourceMap
    module: ast.Module | None = None
    prelude: ast.Module | None = None
    graph: Graph | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> Source:
        path = Path(path)
        sources = SourceMap()
        if path.suffix in GRAPH_SUFFIXES:
            from ir.graph_parser import GraphParseError, parse_graph
            try:
                text = path.read_text()
            except OSError as error:
                raise CompileError([Diagnostic(f"cannot read {path}: {error.strerror}")]) from None
            sources.add(str(path), text)
            try:
                graph = parse_graph(text, str(path))
            except GraphParseError as error:
                from ir.graph import Loc
                loc = Loc(str(path), error.line, error.col)
                raise CompileError([sources.diagnostic(error.message, loc)]) from None
            return cls(str(path), sources, graph=graph)
        module = parse_file(path, sources)
        return cls(str(path), sources, module, load_prelude(sources))

    @classmethod
    def from_text(cls, text: str, name: str = "<string>") -> Source:
        sources = SourceMap()
        module = parse(text, name, sources)
        return cls(name, sources, module, load_prelude(sources))

    def specialize(self, defines: Mapping[str, int | float], entry: str | None) -> Graph:
        """The graph IR of the entry function under `defines`."""
        if self.graph is not None:
            if defines and any(self.graph.dims.get(k) != v for k, v in defines.items()):
                raise CompileError([Diagnostic(
                    f"{self.path} is a saved graph with fixed shapes ({_dims_text(self.graph.dims)}); "
                    "-D cannot change them: recompile from the .nk source")])
            if entry is not None and entry != self.graph.name:
                raise CompileError([Diagnostic(f"{self.path} holds graph '{self.graph.name}', not '{entry}'")])
            return self.graph.copy()
        return IRGen(self.module, self.prelude, self.sources, dict(defines)).build(entry)

    def signature(self, defines: Mapping[str, int | float], entry: str | None) -> tuple[list[ParamSpec], set[str]]:
        """The entry parameters with the dimensions that run-time inputs may bind left symbolic,
        and the symbols that have no value yet (neither a definition nor a const default)."""
        if self.graph is not None:
            return [ParamSpec(self.graph.node(p).attr("name"), str(self.graph.node(p).type.dtype),
                              self.graph.node(p).type.shape, bool(self.graph.node(p).attr("weight")))
                    for p in self.graph.params], set()
        gen = IRGen(self.module, self.prelude, self.sources, dict(defines))
        gen.evaluate_globals()
        gen.fail_if_errors()
        func = gen.entry_function(entry)
        specs = []
        free: set[str] = set()
        for param in func.params:
            dims: list[int | str] = []
            for dim in (param.type.dims or ()) if param.type is not None else ():
                if isinstance(dim, ast.Name) and dim.id not in defines:
                    dims.append(dim.id)
                    if gen.lookup_optional(dim.id, _frame()) is None:
                        free.add(dim.id)
                    continue
                try:
                    value = gen.eval(dim, _frame())
                except Exception:  # an expression over a free symbol: checked after specialisation
                    value = None
                dims.append(value if is_int(value) else "?")
            weight = any(d.name == "weight" for d in param.decorators)
            specs.append(ParamSpec(param.name, param.type.name if param.type else "?", tuple(dims), weight))
        return specs, free


def _frame() -> Any:
    from compiler.irgen import _Frame
    return _Frame("<signature>", {})


def _dims_text(dims: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in dims.items()) or "no symbolic dimensions"


class Program:
    """A compiled program: call it with numpy arrays (positionally or by parameter name)."""

    def __init__(self, source: Source, options: CompileOptions) -> None:
        self.source = source
        self.options = options
        self._cache: dict[tuple, tuple[Graph, Artifact]] = {}
        self.signature, self.free_symbols = source.signature(options.defines, options.entry)
        # Weights bound at compile time (compiler/weights.py): not arguments; their shapes bind dimensions.
        from compiler.weights import bound_shapes, load_weights
        self.weights = load_weights(options.weights)
        self._check_weight_names()
        self._weight_shapes = bound_shapes(self.weights)
        self._graph: Graph | None = None
        self._artifact: Artifact | None = None
        initial = self._bindings({}) if self.weights else dict(options.defines)
        if self.free_symbols <= set(initial):  # else wait for the first call's shapes to bind them
            self._graph, self._artifact = self._specialized(initial)

    def _check_weight_names(self) -> None:
        """Every bound name is a @weight of the entry (shapes and data are checked when specialising)."""
        weights = [spec.name for spec in self.signature if spec.weight]
        for name in self.weights:
            if name not in weights:
                what = "a parameter but not a @weight" if name in [s.name for s in self.signature] else \
                    "not a parameter"
                raise CompileError([Diagnostic(f"--weights: '{name}' is {what} of the entry function "
                                               f"(weights: {', '.join(weights) or 'none'})")])

    @property
    def graph(self) -> Graph:
        self._require_specialized()
        return self._graph

    @property
    def artifact(self) -> Artifact:
        self._require_specialized()
        return self._artifact

    def _require_specialized(self) -> None:
        if self._graph is None:
            # Building the graph reports each unbound dimension where the signature uses it.
            self.source.specialize(self.options.defines, self.options.entry)
            symbols = ", ".join(sorted(self.free_symbols))
            raise CompileError([Diagnostic(
                f"dimension(s) {symbols} have no value yet: call the program with inputs (their shapes bind "
                f"them) or compile with defines={{...}} (-D on the command line)")])

    # -- compilation ----------------------------------------------------------------------------

    def _specialized(self, defines: dict[str, int | float]) -> tuple[Graph, Artifact]:
        key = tuple(sorted(defines.items()))
        if key not in self._cache:
            graph = self._specialize(defines)
            graph = self._run_graph_passes(graph)
            target = get_target(self.options.target)
            try:
                artifact = target.compile(graph, self.options)
            except NicheError:
                raise
            except Exception as error:  # a bug in a target: say where, keep the cause for --debug
                raise InternalError(f"internal error in target '{self.options.target}': "
                                    f"{type(error).__name__}: {error}") from error
            self._cache[key] = (graph, artifact)
        return self._cache[key]

    def _specialize(self, defines: Mapping[str, int | float]) -> Graph:
        """The graph IR under `defines`, with the bound weights' data attached."""
        from compiler.weights import bind_weights
        graph = self.source.specialize(defines, self.options.entry)
        return bind_weights(graph, self.weights, self.source.sources)

    def _run_graph_passes(self, graph: Graph) -> Graph:
        from passes.graph_pipeline import run_graph_pipeline
        return run_graph_pipeline(graph, self.options)

    @property
    def name(self) -> str:
        if self.source.graph is not None:
            return self.source.graph.name
        return IRGen(self.source.module, None, self.source.sources).entry_function(self.options.entry).name

    @property
    def target(self) -> str:
        return self.options.target

    @property
    def param_names(self) -> list[str]:
        """The parameters a call passes (bound weights are not among them)."""
        return [spec.name for spec in self.signature if spec.name not in self.weights]

    def ir(self, kind: str = "graph") -> str | bytes:
        """The program at one level: 'graph', 'dot', or any of the target's emit kinds."""
        if kind == "graph":
            from ir.graph_printer import print_graph
            return print_graph(self.graph)
        if kind == "dot":
            from ir.dot import graph_to_dot
            return graph_to_dot(self.graph)
        if kind in self.artifact.emit_kinds:
            return self.artifact.emit(kind)
        if kind == "loops":  # the target has no loops of its own: the unscheduled (naive) lowering
            from ir.loop_printer import print_program
            from passes.lowering import lower_to_loops
            return print_program(lower_to_loops(self.graph))
        kinds = ", ".join(self.emit_kinds)
        raise CompileError([Diagnostic(f"target '{self.target}' cannot emit '{kind}' (it emits: {kinds})")])

    @property
    def emit_kinds(self) -> tuple[str, ...]:
        own = tuple(self.artifact.emit_kinds)
        return ("graph", "dot") + own + (() if "loops" in own else ("loops",))

    # -- calling --------------------------------------------------------------------------------

    def bind_arguments(self, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        names = self.param_names
        if len(args) > len(names):
            raise ArgumentError(f"{self.name}() takes {len(names)} arguments, got {len(args)}")
        bound: dict[str, Any] = dict(zip(names, args))
        for name, value in kwargs.items():
            if name in self.weights:
                raise ArgumentError(_bound_message(name))
            if name not in names:
                raise ArgumentError(f"{self.name}() has no parameter '{name}' (parameters: "
                                    f"{', '.join(names)})")
            if name in bound:
                raise ArgumentError(f"{self.name}() got two values for '{name}'")
            bound[name] = value
        missing = [n for n in names if n not in bound]
        if missing:
            raise ArgumentError(f"{self.name}() is missing argument(s): {', '.join(missing)}")
        return {name: value if isinstance(value, np.ndarray) or _sparse_form(value) else np.asarray(value)
                for name, value in bound.items()}

    def _bindings(self, inputs: Mapping[str, np.ndarray]) -> dict[str, int | float]:
        """Definitions for this call: the compile-time ones plus symbols bound by argument shapes."""
        defines = dict(self.options.defines)
        seen: dict[str, tuple[int, str]] = {}
        for spec in self.signature:
            if spec.name in self._weight_shapes:
                shape = self._weight_shapes[spec.name]
            elif spec.name in inputs:
                shape = _shape_of(inputs[spec.name])
            else:
                continue
            if shape is None:  # a sparse tuple form: its arrays do not say the matrix's shape
                continue
            if len(shape) != len(spec.dims):
                what = "weight" if spec.name in self._weight_shapes else "argument"
                raise ArgumentError(f"{what} '{spec.name}' has rank {len(shape)} (shape {list(shape)}), "
                                    f"expected rank {len(spec.dims)} ({spec.dtype}[{', '.join(map(str, spec.dims))}])")
            for dim, size in zip(spec.dims, shape):
                if not isinstance(dim, str) or dim == "?":
                    continue
                if dim in seen and seen[dim][0] != size:
                    raise ArgumentError(f"dimension {dim} is {seen[dim][0]} in argument '{seen[dim][1]}' but "
                                        f"{size} in argument '{spec.name}'")
                seen[dim] = (size, spec.name)
        for dim, (size, _) in seen.items():
            defines[dim] = size
        return defines

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        outputs = self.run(self.bind_arguments(args, kwargs))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def specialized_for(self, inputs: Mapping[str, np.ndarray]) -> tuple[Graph, Artifact]:
        """The graph and artifact for the dimensions that `inputs` (all or some arguments) bind."""
        graph, artifact = self._graph, self._artifact
        defines = self._bindings(inputs)
        if graph is None or any(graph.dims.get(k) != v for k, v in defines.items()
                                if k not in self.options.defines):
            graph, artifact = self._specialized(defines)
            if self._graph is None:
                self._graph, self._artifact = graph, artifact
        return graph, artifact

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        graph, artifact = self.specialized_for(inputs)
        return artifact.run(self.check_inputs(graph, inputs, artifact))

    def run_reference(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The reference interpreter's outputs on the graph before any pass (the oracle)."""
        graph = self._specialize(self._bindings(inputs))
        return run_graph(graph, self.check_inputs(graph, inputs))

    def reference(self, *args: Any, **kwargs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """Like calling the program, but computed by the reference interpreter."""
        outputs = self.run_reference(self.bind_arguments(args, kwargs))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    @staticmethod
    def check_inputs(graph: Graph, inputs: Mapping[str, Any], artifact: Artifact | None = None) -> dict[str, Any]:
        """The arguments `artifact` runs on (default: a reference run): each checked against its
        parameter; sparse-format ones validated (`compiler.weights`) and passed as `SparseMatrix` to
        artifacts with `sparse_arguments`, dense to the others; bound weights added from the graph's
        data unless the artifact holds them itself (its `bound_weights`)."""
        from compiler.weights import argument_value
        owned = set(getattr(artifact, "bound_weights", ()) or ())
        sparse_ok = bool(getattr(artifact, "sparse_arguments", False))
        checked = {}
        for param in graph.params:
            node = graph.node(param)
            name = node.attr("name")
            if name in graph.weight_data and name not in inputs:  # (passing it is refused by the Program)
                if name not in owned:
                    checked[name] = graph.weight_data[name]
                continue
            if name not in inputs:
                raise ArgumentError(f"missing argument '{name}'")
            value = inputs[name]
            if not node.type.format.is_dense or _sparse_form(value):
                value = argument_value(name, value, node.type)
                if isinstance(value, SparseMatrix):
                    checked[name] = value if sparse_ok else value.to_dense()
                    continue
            try:
                checked[name] = check_input(name, value, node)
            except InterpreterError as error:
                raise ArgumentError(str(error)) from None
        return checked


def _bound_message(name: str) -> str:
    return (f"'{name}' is a weight bound at compile time (--weights / weights=); it is not an argument: "
            "compile again to bind other data")


def _sparse_form(value: Any) -> bool:
    """A sparse container: a SparseMatrix, a scipy.sparse matrix, or a tuple of storage arrays."""
    from ir.sparse import is_scipy_sparse
    return isinstance(value, (SparseMatrix, tuple)) or is_scipy_sparse(value)


def _weight_source(value: Any) -> bool:
    """Whether `weights=` binds data (a mapping, or an .npz path) rather than naming a target option."""
    if value is None or isinstance(value, Mapping):
        return True
    return isinstance(value, (str, Path)) and (str(value).endswith(".npz") or Path(value).is_file())


def _shape_of(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, tuple):
        return None
    shape = getattr(value, "shape", None)
    return tuple(int(d) for d in (shape if shape is not None else np.shape(value)))


def _options(target: str, defines: Mapping[str, int | float] | None, entry: str | None, opt_level: int,
             extra: dict[str, Any]) -> CompileOptions:
    """Keywords that name a CompileOptions field set it (passes=, pass_stats=, ...); the rest go to `extra`."""
    names = {f.name for f in dataclasses.fields(CompileOptions)} - {"extra", "target", "defines", "entry",
                                                                     "opt_level"}
    fields = {key: value for key, value in extra.items() if key in names}
    rest = {key: value for key, value in extra.items() if key not in names}
    if "weights" in fields and not _weight_source(fields["weights"]):
        rest["weights"] = fields.pop("weights")  # a target's own option (the wse's weights="streamed")
    return CompileOptions(target=target, defines=dict(defines or {}), entry=entry, opt_level=opt_level,
                          extra=rest, **fields)


def compile(source: str | Path, target: str = "ref", *, defines: Mapping[str, int | float] | None = None,
            entry: str | None = None, opt_level: int = 2, **extra: Any) -> Program:
    """Compile a .nk file (or a saved .graph) for `target`; returns a callable Program."""
    options = _options(target, defines, entry, opt_level, extra)
    return Program(Source.from_file(source), options)


def compile_string(text: str, target: str = "ref", *, name: str = "<string>",
                   defines: Mapping[str, int | float] | None = None, entry: str | None = None,
                   opt_level: int = 2, **extra: Any) -> Program:
    """Like `compile`, from source text."""
    options = _options(target, defines, entry, opt_level, extra)
    return Program(Source.from_text(text, name), options)


__all__ = ["Program", "compile", "compile_string", "CompileOptions", "Source", "ParamSpec"]
