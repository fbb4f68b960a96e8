"""Every pass flag from the command line, `niche passes`, and failing plugins end to end."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from ir.graph_parser import parse_graph
from passes import manager

ROOT = Path(__file__).resolve().parents[2]
MLP = "examples/mlp.nk"


def test_niche_passes_lists_every_pass_and_the_pipelines(niche_main, tmp_path: Path) -> None:
    plugin = tmp_path / "extra.py"
    plugin.write_text("from passes.registry import Pass, register_pass\n@register_pass\nclass E(Pass):\n"
                      "    name = 'extra-pass'\n    summary = 'an extra pass from a file'\n"
                      "    def run(self, graph, ctx):\n        return graph.copy()\n")
    result = niche_main("passes", "--load-pass", str(plugin))
    assert result.returncode == 0, result.stderr
    for name in ("canonicalize", "cse", "dce", "fuse-elementwise", "fuse-reductions", "fuse-epilogue"):
        assert f"  {name} " in result.stdout
    assert "an extra pass from a file  [" + str(plugin) + "]" in result.stdout
    assert "options: max-group=none (int | none), max-working-set=none (int | none), recompute=true (bool)" \
        in result.stdout
    assert "  -O0  (no passes)\n  -O1  canonicalize,cse,dce\n" in result.stdout


def test_passes_with_options(niche_main) -> None:
    result = niche_main("compile", MLP, "--passes", "fuse-reductions{max-group=2}")
    assert result.returncode == 0, result.stderr
    groups = parse_graph(result.stdout).groups()
    assert groups and all(len(members) <= 2 for members in groups.values())


def test_bad_pipelines_are_user_errors(niche_main) -> None:
    result = niche_main("compile", MLP, "--passes", "cse,,dce")
    assert result.returncode == 1
    assert "error: --passes: expected a pass name, found ','" in result.stderr
    assert niche_main("compile", MLP, "--passes", "fuse").returncode == 1


def test_print_ir_after_all_and_after_name(niche_main) -> None:
    result = niche_main("compile", MLP, "-O1", "--print-ir-after-all")
    assert result.stdout.count("// ----- IR after") == 3
    result = niche_main("compile", MLP, "--print-ir-after=cse", "--print-ir-after", "dce,fuse-reductions")
    headers = [line for line in result.stdout.splitlines() if line.startswith("// -----")]
    assert headers == ["// ----- IR after cse ----- //", "// ----- IR after dce ----- //",
                       "// ----- IR after fuse-reductions ----- //"]
    unknown = niche_main("compile", MLP, "--print-ir-after", "cse2")
    assert unknown.returncode == 1 and "unknown pass 'cse2'; did you mean 'cse'?" in unknown.stderr


def test_timing_stats_and_explain_go_to_stderr(niche_main) -> None:
    result = niche_main("compile", MLP, "--pass-timing", "--pass-stats", "--explain-fusion")
    assert result.returncode == 0
    parse_graph(result.stdout)  # stdout holds only the IR
    assert "pass timing (wall clock, 6 passes" in result.stderr
    assert "pass statistics:\n" in result.stderr
    assert "  fuse-epilogue: 3 nodes into 1 group, 64.0 KiB of intermediate traffic removed\n" in result.stderr
    assert "fuse-reductions: %4 (reduce_max) at <prelude>:6:9 -> %5 (sub) at <prelude>:7:15: fused into group 1" \
        in result.stderr
    assert "not fused [cycle]: %4 (reduce_max) at <prelude>:6:9 depends on the group" in result.stderr


def test_verify_each(niche_main, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "VERIFY_EACH_DEFAULT", False)
    quiet = niche_main("compile", MLP, "--pass-timing")
    assert "(verifier)" not in quiet.stderr
    checked = niche_main("compile", MLP, "--pass-timing", "--verify-each")
    assert checked.returncode == 0 and "(verifier)" in checked.stderr


def test_fusion_working_set(niche_main) -> None:
    result = niche_main("compile", MLP, "--fusion-working-set", "500", "--explain-fusion")
    assert result.returncode == 0
    assert not parse_graph(result.stdout).groups()  # the smallest group, the softmax, needs 640 bytes
    assert "not fused [working-set]" in result.stderr and "over the limit of 500 B" in result.stderr
    fits = niche_main("compile", MLP, "--fusion-working-set", "1KiB")
    assert len(parse_graph(fits.stdout).groups()) == 1
    bad = niche_main("compile", MLP, "--fusion-working-set", "lots")
    assert bad.returncode == 2 and "expected an integer" in bad.stderr


def test_run_takes_the_pass_flags(niche_main) -> None:
    result = niche_main("run", MLP, "--passes", "canonicalize,fuse-elementwise", "--pass-stats", "--check")
    assert result.returncode == 0, result.stderr
    assert "matches" in result.stdout and "fuse-elementwise: 4 nodes into 2 groups" in result.stderr


BAD_PLUGIN = """
from passes.registry import Pass, register_pass
from ir.types import TensorType

@register_pass
class BreakTypes(Pass):
    name = "break-types"
    summary = "gives every relu a wrong type"

    def run(self, graph, ctx):
        graph = graph.copy()
        for node, payload in list(graph.nodes()):
            if payload.op == "relu":
                graph.set_node(node, payload.replace(type=TensorType((1,), payload.type.dtype)))
        return graph
"""


def test_a_failing_plugin_exits_1_and_its_replay_command_reproduces_it(niche_main, tmp_path: Path) -> None:
    plugin = tmp_path / "my_pass.py"
    plugin.write_text(BAD_PLUGIN)
    repro = tmp_path / "repro"
    result = niche_main("compile", MLP, "--load-pass", str(plugin), "--passes", "canonicalize,break-types",
                        "--reproducer-dir", str(repro))
    assert result.returncode == 1 and result.stdout == ""
    assert f"error: pass 'break-types' (from {plugin}) left an invalid graph:\n" in result.stderr
    assert "%2 (relu): expected type f32[8,512] but found f32[1]" in result.stderr
    assert "Traceback" not in result.stderr
    saved = repro / "mlp.break-types.graph"
    assert f"note: reproducer: {saved} holds the graph IR before the pass" in result.stderr
    (command,) = [line.split("with: ", 1)[1] for line in result.stderr.splitlines() if "replay just that pass" in line]
    words = shlex.split(command)
    assert words == ["niche", "compile", str(saved), "--passes", "break-types", "--load-pass", str(plugin),
                     "--verify-each"]
    replay = niche_main(*words[1:], "--reproducer-dir", str(tmp_path / "again"))
    assert replay.returncode == 1 and "expected type f32[8,512] but found f32[1]" in replay.stderr


def test_the_default_reproducer_dir_is_under_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    from compiler.cli import main
    plugin = tmp_path / "my_pass.py"
    plugin.write_text(BAD_PLUGIN)
    monkeypatch.chdir(tmp_path)
    status = main(["compile", str(ROOT / MLP), "--load-pass", str(plugin), "--passes", "break-types"])
    assert status == 1
    assert (tmp_path / ".niche-repro" / "mlp.break-types.graph").is_file()
    assert "niche compile .niche-repro/mlp.break-types.graph --passes break-types" in capsys.readouterr().err
