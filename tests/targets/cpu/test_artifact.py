"""Calling compiled CPU code from Python: argument checks, out=, the reused workspace, concurrency."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from compiler import ArgumentError
from targets.base import TargetError

SOURCE = "def f(x: f32[B, 24], w: f32[24, 16]) { return softmax(x @ w, axis=-1), sum(x, axis=-1) }"


@pytest.fixture
def program(cpu_program):
    return cpu_program(SOURCE, defines={"B": 5})


def inputs(rows: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((rows, 24)).astype(np.float32),
            "w": rng.standard_normal((24, 16)).astype(np.float32)}


def test_results_match_reference(program) -> None:
    args = inputs()
    for got, want in zip(program.run(args), program.run_reference(args)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(x=a["x"].astype(np.float64)), "dtype float64, expected f32"),
    (lambda a: a.update(x=a["x"][:, :20]), "shape [5, 20], expected [5, 24]"),
    (lambda a: a.update(w=np.asfortranarray(a["w"])), "not C-contiguous"),
    (lambda a: a.update(x=[[1.0] * 24] * 5), "must be a numpy array"),
    (lambda a: a.pop("w"), "missing argument 'w'"),
    (lambda a: a.update(y=a["x"]), "no parameter named y"),
])
def test_artifact_rejects_bad_arguments(program, change, message: str) -> None:
    args = inputs()
    change(args)
    with pytest.raises(ArgumentError, match=re.escape(message)):
        program.artifact.run(args)


def test_misaligned_array_is_rejected(program) -> None:
    args = inputs()
    raw = np.zeros(5 * 24 * 4 + 1, dtype=np.uint8)
    args["x"] = raw[1:].view(np.float32).reshape(5, 24)
    with pytest.raises(ArgumentError, match="not aligned"):
        program.artifact.run(args)


def test_program_call_checks_shapes_before_native_code(program) -> None:
    with pytest.raises(ArgumentError, match=re.escape("has shape [25, 16], expected [24, 16]")):
        program(np.zeros((5, 24), np.float32), np.zeros((25, 16), np.float32))


def test_out_arrays_are_filled_in_place(program) -> None:
    args = inputs()
    out = [np.empty((5, 16), np.float32), None]
    results = program.artifact.run(args, out=out)
    assert results[0] is out[0]
    np.testing.assert_allclose(out[0], program.run_reference(args)[0], rtol=2e-5, atol=1e-6)
    assert results[1].shape == (5,)


@pytest.mark.parametrize("bad, message", [
    ([np.empty((5, 16), np.float64), None], "output 0 has dtype float64"),
    ([np.empty((16, 5), np.float32).T, None], "not C-contiguous"),
    ([np.empty((5, 16), np.float32)], "needs 2 entries"),
])
def test_bad_out_arrays_are_rejected(program, bad, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        program.artifact.run(inputs(), out=bad)


def test_read_only_or_overlapping_outputs_are_rejected(program) -> None:
    args = inputs()
    frozen = np.empty((5, 16), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ArgumentError, match="read-only"):
        program.artifact.run(args, out=[frozen, None])
    shared = np.empty(5 * 16 + 5, np.float32)
    with pytest.raises(ArgumentError, match="overlaps"):
        program.artifact.run(args, out=[shared[:80].reshape(5, 16), shared[75:80]])
    with pytest.raises(ArgumentError, match="overlaps"):
        program.artifact.run(args, out=[args["x"].reshape(-1)[:80].reshape(5, 16), None])


def test_workspace_is_reused_and_calls_are_repeatable(program) -> None:
    artifact = program.artifact
    first = artifact.run(inputs())
    workspace = artifact._workspace
    second = artifact.run(inputs())
    assert artifact._workspace is workspace
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_concurrent_calls_from_threads_agree(program) -> None:
    expected = program.artifact.run(inputs())
    results: list[list[np.ndarray]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                results.append(program.artifact.run(inputs()))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for result in results:
        for got, want in zip(result, expected):
            np.testing.assert_array_equal(got, want)


def test_symbolic_dimension_specialises_per_call(cpu_program) -> None:
    program = cpu_program(SOURCE)
    for rows in (1, 3):
        args = inputs(rows)
        got = program(**args)
        want = program.reference(**args)
        np.testing.assert_allclose(got[0], want[0], rtol=2e-5, atol=1e-6)


def test_bf16_values_travel_in_float32_containers(cpu_program) -> None:
    program = cpu_program("def f(x: bf16[7], y: bf16[7]) { return x * y + x }")
    rng = np.random.default_rng(3)
    x, y = (rng.standard_normal(7).astype(np.float32) for _ in range(2))
    got = program(x, y)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, program.reference(x, y))


@pytest.mark.parametrize("options, message", [
    ({"threads": 0}, "positive integer"),
    ({"threads": "two"}, "positive integer"),
    ({"schedule": "fast"}, "'cpu' or 'naive'"),
    ({"tiles": 3}, "no option"),
])
def test_bad_target_options_are_errors(cpu_program, options: dict, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        cpu_program("def f(x: f32[3]) { return x + 1.0 }", **options)


def test_unknown_emit_kind_is_an_error(program) -> None:
    with pytest.raises(TargetError, match="emits no 'ptx'"):
        program.artifact.emit("ptx")


def test_time_kernels_reports_every_kernel(program) -> None:
    times = program.artifact.time_kernels(inputs(), repeats=2)
    assert set(times) == set(program.artifact.program.kernels)
    assert all(seconds > 0 for seconds in times.values())
