"""Lowering of `compute` stages (elementwise values and views) and `transpose` stages.

compute: every vector of the value is one tree, MEM Reads -> (SXM permutes, VXM ops) -> MEM Write,
built by `TreeBuilder.produce`; the trees of a stage are independent, so the scheduler overlaps them.

transpose: T[b', j, i] = X[b, i, j] through an SXM transposer, a 320x320 buffer per unit: for each
320x320 block, load up to 320 rows of X (TLD), install the block (TSW), then emit its columns (TST),
each a row of T, straight into a MEM Write. One block sequence ("chain") holds one unit.
"""

from __future__ import annotations

import math

import numpy as np

from targets.lpu.jobs import Job, VOp
from targets.lpu.plan import Stage
from targets.lpu.trees import TreeBuilder
from targets.lpu.views import ravel, unravel

def lower_compute(builder: TreeBuilder, stage: Stage, jobs: list[Job]) -> None:
    decl = builder.homes.decls[stage.output]
    layout = decl.layout
    for vector in range(layout.vectors):
        row, chunk = divmod(vector, layout.chunks)
        tree = builder.produce(stage.node, row, chunk, stage.chip)
        jobs.append(Job(builder.write(tree, stage.output, vector, stage.chip), hint=("stage", stage.index)))


def _batch_source(builder: TreeBuilder, stage: Stage) -> tuple[int, list[int]]:
    """The transposed node X and, for each batch of the output, the batch of X it transposes."""
    graph = builder.graph
    node = graph.node(stage.node)
    out_shape = builder.homes.decls[stage.output].layout.value_shape
    out_batches = math.prod(out_shape[:-2])
    if node.op == "transpose" and stage.output == builder.plan.names.get(stage.node):
        source = graph.operands(stage.node)[0]
        perm = node.attr("perm")
        in_batch_shape = graph.node(source).type.shape[:-2]
        mapping = []
        for batch in range(out_batches):
            out_index = unravel(np.array([batch]), out_shape[:-2])
            in_index: list[np.ndarray] = [None] * len(in_batch_shape)  # type: ignore[list-item]
            for out_axis, in_axis in enumerate(perm[:-2]):
                in_index[in_axis] = out_index[out_axis]
            mapping.append(int(ravel(tuple(in_index), in_batch_shape, 1)[0]))
        return source, mapping
    return stage.node, list(range(out_batches))


def lower_transpose(builder: TreeBuilder, stage: Stage, jobs: list[Job]) -> None:
    chip = stage.chip
    source, batches = _batch_source(builder, stage)
    shape = builder.graph.node(source).type.shape
    p, q = shape[-2], shape[-1]
    lanes = builder.lanes
    layout = builder.homes.decls[stage.output].layout
    dtype = layout.dtype
    for out_batch, in_batch in enumerate(batches):
        for pb in range(math.ceil(p / lanes)):
            for qb in range(math.ceil(q / lanes)):
                chain = builder.new_chain("SXM", chip)
                rows = range(pb * lanes, min(p, (pb + 1) * lanes))
                cols = range(qb * lanes, min(q, (qb + 1) * lanes))
                for i in rows:
                    vector = builder.vector(source, in_batch * p + i, qb, chip)
                    load = VOp("TLD", chip, dtype, [vector], chain=chain, fields={"row": i - pb * lanes})
                    jobs.append(Job(load, hint=(chain, "load")))
                jobs.append(Job(VOp("TSW", chip, chain=chain, comment=f"{stage.output} block")))
                for j in cols:
                    emit = VOp("TST", chip, dtype, chain=chain, fields={"col": j - qb * lanes})
                    target = layout.index(out_batch * q + j, pb)
                    jobs.append(Job(builder.write(emit, stage.output, target, chip), hint=(chain, "emit")))

