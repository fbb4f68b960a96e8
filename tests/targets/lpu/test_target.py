"""The lpu target behind the common protocol and the command line; what it refuses, and how."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from compiler.diagnostics import NicheError
from compiler.driver import compile as compile_file
from compiler.driver import compile_string
from targets.base import TargetError, get_target, target_names

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_lpu_is_registered() -> None:
    assert "lpu" in target_names()
    target = get_target("lpu")
    assert target.spec.name == "groq-tsp"
    assert target.machine.lanes == 320 and target.machine.mem_slices == 88


def test_cli_compile_writes_a_listing_that_runs(tmp_path: Path, capsys) -> None:
    out = tmp_path / "prog.lpu"
    assert main(["compile", str(EXAMPLES / "mlp.nk"), "-D", "B=2", "--target", "lpu", "--emit", "lpu",
                 "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("; Niche LPU listing: @mlp") and text.rstrip().endswith(".end")


def test_cli_run_check_passes(capsys) -> None:
    assert main(["run", str(EXAMPLES / "mlp.nk"), "-D", "B=2", "--target", "lpu", "--check"]) == 0
    out = capsys.readouterr().out
    assert "LPU cycle-level simulator" in out and "matches" in out


def test_program_api_runs_on_the_simulator() -> None:
    program = compile_file(EXAMPLES / "mlp.nk", target="lpu", defines={"B": 1})
    rng = np.random.default_rng(0)
    args = {name: rng.standard_normal(spec.dims).astype(np.float32) for name, spec in
            zip(program.param_names, program.signature)}
    np.testing.assert_allclose(program(**args), program.reference(**args), rtol=2e-4, atol=1e-6)


def test_unknown_options_and_emit_kinds_are_refused() -> None:
    with pytest.raises(TargetError, match="no option"):
        compile_file(EXAMPLES / "mlp.nk", target="lpu", defines={"B": 1}, mesh="4x4").artifact
    program = compile_file(EXAMPLES / "mlp.nk", target="lpu", defines={"B": 1})
    with pytest.raises(NicheError, match="cannot emit 'ptx'"):
        program.ir("ptx")


def test_f64_is_refused_naming_the_op() -> None:
    source = "def f(x: f64[4]) -> f64[4] { return exp(x) }"
    program = compile_string(source, target="lpu")
    with pytest.raises(TargetError, match=r"lpu target: .*8-, 16- and 32-bit"):
        program.ir("lpu")


def test_an_i32_matmul_is_refused() -> None:
    source = "def f(a: i32[2, 3], @weight b: i32[3, 4]) -> i32[2, 4] { return a @ b }"
    with pytest.raises(TargetError, match=r"the MXM multiplies int8, fp16 and fp32 .* not i32 \(matmul"):
        compile_string(source, target="lpu").ir("lpu")


def test_an_empty_parameter_is_refused_not_a_crash() -> None:
    """A reduction over an empty parameter folded no vectors and recursed without end; refused up front."""
    program = compile_string("def f(x: f32[4, 0]) { return sum(x, axis=-1) }", target="lpu")
    with pytest.raises(TargetError, match=r"lpu target: parameter x is an empty tensor \(f32\[4,0\]\)"):
        program.ir("lpu")


def test_too_large_to_list_is_refused_with_a_hint() -> None:
    program = compile_file(EXAMPLES / "mlp.nk", target="lpu", defines={"B": 2}, max_instructions=100)
    with pytest.raises(TargetError, match="too many to schedule and list one by one"):
        program.ir("lpu")


def test_user_spec_file_changes_the_machine(tmp_path: Path) -> None:
    spec = (Path(__file__).resolve().parents[3] / "targets" / "specs" / "groq-tsp.toml").read_text()
    changed = spec.replace('stream_hop = { value = 1,', 'stream_hop = { value = 2,')
    path = tmp_path / "slow-streams.toml"
    path.write_text(changed.replace('name = "groq-tsp"', 'name = "slow-streams"'))
    fast = compile_file(EXAMPLES / "mlp.nk", target="lpu", defines={"B": 1})
    slow = compile_file(EXAMPLES / "mlp.nk", target=f"lpu:{path}", defines={"B": 1})
    assert slow.artifact.machine.stream_hop_cycles == 2
    assert slow.artifact.program.cycles > fast.artifact.program.cycles
    rng = np.random.default_rng(1)
    args = {name: rng.standard_normal(spec.dims).astype(np.float32) for name, spec in
            zip(slow.param_names, slow.signature)}
    np.testing.assert_allclose(slow(**args), slow.reference(**args), rtol=2e-4, atol=1e-6)
