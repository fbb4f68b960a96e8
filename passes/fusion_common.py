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
`passes.fusion_recompute` (several consumers), asking `passes.fusion_queries`; this module holds what
the passes and tests share.

**Cost.** Each check costs the candidate group and its neighbourhood, not the program: rule 5's search
stops at the last kernel that feeds the group in a topological order of the graph of kernels, which
`passes.fusion_order` keeps up to date as groups merge, and `fusion_queries.classify_local` judges a
group from its
members and their edges (the search has already ruled out paths that leave and come back). Each pass
sorts the graph once. So a pass takes time linear in the size of the program: twice the layers of a
model, twice the work (each pass reports the nodes its searches visited as the `visited` counter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ir import ops
from ir.graph import Graph
from ir.graph_printer import value_names
from ir.groups import GroupKind, operands_of, users_of
from ir.groups import kernels_acyclic as kernels_acyclic  # the check the fusion tests ask for, kept here
from passes.collector import collector_paused
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


def dense_everywhere(graph: Graph, node: int) -> Refusal | None:
    """Sparse tensors are left to the sparse lowering: a node touching one is not fused, except a
    matmul whose sparse operand is a parameter, directly or through a 2-D transpose (the sparse
    lowering makes it the anchor of a MATMUL kernel, `passes.lowering.sparse`), and such a transpose."""
    nodes = graph.nx._node
    if nodes[node]["node"].type.format.is_dense and all(
            nodes[operand]["node"].type.format.is_dense for operand in graph.nx._pred[node]):
        return None  # the common case, asked for every candidate: nothing here is sparse
    if _sparse_matmul_part(graph, node):
        return None
    for value in [node] + operands_of(graph, node):
        fmt = graph.node(value).type.format
        if not fmt.is_dense:
            return ("not-fusible", f"works on a {fmt} tensor; sparse operations are not fused")
    return None


def _sparse_matmul_part(graph: Graph, node: int) -> bool:
    payload = graph.node(node)
    if ops.in_group(payload.op, ops.MATMUL):
        return all(graph.node(o).type.format.is_dense or graph.node(o).op == "param" for o in operands_of(graph, node))
    if payload.op == "transpose" and payload.attr("perm") == (1, 0):
        (operand,) = operands_of(graph, node)
        users = users_of(graph, node)
        return graph.node(operand).op == "param" and bool(users) and all(
            ops.in_group(graph.node(u).op, ops.MATMUL) for u in users)
    return False


def run_fusion(graph: Graph, ctx: PassContext, policy: FusionPolicy, options: FusionOptions,
               pass_name: str) -> Graph:
    """Apply the policy to a copy of `graph` (to `graph` itself when `ctx.owns_input`); logs decisions and
    reports statistics to `ctx`."""
    from passes.fusion_engine import Fuser
    with collector_paused():
        fuser = Fuser(graph, ctx, policy, options, pass_name)
        result = fuser.run()
    if not ctx.record:  # nothing reads the statistics, and the traffic costs two walks over the graph
        return result
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
               recomputed=fuser.stat_recomputed, shared=fuser.stat_shared, visited=fuser.order.visits)
    return result
