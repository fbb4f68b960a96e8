"""Counting a graph IR program kernel by kernel, from its fusion groups (`targets.counts.count_graph`).

Kernels: one per fusion group (`Node.group`); every operation outside a group is a kernel of its own,
except views, constants and iotas, which targets fold into their consumers' loads (a view of a stacked
weight, `wq[l]`, reads only the slice). A folded node that is itself a program output is materialised
by a copy kernel. Values are named by parameter name or `%ID`.

Per kernel: FLOPs from the operation formulas of `targets.counts`; bytes read per input (the bytes its
view chain selects, at most the base value's size) and written per output; the bytes fusion keeps in
registers (each internal value's write plus one read per internal consumer), summed for the program.
Sparse weights (`<2:4>`, `<csr>`, ...) occupy their non-zeros plus indices when the density is known
(data bound at compile time, or the N:M pattern); `weight_density` tells targets that skip zeros.
One topological pass over the graph: the time grows linearly with the program.
"""

from __future__ import annotations

import math

import numpy as np

from ir import ops
from ir.dtypes import DType
from ir.graph import Graph
from targets.counts import (BufferTraffic, KernelCounts, ProgramCounts, dominant_dtype, matmul_shape,
                            node_flops)
from targets.frozen_graph import FrozenGraph

_FOLDED_SOURCES = ("constant", "iota")
# The op table is complete once `ir.ops` is imported (ops register there only): the groups asked about for
# every node of a program, read once as sets.
_VIEW_OPS = frozenset(ops.ops_in_group(ops.VIEW))
_MATMUL_OPS = frozenset(ops.ops_in_group(ops.MATMUL))
_REDUCTION_OPS = frozenset(ops.ops_in_group(ops.REDUCTION))


class GraphCounter:
    def __init__(self, frozen: FrozenGraph) -> None:
        """`frozen`: the graph to count, with its lookups precomputed (`targets.counts.frozen_graph`)."""
        graph = frozen.graph
        self.graph = graph
        self.order = frozen.order
        self.node = frozen.payloads
        self.operands = frozen.operand_lists
        self.users: dict[int, list[int]] = {n: [] for n in self.order}
        for n in self.order:
            for operand in dict.fromkeys(self.operands[n]):
                self.users[operand].append(n)
        self.program_outputs = set(graph.outputs)
        self.sizes: dict[str, float] = {}
        self.roles: dict[str, str] = {}
        self._base: dict[int, tuple[int, float] | None] = {}
        # per value: its name, `storage` and bytes (fixed by the graph), worked out once, asked once per read
        self._names: dict[int, str] = {}
        self._storage: dict[int, tuple[float, float]] = {}
        self._nbytes: dict[int, int] = {}

    # -- values ---------------------------------------------------------------------------------

    def is_folded(self, n: int) -> bool:
        node = self.node[n]
        if node.group is not None or n in self.program_outputs:
            return False
        return node.op in _VIEW_OPS or node.op in _FOLDED_SOURCES

    def name(self, n: int) -> str:
        name = self._names.get(n)
        if name is None:
            node = self.node[n]
            name = self._names[n] = node.attr("name") if node.op == "param" else f"%{n}"
        return name

    def base(self, n: int) -> tuple[int, float] | None:
        """(the value a folded chain reads, the bytes it selects), None for inline constants and iotas."""
        if n in self._base:
            return self._base[n]
        node = self.node[n]
        if not self.is_folded(n):
            result: tuple[int, float] | None = (n, float(self.nbytes(n)))
        elif node.op in _FOLDED_SOURCES:
            result = None
        else:
            inner = self.base(self.operands[n][0])
            result = None if inner is None else (inner[0], min(inner[1], float(self.nbytes(n))))
        self._base[n] = result
        return result

    def storage(self, n: int) -> tuple[float, float]:
        """(fraction of its dense bytes a value occupies in memory, density of non-zeros): below 1 only
        for sparse weights, from the data bound at compile time or an N:M format; other sparse formats
        without data count dense (an upper bound, noted on the kernel)."""
        found = self._storage.get(n)
        if found is None:
            found = self._storage[n] = self._stored_fraction(n)
        return found

    def _stored_fraction(self, n: int) -> tuple[float, float]:
        node = self.node[n]
        fmt = node.type.format
        if node.op != "param" or fmt.is_dense:
            return 1.0, 1.0
        data = self.graph.weight_data.get(node.attr("name"))
        if data is not None:
            density = float(np.count_nonzero(data)) / max(1, data.size)
        elif fmt.kind == "nm":
            density = fmt.n / fmt.m
        else:
            return 1.0, 1.0
        itemsize = node.type.dtype.itemsize
        stored = density  # the fraction of entries the format keeps
        if fmt.kind == "nm":
            index = math.ceil(math.log2(fmt.m)) / 8  # bytes of position per kept value
        elif fmt.kind == "bsr":
            index = 4 / (fmt.block[0] * fmt.block[1])  # one i32 column index per block
            if data is not None:  # whole blocks are stored, zeros included (targets.sparse_cost)
                from ir.sparse import block_density
                stored = block_density(np.asarray(data), fmt.block)
        else:
            index = 4.0  # one i32 index per non-zero (row pointers are negligible)
        return min(1.0, stored * (1 + index / itemsize)), density

    def role(self, n: int) -> str:
        node = self.node[n]
        if node.op == "param":
            return "weight" if node.attr("weight") else "input"
        return "output" if n in self.program_outputs else "intermediate"

    # -- kernels --------------------------------------------------------------------------------

    def units(self) -> list[list[int]]:
        """Member lists of the kernels, in the topological order of their first member."""
        groups: dict[int, list[int]] = {}
        units: list[list[int]] = []
        for n in self.order:
            node = self.node[n]
            if node.group is not None:
                if node.group not in groups:
                    groups[node.group] = []
                    units.append(groups[node.group])
                groups[node.group].append(n)
            elif node.op != "param" and not self.is_folded(n):
                units.append([n])
        return units

    def kernel(self, members: list[int]) -> KernelCounts:
        member_set = set(members)
        reads: dict[str, float] = {}
        flops = transcendentals = fused_away = 0.0
        best_flops, dtype = -1.0, self.node[members[-1]].type.dtype
        anchor = members[0]
        sparse: list[tuple[str, str, float, bool]] = []
        kind = "elementwise"
        matmul = None
        leaving = []  # the members whose values leave the kernel (`_leaves`), in member order
        for n in members:
            node = self.node[n]
            op = node.op
            operand_types = [self.node[o].type for o in self.operands[n]]
            f, t = node_flops(op, node.type, operand_types)
            flops += f
            transcendentals += t
            if op in _MATMUL_OPS:
                kind, anchor = "matmul", n
                matmul = matmul_shape(node.type, operand_types[0])
            elif op in _REDUCTION_OPS and kind not in ("matmul", "reduction"):
                kind, anchor = "reduction", n
            elif op == "concat" and kind == "elementwise":
                kind, anchor = "copy", n
            if f > best_flops:
                best_flops, dtype = f, node.type.dtype
            is_view = op in _VIEW_OPS
            for operand in self.operands[n]:
                if operand in member_set:
                    continue
                base = self.base(operand)
                if base is not None:
                    key = self.name(base[0])
                    selected = base[1]
                    if is_view:  # a view inside the group selects what it reads
                        selected = min(selected, float(self.nbytes(n)))
                    fraction, density = self.storage(base[0])
                    reads[key] = max(reads.get(key, 0.0), selected * fraction)
                    self._record(base[0])
                    if not self.node[base[0]].type.format.is_dense:
                        sparse.append((key, str(self.node[base[0]].type.format), density, fraction < 1.0))
            leaves = self._leaves(n, member_set)
            if leaves:
                leaving.append(n)
            elif not is_view and op not in _FOLDED_SOURCES:
                internal_users = [u for u in self.users[n] if u in member_set]
                if internal_users:
                    fused_away += self.nbytes(n) * (1 + len(internal_users))
        if kind == "matmul":
            dtype = self.node[self.operands[anchor][0]].type.dtype
        traffic = [BufferTraffic(name, self.roles[name], size, 0.0, size, self.sizes[name])
                   for name, size in reads.items()]
        writes = []
        for n in leaving:
            self._record(n)
            name = self.name(n)
            writes.append(name)
            size = float(self.nbytes(n))
            traffic.append(BufferTraffic(name, self.roles[name], 0.0, size, size, size))
        parallel = max((self.node[n].type.size for n in leaving), default=1)
        loc = self.node[anchor].loc
        notes = [f"from {loc}"] if loc is not None else []
        for name, fmt, density, stored_sparse in sparse:
            notes.append(f"{name} is {fmt} with {density:.0%} non-zeros, stored as non-zeros and indices"
                         if stored_sparse else f"{name} is {fmt} without bound data: counted dense (an upper bound)")
        density = min((d for _, _, d, _ in sparse), default=1.0)
        terms = None
        if kind == "matmul" and sparse:  # per-format terms for the models that price sparse kernels
            from targets.sparse_cost import matmul_terms
            terms = matmul_terms(self.graph, anchor)
        return KernelCounts(name=f"{self.node[anchor].op}%{anchor}", kind=kind, dtype=dtype, flops=flops,
                            flops_useful=flops, transcendentals=transcendentals, index_ops=0.0,
                            traffic=tuple(traffic), iterations=float(parallel), parallel=float(parallel),
                            matmul=matmul, reads=tuple(reads), writes=tuple(writes), notes=tuple(notes),
                            weight_density=density, sparse=terms), fused_away

    def _leaves(self, n: int, member_set: set[int]) -> bool:
        return n in self.program_outputs or not member_set.issuperset(self.users[n])

    def nbytes(self, n: int) -> int:
        """`TensorType.nbytes` of a value, worked out once (kernels ask for it several times)."""
        size = self._nbytes.get(n)
        if size is None:
            size = self._nbytes[n] = self.node[n].type.nbytes
        return size

    def _record(self, n: int) -> None:
        name = self.name(n)
        if name not in self.sizes:
            self.sizes[name] = float(self.nbytes(n)) * self.storage(n)[0]
            self.roles[name] = self.role(n)

    def count(self) -> ProgramCounts:
        kernels = []
        fused_away = 0.0
        for members in self.units():
            kernel, saved = self.kernel(members)
            kernels.append(kernel)
            fused_away += saved
        for n in self.graph.params:
            self._record(n)
        outputs = []
        for n in self.graph.outputs:
            base = self.base(n)
            if base is not None:
                self._record(base[0])
                outputs.append(self.name(base[0]))
        kernels = tuple(kernels)
        return ProgramCounts(self.graph.name, "graph", kernels, dict(self.sizes), dict(self.roles),
                             tuple(outputs), fused_away, dict(self.graph.attributes),
                             dominant_dtype(kernels, _first_dtype(self.graph)))


def _first_dtype(graph: Graph) -> DType:
    for n in graph.params:
        return graph.node(n).type.dtype
    return DType.F32
