"""The `.wse` listing: placement, routes with colors and hops, and each role's per-PE program."""

from __future__ import annotations

import re

from compiler.driver import compile


def _listing(**options) -> str:
    return compile("examples/mlp.nk", target="wse", defines={"B": 2}, mesh="16x16", **options).ir("wse")


def test_listing_shows_placement_routes_and_programs() -> None:
    text = _listing()
    assert "== wafer 0:" in text
    assert re.search(r"r0\s+matmul\s+\d+x\d+\s+\(0,0\)", text)
    assert "routes" in text and re.search(r"c\d+ .*partial sums", text)
    assert re.search(r"c\d+\s+ch\d+\s+\(\d+,\d+\)\s+\d+ PEs?\s+\d+\s+\d+\s+\(\d+,\d+\) -> ", text)
    for opcode in ("LOAD", "FMAC", "RECV", "SEND", "VADD", "ROUND", "VRED", "STORE", "FREE"):
        assert f"  {opcode} " in text, opcode
    assert "[top]" in text and "[bottom]" in text and "[tile]" in text
    assert "(weight)" in text and "(input)" in text and "(output)" in text


def test_listing_is_deterministic() -> None:
    assert _listing() == _listing()


def test_streamed_weights_are_listed_as_such() -> None:
    text = _listing(weights="streamed")
    assert "weights streamed" in text and "(stream)" in text and "(weight)" not in text


def test_cli_writes_the_listing(niche_main, tmp_path) -> None:
    out = tmp_path / "prog.wse"
    result = niche_main("compile", "examples/mlp.nk", "-D", "B=2", "--target", "wse", "--emit", "wse", "--mesh", "12x12",
                   "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "mesh 12x12 PEs" in out.read_text()


def test_cli_run_check_uses_the_simulator(niche_main) -> None:
    result = niche_main("run", "examples/attention.nk", "--target", "wse:wse2", "--check", "--mesh", "12x12")
    assert result.returncode == 0, result.stderr
    assert "wafer-scale simulator (wse2, 12x12 PE mesh)" in result.stdout
    assert "matches" in result.stdout


def test_plot(niche_main, tmp_path) -> None:
    out = tmp_path / "wafer.png"
    result = niche_main("compile", "examples/mlp.nk", "-D", "B=2", "--target", "wse", "--plot", str(out))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result.returncode == 1
        assert "--plot needs matplotlib" in result.stderr and "Traceback" not in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_with_a_target_that_places_nothing(niche_main, tmp_path) -> None:
    result = niche_main("compile", "examples/mlp.nk", "--plot", str(tmp_path / "x.png"))
    assert result.returncode == 1 and "no placement to plot" in result.stderr
