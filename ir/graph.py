"""The graph IR: a program as a networkx MultiDiGraph of operations.

Each graph node is one operation producing one tensor value. Its payload is a frozen `Node` (op name,
result type, attributes as a sorted tuple, fusion group, source location); networkx holds only the
topology. An edge `producer -> consumer` with key `i` says the producer's value is operand `i` of the
consumer, so `x * x` is two parallel edges with keys 0 and 1.

Edits build new payloads (`dataclasses.replace`), so whether a pass changed a node is an equality
check, and `Graph.copy()` is cheap because payloads are shared.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import networkx as nx
import numpy as np

from ir import ops
from ir.types import TensorType


@dataclass(frozen=True)
class Loc:
    """A place in a source file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Node:
    op: str
    type: TensorType
    attrs: tuple[tuple[str, Any], ...] = ()
    group: int | None = None  # fusion group id, set by the fusion passes
    loc: Loc | None = field(default=None, compare=False)

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    @property
    def attr_dict(self) -> dict[str, Any]:
        return dict(self.attrs)

    def with_group(self, group: int | None) -> Node:
        """This operation in fusion group `group` (`replace(group=...)` without its generic cost: the
        fusion passes regroup thousands of nodes)."""
        return Node(self.op, self.type, self.attrs, group, self.loc)

    def replace(self, **changes: Any) -> Node:
        if "attrs" in changes and isinstance(changes["attrs"], dict):
            changes["attrs"] = freeze_attrs(changes["attrs"])
        return dataclasses.replace(self, **changes)


def _copy_multidigraph(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """What `graph.copy()` returns (same node, adjacency and edge-data order; data dicts copied), built
    on networkx's dicts directly instead of through `add_nodes_from`/`add_edges_from` (several times
    faster; the pass manager and every pass copy the graph)."""
    other = nx.MultiDiGraph()
    other.graph.update(graph.graph)
    nodes = graph._node
    successors = {node_id: {} for node_id in nodes}
    predecessors = {node_id: {} for node_id in nodes}
    for source, users in graph._succ.items():
        out = successors[source]
        for user, keys in users.items():
            if len(keys) == 1:  # most edges: no comprehension (a function call) for one key
                for key, data in keys.items():
                    copied = {key: data.copy()}
            else:
                copied = {key: data.copy() for key, data in keys.items()}
            out[user] = predecessors[user][source] = copied
    other._node = {node_id: data.copy() for node_id, data in nodes.items()}
    other._succ = successors  # networkx's descriptors: `_adj` is set too, cached views are reset
    other._pred = predecessors
    return other


def freeze_attrs(attrs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attrs.items())) if attrs else ()


class Graph:
    """A program in graph IR: ordered parameters, ordered outputs, and the operations between."""

    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.nx = nx.MultiDiGraph()
        self.params: list[int] = []
        self.outputs: list[int] = []
        self.dims: dict[str, int] = {}  # symbolic dimension bindings used to specialise it
        self.weight_data: dict[str, np.ndarray] = {}  # weights bound to data at compile time
        self.attributes: dict[str, Any] = {}  # program-level facts (e.g. tokens per step)
        self._ids = itertools.count()

    # -- building ------------------------------------------------------------------------------

    def add(self, op: str, operands: Iterable[int] = (), attrs: dict[str, Any] | None = None,
            type: TensorType | None = None, loc: Loc | None = None, group: int | None = None) -> int:
        """Add an operation; its type is inferred from its operands unless given (sources).

        Raises `ops.OpError` when the operands or attributes are not accepted.
        """
        operands = list(operands)
        attrs = ops.check_attrs(op, attrs or {})
        arity = ops.OPS[op].arity  # check_attrs has raised for an unknown op
        if (arity is not None and len(operands) != arity) or (arity is None and not operands):
            raise ops.OpError(f"{op} takes {arity if arity is not None else 'at least one'} operand(s), "
                              f"got {len(operands)}")
        present = self.nx._node
        for operand in operands:
            try:
                known = operand in present  # networkx's node dict, as `operand in self.nx` reads it
            except TypeError:  # unhashable: no node, as networkx answers too
                known = False
            if not known:
                raise ops.OpError(f"{op}: operand %{operand} is not in the graph")
        if type is None:
            type = ops.infer_type(op, [present[o]["node"].type for o in operands], attrs, checked=True)
        node_id = self._insert(Node(op, type, freeze_attrs(attrs), group, loc), operands)
        if op == "param":
            self.params.append(node_id)
            self.params.sort(key=lambda n: self.node(n).attr("index"))
        return node_id

    def add_copy(self, node: Node, operands: Iterable[int], type: TensorType | None = None) -> int:
        """Add a copy of the operation `node` (a payload already in a graph, so its attributes were
        checked when it was added) reading `operands`, with `type` (default: the same type) and no
        group. For passes that recompute a value elsewhere: nothing is checked again but the operands.
        """
        operands = list(operands)
        if node.op == "param":
            raise ops.OpError("a parameter cannot be copied")
        for operand in operands:
            if operand not in self.nx._node:
                raise ops.OpError(f"{node.op}: operand %{operand} is not in the graph")
        return self._insert(Node(node.op, type if type is not None else node.type, node.attrs, None, node.loc),
                            operands)

    def _insert(self, payload: Node, operands: list[int]) -> int:
        """A new node holding `payload`, reading `operands` in order (both checked by the caller).

        Writes networkx's dicts as `add_node(node_id, node=payload)` and then `add_edge(operand,
        node_id, key=index)` for each operand would (the same dicts, in the same order), without their
        per-call checks and views: graphs are built one node at a time, thousands of nodes per program.
        """
        graph = self.nx
        node_id = next(self._ids)
        if node_id in graph._node:  # taken by a node added to `nx` directly: find a free one
            node_id = self._new_id()
        successors = graph._succ
        successors[node_id] = {}
        predecessors = graph._pred[node_id] = {}
        graph._node[node_id] = {"node": payload}
        for index, operand in enumerate(operands):
            users = successors[operand]
            keys = users.get(node_id)
            if keys is None:  # the first edge from this operand: one key dict shared by both sides
                keys = users[node_id] = predecessors[operand] = {}
            keys[index] = {}
        nx._clear_cache(graph)
        return node_id

    def _new_id(self) -> int:
        present = self.nx._node
        while True:
            node_id = next(self._ids)
            if node_id not in present:
                return node_id

    def add_param(self, name: str, type: TensorType, weight: bool = False, loc: Loc | None = None) -> int:
        return self.add("param", attrs={"name": name, "index": len(self.params), "weight": weight},
                        type=type, loc=loc)

    def add_constant(self, value: float | int | bool, type: TensorType, loc: Loc | None = None) -> int:
        return self.add("constant", attrs={"value": value}, type=type, loc=loc)

    # -- reading -------------------------------------------------------------------------------

    def node(self, node_id: int) -> Node:
        return self.nx._node[node_id]["node"]  # networkx's node-data dict: no view object per call

    def set_node(self, node_id: int, node: Node) -> None:
        self.nx._node[node_id]["node"] = node  # networkx's node-data dict, as in `node`

    def operands(self, node_id: int) -> list[int]:
        predecessors = self.nx._pred.get(node_id)  # {source: {operand index: data}}, read directly (fast)
        if predecessors is None:  # not in the graph: networkx's own error
            return [source for source, _, _ in self.nx.in_edges(node_id, keys=True)]
        if len(predecessors) == 1:  # one source (x * x reads x twice): no order to find
            for source, keys in predecessors.items():
                return [source] * len(keys)
        if len(predecessors) == 2:  # most operations: two sources, one operand index each
            (first, first_keys), (second, second_keys) = predecessors.items()
            if len(first_keys) == 1 == len(second_keys):
                first_index, second_index = min(first_keys), min(second_keys)
                if first_index < second_index:
                    return [first, second]
                if second_index < first_index:
                    return [second, first]
        by_index: dict[int, int] = {}
        count = 0
        for source, keys in predecessors.items():
            for key in keys:
                by_index[key] = source
            count += len(keys)
        if len(by_index) == count:  # no operand index used twice (always, in a valid graph)
            return [by_index[key] for key in sorted(by_index)]
        pairs = sorted((key, source) for source, keys in predecessors.items() for key in keys)
        return [source for _, source in pairs]

    def users(self, node_id: int) -> list[int]:
        """Distinct consumers of a node's value, in id order."""
        return sorted(set(self.nx.successors(node_id)))

    def uses(self, node_id: int) -> list[tuple[int, int]]:
        """(consumer, operand index) for every use of a node's value."""
        return sorted((dst, key) for _, dst, key in self.nx.out_edges(node_id, keys=True))

    def is_output(self, node_id: int) -> bool:
        return node_id in self.outputs

    def __contains__(self, node_id: int) -> bool:
        try:  # networkx's `node_id in self.nx`, on its node dict without that method call
            return node_id in self.nx._node
        except TypeError:  # unhashable: not a node
            return False

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def nodes(self) -> Iterator[tuple[int, Node]]:
        """All nodes in a deterministic topological order (ties broken by id)."""
        for node_id in self.topological_order():
            yield node_id, self.node(node_id)

    def topological_order(self) -> list[int]:
        """The order of `networkx.lexicographical_topological_sort` (smallest ready id first), computed
        on networkx's adjacency dicts directly: the same list, several times faster on large graphs."""
        successors = self.nx._succ
        # A node is ready once all its distinct operands are placed: count sources, not edges.
        waiting = {n: len(sources) for n, sources in self.nx._pred.items()}
        ready = [n for n, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            node_id = heapq.heappop(ready)
            order.append(node_id)
            for user in successors[node_id]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, user)
        if len(order) != len(waiting):
            raise nx.NetworkXUnfeasible("Graph contains a cycle or graph changed during iteration")
        return order

    def param_by_name(self, name: str) -> int | None:
        for node_id in self.params:
            if self.node(node_id).attr("name") == name:
                return node_id
        return None

    # -- editing -------------------------------------------------------------------------------

    def replace_uses(self, old: int, new: int) -> None:
        """Make every consumer of `old` (and the outputs) read `new` instead."""
        if old == new:
            return
        for _, dst, key in list(self.nx.out_edges(old, keys=True)):
            self.nx.remove_edge(old, dst, key=key)
            self.nx.add_edge(new, dst, key=key)
        self.outputs = [new if o == old else o for o in self.outputs]

    def set_operand(self, node_id: int, index: int, new: int) -> None:
        """Make operand `index` of `node_id` read `new`. Edits networkx's adjacency dicts directly, as
        its `remove_edge` and `add_edge` would (same dicts, same order), without a view per call: the
        fusion passes redirect uses this way many times per group."""
        graph = self.nx
        predecessors, successors = graph._pred.get(node_id), graph._succ.get(new)
        if predecessors is None or successors is None:  # not in the graph: networkx's own behaviour
            for source, _, key in list(graph.in_edges(node_id, keys=True)):
                if key == index:
                    graph.remove_edge(source, node_id, key=key)
            graph.add_edge(new, node_id, key=index)
            return
        for source, keys in list(predecessors.items()):
            if index in keys:
                del keys[index]
                if not keys:
                    del graph._succ[source][node_id]
                    del predecessors[source]
        keys = successors.get(node_id)
        if keys is None:
            keys = successors[node_id] = predecessors[new] = {}
        keys[index] = {}
        nx._clear_cache(graph)

    def remove(self, node_id: int) -> None:
        if node_id in self.params:
            self.params.remove(node_id)
        self.nx.remove_node(node_id)

    def has_dead_values(self) -> bool:
        """Whether `remove_dead` would remove anything. It would exactly when some operation other than
        a parameter has no uses and is no output: following the uses of a dead value always ends at such
        an operation (the users of a dead value are dead; parameters use nothing), and such an
        operation is dead. One look at each node instead of a search through the whole graph."""
        outputs, params = set(self.outputs), set(self.params)
        return any(not users and node not in outputs and node not in params
                   for node, users in self.nx._succ.items())

    def remove_dead(self) -> int:
        """Remove operations whose values reach no output (parameters stay); returns how many."""
        live = set(self.params)  # parameters read nothing, so the search need not enter them
        stack = list(self.outputs)
        predecessors = self.nx._pred  # networkx's adjacency dict, read without a view per node
        while stack:  # one backward search from all outputs at once
            node = stack.pop()
            if node in live:
                continue
            live.add(node)
            stack.extend(predecessors[node])
        dead = [n for n in self.nx._node if n not in live]
        self.nx.remove_nodes_from(dead)
        return len(dead)

    def sort_predecessors(self) -> None:
        """Put every node's predecessors in node order, the order `copy()` lists them in, so that this
        graph's networkx dicts are in the order its copy's are (see `in_copy_order`). Changes no node,
        edge, operand or user: building a graph lists a node's predecessors in operand order instead."""
        position = {node_id: i for i, node_id in enumerate(self.nx._node)}
        for sources in self.nx._pred.values():
            if len(sources) > 1:
                order = sorted(sources, key=position.__getitem__)
                if order != list(sources):
                    items = [(source, sources[source]) for source in order]
                    sources.clear()  # in place: networkx's views may hold this dict
                    sources.update(items)

    def in_copy_order(self) -> bool:
        """Whether `copy()` would give networkx dicts in this graph's order: the nodes and each node's
        users (and operand indices) keep their order in a copy, and each node's predecessors are listed
        in node order. A pass given this graph then sees what it would see given a copy."""
        position = {node_id: i for i, node_id in enumerate(self.nx._node)}
        for sources in self.nx._pred.values():
            if len(sources) > 1:
                previous = -1
                for source in sources:
                    if position[source] < previous:
                        return False
                    previous = position[source]
        return True

    def copy(self) -> Graph:
        other = Graph(self.name)
        other.nx = _copy_multidigraph(self.nx)
        other.params = list(self.params)
        other.outputs = list(self.outputs)
        other.dims = dict(self.dims)
        other.weight_data = dict(self.weight_data)
        other.attributes = dict(self.attributes)
        other.restart_ids()
        return other

    def restart_ids(self) -> None:
        """New nodes get ids from one past the largest id in the graph, as in a copy of it (ids of nodes
        removed before are free again; no id in the graph is ever handed out twice)."""
        self._ids = itertools.count(max(self.nx._node, default=-1) + 1)

    # -- groups --------------------------------------------------------------------------------

    def groups(self) -> dict[int, list[int]]:
        """Fusion group id -> member nodes in topological order."""
        result: dict[int, list[int]] = {}
        for node_id, node in self.nodes():
            if node.group is not None:
                result.setdefault(node.group, []).append(node_id)
        return result

    # -- comparison ----------------------------------------------------------------------------

    def canonical(self) -> tuple:
        """A structure equal for graphs that differ only in node ids (for round-trip tests)."""
        order = self.topological_order()
        number = {node_id: i for i, node_id in enumerate(order)}
        body = tuple((self.node(n), tuple(number[o] for o in self.operands(n))) for n in order)
        return (self.name, body, tuple(number[o] for o in self.outputs),
                tuple(number[p] for p in self.params), tuple(sorted(self.dims.items())),
                tuple(sorted(self.attributes.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Graph) and self.canonical() == other.canonical()

    __hash__ = None  # mutable
