"""AST -> graph IR: evaluate the entry function with user functions inlined and loops unrolled.

The generator is an abstract interpreter over the AST. Compile-time values (ints, tuples, dtypes)
are computed directly; tensor operations add nodes to the graph. Calls of user functions and of the
prelude (softmax, layernorm, rmsnorm, causal_mask) are inlined, `for` loops are unrolled, and
`a if c else b` evaluates only the chosen side, so the graph holds only primitive operations.
Symbolic dimensions must have values by now (from -D, a const default, or the shapes of run-time
inputs, which the driver turns into definitions).

Errors are collected per statement: a failing statement records its diagnostic and binds its targets
to POISON, which silences errors that only follow from the first one, so a user sees several
independent errors at once.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from compiler import operators
from compiler import syntax as ast
from compiler.builtins import BUILTINS, call_builtin
from compiler.diagnostics import CompileError, Diagnostic, SourceMap
from compiler.values import (POISON, GenError, PoisonError, StaticRange, Tensor, Value, describe,
                             is_int, is_number)
from ir import ops
from ir.dtypes import DType, parse_dtype, promote
from ir.graph import Graph, Loc
from ir.types import DENSE, Format, TensorType, broadcast_shapes
from passes.collector import collector_paused

MAX_DIAGNOSTICS = 20
MAX_CALL_DEPTH = 64
DEFAULT_FLOAT = DType.F32
DEFAULT_INT = DType.I32

_CONSTANT_NAMES: dict[str, Value] = {
    "true": True, "false": False, "True": True, "False": False, "None": None,
    "inf": math.inf, "nan": math.nan, "pi": math.pi,
}
_STATIC_TYPES = {"int", "float", "bool"}
_DTYPE_NAMES = frozenset(dtype.value for dtype in DType)  # the names parse_dtype knows


def _is_static_type(type_expr: ast.TypeExpr) -> bool:
    """`int`, `float` and a bare `bool` are compile-time types; `bool[N]` is a tensor type."""
    return type_expr.name in _STATIC_TYPES and type_expr.dims is None


@dataclass
class _Frame:
    """Local names of one function activation."""

    func: str
    names: dict[str, Value]


class _Return(Exception):
    def __init__(self, value: Value) -> None:
        self.value = value


class IRGen:
    """Builds the graph of one entry function for one set of dimension bindings."""

    def __init__(self, module: ast.Module, prelude: ast.Module | None, sources: SourceMap,
                 defines: dict[str, int | float] | None = None) -> None:
        self.module = module
        self.functions: dict[str, ast.FuncDef] = dict(prelude.funcs) if prelude else {}
        self.functions.update(module.funcs)
        self.sources = sources
        self.defines = dict(defines or {})
        self.diagnostics: list[Diagnostic] = []
        self.graph = Graph()
        self.globals: dict[str, Value] = {}
        self.call_stack: list[tuple[str, Loc]] = []
        self._constants: dict[tuple, Tensor] = {}
        self._reported: set[str] = set()  # messages of signature errors already reported
        # (op, operand types, attributes with their classes) -> the type Graph.add inferred for it. Type
        # inference is a function of exactly these (a Tensor's type is its node's, and nodes do not change
        # while the graph is built), so passing the remembered type gives the node Graph.add would have
        # made; Graph.add still checks the attributes and operands every time, and an operation whose
        # inference failed is never remembered, so its error is raised again.
        self._inferred: dict[tuple, TensorType] = {}
        # AST class -> the function `_eval_<class name>` of this generator's class, looked up once per AST
        # class (by `eval`). Functions, not bound methods: those would hold the generator in a reference
        # cycle, which keeps it and its graph alive until the cyclic collector runs.
        self._evaluators: dict[type, Any] = {}

    # -- diagnostics ----------------------------------------------------------------------------

    def error(self, message: str, loc: Loc | None) -> GenError:
        return GenError(message, loc)

    def record(self, error: GenError) -> None:
        notes = error.notes + tuple(f"in the call of '{name}' at {loc}" for name, loc in reversed(self.call_stack))
        self.diagnostics.append(self.sources.diagnostic(error.message, error.loc, notes))
        if len(self.diagnostics) >= MAX_DIAGNOSTICS:
            raise CompileError(self.diagnostics + [Diagnostic("too many errors; stopping")])

    def fail_if_errors(self) -> None:
        if self.diagnostics:
            raise CompileError(self.diagnostics)

    # -- globals and the entry point -----------------------------------------------------------

    def evaluate_globals(self) -> None:
        """Evaluate the consts in order; a definition (-D) replaces a const's own value."""
        for name, value in self.defines.items():  # -D DT=bf16 (or defines={"DT": "bf16"}) names a dtype
            if isinstance(value, str) and parse_dtype(value) is not None:
                self.defines[name] = parse_dtype(value)
        for const in self.module.consts:
            if const.name in self.defines:
                self.globals[const.name] = self.defines[const.name]
                continue
            try:
                value = self.eval(const.value, _Frame("<const>", {}))
            except GenError as error:
                self.record(error)
                value = POISON
            except PoisonError:
                value = POISON
            if isinstance(value, Tensor):
                self.record(self.error(f"const '{const.name}' must be a compile-time value, not a tensor",
                                       const.loc))
                value = POISON
            self.globals[const.name] = value
        self._check_defines_used()
        for name, value in self.defines.items():
            self.globals.setdefault(name, value)

    def _check_defines_used(self) -> None:
        """A definition must name a const or a dimension the file uses: `-D b=64` for `B` is a typo."""
        consts = {const.name for const in self.module.consts}
        if consts.issuperset(self.defines):  # the usual case: nothing to look for in the functions
            self.fail_if_errors()
            return
        known = consts | _names_in(self.module.consts) | {name for func in self.module.funcs.values()
                                                          for name in _free_names(func)}
        for name in self.defines:
            if name not in known:
                by_case = [k for k in sorted(known) if k.lower() == name.lower()]
                close = by_case or difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.diagnostics.append(Diagnostic(
                    f"-D {name}: {self.module.file} has no const or dimension named '{name}'{hint}"))
        self.fail_if_errors()

    def entry_function(self, entry: str | None) -> ast.FuncDef:
        if entry is None:
            if not self.module.funcs:
                raise CompileError([Diagnostic(f"{self.module.file}: error: the file defines no function")])
            return list(self.module.funcs.values())[-1]
        if entry not in self.module.funcs:
            known = ", ".join(self.module.funcs) or "none"
            raise CompileError([Diagnostic(f"no function named '{entry}' in {self.module.file} (defined: {known})")])
        return self.module.funcs[entry]

    def build(self, entry: str | None = None) -> Graph:
        with collector_paused():  # see passes.collector: a large program would be rescanned many times
            return self._build(entry)

    def _build(self, entry: str | None) -> Graph:
        self.evaluate_globals()
        func = self.entry_function(entry)
        self.graph.name = func.name
        self.graph.dims = {k: v for k, v in self.globals.items() if is_int(v)}
        self._apply_function_decorators(func)
        frame = _Frame(func.name, {})
        for param in func.params:
            try:
                frame.names[param.name] = self._entry_param(param)
            except GenError as error:
                self.record(error)
                frame.names[param.name] = POISON
            except PoisonError:
                frame.names[param.name] = POISON
        result = self._run_body(func, frame)
        self.fail_if_errors()
        results = result if isinstance(result, tuple) else (result,)
        self._check_results(func, results, entry=True)
        self.fail_if_errors()
        for value in results:
            self.graph.outputs.append(value.node)
        if self.graph.has_dead_values():  # values the source computes but never uses (`y = exp(x)` unused)
            self.graph.remove_dead()
        self.graph.sort_predecessors()  # in the order of a copy: the graph passes then need not copy it first
        return self.graph

    def _apply_function_decorators(self, func: ast.FuncDef) -> None:
        for decorator in func.decorators:
            if decorator.name != "tokens":
                self.record(self.error(f"unknown function decorator '@{decorator.name}' (known: @tokens)",
                                       decorator.loc))
                continue
            frame = _Frame(func.name, {})
            try:
                args = [self.eval(a, frame) for a in decorator.args]
                keywords = {k.name: self.eval(k.value, frame) for k in decorator.keywords}
            except GenError as error:
                self.record(error)
                continue
            if len(args) != 1 or not is_int(args[0]) or set(keywords) - {"users"}:
                self.record(self.error("@tokens takes the number of tokens one call produces, and optionally "
                                       "users=N (the number of concurrent sequences)", decorator.loc))
                continue
            users = keywords.get("users", 1)
            if not is_int(users) or users < 1:
                self.record(self.error("@tokens: users must be a positive int", decorator.loc))
                continue
            self.graph.attributes["tokens"] = args[0]
            self.graph.attributes["users"] = users

    def _entry_param(self, param: ast.Param) -> Tensor:
        if param.type is None:
            raise self.error(f"parameter '{param.name}' of the entry function needs a tensor type", param.loc)
        weight = False
        for decorator in param.decorators:
            if decorator.name == "weight":
                weight = True
            else:
                raise self.error(f"unknown parameter decorator '@{decorator.name}' (known: @weight)",
                                 decorator.loc)
        tensor_type = self.tensor_type(param.type, _Frame("<signature>", {}), bind={})
        if tensor_type is None:
            raise self.error(f"parameter '{param.name}' of the entry function needs a tensor type, "
                             f"not '{param.type.name}'", param.type.loc)
        node = self.graph.add_param(param.name, tensor_type, weight=weight, loc=param.loc)
        return Tensor(node, tensor_type)

    def _check_results(self, func: ast.FuncDef, results: tuple, entry: bool,
                       signature_names: dict[str, Value] | None = None) -> None:
        """Check results against the declared result types; `signature_names` are the parameters and
        the dimensions their types bound, so `-> f32[N]` means the N of the arguments."""
        for index, value in enumerate(results):
            if value is POISON:
                continue
            if not isinstance(value, Tensor):
                if entry:
                    self.record(self.error(f"'{func.name}' must return tensors, result {index} is "
                                           f"{describe(value)}", func.loc))
                continue
        if func.results is None:
            return
        if len(func.results) != len(results):
            self.record(self.error(f"'{func.name}' returns {len(results)} value(s) but its signature "
                                   f"declares {len(func.results)}", func.loc))
            return
        bind: dict[str, int] = {}
        for index, (declared, value) in enumerate(zip(func.results, results)):
            if isinstance(value, Tensor):
                try:
                    self.check_type(value, declared, _Frame(func.name, dict(signature_names or {})), bind,
                                    what=f"result {index} of '{func.name}'")
                except GenError as error:
                    self.record(error)

    # -- types ---------------------------------------------------------------------------------

    def tensor_type(self, type_expr: ast.TypeExpr, frame: _Frame, bind: dict[str, int] | None) -> TensorType | None:
        """The TensorType a type expression denotes (None for int/float/bool).

        With `bind` given, dimensions that are bare unknown names are looked up there.
        """
        if _is_static_type(type_expr):
            return None
        dtype = self.dtype_of(type_expr, frame)
        shape = []
        errors: list[GenError] = []
        for dim in type_expr.dims or ():
            if isinstance(dim, ast.Name) and bind is not None and dim.id in bind:
                shape.append(bind[dim.id])
                continue
            try:
                shape.append(self._dimension(dim, frame))
            except GenError as error:  # report every bad dimension of the type, not only the first
                errors.append(error)
        fresh = [e for e in errors if e.message not in self._reported]  # say each unbound name once
        self._reported.update(e.message for e in fresh)
        for error in fresh[:-1]:
            self.record(error)
        if fresh:
            raise fresh[-1]
        if errors:
            raise PoisonError()
        return TensorType(tuple(shape), dtype, self._format(type_expr.format, tuple(shape)))

    def dtype_of(self, type_expr: ast.TypeExpr, frame: _Frame) -> DType:
        """The dtype a type names: a dtype itself (`bf16`) or a const bound to one (`const DT = bf16`)."""
        dtype = parse_dtype(type_expr.name)
        if dtype is not None:
            return dtype
        value = self.lookup_optional(type_expr.name, frame)
        if isinstance(value, DType):
            return value
        if value is POISON:
            raise PoisonError()
        if value is None:
            raise self.error(f"unknown type '{type_expr.name}' (dtypes: f32, f64, f16, bf16, i8, i32, i64, "
                             "bool; compile-time: int, float, bool)", type_expr.loc)
        raise self.error(f"'{type_expr.name}' is {describe(value)}, not a dtype", type_expr.loc)

    def _dimension(self, dim: ast.Expr, frame: _Frame) -> int:
        if isinstance(dim, ast.Name) and self.lookup_optional(dim.id, frame) is None:
            raise self.error(f"dimension '{dim.id}' has no value: define it with -D {dim.id}=<size> (defines= in "
                             f"Python), a 'const {dim.id} = ...' in the file, or pass an input whose shape binds it",
                             dim.loc)
        value = self.eval(dim, frame)
        if not is_int(value) or value < 0:
            raise self.error(f"a dimension must be a non-negative int, got {describe(value)}", dim.loc)
        return value

    def _format(self, fmt: ast.FormatExpr | None, shape: tuple[int, ...]) -> Format:
        if fmt is None or fmt.kind == "dense":
            return DENSE
        if len(shape) != 2:
            raise self.error(f"sparse format <{fmt.kind}> needs a matrix (rank 2), not rank {len(shape)}", fmt.loc)
        try:
            if fmt.kind == "nm":
                return Format("nm", n=fmt.args[0], m=fmt.args[1])
            if fmt.kind == "bsr":
                if len(fmt.args) != 2:
                    raise ValueError("bsr needs a block shape: <bsr(R, C)>")
                return Format("bsr", block=(fmt.args[0], fmt.args[1]))
            if fmt.args:
                raise ValueError(f"<{fmt.kind}> takes no arguments")
            return Format(fmt.kind)
        except ValueError as error:
            raise self.error(f"{error} (formats: csr, csc, bsr(R, C), N:M such as 2:4)", fmt.loc) from None

    def check_type(self, value: Tensor, declared: ast.TypeExpr, frame: _Frame, bind: dict[str, int],
                   what: str) -> None:
        """Check a tensor against a declared type; bare unknown dimension names bind (shape polymorphism)."""
        if _is_static_type(declared):
            raise self.error(f"{what} is a tensor but is declared '{declared.name}'", declared.loc)
        dtype = self.dtype_of(declared, frame)
        dims = declared.dims or ()
        mismatch = dtype != value.dtype or len(dims) != len(value.shape)
        if not mismatch:
            for dim, actual in zip(dims, value.shape):
                if isinstance(dim, ast.Name) and self.lookup_optional(dim.id, frame) is None:
                    if bind.setdefault(dim.id, actual) != actual:
                        mismatch = True
                    continue
                expected = self._dimension(dim, _Frame(frame.func, {**frame.names, **bind}))
                mismatch = mismatch or expected != actual
        if mismatch:
            raise self.error(f"{what} has type {value.type}, but the signature says "
                             f"{self._type_text(declared, frame, bind)}", declared.loc)

    def _type_text(self, declared: ast.TypeExpr, frame: _Frame, bind: dict[str, int]) -> str:
        parts = []
        for dim in declared.dims or ():
            try:
                parts.append(str(self._dimension(dim, _Frame(frame.func, {**frame.names, **bind}))))
            except GenError:
                parts.append(dim.id if isinstance(dim, ast.Name) else "?")
        return f"{declared.name}[{','.join(parts)}]"

    # -- functions -----------------------------------------------------------------------------

    def call_function(self, func: ast.FuncDef, args: list[Value], keywords: dict[str, Value], loc: Loc) -> Value:
        if len(self.call_stack) >= MAX_CALL_DEPTH:
            raise self.error(f"calls nest deeper than {MAX_CALL_DEPTH} (recursion in '{func.name}'?)", loc)
        if func.decorators:
            raise self.error(f"'{func.name}' has function decorators and can only be the entry point", loc)
        names: dict[str, Value] = {}
        if len(args) > len(func.params):
            raise self.error(f"'{func.name}' takes {len(func.params)} argument(s), got {len(args)}", loc)
        if keywords:
            by_name = {p.name: p for p in func.params}
            for name in keywords:
                if name not in by_name:
                    raise self.error(f"'{func.name}' has no parameter '{name}'", loc)
        for param, value in zip(func.params, args):
            if param.name in keywords:
                raise self.error(f"'{func.name}' got two values for '{param.name}'", loc)
            names[param.name] = value
        names.update(keywords)
        frame = _Frame(func.name, names)
        bind: dict[str, int] = {}
        for param in func.params:
            if param.name not in names:
                if param.default is None:
                    raise self.error(f"'{func.name}' needs an argument for '{param.name}'", loc)
                names[param.name] = self.eval(param.default, _Frame(func.name, {}))
            value = names[param.name]
            if value is POISON:
                raise PoisonError()
            if param.type is not None:
                self._check_argument(func, param, value, frame, bind, loc)
        names.update({k: v for k, v in bind.items() if k not in names})
        signature_names = dict(names)  # the body may rebind these names; result types mean these
        self.call_stack.append((func.name, loc))
        try:
            result = self._run_body(func, frame)
        finally:
            self.call_stack.pop()
        if result is POISON:
            raise PoisonError()
        results = result if isinstance(result, tuple) else (result,)
        if func.results is not None:
            self.call_stack.append((func.name, loc))
            try:
                self._check_results(func, results, entry=False, signature_names=signature_names)
            finally:
                self.call_stack.pop()
        return result

    def _check_argument(self, func: ast.FuncDef, param: ast.Param, value: Value, frame: _Frame,
                        bind: dict[str, int], loc: Loc) -> None:
        what = f"argument '{param.name}' of '{func.name}'"
        name = param.type.name
        if _is_static_type(param.type):
            ok = {"int": is_int, "float": is_number, "bool": lambda v: isinstance(v, bool)}[name](value)
            if not ok:
                raise self.error(f"{what} must be a compile-time {name}, got {describe(value)}", loc)
            return
        if not isinstance(value, Tensor):
            value = self.as_tensor(value, loc, self.dtype_of(param.type, frame))
        try:
            self.check_type(value, param.type, frame, bind, what)
        except GenError as error:
            raise GenError(error.message, loc, (f"'{param.name}' is declared at {param.type.loc}",)) from None

    def _run_body(self, func: ast.FuncDef, frame: _Frame) -> Value:
        try:
            self.exec_block(func.body, frame)
        except _Return as returned:
            return returned.value
        raise self.error(f"'{func.name}' ends without a return statement", func.loc)

    # -- statements ----------------------------------------------------------------------------

    def exec_block(self, stmts: tuple[ast.Stmt, ...], frame: _Frame, in_loop: bool = False) -> None:
        for index, stmt in enumerate(stmts):
            if isinstance(stmt, ast.Return):
                if in_loop:
                    self.record(self.error("return inside a loop is not supported", stmt.loc))
                    raise _Return(POISON)
                if index != len(stmts) - 1:
                    self.record(self.error("statements after return are never run", stmts[index + 1].loc))
                raise _Return(self._return_value(stmt, frame))
            if isinstance(stmt, ast.For):
                self._exec_for(stmt, frame)
            else:
                self._exec_assign(stmt, frame)

    def _return_value(self, stmt: ast.Return, frame: _Frame) -> Value:
        try:
            values = tuple(self.eval(v, frame) for v in stmt.values)
        except GenError as error:
            self.record(error)
            return POISON
        except PoisonError:
            return POISON
        if not values:
            self.record(self.error("return needs a value", stmt.loc))
            return POISON
        if any(v is POISON for v in values):
            return POISON
        return values[0] if len(values) == 1 else values

    def _exec_assign(self, stmt: ast.Assign, frame: _Frame) -> None:
        try:
            value = self.eval(stmt.value, frame)
            if len(stmt.targets) > 1:
                if not isinstance(value, tuple) or len(value) != len(stmt.targets):
                    raise self.error(f"cannot unpack {describe(value)} into {len(stmt.targets)} names", stmt.loc)
                values = value
            else:
                values = (value,)
        except GenError as error:
            self.record(error)
            values = (POISON,) * len(stmt.targets)
        except PoisonError:
            values = (POISON,) * len(stmt.targets)
        for target, value in zip(stmt.targets, values):
            if target in _CONSTANT_NAMES or target in _DTYPE_NAMES:  # parse_dtype(target) is not None
                self.record(self.error(f"cannot assign to the reserved name '{target}'", stmt.loc))
            frame.names[target] = value

    def _exec_for(self, stmt: ast.For, frame: _Frame) -> None:
        try:
            iterable = self.eval(stmt.iterable, frame)
        except GenError as error:
            self.record(error)
            return
        except PoisonError:
            return
        if isinstance(iterable, StaticRange):
            items: tuple = tuple(iterable.values())
        elif isinstance(iterable, tuple):
            items = iterable
        else:
            self.record(self.error(f"a for loop runs over range(...) or a tuple, not {describe(iterable)}",
                                   stmt.iterable.loc))
            return
        for item in items:
            frame.names[stmt.var] = item
            self.exec_block(stmt.body, frame, in_loop=True)

    # -- names ---------------------------------------------------------------------------------

    def lookup_optional(self, name: str, frame: _Frame) -> Value | None:
        if name in frame.names:
            return frame.names[name]
        if name in self.globals:
            return self.globals[name]
        if name in _CONSTANT_NAMES:
            return _CONSTANT_NAMES[name]
        dtype = parse_dtype(name)
        if dtype is not None:
            return dtype
        return None

    def lookup(self, name: ast.Name, frame: _Frame) -> Value:
        ident, local = name.id, frame.names
        if ident in local:
            value = local[ident]
        elif ident in self.globals:
            value = self.globals[ident]
        elif ident in _CONSTANT_NAMES:
            return _CONSTANT_NAMES[ident]
        else:
            dtype = parse_dtype(name.id)
            if dtype is not None:
                return dtype
            if name.id in self.functions or name.id in BUILTINS:
                raise self.error(f"'{name.id}' is a function; call it with ( )", name.loc)
            raise self.error(f"unknown name '{name.id}'", name.loc)
        if value is POISON:
            raise PoisonError()
        return value

    # -- expressions ---------------------------------------------------------------------------

    def eval(self, expr: ast.Expr, frame: _Frame) -> Value:
        function = self._evaluators.get(type(expr))
        if function is None:
            function = self._evaluators[type(expr)] = getattr(type(self), "_eval_" + type(expr).__name__)
        return function(self, expr, frame)

    def _eval_Number(self, expr: ast.Number, frame: _Frame) -> Value:
        return expr.value

    def _eval_String(self, expr: ast.String, frame: _Frame) -> Value:
        return expr.value

    _eval_Name = lookup

    def _eval_TupleExpr(self, expr: ast.TupleExpr, frame: _Frame) -> Value:
        return tuple(self.eval(item, frame) for item in expr.items)

    def _eval_RangeExpr(self, expr: ast.RangeExpr, frame: _Frame) -> Value:
        raise self.error("a range a:b is only allowed inside [ ]", expr.loc)

    def _eval_EllipsisExpr(self, expr: ast.EllipsisExpr, frame: _Frame) -> Value:
        raise self.error("'...' is only allowed inside [ ]", expr.loc)

    def _eval_Conditional(self, expr: ast.Conditional, frame: _Frame) -> Value:
        condition = self.eval(expr.condition, frame)
        if isinstance(condition, Tensor):
            raise self.error("the condition of 'a if c else b' must be a compile-time value; "
                             "use where(c, a, b) to choose between tensors elementwise", expr.condition.loc)
        return self.eval(expr.then if condition else expr.otherwise, frame)

    def _eval_UnaryOp(self, expr: ast.UnaryOp, frame: _Frame) -> Value:
        return operators.unary(self, expr.op, self.eval(expr.operand, frame), expr.loc)

    def _eval_BinaryOp(self, expr: ast.BinaryOp, frame: _Frame) -> Value:
        left = self.eval(expr.left, frame)
        right = self.eval(expr.right, frame)
        return operators.binary(self, expr.op, left, right, expr.loc)

    def _eval_Index(self, expr: ast.Index, frame: _Frame) -> Value:
        value = self.eval(expr.value, frame)
        subscripts = [self._subscript(s, frame) for s in expr.subscripts]
        return operators.index(self, value, subscripts, expr.loc)

    def _subscript(self, expr: ast.Expr, frame: _Frame) -> Any:
        if isinstance(expr, ast.EllipsisExpr):
            return Ellipsis
        if isinstance(expr, ast.RangeExpr):
            parts = []
            for part in (expr.start, expr.stop, expr.step):
                value = None if part is None else self.eval(part, frame)
                if value is not None and not is_int(value):
                    raise self.error(f"slice bounds must be compile-time ints, got {describe(value)}",
                                     part.loc)
                parts.append(value)
            return slice(*parts)
        value = self.eval(expr, frame)
        if isinstance(value, Tensor):
            raise self.error("indexing with a tensor (gather) is not supported; indices must be "
                             "compile-time ints", expr.loc)
        return value

    def _eval_Attribute(self, expr: ast.Attribute, frame: _Frame) -> Value:
        return operators.attribute(self, self.eval(expr.value, frame), expr.name, expr.loc)

    def _eval_Call(self, expr: ast.Call, frame: _Frame) -> Value:
        args = [self.eval(a, frame) for a in expr.args]
        keywords = {k.name: self.eval(k.value, frame) for k in expr.keywords} if expr.keywords else {}
        for value in args:
            if value is POISON:
                raise PoisonError()
        for value in keywords.values():
            if value is POISON:
                raise PoisonError()
        func = expr.func
        if isinstance(func, ast.Attribute):  # x.sum(axis=1) is sum(x, axis=1)
            receiver = self.eval(func.value, frame)
            name = func.name
            args = [receiver] + args
        elif isinstance(func, ast.Name):
            name = func.id
            if name in frame.names:
                raise self.error(f"'{name}' is {describe(frame.names[name])}, not a function", func.loc)
        else:
            raise self.error("only named functions can be called", expr.loc)
        if name in self.functions:
            return self.call_function(self.functions[name], args, keywords, expr.loc)
        if name in BUILTINS:
            return call_builtin(self, name, args, keywords, expr.loc)
        hint = self._suggest(name)
        raise self.error(f"unknown function '{name}'" + (f"; did you mean '{hint}'?" if hint else ""), expr.loc)

    def _suggest(self, name: str) -> str | None:
        matches = difflib.get_close_matches(name, list(BUILTINS) + list(self.functions), n=1)
        return matches[0] if matches else None

    # -- building tensors ----------------------------------------------------------------------

    def emit(self, op: str, operands: list[Tensor], attrs: dict[str, Any] | None, loc: Loc | None,
             type: TensorType | None = None) -> Tensor:
        attrs = attrs or {}
        key = None
        if type is None:
            # The type Graph.add would infer, when an equal operation was built before (see `_inferred`).
            key = (op, tuple([t.type for t in operands]),
                   tuple([(k, v.__class__, v) for k, v in attrs.items()]) if attrs else ())
            type = self._inferred.get(key)
        try:
            node = self.graph.add(op, [t.node for t in operands], attrs, type=type, loc=loc)
        except ops.OpError as error:
            raise self.error(str(error), loc) from None
        if type is not None:  # the node holds the type it was given
            return Tensor(node, type)
        result = self.graph.node(node).type
        if key is not None:
            self._inferred[key] = result
        return Tensor(node, result)

    def constant(self, value: int | float | bool, dtype: DType, loc: Loc | None, shape: tuple[int, ...] = ()) -> Tensor:
        """A scalar (or splat) constant of `dtype`, shared between uses."""
        if dtype.is_bool:
            value = bool(value)
        elif dtype.is_int:
            if isinstance(value, float) and not value.is_integer():
                raise self.error(f"the constant {value} is not an integer and cannot be {dtype}", loc)
            value = int(value)
        else:
            value = float(value)
        key = (value, dtype, shape, math.copysign(1, value) if isinstance(value, float) else 0)
        if key not in self._constants:
            self._constants[key] = self.emit("constant", [], {"value": value}, loc, TensorType(shape, dtype))
        return self._constants[key]

    def as_tensor(self, value: Value, loc: Loc | None, like: DType | None = None) -> Tensor:
        """A tensor for `value`: tensors pass through, numbers become constants of dtype `like`."""
        if isinstance(value, Tensor):
            return value
        if value is POISON:
            raise PoisonError()
        if isinstance(value, bool):
            return self.constant(value, like or DType.BOOL, loc)
        if is_int(value):
            return self.constant(value, like or DEFAULT_INT, loc)
        if isinstance(value, float):
            dtype = like if like is not None and like.is_float else DEFAULT_FLOAT
            return self.constant(value, dtype, loc)
        if isinstance(value, tuple) and value and all(is_number(v) or isinstance(v, bool) for v in value):
            dtype = like or (DEFAULT_FLOAT if any(isinstance(v, float) for v in value) else DEFAULT_INT)
            items = [self.cast(self.as_tensor(v, loc, dtype), dtype, loc) for v in value]
            reshaped = [self.emit("reshape", [t], {"shape": (1,)}, loc) for t in items]
            return self.emit("concat", reshaped, {"axis": 0}, loc)
        raise self.error(f"expected a tensor, got {describe(value)}", loc)

    def cast(self, tensor: Tensor, dtype: DType, loc: Loc | None) -> Tensor:
        if tensor.dtype == dtype:
            return tensor
        return self.emit("cast", [tensor], {"dtype": dtype}, loc)

    def broadcast_shape(self, shapes: list[tuple[int, ...]], loc: Loc | None) -> tuple[int, ...]:
        try:
            return broadcast_shapes(*shapes)
        except ValueError as error:
            raise self.error(str(error), loc) from None

    def common_dtype(self, dtypes: list[DType]) -> DType:
        result = dtypes[0]
        for dtype in dtypes[1:]:
            result = promote(result, dtype)
        return result


def _names_in(node: object) -> set[str]:
    """Every name an AST (sub)tree mentions."""
    import dataclasses
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Name):
            found.add(item.id)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif dataclasses.is_dataclass(item):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return found


def _free_names(func: ast.FuncDef) -> set[str]:
    """Names a function reads without binding them itself (its globals and dimension symbols)."""
    bound = {p.name for p in func.params}
    stack: list[object] = list(func.body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, ast.Assign):
            bound.update(stmt.targets)
        elif isinstance(stmt, ast.For):
            bound.add(stmt.var)
            stack.extend(stmt.body)
    return _names_in(func) - bound


def build_graph(module: ast.Module, prelude: ast.Module | None, sources: SourceMap,
                defines: dict[str, int | float] | None = None, entry: str | None = None) -> Graph:
    """Generate the graph IR of `entry` (default: the last function) under the given definitions."""
    return IRGen(module, prelude, sources, defines).build(entry)

