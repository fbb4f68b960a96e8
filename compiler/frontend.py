"""Source text -> AST: lexing and parsing .nk files with lark, with located errors."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

import lark
from lark.lexer import Token

from compiler import syntax as ast
from compiler.diagnostics import CompileError, Diagnostic, SourceMap
from ir.graph import Loc

GRAMMAR = Path(__file__).with_name("grammar.lark")

_OPENERS = {"LPAR", "LSQB"}
_CLOSERS = {"RPAR", "RSQB"}


class _Postlexer:
    """Make newlines mean "end of statement" only where a statement can end.

    Drops newlines inside () and [], merges runs of newlines, and adds one before every `}` and at
    the end of the input so the last statement of a block or file needs no trailing newline.
    """

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        previous: Token | None = None
        for token in stream:
            if token.type == "_NL":
                if depth > 0 or previous is None or previous.type in ("_NL", "LBRACE"):
                    continue
            elif token.type in _OPENERS:
                depth += 1
            elif token.type in _CLOSERS:
                depth = max(0, depth - 1)
            elif (token.type == "RBRACE" and depth == 0 and previous is not None
                  and previous.type not in ("_NL", "LBRACE")):
                yield Token.new_borrow_pos("_NL", "\n", token)
            previous = token
            yield token
        if previous is not None and previous.type != "_NL":
            yield Token("_NL", "\n", line=previous.end_line or previous.line,
                        column=(previous.end_column or previous.column))


@functools.cache
def _parser() -> lark.Lark:
    # cache=True keeps the LALR tables in a file in the temporary directory, keyed by a hash of the grammar
    # and lark's version: building them takes about a second, loading them a few milliseconds. A missing,
    # stale or unreadable cache file is rebuilt (lark verifies the hash and falls back on any error).
    return lark.Lark(GRAMMAR.read_text(), parser="lalr", lexer="basic", postlex=_Postlexer(), propagate_positions=True,
                     maybe_placeholders=True, cache=True)


_TOKEN_NAMES = {
    "_NL": "end of line", "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "$END": "end of file",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'",
    "COMMA": "','", "COLON": "':'", "SEMICOLON": "';'", "EQUAL": "'='", "DOT": "'.'", "RARROW": "'->'",
}


def _describe_expected(expected: set[str]) -> str:
    names = sorted({_TOKEN_NAMES.get(e, repr(e.lower()) if not e.startswith("_") else e) for e in expected})
    if len(names) > 6:
        return ""
    return " (expected " + ", ".join(names) + ")"


def parse(text: str, file: str = "<input>", sources: SourceMap | None = None) -> ast.Module:
    """Parse .nk source text into a Module; raises CompileError with a located diagnostic."""
    sources = sources or SourceMap()
    sources.add(file, text)
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedCharacters as error:
        loc = Loc(file, error.line, error.column)
        char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else "end of file"
        raise CompileError([sources.diagnostic(f"unexpected character {char!r}", loc)]) from None
    except lark.UnexpectedToken as error:
        token = error.token
        if token.type == "$END":
            lines = text.splitlines() or [""]
            loc = Loc(file, len(lines), len(lines[-1]) + 1)
            what = "unexpected end of file"
        else:
            loc = Loc(file, token.line, token.column)
            what = "unexpected end of line" if token.type == "_NL" else f"unexpected {token.value!r}"
        hint = _describe_expected(set(error.expected))
        raise CompileError([sources.diagnostic(what + hint, loc)]) from None
    except lark.UnexpectedEOF as error:
        lines = text.splitlines() or [""]
        loc = Loc(file, len(lines), len(lines[-1]) + 1)
        raise CompileError([sources.diagnostic("unexpected end of file", loc)]) from None
    return _Builder(file, sources).module(tree)


def parse_file(path: str | Path, sources: SourceMap | None = None) -> ast.Module:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise CompileError([Diagnostic(f"cannot read {path}: {error.strerror}")]) from None
    return parse(text, str(path), sources)


class _Builder:
    """lark parse tree -> AST."""

    def __init__(self, file: str, sources: SourceMap) -> None:
        self.file = file
        self.sources = sources
        self._last = Loc(file, 1, 1)  # for parse-tree nodes without tokens, such as a bare `:`

    def loc(self, item: lark.Tree | Token) -> Loc:
        if isinstance(item, Token):
            self._last = Loc(self.file, item.line, item.column)
        elif not item.meta.empty:
            self._last = Loc(self.file, item.meta.line, item.meta.column)
        return self._last

    def error(self, message: str, loc: Loc) -> CompileError:
        return CompileError([self.sources.diagnostic(message, loc)])

    def module(self, tree: lark.Tree) -> ast.Module:
        module = ast.Module(self.file)
        for item in tree.children:
            if item.data == "const_def":
                name, value = item.children
                module.consts.append(ast.ConstDef(str(name), self.expr(value), self.loc(name)))
            else:
                func = self.func(item)
                if func.name in module.funcs:
                    raise self.error(f"function '{func.name}' is defined twice", func.loc)
                module.funcs[func.name] = func
        return module

    def func(self, tree: lark.Tree) -> ast.FuncDef:
        *decorators, name, params, results, block = tree.children
        params = tuple(self.param(p) for p in params.children if p is not None) if params else ()
        seen: set[str] = set()
        for param in params:
            if param.name in seen:
                raise self.error(f"parameter '{param.name}' appears twice in '{name}'", param.loc)
            seen.add(param.name)
        if results is None:
            result_types = None
        elif results.data == "single_result":
            result_types = (self.type_expr(results.children[0]),)
        else:
            result_types = tuple(self.type_expr(t) for t in results.children if t is not None)
        return ast.FuncDef(str(name), params, result_types, self.block(block), self.loc(name),
                           tuple(self.decorator(d) for d in decorators))

    def param(self, tree: lark.Tree) -> ast.Param:
        *decorators, name, type_expr, default = tree.children
        return ast.Param(
            str(name),
            self.type_expr(type_expr) if type_expr is not None else None,
            self.expr(default) if default is not None else None,
            tuple(self.decorator(d) for d in decorators),
            self.loc(name),
        )

    def decorator(self, tree: lark.Tree) -> ast.Decorator:
        _at, name, args = tree.children
        positional, keywords = self.args(args)
        return ast.Decorator(str(name), positional, keywords, self.loc(name))

    def type_expr(self, tree: lark.Tree) -> ast.TypeExpr:
        name = tree.children[0]
        if tree.data == "scalar_type":
            return ast.TypeExpr(str(name), None, None, self.loc(name))
        _, dims, fmt = tree.children
        dim_exprs = tuple(self.expr(d) for d in dims.children if d is not None) if dims else ()
        return ast.TypeExpr(str(name), dim_exprs, self.format(fmt) if fmt is not None else None,
                            self.loc(name))

    def format(self, tree: lark.Tree) -> ast.FormatExpr:
        numbers = [c for c in tree.children if isinstance(c, Token) and c.type == "NUMBER"]
        values = []
        for number in numbers:
            if not number.isdigit():
                raise self.error(f"format arguments are integers, got {number}", self.loc(number))
            values.append(int(number))
        if tree.data == "nm_format":
            return ast.FormatExpr("nm", tuple(values), self.loc(tree.children[0]))
        name = next(c for c in tree.children if isinstance(c, Token) and c.type == "NAME")
        return ast.FormatExpr(str(name), tuple(values), self.loc(name))

    def block(self, tree: lark.Tree) -> tuple[ast.Stmt, ...]:
        return tuple(self.stmt(s) for s in tree.children if isinstance(s, lark.Tree))

    def stmt(self, tree: lark.Tree) -> ast.Stmt:
        loc = self.loc(tree)
        if tree.data == "assign":
            *targets, value = tree.children
            return ast.Assign(loc, tuple(str(t) for t in targets), self.expr(value))
        if tree.data == "return_stmt":
            return ast.Return(loc, tuple(self.expr(v) for v in tree.children if v is not None))
        if tree.data == "for_stmt":
            var, iterable, body = tree.children
            return ast.For(loc, str(var), self.expr(iterable), self.block(body))
        raise AssertionError(tree.data)

    def args(self, tree: lark.Tree | None) -> tuple[tuple[ast.Expr, ...], tuple[ast.Keyword, ...]]:
        positional: list[ast.Expr] = []
        keywords: list[ast.Keyword] = []
        if tree is None:
            return (), ()
        for arg in tree.children:
            if arg is None:
                continue
            if arg.data == "keyword":
                name, value = arg.children
                if any(k.name == str(name) for k in keywords):
                    raise self.error(f"keyword argument '{name}' given twice", self.loc(name))
                keywords.append(ast.Keyword(str(name), self.expr(value), self.loc(name)))
            else:
                if keywords:
                    raise self.error("positional argument after keyword arguments", self.loc(arg))
                positional.append(self.expr(arg.children[0]))
        return tuple(positional), tuple(keywords)

    _BINARY = {"add", "sub", "mul", "div", "floordiv", "mod", "matmul", "pow",
               "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or"}

    def expr(self, tree: lark.Tree | Token) -> ast.Expr:
        if isinstance(tree, Token):  # an atom that lark did not wrap (cannot happen with aliases)
            raise AssertionError(tree)
        kind = tree.data
        loc = self.loc(tree)
        children = tree.children
        if kind == "number":
            text = str(children[0])
            if any(c in text for c in ".eE"):
                return ast.Number(loc, float(text), text)
            return ast.Number(loc, int(text), text)
        if kind == "name":
            return ast.Name(loc, str(children[0]))
        if kind == "string":
            return ast.String(loc, str(children[0])[1:-1])
        if kind == "tuple":
            return ast.TupleExpr(loc, tuple(self.expr(c) for c in children if c is not None))
        if kind in self._BINARY:
            if kind in ("logical_and", "logical_or"):
                left, right = children
                return ast.BinaryOp(loc, kind, self.expr(left), self.expr(right))
            left, op, right = children
            return ast.BinaryOp(self.loc(op), kind, self.expr(left), self.expr(right))
        if kind in ("neg", "pos"):
            op, operand = children
            return ast.UnaryOp(self.loc(op), kind, self.expr(operand))
        if kind == "logical_not":
            return ast.UnaryOp(loc, kind, self.expr(children[0]))
        if kind == "call":
            func, args = children
            positional, keywords = self.args(args)
            return ast.Call(self.loc(func), self.expr(func), positional, keywords)
        if kind == "index":
            value, subscripts = children
            return ast.Index(loc, self.expr(value),
                             tuple(self.expr(s) for s in subscripts.children if s is not None))
        if kind == "attribute":
            value, name = children
            return ast.Attribute(self.loc(name), self.expr(value), str(name))
        if kind == "range":
            start, stop, step = (children + [None, None, None])[:3]
            return ast.RangeExpr(loc, *(self.expr(p) if p is not None else None for p in (start, stop, step)))
        if kind == "ellipsis":
            return ast.EllipsisExpr(loc)
        if kind == "conditional":
            then, condition, otherwise = children
            return ast.Conditional(self.loc(condition), self.expr(condition), self.expr(then),
                                   self.expr(otherwise))
        raise AssertionError(f"unhandled parse tree node {kind}")
