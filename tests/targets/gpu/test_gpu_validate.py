"""benchmarks/gpu_validate.py without a GPU: it says why and exits 2; with the loop-IR stand-in driver
(conftest.LoopDriver) its whole path (compile, check, time, price, print) runs on a quick case."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import compiler  # noqa: F401  (the compiler package before targets.base)
from targets.gpu import launcher as gpu_launcher

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_validate.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_validate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_so_and_exits_2() -> None:
    try:
        gpu_launcher.find_driver()
        pytest.skip("this machine has an NVIDIA GPU")
    except gpu_launcher.GpuUnavailable:
        pass
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "mlp"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert "no NVIDIA GPU/driver found" in result.stderr


def test_the_whole_path_runs_on_a_stand_in_driver(monkeypatch, capsys, loop_driver) -> None:
    script = load_script()
    programs = []

    def build(target, case):
        program = compiler.compile(case[0], target=target, defines=case[1]) if isinstance(case, tuple) else \
            compiler.compile_string(case, target=target)
        programs.append(program)
        return program

    class LatestProgram(loop_driver):
        """The stand-in driver for whichever program the script compiled last."""

        def __init__(self) -> None:
            self.launches = []

        def load(self, ptx: str):
            loop_driver.__init__(self, programs[-1].artifact.program)
            return super().load(ptx)

    tiny = "def f(x: f32[4, 40], w: f32[40, 6]) { return softmax(x @ w, axis=-1), sum(x, axis=1) }"
    monkeypatch.setattr(script, "build", build)
    monkeypatch.setattr(script, "cases", lambda quick, only: [("tiny", tiny)])
    monkeypatch.setattr(gpu_launcher, "find_driver", LatestProgram)
    assert script.main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "== tiny" in out and "checked" in out and "meas/pred" in out
    assert "measured / predicted over" in out
