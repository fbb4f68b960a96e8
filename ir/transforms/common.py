"""What every loop transform needs: its error, substitution, finding loops, fresh names, canonical form.

`substitute` replaces variables by expressions, respecting scopes (a `for` or `let` that rebinds a
name hides it) and refusing to capture (a replacement may not mention a name bound inside).
`canonical` puts a statement in the form `ir.loop_parser` returns: flat `Seq`s, a `Let`/`Allocate`
that holds the rest of its block. Moving later statements into a binding's scope is legal when they
do not mention the bound name (then the binding cannot change what they mean), and `canonical` only
moves them then.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Mapping

from compiler.diagnostics import NicheError
from ir.loop_printer import print_stmt
from ir.loop_simplify import free_vars, simplify
from ir.loops import (Allocate, Binary, Cast, Const, Expr, For, If, Kernel, Let, Load, Select, Seq, Stmt,
                      Store, Unary, Var, map_expr, walk)


class TransformError(NicheError):
    """A loop transform does not apply; the message says what it expected and what it found."""


# -- traversal ------------------------------------------------------------------------------------


def stmt_exprs(stmt: Stmt) -> Iterator[Expr]:
    """The expressions a statement evaluates itself (not those of nested statements)."""
    if isinstance(stmt, For):
        yield stmt.start
        yield stmt.extent
    elif isinstance(stmt, Store):
        yield from stmt.indices
        yield stmt.value
    elif isinstance(stmt, If):
        yield stmt.cond
    elif isinstance(stmt, Let):
        yield stmt.value


def stmt_children(stmt: Stmt) -> tuple[Stmt, ...]:
    if isinstance(stmt, Seq):
        return stmt.stmts
    if isinstance(stmt, (For, Let, Allocate)):
        return (stmt.body,)
    if isinstance(stmt, If):
        return (stmt.then_body,) if stmt.else_body is None else (stmt.then_body, stmt.else_body)
    return ()


def map_stmt(stmt: Stmt, expr_fn: Callable[[Expr], Expr]) -> Stmt:
    """Apply `expr_fn` to every expression of every statement in the tree."""
    if isinstance(stmt, Seq):
        return Seq(tuple(map_stmt(s, expr_fn) for s in stmt.stmts))
    if isinstance(stmt, For):
        return dataclasses.replace(stmt, start=expr_fn(stmt.start), extent=expr_fn(stmt.extent),
                                   body=map_stmt(stmt.body, expr_fn))
    if isinstance(stmt, Store):
        return Store(stmt.buffer, tuple(expr_fn(i) for i in stmt.indices), expr_fn(stmt.value))
    if isinstance(stmt, If):
        else_body = None if stmt.else_body is None else map_stmt(stmt.else_body, expr_fn)
        return If(expr_fn(stmt.cond), map_stmt(stmt.then_body, expr_fn), else_body)
    if isinstance(stmt, Let):
        return Let(stmt.var, expr_fn(stmt.value), map_stmt(stmt.body, expr_fn))
    if isinstance(stmt, Allocate):
        return Allocate(stmt.buffer, map_stmt(stmt.body, expr_fn))
    raise TypeError(f"not a loop IR statement: {stmt!r}")


def simplify_stmt(stmt: Stmt) -> Stmt:
    """`ir.loop_simplify.simplify` on every expression of a statement tree."""
    return map_stmt(stmt, simplify)


def loops(node: Kernel | Stmt) -> Iterator[For]:
    """Every loop of a kernel or statement, outer loops first."""
    body = node.body if isinstance(node, Kernel) else node
    for child in walk(body):
        if isinstance(child, For):
            yield child


def loop_vars(node: Kernel | Stmt) -> list[str]:
    """The loop variables of a kernel or statement, outer loops first (a name may repeat)."""
    return [loop.var for loop in loops(node)]


def find_loop(node: Kernel | Stmt, var: str) -> For:
    """The one loop over `var`; TransformError when there is none or more than one."""
    found = [loop for loop in loops(node) if loop.var == var]
    if len(found) != 1:
        where = f"kernel '{node.name}'" if isinstance(node, Kernel) else "the statement"
        names = ", ".join(loop_vars(node)) or "none"
        raise TransformError(f"expected exactly one loop over '{var}' in {where} but found {len(found)} "
                             f"(loops: {names})")
    return found[0]


def names_in_use(kernel: Kernel) -> set[str]:
    """Every name a new variable or buffer could collide with."""
    names = {param.name for param in kernel.params}
    for node in walk(kernel.body):
        if isinstance(node, (For, Let)):
            names.add(node.var)
        elif isinstance(node, Allocate):
            names.add(node.buffer.name)
        elif isinstance(node, Var):
            names.add(node.name)
    return names


def fresh_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... whichever is not taken; adds it to `taken`."""
    name = base
    number = 2
    while name in taken:
        name = f"{base}_{number}"
        number += 1
    taken.add(name)
    return name


def require_fresh(name: str, taken: set[str], role: str) -> str:
    if name in taken:
        raise TransformError(f"expected a fresh name for the {role} but found '{name}' already in use")
    taken.add(name)
    return name


def replace_loop(kernel: Kernel, var: str, rewrite: Callable[[For], Stmt]) -> Kernel:
    """The kernel with the one loop over `var` replaced by `rewrite(loop)`, in canonical form."""
    target = find_loop(kernel, var)

    def visit(stmt: Stmt) -> Stmt:
        if stmt is target:
            return rewrite(stmt)
        if isinstance(stmt, Seq):
            return Seq(tuple(visit(s) for s in stmt.stmts))
        if isinstance(stmt, (For, Let, Allocate)):
            return dataclasses.replace(stmt, body=visit(stmt.body))
        if isinstance(stmt, If):
            else_body = None if stmt.else_body is None else visit(stmt.else_body)
            return If(stmt.cond, visit(stmt.then_body), else_body)
        return stmt

    return dataclasses.replace(kernel, body=canonical(visit(kernel.body)))


def perfect_nest(loop: For, depth: int) -> list[For]:
    """`depth` loops, each the whole body of the one before; TransformError otherwise."""
    chain = [loop]
    while len(chain) < depth:
        body = chain[-1].body
        if not isinstance(body, For):
            raise TransformError(f"expected a loop directly inside loop '{chain[-1].var}' (a perfect nest) "
                                 f"but found `{first_line(body)}`")
        chain.append(body)
    return chain


def first_line(stmt: Stmt) -> str:
    """A statement's first printed line, for messages."""
    lines = print_stmt(stmt).splitlines()
    if not lines:
        return "an empty block"
    return lines[0] + (" ..." if len(lines) > 1 else "")


# -- substitution ---------------------------------------------------------------------------------


def substitute(node: Stmt | Expr, mapping: Mapping[str | Var, Expr]) -> Stmt | Expr:
    """`node` with each free variable of `mapping` replaced by its expression.

    Keys are names or `Var`s. A replacement must have the variable's dtype, and may not mention a
    name that a loop or let inside `node` binds around a use (that would capture it).
    """
    table: dict[str, Expr] = {}
    for key, value in mapping.items():
        name = key.name if isinstance(key, Var) else key
        table[name] = value
    return _subst(node, table)


def _subst(node: Stmt | Expr, table: dict[str, Expr]) -> Stmt | Expr:
    if not table:
        return node
    if isinstance(node, Var):
        replacement = table.get(node.name)
        if replacement is None:
            return node
        if replacement.dtype != node.dtype:
            raise TransformError(f"expected a {node.dtype} expression for '{node.name}' but found "
                                 f"{replacement.dtype}")
        return replacement
    if isinstance(node, (Const, Load, Unary, Binary, Select, Cast)):
        return map_expr(node, lambda child: _subst(child, table))
    if isinstance(node, Seq):
        return Seq(tuple(_subst(s, table) for s in node.stmts))
    if isinstance(node, Store):
        return Store(node.buffer, tuple(_subst(i, table) for i in node.indices), _subst(node.value, table))
    if isinstance(node, If):
        else_body = None if node.else_body is None else _subst(node.else_body, table)
        return If(_subst(node.cond, table), _subst(node.then_body, table), else_body)
    if isinstance(node, Allocate):
        return Allocate(node.buffer, _subst(node.body, table))
    if isinstance(node, (For, Let)):
        inner = _scoped(table, node.var, node.body)
        if isinstance(node, For):
            return dataclasses.replace(node, start=_subst(node.start, table), extent=_subst(node.extent, table),
                                       body=_subst(node.body, inner))
        return Let(node.var, _subst(node.value, table), _subst(node.body, inner))
    raise TypeError(f"not a loop IR node: {node!r}")


def _scoped(table: dict[str, Expr], bound: str, body: Stmt) -> dict[str, Expr]:
    """The substitutions that apply inside a binding of `bound`; refuses captures."""
    inner = {name: value for name, value in table.items() if name != bound}
    used = free_vars_stmt(body)
    for name, value in inner.items():
        if name in used and bound in free_vars(value):
            raise TransformError(f"expected replacements that do not mention '{bound}' but found "
                                 f"'{name}' -> an expression of '{bound}', which the binding of '{bound}' "
                                 f"inside would capture")
    return inner


def free_vars_stmt(stmt: Stmt) -> frozenset[str]:
    """Names of the variables a statement reads without binding them itself."""
    names: set[str] = set()
    for expr in stmt_exprs(stmt):
        names |= free_vars(expr)
    inner: set[str] = set()
    for child in stmt_children(stmt):
        inner |= free_vars_stmt(child)
    if isinstance(stmt, (For, Let)):
        inner.discard(stmt.var)
    return frozenset(names | inner)


def buffers_used(stmt: Stmt) -> frozenset[str]:
    """Names of the buffers a statement loads or stores without allocating them itself."""
    names: set[str] = set()
    for expr in stmt_exprs(stmt):
        names |= {node.buffer for node in walk(expr) if isinstance(node, Load)}
    if isinstance(stmt, Store):
        names.add(stmt.buffer)
    inner: set[str] = set()
    for child in stmt_children(stmt):
        inner |= buffers_used(child)
    if isinstance(stmt, Allocate):
        inner.discard(stmt.buffer.name)
    return frozenset(names | inner)


# -- canonical form -------------------------------------------------------------------------------


def canonical(stmt: Stmt) -> Stmt:
    """Flat Seqs, one-statement blocks unwrapped, a Let/Allocate holding the rest of its block."""
    if isinstance(stmt, Seq):
        items: list[Stmt] = []
        for child in stmt.stmts:
            child = canonical(child)
            items.extend(child.stmts if isinstance(child, Seq) else (child,))
        return _absorb(items)
    if isinstance(stmt, (For, Let, Allocate)):
        return dataclasses.replace(stmt, body=canonical(stmt.body))
    if isinstance(stmt, If):
        else_body = None if stmt.else_body is None else canonical(stmt.else_body)
        return If(stmt.cond, canonical(stmt.then_body), else_body)
    return stmt


def _absorb(items: list[Stmt]) -> Stmt:
    """Move the statements after a binding into its body, where that cannot change their meaning."""
    if not items:
        return Seq(())
    for position, item in enumerate(items[:-1]):
        rest = items[position + 1:]
        if isinstance(item, Let):
            captured = any(item.var in free_vars_stmt(s) for s in rest)
        elif isinstance(item, Allocate):
            captured = any(item.buffer.name in buffers_used(s) for s in rest)
        else:
            continue
        if captured:
            continue
        body = canonical(Seq((item.body, *rest)))
        absorbed = dataclasses.replace(item, body=body)
        head = items[:position]
        return absorbed if not head else Seq((*head, absorbed))
    return items[0] if len(items) == 1 else Seq(tuple(items))


def is_pure_index(expr: Expr) -> bool:
    """An expression of variables and constants only (no loads): safe to evaluate again anywhere
    its variables are bound, with the same result."""
    return not any(isinstance(node, Load) for node in walk(expr))
