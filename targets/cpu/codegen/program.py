"""A whole LoopProgram -> one LLVM module: a function per kernel and the program's entry point.

Symbols (PREFIX = "niche_" + the program name made a C identifier):

    void PREFIX(const T0 *in0, ..., T *out0, ..., void *workspace);   the entry point
    int64_t PREFIX_workspace_bytes(void);                             bytes `workspace` must have
    void PREFIX__KERNEL(T *p0, T *p1, ...);                           each kernel (for profiling)

The entry calls the kernels in program order. Inputs and outputs are caller-owned, C-contiguous
arrays of the buffers' storage types (bf16 as uint16 bits, bool as one byte). Every intermediate
buffer lives in the one workspace block at a fixed 64-byte-aligned offset (`WorkspaceLayout`), so a
caller can allocate it once and reuse it across calls; a NULL workspace makes the entry allocate and
free one itself. An output that is also an input, or that appears twice, is copied at the end.
Kernel pointer parameters are `noalias` when every call passes distinct buffers (outputs must not
overlap inputs: the Python artifact checks this, C callers are told so in the header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llvmlite import ir

from ir.loops import Kernel, LoopProgram
from targets.cpu.codegen.context import BufferRef, ModuleContext
from targets.cpu.codegen.function import FunctionEmitter
from targets.cpu.codegen.helpers import const_i64, declare_function, intrinsic
from targets.cpu.codegen.lltypes import I1, I64, PTR, VOID

ALIGNMENT = 64


def c_identifier(name: str) -> str:
    text = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return text if text and not text[0].isdigit() else f"_{text}"


@dataclass(frozen=True)
class WorkspaceLayout:
    offsets: dict[str, int]  # intermediate buffer -> byte offset in the workspace
    nbytes: int


def workspace_layout(program: LoopProgram) -> WorkspaceLayout:
    offsets = {}
    position = 0
    for name in program.intermediates:
        offsets[name] = position
        position += (program.buffers[name].nbytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
    return WorkspaceLayout(offsets, position)


@dataclass(frozen=True)
class ModuleSymbols:
    entry: str
    workspace_bytes: str
    kernels: dict[str, str]  # kernel name -> symbol


def symbols_for(program: LoopProgram, kernel_symbols: dict[str, str] | None = None) -> ModuleSymbols:
    """The program's symbols; kernels are `PREFIX__KERNEL` unless `kernel_symbols` names them."""
    prefix = "niche_" + c_identifier(program.name)
    kernels = kernel_symbols or {name: f"{prefix}__{c_identifier(name)}" for name in program.kernels}
    return ModuleSymbols(prefix, f"{prefix}_workspace_bytes", kernels)


def noalias_params(program: LoopProgram, kernel: str) -> bool:
    """Whether every call of `kernel` passes distinct buffers (then its pointers are `noalias`)."""
    return all(len(set(call.args)) == len(call.args) for call in program.calls if call.kernel == kernel)


def new_module(name: str, triple: str, data_layout: str) -> ir.Module:
    module = ir.Module(name=name)
    module.triple = triple
    if data_layout:
        module.data_layout = data_layout
    return module


def _declare_kernel(module: ir.Module, kernel: Kernel, symbol: str, noalias: bool) -> ir.Function:
    function = ir.Function(module, ir.FunctionType(VOID, [PTR] * len(kernel.params)), name=symbol)
    function.attributes.add("nounwind")
    function.attributes.add("noinline")  # each kernel is compiled once, and stays callable alone
    for arg, param in zip(function.args, kernel.params):
        arg.name = param.name
        if noalias:
            arg.add_attribute("noalias")
    return function


def build_module(program: LoopProgram, *, triple: str, has_fma: bool, threads: int,
                 data_layout: str = "") -> ir.Module:
    """Everything in one module (for --emit llvm/asm/obj and shared libraries)."""
    module = new_module(program.name, triple, data_layout)
    ctx = ModuleContext(module, has_fma=has_fma, threads=threads)
    symbols = symbols_for(program)
    functions = {name: _declare_kernel(module, kernel, symbols.kernels[name], noalias_params(program, name))
                 for name, kernel in program.kernels.items()}  # declare everything first, then define
    for name, kernel in program.kernels.items():
        _define_kernel(ctx, functions[name], kernel)
    layout = workspace_layout(program)
    _define_entry(module, program, functions, symbols, layout)
    _define_workspace_query(module, symbols, layout)
    return module


def build_kernel_module(kernel: Kernel, symbol: str, noalias: bool, *, triple: str, has_fma: bool, threads: int,
                        data_layout: str = "") -> ir.Module:
    """One kernel alone (the JIT compiles and caches kernels one by one)."""
    module = new_module(symbol, triple, data_layout)
    ctx = ModuleContext(module, has_fma=has_fma, threads=threads)
    _define_kernel(ctx, _declare_kernel(module, kernel, symbol, noalias), kernel)
    return module


def build_entry_module(program: LoopProgram, kernel_symbols: dict[str, str], *, triple: str,
                       data_layout: str = "") -> ir.Module:
    """The entry point and workspace query, calling kernels compiled in other modules."""
    module = new_module(program.name, triple, data_layout)
    symbols = symbols_for(program, kernel_symbols)
    functions: dict[str, ir.Function] = {}
    for name, kernel in program.kernels.items():  # kernels equal up to names share one symbol
        symbol = symbols.kernels[name]
        existing = module.globals.get(symbol)
        functions[name] = existing if existing is not None else _declare_kernel(
            module, kernel, symbol, noalias_params(program, name))
    layout = workspace_layout(program)
    _define_entry(module, program, functions, symbols, layout)
    _define_workspace_query(module, symbols, layout)
    return module


def _define_kernel(ctx: ModuleContext, function: ir.Function, kernel: Kernel) -> None:
    emitter = FunctionEmitter(ctx, function)
    for arg, param in zip(function.args, kernel.params):
        emitter.buffers[param.name] = BufferRef(param, arg, local=False)
    emitter.emit_stmt(kernel.body)
    emitter.finish()


def _define_entry(module: ir.Module, program: LoopProgram, functions: dict[str, ir.Function],
                  symbols: ModuleSymbols, layout: WorkspaceLayout) -> None:
    arity = len(program.inputs) + len(program.outputs) + 1
    entry = ir.Function(module, ir.FunctionType(VOID, [PTR] * arity), name=symbols.entry)
    entry.attributes.add("nounwind")
    args = list(entry.args)
    inputs = args[:len(program.inputs)]
    outputs = args[len(program.inputs):-1]
    workspace_arg = args[-1]
    workspace_arg.name = "workspace"
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    workspace = workspace_arg
    is_null = None
    if layout.nbytes:  # a NULL workspace: allocate one for this call
        aligned_alloc = declare_function(module, "aligned_alloc", PTR, [I64, I64])
        is_null = b.icmp_unsigned("==", workspace_arg, ir.Constant(PTR, None))
        caller_block = b.block
        with b.if_then(is_null):
            allocated = b.call(aligned_alloc, [const_i64(ALIGNMENT), const_i64(layout.nbytes)])
            allocated_block = b.block
        workspace = b.phi(PTR, name="ws")
        workspace.add_incoming(workspace_arg, caller_block)
        workspace.add_incoming(allocated, allocated_block)
    pointers: dict[str, ir.Value] = {}
    for name, arg in zip(program.inputs, inputs):
        arg.name = f"in.{name}"
        pointers.setdefault(name, arg)
    for name, arg in zip(program.outputs, outputs):
        arg.name = f"out.{name}"
        pointers.setdefault(name, arg)
    for name, offset in layout.offsets.items():
        pointers[name] = b.gep(workspace, [const_i64(offset)], inbounds=True, source_etype=ir.IntType(8), name=name)
    for call in program.calls:
        b.call(functions[call.kernel], [pointers[arg] for arg in call.args])
    memcpy = intrinsic(module, "llvm.memcpy", VOID, [PTR, PTR, I64, I1], [PTR, PTR, I64])
    for name, arg in zip(program.outputs, outputs):
        if pointers[name] is not arg and program.buffers[name].nbytes:
            b.call(memcpy, [arg, pointers[name], const_i64(program.buffers[name].nbytes), ir.Constant(I1, 0)])
    if is_null is not None:
        with b.if_then(is_null):
            b.call(declare_function(module, "free", VOID, [PTR]), [workspace])
    b.ret_void()


def _define_workspace_query(module: ir.Module, symbols: ModuleSymbols, layout: WorkspaceLayout) -> None:
    function = ir.Function(module, ir.FunctionType(I64, []), name=symbols.workspace_bytes)
    function.attributes.add("nounwind")
    ir.IRBuilder(function.append_basic_block("entry")).ret(const_i64(layout.nbytes))
