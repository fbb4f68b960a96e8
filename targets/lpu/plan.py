"""Which values of a graph live in MEM, which are computed on the fly, and the stages that compute them.

The LPU has no caches: a value is either a tensor in MEM (parameters, compile-time data, results, and
anything several consumers read at different times) or a vector in flight on the streams. Inside a
fusion group (`Node.group`, contract in `ir/groups.py`) an elementwise value with one consumer in the
same group is computed on the fly where that consumer needs it; a matmul whose one consumer is its
elementwise epilogue streams its results straight into the epilogue. Views (transpose, reshape,
broadcast_to, slice, concat) compute nothing: a consumer reads their elements from where they come
from (lane permutations on the SXM), except a transpose that moves the last axis, which crosses lanes
and is materialised through the SXM transposer. Reductions always write their result (one lane per
row) to MEM, so the values that consume it can read it when they need it.

Every other value is materialised by one *stage* (a unit of lowering): `compute` (elementwise or view
values), `reduce`, `matmul` (the matmul and its epilogue), `transpose` (through the SXM transposer).
Subgraphs that depend on no parameter are folded at compile time (the reference interpreter computes
them) and loaded by the host as data, as a compiler for any static dataflow chip does with constants.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from compiler.diagnostics import Diagnostic
from ir import ops
from ir.dtypes import DType
from ir.graph import Graph
from ir.graph_printer import value_names
from ir.interpreter import evaluate_node
from targets.base import TargetError
from targets.counts import frozen_graph
from targets.frozen_graph import FrozenGraph
from targets.lpu.signatures import view_key
from targets.lpu.vectors import VectorLayout
from targets.lpu.views import trace, unravel

FANIN_LIMIT = 4  # a view whose vectors gather from more source vectors goes through the transposer
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A tuple, not a set: membership is then an identity test, where a set would call DType's hash, which
# is computed in Python (`enum`), for every value of the graph.
_ON_CHIP_DTYPES = (DType.F32, DType.F16, DType.BF16, DType.I8, DType.I32, DType.BOOL)


@dataclass
class TensorInfo:
    name: str
    node: int
    layout: VectorLayout
    role: str  # 'input', 'weight', 'data', 'value'
    value: np.ndarray | None = None  # role 'data' when folding evaluated it


@dataclass
class Stage:
    index: int
    kind: str  # 'compute', 'reduce', 'matmul', 'transpose'
    node: int  # the node whose value the stage writes (for the B^T of a matmul: the B operand)
    output: str  # name of the tensor written
    anchor: int | None = None  # 'matmul': the matmul node
    chip: int = 0
    chunk_chips: dict[int, int] = field(default_factory=dict)  # tensor-parallel matmul: N chunk -> chip
    # batch-split matmul: (first, end, chip) ranges of the output's leading axis, and per chip the vector
    # ranges of values it copies in from other chips before it runs (only the slices its batches read)
    batch_chips: tuple[tuple[int, int, int], ...] = ()
    copies: dict[int, dict[str, list[tuple[int, int]]]] = field(default_factory=dict)

    def chip_of_chunk(self, chunk: int) -> int:
        return self.chunk_chips.get(chunk, self.chip)

    def chip_of_batch(self, lead: int) -> int:
        """The chip that computes index `lead` of the output's leading axis."""
        for first, end, chip in self.batch_chips:
            if first <= lead < end:
                return chip
        return self.chip

    def all_chips(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.chunk_chips.values()) | {c for _, _, c in self.batch_chips} | {self.chip}))


# What `partition.read_ranges` and `weight_ranges` found, kept in `Plan.memo`: per tensor, its vector ranges.
KeptRanges = tuple[tuple[str, tuple[tuple[int, int], ...]], ...]


@dataclass
class Plan:
    graph: FrozenGraph
    tensors: dict[str, TensorInfo]
    names: dict[int, str]  # materialised node -> tensor name
    inline: set[int]
    stages: list[Stage]
    precision: dict[int, str]  # matmul -> MXM precision
    bt: dict[int, str | None]  # matmul -> tensor holding B transposed (None: gathered from B on the fly)
    outputs: list[str]
    printed: dict[int, str] = field(default_factory=dict)  # node -> its `--emit graph` name (for comments)
    # what stages and matmul weights read (`partition.read_ranges`, `weight_ranges`), asked again for every
    # placement tried: kept by what it depends on besides the plan (which never changes once made)
    memo: dict[tuple, KeptRanges] = field(default_factory=dict, repr=False, compare=False)

    def is_base(self, node: int) -> bool:
        """Whether views stop at `node` (it is in MEM or computed, not a view of something else)."""
        return node in self.names or not _is_view(self.graph.node(node).op)

    def layout_of(self, node: int) -> VectorLayout:
        """The layout a node's vectors have: its MEM layout if materialised, else the standard one."""
        if node in self.names:
            return self.tensors[self.names[node]].layout
        payload = self.graph.node(node)
        return VectorLayout(payload.type.shape, payload.type.dtype)


# The op table is filled once, when `ir.ops` is imported, so its views can be listed once here: the
# plan, the partitioner and the counter ask whether a node is a view tens of thousands of times.
_VIEW_OPS = frozenset(ops.ops_in_group(ops.VIEW)) | {"concat"}


def _is_view(op: str) -> bool:
    return op in _VIEW_OPS


def _moves_lanes(graph: Graph, node: int) -> bool:
    payload = graph.node(node)
    return payload.op == "transpose" and payload.attr("perm")[-1] != payload.type.rank - 1


def _error(graph: Graph, node: int, message: str) -> TargetError:
    return TargetError([Diagnostic(f"lpu target: {message}", graph.node(node).loc)])


def _precision(graph: Graph, node: int, options: dict) -> str:
    dtype = graph.node(node).type.dtype
    if dtype is DType.F32:
        precision = options.get("mxm_precision", "fp32")
        if precision not in ("fp32", "fp16"):
            raise TargetError(f"lpu target: mxm_precision must be fp32 or fp16, got {precision!r}")
        return precision
    if dtype is DType.F16:
        return "fp16"
    if dtype is DType.BF16:
        return "bf16"
    if dtype is DType.I8:
        return "int8"
    raise _error(graph, node, f"the MXM multiplies int8, fp16 and fp32 (via fp16 passes), not {dtype} "
                              f"(matmul %{node})")


def _off_chip_dtypes(graph: FrozenGraph) -> bool:
    """Whether any value of the graph has a dtype the LPU does not compute with (when none has, `_check_dtypes`
    can only find an empty tensor)."""
    return any(payload.type.dtype not in _ON_CHIP_DTYPES for payload in graph.payloads.values())


def _check_dtypes(graph: Graph, node: int) -> None:
    payload = graph.node(node)
    for value_type in [payload.type] + [graph.node(operand).type for operand in graph.operands(node)]:
        if value_type.dtype not in _ON_CHIP_DTYPES:
            raise _error(graph, node, f"the LPU computes with 8-, 16- and 32-bit types; {payload.op} on "
                                      f"{value_type} is not supported")


def _check_not_empty(graph: Graph, node: int) -> None:
    payload = graph.node(node)
    if payload.type.size == 0:
        raise _error(graph, node, f"{payload.op} produces an empty tensor ({payload.type})")


def _folded(graph: FrozenGraph, evaluate: bool) -> dict[int, np.ndarray | None]:
    """Values that depend on no parameter, computed at compile time (None when not evaluating)."""
    depends: dict[int, bool] = {}
    values: dict[int, np.ndarray | None] = {}
    params = set(graph.params)
    operand_lists = graph.operand_lists
    for node_id, payload in graph.nodes():
        operands = operand_lists[node_id]
        depends[node_id] = node_id in params or any(depends[o] for o in operands)
        if not depends[node_id]:
            values[node_id] = evaluate_node(payload, [values[o] for o in operands]) if evaluate else None
    return values


def make_plan(graph: Graph, options: dict | None = None, evaluate: bool = True) -> Plan:
    """Decide what is materialised and list the stages in a topological order."""
    options = options or {}
    graph = frozen_graph(graph) if not isinstance(graph, FrozenGraph) else graph
    folded = _folded(graph, evaluate)
    outputs = set(graph.outputs)
    names: dict[int, str] = {}
    tensors: dict[str, TensorInfo] = {}
    inline: set[int] = set()
    matmul_b_only = _params_used_as_matmul_b(graph)
    printed = value_names(graph)

    def add_tensor(node: int, layout: VectorLayout, role: str, value: np.ndarray | None = None) -> str:
        name = _tensor_name(graph, node, printed)
        names[node] = name
        tensors[name] = TensorInfo(name, node, layout, role, value)
        return name

    for param in graph.params:
        payload = graph.node(param)
        if not _NAME.match(str(payload.attr("name"))):
            raise _error(graph, param, f"parameter name {payload.attr('name')!r} is not an identifier")
        if payload.type.dtype not in _ON_CHIP_DTYPES:
            raise _error(graph, param, f"parameter {payload.attr('name')} is {payload.type}; the LPU holds "
                                       "8-, 16- and 32-bit types")
        if payload.type.size == 0:  # a reduction over it would fold no vectors at all
            raise _error(graph, param, f"parameter {payload.attr('name')} is an empty tensor ({payload.type})")
        transposed = param in matmul_b_only and param not in outputs
        role = "weight" if payload.attr("weight") else "input"
        add_tensor(param, VectorLayout(payload.type.shape, payload.type.dtype, transposed=transposed), role)

    order = graph.topological_order()
    off_chip = _off_chip_dtypes(graph)
    for node in order:
        if node in names:
            continue
        payload = graph.node(node)
        if node in folded:
            needed = node in outputs or any(u not in folded for u in graph.users(node))
            if needed:
                size_one = payload.type.size == 1 and node not in outputs
                layout = VectorLayout(payload.type.shape, payload.type.dtype, splat=size_one)
                add_tensor(node, layout, "data", folded[node])
            continue
        if off_chip:  # else no value has a dtype to refuse
            _check_dtypes(graph, node)
        _check_not_empty(graph, node)
        if _inline(graph, node, outputs):
            inline.add(node)
            continue
        layout = VectorLayout(payload.type.shape, payload.type.dtype)
        if ops.in_group(payload.op, ops.REDUCTION):
            source = graph.node(graph.operands(node)[0]).type.shape
            kept = tuple(1 if i in payload.attr("axes") else d for i, d in enumerate(source))
            layout = VectorLayout(payload.type.shape, payload.type.dtype, stored_shape=kept)
        add_tensor(node, layout, "value")

    plan = Plan(graph, tensors, names, inline, [], {}, {}, [names[o] for o in graph.outputs], printed)
    for node in order:
        if graph.node(node).op == "matmul" and node not in folded:
            plan.precision[node] = _precision(graph, node, options)
    _make_stages(plan, folded)
    return plan


def _tensor_name(graph: Graph, node: int, printed: dict[int, str]) -> str:
    """Parameters by name, other values as `--emit graph` numbers them (%0, %1, ...)."""
    payload = graph.node(node)
    if payload.op == "param":
        return str(payload.attr("name"))
    return printed[node]


def _params_used_as_matmul_b(graph: Graph) -> set[int]:
    """Parameters every use of which is (through views that keep the last two axes) the right operand of
    a matmul: the host stores them transposed, so the MXM's weight vectors are their stored rows."""
    return {p for p in graph.params if graph.node(p).type.rank >= 2 and _feeds_only_matmul_b(graph, p)}


def _feeds_only_matmul_b(graph: Graph, node: int) -> bool:
    uses = graph.uses(node)
    if not uses or graph.is_output(node):
        return False
    for user, index in uses:
        if graph.node(user).op == "matmul":
            if index != 1:
                return False
        elif not (_keeps_matrix(graph, user) and _feeds_only_matmul_b(graph, user)):
            return False
    return True


def _keeps_matrix(graph: Graph, view: int) -> bool:
    """Whether a view leaves the last two axes of its operand(s) as they are (slices, leading reshapes)."""
    payload = graph.node(view)
    out = payload.type.shape
    if payload.op == "concat":
        return len(out) >= 2
    if not ops.in_group(payload.op, ops.VIEW) or len(out) < 2:
        return False
    source = graph.node(graph.operands(view)[0]).type.shape
    if len(source) < 2:
        return False
    if payload.op == "transpose":
        perm = payload.attr("perm")
        return tuple(perm[-2:]) == (len(perm) - 2, len(perm) - 1)
    if payload.op == "slice":
        return True
    return tuple(out[-2:]) == tuple(source[-2:])


def _inline(graph: Graph, node: int, outputs: set[int]) -> bool:
    payload = graph.node(node)
    if node in outputs:
        return False
    if _is_view(payload.op):
        if _moves_lanes(graph, node):
            # Inline only where matmuls read it as their right operand: the MXM wants that operand's
            # columns, which may well be rows of what it transposes (q @ k^T); `bt_fanin` checks.
            return all(graph.node(user).op == "matmul" and index == 1 for user, index in graph.uses(node))
        return True
    if payload.group is None:  # computed on the fly only inside a fusion group
        return False
    users = graph.users(node)
    if len(users) != 1 or graph.node(users[0]).group != payload.group:
        return False
    user = graph.node(users[0])
    if ops.in_group(payload.op, ops.ELEMENTWISE):
        return True
    if payload.op == "matmul":
        return ops.in_group(user.op, ops.ELEMENTWISE) and user.type.shape == payload.type.shape
    return False


def _inline_matmul(plan: Plan, node: int) -> int | None:
    """The matmul computed on the fly inside the value of `node`, if any (at most one per group)."""
    graph = plan.graph
    found = []
    pending = [node]
    while pending:
        current = pending.pop()
        for operand in graph.operands(current):
            if operand in plan.inline and not _is_view(graph.node(operand).op):
                if graph.node(operand).op == "matmul":
                    found.append(operand)
                pending.append(operand)
    if len(found) > 1:
        raise _error(graph, node, "a fusion group holds more than one matmul")
    return found[0] if found else None


def _make_stages(plan: Plan, folded: dict[int, np.ndarray | None]) -> None:
    graph = plan.graph
    fanins: dict[tuple, int] = {}  # `view_key` of a matmul's B -> its `bt_fanin` (one per layer's weights)
    for node in graph.topological_order():
        if node not in plan.names or node in folded or graph.node(node).op == "param":
            continue
        payload = graph.node(node)
        name = plan.names[node]
        if ops.in_group(payload.op, ops.REDUCTION):
            kind, anchor = "reduce", None
        elif payload.op == "transpose" and _moves_lanes(graph, node) and _swaps_last_two_batched(payload):
            kind, anchor = "transpose", None
        elif payload.op == "matmul":
            kind, anchor = "matmul", node
        else:
            anchor = _inline_matmul(plan, node) if ops.in_group(payload.op, ops.ELEMENTWISE) else None
            kind = "matmul" if anchor is not None else "compute"
        if kind == "matmul":
            _plan_matmul_operand(plan, anchor, fanins)
        plan.stages.append(Stage(len(plan.stages), kind, node, name, anchor))


def _swaps_last_two_batched(payload) -> bool:
    perm = payload.attr("perm")
    return len(perm) >= 2 and perm[-1] == len(perm) - 2 and perm[-2] == len(perm) - 1


def _plan_matmul_operand(plan: Plan, matmul: int, fanins: dict[tuple, int]) -> None:
    """Where the MXM's weight vectors (rows of B transposed) come from; adds a transpose stage if needed.
    `fanins` memoises `bt_fanin` by `signatures.view_key`, which covers everything it reads: the views
    from B to their bases, the bases' layouts, and slice starts except those that move every element of
    a base by the same whole rows (which leave the number of distinct source vectors as it is)."""
    graph = plan.graph
    b = graph.operands(matmul)[1]
    if b in plan.names and plan.tensors[plan.names[b]].layout.transposed:
        plan.bt[matmul] = plan.names[b]
        return
    key = view_key(plan, b)
    fanin = fanins.get(key)  # one lookup: the key holds types, whose hash is worked out in Python
    if fanin is None:
        fanin = fanins[key] = bt_fanin(plan, b)
    if fanin <= FANIN_LIMIT:
        plan.bt[matmul] = None
        return
    name = plan.names.get(b, value_names(graph)[b]) + ".T"
    if name not in plan.tensors:
        shape = graph.node(b).type.shape
        swapped = shape[:-2] + (shape[-1], shape[-2])
        plan.tensors[name] = TensorInfo(name, b, VectorLayout(swapped, graph.node(b).type.dtype), "value")
        plan.stages.append(Stage(len(plan.stages), "transpose", b, name))
    plan.bt[matmul] = name


def bt_fanin(plan: Plan, b: int) -> int:
    """The most source vectors one vector of B-transposed draws from, over its first, a middle and its
    last vector."""
    graph = plan.graph
    shape = graph.node(b).type.shape
    k, n = shape[-2], shape[-1]
    batches = math.prod(shape[:-2])
    lanes = min(k, 320)
    worst = 0
    samples = ((0, 0, 0), (batches // 2, n // 2, (k - 1) // 640), (batches - 1, n - 1, (k - 1) // 320))
    for batch, j, chunk in samples:
        ks = np.arange(chunk * 320, min(k, chunk * 320 + lanes), dtype=np.int64)
        batch_index = unravel(np.full(len(ks), batch, dtype=np.int64), shape[:-2])
        index = batch_index + (ks, np.full(len(ks), j, dtype=np.int64))
        sources = set()
        for base, flat, _ in trace(graph, b, index, len(ks), plan.is_base):
            rows, cols = plan.layout_of(base).locate(flat)
            sources.update(zip([base] * len(rows), rows.tolist(), (cols // 320).tolist()))
        worst = max(worst, len(sources))
    return worst
