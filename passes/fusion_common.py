"""The engine behind the three fusion passes: grow groups from seeds, one producer/consumer pair at a time.

Each pass gives a `FusionPolicy`: which nodes seed a group (a matmul, a reduction, any elementwise op),
which nodes may join, and which group kinds it forms. From each seed, in topological order, the group
grows over its edges: for every pair (producer, consumer) with one end outside the group, the outside
end X (with its whole group, if it has one) joins when, in this order,

1. the policy admits X (else: not-fusible, or reduction-boundary for a reduction);
2. no user rule (`@fusion_rule`) vetoes the pair (user-rule);
3. the group stays within the pass's `max-group` nodes (max-group);
4. its reductions agree on axes and domain, and domain-shaped values read reduced ones with
   keepdims (reduction-boundary);
5. no path leaves it and comes back, counting paths through other groups as going through the whole
   group, so the graph of kernels stays acyclic (cycle; convexity of each group alone would not be
   enough); `ir.groups.classify_group` accepts it as a kind the pass forms (group-contract,
   group-kind); and its working set (`passes.fusion_cost`) is within the limit (working-set).

**Values with several consumers.** A producer P whose value is also used outside the group is first
*shared*: P joins and the group stores it once as an extra result (materialised) for the others. When
sharing is illegal (the group cannot have P as a result, or an outside user of P feeds the group) but
the group with a private copy of P would be legal, P is *recomputed*: a copy of P joins the group and
the original stays for its other consumers, provided P is cheap (a splat constant, an iota, a view, or
a non-transcendental elementwise op), its operands are already in memory (parameters, values other
kernels store, or group members), and the copy reads no more new bytes than reading P would. Otherwise
the pair is refused (multi-consumer) and P stays materialised. After growing, a cheap value stored only
for other groups is recomputed in each of them when all can take a copy, so it is not stored at all;
splat constants are copied into every group that can hold them (with the consumer's shape when that is
what the group's kind needs: a splat has the same value at any shape).

Every group is checked by `classify_group` when it is formed and again at the end, with the graph of
kernels, so what the engine returns always satisfies the fusion-group contract; groups formed by
earlier passes keep their ids unless this pass extends them, and every new group gets a fresh id from
the pass context. Values never change: fusion only sets `Node.group`, and a recomputed copy is the
same operation on the same operands. The engine is `passes.fusion_engine` (growing) with
`passes.fusion_recompute` (several consumers); this module holds what the passes and tests share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import networkx as nx

from ir.graph import Graph
from ir.graph_printer import value_names
from ir.groups import GroupKind
from passes.context import PassContext, format_bytes, plural
from passes.fusion_cost import memory_traffic

Refusal = tuple[str, str]  # (category, reason)


@dataclass(frozen=True)
class FusionOptions:
    """Options shared by the fusion passes."""

    max_group: int | None = None  # most nodes in one group; none: no limit
    max_working_set: int | None = None  # bytes a group may read and write; none: the context's limit
    recompute: bool = True  # recompute cheap values with several consumers instead of storing them


@dataclass(frozen=True)
class FusionPolicy:
    kinds: frozenset[GroupKind]  # the kinds of group the pass forms
    seed: Callable[[Graph, int], bool]
    admit: Callable[[Graph, int], Refusal | None]  # None: may join; else why not (text follows a label)


class Refused(Exception):
    def __init__(self, category: str, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.category = category
        self.reason = reason
        self.permanent = permanent  # about the pair alone: growing the group cannot change it


def node_label(graph: Graph, node: int, names: dict[int, str] | None = None) -> str:
    """`%5 (exp) at file:line:col` in the printer's numbering of `graph`."""
    names = names if names is not None else value_names(graph)
    payload = graph.node(node)
    where = f" at {payload.loc}" if payload.loc is not None else ""
    return f"{names.get(node, f'node {node}')} ({payload.op}){where}"


def reentry(graph: Graph, members: set[int], blocks: Callable[[int], set[int]] | None = None) -> int | None:
    """A node on a path that leaves `members` and comes back to them (None: there is none).

    With `blocks` (node -> the nodes of its kernel), paths run between kernels: reaching one node of a
    kernel reaches all of it, since a kernel runs as a whole. So `members` is convex *and* adding it as
    one kernel keeps the graph of kernels acyclic (each group being convex on its own is not enough:
    groups {a1, a2} and {b1, b2} with edges a1 -> b1 and b2 -> a2 are both convex, yet cyclic).
    """
    frontier = [u for n in members for u in graph.nx.successors(n) if u not in members]
    seen: set[int] = set()
    while frontier:
        node = frontier.pop()
        if node in seen:
            continue
        block = blocks(node) if blocks is not None else {node}
        seen |= block
        for member in block:
            for user in graph.nx.successors(member):
                if user in members:
                    return node
                if user not in seen:
                    frontier.append(user)
    return None


def kernels_acyclic(graph: Graph) -> bool:
    """Whether the graph of kernels (each group contracted to one node) has no cycle."""
    kernel = {n: ("group", data["node"].group) if data["node"].group is not None else n
              for n, data in graph.nx.nodes(data=True)}
    quotient = nx.DiGraph()
    quotient.add_nodes_from(set(kernel.values()))
    quotient.add_edges_from((kernel[a], kernel[b]) for a, b in graph.nx.edges() if kernel[a] != kernel[b])
    return nx.is_directed_acyclic_graph(quotient)


def neighbourhood(graph: Graph, members: set[int]) -> Graph:
    """The members with the values they read and the nodes that read them: enough for `classify_group`
    to judge a member set whose convexity in `graph` is already known (`_reentry`), in time proportional
    to the group instead of the whole graph. Outside nodes keep only their edges to and from members."""
    sub = Graph(graph.name)
    sub.outputs = [n for n in graph.outputs if n in members]
    for node in members:
        sub.nx.add_node(node, node=graph.node(node))
        for source, _, key in graph.nx.in_edges(node, keys=True):
            if source not in sub.nx:
                sub.nx.add_node(source, node=graph.node(source))
            sub.nx.add_edge(source, node, key=key)
    for node in members:
        for _, target, key in graph.nx.out_edges(node, keys=True):
            if target not in members:
                if target not in sub.nx:
                    sub.nx.add_node(target, node=graph.node(target))
                sub.nx.add_edge(node, target, key=key)
    return sub


def dense_everywhere(graph: Graph, node: int) -> Refusal | None:
    """Sparse tensors are left to the sparse lowering: a node touching one is not fused."""
    for value in [node] + graph.operands(node):
        fmt = graph.node(value).type.format
        if not fmt.is_dense:
            return ("not-fusible", f"works on a {fmt} tensor; sparse operations are not fused")
    return None


def run_fusion(graph: Graph, ctx: PassContext, policy: FusionPolicy, options: FusionOptions,
               pass_name: str) -> Graph:
    """Apply the policy to a copy of `graph`; logs decisions and reports statistics to `ctx`."""
    from passes.fusion_engine import Fuser
    fuser = Fuser(graph, ctx, policy, options, pass_name)
    result = fuser.run()
    removed = memory_traffic(graph) - memory_traffic(result)
    text = (f"{plural(fuser.stat_nodes, 'node')} into {plural(fuser.stat_groups, 'group')}, "
            f"{format_bytes(removed)} of intermediate traffic removed")
    extras = []
    if fuser.stat_recomputed:
        extras.append(f"{plural(fuser.stat_recomputed, 'value')} recomputed")
    if fuser.stat_shared:
        extras.append(f"{plural(fuser.stat_shared, 'intermediate')} also stored for other kernels")
    if extras:
        text += " (" + ", ".join(extras) + ")"
    ctx.report(text, nodes=fuser.stat_nodes, groups=fuser.stat_groups, traffic_removed=removed,
               recomputed=fuser.stat_recomputed, shared=fuser.stat_shared)
    return result
