"""`python -m benchmarks` runs (a smoke test at small sizes: the table prints, results agree; no timings
are asserted)."""

from __future__ import annotations

from benchmarks.__main__ import main


def test_quick_benchmarks_print_a_table(capsys) -> None:
    assert main(["--quick", "--repeats", "1", "--threads", "1", "gelu_fused", "softmax", "matmul_512"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["case", "numpy", "ms", "niche"]
    assert [line.split()[0] for line in lines[1:]] == ["gelu_fused", "softmax", "matmul_256"]
    for line in lines[1:]:
        assert float(line.split()[-1]) < 1e-4  # Niche's result agrees with numpy's
