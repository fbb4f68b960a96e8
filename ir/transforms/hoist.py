"""Loop-invariant code motion: compute invariant loads and subexpressions once, in `let`s above the loop.

An expression inside a loop is invariant when it mentions no variable bound by the loop or inside
it and loads no buffer the loop stores to or allocates (so it has one value in every iteration,
equal to its value just before the loop). Binding it with a `let` right before the loop and reading
the `let` instead gives the same values. Loops are processed innermost first, so an expression
invariant in several loops rises above all of them.

Hoisting evaluates the expression once even if the loop would not have (zero iterations) or only
in some iterations (inside an `if` or a `select` branch). That is harmless for arithmetic, but a
load could go out of range and an integer division could divide by zero, so such *trapping*
expressions are only hoisted from positions that run in every iteration of a loop with a constant
extent >= 1. What is hoisted: maximal invariant subexpressions that load memory or compute with
floating-point values; index arithmetic and comparisons stay in place (they are cheap, the code
generator hoists them, and the affine analyses of the verifier and the transforms read them there).
"""

from __future__ import annotations

import dataclasses

from ir.loops import (Allocate, Binary, Cast, Const, Expr, For, If, Kernel, Let, Load, Select, Seq,
                      Stmt, Store, Unary, Var, map_expr, walk)
from ir.loop_simplify import free_vars
from ir.transforms.common import canonical, fresh_name, map_stmt, names_in_use, substitute


def hoist_invariants(kernel: Kernel) -> Kernel:
    """Move loop-invariant loads and non-index subexpressions into `let`s above their loops.

        for i in 0..4 {                       let inv: f32 = exp(s[0])
          for j in 0..8 {                     for i in 0..4 {
            y[i, j] = x[i, j] * exp(s[0])  ->   for j in 0..8 {
          }                                       y[i, j] = x[i, j] * inv
        }                                       }
                                              }
    """
    hoister = _Hoister(names_in_use(kernel))
    return dataclasses.replace(kernel, body=canonical(hoister.stmt(kernel.body)))


class _Hoister:
    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.hoisted: set[str] = set()

    def stmt(self, stmt: Stmt) -> Stmt:
        if isinstance(stmt, Seq):
            return Seq(tuple(self.stmt(s) for s in stmt.stmts))
        if isinstance(stmt, For):
            return self.loop(dataclasses.replace(stmt, body=self.stmt(stmt.body)))
        if isinstance(stmt, (Let, Allocate)):
            return dataclasses.replace(stmt, body=self.stmt(stmt.body))
        if isinstance(stmt, If):
            else_body = None if stmt.else_body is None else self.stmt(stmt.else_body)
            return If(stmt.cond, self.stmt(stmt.then_body), else_body)
        return stmt

    def loop(self, loop: For) -> Stmt:
        variant = {loop.var}
        blocked: set[str] = set()  # buffers the loop stores to or allocates
        for node in walk(loop.body):
            if isinstance(node, (For, Let)):
                variant.add(node.var)
            elif isinstance(node, Store):
                blocked.add(node.buffer)
            elif isinstance(node, Allocate):
                blocked.add(node.buffer.name)
        runs = isinstance(loop.extent, Const) and not isinstance(loop.extent.value, bool) and loop.extent.value >= 1
        finder = _Candidates(variant, blocked, runs)
        finder.stmt(loop.body, True)
        if not finder.found:
            return loop
        # A value an inner loop already hoisted keeps its name as it rises further.
        earlier = {node.value: node.var for node in walk(loop.body)
                   if isinstance(node, Let) and node.var in self.hoisted}
        names = {candidate: earlier.get(candidate) or fresh_name("inv", self.taken) for candidate in finder.found}
        self.hoisted |= set(names.values())

        def replace(expr: Expr) -> Expr:
            return _replace(expr, names)

        body = _drop_copies(map_stmt(loop.body, replace), set(names.values()))
        result: Stmt = dataclasses.replace(loop, body=body)
        for candidate in reversed(finder.found):
            result = Let(names[candidate], candidate, result)
        return result


class _Candidates:
    """Maximal invariant subexpressions worth hoisting, in order of first appearance."""

    def __init__(self, variant: set[str], blocked: set[str], runs: bool) -> None:
        self.variant = variant
        self.blocked = blocked
        self.runs = runs
        self.found: list[Expr] = []

    def stmt(self, stmt: Stmt, every_iteration: bool) -> None:
        if isinstance(stmt, Seq):
            for child in stmt.stmts:
                self.stmt(child, every_iteration)
        elif isinstance(stmt, Store):
            for expr in (*stmt.indices, stmt.value):
                self.expr(expr, every_iteration)
        elif isinstance(stmt, Let):
            self.expr(stmt.value, every_iteration)
            self.stmt(stmt.body, every_iteration)
        elif isinstance(stmt, Allocate):
            self.stmt(stmt.body, every_iteration)
        elif isinstance(stmt, If):
            self.expr(stmt.cond, every_iteration)
            self.stmt(stmt.then_body, False)
            if stmt.else_body is not None:
                self.stmt(stmt.else_body, False)
        elif isinstance(stmt, For):
            self.expr(stmt.start, every_iteration)
            self.expr(stmt.extent, every_iteration)
            runs = isinstance(stmt.extent, Const) and stmt.extent.value >= 1
            self.stmt(stmt.body, every_iteration and runs)

    def expr(self, expr: Expr, every_iteration: bool) -> None:
        if self.invariant(expr) and _worth(expr) and (not _traps(expr) or (every_iteration and self.runs)):
            if expr not in self.found:
                self.found.append(expr)
            return
        if isinstance(expr, Select):
            self.expr(expr.cond, every_iteration)
            self.expr(expr.true_value, False)
            self.expr(expr.false_value, False)
            return
        for child in _children(expr):
            self.expr(child, every_iteration)

    def invariant(self, expr: Expr) -> bool:
        if free_vars(expr) & self.variant:
            return False
        return not any(isinstance(node, Load) and node.buffer in self.blocked for node in walk(expr))


def _children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Load):
        return expr.indices
    if isinstance(expr, (Unary, Cast)):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Select):
        return (expr.cond, expr.true_value, expr.false_value)
    return ()


def _worth(expr: Expr) -> bool:
    """A load, or a floating-point computation. Index arithmetic and comparisons of indices stay in
    place: they are cheap, and a guard `if i * 4 + j < n` must stay readable to the analyses."""
    if isinstance(expr, (Const, Var)):
        return False
    return any(isinstance(node, Load) or node.dtype.is_float for node in walk(expr))


def _traps(expr: Expr) -> bool:
    """Whether evaluating `expr` where the original did not could fail: a load (out of range) or an
    integer division by something other than a non-zero constant."""
    for node in walk(expr):
        if isinstance(node, Load):
            return True
        if isinstance(node, Binary) and node.op in ("div", "floordiv", "mod") and not node.dtype.is_float:
            if not (isinstance(node.right, Const) and node.right.value != 0):
                return True
    return False


def _replace(expr: Expr, names: dict[Expr, str]) -> Expr:
    name = names.get(expr)
    if name is not None:
        return Var(name, expr.dtype)
    return map_expr(expr, lambda child: _replace(child, names))


def _drop_copies(stmt: Stmt, hoisted: set[str]) -> Stmt:
    """Drop `let inv = inv` (and inline `let a = inv`), left behind when a value an inner loop hoisted
    rises further."""
    if isinstance(stmt, Let) and isinstance(stmt.value, Var) and stmt.value.name in hoisted:
        body = stmt.body if stmt.value.name == stmt.var else substitute(stmt.body, {stmt.var: stmt.value})
        return _drop_copies(body, hoisted)
    if isinstance(stmt, Seq):
        return Seq(tuple(_drop_copies(s, hoisted) for s in stmt.stmts))
    if isinstance(stmt, (For, Let, Allocate)):
        return dataclasses.replace(stmt, body=_drop_copies(stmt.body, hoisted))
    if isinstance(stmt, If):
        else_body = None if stmt.else_body is None else _drop_copies(stmt.else_body, hoisted)
        return If(stmt.cond, _drop_copies(stmt.then_body, hoisted), else_body)
    return stmt
