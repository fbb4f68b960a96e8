"""The sparsity passes: sparsify's per-target decisions, prune's error report, sparse-propagate's facts."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import CompileError, compile_string
from ir.types import Format
from passes.context import PassContext
from passes.pipeline import build_passes, parse_pipeline
from targets.base import CompileOptions

N = 512
MLP = f"def f(@weight w: f32[{N}, {N}], x: f32[{N}, 64]) -> f32[{N}, 64] {{ return relu(w @ x) }}"
RIGHT = f"def f(x: bf16[64, {N}], @weight w: bf16[{N}, {N}]) -> bf16[64, {N}] {{ return x @ w }}"


def run_pass(graph, pipeline: str, target: str = "cpu", for_pricing: bool = True) -> tuple:
    ctx = PassContext(CompileOptions(target=target, for_pricing=for_pricing))
    for pass_ in build_passes(parse_pipeline(pipeline)):
        ctx.current_pass = pass_.name
        graph = pass_.run(graph, ctx)
    return graph, ctx


def bound_graph(text: str, data: np.ndarray):
    return compile_string(text, target="ref", weights={"w": data}, passes="").graph


def chosen(graph) -> Format:
    return graph.node(graph.param_by_name("w")).type.format


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((N, N)).astype(np.float32)
    order = rng.random((N, N // 4, 4)).argsort(axis=2) < 2  # two random positions of every four
    blocks = np.kron(rng.random((N // 16, N // 16)) < 0.1, np.ones((16, 16), np.float32))
    return {
        "dense": values,
        "50%": values * (rng.random((N, N)) < 0.5),
        "1%": values * (rng.random((N, N)) < 0.01),
        "2:4": (values.reshape(N, N // 4, 4) * order).reshape(N, N),
        "blocks": values * blocks,
    }


def test_cpu_keeps_dense_weights_dense_and_goes_sparse_at_high_sparsity(weights) -> None:
    decisions = {}
    for name, data in weights.items():
        graph, ctx = run_pass(bound_graph(MLP, data), "sparsify")
        decisions[name] = chosen(graph)
        (stats,) = ctx.stats_of("sparsify")
        assert f"cpu prices dense" in stats.text and "non-zeros" in stats.text
    assert decisions["dense"].is_dense
    assert decisions["1%"] == Format("csr")
    assert decisions["blocks"].kind in ("bsr", "csr")
    unchanged = bound_graph(MLP, weights["dense"])
    assert run_pass(unchanged, "sparsify")[0] == unchanged  # a dense weight: the same graph


def test_the_same_weight_gets_a_different_format_per_target(weights) -> None:
    """A 2:4 bf16 weight read as the B operand: the GPU model prices sparse tensor cores at 2x, the LPU
    has no sparsity speed-up, the CPU runs its own sparse kernels."""
    graph = bound_graph(RIGHT, weights["2:4"])
    gpu, gpu_ctx = run_pass(graph, "sparsify", "gpu:h100")
    lpu, lpu_ctx = run_pass(graph, "sparsify", "lpu")
    assert chosen(gpu) == Format("nm", n=2, m=4)
    assert chosen(lpu).is_dense and "prices no sparse format" in lpu_ctx.stats_of("sparsify")[0].text
    assert "gpu:h100 prices dense" in gpu_ctx.stats_of("sparsify")[0].text


def test_formats_a_target_only_prices_are_not_chosen_when_compiling_to_run(weights) -> None:
    graph = bound_graph(RIGHT, weights["2:4"])
    gpu, ctx = run_pass(graph, "sparsify", "gpu:h100", for_pricing=False)
    assert chosen(gpu).is_dense
    assert "runs none of the sparse formats its model prices (nm)" in ctx.stats_of("sparsify")[0].text


def test_a_weight_read_by_other_operations_keeps_its_format(weights) -> None:
    text = f"def f(@weight w: f32[{N}, {N}]<csr>, x: f32[{N}, {N}]) -> f32[{N}, {N}] {{ return w @ x + w }}"
    graph, ctx = run_pass(bound_graph(text, weights["1%"]), "sparsify")
    assert chosen(graph) == Format("csr")
    assert "read by an operation other than a matmul" in ctx.stats_of("sparsify")[0].text


def test_bound_weights_are_sparsified_by_the_default_pipeline(weights) -> None:
    program = compile_string(MLP, target="cpu", weights={"w": weights["1%"]}, for_pricing=True)
    assert chosen(program.graph) == Format("csr")
    plain = compile_string(MLP, target="cpu", for_pricing=True)
    assert chosen(plain.graph).is_dense


# -- prune -------------------------------------------------------------------------------------------


def test_prune_to_2_4_reports_the_error_it_introduced(weights) -> None:
    graph = bound_graph(MLP, weights["dense"])
    pruned, ctx = run_pass(graph, "prune{pattern=2:4}")
    data = pruned.weight_data["w"]
    groups = (data.reshape(N, N // 4, 4) != 0).sum(axis=2)
    assert groups.max() == 2 and np.count_nonzero(data) == N * N // 2
    kept = np.abs(weights["dense"]).reshape(N, N // 4, 4)
    smallest_kept = np.where(data.reshape(N, N // 4, 4) != 0, kept, np.inf).min(axis=2)
    largest_dropped = np.where(data.reshape(N, N // 4, 4) == 0, kept, -np.inf).max(axis=2)
    assert np.all(smallest_kept >= largest_dropped)  # magnitude pruning
    (stats,) = ctx.stats_of("prune")
    assert 0.3 < stats.counters["relative_error"] < 1.0 and stats.counters["max_abs_error"] > 0
    assert "relative error" in stats.text and "w: to 2:4" in stats.text
    assert graph.weight_data["w"] is weights["dense"]  # the input graph is unchanged


def test_prune_to_a_density_keeps_the_largest_entries(weights) -> None:
    text = f"def f(@weight w: f32[{N}, {N}]<2:4>, x: f32[{N}, 8]) -> f32[{N}, 8] {{ return w @ x }}"
    graph = bound_graph(text, weights["2:4"])
    pruned, ctx = run_pass(graph, "prune{weights=w,density=0.05}")
    data = pruned.weight_data["w"]
    assert np.count_nonzero(data) == round(0.05 * N * N)
    assert np.abs(weights["2:4"])[data == 0].max() <= np.abs(data[data != 0]).min()
    assert chosen(pruned) == Format("nm", n=2, m=4)  # fewer non-zeros still fit the declared 2:4
    same, ctx = run_pass(graph, "prune{density=1.0}")
    assert ctx.stats_of("prune")[0].counters["max_abs_error"] == 0.0


def test_prune_options_and_unknown_weights_are_errors(weights) -> None:
    graph = bound_graph(MLP, weights["dense"])
    with pytest.raises(CompileError, match="prune needs pattern=N:M or density=D"):
        run_pass(graph, "prune")
    with pytest.raises(CompileError, match="nope is not a matrix weight bound to data"):
        run_pass(graph, "prune{weights=nope,pattern=2:4}")
    with pytest.raises(CompileError, match="pattern must be N:M"):
        build_passes(parse_pipeline("prune{pattern=half}"))


# -- sparse-propagate ----------------------------------------------------------------------------------


def test_zero_rows_and_columns_reach_the_outputs() -> None:
    text = ("def f(x: f32[6, 4], @weight w: f32[5, 6], @weight v: f32[4, 3]) -> (f32[5, 4], f32[4, 5]) {\n"
            "    h = relu(w @ x) * 2.0\n    return (h, transpose(h)) }")
    w = np.ones((5, 6), np.float32)
    w[[1, 3]] = 0
    w[:, 2] = 0
    graph = compile_string(text, target="ref", weights={"w": w}, passes="").graph
    result, ctx = run_pass(graph, "sparse-propagate")
    assert result.attributes["sparse_w_zero_rows"] == (1, 3)
    assert result.attributes["sparse_w_zero_columns"] == (2,)
    assert result.attributes["sparse_output0_zero_rows"] == (1, 3)
    assert result.attributes["sparse_output1_zero_columns"] == (1, 3)
    assert ctx.stats_of("sparse-propagate")[0].counters["outputs"] == 2
    assert [result.node(n) for n in result.topological_order()] == [graph.node(n) for n in graph.topological_order()]
    from ir.graph_parser import parse_graph
    from ir.graph_printer import print_graph
    assert parse_graph(print_graph(result)).attributes == result.attributes  # the facts print and parse back
