"""`niche compare` and `niche targets`: the side-by-side table, winners and reasons, the JSON schema,
skipped targets (never a placeholder number), user specs, --batch, --plot and --measure."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

import compiler  # noqa: F401  (loads compiler.driver before targets.base, which it imports)
from targets.base import target_names
from targets.cost import SCHEMA as REPORT_SCHEMA
from targets.comparison import SCHEMA as COMPARE_SCHEMA

SPECS = Path(__file__).resolve().parents[2] / "targets" / "specs"


def cpu_spec_file(tmp_path: Path, name: str, **changes: str) -> str:
    """A copy of the shipped cpu spec under another name, with some lines replaced."""
    text = (SPECS / "cpu.toml").read_text().replace('name = "cpu"', f'name = "{name}"')
    for old, new in changes.items():
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def test_compare_prints_a_table_of_estimates_with_reasons(niche_main) -> None:
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "-D", "B=4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mlp (B=4): estimates from cost models, not measurements" in out
    for row in ("latency / step", "energy / step", "cost / step", "binding resource", "chips"):
        assert row in out
    assert "why:\n  cpu: " in out and "-bound" in out


def test_by_default_every_target_with_a_cost_model_is_priced() -> None:
    from targets.base import get_target
    from targets.comparison import resolve_targets
    usable, skipped = resolve_targets([], [])
    expected = [n for n in target_names() if callable(getattr(get_target(n), "estimate", None))]
    assert usable == expected and "cpu" in usable and "ref" not in usable and skipped == []


def test_targets_without_a_backend_are_skipped_with_a_note_and_no_number(niche_main) -> None:
    result = niche_main("compare", "examples/mlp.nk", "--targets", "cpu,tpu:v5e", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["target"] for r in data["reports"]] == ["cpu"]
    assert "skipped tpu:v5e: no 'tpu' backend in this build" in result.stderr
    assert data["skipped"] == [{"target": "tpu:v5e", "reason": data["skipped"][0]["reason"]}]


def test_json_has_the_documented_schema(niche_main) -> None:
    result = niche_main("compare", "--targets", "cpu", "examples/llama_decode.nk", "--json", "--batch", "3")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == COMPARE_SCHEMA and data["defines"]["B"] == 3
    (report,) = data["reports"]
    assert report["schema"] == REPORT_SCHEMA and report["estimate"] is True
    for key in ("target", "spec", "program", "placement", "kernels", "total", "energy", "money", "tokens",
                "assumptions", "explanation", "latency", "binding", "utilization", "level"):
        assert key in report
    assert report["tokens"]["tokens_per_step"] == 3 and report["tokens"]["users"] == 3
    assert report["tokens"]["tokens_per_second"] == pytest.approx(3 / report["latency"])
    assert report["energy"]["method"].startswith("TDP")
    assert any(a.startswith("batch: 3 user(s)") for a in report["assumptions"])
    assert sum(k["cost"]["latency"] for k in report["kernels"]) == pytest.approx(report["latency"])
    assert data["winners"]["latency"] == "cpu"


def test_a_user_spec_is_priced_beside_the_host_and_winners_are_marked(niche_main, tmp_path: Path) -> None:
    fast = cpu_spec_file(tmp_path, "fast", **{'value = 36, unit = "GB/s"': 'value = 3600, unit = "GB/s"'})
    result = niche_main("compare", "--targets", "cpu", "examples/llama_decode.nk", "--target-spec", fast,
                        "-D", "T=4096", "-D", "D=1024", "-D", "F=4096", "-D", "V=32000")
    assert result.returncode == 0, result.stderr
    assert f"cpu:{fast}" in result.stdout
    assert "* best on that metric" in result.stdout
    header, latency = result.stdout.splitlines()[1], result.stdout.splitlines()[2]
    assert header.split()[-1] == f"cpu:{fast}" and latency.endswith("*")  # the 100x memory wins on latency


def test_a_program_that_does_not_fit_gets_no_numbers(niche_main, tmp_path: Path) -> None:
    tiny = cpu_spec_file(tmp_path, "tiny",
                         **{'capacity = { value = 24, unit = "GB"': 'capacity = { value = 1, unit = "MB"'})
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--target-spec", tiny, "--json")
    data = json.loads(result.stdout)
    report = next(r for r in data["reports"] if r["target"] == f"cpu:{tiny}")
    assert report["latency"] is None and report["energy"] is None and report["kernels"] == []
    assert report["placement"]["fits"] is False and "does not fit" in report["explanation"]
    text = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--target-spec", tiny).stdout
    assert "does not fit" in text


def test_a_spec_file_is_priced_by_the_target_of_its_kind() -> None:
    from targets.comparison import resolve_targets
    path = str(SPECS / "h100.toml")
    usable, skipped = resolve_targets(["cpu"], [path])
    if "gpu" in target_names():
        assert usable == ["cpu", f"gpu:{path}"] and skipped == []
    else:
        assert usable == ["cpu"] and skipped[0].target == f"gpu:{path}"


def test_command_line_mistakes_are_user_errors(niche_main, tmp_path: Path) -> None:
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--batch", "2")
    assert result.returncode == 0  # mlp has a B
    result = niche_main("compare", "--targets", "cpu", "examples/attention.nk", "--batch", "2", "-D", "B=1")
    assert result.returncode == 0
    no_batch = tmp_path / "nobatch.nk"
    no_batch.write_text("def f(x: f32[4]) -> f32[4] { return x * 2.0 }\n")
    result = niche_main("compare", "--targets", "cpu", str(no_batch), "--batch", "2")
    assert result.returncode == 1 and "--batch binds the batch dimension B" in result.stderr
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--chips", "0")
    assert result.returncode == 1 and "--chips must be at least 1" in result.stderr
    result = niche_main("compare", "examples/mlp.nk", "--targets", "tpu,npu:x")
    assert result.returncode == 1 and "no target to price" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nkind = "cpu"\ndescription = "x"\n[power]\ntdp = 5\n')
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--target-spec", str(bad))
    assert result.returncode == 1 and "power.tdp: bare number" in result.stderr and "Traceback" not in result.stderr


def test_plot_without_matplotlib_says_how_to_get_it(niche_main, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--plot", str(tmp_path / "out.png"))
    assert result.returncode == 1 and "--plot needs matplotlib" in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_plot_writes_a_png(niche_main, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "out.png"
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--plot", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"\x89PNG")


def test_kernels_lists_the_costliest(niche_main) -> None:
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--kernels", "2")
    assert "cpu: costliest kernels" in result.stdout
    assert result.stdout.count("\n  matmul") + result.stdout.count("\n  fused") <= 2


def test_measure_prints_measured_beside_predicted(niche_main, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if "cpu" not in target_names():
        pytest.skip("no cpu backend")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the cpu target's object cache
    result = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--measure", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    measured = data["measured"]["cpu"]
    report = data["reports"][0]
    assert report["level"] == "loops"  # priced on the loop IR it ran
    assert set(measured) == {k["name"] for k in report["kernels"]}
    assert all(seconds > 0 for seconds in measured.values())
    text = niche_main("compare", "--targets", "cpu", "examples/mlp.nk", "--measure").stdout
    assert "predicted and measured time per kernel" in text and "meas/pred" in text


def test_niche_targets_lists_targets_and_specs(niche_main) -> None:
    result = niche_main("targets")
    assert result.returncode == 0
    for name in target_names():
        assert f"\n  {name} " in result.stdout or result.stdout.startswith(f"  {name} ")
    for spec in ("a100", "h100", "h200", "b200", "groq-tsp", "wse2", "wse3", "cpu"):
        assert f"  {spec} " in result.stdout
    data = json.loads(niche_main("targets", "--json").stdout)
    assert {s["name"] for s in data["specs"]} >= {"h100", "wse3"}
    assert any(t["name"] == "cpu" and t["cost_model"] for t in data["targets"])


def test_niche_targets_shows_where_each_value_comes_from(niche_main) -> None:
    result = niche_main("targets", "--spec", "h100")
    assert "memory.hbm.bandwidth" in result.stdout and "3.35 TB/s" in result.stdout
    assert "[S]" in result.stdout and "assumption:" in result.stdout
    host = niche_main("targets", "--spec", "cpu").stdout
    assert "cpu.cores" in host and "[H]" in host  # read from this machine
    missing = niche_main("targets", "--spec", "nosuchchip")
    assert missing.returncode == 1 and "no hardware spec named 'nosuchchip'" in missing.stderr


class _Terminal:
    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.text = ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_the_progress_bar_shows_only_on_a_terminal() -> None:
    from compiler.commands.compare import Progress

    quiet = Progress(2, _Terminal(tty=False))
    quiet.start -= 5
    quiet.step("pricing cpu")
    quiet.close()
    assert quiet.stream.text == ""
    slow = Progress(2, _Terminal(tty=True))
    slow.start -= 5  # as if the comparison had been running for 5 s
    slow.step("pricing cpu")
    slow.step("pricing gpu:h100")
    slow.close()
    assert "0/2 pricing cpu" in slow.stream.text and "1/2 pricing gpu:h100" in slow.stream.text
    assert slow.stream.text.endswith("\r")  # the line is cleared at the end


def test_a_target_that_refuses_the_program_is_skipped_with_its_reason(niche_main, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import targets.base as base
    (tmp_path / "refusing_target.py").write_text(
        "from targets.base import TargetError\n"
        "class Refusing:\n"
        "    name, summary, spec = 'refusing', 'refuses every program', None\n"
        "    def __init__(self, variant=None):\n"
        "        pass\n"
        "    def compile(self, graph, options):\n"
        "        raise TargetError('refusing: no kernel for matmul')\n"
        "    def estimate(self, artifact):\n"
        "        raise AssertionError('never priced')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(base._TARGETS, "refusing", "refusing_target:Refusing")
    monkeypatch.setattr(base, "_INSTANCES", dict(base._INSTANCES))
    result = niche_main("compare", "examples/mlp.nk", "--targets", "cpu,refusing", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["target"] for r in data["reports"]] == ["cpu"]
    assert data["skipped"] == [{"target": "refusing", "reason": "refusing: no kernel for matmul"}]
    alone = niche_main("compare", "examples/mlp.nk", "--targets", "refusing")
    assert alone.returncode == 1 and "no target could price the program: refusing: refusing: no kernel" in alone.stderr
    wrong_kind = niche_main("compare", "examples/mlp.nk", "--targets", "cpu:h100")
    assert wrong_kind.returncode == 1 and "describes a gpu, not a cpu" in wrong_kind.stderr
