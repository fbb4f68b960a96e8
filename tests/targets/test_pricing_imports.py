"""Pricing a program (`niche compare`) never generates code, so it does not import the code generators
nor the loop IR: they are imported where code is built (`niche run`, `niche compile`; the cpu target's
own tests build code)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Imported only to build code: the CPU's artifact, LLVM code generator and JIT compile step; the loop IR.
BUILD_ONLY = ("targets.cpu.artifact", "targets.cpu.compile", "targets.cpu.codegen", "ir.loops")

_PRICE = """
import sys
from targets.comparison import run_comparison
comparison = run_comparison("examples/mlp.nk", ["cpu", "gpu:h100", "wse:wse3"], [], {"B": 2}, jobs=1)
assert [r.target for r in comparison.reports] == ["cpu", "gpu:h100", "wse:wse3"]
print(",".join(sys.modules))
"""


def test_pricing_imports_no_code_generator_nor_loop_ir() -> None:
    result = subprocess.run([sys.executable, "-c", _PRICE], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imported = result.stdout.strip().split(",")
    assert "targets.cpu.cost" in imported and "targets.wse.cost" in imported  # it did price
    assert [name for name in imported if name.startswith(BUILD_ONLY)] == []
