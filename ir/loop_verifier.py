"""Checks that loop IR is well formed; run it after every pass that produces or rewrites loops.

`verify_kernel` and `verify_program` list every problem found (empty means valid); `assert_valid_loops`
raises `LoopVerifyError` with all of them. Each message names the kernel and prints the statement
where the problem is (its first line, for a loop or an `if`).

Kernels: names read back through `ir.loop_parser` (identifiers, no reserved words); parameters are
unique global buffers; `writes` lists parameters, each once, and is exactly the set of parameters
stored to (a parameter outside `writes` must not be stored to; a non-empty one inside must be);
every variable is defined where it is used (a loop variable or a `let`), with the type of its
definition; a loop variable shadows nothing and no `let` shadows a loop variable; every buffer
used is a parameter or an enclosing `local` (of scope local, not named like a parameter); indices
are i64 and as many as the buffer's rank; indices that are certainly out of range (found by
interval analysis over loop bounds and enclosing `if` guards, see `ir.loop_simplify`) are reported
with the buffer, the axis and the range, and only when the access can run: the interval analysis
finds candidates, and `ir.loop_witness` confirms each with an iteration that reaches the access
whatever the inputs (its guards hold) and indexes outside the buffer, so dead code -- the tail
iterations of a guarded split, say -- is never reported; loads have their buffer's dtype and stores store it;
operands agree (binary operands share a dtype, `select` has a bool condition and equal branches,
`if` a bool condition, comparisons give bool, logical ops take bool, transcendental ops take
floats); op names are known; loop bounds are i64, steps positive ints, and vectorized or unrolled
loops have constant extents; `attrs` keys are sorted, unique and hold values the text can carry.

Programs: buffers are global and keyed by their names; inputs and outputs exist and inputs are
distinct; kernels are keyed by their names and valid; each call names a kernel, passes one existing
buffer per parameter with the parameter's dtype, shape and strides, passes a written buffer to no
other parameter, and writes no program input; every buffer a call reads was an input or written by
an earlier call, and every output is written (or is an input).
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from dataclasses import dataclass, field

import numpy as np

from compiler.diagnostics import NicheError
from ir.dtypes import DType
from ir.loop_printer import format_expr, print_stmt
from ir.loop_simplify import (IMPOSSIBLE, Fact, Interval, bounds, conjoin, guard_facts, guarded_bounds,
                               loop_values, never_holds)
from ir.loop_witness import GuardStep, LetStep, LoopStep, Path, Step, out_of_range_witness
from ir.loops import (BINARY_OPS, COMPARE_OPS, INDEX, LOGIC_OPS, UNARY_OPS, Allocate, Binary, Buffer, Cast,
                      Const, Expr, For, If, Kernel, Let, Load, LoopKind, LoopProgram, Scope, Select, Seq, Stmt,
                      Store, Unary, Var, walk)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
KERNEL_NAME = re.compile(r"[A-Za-z0-9_.$]+\Z")
# Words the text form reads as keywords or constants wherever a name could follow an expression.
RESERVED = frozenset({"and", "or", "else", "strides", "true", "false", "inf", "nan"})
FLOAT_ONLY_UNARY = frozenset({"exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "gelu", "silu", "sin", "cos"})
FLOAT_ONLY_BINARY = frozenset({"div", "pow"})
_EXPR_TYPES = (Const, Var, Load, Unary, Binary, Select, Cast)


class LoopVerifyError(NicheError):
    """Loop IR is malformed; `problems` lists what is wrong, `after` names the pass that ran last."""

    def __init__(self, problems: list[str], name: str, after: str | None = None) -> None:
        self.problems = list(problems)
        self.after = after
        where = f"after pass '{after}': " if after is not None else ""
        listed = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{where}loop IR '{name}' is invalid:\n{listed}")


def assert_valid_loops(ir: Kernel | LoopProgram, after: str | None = None) -> None:
    """Raise LoopVerifyError when the kernel or program has problems; `after` names the last pass."""
    problems = verify_kernel(ir) if isinstance(ir, Kernel) else verify_program(ir)
    if problems:
        raise LoopVerifyError(problems, ir.name, after)


def verify_kernel(kernel: Kernel) -> list[str]:
    """Every problem found in one kernel, as messages naming it and the statement involved."""
    return _KernelChecker(kernel).run()


def verify_program(program: LoopProgram) -> list[str]:
    """Every problem found in a program: its buffers, kernels and calls."""
    problems: list[str] = []
    if not KERNEL_NAME.match(program.name):
        problems.append(f"program name '{program.name}' is not a name the text form can carry")
    for key, buffer in program.buffers.items():
        if key != buffer.name:
            problems.append(f"buffer '{buffer.name}' is listed under the name '{key}'")
        if buffer.scope is not Scope.GLOBAL:
            problems.append(f"program buffer '{key}' has scope {buffer.scope}; it must be global")
        problems += [f"program buffer {p}" for p in _buffer_problems(buffer)]
    for role, names in (("input", program.inputs), ("output", program.outputs)):
        for name in names:
            if name not in program.buffers:
                problems.append(f"{role} '{name}' is not a buffer of the program")
    duplicates = sorted({name for name in program.inputs if program.inputs.count(name) > 1})
    if duplicates:
        problems.append(f"inputs {duplicates} are listed more than once")
    for key, kernel in program.kernels.items():
        if key != kernel.name:
            problems.append(f"kernel '{kernel.name}' is listed under the name '{key}'")
        problems += verify_kernel(kernel)
    problems += _call_problems(program)
    return problems


def _call_problems(program: LoopProgram) -> list[str]:
    problems: list[str] = []
    written = set(program.inputs)
    for number, call in enumerate(program.calls):
        where = f"call {number} (`call @{call.kernel}({', '.join(call.args)})`)"
        kernel = program.kernels.get(call.kernel)
        if kernel is None:
            problems.append(f"{where}: there is no kernel '{call.kernel}'")
            continue
        if len(call.args) != len(kernel.params):
            problems.append(f"{where}: expected {len(kernel.params)} buffers for the parameters of "
                            f"'{kernel.name}' but found {len(call.args)}")
            continue
        loaded = {node.buffer for node in walk(kernel.body) if isinstance(node, Load)}
        for param, arg in zip(kernel.params, call.args):
            buffer = program.buffers.get(arg)
            if buffer is None:
                problems.append(f"{where}: '{arg}' is not a buffer of the program")
                continue
            if (buffer.dtype, buffer.shape) != (param.dtype, param.shape):
                problems.append(f"{where}: parameter '{param.name}' expects {param.dtype}{list(param.shape)} "
                                f"but '{arg}' is {buffer.dtype}{list(buffer.shape)}")
            elif buffer.element_strides != param.element_strides:
                problems.append(f"{where}: parameter '{param.name}' expects strides "
                                f"{list(param.element_strides)} but '{arg}' has {list(buffer.element_strides)}")
            if param.name in kernel.writes:
                if arg in program.inputs:
                    problems.append(f"{where}: writes program input '{arg}' (parameter '{param.name}')")
                others = [p.name for p, a in zip(kernel.params, call.args) if a == arg and p is not param]
                if others:
                    problems.append(f"{where}: '{arg}' is passed for written parameter '{param.name}' and "
                                    f"also for {others}")
            elif param.name in loaded and arg not in written:
                problems.append(f"{where}: reads '{arg}' (parameter '{param.name}') before any call writes it")
        written |= {arg for param, arg in zip(kernel.params, call.args) if param.name in kernel.writes}
    for name in program.outputs:
        if name in program.buffers and name not in written:
            problems.append(f"output '{name}' is never written")
    return problems


def _buffer_problems(buffer: Buffer) -> list[str]:
    problems = []
    if not IDENTIFIER.match(buffer.name) or buffer.name in RESERVED:
        problems.append(f"'{buffer.name}': not a name the text form can carry")
    if not isinstance(buffer.dtype, DType):
        problems.append(f"'{buffer.name}': dtype {buffer.dtype!r} is not a DType")
    if any(not isinstance(d, int) or d < 0 for d in buffer.shape):
        problems.append(f"'{buffer.name}': shape {list(buffer.shape)} has a dimension that is not a "
                        f"non-negative int")
    if buffer.strides is not None and len(buffer.strides) != len(buffer.shape):
        problems.append(f"'{buffer.name}': {len(buffer.strides)} strides for {len(buffer.shape)} dimensions")
    return problems


def _attr_value_ok(value: object) -> bool:
    """Values `format_attr` prints so that the parser reads them back (numpy scalars print as
    `np.float64(...)` and do not)."""
    if value is None or type(value) in (bool, int, float, str) or isinstance(value, DType):
        return True
    if type(value) is tuple:
        return all(_attr_value_ok(v) for v in value)
    return False


def describe(stmt: Stmt) -> str:
    """The first printed line of a statement (its header for a loop, `if`, `let` or `local`)."""
    empty = Seq(())
    if isinstance(stmt, (For, Let, Allocate)):
        stmt = dataclasses.replace(stmt, body=empty)  # print the header only
    elif isinstance(stmt, If):
        stmt = If(stmt.cond, empty, None if stmt.else_body is None else empty)
    try:
        text = print_stmt(stmt)
    except (TypeError, KeyError, AttributeError, ValueError):
        return repr(stmt)[:120]
    lines = text.splitlines()
    return lines[0].rstrip(" {") if lines else "(empty block)"


def _show(expr: object) -> str:
    try:
        return format_expr(expr)  # type: ignore[arg-type]
    except (TypeError, KeyError, AttributeError, ValueError):
        return repr(expr)[:120]


@dataclass
class _Scope:
    buffers: dict[str, Buffer]
    variables: dict[str, tuple[DType, str]] = field(default_factory=dict)  # name -> (dtype, "loop"|"let")
    ranges: dict[str, Interval] = field(default_factory=dict)
    facts: tuple[Fact, ...] = ()
    unknown_guards: frozenset[str] = frozenset()  # variables constrained by guards we cannot read
    let_depends: dict[str, frozenset[str]] = field(default_factory=dict)  # let -> variables it reads
    path: Path = ()  # the enclosing loops, lets and guards, outermost first

    def child(self, step: Step | None = None) -> _Scope:
        path = self.path if step is None else self.path + (step,)
        return _Scope(dict(self.buffers), dict(self.variables), dict(self.ranges), self.facts,
                      self.unknown_guards, dict(self.let_depends), path)

    def depends(self, names: frozenset[str]) -> frozenset[str]:
        """`names` and, for the lets among them, the variables their values read."""
        result = set(names)
        for name in names:
            result |= self.let_depends.get(name, frozenset())
        return frozenset(result)


class _KernelChecker:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.problems: list[str] = []
        self.stored: set[str] = set()
        self.current: Stmt | None = None  # the statement being checked, described when reported

    def report(self, message: str, stmt_text: str | None = None) -> None:
        if stmt_text is not None:
            where = stmt_text
        else:
            where = describe(self.current) if self.current is not None else ""
        suffix = f" in `{where}`" if where else ""
        self.problems.append(f"kernel '{self.kernel.name}': {message}{suffix}")

    def run(self) -> list[str]:
        kernel = self.kernel
        if not isinstance(kernel.name, str) or not KERNEL_NAME.match(kernel.name):
            self.report(f"name '{kernel.name}' is not a name the text form can carry", "")
        buffers: dict[str, Buffer] = {}
        for param in kernel.params:
            if param.name in buffers:
                self.report(f"parameter '{param.name}' is declared twice", "")
            if param.scope is not Scope.GLOBAL:
                self.report(f"parameter '{param.name}' has scope {param.scope}; parameters are global", "")
            for problem in _buffer_problems(param):
                self.report(f"parameter {problem}", "")
            buffers[param.name] = param
        self.check_attrs()
        self.stmt(kernel.body, _Scope(buffers))
        self.check_writes(buffers)
        return self.problems

    def check_attrs(self) -> None:
        keys = [key for key, _ in self.kernel.attrs]
        if keys != sorted(set(keys)):
            self.report(f"attrs keys {keys} must be sorted and unique", "")
        for key, value in self.kernel.attrs:
            if not isinstance(key, str) or not IDENTIFIER.match(key):
                self.report(f"attr key {key!r} is not a name", "")
            if not _attr_value_ok(value):
                self.report(f"attr '{key}' holds a {type(value).__name__}, which the text form cannot carry "
                            f"(use int, float, bool, str, None, DType or tuples of them)", "")

    def check_writes(self, params: dict[str, Buffer]) -> None:
        writes = list(self.kernel.writes)
        for name in sorted({w for w in writes if writes.count(w) > 1}):
            self.report(f"writes lists '{name}' more than once", "")
        for name in writes:
            if name not in params:
                self.report(f"writes names '{name}', which is not a parameter", "")
            elif name not in self.stored and params[name].size > 0:
                self.report(f"writes names '{name}' but the kernel never stores to it", "")

    # -- statements ------------------------------------------------------------------------------

    def stmt(self, stmt: Stmt, scope: _Scope) -> None:
        if isinstance(stmt, Seq):
            for child in stmt.stmts:
                self.stmt(child, scope)
            return
        saved = self.current
        self.current = stmt
        if isinstance(stmt, For):
            self.for_stmt(stmt, scope)
        elif isinstance(stmt, Store):
            self.store(stmt, scope)
        elif isinstance(stmt, If):
            self.if_stmt(stmt, scope)
        elif isinstance(stmt, Let):
            self.let(stmt, scope)
        elif isinstance(stmt, Allocate):
            self.allocate(stmt, scope)
        else:
            self.report(f"{type(stmt).__name__} is not a loop IR statement", "")
        self.current = saved

    def for_stmt(self, loop: For, scope: _Scope) -> None:
        for what, expr in (("start", loop.start), ("extent", loop.extent)):
            dtype = self.expr(expr, scope)
            if dtype is not None and dtype is not INDEX:
                self.report(f"loop {what} has type {dtype}, expected i64")
        if not isinstance(loop.step, int) or isinstance(loop.step, bool) or loop.step <= 0:
            self.report(f"expected a positive integer step but found {loop.step!r}")
        if not isinstance(loop.kind, LoopKind):
            self.report(f"loop kind {loop.kind!r} is not a LoopKind")
        elif loop.kind in (LoopKind.VECTORIZE, LoopKind.UNROLL) and not isinstance(loop.extent, Const):
            article = "an" if loop.kind is LoopKind.UNROLL else "a"
            self.report(f"{article} {loop.kind} loop needs a constant extent, found `{_show(loop.extent)}`")
        self.check_name(loop.var, "loop variable")
        if loop.var in scope.variables:
            kind = scope.variables[loop.var][1]
            self.report(f"loop variable '{loop.var}' shadows an enclosing {kind} variable")
        start = loop.start if _is_index(loop.start) else None
        extent = loop.extent if _is_index(loop.extent) else None
        step = loop.step if isinstance(loop.step, int) and loop.step > 0 else 1
        inner = scope.child(LoopStep(loop.var, start, extent, step))
        inner.variables[loop.var] = (INDEX, "loop")
        loop_range = loop_values(loop.var, start, extent, step, scope.ranges)
        if loop_range is None:  # the loop never runs: its body cannot go out of range
            inner.ranges[loop.var] = Interval(0, -1, False, frozenset({loop.var}))
            inner.facts = inner.facts + (IMPOSSIBLE,)
        else:
            inner.ranges[loop.var] = loop_range
        self.stmt(loop.body, inner)

    def store(self, store: Store, scope: _Scope) -> None:
        buffer = self.access(store.buffer, store.indices, scope)
        value = self.expr(store.value, scope)
        if buffer is None:
            return
        if any(buffer is param for param in self.kernel.params):
            self.stored.add(store.buffer)
            if store.buffer not in self.kernel.writes:
                self.report(f"stores to parameter '{store.buffer}', which is not in "
                            f"writes({', '.join(self.kernel.writes)})")
        if value is not None and value != buffer.dtype:
            self.report(f"stores a {value} value into {buffer.dtype} buffer '{store.buffer}'")

    def if_stmt(self, stmt: If, scope: _Scope) -> None:
        cond = self.expr(stmt.cond, scope)
        if cond is not None and cond is not DType.BOOL:
            self.report(f"if condition has type {cond}, expected bool")
        then_scope = scope.child(GuardStep(stmt.cond, negate=False))
        _add_guard(then_scope, stmt.cond, negate=False)
        self.stmt(stmt.then_body, then_scope)
        if stmt.else_body is not None:
            else_scope = scope.child(GuardStep(stmt.cond, negate=True))
            _add_guard(else_scope, stmt.cond, negate=True)
            self.stmt(stmt.else_body, else_scope)

    def let(self, let: Let, scope: _Scope) -> None:
        dtype = self.expr(let.value, scope)
        self.check_name(let.var, "let variable")
        if scope.variables.get(let.var, (None, ""))[1] == "loop":
            self.report(f"let '{let.var}' shadows a loop variable")
        inner = scope.child(LetStep(let.var, let.value))
        inner.facts = tuple(fact for fact in scope.facts if let.var not in fact.names)  # about a shadowed let
        inner.let_depends[let.var] = scope.depends(_names_in(let.value))
        if dtype is not None:
            inner.variables[let.var] = (dtype, "let")
            if dtype is INDEX:
                value_range = bounds(let.value, scope.ranges)
                inner.ranges[let.var] = Interval(value_range.lo, value_range.hi, False,
                                                 value_range.depends | {let.var})
            else:
                inner.ranges.pop(let.var, None)
        else:
            inner.variables.pop(let.var, None)
        self.stmt(let.body, inner)

    def allocate(self, allocate: Allocate, scope: _Scope) -> None:
        buffer = allocate.buffer
        if not isinstance(buffer, Buffer):
            self.report(f"local {buffer!r} is not a Buffer")
            return
        for problem in _buffer_problems(buffer):
            self.report(f"local {problem}")
        if buffer.scope is not Scope.LOCAL:
            self.report(f"local '{buffer.name}' has scope {buffer.scope}; an Allocate holds a local buffer")
        if any(p.name == buffer.name for p in self.kernel.params):
            self.report(f"local '{buffer.name}' has the name of a parameter")
        inner = scope.child()
        inner.buffers[buffer.name] = buffer
        self.stmt(allocate.body, inner)

    def check_name(self, name: object, what: str) -> None:
        if not isinstance(name, str) or not IDENTIFIER.match(name) or name in RESERVED:
            self.report(f"{what} name {name!r} is not a name the text form can carry")

    # -- accesses and expressions ----------------------------------------------------------------

    def access(self, name: str, indices: tuple[Expr, ...], scope: _Scope) -> Buffer | None:
        buffer = scope.buffers.get(name)
        index_types = [self.expr(index, scope) for index in indices]
        if buffer is None:
            known = ", ".join(scope.buffers) or "none"
            self.report(f"buffer '{name}' is not a parameter or an enclosing local (buffers here: {known})")
            return None
        if len(indices) != len(buffer.shape):
            self.report(f"'{name}' has rank {len(buffer.shape)} but is accessed with {len(indices)} "
                        f"ind{'ex' if len(indices) == 1 else 'ices'}")
            return buffer
        for axis, (index, dtype) in enumerate(zip(indices, index_types)):
            if dtype is not None and dtype is not INDEX:
                self.report(f"index {axis} of '{name}' (`{_show(index)}`) has type {dtype}, expected i64")
            elif dtype is INDEX:
                self.check_range(name, axis, index, buffer.shape[axis], scope)
        return buffer

    def check_range(self, name: str, axis: int, index: Expr, extent: int, scope: _Scope) -> None:
        value = guarded_bounds(index, scope.ranges, scope.facts, scope.unknown_guards)
        if value is None:  # unreachable under the enclosing guards
            return
        lo, hi, lo_exact, hi_exact = value
        outside = (hi is not None and hi < 0) or (lo is not None and lo >= extent)
        below = lo is not None and lo < 0 and lo_exact
        above = hi is not None and hi >= extent and hi_exact
        if (outside or below or above) and out_of_range_witness(scope.path, index, extent, outside):
            self.report(f"index {axis} of '{name}' (`{_show(index)}`) ranges over [{_end(lo)}, {_end(hi)}] "
                        f"but axis {axis} has extent {extent}")

    def expr(self, expr: Expr, scope: _Scope) -> DType | None:
        """Check an expression; its dtype, or None when it is too broken to have one."""
        if not isinstance(expr, _EXPR_TYPES):
            self.report(f"{type(expr).__name__} {expr!r} is not a loop IR expression")
            return None
        if isinstance(expr, Const):
            return self.const(expr)
        if isinstance(expr, Var):
            known = scope.variables.get(expr.name)
            if known is None:
                self.report(f"variable '{expr.name}' is not defined here")
                return None
            if known[0] != expr.dtype:
                self.report(f"variable '{expr.name}' is used as {expr.dtype} but defined as {known[0]}")
            return known[0]
        if isinstance(expr, Load):
            buffer = self.access(expr.buffer, expr.indices, scope)
            if buffer is not None and expr.dtype != buffer.dtype:
                self.report(f"load of {buffer.dtype} buffer '{expr.buffer}' has dtype {expr.dtype}")
            return expr.dtype
        if isinstance(expr, Unary):
            return self.unary(expr, scope)
        if isinstance(expr, Binary):
            return self.binary(expr, scope)
        if isinstance(expr, Select):
            cond = self.expr(expr.cond, scope)
            a, b = self.expr(expr.true_value, scope), self.expr(expr.false_value, scope)
            if cond is not None and cond is not DType.BOOL:
                self.report(f"select condition `{_show(expr.cond)}` has type {cond}, expected bool")
            if a is not None and b is not None and a != b:
                self.report(f"select branches have types {a} and {b} (`{_show(expr)}`)")
            return a
        self.expr(expr.operand, scope)
        if not isinstance(expr.dtype, DType):
            self.report(f"cast to {expr.dtype!r}, which is not a DType")
            return None
        return expr.dtype

    def const(self, const: Const) -> DType | None:
        dtype, value = const.dtype, const.value
        if not isinstance(dtype, DType):
            self.report(f"constant {value!r} has dtype {dtype!r}, which is not a DType")
            return None
        if dtype is DType.BOOL:
            ok = isinstance(value, (bool, np.bool_))
        elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            ok = False
        elif dtype.is_int:
            ok = float(value).is_integer() and -(2 ** (dtype.bits - 1)) <= int(value) < 2 ** (dtype.bits - 1)
        else:
            ok = True
        if not ok:
            self.report(f"constant {value!r} is not a {dtype} value")
        return dtype

    def unary(self, expr: Unary, scope: _Scope) -> DType | None:
        operand = self.expr(expr.operand, scope)
        if expr.op not in UNARY_OPS:
            self.report(f"unknown unary op '{expr.op}' (known: {', '.join(sorted(UNARY_OPS))})")
            return None
        if operand is None:
            return None
        if expr.op == "logical_not" and operand is not DType.BOOL:
            self.report(f"logical_not needs a bool operand, found {operand} (`{_show(expr)}`)")
        elif expr.op in FLOAT_ONLY_UNARY and not operand.is_float:
            self.report(f"{expr.op} needs a floating-point operand, found {operand} (`{_show(expr)}`)")
        elif expr.op in ("neg", "abs", "relu") and operand is DType.BOOL:
            self.report(f"{expr.op} is not defined on bool (`{_show(expr)}`)")
        return operand

    def binary(self, expr: Binary, scope: _Scope) -> DType | None:
        left, right = self.expr(expr.left, scope), self.expr(expr.right, scope)
        if expr.op not in BINARY_OPS:
            self.report(f"unknown binary op '{expr.op}' (known: {', '.join(sorted(BINARY_OPS))})")
            return None
        if left is None or right is None:
            return DType.BOOL if expr.op in COMPARE_OPS else left
        if left != right:
            self.report(f"{expr.op} operands have types {left} and {right} (`{_show(expr)}`)")
        elif expr.op in LOGIC_OPS and left is not DType.BOOL:
            self.report(f"{expr.op} needs bool operands, found {left} (`{_show(expr)}`)")
        elif expr.op in FLOAT_ONLY_BINARY and not left.is_float:
            self.report(f"{expr.op} needs floating-point operands, found {left} (`{_show(expr)}`)")
        elif expr.op not in COMPARE_OPS | LOGIC_OPS and left is DType.BOOL:
            self.report(f"{expr.op} is not defined on bool (`{_show(expr)}`)")
        return DType.BOOL if expr.op in COMPARE_OPS else left


def _end(value: int | None) -> str:
    return "?" if value is None else str(value)


def _is_index(expr: object) -> bool:
    return isinstance(expr, _EXPR_TYPES) and getattr(expr, "dtype", None) is INDEX


def _add_guard(scope: _Scope, cond: Expr, negate: bool) -> None:
    """Record what holds inside `if cond` (or its else branch) about affine index expressions; a
    guard that never holds there makes the branch unreachable."""
    if not isinstance(cond, _EXPR_TYPES):
        return
    if never_holds(cond, scope.ranges, negate):
        scope.facts = (IMPOSSIBLE,)
        return
    facts = guard_facts(cond, negate)
    if facts is None:
        scope.unknown_guards = scope.unknown_guards | scope.depends(_names_in(cond))
        return
    scope.facts = conjoin(scope.facts, facts)


def _names_in(expr: object) -> frozenset[str]:
    if not isinstance(expr, _EXPR_TYPES):
        return frozenset()
    return frozenset(node.name for node in walk(expr) if isinstance(node, Var))
