"""Kernels up to renaming: the form in which the CPU target caches and deduplicates compiled kernels.

Two kernels that differ only in their names (the kernel's, its parameters', its loop variables',
lets' and locals') compute the same function of their parameter pointers, so they can share one
compiled function. `canonical_kernel` renames parameters to p0, p1, ... in order, every other name to
n0, n1, ... in order of first definition, and drops the name and attributes; the printed canonical
kernel is the cache key of the kernel's object code. (The repeated layers of a transformer become one
compiled kernel per distinct layer kernel.)
"""

from __future__ import annotations

import dataclasses

from ir.loops import Allocate, Buffer, Expr, For, If, Kernel, Let, Load, Seq, Stmt, Store, Var, map_expr


class _Renamer:
    def __init__(self, params: tuple[Buffer, ...]) -> None:
        self.names = {buffer.name: f"p{index}" for index, buffer in enumerate(params)}
        self.count = 0

    def scoped(self, name: str, body: Stmt) -> tuple[str, Stmt]:
        """A fresh canonical name for `name`, used in `body` only (an outer binding is restored)."""
        fresh = f"n{self.count}"
        self.count += 1
        outer = self.names.get(name)
        self.names[name] = fresh
        renamed = self.stmt(body)
        if outer is None:
            del self.names[name]
        else:
            self.names[name] = outer
        return fresh, renamed

    def expr(self, expr: Expr) -> Expr:
        if isinstance(expr, Var):
            return Var(self.names.get(expr.name, expr.name), expr.dtype)
        if isinstance(expr, Load):
            return Load(self.names[expr.buffer], tuple(self.expr(i) for i in expr.indices), expr.dtype)
        return map_expr(expr, self.expr)

    def stmt(self, stmt: Stmt) -> Stmt:
        if isinstance(stmt, Seq):
            return Seq(tuple(self.stmt(s) for s in stmt.stmts))
        if isinstance(stmt, Store):
            return Store(self.names[stmt.buffer], tuple(self.expr(i) for i in stmt.indices), self.expr(stmt.value))
        if isinstance(stmt, For):
            start, extent = self.expr(stmt.start), self.expr(stmt.extent)
            var, body = self.scoped(stmt.var, stmt.body)
            return For(var, start, extent, body, stmt.kind, stmt.step)
        if isinstance(stmt, Let):
            value = self.expr(stmt.value)
            var, body = self.scoped(stmt.var, stmt.body)
            return Let(var, value, body)
        if isinstance(stmt, Allocate):
            name, body = self.scoped(stmt.buffer.name, stmt.body)
            return Allocate(dataclasses.replace(stmt.buffer, name=name), body)
        if isinstance(stmt, If):
            else_body = self.stmt(stmt.else_body) if stmt.else_body is not None else None
            return If(self.expr(stmt.cond), self.stmt(stmt.then_body), else_body)
        raise TypeError(f"not a loop IR statement: {stmt!r}")


def canonical_kernel(kernel: Kernel) -> Kernel:
    renamer = _Renamer(kernel.params)
    params = tuple(dataclasses.replace(buffer, name=f"p{index}") for index, buffer in enumerate(kernel.params))
    body = renamer.stmt(kernel.body)
    writes = tuple(renamer.names[name] for name in kernel.writes)
    return Kernel("kernel", params, body, writes)
