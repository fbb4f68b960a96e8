"""The `niche` command: help and version, `run --check` on every example, inputs from .npy/.npz, outputs
to .npz, `compile --emit`, resuming from a saved graph, and user errors (exit status 1 or 2, diagnostics
on stderr, never a traceback).

The examples, --version, --help and a file full of errors run as a user runs them, `python -m compiler`
in a subprocess (the `niche` fixture); the rest call `compiler.cli.main` in this process (`niche_main`),
which prints and returns exactly what the command would."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.nk"))


def subcommands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def assert_user_error(result, status: int = 1) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr


def test_version(niche) -> None:
    result = niche("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"niche {compiler.__version__}"


def test_help(niche) -> None:
    result = niche("--help")
    assert result.returncode == 0
    for command in ("compile", "run"):
        assert command in result.stdout


@pytest.mark.parametrize("command", subcommands())
def test_help_of_each_subcommand(niche_main, command: str) -> None:
    result = niche_main(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: niche {command}")
    assert len(result.stdout.splitlines()) > 4  # a description and the options, not only the usage line


def test_no_command_prints_help(niche) -> None:
    result = niche()
    assert result.returncode == 2 and "usage: niche" in result.stdout


@pytest.fixture(scope="module")
def example_runs(niche_concurrently) -> dict:
    """`niche run EXAMPLE --target ref --check` for every example (and code_completion's other entry),
    all started at once."""
    commands = {path.stem: ["run", str(path.relative_to(ROOT)), "--target", "ref", "--check"] for path in EXAMPLES}
    commands["code_completion:prompt"] = ["run", "examples/code_completion.nk", "--entry", "prompt", "--check"]
    return niche_concurrently(commands)


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES] + ["code_completion:prompt"])
def test_run_check_every_example(example_runs: dict, name: str) -> None:
    result = example_runs[name]
    assert result.returncode == 0, result.stderr
    entry = name.partition(":")[2]
    assert result.stdout.startswith(f"{entry}: ") if entry else "computed by" in result.stdout
    checks = [line for line in result.stdout.splitlines() if "check against the reference" in line]
    assert checks and all("matches" in line for line in checks)


def test_run_with_inputs_and_output(niche_main, tmp_path: Path) -> None:
    source = tmp_path / "axpy.nk"
    source.write_text("def axpy(a: f32[], x: f32[N], y: f32[N]) -> f32[N] { return a * x + y }\n")
    np.save(tmp_path / "x.npy", np.arange(4, dtype=np.float32))
    np.savez(tmp_path / "ay.npz", a=np.float32(2.0), y=np.ones(4, np.float32))
    out = tmp_path / "out" / "result.npz"
    result = niche_main("run", str(source), "--input", f"x={tmp_path / 'x.npy'}", "--input", str(tmp_path / "ay.npz"),
                   "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "output 0: f32[4]" in result.stdout
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["output0"], [1, 3, 5, 7])
    assert [p.name for p in out.parent.iterdir()] == ["result.npz"]  # no temporary file left behind


def test_a_failed_run_leaves_an_earlier_output_alone(niche_main, tmp_path: Path) -> None:
    out = tmp_path / "result.npz"
    out.write_bytes(b"earlier")
    np.save(tmp_path / "x.npy", np.zeros((2, 2), np.float64))
    result = niche_main("run", "examples/mlp.nk", "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out))
    assert_user_error(result)
    assert out.read_bytes() == b"earlier"


def test_input_errors(niche_main, tmp_path: Path) -> None:
    result = niche_main("run", "examples/mlp.nk", "--input", "x=missing.npy")
    assert_user_error(result)
    assert "error: --input x=missing.npy: no such file 'missing.npy'" in result.stderr
    np.save(tmp_path / "z.npy", np.zeros(3))
    result = niche_main("run", "examples/mlp.nk", "--input", f"z={tmp_path / 'z.npy'}")
    assert_user_error(result)
    assert "--input names no parameter of 'mlp': z (parameters: x, w1, b1, w2)" in result.stderr


def test_run_binds_dimensions_from_inputs(niche_main, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 784), np.float32))
    result = niche_main("run", "examples/mlp.nk", "--input", f"x={tmp_path / 'x.npy'}", "--check")
    assert result.returncode == 0, result.stderr
    assert "output 0: f32[3,10]" in result.stdout


def test_compile_emits_graph_and_dot(niche_main, tmp_path: Path) -> None:
    result = niche_main("compile", "examples/mlp.nk", "-D", "B=64")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("graph @mlp(") and "dims(B=64)" in result.stdout
    dot = tmp_path / "mlp.dot"
    result = niche_main("compile", "examples/mlp.nk", "--emit", "dot", "-o", str(dot))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and dot.read_text().startswith("digraph")


def test_compile_resumes_from_a_saved_graph(niche_main, tmp_path: Path) -> None:
    pytest.importorskip("ir.graph_parser", reason="the graph parser (ir/graph_parser.py) is not built yet")
    saved = tmp_path / "saved.graph"
    result = niche_main("compile", "examples/attention.nk", "--emit", "graph", "-o", str(saved))
    assert result.returncode == 0, result.stderr
    again = niche_main("compile", str(saved))
    assert again.returncode == 0, again.stderr
    assert again.stdout == saved.read_text()
    result = niche_main("run", str(saved), "--check")
    assert result.returncode == 0, result.stderr


def test_defines_with_dtypes(niche_main) -> None:
    result = niche_main("run", "examples/llama_decode.nk", "-D", "DT=f32", "-D", "L=1")
    assert result.returncode == 0, result.stderr
    assert "output 1: f32[1,2,2,16]" in result.stdout


# -- user errors -------------------------------------------------------------------------------------

def test_several_errors_exit_1_without_a_traceback(niche, tmp_path: Path) -> None:
    source = tmp_path / "bad.nk"
    source.write_text("def f(x: f32[4], y: f32[3]) -> f32[4] {\n"
                      "    a = x + y\n"
                      "    b = sofmax(x)\n"
                      "    return x\n}\n")
    result = niche("compile", str(source))
    assert_user_error(result)
    assert result.stdout == ""
    assert result.stderr == (
        f"{source}:2:11: error: '+': shapes [4] and [3] do not broadcast (dimension 4 vs 3)\n"
        "        a = x + y\n"
        "              ^\n"
        f"{source}:3:9: error: unknown function 'sofmax'; did you mean 'softmax'?\n"
        "        b = sofmax(x)\n"
        "            ^\n")


@pytest.mark.parametrize("text, message", [
    ("def f(x: f32[4]) -> f32[4] {\n    return x $ 2\n}\n", ":2:14: error: unexpected character '$'"),
    ("def f(x: f32[4]) -> f32[4] {\n    return x +\n}\n", ":2:15: error: unexpected end of line"),
    ("def f(x: f32[4]) -> f32[4] {\n", ":1:29: error: unexpected end of file"),
    ("def f(x: f32[N]) -> f32[N] {\n    return x\n}\n", ":1:14: error: dimension 'N' has no value"),
], ids=["lexing", "parsing", "end-of-file", "unbound-dimension"])
def test_source_errors(niche_main, tmp_path: Path, text: str, message: str) -> None:
    source = tmp_path / "bad.nk"
    source.write_text(text)
    for command in ("compile", "run"):
        result = niche_main(command, str(source))
        assert_user_error(result)
        assert result.stderr.startswith(f"{source}{message}")


@pytest.mark.parametrize("args, status, message", [
    (["compile", "examples/mlp.nk", "-D", "B=lots"], 2,
     "niche: error: argument -D: the value of B must be a number or a dtype, got 'lots'"),
    (["compile", "examples/mlp.nk", "-D", "B"], 2, "niche: error: argument -D: expected NAME=VALUE, got 'B'"),
    (["compile", "examples/mlp.nk", "--entry", "nope"], 1, "error: no function named 'nope' in examples/mlp.nk"),
    (["compile", "examples/missing.nk"], 1, "error: cannot read examples/missing.nk"),
    (["compile", "examples/mlp.nk", "--emit", "nonsense"], 1, "error: target 'ref' cannot emit 'nonsense'"),
    (["run", "examples/mlp.nk", "--target", "nonesuch"], 1, "error: unknown target 'nonesuch'"),
    (["compile", "examples/mlp.nk", "-O", "7"], 2, "niche: error: argument -O: invalid choice"),
], ids=["define-value", "define-form", "entry", "missing-file", "emit", "target", "opt-level"])
def test_command_line_errors(niche_main, args: list[str], status: int, message: str) -> None:
    result = niche_main(*args)
    assert_user_error(result, status)
    assert message in result.stderr


def test_run_several_files_checks_each_and_gives_one_verdict(niche_main, tmp_path: Path) -> None:
    broken = tmp_path / "broken.nk"
    broken.write_text("def f(x: f32[4]) -> f32[4] { return x + y }\n")
    result = niche_main("run", "examples/mlp.nk", "examples/attention.nk", "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mlp: ") and "\nattention: " in result.stdout
    result = niche_main("run", "examples/mlp.nk", str(broken), "--check")
    assert result.returncode == 1
    assert "mlp: " in result.stdout  # the good program still ran
    assert f"{broken}:1:41: error: unknown name 'y'" in result.stderr
    assert f"1 of 2 programs failed: {broken}" in result.stderr
    result = niche_main("run", "examples/mlp.nk", "examples/attention.nk", "--input", "x=x.npy")
    assert result.returncode == 1 and "give a single FILE" in result.stderr
