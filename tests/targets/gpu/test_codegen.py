"""The GPU code generator: LLVM IR for nvptx64-nvidia-cuda with the kernel conventions LLVM expects, and PTX
that NVIDIA's ptxas accepts for sm_80, sm_90 and sm_100 for every example (where ptxas is installed)."""

from __future__ import annotations

import functools
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import compiler
from targets.base import CompileOptions, TargetError, get_target
from targets.gpu import ptx as ptx_backend
from targets.gpu.ptxas import PtxasError, assemble, parse_report

EXAMPLES = sorted(p.stem for p in Path("examples").glob("*.nk") if p.stem != "sparse_mlp")
ARCHS = ("sm_80", "sm_90", "sm_100")


@functools.cache
def example_artifact(name: str):
    program = compiler.compile(f"examples/{name}.nk", target="gpu")
    return program.artifact


def test_llvm_kernels_follow_the_nvptx_conventions(graph) -> None:
    text = "def f(x: f32[4, 500], a: bf16[32, 32], b: bf16[32, 32]) { return softmax(x, axis=-1), a @ b }"
    artifact = get_target("gpu").compile(graph(text), CompileOptions(target="gpu"))
    module = artifact.module_text()
    assert 'target triple = "nvptx64-nvidia-cuda"' in module
    kernels = re.findall(r"^define ptx_kernel void @\"?([\w.]+)\"?\((.*)\) nounwind$", module, re.MULTILINE)
    assert len(kernels) == len(artifact.program.kernels)
    for _, params in kernels:
        assert all("ptr addrspace(1)" in p for p in params.split(","))  # global buffers
    assert "!nvvm.annotations" in module and '!"maxntidx"' in module
    assert "addrspace(3) global" in module  # shared memory
    assert "llvm.nvvm.read.ptx.sreg.tid.x" in module and "llvm.nvvm.read.ptx.sreg.ctaid.x" in module
    assert "llvm.nvvm.shfl.sync.bfly.i32" in module  # the block reduction of the long softmax rows
    assert "llvm.nvvm.barrier.cta.sync.aligned.all" in module
    assert "llvm.nvvm.mma.m16n8k16.row.col.bf16" in module  # the bf16 matmul on tensor cores
    ptx = artifact.ptx()
    assert ".entry" in ptx and "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in ptx
    assert "shfl.sync.bfly" in ptx and "bar.sync" in ptx and ".maxntid" in ptx


def test_variants_pick_the_architecture(graph) -> None:
    g = graph("def f(x: f32[8]) { return exp(x) }")
    for variant, arch in (("gpu", "sm_90"), ("gpu:a100", "sm_80"), ("gpu:h200", "sm_90"), ("gpu:b200", "sm_100")):
        artifact = get_target(variant).compile(g, CompileOptions(target=variant))
        assert artifact.arch == arch and f".target {arch}" in artifact.emit("ptx")


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_assembles_for_every_architecture(name: str, ptxas: str) -> None:
    artifact = example_artifact(name)
    text = artifact.module_text()
    entries = {name.replace(".", "_") for name in artifact.program.kernels}
    ptx = {arch: ptx_backend.emit_ptx(ptx_backend.optimize(text, arch, 2), arch, 2) for arch in ARCHS}
    with ThreadPoolExecutor(len(ARCHS)) as pool:  # one ptxas process per architecture, at once
        reports = dict(zip(ARCHS, pool.map(lambda arch: assemble(ptx[arch], arch), ARCHS)))
    for arch, report in reports.items():
        assert len(report) == len(artifact.program.kernels), arch
        for entry, info in report.items():
            assert info.arch == arch and 0 < info.registers <= 255
            assert info.shared_bytes <= 48 * 1024
            assert not info.spills, f"{entry} spills on {arch}"
    assert entries  # every kernel is an entry of its own


@pytest.mark.parametrize("text", [
    "def f(a: bf16[4096, 4096], b: bf16[4096, 4096]) { return a @ b }",  # the largest tensor-core tile
    "def f(a: f32[2048, 2048], b: f32[2048, 2048]) { return a @ b }",  # an 8 x 8 register tile per thread
    "def f(x: bf16[1, 8192], w: bf16[8192, 8192]) { return x @ w }",  # a decode GEMV
    "def f(x: f32[4096, 8192]) { return softmax(x, axis=-1) }",  # a row per block, shuffles
])
def test_full_size_kernels_fit_their_launch(text: str, ptxas: str) -> None:
    artifact = compiler.compile_string(text, target="gpu").artifact
    report = artifact.ptxas_report()
    for name, simt in artifact.simt.items():
        info = report[name]
        assert not info.spills and info.registers * simt.block <= 65536  # .maxntid keeps them in the file
        assert info.shared_bytes == simt.shared_bytes


def test_sparse_formats_are_refused_with_what_is_missing() -> None:
    with pytest.raises(TargetError, match=r"'w_gate' stored as 2:4 .*no sparse kernels yet"):
        compiler.compile("examples/sparse_mlp.nk", target="gpu")


def test_unknown_options_and_emit_kinds_are_user_errors(graph) -> None:
    g = graph("def f(x: f32[8]) { return exp(x) }")
    with pytest.raises(TargetError, match="no option"):
        get_target("gpu").compile(g, CompileOptions(target="gpu", extra={"warp": 64}))
    artifact = get_target("gpu").compile(g, CompileOptions(target="gpu"))
    with pytest.raises(TargetError, match="emits no 'asm'"):
        artifact.emit("asm")


def test_ptxas_report_is_parsed() -> None:
    text = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'fused3' for 'sm_90'
ptxas info    : Function properties for fused3
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 72 registers, used 1 barriers, 6400 bytes smem
ptxas info    : Compiling entry function 'add_2' for 'sm_90'
ptxas info    : Function properties for add_2
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 0 barriers
"""
    report = parse_report(text)
    assert report["fused3"].registers == 72 and report["fused3"].shared_bytes == 6400
    assert (report["fused3"].spill_stores, report["fused3"].spill_loads, report["fused3"].stack_bytes) == (4, 12, 8)
    assert report["add_2"].registers == 10 and not report["add_2"].spills and report["add_2"].shared_bytes == 0


def test_ptxas_errors_carry_its_message(ptxas: str) -> None:
    with pytest.raises(PtxasError, match="rejected"):
        assemble(".version 7.8\n.target sm_90\n.address_size 64\n.visible .entry k() { bogus; }\n", "sm_90")
