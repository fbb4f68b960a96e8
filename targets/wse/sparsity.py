"""How many of a weight's elements a PE stores and fires on: unstructured sparsity on the wafer.

A WSE PE is dataflow-triggered: it does work only for the weights it holds, so a weight stored as its
non-zeros (each with a small index) costs memory and FMACs in proportion to its non-zeros. The count
comes, in order, from the data bound to the weight at compile time (`Graph.weight_data`, so passes see
the real zeros), else from the declared format (`N:M` holds N of every M; CSR/CSC/BSR hold the
`density` option, assumed 1.0 when not given), else the weight is dense. A weight is stored sparse when
that takes fewer bytes than storing it dense (values plus `sparse_index_bytes` per non-zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir.graph import Graph
from targets.wse.machine import WseMachine


@dataclass(frozen=True)
class TileStorage:
    elements: int
    nonzeros: int
    sparse: bool
    stored_bytes: int


class Sparsity:
    def __init__(self, graph: Graph, machine: WseMachine, density: float | None = None,
                 ignore: bool = False) -> None:
        if density is not None and not 0.0 <= density <= 1.0:
            raise ValueError(f"density must be between 0 and 1, got {density}")
        self.graph = graph
        self.machine = machine
        self.density = density
        self.ignore = ignore  # every weight dense (to price what sparsity saves)

    def declared_density(self, node: int) -> float | None:
        """The density a weight's format promises when no data is bound; None for a dense format."""
        if self.ignore:
            return None
        fmt = self.graph.node(node).type.format
        if fmt.kind == "nm":
            return fmt.n / fmt.m
        if fmt.kind in ("csr", "csc", "bsr"):
            return 1.0 if self.density is None else self.density
        return None

    def data(self, node: int) -> np.ndarray | None:
        if self.ignore:
            return None
        name = self.graph.node(node).attr("name")
        return self.graph.weight_data.get(name)

    def density_of(self, node: int) -> tuple[float, str]:
        """(fraction of non-zeros, where it comes from) for the whole weight."""
        data = self.data(node)
        if data is not None:
            size = max(1, data.size)
            return float(np.count_nonzero(data)) / size, "bound data"
        declared = self.declared_density(node)
        if declared is None:
            return 1.0, "dense format"
        fmt = self.graph.node(node).type.format
        if fmt.kind == "nm":
            return declared, f"{fmt} format"
        how = "density option" if self.density is not None else "assumed (no data bound, no density option)"
        return declared, f"{fmt} format, {how}"

    def tile(self, node: int, indices: np.ndarray) -> TileStorage:
        """Storage of the elements `indices` of weight `node` on one PE."""
        itemsize = self.graph.node(node).type.dtype.itemsize
        elements = int(indices.size)
        data = self.data(node)
        if data is not None:
            nonzeros = int(np.count_nonzero(np.asarray(data).reshape(-1)[indices]))
        else:
            declared = self.declared_density(node)
            if declared is None:
                return TileStorage(elements, elements, False, elements * itemsize)
            nonzeros = int(round(declared * elements))
        return self.storage(elements, nonzeros, itemsize)

    def storage(self, elements: int, nonzeros: int, itemsize: int) -> TileStorage:
        sparse_bytes = nonzeros * (itemsize + self.machine.sparse_index_bytes)
        dense_bytes = elements * itemsize
        if sparse_bytes < dense_bytes:
            return TileStorage(elements, nonzeros, True, sparse_bytes)
        return TileStorage(elements, elements, False, dense_bytes)
