"""dce (graph IR): dead-code elimination; operations whose values reach no program output are removed.

Legal because operations have no side effects: a value no output depends on cannot change a result.
Parameters stay even when unused, since they are the program's signature.

A graph without dead values (`Graph.has_dead_values`, one look at each node) is returned as it is,
not copied.
"""

from __future__ import annotations

from ir.graph import Graph
from passes.context import PassContext, plural
from passes.registry import Pass, register_pass


@register_pass
class DeadCodeElimination(Pass):
    name = "dce"
    summary = "remove operations whose values reach no program output"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        removed = 0
        if graph.has_dead_values():
            graph = graph.copy()
            removed = graph.remove_dead()
        ctx.report(f"{plural(removed, 'dead node')} removed", removed=removed)
        return graph
