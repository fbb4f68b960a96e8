"""The reference target: runs the graph with the numpy interpreter (the oracle of every other target)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ir.graph import Graph
from ir.interpreter import run_graph
from targets.base import CompileOptions, TargetError


class ReferenceArtifact:
    emit_kinds: tuple[str, ...] = ()
    description = "the reference interpreter (numpy)"

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def emit(self, kind: str) -> str:
        raise TargetError(f"the ref target emits no '{kind}'; it only runs the graph IR")

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return run_graph(self.graph, inputs)


class ReferenceTarget:
    name = "ref"
    summary = "reference interpreter: executes the graph IR with numpy"

    def __init__(self, variant: str | None = None) -> None:
        if variant is not None:
            raise TargetError(f"the ref target has no variants (got 'ref:{variant}')")

    def compile(self, graph: Graph, options: CompileOptions) -> ReferenceArtifact:
        return ReferenceArtifact(graph)
