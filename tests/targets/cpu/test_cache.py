"""The compiled-object cache: memory hits, disk hits across a forgotten memory cache, corrupted entries
rebuilt, keys that change with what changes the code, atomic writes, and concurrent processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ir.dtypes import DType
from ir.loops import Binary, Buffer, Const, For, Kernel, KernelCall, Load, LoopKind, LoopProgram, Store, Var
from targets.cpu.artifact import CpuArtifact
from targets.cpu.cache import DiskCache, cache_key
from targets.cpu.compile import BuildOptions, compile_loops, forget_memory_cache

ROOT = Path(__file__).resolve().parents[3]


def tiny_program(scale: float = 2.0) -> LoopProgram:
    x, y = Buffer("x", DType.F32, (10,)), Buffer("y", DType.F32, (10,))
    body = For("i", Const(0), Const(10), Store("y", (Var("i"),), Binary("mul", Load("x", (Var("i"),), DType.F32),
                                                                     Const(scale, DType.F32))), LoopKind.VECTORIZE)
    kernel = Kernel("scale", (x, y), body, ("y",))
    return LoopProgram("cached", {"x": x, "y": y}, ["x"], ["y"], {"scale": kernel}, [KernelCall("scale", ("x", "y"))])


def run(compiled) -> np.ndarray:
    return CpuArtifact(compiled).run({"x": np.arange(10, dtype=np.float32)})[0]


def test_memory_then_disk_then_rebuilt_after_corruption(tmp_path: Path) -> None:
    options = BuildOptions(cache_dir=tmp_path)
    program = tiny_program(3.0)
    first = compile_loops(program, options)
    assert first.source == "compiled"
    assert compile_loops(program, options).source == "memory"
    forget_memory_cache()
    from_disk = compile_loops(program, options)
    assert from_disk.source == "disk"
    np.testing.assert_array_equal(run(from_disk), np.arange(10) * 3.0)

    entries = sorted(tmp_path.rglob("*.o"))
    assert len(entries) == 2  # the kernel and the entry point
    for entry in entries:
        data = bytearray(entry.read_bytes())
        data[-20] ^= 0xFF  # flip bits in the object code: the checksum no longer matches
        entry.write_bytes(bytes(data))
    forget_memory_cache()
    rebuilt = compile_loops(program, options)
    assert rebuilt.source == "compiled"
    np.testing.assert_array_equal(run(rebuilt), np.arange(10) * 3.0)
    assert all(DiskCache(tmp_path).load(entry.stem) is not None for entry in entries)  # written again


def test_kernels_equal_up_to_names_compile_once(tmp_path: Path) -> None:
    options = BuildOptions(cache_dir=tmp_path)
    compile_loops(tiny_program(6.0), options)
    renamed = tiny_program(6.0)
    renamed.name = "other"
    kernel = renamed.kernels.pop("scale")
    renamed.kernels["twice"] = Kernel("twice", kernel.params, kernel.body, kernel.writes)
    renamed.calls = [KernelCall("twice", ("x", "y"))]
    forget_memory_cache()
    second = compile_loops(renamed, options)
    assert second.source == "compiled"  # its entry point is new...
    assert len(list(tmp_path.rglob("*.o"))) == 3  # ...but its kernel came from the cache
    np.testing.assert_array_equal(run(second), np.arange(10) * 6.0)


def test_truncated_or_garbage_entries_are_misses(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    key = "ab" * 32
    assert cache.store(key, b"payload")
    assert cache.load(key) == b"payload"
    cache.path(key).write_bytes(b"not a cache entry")
    assert cache.load(key) is None
    assert not cache.path(key).exists()  # removed, so the next store starts clean


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    compile_loops(tiny_program(4.0), BuildOptions(cache_dir=tmp_path))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".o" and not p.name.startswith(".") for p in files)


def test_key_changes_with_ir_target_and_options() -> None:
    base = cache_key("ir", "x86_64", "znver3", "+avx2", 2, 2)
    assert base == cache_key("ir", "x86_64", "znver3", "+avx2", 2, 2)
    variants = [cache_key("ir2", "x86_64", "znver3", "+avx2", 2, 2), cache_key("ir", "aarch64", "znver3", "+avx2", 2, 2),
                cache_key("ir", "x86_64", "znver4", "+avx2", 2, 2), cache_key("ir", "x86_64", "znver3", "+avx512f", 2, 2),
                cache_key("ir", "x86_64", "znver3", "+avx2", 3, 2), cache_key("ir", "x86_64", "znver3", "+avx2", 2, 1)]
    assert len({base, *variants}) == 7


def test_unwritable_cache_directory_still_compiles(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    compiled = compile_loops(tiny_program(5.0), BuildOptions(cache_dir=blocker / "cache"))
    np.testing.assert_array_equal(run(compiled), np.arange(10) * 5.0)


def test_two_processes_compiling_the_same_program_agree(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import numpy as np\n"
        "from compiler import compile_string\n"
        f"p = compile_string('def f(x: f32[1000]) {{ return tanh(x) * 3.0 }}', target='cpu', "
        f"cache_dir={str(tmp_path / 'cache')!r})\n"
        "x = np.linspace(-2, 2, 1000).astype(np.float32)\n"
        "print(float(np.abs(p(x) - np.tanh(x) * 3).max()))\n")
    processes = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert float(out) < 1e-5
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert entries and all(p.suffix == ".o" for p in entries)
    assert all(DiskCache(tmp_path / "cache").load(p.stem) is not None for p in entries)
