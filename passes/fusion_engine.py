"""The growing loop of the fusion passes: seeds, frontiers, legality, and the final groups.

See `passes.fusion_common` for the rules it applies and why the groups it returns are legal; the
handling of values with several consumers (share, recompute, unmaterialise) is in
`passes.fusion_recompute`. The graph is sorted once per run; `passes.fusion_order` keeps the order of
kernels as they merge, which bounds the legality searches of `passes.fusion_queries`.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from ir import ops
from ir.graph import Graph
from ir.groups import (GroupError, GroupKind, group_kind, kernels_acyclic, operands_of, predecessors_of,
                       successors_of, users_of, uses_in)
from passes.context import FusionDecision, PassContext, format_bytes
from passes.fusion_common import FusionOptions, FusionPolicy, Refused, dense_everywhere, node_label
from passes.fusion_cost import working_set
from passes.fusion_order import KernelOrder
from passes.fusion_queries import classify_local, reentry, remove_unused, value_names_in
from passes.fusion_recompute import Recompute
from passes.registry import fusion_rules

_FINAL = (-1, -1, -1)  # a refusal that growing the group cannot change
_LISTED = 10  # at most this many nodes are named in a list in a message


class Fuser(Recompute):
    """One run of a fusion pass over a copy of the graph, or over the graph itself when the pass manager
    hands it over (`PassContext.owns_input`; see passes.fusion_common)."""

    def __init__(self, graph: Graph, ctx: PassContext, policy: FusionPolicy, options: FusionOptions,
                 pass_name: str) -> None:
        self.source = graph
        # In place when the manager hands the graph over, except when recording: the log's labels and the
        # traffic statistics read the graph as it was given.
        self.graph = graph if ctx.owns_input and not ctx.record else graph.copy()
        if self.graph is graph:
            graph.restart_ids()  # the copies it places get the ids they would get in a copy of the graph
        self.ctx = ctx
        self.policy = policy
        self.options = options
        self.pass_name = pass_name
        self.limit = options.max_working_set if options.max_working_set is not None else ctx.working_set_limit
        self.topological = graph.topological_order()
        self.names = value_names_in(graph, self.topological)
        self.index = {n: i for i, n in enumerate(self.topological)}
        self.returned = frozenset(graph.outputs)  # fusion never changes the outputs
        # Facts asked about the same nodes for every candidate group. Copies (`fusion_recompute`) are of
        # cheap ops, never parameters or reductions, and node ids are never reused, so they stay true.
        self.params = frozenset(graph.params)
        self.reductions = frozenset(n for n in self.topological if ops.in_group(graph.node(n).op, ops.REDUCTION))
        self.labels: dict[int, str] = {}
        self.group_of: dict[int, int] = {}
        self.members: dict[int, set[int]] = {}
        self.version: dict[int, int] = {}
        self.earlier: dict[int, tuple[int, frozenset[int], GroupKind | None]] = {}  # key -> (id, members, kind)
        self.clone_of: dict[int, int] = {}
        self.copies: dict[tuple[int, int], int] = {}  # (original, group key) -> its copy in that group
        self.graph_version = 0
        self.refused: dict[tuple[int, int], tuple[int, int, int]] = {}
        self.decisions: dict[tuple[int, int], tuple[str, str, str | None, int | None]] = {}
        self._keys = 0
        earlier: dict[int, list[int]] = {}
        for node in self.topological:
            if graph.node(node).group is not None:
                earlier.setdefault(graph.node(node).group, []).append(node)
        for group_id, nodes in earlier.items():
            key = self._new_key(set(nodes))
            try:  # only the kind is kept, so it is asked without ordering the members
                kind = group_kind(graph, set(nodes), self.returned)
            except GroupError:
                kind = None
            self.earlier[key] = (group_id, frozenset(nodes), kind)
        self.order = KernelOrder(self.graph, self.topological, self._block)
        self.rules = fusion_rules()  # registered before a pass runs (a rule cannot register one)
        self.stat_nodes = self.stat_groups = self.stat_recomputed = self.stat_shared = 0

    # -- bookkeeping ---------------------------------------------------------------------------

    def _new_key(self, nodes: set[int]) -> int:
        key = self._keys
        self._keys += 1
        self.members[key] = set(nodes)
        self.version[key] = 0
        for node in nodes:
            self.group_of[node] = key
        return key

    def _label(self, node: int, graph: Graph | None = None) -> str:
        if node in self.labels:  # a value with many users is named in many messages
            return self.labels[node]
        if node in self.clone_of:
            return "a copy of " + self._label(self.clone_of[node])
        if node in self.source:
            self.labels[node] = node_label(self.source, node, self.names)
            return self.labels[node]
        return node_label(graph if graph is not None else self.graph, node, self.names)

    def _listed(self, nodes: list[int]) -> str:
        """Labels of `nodes`, the first few only when there are many (a value shared by every layer of
        a model would otherwise be listed in full in every message about it)."""
        shown = ", ".join(self._label(n) for n in nodes[:_LISTED])
        return shown if len(nodes) <= _LISTED else f"{shown} and {len(nodes) - _LISTED} more"

    def _order(self, node: int) -> int:
        return self.index.get(self.clone_of.get(node, node), len(self.index) + node)

    def _rename(self, message: str, graph: Graph) -> str:
        """`classify_group` names nodes `%<id>`; use the printer's names, as everywhere else."""
        def name(found: re.Match) -> str:
            node = int(found.group(1))
            if node in self.clone_of:
                return "a copy of " + self.names.get(self.clone_of[node], found.group(0))
            return self.names.get(node, found.group(0)) if node in self.source else found.group(0)
        return re.sub(r"%(\d+)\b", name, message)

    def _block(self, node: int) -> set[int]:
        """The nodes of `node`'s kernel in the grouping being built."""
        key = self.group_of.get(node)
        return self.members[key] if key is not None and key in self.members else {node}

    def _growable(self, key: int) -> bool:
        return key not in self.earlier or self.earlier[key][2] in self.policy.kinds

    def _decide(self, producer: int, consumer: int, how: str, reason: str = "", category: str | None = None,
                key: int | None = None) -> None:
        self.decisions[(producer, consumer)] = (how, reason, category, key)

    def _outside_users(self, node: int, inside: set[int]) -> list[int]:
        return [u for u in users_of(self.graph, node) if u not in inside]

    # -- growing -------------------------------------------------------------------------------

    def run(self) -> Graph:
        grown: dict[int, tuple[int, int]] = {}
        for node in self.topological:
            if node not in self.graph or not self.policy.seed(self.graph, node):
                continue
            if dense_everywhere(self.graph, node) is not None:
                continue
            key = self.group_of.get(node)
            if key is None:
                key = self._new_key({node})
            elif not self._growable(key) or grown.get(key) == (self.version[key], self.graph_version):
                continue
            self._grow(key)
            grown[key] = (self.version[key], self.graph_version)
        if self.options.recompute:
            self._unmaterialise()
        return self._finish()

    def _grow(self, key: int) -> None:
        progressed = True
        while progressed:
            progressed = False
            for producer, consumer in self._frontier(key):
                if self._consider(producer, consumer, key):
                    progressed = True
                    break

    def _frontier(self, key: int) -> list[tuple[int, int]]:
        inside = self.members[key]
        pred, succ = predecessors_of(self.graph), successors_of(self.graph)
        pairs = set()
        for node in inside:
            pairs.update((p, node) for p in pred[node] if p not in inside and p not in self.params)
            pairs.update((node, c) for c in succ[node] if c not in inside)
        return sorted(pairs, key=lambda pair: (self._order(pair[0] if pair[1] in inside else pair[1]), pair))

    def _consider(self, producer: int, consumer: int, key: int) -> bool:
        state = (key, self.version[key], self.graph_version)
        if self.refused.get((producer, consumer)) in (state, _FINAL):
            return False
        try:
            self._join(producer, consumer, key)
            return True
        except Refused as refusal:
            self.refused[(producer, consumer)] = _FINAL if refusal.permanent else state
            self._decide(producer, consumer, "not fused", refusal.reason, refusal.category)
            return False

    def _join(self, producer: int, consumer: int, key: int) -> None:
        inside = self.members[key]
        outside = producer if consumer in inside else consumer
        if outside == producer and (producer, key) in self.copies:
            copy = self.copies[(producer, key)]
            for user, index in uses_in(self.graph, producer, {consumer}):
                self.graph.set_operand(user, index, copy)
            self.graph_version += 1
            self._decide(producer, consumer, "recomputed", "reads the group's copy", key=key)
            return
        refusal = self.policy.admit(self.graph, outside)
        if refusal is not None:
            raise Refused(refusal[0], f"{self._label(outside)} {refusal[1]}", permanent=True)
        other = self.group_of.get(outside)
        if other is not None and other in self.earlier and not self._growable(other):
            group_id, _, kind = self.earlier[other]
            raise Refused("group-kind", f"{self._label(outside)} is in group {group_id}, a {kind} kernel formed "
                                         f"by an earlier pass", permanent=True)
        for rule in self.rules:
            reason = rule.check(self.graph, producer, consumer)
            if reason:
                raise Refused("user-rule", f"rule '{rule.name}' ({rule.origin}): {reason}", permanent=True)
        union = inside | (self.members[other] if other is not None else {outside})
        try:
            self._check(self.graph, union)
        except Refused as shared:
            users = self._outside_users(producer, union) if outside == producer else []
            if users or (outside == producer and producer in self.returned):
                self._recompute(producer, consumer, key, shared, users)
                return
            raise
        self._absorb(key, other, outside)
        note = ""
        if outside == producer and self.ctx.record:
            users = self._outside_users(producer, self.members[key])
            if users:
                note = "also stored for " + self._listed(users)
        self._decide(producer, consumer, "fused", note, key=key)

    def _absorb(self, key: int, other: int | None, node: int) -> None:
        """Add `node` (ungrouped) or all of group `other` to group `key`."""
        if other is None:
            nodes = {node}
            self.order.merge(self.members[key], nodes)
        else:
            self.order.merge(self.members[key], self.members[other])
            nodes = self.members.pop(other)
            for (original, owner), copy in list(self.copies.items()):
                if owner == other:
                    self.copies.setdefault((original, key), copy)
        for member in nodes:
            self.group_of[member] = key
        self.members[key] |= nodes
        self.version[key] += 1

    # -- legality ------------------------------------------------------------------------------

    def _check(self, graph: Graph, union: set[int]) -> None:
        """Raise Refused unless `union` may be one group of this pass (rules 3-5)."""
        if self.options.max_group is not None and len(union) > self.options.max_group:
            raise Refused("max-group", f"the group would have {len(union)} nodes, more than "
                                        f"max-group={self.options.max_group}")
        self._check_reductions(graph, union)
        loop = reentry(graph, union, self._block, self.order)
        if loop is not None:
            raise Refused("cycle", f"{self._label(loop, graph)} depends on the group and the group depends on it, "
                                    "so fusing would create a cycle")
        try:
            if self.ctx.record:  # the refusal names the member `classify_group` would name
                kind = classify_local(graph, union, self.returned).kind
            else:  # the same verdict without ordering the members (no path leaves them and comes back)
                kind = group_kind(graph, union, self.returned)
        except GroupError as error:
            raise Refused("group-contract", self._rename(str(error), graph) if self.ctx.record else str(error)) \
                from None
        if kind not in self.policy.kinds:
            kinds = " or ".join(sorted(str(k) for k in self.policy.kinds))
            raise Refused("group-kind", f"together they would form a {kind} kernel; {self.pass_name} "
                                         f"forms {kinds} groups")
        if self.limit is not None:
            read, written = working_set(graph, union, self.returned)
            if read + written > self.limit:
                raise Refused("working-set", f"the group's working set would be {format_bytes(read + written)} "
                                              f"(reads {format_bytes(read)}, writes {format_bytes(written)}), "
                                              f"over the limit of {format_bytes(self.limit)}")

    def _check_reductions(self, graph: Graph, union: set[int]) -> None:
        if self.reductions.isdisjoint(union):
            return
        reductions = sorted(self.reductions.intersection(union), key=self._order)
        first = reductions[0]
        domain = graph.node(operands_of(graph, first)[0]).type
        axes = graph.node(first).attr("axes")
        for other in reductions[1:]:
            their = graph.node(operands_of(graph, other)[0]).type
            if their.shape != domain.shape or graph.node(other).attr("axes") != axes:
                raise Refused("reduction-boundary", f"{self._label(other, graph)} reduces axes "
                               f"{list(graph.node(other).attr('axes'))} of {their}, but {self._label(first, graph)} "
                               f"reduces axes {list(axes)} of {domain}: one kernel reduces one set of axes")
        kept = tuple(1 if i in axes else d for i, d in enumerate(domain.shape))
        dropped = tuple(d for i, d in enumerate(domain.shape) if i not in axes)
        if dropped == kept:
            return
        for node in union:
            if graph.node(node).type.shape != domain.shape:
                continue
            for operand in operands_of(graph, node):
                if operand in union and graph.node(operand).type.shape == dropped:
                    raise Refused("reduction-boundary", f"{self._label(node, graph)} reads {self._label(operand, graph)}, a "
                                   f"reduced value without keepdims (shape {list(dropped)}), which does not line "
                                   f"up with the domain {list(domain.shape)}")

    # -- result --------------------------------------------------------------------------------

    def _finish(self) -> Graph:
        graph = self.graph
        remove_unused(graph)
        kept: dict[int, set[int]] = {}
        for key, nodes in self.members.items():
            nodes = {n for n in nodes if n in graph}
            if len(nodes) >= 2 or (key in self.earlier and nodes):
                kept[key] = nodes
        final: dict[int, int] = {}
        for key, nodes in kept.items():
            if key in self.earlier and frozenset(nodes) == self.earlier[key][1]:
                final[key] = self.earlier[key][0]
        fresh_ids = self._fresh_group_ids(group_id for group_id, _, _ in self.earlier.values())
        for key in sorted(kept, key=lambda k: min(self._order(n) for n in kept[k])):
            if key in final:
                continue
            final[key] = next(fresh_ids)
            self.stat_groups += 1
            self.stat_nodes += len(kept[key])
        group_of = {node: final[key] for key, nodes in kept.items() for node in nodes}
        for node, data in graph.nx._node.items():
            payload = data["node"]
            group = group_of.get(node)
            if payload.group != group:
                data["node"] = payload.with_group(group)
        if self.ctx.verify_each:  # what every accepted union was checked to be, checked once more
            if not kernels_acyclic(graph):  # which also makes every group convex
                raise AssertionError("fusion made the graph of kernels cyclic")
            for key, group_id in final.items():
                try:
                    classify_local(graph, kept[key], self.returned)
                except GroupError as error:
                    raise AssertionError(f"fusion formed an invalid group {group_id} {sorted(kept[key])}: "
                                         f"{error}") from None
        if self.ctx.record:  # statistics and the log are all that read what follows
            succ = successors_of(graph)
            for key, nodes in kept.items():
                if not (key in self.earlier and frozenset(nodes) == self.earlier[key][1]):
                    # values stored for other kernels that the group also uses itself
                    self.stat_shared += sum(1 for n in nodes if (n in self.returned or not nodes.issuperset(succ[n]))
                                            and not nodes.isdisjoint(succ[n]))
            self.stat_recomputed = sum(1 for n in self.clone_of if n in graph)
            self._log(final)
        return graph

    def _fresh_group_ids(self, used: Iterable[int]) -> Iterator[int]:
        """Group ids from the context: the first is none of `used`, the ids of the groups the graph was
        given with (as asked of the graph before the pass changed it in place); later ones need not look
        again (the context never hands out an id twice)."""
        yield self.ctx.group_id_after(used)
        while True:
            yield self.ctx.group_id_after(())

    def _log(self, final: dict[int, int]) -> None:
        for (producer, consumer) in sorted(self.decisions, key=lambda pc: (self._order(pc[1]), self._order(pc[0]))):
            how, reason, category, key = self.decisions[(producer, consumer)]
            self.ctx.log_fusion(FusionDecision(self.pass_name, producer, consumer, self._label(producer),
                                               self._label(consumer), how, reason, category,
                                               final.get(key) if key is not None else None))
