"""The loop IR: kernels as loop nests over buffers, the level every code generator starts from.

A `LoopProgram` is a list of kernel calls over global buffers: the program's inputs, its outputs and
the intermediates that pass between kernels. A `Kernel` is a function over buffers made of
statements (`For` with an annotation, `Store`, `If`, `Allocate` of a local buffer, `Seq`) and scalar
expressions (`Load`, `Binary`, `Unary`, `Select`, `Cast`, `Const`, `Var`). Index expressions are i64
scalar expressions, affine in loop variables wherever the op allows it; data-dependent bounds and
indices (sparse formats) are ordinary expressions too.

Nodes are frozen dataclasses: transforms build new trees, so "did it change?" is an equality check.
`ir.loop_printer` prints this IR as text; `ir.loop_eval` runs it (slowly) with Python scalars.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Iterator, Union

from ir.dtypes import DType

INDEX = DType.I64  # the type of loop variables and index arithmetic


# -- scalar expressions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    value: int | float | bool
    dtype: DType = INDEX


@dataclass(frozen=True)
class Var:
    """A loop variable or a `Let`-bound scalar."""

    name: str
    dtype: DType = INDEX


@dataclass(frozen=True)
class Load:
    buffer: str
    indices: tuple[Expr, ...]
    dtype: DType


# Unary ops: the graph IR's elementwise unary ops (neg, abs, relu, exp, log, sqrt, rsqrt, tanh,
# sigmoid, gelu, silu, sin, cos, logical_not) with the same meaning, applied to one scalar.
UNARY_OPS = frozenset({"neg", "abs", "relu", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "gelu", "silu",
                       "sin", "cos", "logical_not"})
# Binary ops: the graph IR's elementwise binary ops, plus integer index arithmetic: floordiv and mod
# (Python semantics: round toward minus infinity), which index expressions of reshapes need.
ARITH_OPS = frozenset({"add", "sub", "mul", "div", "pow", "maximum", "minimum", "floordiv", "mod"})
COMPARE_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
LOGIC_OPS = frozenset({"logical_and", "logical_or"})
BINARY_OPS = ARITH_OPS | COMPARE_OPS | LOGIC_OPS


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Expr

    @property
    def dtype(self) -> DType:
        return self.operand.dtype


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr

    @property
    def dtype(self) -> DType:
        return DType.BOOL if self.op in COMPARE_OPS else self.left.dtype


@dataclass(frozen=True)
class Select:
    cond: Expr
    true_value: Expr
    false_value: Expr

    @property
    def dtype(self) -> DType:
        return self.true_value.dtype


@dataclass(frozen=True)
class Cast:
    dtype: DType
    operand: Expr


Expr = Union[Const, Var, Load, Unary, Binary, Select, Cast]


# -- statements -----------------------------------------------------------------------------------


class LoopKind(enum.Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"  # iterations may run on different cores; they must not depend on each other
    VECTORIZE = "vectorize"  # iterations run as SIMD lanes; the extent is a constant (the width)
    UNROLL = "unroll"  # the extent is a constant; the body is replicated

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class For:
    """`for var in range(start, start + extent * step, step)` (step > 0, constant)."""

    var: str
    start: Expr
    extent: Expr  # number of iterations
    body: Stmt
    kind: LoopKind = LoopKind.SERIAL
    step: int = 1


@dataclass(frozen=True)
class Store:
    buffer: str
    indices: tuple[Expr, ...]
    value: Expr


@dataclass(frozen=True)
class If:
    cond: Expr
    then_body: Stmt
    else_body: Stmt | None = None


@dataclass(frozen=True)
class Let:
    """Bind a scalar to a name for the statements in `body` (an SSA value, e.g. a hoisted invariant)."""

    var: str
    value: Expr
    body: Stmt


@dataclass(frozen=True)
class Allocate:
    """A local (per-invocation, per-thread when inside a parallel loop) buffer live for `body`."""

    buffer: Buffer
    body: Stmt


@dataclass(frozen=True)
class Seq:
    stmts: tuple[Stmt, ...]


Stmt = Union[For, Store, If, Let, Allocate, Seq]


# -- buffers, kernels, programs -------------------------------------------------------------------


class Scope(enum.Enum):
    GLOBAL = "global"  # passed to the kernel: a program input, output or intermediate
    LOCAL = "local"  # allocated inside a kernel (registers, stack, or a small scratch area)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Buffer:
    name: str
    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None  # in elements; None means row-major contiguous
    scope: Scope = Scope.GLOBAL

    @property
    def element_strides(self) -> tuple[int, ...]:
        if self.strides is not None:
            return self.strides
        strides = []
        running = 1
        for dim in reversed(self.shape):
            strides.append(running)
            running *= dim
        return tuple(reversed(strides))

    @property
    def size(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


@dataclass(frozen=True)
class Kernel:
    """A function over global buffers. `params` lists them in call order; `writes` names the outputs.

    `attrs` carries facts later stages use (the graph nodes it computes, its fusion group, the kind of
    computation: "elementwise", "reduction", "matmul", ...), as sorted (key, value) pairs.
    """

    name: str
    params: tuple[Buffer, ...]
    body: Stmt
    writes: tuple[str, ...]
    attrs: tuple[tuple[str, object], ...] = ()

    def param(self, name: str) -> Buffer:
        for buffer in self.params:
            if buffer.name == name:
                return buffer
        raise KeyError(name)

    def attr(self, name: str, default: object = None) -> object:
        return dict(self.attrs).get(name, default)


@dataclass(frozen=True)
class KernelCall:
    kernel: str
    args: tuple[str, ...]  # program buffer names, bound to the kernel's params in order


@dataclass
class LoopProgram:
    """Kernels, the global buffers between them, and the order of calls.

    `inputs` and `outputs` name buffers in the graph's parameter and output order; every other global
    buffer is an intermediate the runtime allocates. An output may also be an input (a program that
    returns a parameter unchanged) or appear twice.
    """

    name: str
    buffers: dict[str, Buffer]
    inputs: list[str]
    outputs: list[str]
    kernels: dict[str, Kernel] = field(default_factory=dict)
    calls: list[KernelCall] = field(default_factory=list)

    @property
    def intermediates(self) -> list[str]:
        boundary = set(self.inputs) | set(self.outputs)
        return [name for name in self.buffers if name not in boundary]


# -- traversal helpers ----------------------------------------------------------------------------


def children(node: Stmt | Expr) -> Iterator[Stmt | Expr]:
    """The direct sub-statements and sub-expressions of a node, in evaluation order."""
    if isinstance(node, (Const, Var)):
        return
    if isinstance(node, Load):
        yield from node.indices
    elif isinstance(node, Unary):
        yield node.operand
    elif isinstance(node, Binary):
        yield node.left
        yield node.right
    elif isinstance(node, Select):
        yield node.cond
        yield node.true_value
        yield node.false_value
    elif isinstance(node, Cast):
        yield node.operand
    elif isinstance(node, For):
        yield node.start
        yield node.extent
        yield node.body
    elif isinstance(node, Store):
        yield from node.indices
        yield node.value
    elif isinstance(node, If):
        yield node.cond
        yield node.then_body
        if node.else_body is not None:
            yield node.else_body
    elif isinstance(node, Let):
        yield node.value
        yield node.body
    elif isinstance(node, Allocate):
        yield node.body
    elif isinstance(node, Seq):
        yield from node.stmts
    else:
        raise TypeError(f"not a loop IR node: {node!r}")


def map_expr(expr: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """`expr` rebuilt with `fn` applied to each of its direct sub-expressions (leaves come back as they are).

    The one place that knows how to rebuild each expression node; rewrites that only care about a few
    node kinds handle those and hand the rest to this.
    """
    if isinstance(expr, (Const, Var)):
        return expr
    if isinstance(expr, Load):
        return Load(expr.buffer, tuple(fn(i) for i in expr.indices), expr.dtype)
    if isinstance(expr, Unary):
        return Unary(expr.op, fn(expr.operand))
    if isinstance(expr, Binary):
        return Binary(expr.op, fn(expr.left), fn(expr.right))
    if isinstance(expr, Select):
        return Select(fn(expr.cond), fn(expr.true_value), fn(expr.false_value))
    if isinstance(expr, Cast):
        return Cast(expr.dtype, fn(expr.operand))
    raise TypeError(f"not a loop IR expression: {expr!r}")


def walk(node: Stmt | Expr) -> Iterator[Stmt | Expr]:
    """Every node of a tree, parents before children."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))


def seq(*stmts: Stmt) -> Stmt:
    """A statement list, flattening nested Seqs; one statement stays itself."""
    flat: list[Stmt] = []
    for stmt in stmts:
        if isinstance(stmt, Seq):
            flat.extend(stmt.stmts)
        else:
            flat.append(stmt)
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


# -- expression builders (fold constants so index arithmetic stays readable) -----------------------


def const(value: int | float | bool, dtype: DType = INDEX) -> Const:
    return Const(value, dtype)


def add(a: Expr, b: Expr) -> Expr:
    # Only integers fold x + 0: for floats, -0.0 + 0.0 is +0.0.
    if isinstance(a, Const) and a.value == 0 and a.dtype == b.dtype and not a.dtype.is_float:
        return b
    if isinstance(b, Const) and b.value == 0 and a.dtype == b.dtype and not b.dtype.is_float:
        return a
    if isinstance(a, Const) and isinstance(b, Const) and a.dtype == b.dtype == INDEX:
        return Const(a.value + b.value)
    return Binary("add", a, b)


def mul(a: Expr, b: Expr) -> Expr:
    if isinstance(a, Const) and a.dtype == INDEX:
        if a.value == 1:
            return b
        if a.value == 0:
            return a
    if isinstance(b, Const) and b.dtype == INDEX:
        if b.value == 1:
            return a
        if b.value == 0:
            return b
    if isinstance(a, Const) and isinstance(b, Const) and a.dtype == b.dtype == INDEX:
        return Const(a.value * b.value)
    return Binary("mul", a, b)


def sub(a: Expr, b: Expr) -> Expr:
    if isinstance(b, Const) and b.value == 0 and a.dtype == b.dtype:
        return a
    if isinstance(a, Const) and isinstance(b, Const) and a.dtype == b.dtype == INDEX:
        return Const(a.value - b.value)
    return Binary("sub", a, b)


def floordiv(a: Expr, b: Expr) -> Expr:
    if isinstance(b, Const) and b.value == 1:
        return a
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(a.value // b.value)
    return Binary("floordiv", a, b)


def mod(a: Expr, b: Expr) -> Expr:
    if isinstance(b, Const) and b.value == 1:
        return Const(0)
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(a.value % b.value)
    return Binary("mod", a, b)


def linear_index(indices: tuple[Expr, ...], strides: tuple[int, ...]) -> Expr:
    """sum(index * stride): the element offset of a multi-index."""
    offset: Expr = Const(0)
    for index, stride in zip(indices, strides):
        offset = add(offset, mul(index, Const(stride)))
    return offset
