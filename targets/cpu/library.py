"""`niche compile --target cpu -o lib.so`: a shared library and its C header (`lib.h`, next to it).

The library holds the program's entry point, its workspace query and one symbol per kernel, compiled
position-independent for this host's CPU (so it runs on this machine and ones with the same
features) and linked with the system C compiler (`cc -shared`, plus `-lgomp` when the code has
parallel loops). The header documents the calling convention (see docs/targets/cpu.md):

    void niche_NAME(const float *x, ..., float *out0, ..., void *workspace);
    int64_t niche_NAME_workspace_bytes(void);       also #define NICHE_NAME_WORKSPACE_BYTES

Arrays are C-contiguous (row-major) in the element types listed in the header; outputs must not
overlap inputs; `workspace` is NULL (the call allocates and frees one) or points to
NICHE_NAME_WORKSPACE_BYTES bytes aligned to 64 that the caller may reuse across calls (one call at a
time per workspace).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from compiler import __version__
from ir.dtypes import DType
from ir.loops import For, LoopKind, LoopProgram, walk
from targets.base import TargetError
from targets.cpu.codegen.program import c_identifier, symbols_for, workspace_layout
from targets.cpu.compile import BuildOptions, LlvmBuild
from targets.cpu.host import host_info

C_TYPES = {
    DType.F32: "float", DType.F64: "double", DType.F16: "uint16_t", DType.BF16: "uint16_t",
    DType.I8: "int8_t", DType.I32: "int32_t", DType.I64: "int64_t", DType.BOOL: "bool",
}
_TYPE_NOTES = {DType.F16: " (IEEE binary16 bits)", DType.BF16: " (bfloat16 bits: the upper half of a float)",
               DType.BOOL: " (one byte, 0 or 1)"}


def uses_openmp(program: LoopProgram, threads: int) -> bool:
    if threads < 2:
        return False
    return any(isinstance(node, For) and node.kind is LoopKind.PARALLEL
               for kernel in program.kernels.values() for node in walk(kernel.body))


def write_shared_library(program: LoopProgram, options: BuildOptions, path: str | Path) -> tuple[Path, Path]:
    """Compile `program` into the shared library `path` and write its header beside it."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise TargetError("writing a shared library needs a C compiler (cc) on the PATH to link it")
    path = Path(path)
    header_path = path.with_suffix(".h")
    obj = LlvmBuild(program, options).object_code("pic")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".niche-link-") as scratch:
        object_file = Path(scratch) / "program.o"
        object_file.write_bytes(obj)
        linked = Path(scratch) / path.name
        command = [compiler, "-shared", "-o", str(linked), str(object_file)]
        if uses_openmp(program, options.threads):
            command.append("-lgomp")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise TargetError(f"linking {path} failed ({' '.join(command)}):\n{result.stderr.strip()}")
        header = Path(scratch) / header_path.name
        header.write_text(header_text(program, options, path.name))
        linked.replace(path)  # both renames are atomic; the header follows its library
        header.replace(header_path)
    return path, header_path


def header_text(program: LoopProgram, options: BuildOptions, library_name: str = "") -> str:
    symbols = symbols_for(program)
    layout = workspace_layout(program)
    guard = f"NICHE_{c_identifier(program.name).upper()}_H"
    workspace_macro = f"{symbols.entry.upper()}_WORKSPACE_BYTES"
    host = host_info()
    params = []
    docs = []
    for index, name in enumerate(program.inputs):
        buffer = program.buffers[name]
        params.append(f"const {C_TYPES[buffer.dtype]} *{c_identifier(name)}")
        docs.append(f" *   {c_identifier(name)}: input {index}, {buffer.dtype}{list(buffer.shape)}"
                    f"{_TYPE_NOTES.get(buffer.dtype, '')}")
    for index, name in enumerate(program.outputs):
        buffer = program.buffers[name]
        params.append(f"{C_TYPES[buffer.dtype]} *out{index}")
        docs.append(f" *   out{index}: output {index}, {buffer.dtype}{list(buffer.shape)}"
                    f"{_TYPE_NOTES.get(buffer.dtype, '')}")
    params.append("void *workspace")
    lines = [
        f"/* {library_name or 'library'}: program `{program.name}` compiled by Niche {__version__} for",
        f" * {host.triple} ({host.cpu}), -O{options.opt_level}, {options.threads} thread(s).",
        " *",
        f" * {symbols.entry}(inputs..., outputs..., workspace) runs the program once:",
        *docs,
        " * Arrays are C-contiguous (row-major). Outputs must not overlap inputs or each other.",
        f" * workspace: NULL (the call allocates its own), or {workspace_macro} bytes aligned to 64, reusable",
        " * across calls but used by one call at a time.",
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdbool.h>",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"#define {workspace_macro} {layout.nbytes}",
        "",
        f"void {symbols.entry}({', '.join(params)});",
        f"int64_t {symbols.workspace_bytes}(void);",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)
