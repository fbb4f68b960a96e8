"""docs/writing-passes.md works as written: its pass, model and command produce the output it shows."""

from __future__ import annotations

import shlex
from pathlib import Path

from ir.graph_parser import parse_graph

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "writing-passes.md"


def code_blocks(language: str) -> list[str]:
    """The fenced blocks of the page whose info string is `language` ("" for plain blocks)."""
    blocks: list[str] = []
    current: list[str] | None = None
    info = ""
    for line in DOC.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current, info = [], line[3:].strip()
            else:
                if info == language:
                    blocks.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def documented_command(files: dict[str, Path]) -> list[str]:
    (command,) = [block for block in code_blocks("sh") if block.startswith("niche compile model.nk")]
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == ["niche", "compile"]
    return [str(files.get(word, word)) for word in words[1:]]


def test_the_walkthrough_runs_as_documented(tmp_path: Path, niche_main) -> None:
    plugin = tmp_path / "my_fusion.py"
    plugin.write_text(next(b for b in code_blocks("python") if b.startswith("# my_fusion.py")))
    model = tmp_path / "model.nk"
    (source,) = code_blocks("nk")
    model.write_text(source)
    result = niche_main(*documented_command({"model.nk": model, "my_fusion.py": plugin}),
                        "--reproducer-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    shown = next(b for b in code_blocks("") if "group 0 : f32[8,256]" in b)
    for line in shown.strip().splitlines():
        assert line in result.stdout
    graph = parse_graph(result.stdout)
    groups = graph.groups()
    assert [sorted(graph.node(n).op for n in members) for members in groups.values()] == [
        ["add", "gelu", "matmul"], ["add", "matmul", "relu"]]
    assert "fuse-bias-act: 1 rewrite (bias-act 1), 0 dead values removed" in result.stderr
    assert "fused into group 0 (matmul group by rule 'bias-act')" in result.stderr


def test_a_bad_option_is_reported_as_documented(tmp_path: Path, niche_main) -> None:
    plugin = tmp_path / "my_fusion.py"
    plugin.write_text(next(b for b in code_blocks("python") if b.startswith("# my_fusion.py")))
    model = tmp_path / "model.nk"
    model.write_text(code_blocks("nk")[0])
    result = niche_main("compile", str(model), "--load-pass", str(plugin), "--passes", "fuse-bias-act{activation=add}")
    assert result.returncode == 1
    assert "error: options of pass 'fuse-bias-act': 'add' is not a unary op" in result.stderr


def test_the_fusion_rule_example_vetoes_pairs(tmp_path: Path, niche_main) -> None:
    rules = tmp_path / "my_rules.py"
    rules.write_text(next(b for b in code_blocks("python") if "@fusion_rule" in b))
    model = tmp_path / "softmax.nk"
    model.write_text("def f(x: f32[4, 8]) { return softmax(x, axis=-1) }")
    result = niche_main("compile", str(model), "--load-pass", str(rules), "--explain-fusion")
    assert result.returncode == 0, result.stderr
    assert (f"not fused [user-rule]: rule 'keep-exp-apart' ({rules}): exp results stay in memory for the "
            "profiler") in result.stderr
    graph = parse_graph(result.stdout)
    (exp,) = [n for n, node in graph.nodes() if node.op == "exp"]
    users = {graph.node(u).group for u in graph.users(exp)}
    assert graph.node(exp).group not in users
