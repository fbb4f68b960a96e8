"""Helpers shared by the top-level tests: running the `niche` command.

`niche` runs it as a subprocess (`python -m compiler ...`) from the repository root, exactly as a user
does, so that exit codes, stdout and stderr are what a user sees. `niche_main` calls `compiler.cli.main`
in this process (same exit codes and output, without the second of start-up time per call) for the
many tests that only need what the command prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _verify_after_every_pass(monkeypatch: pytest.MonkeyPatch):
    """In tests the graph verifier runs after every pass of every pipeline (--verify-each)."""
    from passes import manager
    monkeypatch.setattr(manager, "VERIFY_EACH_DEFAULT", True)
    yield


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_niche(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m compiler ARGS...` from the repository root; returns the completed process."""
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=ROOT, env=_environment(),
                          capture_output=True, text=True, timeout=timeout)


def run_niche_concurrently(commands: dict[str, list[str]],
                           timeout: float = 300) -> dict[str, subprocess.CompletedProcess]:
    """Run several `python -m compiler ...` commands at once (name -> arguments); results by name."""
    started = {name: subprocess.Popen([sys.executable, "-m", "compiler", *args], cwd=ROOT, env=_environment(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, args in commands.items()}
    results = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=timeout)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


@pytest.fixture
def niche():
    """The `niche` command as a function: niche("run", "examples/mlp.nk") -> CompletedProcess."""
    return run_niche


@pytest.fixture(scope="session")
def niche_concurrently():
    """Several `niche` commands at once: niche_concurrently({name: [args...]}) -> {name: CompletedProcess}."""
    return run_niche_concurrently


@dataclass(frozen=True)
class Completed:
    """What a run of the command left: like subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def niche_main(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """`compiler.cli.main` in this process, from the repository root: niche_main("run", ...) -> Completed."""
    from compiler.cli import main
    monkeypatch.chdir(ROOT)

    def run(*args: str) -> Completed:
        capsys.readouterr()
        try:
            status = main(list(args))
        except SystemExit as exit:  # argparse: --help, --version, usage errors
            status = exit.code if isinstance(exit.code, int) else 1
        out, err = capsys.readouterr()
        return Completed(status, out, err)

    return run
