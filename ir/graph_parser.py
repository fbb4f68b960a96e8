"""Text -> graph IR: reads what `ir.graph_printer` writes (grammar in `ir/graph.lark`).

The graph is built with `Graph.add`, so every operation's type is inferred again from its operands
and must agree with the printed one. Mistakes in the text are user errors: `GraphParseError` names
the line and column, for syntax errors, unknown ops and dtypes, undefined or twice-defined values,
operations that reject their operands, and printed types that disagree with the inferred ones.
Parameters are added in index order before the body unless a `param %w` line places them later.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import lark
from lark import Token, Tree

from ir import ops
from ir.dtypes import parse_dtype
from ir.graph import Graph, Loc
from ir.text_parsing import TextParseError, line_text, syntax_error
from ir.types import Format, TensorType

GRAMMAR = Path(__file__).with_name("graph.lark")


class GraphParseError(TextParseError):
    """The graph text is malformed; `line` and `col` (1-based) say where."""

    def __init__(self, message: str, line: int, col: int, file: str = "<graph>",
                 source_line: str | None = None) -> None:
        super().__init__(message, line, col, file, source_line)


@functools.cache
def _parser() -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(), parser="lalr", lexer="contextual", maybe_placeholders=True,
                     propagate_positions=True)


def parse_graph(text: str, file: str = "<graph>") -> Graph:
    """Parse the text of one graph; raises GraphParseError."""
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedInput as error:
        raise _syntax_error(error, text, file) from None
    return _Builder(text, file).build(tree)


def _syntax_error(error: lark.UnexpectedInput, text: str, file: str) -> GraphParseError:
    return syntax_error(error, text, file, _describe_terminal, GraphParseError)


_TERMINAL_WORDS = {
    "VALUE": "a value (%name)", "SYMBOL": "a graph name (@name)", "NAME": "a name", "INT": "an int",
    "FLOAT": "a float", "STRING": "a string",
}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    if name in ("$END", "<END-OF-FILE>"):
        return "end of input"
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


class _Builder:
    """Parse tree -> Graph, checking names and types as it goes."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.graph = Graph()
        self.values: dict[tuple[str, Any], int] = {}  # value_key -> node id
        self.defined_at: dict[tuple[str, Any], Token] = {}

    def error(self, message: str, where: Token | Tree) -> GraphParseError:
        if isinstance(where, Token):
            line, col = where.line, where.column
        else:
            line, col = where.meta.line, where.meta.column
        return GraphParseError(message, line, col, self.file, line_text(self.text, line))

    def unquote(self, token: Token, prefix: str = "") -> str:
        """The text of a NAME, STRING, `%name`, `%"name"`, `@name` or `@"name"` token (JSON escapes)."""
        body = str(token)[len(prefix):]
        if not body.startswith('"'):
            return body
        try:
            return json.loads(body)
        except json.JSONDecodeError as error:
            raise self.error(f"bad string {body}: {error.msg}", token) from None

    def build(self, tree: Tree) -> Graph:
        symbol, params, results, dims, attributes, *statements, return_stmt = tree.children
        self.graph.name = self.unquote(symbol, "@")
        if dims is not None:
            self.graph.dims = self.dims(dims)
        if attributes is not None:
            self.graph.attributes = {key: value for key, value, _ in self.entries(attributes.children)}
        declared = params.children if params is not None else []
        self.check_params(declared)
        placed = self.placements(statements, declared)
        for index, param in enumerate(declared):
            if index not in placed.values():
                self.add_param(index, param)
        for statement in statements:
            if statement.data == "placement":
                index = placed[self.value_key(statement.children[0])]
                self.add_param(index, declared[index])
            else:
                self.operation(statement)
        self.outputs(return_stmt, results)
        return self.graph

    # -- the signature -------------------------------------------------------------------------

    def dims(self, tree: Tree) -> dict[str, int]:
        dims = {}
        for key, value, token in self.entries(tree.children):
            if not isinstance(value, int) or isinstance(value, bool):
                raise self.error(f"dimension '{key}' must be an int, got {value!r}", token)
            dims[key] = value
        return dims

    def entries(self, trees: list[Tree]) -> list[tuple[str, Any, Token]]:
        """(key, value, key token) of `key = literal` entries; a key may appear once."""
        seen: set[str] = set()
        result = []
        for entry in trees:
            key_token, literal = entry.children
            key = self.unquote(key_token)
            if key in seen:
                raise self.error(f"'{key}' is given twice", key_token)
            seen.add(key)
            result.append((key, self.literal(literal), key_token))
        return result

    def check_params(self, trees: list[Tree]) -> None:
        """Parameters are named (not numbered), each name once."""
        names: dict[str, Token] = {}
        for param in trees:
            token = param.children[0]
            name = self.value_key(token)[1]
            if not isinstance(name, str):
                raise self.error(f"parameter {token} needs a name, not a number", token)
            if name in names:
                first = names[name]
                raise self.error(f"parameter {token} is declared twice (first at {first.line}:{first.column})",
                                 token)
            names[name] = token

    def placements(self, statements: list[Tree], declared: list[Tree]) -> dict[tuple[str, Any], int]:
        """Value key of each `param %w` line -> index of the parameter it places."""
        index_of = {self.value_key(param.children[0]): i for i, param in enumerate(declared)}
        placed: dict[tuple[str, Any], int] = {}
        for statement in statements:
            if statement.data != "placement":
                continue
            (token,) = statement.children
            key = self.value_key(token)
            if key not in index_of:
                raise self.error(f"{token} is not a parameter of the graph", token)
            if key in placed:
                raise self.error(f"parameter {token} is placed twice", token)
            placed[key] = index_of[key]
        return placed

    def add_param(self, index: int, param: Tree) -> None:
        token, type_tree, weight, group, loc = param.children
        name = self.value_key(token)[1]
        attrs = {"name": name, "index": index, "weight": weight is not None}
        node = self.graph.add("param", attrs=attrs, type=self.type(type_tree), loc=self.loc(loc),
                              group=self.group(group))
        self.define(token, node)

    def outputs(self, return_stmt: Tree, results: Tree | None) -> None:
        tokens = return_stmt.children
        declared = results.children if results is not None else []
        if len(tokens) != len(declared):
            raise self.error(f"the graph returns {len(tokens)} value(s) but its signature declares "
                             f"{len(declared)}", return_stmt)
        for index, (token, type_tree) in enumerate(zip(tokens, declared)):
            node = self.use(token)
            printed = self.type(type_tree)
            actual = self.graph.node(node).type
            if printed != actual:
                raise self.error(f"result {index} ({token}) has type {actual}, but the signature says "
                                 f"{printed}", token)
            self.graph.outputs.append(node)

    # -- the body ------------------------------------------------------------------------------

    def operation(self, tree: Tree) -> None:
        result, op_token, *rest = tree.children
        *operand_tokens, attr_dict, group, type_tree, loc = rest
        op = str(op_token)
        if op not in ops.OPS:
            raise self.error(f"unknown operation '{op}'", op_token)
        if op == "param":
            raise self.error("parameters are declared in the graph signature, not in the body", op_token)
        operands = [self.use(token) for token in operand_tokens]
        entries = self.entries(attr_dict.children) if attr_dict is not None else []
        attrs = {key: value for key, value, _ in entries}
        printed = self.type(type_tree)
        op_def = ops.OPS[op]
        if op_def.arity is not None and len(operands) != op_def.arity:
            raise self.error(f"{op} takes {op_def.arity} operand(s), got {len(operands)}", op_token)
        is_source = op_def.in_group(ops.SOURCE)
        try:
            node = self.graph.add(op, operands, attrs, type=printed if is_source else None,
                                  loc=self.loc(loc), group=self.group(group))
        except ops.OpError as error:
            raise self.error(f"{result} = {op}: {error}", op_token) from None
        inferred = self.graph.node(node).type
        if inferred != printed:
            raise self.error(f"{result} is printed as {printed}, but {op} of its operands gives {inferred}",
                             type_tree.children[0])
        self.define(result, node)

    def value_key(self, token: Token) -> tuple[str, Any]:
        """("number", 3) for `%3`, ("name", "x") for `%x` and for `%"3"`."""
        name = self.unquote(token, "%")
        if name.isdigit() and not str(token).startswith('%"'):
            return ("number", int(name))
        return ("name", name)

    def define(self, token: Token, node: int) -> None:
        key = self.value_key(token)
        if key in self.defined_at:
            first = self.defined_at[key]
            raise self.error(f"{token} is defined twice (first at {first.line}:{first.column})", token)
        self.values[key] = node
        self.defined_at[key] = token

    def use(self, token: Token) -> int:
        key = self.value_key(token)
        if key not in self.values:
            raise self.error(f"{token} is used before it is defined", token)
        return self.values[key]

    # -- pieces --------------------------------------------------------------------------------

    def type(self, tree: Tree) -> TensorType:
        dtype_token, *dim_tokens, format_tree = tree.children
        dtype = parse_dtype(str(dtype_token))
        if dtype is None:
            raise self.error(f"unknown dtype '{dtype_token}'", dtype_token)
        shape = []
        for token in dim_tokens:
            if int(token) < 0:
                raise self.error(f"a dimension cannot be negative, got {token}", token)
            shape.append(int(token))
        return TensorType(tuple(shape), dtype, self.format(format_tree))

    def format(self, tree: Tree | None) -> Format:
        if tree is None:
            return Format()
        first = tree.children[0]
        try:
            if tree.data == "nm_format":
                return Format("nm", n=int(first), m=int(tree.children[1]))
            if tree.data == "bsr_format":
                if str(first) != "bsr":
                    raise ValueError(f"only bsr takes a block shape, not '{first}'")
                return Format("bsr", block=(int(tree.children[1]), int(tree.children[2])))
            return Format(str(first))
        except ValueError as error:
            raise self.error(f"{error} (formats: csr, csc, bsr(R,C), N:M)", first) from None

    def group(self, tree: Tree | None) -> int | None:
        return None if tree is None else int(tree.children[0])

    def loc(self, tree: Tree | None) -> Loc | None:
        if tree is None:
            return None
        file, line, col = tree.children
        return Loc(self.unquote(file), int(line), int(col))

    def literal(self, tree: Tree) -> Any:
        kind = tree.data
        tokens = tree.children
        if kind == "ints_literal":
            return tuple(int(t) for t in tokens)
        (token,) = tokens
        if kind == "int_literal":
            return int(token)
        if kind == "float_literal":
            # math.nan itself, so that a node holding math.nan compares equal to its parsed copy
            return math.nan if token == "nan" else float(token)
        if kind == "string_literal":
            return self.unquote(token)
        if kind in ("true_literal", "false_literal"):
            return kind == "true_literal"
        dtype = parse_dtype(str(token))
        if dtype is None:
            raise self.error(f"unknown value '{token}' (expected a number, a string, true, false, "
                             "[ints] or a dtype)", token)
        return dtype
