"""The cpu target through the `niche` command: every example with --check, and each emit kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from targets.cpu.host import host_info

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(path.name for path in (ROOT / "examples").glob("*.nk"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_matches_reference(niche_main, example: str) -> None:
    result = niche_main("run", f"examples/{example}", "--target", "cpu", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "differ" not in result.stdout
    assert result.stdout.count("matches") >= 1


ELEMENTWISE = "def f(x: f32[65536], y: f32[65536]) {{ return {body} }}"


def emit(niche_main, tmp_path: Path, text: str, kind: str, *flags: str) -> str:
    source = tmp_path / "k.nk"
    source.write_text(text)
    result = niche_main("compile", str(source), "--target", "cpu", "--emit", kind, *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_emit_loops_shows_the_schedule(niche_main, tmp_path: Path) -> None:
    text = emit(niche_main, tmp_path, ELEMENTWISE.format(body="exp(x) * y"), "loops")
    assert "vectorize" in text and "parallel" in text


def test_emit_llvm_is_optimised_vector_ir(niche_main, tmp_path: Path) -> None:
    text = emit(niche_main, tmp_path, ELEMENTWISE.format(body="tanh(x) + y"), "llvm")
    lanes = host_info().vector_bits // 32
    assert f"<{lanes} x float>" in text
    assert "GOMP_parallel" in text


def test_asm_uses_wide_vector_registers_and_no_math_calls(niche_main, tmp_path: Path) -> None:
    """The host's widest registers carry the vector code (ymm with AVX2, zmm with AVX-512), and the
    transcendental functions are inline (the only calls are OpenMP's and the kernels')."""
    text = emit(niche_main, tmp_path, ELEMENTWISE.format(body="gelu(x * y + 1.0) + exp(x) + sin(y)"), "asm")
    register = {512: "zmm", 256: "ymm", 128: "xmm"}[host_info().vector_bits]
    assert re.search(rf"\bv\w+\s+.*%{register}\d+", text), f"no {register} instructions"
    called = set(re.findall(r"call\w*\s+\*?%?(\w+)", text))
    assert not called & {"expf", "exp", "tanhf", "tanh", "sinf", "sin", "logf", "powf"}


def test_emit_obj_writes_an_elf_object(niche_main, tmp_path: Path) -> None:
    source = tmp_path / "k.nk"
    source.write_text(ELEMENTWISE.format(body="x - y"))
    result = niche_main("compile", str(source), "--target", "cpu", "--emit", "obj", "-o", str(tmp_path / "k.o"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "k.o").read_bytes()[:4] == b"\x7fELF"


def test_unknown_emit_kind_is_a_user_error(niche_main, tmp_path: Path) -> None:
    source = tmp_path / "k.nk"
    source.write_text(ELEMENTWISE.format(body="x"))
    result = niche_main("compile", str(source), "--target", "cpu", "--emit", "ptx")
    assert result.returncode == 1
    assert "cannot emit 'ptx'" in result.stderr or "emits no 'ptx'" in result.stderr
