"""The elemental emitter: any value of a kernel at given indices, as one scalar loop-IR expression.

Inside one kernel a graph value is obtained in one of three ways, tried in this order:

1. a *binding* the schedule provides: the matmul's accumulator (MATMUL kernels), a finished
   reduction's scalar result (REDUCTION kernels), or a row cached in a local buffer;
2. computed inline from its operands, when it is a member of the kernel (elementwise ops become the
   loop IR op of the same name, views remap the index, see `views`) or a constant or iota (anywhere:
   they need no memory, so no kernel ever stores them unless they are program outputs);
3. loaded from its global buffer (program inputs and values other kernels store).

This is legal because every op is pure and, for elementwise and view ops, each output element depends
only on the operand elements its index map names. A member used several times in one kernel is bound
once per point with `Let` (so expression trees never grow exponentially on shared sub-DAGs); singly
used ones are inlined, up to an expression depth of `MAX_DEPTH` (deeper values are bound too, so that
no printer or code generator recurses far on a long fused chain).

Reduction results and cached rows hold the values of ONE kept position (the outer loop's current
point), so reading them anywhere else would be wrong: the emitter checks that the kept components of
every such read name the current kept position and raises `UnsupportedGroup` otherwise (a view in the
group scrambled the kept axes; the lowering then splits the group).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from ir import ops
from ir.graph import Graph
from ir.loops import Buffer, Const, Expr, Load, Var
from passes.lowering.scalar_ops import INLINE_SOURCES, elementwise_value, source_value
from passes.lowering.spec import Indices, NameGen, RowCache, Scalars, UnsupportedGroup
from passes.lowering.views import broadcast_index, view_operand_index


class LoweringBug(Exception):
    """A kernel needed a value it has no way to obtain (a bug in the lowering, not in the program)."""


MAX_DEPTH = 32  # expressions deeper than this are let-bound, so printers and code generators never recurse far


@dataclass(frozen=True)
class _Needs:
    """A value built by `build` from the values of `requests` ((node, index) pairs); `adds` is how much
    deeper its expression is than theirs (0 for a view, which is its operand's value)."""

    requests: list[tuple[int, Indices]]
    build: Callable[[list[Expr]], Expr]
    adds: int


def _first(values: list[Expr]) -> Expr:
    return values[0]


@dataclass
class _Point:
    """The state of one `compute` call: bindings made so far and memoized values."""

    kept: Indices | None
    cache: RowCache
    anchor: tuple[int, Indices, Expr] | None
    bind: bool
    lets: list[tuple[str, Expr]] = field(default_factory=list)
    memo: dict[tuple[int, Indices], Expr] = field(default_factory=dict)
    depth: dict[tuple[int, Indices], int] = field(default_factory=dict)


class Elemental:
    """Computes values of one kernel at index expressions.

    `members` are computed inline; `buffers` maps every other value the kernel may read to its global
    buffer; `shared` are members to let-bind (used more than once per point); `reductions` maps the
    kernel's reduction nodes to the variables holding their finished results; `domain` and
    `reduce_axes` are the shape reduced and its reduced axes (REDUCTION kernels only).
    """

    def __init__(self, graph: Graph, members: Iterable[int], buffers: Mapping[int, Buffer], names: NameGen,
                 shared: Iterable[int] = (), reductions: Mapping[int, Var] | None = None,
                 domain: tuple[int, ...] = (), reduce_axes: tuple[int, ...] = ()) -> None:
        self.graph = graph
        self.members = frozenset(members)
        self.buffers = buffers
        self.names = names
        self.shared = frozenset(shared)
        self.reductions = dict(reductions or {})
        self.reduce_axes = reduce_axes
        self.kept_shape = tuple(d for axis, d in enumerate(domain) if axis not in reduce_axes)

    def compute(self, requests: Iterable[tuple[int, Indices]], *, kept: Indices | None = None,
                cache: RowCache | None = None, anchor: tuple[int, Indices, Expr] | None = None,
                bind: bool = True) -> Scalars:
        """The values of (node, index) requests at one point, sharing let bindings.

        `kept` is the current kept index (REDUCTION kernels), `cache` the rows cached so far, `anchor`
        (node, index, value) the matmul's finished value at the current output index. With
        `bind=False` nothing is let-bound (for operand loads, which are views and casts only)."""
        point = _Point(tuple(kept) if kept is not None else None, cache or {}, anchor, bind)
        values = tuple(self._value(point, node, tuple(index)) for node, index in requests)
        return Scalars(tuple(point.lets), values)

    # -- one value ----------------------------------------------------------------------------

    def _value(self, point: _Point, node: int, index: Indices) -> Expr:
        """The value of `node` at `index`; iterative (an explicit stack), so that long fused chains do
        not exhaust Python's recursion limit."""
        stack = [(node, index)]
        while stack:
            key = stack[-1]
            if key in point.memo:
                stack.pop()
                continue
            step = self._step(point, *key)
            if isinstance(step, _Needs):
                missing = [request for request in step.requests if request not in point.memo]
                if missing:
                    stack.extend(missing)
                    continue
                expr = step.build([point.memo[request] for request in step.requests])
                depth = max((point.depth[request] for request in step.requests), default=0) + step.adds
            else:
                expr, depth = step, 1
            stack.pop()
            self._finish(point, key, expr, depth)
        return point.memo[(node, index)]

    def _finish(self, point: _Point, key: tuple[int, Indices], expr: Expr, depth: int) -> None:
        """Memoize a value, let-binding it when it is shared or its expression grew deep."""
        if point.bind and not isinstance(expr, (Var, Const, Load)) and (key[0] in self.shared or depth > MAX_DEPTH):
            name = self.names.fresh(f"v{key[0]}")
            point.lets.append((name, expr))
            expr, depth = Var(name, expr.dtype), 1
        point.memo[key] = expr
        point.depth[key] = depth

    def _step(self, point: _Point, node: int, index: Indices) -> Expr | _Needs:
        """A value that needs no other value, or the operand values it is built from."""
        payload = self.graph.node(node)
        if point.anchor is not None and node == point.anchor[0]:
            if not same_position(index, point.anchor[1], payload.type.shape):
                raise UnsupportedGroup(f"%{node} (the matmul) is read at another element than the one "
                                       "being finished")
            return point.anchor[2]
        if node in self.reductions:
            self._check_kept(point, node, self._kept_part(node, index))
            return self.reductions[node]
        if node in point.cache:
            kept_part = tuple(index[a] for a in range(len(index)) if a not in self.reduce_axes)
            if point.kept is not None and same_position(kept_part, point.kept, self.kept_shape):
                buffer = point.cache[node]
                return Load(buffer.name, tuple(index[a] for a in self.reduce_axes), buffer.dtype)
        if payload.op in INLINE_SOURCES:
            return source_value(payload, index)
        if node in self.members:
            return self._inline(node, index)
        if node in self.buffers:
            buffer = self.buffers[node]
            return Load(buffer.name, index, buffer.dtype)
        raise LoweringBug(f"%{node} ({payload.op}) is neither computed by this kernel nor stored in a buffer")

    def _inline(self, node: int, index: Indices) -> _Needs:
        payload = self.graph.node(node)
        operands = self.graph.operands(node)
        if ops.in_group(payload.op, ops.VIEW):
            (operand,) = operands
            shape = self.graph.node(operand).type.shape
            return _Needs([(operand, view_operand_index(payload, index, shape))], _first, 0)
        if ops.in_group(payload.op, ops.ELEMENTWISE):
            requests = [(operand, broadcast_index(index, self.graph.node(operand).type.shape, payload.type.shape))
                        for operand in operands]
            return _Needs(requests, lambda values, payload=payload: elementwise_value(payload, values), 1)
        raise UnsupportedGroup(f"%{node} ({payload.op}) cannot be computed inline in this kernel")

    # -- reduction results ----------------------------------------------------------------------

    def _kept_part(self, node: int, index: Indices) -> Indices:
        """The kept components of an index into reduction `node`'s result (keepdims or not)."""
        payload = self.graph.node(node)
        if payload.attr("keepdims"):
            axes = payload.attr("axes")
            return tuple(i for axis, i in enumerate(index) if axis not in axes)
        return index

    def _check_kept(self, point: _Point, node: int, kept_part: Indices) -> None:
        if point.kept is None or not same_position(kept_part, point.kept, self.kept_shape):
            raise UnsupportedGroup(f"the result of reduction %{node} is read at another kept position than "
                                   "the one being computed")


def same_position(index: Indices, current: Indices, extents: tuple[int, ...]) -> bool:
    """Whether two index expressions certainly name the same element: equal, or on an axis of extent
    1 (where every valid index is 0)."""
    return len(index) == len(current) and all(
        a == b or extent == 1 for a, b, extent in zip(index, current, extents))
