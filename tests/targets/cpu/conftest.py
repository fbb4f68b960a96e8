"""Fixtures of the CPU target's tests: compile .nk text for the cpu target and check it against the
reference interpreter, with compiled objects cached in a temporary directory (never ~/.cache)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from compiler import compile_string
from compiler.checking import compare
from compiler.inputs import random_inputs


@pytest.fixture(scope="session")
def cpu_cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("niche-cpu-cache")


@pytest.fixture
def cpu_program(cpu_cache) -> Callable:
    """compile_string(text, target="cpu", ...) with the test cache directory."""

    def build(text: str, **options):
        options.setdefault("cache_dir", str(cpu_cache))
        return compile_string(text, target="cpu", **options)

    return build


@pytest.fixture
def check_cpu(cpu_program) -> Callable:
    """Compile `text` for the cpu, run it on `inputs` (random ones by default) and assert that every
    output matches the reference interpreter within its dtype's tolerance. Returns the outputs."""

    def check(text: str, inputs: dict[str, np.ndarray] | None = None, seed: int = 0, **options) -> list[np.ndarray]:
        program = cpu_program(text, **options)
        inputs = random_inputs(program.graph, seed, inputs)
        actual = program.run(inputs)
        expected = program.run_reference(inputs)
        assert len(actual) == len(expected)
        for index, (got, want, node) in enumerate(zip(actual, expected, program.graph.outputs)):
            dtype = program.graph.node(node).type.dtype
            assert got.dtype == want.dtype, f"output {index}: dtype {got.dtype}, expected {want.dtype}"
            result = compare(got, want, dtype, f"output {index}")
            assert result.ok, result.message
        return actual

    return check
