"""The plugins in examples/passes/ work from the command line with --load-pass."""

from __future__ import annotations

from ir.graph_parser import parse_graph
from ir.groups import GroupKind, classify_group

MODEL = "examples/passes/activations.nk"
SILU = "examples/passes/fuse_silu.py"
EPILOGUE = "examples/passes/fuse_matmul_bias_gelu.py"


def body_ops(text: str) -> list[str]:
    graph = parse_graph(text)
    return [node.op for _, node in graph.nodes() if node.op != "param"]


def test_fuse_silu_rewrites_x_times_sigmoid_x(niche_main) -> None:
    before = niche_main("compile", MODEL, "-O0")
    assert "sigmoid" in body_ops(before.stdout)
    result = niche_main("compile", MODEL, "--load-pass", SILU, "--passes", "fuse-silu", "--pass-stats")
    assert result.returncode == 0, result.stderr
    ops = body_ops(result.stdout)
    assert "silu" in ops and "sigmoid" not in ops and ops.count("mul") == 0
    assert "fuse-silu: 1 rewrite (to-silu 1), 2 dead values removed" in result.stderr


def test_fuse_matmul_bias_gelu_forms_one_epilogue_group(niche_main) -> None:
    result = niche_main("compile", MODEL, "--load-pass", EPILOGUE, "--passes",
                        "canonicalize,fuse-matmul-bias-gelu,fuse-reductions,fuse-elementwise", "--explain-fusion")
    assert result.returncode == 0, result.stderr
    graph = parse_graph(result.stdout)
    kinds = {classify_group(graph, members).kind: members for members in graph.groups().values()}
    assert set(kinds) == {GroupKind.MATMUL, GroupKind.ELEMENTWISE}  # the second: y * sigmoid(y)
    assert sorted(graph.node(n).op for n in kinds[GroupKind.MATMUL]) == ["add", "gelu", "matmul"]
    assert "fuse-matmul-bias-gelu: %0 (matmul)" in result.stderr and "by rule 'fuse-epilogue'" in result.stderr


def test_both_plugins_together_compute_what_the_reference_computes(niche_main) -> None:
    result = niche_main("run", MODEL, "--load-pass", SILU, "--load-pass", EPILOGUE, "--passes",
                        "canonicalize,fuse-silu,fuse-matmul-bias-gelu,fuse-epilogue,fuse-elementwise", "--check",
                        "--verify-each")
    assert result.returncode == 0, result.stderr
    assert "check against the reference interpreter: output 0: matches" in result.stdout


def test_plugin_passes_are_listed(niche_main) -> None:
    result = niche_main("passes", "--load-pass", SILU, "--load-pass", EPILOGUE)
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("  fuse-silu ")]
    assert line.endswith(f" rewrite x * sigmoid(x) into one silu op  [{SILU}]")
    assert "options: report=true (bool)" in result.stdout
