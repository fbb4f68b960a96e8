"""Text -> loop IR: reads what `ir.loop_printer` writes (grammar in `ir/loop.lark`).

`parse_kernel` reads one `kernel @name(...) writes(...) {...}`, `parse_program` a whole
`program @name {...}`. Types come from declarations, as in the text: a `Load` has its buffer's dtype,
a `Var` the type of its `let` (loop variables are i64), and an untyped constant is i64, f32 or bool.
`let` and `local` scope over the rest of their block, so the parser returns the canonical tree: a
`Let`/`Allocate` holds every statement after it, a block of one statement is that statement and a
block of several is one flat `Seq`. For such trees `parse(print(x)) == x`; for every tree
`print(parse(print(x))) == print(x)`. A static range `A..B step S` has ceil((B - A) / S) iterations.

Mistakes in the text are user errors: `LoopParseError` names the line and column, for syntax errors,
unknown buffers, variables, functions and dtypes, and `let` types that disagree with their values.
The words `and`, `or`, `else`, `strides`, `true`, `false`, `inf` and `nan` cannot name buffers or
variables in this text (the verifier reports names that would not read back); other keywords can.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import lark
from lark import Token, Tree

from ir.dtypes import DType, parse_dtype
from ir.loops import (INDEX, UNARY_OPS, Allocate, Binary, Buffer, Cast, Const, Expr, For, If, Kernel,
                      KernelCall, Let, Load, LoopKind, LoopProgram, Scope, Select, Seq, Stmt, Store, Unary,
                      Var)
from ir.text_parsing import TextParseError, line_text, syntax_error

GRAMMAR = Path(__file__).with_name("loop.lark")

_INFIX = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "mod",
          "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_CALLS = {"max": "maximum", "min": "minimum", "pow": "pow"}
_NAMED_CONSTS = {"true": (True, DType.BOOL), "false": (False, DType.BOOL),
                 "inf": (math.inf, DType.F32), "nan": (math.nan, DType.F32)}


class LoopParseError(TextParseError):
    """The loop IR text is malformed; `line` and `col` (1-based) say where."""

    def __init__(self, message: str, line: int, col: int, file: str = "<loops>",
                 source_line: str | None = None) -> None:
        super().__init__(message, line, col, file, source_line)


@functools.cache
def _parser() -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(), parser="lalr", lexer="contextual", maybe_placeholders=True,
                     propagate_positions=True, start=["kernel_text", "program_text"])


def parse_kernel(text: str, file: str = "<loops>") -> Kernel:
    """Parse the text of one kernel; raises LoopParseError."""
    tree = _parse(text, file, "kernel_text")
    return _Builder(text, file).kernel(tree.children[0])


def parse_program(text: str, file: str = "<loops>") -> LoopProgram:
    """Parse the text of a whole loop program; raises LoopParseError."""
    tree = _parse(text, file, "program_text")
    return _Builder(text, file).program(tree.children[0])


def _parse(text: str, file: str, start: str) -> Tree:
    try:
        return _parser().parse(text, start=start)
    except lark.UnexpectedInput as error:
        raise _syntax_error(error, text, file) from None


def _syntax_error(error: lark.UnexpectedInput, text: str, file: str) -> LoopParseError:
    return syntax_error(error, text, file, _describe, LoopParseError)


def _describe(name: str) -> str:
    if name in ("$END", "<END-OF-FILE>"):
        return "end of input"
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


def _unescape(quoted: str) -> str:
    """The printer escapes only backslashes and quotes: `\\x` stands for `x`."""
    return re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.DOTALL)


class _Scope:
    """Buffers and scalar variables visible at one point, innermost last."""

    def __init__(self, buffers: dict[str, Buffer], variables: dict[str, DType]) -> None:
        self.buffers = buffers
        self.variables = variables

    def with_buffer(self, buffer: Buffer) -> _Scope:
        return _Scope({**self.buffers, buffer.name: buffer}, self.variables)

    def with_variable(self, name: str, dtype: DType) -> _Scope:
        return _Scope(self.buffers, {**self.variables, name: dtype})


class _Builder:
    """Parse tree -> loop IR, resolving names and types as it goes."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file

    def error(self, message: str, where: Token | Tree) -> LoopParseError:
        if isinstance(where, Token):
            line, col = where.line, where.column
        else:
            line, col = where.meta.line, where.meta.column
        return LoopParseError(message, line, col, self.file, line_text(self.text, line))

    # -- programs --------------------------------------------------------------------------------

    def program(self, tree: Tree) -> LoopProgram:
        symbol, *parts = tree.children
        buffers: dict[str, Buffer] = {}
        inputs: dict[int, str] = {}
        outputs: dict[int, str] = {}
        kernels: dict[str, Kernel] = {}
        calls: list[KernelCall] = []
        for part in parts:
            if part.data == "program_buffer":
                decl, roles = part.children
                name_token = decl.children[0]
                scope = Scope.GLOBAL
                for role in roles.children if roles is not None else []:
                    scope = self.role(role, str(name_token), inputs, outputs, scope)
                buffer = self.buffer(decl, scope)
                if buffer.name in buffers:
                    raise self.error(f"buffer '{buffer.name}' is declared twice", name_token)
                buffers[buffer.name] = buffer
            elif part.data == "kernel":
                kernel = self.kernel(part)
                if kernel.name in kernels:
                    raise self.error(f"kernel '@{kernel.name}' is defined twice", part.children[0])
                kernels[kernel.name] = kernel
            else:
                target, names = part.children
                calls.append(KernelCall(str(target)[1:], self.names(names)))
        return LoopProgram(str(symbol)[1:], buffers, self.positions(inputs, "input", tree),
                           self.positions(outputs, "output", tree), kernels, calls)

    def role(self, role: Tree, name: str, inputs: dict[int, str], outputs: dict[int, str],
             scope: Scope) -> Scope:
        if role.data == "scope_role":
            token = role.children[0]
            try:
                return Scope(str(token))
            except ValueError:
                raise self.error(f"expected 'input N', 'output N' or a scope (global, local) but found "
                                 f"'{token}'", token) from None
        table = inputs if role.data == "input_role" else outputs
        for token in role.children:
            position = int(token)
            if position in table:
                raise self.error(f"{role.data[:-5]} {position} is given twice ('{table[position]}' and "
                                 f"'{name}')", token)
            table[position] = name
        return scope

    def positions(self, table: dict[int, str], what: str, tree: Tree) -> list[str]:
        missing = [i for i in range(len(table)) if i not in table]
        if missing:
            raise self.error(f"{what} {missing[0]} is not given to any buffer", tree)
        return [table[i] for i in range(len(table))]

    # -- kernels ---------------------------------------------------------------------------------

    def kernel(self, tree: Tree) -> Kernel:
        symbol, params, writes, attrs, body = tree.children
        buffers: dict[str, Buffer] = {}
        for decl in params.children if params is not None else []:
            buffer = self.buffer(decl, Scope.GLOBAL)
            if buffer.name in buffers:
                raise self.error(f"parameter '{buffer.name}' is declared twice", decl.children[0])
            buffers[buffer.name] = buffer
        attr_pairs = self.attrs(attrs) if attrs is not None else ()
        statement = self.block(body.children, _Scope(buffers, {}))
        return Kernel(str(symbol)[1:], tuple(buffers.values()), statement, self.names(writes), attr_pairs)

    def names(self, tree: Tree | None) -> tuple[str, ...]:
        return tuple(str(token) for token in tree.children) if tree is not None else ()

    def buffer(self, tree: Tree, scope: Scope) -> Buffer:
        name, dtype_token, dims, strides = tree.children
        shape = self.ints(dims)
        if any(d < 0 for d in shape):
            raise self.error(f"buffer '{name}' has a negative dimension in {list(shape)}", name)
        stride_values = self.ints(strides.children[0]) if strides is not None else None
        if stride_values is not None and len(stride_values) != len(shape):
            raise self.error(f"buffer '{name}' has {len(shape)} dimensions but {len(stride_values)} strides",
                             strides)
        return Buffer(str(name), self.dtype(dtype_token), shape, stride_values, scope)

    def ints(self, tree: Tree | None) -> tuple[int, ...]:
        return tuple(self.signed_int(t) for t in tree.children) if tree is not None else ()

    def signed_int(self, tree: Tree) -> int:
        minus, digits = tree.children
        return -int(digits) if minus is not None else int(digits)

    def dtype(self, token: Token) -> DType:
        dtype = parse_dtype(str(token))
        if dtype is None:
            known = ", ".join(d.value for d in DType)
            raise self.error(f"expected a dtype ({known}) but found '{token}'", token)
        return dtype

    def attrs(self, tree: Tree) -> tuple[tuple[str, object], ...]:
        pairs: list[tuple[str, object]] = []
        for entry in tree.children:
            if entry is None:  # `attrs()`
                continue
            key, value = entry.children
            if any(k == str(key) for k, _ in pairs):
                raise self.error(f"attribute '{key}' is given twice", key)
            pairs.append((str(key), self.attr_value(value)))
        return tuple(pairs)

    def attr_value(self, tree: Tree) -> object:
        kind = tree.data
        if kind == "attr_list":
            return tuple(self.attr_value(child) for child in tree.children if child is not None)
        if kind == "attr_string":
            return _unescape(str(tree.children[0]))
        if kind == "attr_dotted":
            enum_name, member = (str(t) for t in tree.children)
            if enum_name == "DType" and member in DType.__members__:
                return DType[member]
            raise self.error(f"expected an attribute value but found '{enum_name}.{member}'", tree)
        minus, token = tree.children
        sign = -1 if minus is not None else 1
        if kind == "attr_int":
            return sign * int(token)
        if kind == "attr_float":
            return sign * float(token)
        word = str(token)
        if word in ("inf", "nan"):
            return sign * float(word)
        if minus is None and word in ("true", "false", "None"):
            return {"true": True, "false": False, "None": None}[word]
        raise self.error(f"expected an attribute value but found '{'-' if minus else ''}{word}'", token)

    # -- statements ------------------------------------------------------------------------------

    def block(self, items: list[Tree], scope: _Scope) -> Stmt:
        """Statements in order; a `let` or `local` takes the rest of the block as its body."""
        stmts: list[Stmt] = []
        for position, item in enumerate(items):
            if item.data == "let_stmt":
                name, dtype_token, value_tree = item.children
                value = self.expr(value_tree, scope)
                declared = self.dtype(dtype_token)
                if value.dtype != declared:
                    raise self.error(f"let '{name}' is declared {declared} but its value is {value.dtype}",
                                     dtype_token)
                body = self.block(items[position + 1:], scope.with_variable(str(name), declared))
                stmts.append(Let(str(name), value, body))
                break
            if item.data == "local_stmt":
                buffer = self.buffer(item.children[0], Scope.LOCAL)
                stmts.append(Allocate(buffer, self.block(items[position + 1:], scope.with_buffer(buffer))))
                break
            stmts.append(self.stmt(item, scope))
        return stmts[0] if len(stmts) == 1 else Seq(tuple(stmts))

    def stmt(self, tree: Tree, scope: _Scope) -> Stmt:
        kind = tree.data
        if kind == "store":
            target, indices, value = tree.children
            buffer = self.buffer_named(target, scope)
            return Store(buffer.name, self.exprs(indices, scope), self.expr(value, scope))
        if kind == "if_stmt":
            cond, then_block, else_block = tree.children
            else_body = self.block(else_block.children[0].children, scope) if else_block is not None else None
            return If(self.expr(cond, scope), self.block(then_block.children, scope), else_body)
        if kind == "for_stmt":
            return self.for_stmt(tree, scope)
        raise self.error(f"unexpected statement '{kind}'", tree)  # the grammar has no other statements

    def for_stmt(self, tree: Tree, scope: _Scope) -> For:
        var, start_tree, end, step_tree, kind_tree, body = tree.children
        start = self.expr(start_tree, scope)
        step = int(step_tree.children[1]) if step_tree is not None else 1
        if step <= 0:
            raise self.error(f"expected a positive step but found {step}", step_tree)
        if end.data == "dynamic_end":
            extent = self.expr(end.children[0], scope)
        else:
            if not isinstance(start, Const) or not isinstance(start.value, int):
                raise self.error("a range `A..B` needs a constant integer start; write `A..+EXTENT` for "
                                 "a computed one", start_tree)
            stop = self.signed_int(end.children[0])
            extent = Const(-((start.value - stop) // step))  # ceil((stop - start) / step)
        kind = LoopKind(str(kind_tree.children[0])) if kind_tree is not None else LoopKind.SERIAL
        inner = scope.with_variable(str(var), INDEX)
        return For(str(var), start, extent, self.block(body.children, inner), kind, step)

    def buffer_named(self, token: Token, scope: _Scope) -> Buffer:
        try:
            return scope.buffers[str(token)]
        except KeyError:
            known = ", ".join(scope.buffers) or "none"
            raise self.error(f"unknown buffer '{token}' (buffers here: {known})", token) from None

    # -- expressions -----------------------------------------------------------------------------

    def exprs(self, tree: Tree | None, scope: _Scope) -> tuple[Expr, ...]:
        return tuple(self.expr(child, scope) for child in tree.children) if tree is not None else ()

    def expr(self, tree: Tree | Token, scope: _Scope) -> Expr:
        kind = tree.data
        if kind == "int_const":
            return self.int_const(tree)
        if kind == "float_const":
            return self.float_const(tree)
        if kind == "named_const":
            return self.named_const(tree)
        if kind == "negative_named_const":
            return self.negative_named_const(tree)
        if kind == "name":
            token = tree.children[0]
            if str(token) in scope.variables:
                return Var(str(token), scope.variables[str(token)])
            if str(token) in _NAMED_CONSTS:
                value, dtype = _NAMED_CONSTS[str(token)]
                return Const(value, dtype)
            raise self.error(f"unknown variable '{token}'", token)
        if kind == "load":
            target, indices = tree.children
            buffer = self.buffer_named(target, scope)
            return Load(buffer.name, self.exprs(indices, scope), buffer.dtype)
        if kind == "call_expr":
            return self.call(tree, scope)
        if kind == "cast":
            cast_token, operand = tree.children
            return Cast(self.dtype(Token("NAME", str(cast_token)[5:-1], line=cast_token.line,
                                         column=cast_token.column + 5)), self.expr(operand, scope))
        if kind in ("arith", "compare"):
            left, op, right = tree.children
            return Binary(_INFIX[str(op)], self.expr(left, scope), self.expr(right, scope))
        if kind in ("logical_and", "logical_or"):
            left, right = tree.children
            return Binary(kind, self.expr(left, scope), self.expr(right, scope))
        raise self.error(f"unexpected expression '{kind}'", tree)  # the grammar has no other expressions

    def int_const(self, tree: Tree) -> Const:
        *sign, digits, dtype_token = tree.children
        value = int(digits) * (-1 if sign else 1)
        if dtype_token is None:
            return Const(value)
        dtype = self.dtype(dtype_token)
        if dtype.is_float:
            return Const(float(value), dtype)
        if dtype.is_bool:
            raise self.error(f"expected true or false for a bool constant but found {value}", digits)
        return Const(value, dtype)

    def float_const(self, tree: Tree) -> Const:
        *sign, digits, dtype_token = tree.children
        value = float(("-" if sign else "") + str(digits))
        dtype = self.dtype(dtype_token) if dtype_token is not None else DType.F32
        if not dtype.is_float:
            raise self.error(f"expected an integer for a {dtype} constant but found {digits}", digits)
        return Const(value, dtype)

    def named_const(self, tree: Tree) -> Const:
        word, dtype_token = tree.children
        return self.word_const(word, dtype_token, negative=False)

    def negative_named_const(self, tree: Tree) -> Const:
        _minus, word, dtype_token = tree.children
        return self.word_const(word, dtype_token, negative=True)

    def word_const(self, word: Token, dtype_token: Token | None, negative: bool) -> Const:
        """`true`, `false`, `inf`, `nan`, `-inf`, `-nan`, optionally typed (`inf:f16`)."""
        allowed = ("inf", "nan") if negative else tuple(_NAMED_CONSTS)
        if str(word) not in allowed:
            expected = ", ".join(("-" if negative else "") + w for w in allowed)
            raise self.error(f"expected a constant ({expected}) but found '{'-' if negative else ''}{word}'",
                             word)
        value, dtype = _NAMED_CONSTS[str(word)]
        if dtype_token is not None:
            declared = self.dtype(dtype_token)
            if declared.is_float != dtype.is_float or declared.is_bool != dtype.is_bool:
                raise self.error(f"'{word}' cannot be a {declared} constant", dtype_token)
            dtype = declared
        return Const(-value if negative else value, dtype)

    def call(self, tree: Tree, scope: _Scope) -> Expr:
        function, arg_trees = tree.children
        args = self.exprs(arg_trees, scope)
        name = str(function)
        if name in UNARY_OPS:
            arity = 1
        elif name in _CALLS:
            arity = 2
        elif name == "select":
            arity = 3
        else:
            known = ", ".join(sorted(UNARY_OPS | set(_CALLS) | {"select"}))
            raise self.error(f"unknown function '{name}' (known: {known})", function)
        if len(args) != arity:
            raise self.error(f"expected {arity} argument{'s' if arity > 1 else ''} for '{name}' but found "
                             f"{len(args)}", function)
        if name in UNARY_OPS:
            return Unary(name, args[0])
        if name in _CALLS:
            return Binary(_CALLS[name], args[0], args[1])
        return Select(args[0], args[1], args[2])
