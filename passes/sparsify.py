"""sparsify (graph IR): store each weight bound to data in the format the target's cost model prices fastest.

For every `@weight` parameter with data (`--weights`, `Graph.weight_data`) that only matmuls read
(directly or through a 2-D transpose), the pass measures the data (`ir.sparse.analyze`: density,
non-zero blocks per block shape, the N:M patterns it conforms to), lists the formats that can hold it
(dense; CSR; BSR for block shapes whose non-zero blocks hold at most twice the non-zeros; N:M for
each pattern it conforms to) and prices each one on the selected target: a graph of just the
weight's matmuls, compiled for pricing and estimated by the target's own cost model
(`Target.estimate`). The fastest wins; a tie (within `min-gain`) keeps dense. The parameter's type
then carries the chosen format; its data is unchanged, and the target bakes it into what it builds.

Which formats a target prices and runs is data on the target: `sparse_formats`, the formats its code
runs and its model prices, and optionally `sparse_formats_priced`, formats its model prices but its
code does not run yet (chosen only when compiling for pricing, as `niche compare` does). A target
without the attributes falls back to `FALLBACK` below, which describes the targets whose authors have
not declared them yet; a target in neither prices no sparse format, so its weights stay dense, and
the statistics say so. Every decision and its reason (the prices) are in `--pass-stats`.

Legal because a format never changes a tensor's values (`ir.types`): the reference interpreter gives
the same results before and after; only storage and cost change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir import ops
from ir.graph import Graph
from ir.sparse import Structure, analyze
from ir.types import Format, TensorType
from passes.context import PassContext, plural
from passes.registry import Pass, register_pass

# Formats (kinds) each target runs and prices, for targets that do not declare `sparse_formats` yet
# (see targets/*: the GPU model prices 2:4 B operands on sparse tensor cores at 2x but has no sparse
# kernels; the wafer-scale engine fires only on non-zeros; the LPU has no sparsity speed-up).
FALLBACK: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # target -> (runs, priced only)
    "gpu": ((), ("nm",)),
    "wse": (("csr", "csc", "bsr", "nm"), ()),
    "lpu": ((), ()),
}


@dataclass(frozen=True)
class Options:
    target: str | None = None  # price on this target instead of the one being compiled for
    min_gain: float = 1.02  # a sparse format must be this many times faster than dense to be chosen
    block_shapes: str = "4x4+8x8+16x16+32x32"  # BSR block shapes to try ('+' between them)

    def __post_init__(self) -> None:
        if self.min_gain < 1.0:
            raise ValueError(f"min-gain must be at least 1, got {self.min_gain}")
        self.blocks()

    def blocks(self) -> tuple[tuple[int, int], ...]:
        shapes = []
        for text in filter(None, self.block_shapes.split("+")):
            try:
                r, c = (int(part) for part in text.lower().split("x"))
            except ValueError:
                raise ValueError(f"block-shapes: '{text}' is not RxC (like 16x16)") from None
            if r < 1 or c < 1:
                raise ValueError(f"block-shapes: '{text}' must be positive")
            shapes.append((r, c))
        return tuple(shapes)


def target_formats(target: object) -> tuple[frozenset[str], frozenset[str]]:
    """(formats the target runs, formats its cost model prices) as kinds (csr, csc, bsr, nm)."""
    runs = getattr(target, "sparse_formats", None)
    priced_only = getattr(target, "sparse_formats_priced", ())
    if runs is None:
        runs, priced_only = FALLBACK.get(getattr(target, "name", ""), ((), ()))
    return frozenset(runs), frozenset(runs) | frozenset(priced_only)


def matmul_uses(graph: Graph, param: int) -> list[tuple[int, int, bool]] | None:
    """(matmul, operand index, through a transpose) for every use of `param`; None when some use is
    not a matmul (or a 2-D transpose read only by matmuls)."""
    found = []
    for user, index in graph.uses(param):
        node = graph.node(user)
        if ops.in_group(node.op, ops.MATMUL):
            found.append((user, index, False))
        elif node.op == "transpose" and node.attr("perm") == (1, 0) and not graph.is_output(user):
            for second, second_index in graph.uses(user):
                if not ops.in_group(graph.node(second).op, ops.MATMUL):
                    return None
                found.append((second, second_index, True))
        else:
            return None
    return found


def consumer_graph(graph: Graph, param: int, fmt: Format, uses: list[tuple[int, int, bool]]) -> Graph:
    """A graph of just the matmuls reading `param`, with the parameter stored in `fmt` (for pricing)."""
    node = graph.node(param)
    name = node.attr("name")
    mini = Graph(f"{graph.name}_{name}")
    weight = mini.add_param(name, TensorType(node.type.shape, node.type.dtype, fmt), weight=True)
    mini.weight_data[name] = graph.weight_data[name]
    transposed = None
    for number, (matmul, index, through) in enumerate(uses):
        operand = weight
        if through:
            if transposed is None:
                transposed = mini.add("transpose", [weight], {"perm": (1, 0)})
            operand = transposed
        other = graph.operands(matmul)[1 - index]
        other_type = graph.node(other).type
        dense = mini.add_param(f"operand{number}", TensorType(other_type.shape, other_type.dtype))
        operands = [operand, dense] if index == 0 else [dense, operand]
        mini.outputs.append(mini.add("matmul", operands))
    mini.dims = dict(graph.dims)
    return mini


def candidates(structure: Structure, options: Options, formats: frozenset[str]) -> list[Format]:
    """The formats worth pricing for a weight of this structure, dense first."""
    found = [Format()]
    if structure.nnz == structure.size:
        return found
    if "csr" in formats:
        found.append(Format("csr"))
    if "bsr" in formats:
        fills = dict(structure.block_density)
        for block in options.blocks():
            if block in fills and fills[block] <= 2 * structure.density:
                found.append(Format("bsr", block=block))
    if "nm" in formats:
        for n, m in structure.nm:
            if n < m:
                found.append(Format("nm", n=n, m=m))
    return found


@register_pass
class Sparsify(Pass):
    name = "sparsify"
    summary = "store each bound weight dense, CSR, BSR or N:M: whichever the target's cost model prices fastest"
    Options = Options

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        from targets.base import CompileOptions, TargetError, get_target
        bound = [p for p in graph.params if graph.node(p).attr("name") in graph.weight_data
                 and graph.node(p).type.rank == 2]
        if not bound:
            ctx.report("no weights bound to data: nothing to decide", changed=0, weights=0)
            return graph
        compile_options = ctx.options if ctx.options is not None else CompileOptions()
        name = self.options.target or compile_options.target
        try:
            target = get_target(name)
        except TargetError as error:
            ctx.report(f"cannot price on '{name}' ({error}): every weight kept as declared", changed=0,
                       weights=len(bound))
            return graph
        runs, priced = target_formats(target)
        usable = priced if compile_options.for_pricing else runs
        if not callable(getattr(target, "estimate", None)) or not usable:
            why = ("has no cost model" if not callable(getattr(target, "estimate", None)) else
                   "prices no sparse format" if not priced else
                   f"runs none of the sparse formats its model prices ({', '.join(sorted(priced))}); "
                   "compile for pricing (niche compare) to see them")
            graph = graph.copy()
            changed = 0
            for param in bound:
                node = graph.node(param)
                if not node.type.format.is_dense:
                    graph.set_node(param, node.replace(type=TensorType(node.type.shape, node.type.dtype)))
                    changed += 1
            ctx.report(f"target '{name}' {why}: {plural(len(bound), 'bound weight')} kept dense", changed=changed,
                       weights=len(bound))
            return graph
        graph = graph.copy()
        lines, changed = [], 0
        for param in bound:
            line, new_format = self._decide(graph, param, target, name, usable, compile_options)
            lines.append(line)
            node = graph.node(param)
            if new_format is not None and new_format != node.type.format:
                graph.set_node(param, node.replace(type=TensorType(node.type.shape, node.type.dtype, new_format)))
                changed += 1
        ctx.report(f"{plural(changed, 'weight')} changed format on '{name}':" + "".join(f"\n  {l}" for l in lines),
                   changed=changed, weights=len(bound))
        return graph

    def _decide(self, graph: Graph, param: int, target: object, name: str, formats: frozenset[str],
                options: object) -> tuple[str, Format | None]:
        from targets.base import CompileOptions, TargetError
        node = graph.node(param)
        weight = node.attr("name")
        uses = matmul_uses(graph, param)
        if not uses:
            what = "is read by an operation other than a matmul" if uses is None else "is not read"
            return f"{weight}: {what}: kept {node.type.format}", None
        data = np.asarray(graph.weight_data[weight])
        structure = analyze(data, tuple(self.options.blocks()))
        prices: list[tuple[float, Format]] = []
        for fmt in candidates(structure, self.options, formats):
            mini = consumer_graph(graph, param, fmt, uses)
            pricing = CompileOptions(target=name, extra=dict(getattr(options, "extra", {}) or {}), for_pricing=True)
            try:
                report = target.estimate(target.compile(mini, pricing))
            except TargetError as error:
                return f"{weight}: '{name}' cannot price it ({error}): kept {node.type.format}", None
            if report.latency is not None:
                prices.append((report.latency, fmt))
        if not prices:
            return f"{weight}: '{name}' prices no candidate: kept {node.type.format}", None
        dense_time = next(time for time, fmt in prices if fmt.is_dense)
        best_time, best = min(prices, key=lambda item: item[0])
        if best_time * self.options.min_gain > dense_time:
            best_time, best = dense_time, Format()
        listed = ", ".join(f"{fmt if not fmt.is_dense else 'dense'} {_ms(time)}" for time, fmt in prices)
        shape = "x".join(map(str, data.shape))
        return (f"{weight}: {shape}, {structure.density:.1%} non-zeros ({structure.kind()}) -> "
                f"{best if not best.is_dense else 'dense'} ({name} prices {listed})"), best


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-4 else f"{seconds * 1e6:.3g} us"
