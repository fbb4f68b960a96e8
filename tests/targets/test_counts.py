"""Target-independent counts on hand-built loop kernels and graphs, against hand-computed values."""

from __future__ import annotations

import pytest

from ir.dtypes import DType
from ir.graph import Graph
from ir.loops import (Allocate, Binary, Buffer, Const, For, If, Kernel, KernelCall, Let, Load, LoopKind,
                      LoopProgram, Scope, Select, Seq, Store, Unary, Var, const)
from ir.types import TensorType
from targets.counts import CountError, count_graph, count_loop_program

F32, BF16, I64 = DType.F32, DType.BF16, DType.I64


def program_of(kernel: Kernel, inputs: list[str], outputs: list[str]) -> LoopProgram:
    buffers = {b.name: b for b in kernel.params}
    return LoopProgram("p", buffers, inputs, outputs, {kernel.name: kernel},
                       [KernelCall(kernel.name, tuple(b.name for b in kernel.params))])


def traffic(kernel_counts, name):
    return next(t for t in kernel_counts.traffic if t.buffer == name)


def test_naive_matmul_flops_accesses_and_footprint() -> None:
    M, N, K = 64, 32, 128
    A, B, C = Buffer("A", F32, (M, K)), Buffer("B", F32, (K, N)), Buffer("C", F32, (M, N))
    i, j, k = Var("i"), Var("j"), Var("k")
    update = Store("C", (i, j), Binary("add", Load("C", (i, j), F32),
                                       Binary("mul", Load("A", (i, k), F32), Load("B", (k, j), F32))))
    body = For("i", const(0), const(M), For("j", const(0), const(N), Seq((
        Store("C", (i, j), Const(0.0, F32)), For("k", const(0), const(K), update)))), kind=LoopKind.PARALLEL)
    kernel = Kernel("mm", (A, B, C), body, ("C",), (("kind", "matmul"),))
    counts = count_loop_program(program_of(kernel, ["A", "B"], ["C"]), weights={"B"}).kernels[0]
    assert counts.flops == 2 * M * N * K
    assert counts.kind == "matmul" and counts.parallel == M
    a, b, c = traffic(counts, "A"), traffic(counts, "B"), traffic(counts, "C")
    assert a.loaded == M * N * K * 4 and a.unique == M * K * 4 and a.role == "input"
    assert b.loaded == M * N * K * 4 and b.unique == K * N * 4 and b.role == "weight"
    assert c.loaded == M * N * K * 4 and c.stored == (M * N + M * N * K) * 4 and c.unique == M * N * 4
    assert counts.global_bytes == (M * K + K * N + M * N) * 4
    assert counts.weight_bytes == K * N * 4


def test_triangular_loop_is_counted_exactly() -> None:
    n = 100
    x, y = Buffer("x", F32, (n, n)), Buffer("y", F32, (n, n))
    i, j = Var("i"), Var("j")
    inner = For("j", const(0), Binary("add", i, const(1)), Store("y", (i, j), Unary("exp", Load("x", (i, j), F32))))
    kernel = Kernel("tri", (x, y), For("i", const(0), const(n), inner), ("y",))
    counts = count_loop_program(program_of(kernel, ["x"], ["y"])).kernels[0]
    assert counts.transcendentals == n * (n + 1) / 2
    assert counts.flops == 0
    assert counts.index_ops == n  # the i + 1 of the extent, once per outer iteration


def test_transcendental_ops_carry_their_arithmetic() -> None:
    n = 10
    x, y = Buffer("x", F32, (n,)), Buffer("y", F32, (n,))
    value = Binary("mul", Unary("silu", Load("x", (Var("i"),), F32)), Const(2.0, F32))
    kernel = Kernel("k", (x, y), For("i", const(0), const(n), Store("y", (Var("i"),), value)), ("y",))
    counts = count_loop_program(program_of(kernel, ["x"], ["y"])).kernels[0]
    assert counts.transcendentals == n  # silu: one exp ...
    assert counts.flops == n * (5 + 1)  # ... plus 5 ops around it, and the multiply


def test_csr_rows_are_counted_from_the_buffer_they_walk() -> None:
    rows, nnz, cols = 8, 20, 16
    indptr, indices = Buffer("indptr", I64, (rows + 1,)), Buffer("indices", I64, (nnz,))
    values, x, y = Buffer("values", F32, (nnz,)), Buffer("x", F32, (cols,)), Buffer("y", F32, (rows,))
    i, p = Var("i"), Var("p")
    start = Load("indptr", (i,), I64)
    extent = Binary("sub", Load("indptr", (Binary("add", i, const(1)),), I64), start)
    product = Binary("mul", Load("values", (p,), F32), Load("x", (Load("indices", (p,), I64),), F32))
    row = For("p", start, extent, Store("y", (i,), Binary("add", Load("y", (i,), F32), product)))
    kernel = Kernel("spmv", (indptr, indices, values, x, y), For("i", const(0), const(rows), row), ("y",))
    counts = count_loop_program(program_of(kernel, ["indptr", "indices", "values", "x"], ["y"])).kernels[0]
    assert counts.flops == 2 * nnz
    assert traffic(counts, "values").loaded == nnz * 4
    assert any("data-dependent" in note for note in counts.notes)


def test_an_unbounded_data_dependent_loop_is_an_error_not_a_guess() -> None:
    n = Buffer("n", I64, (1,))
    y = Buffer("y", F32, (4,))
    loop = For("i", const(0), Load("n", (const(0),), I64), Store("y", (const(0),), Const(1.0, F32)))
    kernel = Kernel("k", (n, y), loop, ("y",))
    with pytest.raises(CountError, match="data-dependent trip count"):
        count_loop_program(program_of(kernel, ["n"], ["y"]))


def test_if_counts_the_costlier_branch_and_locals_are_local() -> None:
    n = 16
    x, y = Buffer("x", F32, (n,)), Buffer("y", F32, (n,))
    acc = Buffer("acc", F32, (1,), scope=Scope.LOCAL)
    i = Var("i")
    xi = Load("x", (i,), F32)
    cheap = Store("y", (i,), xi)
    costly = Store("y", (i,), Binary("add", Binary("mul", xi, xi), Load("acc", (const(0),), F32)))
    body = Allocate(acc, Seq((Store("acc", (const(0),), Const(0.0, F32)),
                              For("i", const(0), const(n), If(Binary("lt", i, const(8)), costly, cheap)))))
    kernel = Kernel("k", (x, y), body, ("y",))
    counts = count_loop_program(program_of(kernel, ["x"], ["y"])).kernels[0]
    assert counts.flops == 2 * n
    local = traffic(counts, "acc")
    assert local.role == "local" and local.loaded == n * 4 and local.stored == 4
    assert counts.global_bytes == 2 * n * 4


def test_let_bound_indices_keep_their_footprint_and_vectorize_is_seen() -> None:
    n, w = 64, 8
    x, y = Buffer("x", F32, (n,)), Buffer("y", F32, (n,))
    index = Binary("add", Binary("mul", Var("o"), const(w)), Var("v"))
    inner = For("v", const(0), const(w), Let("e", index, Store("y", (Var("e"),), Select(
        Binary("gt", Load("x", (Var("e"),), F32), Const(0.0, F32)), Load("x", (Var("e"),), F32), Const(0.0, F32)))),
        kind=LoopKind.VECTORIZE)
    kernel = Kernel("relu", (x, y), For("o", const(0), const(n // w), inner), ("y",))
    counts = count_loop_program(program_of(kernel, ["x"], ["y"])).kernels[0]
    assert counts.vector_width == w
    assert traffic(counts, "x").unique == n * 4  # two loads of x[e]: the same elements, counted once
    assert traffic(counts, "x").loaded == 2 * n * 4
    assert counts.flops == 2 * n  # compare + select


def test_a_kernel_called_twice_is_counted_per_call_with_its_arguments() -> None:
    x = Buffer("x", F32, (4,))
    y = Buffer("y", F32, (4,))
    negate = Store("y", (Var("i"),), Unary("neg", Load("x", (Var("i"),), F32)))
    kernel = Kernel("neg", (x, y), For("i", const(0), const(4), negate), ("y",))
    buffers = {"a": Buffer("a", F32, (4,)), "b": Buffer("b", F32, (4,)), "c": Buffer("c", F32, (4,))}
    program = LoopProgram("p", buffers, ["a"], ["c"], {"neg": kernel},
                          [KernelCall("neg", ("a", "b")), KernelCall("neg", ("b", "c"))])
    counts = count_loop_program(program)
    assert [k.reads for k in counts.kernels] == [("a",), ("b",)]
    assert [traffic(k, k.writes[0]).role for k in counts.kernels] == ["intermediate", "output"]
    assert counts.flops == 8


# -- graph level ----------------------------------------------------------------------------------


def mlp_graph(batch: int = 8, grouped: bool = True) -> Graph:
    g = Graph("mlp")
    x = g.add_param("x", TensorType((batch, 784), F32))
    w1 = g.add_param("w1", TensorType((784, 512), F32), weight=True)
    b1 = g.add_param("b1", TensorType((512,), F32), weight=True)
    group = 0 if grouped else None
    h = g.add("matmul", [x, w1], group=group)
    h = g.add("add", [h, b1], group=group)
    h = g.add("relu", [h], group=group)
    g.outputs.append(h)
    return g


def test_graph_counts_of_a_fused_matmul_epilogue() -> None:
    counts = count_graph(mlp_graph())
    (kernel,) = counts.kernels
    assert kernel.kind == "matmul" and kernel.matmul.m == 8 and kernel.matmul.k == 784
    assert kernel.flops == 2 * 8 * 512 * 784 + 8 * 512 * 2  # matmul + bias add + relu
    assert kernel.weight_bytes == (784 * 512 + 512) * 4
    assert counts.bytes_of("input") == 8 * 784 * 4 and counts.bytes_of("output") == 8 * 512 * 4
    # unfused, the matmul result and the biased value would each be written once and read once
    assert counts.fused_away_bytes == 2 * (8 * 512 * 4) * 2


def test_graph_counts_without_groups_make_one_kernel_per_op() -> None:
    counts = count_graph(mlp_graph(grouped=False))
    assert [k.kind for k in counts.kernels] == ["matmul", "elementwise", "elementwise"]
    assert counts.fused_away_bytes == 0
    assert counts.flops == count_graph(mlp_graph()).flops


def test_a_view_of_a_stacked_weight_reads_only_its_slice() -> None:
    layers, d = 4, 16
    g = Graph("stack")
    x = g.add_param("x", TensorType((2, d), BF16))
    w = g.add_param("w", TensorType((layers, d, d), BF16), weight=True)
    h = x
    for layer in range(layers):
        sliced = g.add("slice", [w], {"starts": (layer, 0, 0), "stops": (layer + 1, d, d), "steps": (1, 1, 1)})
        matrix = g.add("reshape", [sliced], {"shape": (d, d)})
        h = g.add("matmul", [h, matrix], group=layer if layer % 2 else None)
        if layer % 2:  # the views join the group: the slice is read inside it
            for node in (sliced, matrix):
                g.set_node(node, g.node(node).replace(group=layer))
    g.outputs.append(h)
    counts = count_graph(g)
    assert len(counts.kernels) == layers
    assert [k.weight_bytes for k in counts.kernels] == [d * d * 2] * layers
    assert counts.weight_bytes == layers * d * d * 2
    assert counts.dtype is BF16


def test_matmul_flops_with_batch_dimensions() -> None:
    g = Graph("bmm")
    a = g.add_param("a", TensorType((3, 4, 5, 6), F32))
    b = g.add_param("b", TensorType((3, 4, 6, 7), F32))
    g.outputs.append(g.add("matmul", [a, b]))
    (kernel,) = count_graph(g).kernels
    assert kernel.flops == 2 * 3 * 4 * 5 * 6 * 7
    assert (kernel.matmul.batch, kernel.matmul.m, kernel.matmul.n, kernel.matmul.k) == (12, 5, 7, 6)


def test_loop_and_graph_counts_agree_on_a_lowered_program() -> None:
    lowering = pytest.importorskip("passes.lowering")
    graph = mlp_graph(grouped=False)
    program = lowering.lower_to_loops(graph)
    loops, nodes = count_loop_program(program, graph=graph), count_graph(graph)
    assert loops.level == "loops" and nodes.level == "graph"
    assert loops.flops_useful == nodes.flops
    assert loops.weight_bytes == nodes.weight_bytes


def test_sparse_weights_occupy_their_non_zeros_when_the_density_is_known() -> None:
    import numpy as np

    from ir.types import Format

    g = Graph("sparse")
    x = g.add_param("x", TensorType((8, 64), F32))
    nm = g.add_param("w_nm", TensorType((64, 64), F32, Format("nm", n=2, m=4)), weight=True)
    csr = g.add_param("w_csr", TensorType((64, 64), F32, Format("csr")), weight=True)
    unknown = g.add_param("w_csc", TensorType((64, 64), F32, Format("csc")), weight=True)
    data = np.zeros((64, 64), np.float32)
    data[:, :8] = 1.0  # 1/8 of the entries are non-zero
    g.weight_data["w_csr"] = data
    h = g.add("matmul", [x, nm])
    h = g.add("matmul", [h, csr])
    g.outputs.append(g.add("matmul", [h, unknown]))
    k_nm, k_csr, k_csc = count_graph(g).kernels
    dense = 64 * 64 * 4
    assert k_nm.weight_bytes == dense * 0.5 * (1 + 0.25 / 4)  # values + a 2-bit position per value
    assert k_nm.weight_density == 0.5 and k_nm.flops == 2 * 8 * 64 * 64  # the math is the dense one
    assert k_csr.weight_bytes == dense / 8 * 2  # values + an i32 index per non-zero
    assert k_csc.weight_bytes == dense and any("counted dense" in n for n in k_csc.notes)


def test_a_split_kernel_divides_its_work_and_keeps_everything_else() -> None:
    """`KernelCounts.split` builds its result field by field: every field it does not divide must come
    through unchanged (a field added to KernelCounts and forgotten there would fail here)."""
    from dataclasses import fields, replace

    from targets.counts import BufferTraffic, KernelCounts, MatmulShape

    traffic = (BufferTraffic("w", "weight", 8.0, 0.0, 8.0, 16.0), BufferTraffic("y", "output", 0.0, 6.0, 6.0, 6.0))
    kernel = KernelCounts("k", "matmul", BF16, 12.0, 10.0, 3.0, 5.0, traffic, 9.0, 7.0, vector_width=8,
                          matmul=MatmulShape(2, 3, 9, 4), reads=("w",), writes=("y",), notes=("from here",),
                          weight_density=0.5, sparse="terms")
    divided = {"flops", "flops_useful", "transcendentals", "index_ops", "traffic", "iterations", "parallel",
               "matmul"}
    for field in fields(KernelCounts):
        if field.name not in divided:
            assert getattr(kernel, field.name) != getattr(KernelCounts("", "", F32, 0, 0, 0, 0, (), 0, 0),
                                                          field.name), f"give {field.name} a value of its own"
    half = kernel.split(2)
    assert half == replace(kernel, flops=6.0, flops_useful=5.0, transcendentals=1.5, index_ops=2.5,
                           traffic=(BufferTraffic("w", "weight", 4.0, 0.0, 4.0, 8.0),
                                    BufferTraffic("y", "output", 0.0, 3.0, 3.0, 3.0)),
                           iterations=4.5, parallel=3.5, matmul=MatmulShape(2, 3, 4, 4))
    assert kernel.split(1) is kernel and kernel.split(8).parallel == 1.0
