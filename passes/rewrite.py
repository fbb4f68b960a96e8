"""The pattern-rewrite engine for the graph IR: patterns, rules, rule sets and a greedy driver.

A `Pattern` matches a node by op name (or op group from the op table), its operands by sub-patterns,
and predicates; `name=` captures the matched node, and a name used twice must match the same node
(`mul(x, sigmoid(x))`). Binary ops in the COMMUTATIVE group match their operands in either order.

    SILU = op("mul", any_value("x"), op("sigmoid", any_value("x")))

A `Rule` pairs a pattern with a named function `apply(rw, match)`. It returns the node that replaces
the matched root (its type must be the root's: shape, dtype and format), or None when it does not
apply. Instead of replacing, it may change the graph in place, e.g. `rw.fuse([...])` puts nodes in one
fusion group (checked by `ir.groups.classify_group`). `RuleSet`s compose with `+`.

`apply_rules(graph, rules)` works on a copy: it sweeps the nodes in topological order, applies the
first rule that matches each node, removes the values no output needs any more, and repeats until a
sweep changes nothing. A rule set that keeps rewriting past `max_iterations` sweeps is an error
naming the rules that were still firing. Why it is legal: every replacement has the root's type and
the rule's author states its value is the root's; dead-value removal only drops values no output uses.

Rules that declare a `depth` (they look only at the root and the operands below it, `depth` steps
down) let the driver skip, in later sweeps, the nodes where no rule fired and whose operands (to that
depth) have not changed since: such a node would again fire nothing. A sweep whose remaining nodes
would all fire nothing is confirmed by trying them without changing the graph (see `_may_fire`), so
the common last sweep that only confirms convergence does not walk the whole graph. The result is
the full sweeps' result, node for node.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import networkx as nx

from compiler.diagnostics import NicheError
from ir import ops
from ir.graph import Graph, Node
from ir.groups import GroupError, classify_group

NodePredicate = Callable[[Graph, int], bool]


class RewriteError(NicheError):
    """A rule produced something inconsistent, or a rule set did not converge."""


# ----------------------------------------------------------------------------------------------
# Patterns


@dataclass(frozen=True)
class Pattern:
    ops: frozenset[str] | None = None  # op names; None: any op
    group: str | None = None  # an op group of the op table (ops.ELEMENTWISE, ...)
    operands: tuple[Pattern, ...] | None = None  # None: any operands
    name: str | None = None  # capture the matched node under this name
    where: tuple[NodePredicate, ...] = ()

    def root_ops(self) -> frozenset[str] | None:
        """The op names a root can have (for indexing rules), None when any."""
        if self.ops is not None:
            return self.ops
        if self.group is not None:
            return frozenset(ops.ops_in_group(self.group))
        return None

    @property
    def depth(self) -> int:
        """How many operand steps below the root the pattern looks (0: the root alone)."""
        if self.operands is None:
            return 0
        return 1 + max((operand.depth for operand in self.operands), default=0)

    # A pattern is immutable, so what is derived from it is computed once, on first use, and kept on
    # the pattern itself (frozen dataclasses still have a __dict__; equality and hashing ignore it).
    @functools.cached_property
    def _single(self) -> bool:
        """Whether the pattern matches a node in at most one way: no node below the root where both
        operand orders of a commutative op could be tried."""
        if self.operands is None:
            return True
        if not all(operand._single for operand in self.operands):
            return False
        candidates = self.root_ops()
        return len(self.operands) != 2 or (candidates is not None and
                                           not any(ops.in_group(n, ops.COMMUTATIVE) for n in candidates))

    @functools.cached_property
    def _first(self) -> Callable[[Graph, int, dict[str, int]], dict[str, int] | None]:
        """`(graph, node, captures) -> ` the first captures `_match` would yield, or None."""
        return _compile(self)


def op(name: str | Iterable[str] | None = None, *operands: Pattern, group: str | None = None,
       capture: str | None = None, where: NodePredicate | Iterable[NodePredicate] = ()) -> Pattern:
    """A node with op `name` (or one of several names, or any op of `group`) whose operands match
    `operands`. Without operand patterns the operands are not looked at."""
    names = None if name is None else frozenset([name] if isinstance(name, str) else name)
    for n in names or ():
        ops.op_def(n)  # a typo in a pattern is caught when the pattern is built
    predicates = (where,) if callable(where) else tuple(where)
    constrained = tuple(operands) if operands else None
    return Pattern(names, group, constrained, capture, predicates)


def any_value(capture: str | None = None, where: NodePredicate | Iterable[NodePredicate] = ()) -> Pattern:
    """Any value (including parameters), optionally captured and filtered."""
    return Pattern(name=capture, where=(where,) if callable(where) else tuple(where))


def constant(value: float | int | bool | None = None, capture: str | None = None) -> Pattern:
    """A `constant` node, with the given splat value when one is given (1 matches 1.0 too)."""
    predicates: tuple[NodePredicate, ...] = ()
    if value is not None:
        predicates = (_has_value(value),)
    return Pattern(frozenset({"constant"}), None, None, capture, predicates)


def _has_value(value: float | int | bool) -> NodePredicate:
    def has_value(graph: Graph, node: int) -> bool:
        found = graph.node(node).attr("value")
        if isinstance(found, bool) or isinstance(value, bool):
            return found is value
        return found == value
    return has_value


# Predicates for `where=`.
def ungrouped(graph: Graph, node: int) -> bool:
    """The node is in no fusion group yet."""
    return graph.node(node).group is None


def one_use(graph: Graph, node: int) -> bool:
    """The node's value has exactly one use and is not a program output."""
    return len(graph.uses(node)) == 1 and not graph.is_output(node)


def dense(graph: Graph, node: int) -> bool:
    return graph.node(node).type.format.is_dense


# ----------------------------------------------------------------------------------------------
# Matching


@dataclass
class Match:
    graph: Graph
    root: int
    captures: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.captures[name]

    def __contains__(self, name: str) -> bool:
        return name in self.captures

    def node(self, name: str) -> Node:
        return self.graph.node(self.captures[name])

    @property
    def root_node(self) -> Node:
        return self.graph.node(self.root)


def match(pattern: Pattern, graph: Graph, node: int) -> Match | None:
    """The match of `pattern` rooted at `node`, or None."""
    captures = pattern._first(graph, node, {})
    return None if captures is None else Match(graph, node, captures)


def _match(pattern: Pattern, graph: Graph, node: int, captures: dict[str, int]) -> Iterator[dict[str, int]]:
    """Every way `pattern` matches at `node` extending `captures` (backtracking over commutation)."""
    payload = graph.node(node)
    if pattern.ops is not None and payload.op not in pattern.ops:
        return
    if pattern.group is not None and not ops.in_group(payload.op, pattern.group):
        return
    if pattern.name is not None and captures.get(pattern.name, node) != node:
        return
    if not all(predicate(graph, node) for predicate in pattern.where):
        return
    if pattern.name is not None:
        captures = {**captures, pattern.name: node}
    if pattern.operands is None:
        yield captures
        return
    operands = graph.operands(node)
    if len(operands) != len(pattern.operands):
        return
    orders = [operands]
    if len(operands) == 2 and ops.in_group(payload.op, ops.COMMUTATIVE) and operands[0] != operands[1]:
        orders.append(operands[::-1])
    for order in orders:
        yield from _match_all(pattern.operands, order, graph, captures)


def _match_all(patterns: tuple[Pattern, ...], nodes: list[int], graph: Graph,
               captures: dict[str, int]) -> Iterator[dict[str, int]]:
    if not patterns:
        yield captures
        return
    for extended in _match(patterns[0], graph, nodes[0], captures):
        yield from _match_all(patterns[1:], nodes[1:], graph, extended)


def _compile(pattern: Pattern) -> Callable[[Graph, int, dict[str, int]], dict[str, int] | None]:
    """A function giving the first match of `pattern` (the first that `_match` yields) without
    generators. When every operand pattern matches in at most one way (`_single`), the first match
    is found by matching the operands in order, then, for a commutative op, in the other order: as
    `_match` does, and with nothing to backtrack into. Otherwise `_match` itself is asked.
    The checks run in `_match`'s order; a leading `ungrouped` is read from the payload at hand. An
    order of the operands in which some operand has an op its pattern does not name is skipped before
    any operand is matched: its matcher would fail there whatever came before (predicates only read)."""
    if pattern.operands is not None and not all(operand._single for operand in pattern.operands):
        def first_by_search(graph: Graph, node: int, captures: dict[str, int]) -> dict[str, int] | None:
            return next(_match(pattern, graph, node, captures), None)
        return first_by_search
    names, group, name = pattern.ops, pattern.group, pattern.name
    need_ungrouped = pattern.where[:1] == (ungrouped,)
    where = pattern.where[1:] if need_ungrouped else pattern.where
    operands = None if pattern.operands is None else tuple(operand._first for operand in pattern.operands)
    # The op names each operand pattern requires (None: any), which its matcher checks first.
    required = None if pattern.operands is None else tuple(operand.ops for operand in pattern.operands)
    if required is not None and all(names is None for names in required):
        required = None
    if names is None and group is None and not pattern.where and operands is None:
        def first_of_any(graph: Graph, node: int, captures: dict[str, int]) -> dict[str, int] | None:
            if name is None:  # any value: only a capture to check, no payload to read
                return captures
            bound = captures.get(name, node)
            return {**captures, name: node} if bound == node else None
        return first_of_any

    def first(graph: Graph, node: int, captures: dict[str, int]) -> dict[str, int] | None:
        payload = graph.node(node)
        if names is not None and payload.op not in names:
            return None
        if group is not None and not ops.in_group(payload.op, group):
            return None
        if name is not None and captures.get(name, node) != node:
            return None
        if need_ungrouped and payload.group is not None:
            return None
        for predicate in where:
            if not predicate(graph, node):
                return None
        if name is not None:
            captures = {**captures, name: node}
        if operands is None:
            return captures
        found = graph.operands(node)
        if len(found) != len(operands):
            return None
        result = None
        if required is None or _may_match(required, found, graph):
            result = _first_all(operands, found, graph, captures)
        if result is None and len(found) == 2 and found[0] != found[1] and ops.in_group(payload.op, ops.COMMUTATIVE):
            swapped = found[::-1]
            if required is None or _may_match(required, swapped, graph):
                result = _first_all(operands, swapped, graph, captures)
        return result
    return first


def _may_match(required: tuple[frozenset[str] | None, ...], nodes: list[int], graph: Graph) -> bool:
    """Whether each of `nodes` has an op its operand pattern allows (None: any op)."""
    for names, node in zip(required, nodes):
        if names is not None and graph.node(node).op not in names:
            return False
    return True


def _first_all(matchers: tuple[Callable[[Graph, int, dict[str, int]], dict[str, int] | None], ...],
               nodes: list[int], graph: Graph, captures: dict[str, int] | None) -> dict[str, int] | None:
    for matcher, node in zip(matchers, nodes):
        captures = matcher(graph, node, captures)
        if captures is None:
            return None
    return captures


# ----------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Rule:
    """A pattern and the function that rewrites its matches.

    `depth` is a promise that lets the driver skip unchanged nodes (see `apply_rules`): the pattern's
    predicates, the guard and the function read only the payloads of the root and of the nodes up to
    `depth` operand steps below it and the operand lists of the nodes above that (never uses, outputs
    or other nodes), and change the graph only through the `Rewriter`. None (the default) promises
    nothing: every sweep then tries the rule on every node.
    """

    pattern: Pattern
    apply: Callable[[Rewriter, Match], int | None]
    name: str = ""
    guard: Callable[[Match], bool] | None = None  # a condition across captures
    depth: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.apply.__name__.strip("_").replace("_", "-"))
        if self.depth is not None and self.depth < self.pattern.depth:
            raise ValueError(f"rule '{self.name}': depth {self.depth} is less than its pattern's depth "
                             f"{self.pattern.depth}")


class RuleSet:
    """An ordered collection of rules; `a + b` is a rule set trying a's rules before b's."""

    def __init__(self, *rules: Rule | RuleSet) -> None:
        self.rules: list[Rule] = []
        for rule in rules:
            self.rules.extend(rule.rules if isinstance(rule, RuleSet) else [rule])
        self._by_op: dict[str, list[Rule]] = collections.defaultdict(list)
        self._any: list[Rule] = []
        for index, rule in enumerate(self.rules):
            roots = rule.pattern.root_ops()
            if roots is None:
                self._any.append(rule)
            for name in roots or ():
                self._by_op[name].append(rule)
        self._order = {id(rule): i for i, rule in enumerate(self.rules)}
        self._for_op: dict[str, list[Rule]] = {}  # asked for every node of every sweep
        depths = [rule.depth for rule in self.rules]
        # How far a change reaches up to the roots whose rules could see it; None: any root.
        self.depth: int | None = None if None in depths else max(depths, default=0)

    def __add__(self, other: RuleSet | Rule) -> RuleSet:
        return RuleSet(self, other)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def for_op(self, name: str) -> list[Rule]:
        """The rules whose root may be an op `name`, in rule-set order (a list not to be changed)."""
        if name not in self._for_op:
            chosen = self._by_op.get(name, []) + self._any
            self._for_op[name] = sorted(chosen, key=lambda rule: self._order[id(rule)])
        return self._for_op[name]


class Rewriter:
    """What a rule's function may do to the graph while rewriting one match."""

    def __init__(self, graph: Graph, rule: Rule, root: int, ctx: Any = None) -> None:
        self.graph = graph
        self.rule = rule
        self.root = root
        self.ctx = ctx
        self.changed = False
        self.regrouped: list[int] = []  # nodes whose payload `fuse` changed

    def add(self, op_name: str, operands: Iterable[int], attrs: dict[str, Any] | None = None,
            type: Any = None) -> int:
        """A new node (type inferred from the operands), located and grouped like the root."""
        root = self.graph.node(self.root)
        try:
            node = self.graph.add(op_name, list(operands), attrs, type=type, loc=root.loc, group=root.group)
        except ops.OpError as error:
            raise RewriteError(f"rule '{self.rule.name}' built an invalid {op_name}: {error}") from None
        self.changed = True
        return node

    def constant(self, value: float | int | bool, type: Any) -> int:
        return self.add("constant", [], {"value": value}, type=type)

    def fuse(self, members: Iterable[int]) -> int | None:
        """Put `members` (all ungrouped) in one new fusion group; the group id, or None when
        `classify_group` refuses them (the reason goes to --explain-fusion)."""
        members = sorted(set(members))
        if any(self.graph.node(n).group is not None for n in members):
            return None
        try:
            info = classify_group(self.graph, members)
        except GroupError as error:
            self._log_fusion(members, None, str(error))
            return None
        group = self.ctx.new_group_id(self.graph) if self.ctx is not None else _fresh_group(self.graph)
        for node in members:
            self.graph.set_node(node, self.graph.node(node).replace(group=group))
        self.regrouped.extend(members)
        self.changed = True
        self._log_fusion(members, group, f"{info.kind} group by rule '{self.rule.name}'")
        return group

    def _log_fusion(self, members: list[int], group: int | None, reason: str) -> None:
        if self.ctx is None or not hasattr(self.ctx, "log_fusion"):
            return
        from passes.context import FusionDecision
        from passes.fusion_common import node_label
        inside = set(members)
        for consumer in members:
            for producer in dict.fromkeys(self.graph.operands(consumer)):
                if producer in inside:
                    self.ctx.log_fusion(FusionDecision(
                        self.ctx.current_pass or self.rule.name, producer, consumer,
                        node_label(self.graph, producer), node_label(self.graph, consumer),
                        "fused" if group is not None else "not fused", reason,
                        None if group is not None else "group-contract", group))


class _WouldChange(Exception):
    """Raised by a `_DryRewriter` where a rule's function starts to change the graph."""


class _DryRewriter(Rewriter):
    """A Rewriter that tells whether a rule would change the graph, without changing it."""

    def add(self, op_name: str, operands: Iterable[int], attrs: dict[str, Any] | None = None,
            type: Any = None) -> int:
        raise _WouldChange()

    def fuse(self, members: Iterable[int]) -> int | None:
        raise _WouldChange()


def _fresh_group(graph: Graph) -> int:
    return max((node.group for _, node in graph.nodes() if node.group is not None), default=-1) + 1


# ----------------------------------------------------------------------------------------------
# The greedy driver


@dataclass
class RewriteResult:
    graph: Graph
    applied: collections.Counter = field(default_factory=collections.Counter)  # rule name -> count
    iterations: int = 0
    removed: int = 0  # dead values removed

    @property
    def total(self) -> int:
        return sum(self.applied.values())

    def summary(self) -> str:
        if not self.applied:
            return "no rewrites"
        by_rule = ", ".join(f"{name} {count}" for name, count in sorted(self.applied.items()))
        noun = "rewrite" if self.total == 1 else "rewrites"
        return f"{self.total} {noun} ({by_rule}), {self.removed} dead {'value' if self.removed == 1 else 'values'} removed"


def apply_rules(graph: Graph, rules: RuleSet | Iterable[Rule], *, ctx: Any = None, max_iterations: int = 32,
                report: bool = True) -> RewriteResult:
    """Rewrite a copy of `graph` with `rules` until nothing changes (see the module docstring).

    With a pass context and `report`, the counts become the current pass's statistics line.
    """
    rules = rules if isinstance(rules, RuleSet) else RuleSet(*rules)
    result = RewriteResult(graph.copy())
    g = result.graph
    # With rules of bounded depth: the nodes where no rule fired when last tried and whose payload and
    # operands (to that depth) have not changed since. Trying them again would give the same answer.
    settled: set[int] | None = None if rules.depth is None else set()
    for iteration in range(1, max_iterations + 1):
        fired: collections.Counter = collections.Counter()
        if settled is not None and iteration > 1 and not _may_fire(g, rules, settled, ctx):
            # No rule fires anywhere, so this sweep changes nothing (and the previous sweep's dead-value
            # removal left nothing to remove): the sweep a full driver would run ends here too.
            result.iterations = iteration
            break
        present, users = g.nx._node, g.nx._succ  # networkx's dicts: `node in g`, the node's consumers
        for node in g.topological_order():
            if settled is not None and node in settled:
                continue
            if node not in present or (not users[node] and not g.is_output(node)):  # no uses: dead
                continue
            applied = _rewrite_node(g, rules, node, ctx)
            if applied is None:
                if settled is not None:
                    settled.add(node)
                continue
            name, changed = applied
            fired[name] += 1
            if settled is not None:
                _unsettle(g, changed, rules.depth, settled)
        result.removed += g.remove_dead()
        result.iterations = iteration
        if not fired:
            break
        result.applied.update(fired)
    else:
        names = ", ".join(sorted(fired))
        raise RewriteError(f"the rewrite rules did not converge after {max_iterations} sweeps; still firing: "
                           f"{names}")
    if ctx is not None and report and hasattr(ctx, "report"):
        ctx.report(result.summary(), rewrites=result.total, removed=result.removed, **{
            name.replace("-", "_"): count for name, count in result.applied.items()})
    return result


def _rewrite_node(graph: Graph, rules: RuleSet, node: int, ctx: Any) -> tuple[str, list[int]] | None:
    """Apply the first rule that matches at `node`: its name and the nodes whose operands or payload
    changed (the consumers now reading the replacement, the regrouped nodes), or None when none applied."""
    for rule in rules.for_op(graph.node(node).op):  # as `_matching_rules`, without a generator per node
        found = _match_rule(graph, rule, node)
        if found is None:
            continue
        rewriter = Rewriter(graph, rule, node, ctx)
        replacement = rule.apply(rewriter, found)
        if replacement is not None and replacement != node:
            consumers = list(graph.nx._succ[node])
            _replace(graph, rule, node, replacement)
            return rule.name, consumers + rewriter.regrouped
        if rewriter.changed:
            return rule.name, [node] + rewriter.regrouped
    return None


def _matching_rules(graph: Graph, rules: RuleSet, node: int) -> Iterator[tuple[Rule, Match]]:
    """The rules whose pattern matches at `node` and whose guard accepts the match, in order."""
    for rule in rules.for_op(graph.node(node).op):
        found = _match_rule(graph, rule, node)
        if found is not None:
            yield rule, found


def _match_rule(graph: Graph, rule: Rule, node: int) -> Match | None:
    """`rule`'s match at `node` when its pattern matches there and its guard accepts it, else None."""
    captures = rule.pattern._first(graph, node, {})
    if captures is None:
        return None
    found = Match(graph, node, captures)
    return found if rule.guard is None or rule.guard(found) else None


def _unsettle(graph: Graph, changed: list[int], depth: int, settled: set[int]) -> None:
    """Forget the settled nodes whose rules could see a change at `changed`: those nodes and their
    consumers up to `depth` steps above (a rule looks at most `depth` steps below its root)."""
    frontier = set(changed)
    for _ in range(depth + 1):
        settled.difference_update(frontier)
        frontier = {user for node in frontier if node in graph for user in graph.nx._succ[node]}


def _may_fire(graph: Graph, rules: RuleSet, settled: set[int], ctx: Any) -> bool:
    """Whether a sweep would fire any rule: each live node not settled is tried on the graph as it is
    with a `_DryRewriter`. When none would fire, a real sweep would see this same graph at every node
    (nothing changes before it gets there) and fire nothing. Anything unusual (a rule that starts to
    change the graph, returns a replacement, or raises) answers yes, and the real sweep takes over."""
    for node in list(graph.nx._node):
        if node in settled or (not graph.nx._succ[node] and not graph.is_output(node)):
            continue
        try:
            for rule, found in _matching_rules(graph, rules, node):
                replacement = rule.apply(_DryRewriter(graph, rule, node, ctx), found)
                if replacement is not None and replacement != node:
                    return True
        except Exception:  # noqa: BLE001 - _WouldChange, or an error the real sweep will raise in its place
            return True
        settled.add(node)
    return False


def _replace(graph: Graph, rule: Rule, root: int, replacement: int) -> None:
    if replacement not in graph:
        raise RewriteError(f"rule '{rule.name}' returned %{replacement}, which is not in the graph")
    old, new = graph.node(root).type, graph.node(replacement).type
    if old != new:
        raise RewriteError(f"rule '{rule.name}' replaced a {graph.node(root).op} of type {old} with a "
                           f"{graph.node(replacement).op} of type {new}; a replacement must keep the type")
    if nx.has_path(graph.nx, root, replacement):
        raise RewriteError(f"rule '{rule.name}' replaced a {graph.node(root).op} with a value computed from it; "
                           "that would make the graph cyclic")
    graph.replace_uses(root, replacement)
