"""Helpers shared by the LPU target's tests: build example graphs (with the graph passes, as the driver
does), compile them for the LPU, simulate the listing, and compare with the reference interpreter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compiler.checking import compare
from compiler.driver import compile as compile_file
from compiler.inputs import random_inputs
from ir.dtypes import DType
from ir.graph import Graph
from ir.interpreter import run_graph
from targets.lpu.build import Build, build_program
from targets.lpu.listing import parse_listing, print_listing
from targets.lpu.machine import LpuMachine, load_machine
from targets.lpu.simulator import simulate

ROOT = Path(__file__).resolve().parents[3]


def example_graph(name: str, entry: str | None = None, **defines: Any) -> Graph:
    return compile_file(ROOT / "examples" / f"{name}.nk", target="ref", defines=defines, entry=entry).graph


def build(graph: Graph, machine: LpuMachine | None = None, **options: Any) -> Build:
    return build_program(graph, machine or load_machine(), options)


def simulate_listing(text: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    return simulate(parse_listing(text), inputs)


def check_outputs(graph: Graph, outputs: list[np.ndarray], inputs: dict[str, np.ndarray],
                  tolerance: DType | None = None) -> None:
    """Assert every output matches the reference interpreter within its dtype's (or `tolerance`'s) tolerance."""
    expected = run_graph(graph, inputs)
    assert len(outputs) == len(expected)
    for index, (actual, reference, node) in enumerate(zip(outputs, expected, graph.outputs)):
        dtype = tolerance or graph.node(node).type.dtype
        result = compare(actual, reference, dtype, f"output {index}")
        assert result.ok, result.message


def run_and_check(graph: Graph, machine: LpuMachine | None = None, seed: int = 0,
                  tolerance: DType | None = None, **options: Any) -> Build:
    """Compile, print the listing, parse it back, simulate it, and compare with the reference."""
    result = build(graph, machine, **options)
    inputs = random_inputs(graph, seed)
    check_outputs(graph, simulate_listing(print_listing(result.program), inputs), inputs, tolerance)
    return result


class LpuHelpers:
    """The helpers above, handed to tests as the `lpu` fixture (test modules cannot import conftest)."""

    example_graph = staticmethod(example_graph)
    build = staticmethod(build)
    simulate_listing = staticmethod(simulate_listing)
    check_outputs = staticmethod(check_outputs)
    run_and_check = staticmethod(run_and_check)


@pytest.fixture(scope="session")
def lpu() -> type[LpuHelpers]:
    return LpuHelpers
