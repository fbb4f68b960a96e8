"""Pricing never allocates the program's tensors, and its work grows linearly with the program.

Llama-3-70B-wide decode layers (D=8192, F=28672, vocabulary 128256) are priced at 2 and 6 layers: the
tensors are gigabytes, the pricing's memory peak stays far below, and the number of Python calls pricing
makes grows in proportion to the layers (counted, not timed)."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pytest

import compiler  # noqa: F401  (loads compiler.driver before targets.base)
from compiler.driver import Source
from targets.counts import count_graph
from targets.cpu.cost import estimate
from targets.spec import load_spec

SPECS = Path(__file__).resolve().parents[2] / "targets" / "specs"
WIDTHS = dict(D=8192, Hq=64, Hkv=8, Dh=128, F=28672, V=128256, B=1, T=4096)


@pytest.fixture(scope="module")
def big_host(tmp_path_factory: pytest.TempPathFactory):
    """The cpu spec with 2 TB of RAM, so that 70B-wide layers fit and every kernel gets priced."""
    text = (SPECS / "cpu.toml").read_text().replace('capacity = { value = 24, unit = "GB"',
                                                      'capacity = { value = 2, unit = "TB"')
    path = tmp_path_factory.mktemp("spec") / "bighost.toml"
    path.write_text(text.replace('name = "cpu"', 'name = "bighost"'))
    return load_spec(str(path))


def llama(layers: int):
    return Source.from_file("examples/llama_decode.nk").specialize({**WIDTHS, "L": layers}, None)


def calls_made(function, *args) -> int:
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        function(*args)
    finally:
        sys.setprofile(None)
    return count


def test_pricing_allocates_no_tensors(big_host) -> None:
    graph = llama(2)
    tensor_bytes = sum(graph.node(p).type.nbytes for p in graph.params)
    assert tensor_bytes > 5e9
    tracemalloc.start()
    try:
        report = estimate(graph, graph, big_host)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.fits and report.latency > 0
    assert report.binding == "mem:dram"  # batch-1 decode streams its weights
    assert peak < 50e6 < tensor_bytes / 100


def test_pricing_work_grows_linearly_with_layers(big_host) -> None:
    small, large = llama(2), llama(6)
    ratio = calls_made(estimate, large, large, big_host) / calls_made(estimate, small, small, big_host)
    assert 2.0 < ratio < 3.5  # 3x the layers (plus a fixed part); quadratic work would be ~9x
    count_ratio = calls_made(count_graph, large) / calls_made(count_graph, small)
    assert 2.0 < count_ratio < 3.5
