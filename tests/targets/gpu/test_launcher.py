"""The launch description and the launcher. Without a GPU the launcher runs on `LoopDriver`, a stand-in
driver whose device memory is host bytes and whose "launch" runs the kernel's loop IR (ir.loop_eval) on
the buffers its pointer arguments address: the host side (allocation, the workspace offsets, bf16
storage, argument order, call order, copying back) is then checked end to end against the reference
interpreter (`LoopDriver` is in conftest.py). Tests marked `gpu` run the real thing and skip without an
NVIDIA GPU."""

from __future__ import annotations

import json

import numpy as np
import pytest

import compiler
from compiler.checking import compare
from compiler.inputs import random_inputs
from targets.base import TargetError
from targets.gpu.launch import SCHEMA, from_dict


TEXT = """
def f(x: f32[3, 24], w: f32[24, 9], s: bf16[3, 40]) {
    h = relu(x @ w)
    return h, softmax(s, axis=-1), sum(s, axis=1)
}
"""


def test_launch_description_has_the_documented_schema(graph) -> None:
    artifact = compiler.compile_string(TEXT, target="gpu").artifact
    data = json.loads(artifact.emit("launch"))
    assert data["schema"] == SCHEMA and data["arch"] == "sm_90" and data["program"] == "f"
    assert set(data) == {"schema", "program", "arch", "ptx", "buffers", "inputs", "outputs", "workspace", "kernels",
                         "calls"}
    buffers = {b["name"]: b for b in data["buffers"]}
    assert [buffers[name]["role"] for name in data["inputs"]] == ["input"] * 3
    assert buffers["s"]["storage"] == "bf16 as uint16 bits" and buffers["s"]["bytes"] == 3 * 40 * 2
    for kernel in data["kernels"]:
        assert kernel["grid"][1:] == [1, 1] and kernel["block"][1:] == [1, 1]
        assert kernel["block"][0] % 32 == 0 and kernel["dynamic_shared_bytes"] == 0
        assert all(set(p) == {"name", "dtype", "shape", "bytes"} for p in kernel["params"])
        assert f".entry {kernel['entry']}(" in artifact.emit("ptx")
    kernels = {k["name"]: k for k in data["kernels"]}
    for call in data["calls"]:
        assert len(call["args"]) == len(kernels[call["kernel"]]["params"])
        assert all(arg in buffers for arg in call["args"])
    offsets = data["workspace"]["offsets"]
    assert all(offset % 256 == 0 for offset in offsets.values())
    assert sorted(offsets) == sorted(b for b, info in buffers.items() if info["role"] == "intermediate")
    assert from_dict(data).to_dict() == {**data, "kernels": [{**k, "ptxas": None} for k in data["kernels"]]}


def test_compile_writes_the_launch_description_next_to_the_ptx(niche_main, tmp_path) -> None:
    result = niche_main("compile", "examples/mlp.nk", "--target", "gpu:h200", "--emit", "ptx", "-o",
                        str(tmp_path / "k.ptx"))
    assert result.returncode == 0, result.stderr
    assert "k.launch.json" in result.stderr
    description = json.loads((tmp_path / "k.launch.json").read_text())
    assert description["ptx"] == "k.ptx" and description["arch"] == "sm_90"
    assert ".target sm_90" in (tmp_path / "k.ptx").read_text()


def test_launcher_runs_the_program_like_the_interpreter(loop_driver) -> None:
    program = compiler.compile_string(TEXT, target="gpu")
    artifact = program.artifact
    inputs = random_inputs(program.graph, 0)
    driver = loop_driver(artifact.program)
    outputs = artifact.run(inputs, driver=driver)
    expected = program.run_reference(inputs)
    for index, (got, want, node) in enumerate(zip(outputs, expected, program.graph.outputs)):
        result = compare(got, want, program.graph.node(node).type.dtype, f"output {index}")
        assert result.ok, result.message
    assert [name for name, _, _ in driver.launches] == [call.kernel for call in artifact.program.calls]
    small = compiler.compile_string("def f(x: f32[5]) { return exp(x), x + 1.0 }", target="gpu").artifact
    times = small.time_kernels({"x": np.ones(5, np.float32)}, repeats=2, driver=loop_driver(small.program))
    assert set(times) == {call.kernel for call in small.program.calls} and all(t > 0 for t in times.values())


def test_run_without_a_gpu_says_so(niche_main) -> None:
    from targets.gpu.launcher import GpuUnavailable, find_driver
    try:
        find_driver()
    except GpuUnavailable:
        pass
    else:
        pytest.skip("this machine has an NVIDIA GPU")
    result = niche_main("run", "examples/mlp.nk", "--target", "gpu", "--check")
    assert result.returncode == 1
    assert "no NVIDIA GPU/driver found:" in result.stderr
    with pytest.raises(TargetError, match="no NVIDIA GPU/driver found"):
        compiler.compile("examples/mlp.nk", target="gpu")(*random_inputs(compiler.compile("examples/mlp.nk").graph,
                                                                         0).values())


@pytest.mark.gpu
@pytest.mark.parametrize("text", [TEXT, "def f(a: f32[67, 45], b: f32[45, 130]) { return tanh(a @ b) }",
                                  "def f(a: bf16[100, 72], b: bf16[72, 40]) { return a @ b }"])
def test_runs_on_the_gpu_like_the_interpreter(gpu_driver, text: str) -> None:
    program = compiler.compile_string(text, target="gpu")
    inputs = random_inputs(program.graph, 1)
    outputs = program.run(inputs)
    for index, (got, want, node) in enumerate(zip(outputs, program.run_reference(inputs), program.graph.outputs)):
        result = compare(got, want, program.graph.node(node).type.dtype, f"output {index}")
        assert result.ok, result.message
