"""Lowering of `matmul` stages: C = A @ B (numpy batch broadcasting) plus an elementwise epilogue.

An MXM plane holds 320 dot-product columns of 320 weights each. The weights installed for block
(n-chunk nb, k-chunk kb) are the rows j in nb of B transposed, restricted to the lanes k in kb; those
rows come from a weight stored transposed by the host, from a transposed copy made by the SXM
transposer, or, when B is itself a view whose transpose lines up with stored rows (q @ k^T), straight
from that view. For every output row tile (at most `mxm_accumulators` rows) and n-chunk the plane
runs a chain over the k-chunks:

    LW x (rows in nb)     load B^T[j, kb] for each j (MEM Read -> stream -> LW)
    IW                    install them
    MVM x (rows in tile)  A[i, kb] . installed weights, set (kb = 0) or added into accumulator i;
                          at the last kb the accumulator is emitted into the epilogue tree
                          (VXM ops) and a MEM Write of C[i, nb]

Chains are independent and run on whichever of the four planes is free first. Lanes of A and B^T
past K are zero in the operands (zero padding in MEM, zero-filling permutes otherwise), so the
dot products ignore them.
"""

from __future__ import annotations

import math

import numpy as np

from targets.lpu.jobs import Job, VOp
from targets.lpu.plan import Stage
from targets.lpu.trees import MatmulContext, TreeBuilder, is_plain
from targets.lpu.vectors import width
from targets.lpu.views import broadcast_index, ravel, unravel

def batch_maps(out_batch: tuple[int, ...], a_batch: tuple[int, ...],
               b_batch: tuple[int, ...]) -> list[tuple[int, int]]:
    """For each output batch index: (batch index of A, batch index of B) under numpy broadcasting."""
    result = []
    for batch in range(math.prod(out_batch)):
        index = unravel(np.array([batch], dtype=np.int64), out_batch)
        a = int(ravel(broadcast_index(index, out_batch, a_batch), a_batch, 1)[0])
        b = int(ravel(broadcast_index(index, out_batch, b_batch), b_batch, 1)[0])
        result.append((a, b))
    return result


class MatmulLowering:
    """The pieces of one matmul stage, shared by lowering and by instruction counting."""

    def __init__(self, builder: TreeBuilder, stage: Stage) -> None:
        graph = builder.graph
        self.builder = builder
        self.stage = stage
        self.matmul = stage.anchor
        self.a_node, self.b_node = graph.operands(self.matmul)
        self.a_shape = graph.node(self.a_node).type.shape
        self.b_shape = graph.node(self.b_node).type.shape
        self.out_type = graph.node(self.matmul).type
        self.m, self.k, self.n = self.a_shape[-2], self.a_shape[-1], self.b_shape[-1]
        self.lanes = builder.lanes
        self.k_chunks = math.ceil(self.k / self.lanes)
        self.n_chunks = math.ceil(self.n / self.lanes)
        self.precision = builder.plan.precision[self.matmul]
        self.bt_name = builder.plan.bt[self.matmul]
        self.tile_rows = builder.machine.mxm_accumulators

    def rows_by_weights(self) -> dict[tuple[int, int], list[tuple[int, int]]]:
        """(B batch, chip) -> [(output row, A row)] of the output rows that use that batch's weights on that
        chip (a batch-split stage computes each index of the output's leading axis on its own chip)."""
        rows: dict[tuple[int, int], list[tuple[int, int]]] = {}
        out_batch_shape = self.out_type.shape[:-2]
        per_lead = math.prod(out_batch_shape[1:])
        maps = batch_maps(out_batch_shape, self.a_shape[:-2], self.b_shape[:-2])
        for out_batch, (a_batch, b_batch) in enumerate(maps):
            chip = self.stage.chip_of_batch(out_batch // per_lead)  # the stage's chip unless split by batch
            rows.setdefault((b_batch, chip), []).extend((out_batch * self.m + i, a_batch * self.m + i)
                                                        for i in range(self.m))
        return rows

    def weight_vector(self, b_batch: int, j: int, kb: int, chip: int) -> VOp:
        """Lanes kb of row j of B transposed (the weights of dot-product column j)."""
        builder = self.builder
        if self.bt_name is not None:
            layout = builder.homes.decls[self.bt_name].layout
            return builder.read(self.bt_name, layout.index(b_batch * self.n + j, kb), chip)
        length = min(self.lanes, self.k - kb * self.lanes)
        batch_index = unravel(np.full(length, b_batch, dtype=np.int64), self.b_shape[:-2])
        index = batch_index + (kb * self.lanes + np.arange(length, dtype=np.int64),
                               np.full(length, j, dtype=np.int64))
        return builder.elements(self.b_node, index, length, chip, fill="zero")

    def load(self, b_batch: int, j: int, nb: int, kb: int, chip: int, chain: tuple) -> VOp:
        vector = self.weight_vector(b_batch, j, kb, chip)
        return VOp("LW", chip, vector.dtype, [vector], chain=chain,
                   fields={"row": j - nb * self.lanes, "prec": self.precision},
                   lw_bytes=width(vector.dtype) * self.lanes)

    def activation(self, a_row: int, kb: int, chip: int) -> VOp:
        """Lanes kb of row a_row of A, zero past K."""
        builder = self.builder
        length = min(self.lanes, self.k - kb * self.lanes)
        vector = builder.vector(self.a_node, a_row, kb, chip)
        plain_read = (vector.op == "READ" and self.a_node in builder.plan.names
                      and is_plain(builder.plan.layout_of(self.a_node)))
        if length < self.lanes and not plain_read:
            lane_map = np.where(np.arange(self.lanes) < length, np.arange(self.lanes), -1)
            vector = builder.permute(vector, lane_map, chip)
        return vector

    def mvm(self, a_row: int, kb: int, acc: int, chip: int, chain: tuple) -> VOp:
        return VOp("MVM", chip, self.out_type.dtype, [self.activation(a_row, kb, chip)], chain=chain,
                   fields={"prec": self.precision, "acc": acc, "mode": "add" if kb else "set"},
                   busy=self.builder.machine.mvm_cycles(self.precision))

    def result(self, mvm: VOp, out_row: int, nb: int, chip: int) -> VOp:
        """The MEM Write of output vector (out_row, nb): the emitted accumulator through the epilogue."""
        builder = self.builder
        if self.stage.node == self.matmul:
            tree = mvm
        else:
            tree = builder.produce(self.stage.node, out_row, nb, chip, MatmulContext(self.matmul, out_row, nb, mvm))
        target = builder.homes.decls[self.stage.output].layout.index(out_row, nb)
        return builder.write(tree, self.stage.output, target, chip)

    def jobs(self) -> list[Job]:
        machine = self.builder.machine
        jobs: list[Job] = []
        for (b_batch, group_chip), rows in sorted(self.rows_by_weights().items()):
            for start in range(0, len(rows), self.tile_rows):
                tile = rows[start:start + self.tile_rows]
                for nb in range(self.n_chunks):
                    chip = self.stage.chip_of_chunk(nb) if self.stage.chunk_chips else group_chip
                    chain = self.builder.new_chain("MXM", chip)
                    for kb in range(self.k_chunks):
                        for j in range(nb * self.lanes, min(self.n, (nb + 1) * self.lanes)):
                            jobs.append(Job(self.load(b_batch, j, nb, kb, chip, chain), hint=(chain, kb, "load")))
                        jobs.append(Job(VOp("IW", chip, chain=chain, busy=machine.mxm_install_cycles,
                                            comment=f"{self.stage.output} n-chunk {nb} k-chunk {kb}")))
                        for acc, (out_row, a_row) in enumerate(tile):
                            mvm = self.mvm(a_row, kb, acc, chip, chain)
                            if kb < self.k_chunks - 1:
                                jobs.append(Job(mvm, hint=(chain, kb, "mvm")))
                            else:
                                jobs.append(Job(self.result(mvm, out_row, nb, chip), hint=(chain, kb, "mvm")))
        return jobs


def lower_matmul(builder: TreeBuilder, stage: Stage, jobs: list[Job]) -> None:
    jobs.extend(MatmulLowering(builder, stage).jobs())
