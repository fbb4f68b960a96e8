"""The abstract syntax tree of .nk source: plain frozen dataclasses, each with its source location."""

from __future__ import annotations

from dataclasses import dataclass, field

from ir.graph import Loc


@dataclass(frozen=True)
class Expr:
    loc: Loc


@dataclass(frozen=True)
class Number(Expr):
    value: int | float
    text: str


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class String(Expr):
    value: str


@dataclass(frozen=True)
class TupleExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    loc: Loc


@dataclass(frozen=True)
class Call(Expr):
    func: Expr
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]


@dataclass(frozen=True)
class RangeExpr(Expr):
    """`start:stop:step` inside a subscript; absent parts are None."""

    start: Expr | None
    stop: Expr | None
    step: Expr | None


@dataclass(frozen=True)
class EllipsisExpr(Expr):
    pass


@dataclass(frozen=True)
class Index(Expr):
    value: Expr
    subscripts: tuple[Expr, ...]


@dataclass(frozen=True)
class Attribute(Expr):
    value: Expr
    name: str


@dataclass(frozen=True)
class BinaryOp(Expr):
    """`op` is the grammar rule's name: add, sub, mul, div, floordiv, mod, matmul, pow, eq, ..."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class UnaryOp(Expr):
    op: str  # neg, pos, logical_not
    operand: Expr


@dataclass(frozen=True)
class Conditional(Expr):
    """`then if condition else otherwise`: a compile-time choice; only the chosen side is evaluated."""

    condition: Expr
    then: Expr
    otherwise: Expr


# -- types --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormatExpr:
    kind: str  # dense, csr, csc, bsr, nm
    args: tuple[int, ...]
    loc: Loc


@dataclass(frozen=True)
class TypeExpr:
    """`f32[B, 784]<csr>`; `dims` is None for a bare name (`f32`, `int`, `float`)."""

    name: str
    dims: tuple[Expr, ...] | None
    format: FormatExpr | None
    loc: Loc


# -- statements and definitions -----------------------------------------------------------------


@dataclass(frozen=True)
class Stmt:
    loc: Loc


@dataclass(frozen=True)
class Assign(Stmt):
    targets: tuple[str, ...]
    value: Expr


@dataclass(frozen=True)
class Return(Stmt):
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class For(Stmt):
    var: str
    iterable: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Decorator:
    name: str
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    loc: Loc


@dataclass(frozen=True)
class Param:
    name: str
    type: TypeExpr | None
    default: Expr | None
    decorators: tuple[Decorator, ...]
    loc: Loc

    def has_decorator(self, name: str) -> bool:
        return any(d.name == name for d in self.decorators)


@dataclass(frozen=True)
class FuncDef:
    name: str
    params: tuple[Param, ...]
    results: tuple[TypeExpr, ...] | None
    body: tuple[Stmt, ...]
    loc: Loc
    decorators: tuple[Decorator, ...] = ()


@dataclass(frozen=True)
class ConstDef:
    name: str
    value: Expr
    loc: Loc


@dataclass
class Module:
    """A parsed file: its constants in order and its functions by name (in order of definition)."""

    file: str
    consts: list[ConstDef] = field(default_factory=list)
    funcs: dict[str, FuncDef] = field(default_factory=dict)
