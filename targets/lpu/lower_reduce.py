"""Lowering of `reduce` stages: sum, max, min and mean over any axes.

The result is stored in keepdims form. One tree per stored vector:

* across vectors: the input vectors that fold into the result are combined lane by lane with a
  balanced tree of VXM ops (for a reduced last axis: every chunk of the row, the last one with its
  padding lanes replaced by the identity: zeros for a sum, a copy of a valid lane for max/min);
* within a vector (reduced last axis only): log2(lanes) steps, each an SXM PERMUTE that moves the upper
  half of the valid lanes onto the lower half and a VXM op that combines them; lane 0 ends with the
  result;
* a mean divides by the element count (a splat constant read from MEM) at the end.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from targets.base import TargetError
from targets.lpu.jobs import Job, VOp
from targets.lpu.plan import Stage
from targets.lpu.trees import TreeBuilder
from targets.lpu.views import unravel

_COMBINE = {"reduce_sum": "add", "reduce_mean": "add", "reduce_max": "maximum", "reduce_min": "minimum"}


def combine_tree(builder: TreeBuilder, op: str, vectors: list[VOp], chip: int) -> VOp:
    if not vectors:  # make_plan refuses empty tensors, so a reduction always folds at least one vector
        raise TargetError("lpu target: internal error: a reduction with nothing to combine")
    if len(vectors) == 1:
        return vectors[0]
    middle = len(vectors) // 2
    left = combine_tree(builder, op, vectors[:middle], chip)
    right = combine_tree(builder, op, vectors[middle:], chip)
    return builder.vxm(op, left.dtype, [left, right], chip)


def lane_tree(builder: TreeBuilder, op: str, vector: VOp, valid: int, chip: int) -> VOp:
    """Fold lanes 0..valid-1 of `vector` into lane 0.

    Each step sends the vector through two SXM units of one side in the same cycle, one shifting the
    upper half down and one passing it unchanged, so both copies reach the VXM together.
    """
    lanes = builder.lanes
    identity = np.arange(lanes, dtype=np.int64)
    while valid > 1:
        half = math.ceil(valid / 2)
        lane_map = np.full(lanes, -1, dtype=np.int64)
        upper = valid - half
        lane_map[:upper] = np.arange(half, valid)
        if op != "add":  # the odd middle lane meets itself; max(x, x) = x
            lane_map[upper:half] = np.arange(upper, half)
        side = builder.side(vector)
        shifted = builder.permute(vector, lane_map, chip, side)
        same = builder.permute(vector, identity, chip, side)
        vector = builder.vxm(op, vector.dtype, [same, shifted], chip)
        valid = half
    return vector


def reduce_tree(builder: TreeBuilder, stage: Stage, vector_index: int) -> VOp:
    """The tree writing stored vector `vector_index` of a reduction's result."""
    graph = builder.graph
    node = graph.node(stage.node)
    source = graph.operands(stage.node)[0]
    domain = graph.node(source).type.shape
    axes = node.attr("axes")
    op = _COMBINE[node.op]
    fill = "zero" if op == "add" else "dup"
    layout = builder.homes.decls[stage.output].layout
    lanes = builder.lanes
    chip = stage.chip
    rank = len(domain)
    reduced_non_last = [a for a in axes if a != rank - 1]
    combos = itertools.product(*(range(domain[a]) for a in reduced_non_last))
    row, chunk = divmod(vector_index, layout.chunks)
    length = layout.valid_lanes(chunk)
    flat = row * layout.cols + chunk * lanes + np.arange(length, dtype=np.int64)
    out_index = unravel(flat, layout.matrix_shape)
    parts: list[VOp] = []
    if not (rank > 0 and (rank - 1) in axes):
        for combo in combos:
            index = list(out_index)
            for axis, value in zip(reduced_non_last, combo):
                index[axis] = np.full(length, value, dtype=np.int64)
            parts.append(builder.elements(source, tuple(index), length, chip))
        total = combine_tree(builder, op, parts, chip)
    else:
        cols = domain[-1]
        for combo in combos:
            for q in range(math.ceil(cols / lanes)):
                width = min(lanes, cols - q * lanes)
                index = [np.full(width, int(axis_index[0]), dtype=np.int64) for axis_index in out_index]
                for axis, value in zip(reduced_non_last, combo):
                    index[axis] = np.full(width, value, dtype=np.int64)
                index[-1] = q * lanes + np.arange(width, dtype=np.int64)
                parts.append(builder.elements(source, tuple(index), width, chip,
                                              fill=fill if width < lanes else "any"))
        total = lane_tree(builder, op, combine_tree(builder, op, parts, chip), min(cols, lanes), chip)
    if node.op == "reduce_mean":
        count = math.prod(domain[a] for a in axes)
        divisor = builder.read(builder.homes.constant(count, layout.dtype, chip), 0, chip)
        total = builder.vxm("div", layout.dtype, [total, divisor], chip)
    return builder.write(total, stage.output, vector_index, chip)


def lower_reduce(builder: TreeBuilder, stage: Stage, jobs: list[Job]) -> None:
    layout = builder.homes.decls[stage.output].layout
    for vector_index in range(layout.vectors):
        jobs.append(Job(reduce_tree(builder, stage, vector_index), hint=("stage", stage.index)))
