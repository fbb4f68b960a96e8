"""Values with several consumers in the fusion passes: share, recompute, or refuse (the documented rule).

A mixin of `passes.fusion_engine.Fuser`. `_recompute` is called when a producer with outside users
cannot be shared with a group; `_unmaterialise` runs after growing and removes stored values that
every consumer group can recompute. The rule and why it is legal are in `passes.fusion_common`.
"""

from __future__ import annotations

from ir import ops
from ir.graph import Graph
from ir.groups import operands_of, successors_of, uses_in
from passes.context import format_bytes
from passes.fusion_common import Refused
from passes.fusion_cost import is_cheap, value_bytes

Plan = list[tuple[int, int, tuple[int, ...] | None]]  # (user, operand index, shape of the copy or None)


class Recompute:
    def _recompute(self, producer: int, consumer: int, key: int, shared: Refused, users: list[int]) -> None:
        """Join a private copy of `producer` to the group, or raise why neither sharing nor that works."""
        inside = self.members[key]
        plan = [(user, index, None) for user, index in uses_in(self.graph, producer, inside)]
        blocker = self._recompute_blocker(producer, key)  # judged on the graph without the copy
        if blocker is not None and not self.ctx.record:
            # Refused either way; whether a copy would fit only decides which reason the log gives, and
            # nothing keeps the log. (Trying it would place and remove a copy: the same graph after.)
            raise shared
        made = self._try_copy(producer, key, plan)
        if made is None:
            raise shared  # not the other consumers' fault: the pair cannot fuse either way
        if blocker is not None:
            self._undo_copy(producer, plan, made)
            raise Refused("multi-consumer", f"{self._also_used(producer, users)}, so the group would have to store "
                                             f"it too, which it cannot ({shared.reason}); {blocker}")
        self._adopt(producer, key, plan, made)
        self.copies[(producer, key)] = made[-1]
        if self.ctx.record:
            self._decide(producer, consumer, "recomputed", f"{self._also_used(producer, users)}; it is cheap "
                         f"({self.graph.node(producer).op}), so the group computes its own copy", key=key)
        else:
            self._decide(producer, consumer, "recomputed", key=key)

    def _also_used(self, producer: int, users: list[int]) -> str:
        listed = self._listed(users) or "the program's results"
        return f"{self._label(producer)} is also used by {listed}"

    def _recompute_blocker(self, producer: int, key: int) -> str | None:
        """Why `producer` may not be recomputed in group `key` (None: it may)."""
        if not self.options.recompute:
            return "recomputing is switched off (recompute=false)"
        if not is_cheap(self.graph, producer):
            return f"{self.graph.node(producer).op} is too costly to compute twice"
        inside = self.members[key]
        succ = successors_of(self.graph)
        extra = 0
        for operand in dict.fromkeys(operands_of(self.graph, producer)):
            # `inside.isdisjoint(succ[operand])`: the group does not read the operand yet (it is not
            # among the group's inputs), asked of the operand's users instead of the whole group
            if operand in inside or not inside.isdisjoint(succ[operand]) or \
                    self.graph.node(operand).op in ("constant", "iota"):
                continue
            home = self.group_of.get(operand)
            if home is not None and not self._stored(operand, self.members[home]):
                return f"a copy would read {self._label(operand)}, which its group does not store"
            extra += value_bytes(self.graph, operand)
        if extra > value_bytes(self.graph, producer):
            return (f"a copy would read {format_bytes(extra)} of operands, more than the "
                    f"{format_bytes(value_bytes(self.graph, producer))} of reading the value")
        return None

    def _stored(self, node: int, members: set[int]) -> bool:
        """Whether the kernel of `members` stores member `node` (one of its results, `boundary`'s
        second set): a program output, or read outside the kernel."""
        return node in members and (node in self.returned or not members.issuperset(successors_of(self.graph)[node]))

    def _place(self, graph: Graph, node: int, plan: Plan,
               inside: set[int]) -> list[int]:
        """Copy `node` for the uses in `plan` (user, operand index, shape or None for the same type).
        Constants the copy reads from inside other groups are copied too. Returns the new nodes."""
        payload = graph.node(node)
        operands = []
        made = []
        for operand in operands_of(graph, node):
            source = graph.node(operand)
            if source.op in ("constant", "iota") and operand in self.group_of and operand not in inside:
                operand = graph.add_copy(source, [])
                made.append(operand)
            operands.append(operand)
        by_shape: dict[tuple[int, ...] | None, int] = {}
        for user, index, shape in plan:
            if shape not in by_shape:
                by_shape[shape] = graph.add_copy(payload, operands,
                                                 None if shape is None else payload.type.with_shape(shape))
                made.append(by_shape[shape])
            graph.set_operand(user, index, by_shape[shape])
        return made

    def _try_copy(self, node: int, key: int, plan: Plan) -> list[int] | None:
        """Place copies of `node` for the uses in `plan` and keep them when group `key` with them is
        legal (the copies), else undo them (None)."""
        made = self._place(self.graph, node, plan, self.members[key])
        try:
            self._check(self.graph, self.members[key] | set(made))
        except Refused:
            self._undo_copy(node, plan, made)
            return None
        return made

    def _undo_copy(self, node: int, plan: Plan, made: list[int]) -> None:
        for user, index, _ in plan:
            self.graph.set_operand(user, index, node)
        for copy in made:
            self.graph.remove(copy)

    def _adopt(self, node: int, key: int, plan: Plan, made: list[int] | None = None) -> list[int]:
        """Copy `node` into group `key` for real (see `_place`; `made`: the copies, already placed)."""
        if made is None:
            made = self._place(self.graph, node, plan, self.members[key])
        self.order.place(made, next(iter(self.members[key])))
        for copy in made:
            self.clone_of[copy] = node
            self.group_of[copy] = key
            self.members[key].add(copy)
        self.version[key] += 1
        self.graph_version += 1
        return made

    def _unmaterialise(self) -> None:
        """Recompute cheap values stored only for other groups in each of them (see the docstring)."""
        # Which values qualify does not change while copies are placed (copies are new nodes, and no
        # node of the graph as it is now is removed), so they are picked first and only they are sorted.
        candidates = [node for node in self.graph.nx._node if node not in self.clone_of and
                      node not in self.returned and node not in self.params and is_cheap(self.graph, node)]
        for node in sorted(candidates, key=self._order):
            home = self.group_of.get(node)
            homes = {self.group_of.get(u) for u in successors_of(self.graph)[node]}  # the users' kernels
            if home is not None:
                homes.discard(home)
            targets = sorted(k for k in homes if k is not None and self._growable(k))
            is_splat = self.graph.node(node).op == "constant"
            if not targets or (not is_splat and len(targets) < len(homes)):
                continue
            if is_splat:
                # A splat reads nothing and no path reaches it, so a copy placed for one group changes
                # nothing the check of another group looks at: each copy that fits is kept as placed,
                # not removed and placed again after all groups were tried.
                for key in targets:
                    placed = self._place_fitting(node, key, is_splat)
                    if placed is not None:
                        self._adopt(node, key, *placed)
                        self._decide_copied(node, key, placed[0])
                continue
            plans = []
            for key in targets:  # all of them or none: the first group that cannot take a copy decides
                plan = self._plan_copy(node, key)
                if plan is None:
                    break
                plans.append((key, plan))
            if len(plans) < len(targets):
                continue
            for key, plan in plans:
                self._adopt(node, key, plan)
                self._decide_copied(node, key, plan)

    def _decide_copied(self, node: int, key: int, plan: Plan) -> None:
        for user, _, _ in plan:
            self._decide(node, user, "recomputed", "a copy inside the group replaces the stored value", key=key)

    def _plan_copy(self, node: int, key: int) -> Plan | None:
        """How to copy `node` (not a splat) into group `key`, or None when no copy is legal there (tried
        and undone)."""
        placed = self._place_fitting(node, key, is_splat=False)
        if placed is None:
            return None
        plan, made = placed
        self._undo_copy(node, plan, made)
        return plan

    def _place_fitting(self, node: int, key: int, is_splat: bool) -> tuple[Plan, list[int]] | None:
        """Copies of `node` placed for group `key`'s uses of it, by the first legal plan (the type as it
        is; else, for a splat read by elementwise ops only, one copy per shape the users have) with the
        copies, or None when no copy is legal there (nothing left placed)."""
        if not is_splat and self._recompute_blocker(node, key) is not None:
            return None
        inside = self.members[key]
        uses = uses_in(self.graph, node, inside)
        for shaped in (False, True):
            if shaped and not (is_splat and all(ops.in_group(self.graph.node(u).op, ops.ELEMENTWISE)
                                                for u, _ in uses)):
                return None
            plan = [(u, i, self.graph.node(u).type.shape if shaped else None) for u, i in uses]
            made = self._try_copy(node, key, plan)
            if made is not None:
                return plan, made
        return None
