"""Small llvmlite helpers shared by the code generator and the vector math: loops, splats, intrinsics.

`for_range` is the one loop shape every emitter uses (a phi-counted `for`, the latch carrying optional
`llvm.loop` metadata); `intrinsic` declares an LLVM intrinsic once per module under its mangled name.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

from llvmlite import ir

from targets.cpu.codegen.lltypes import I32, I64, intrinsic_suffix


@contextlib.contextmanager
def for_range(builder: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: int = 1, name: str = "i",
              loop_metadata: ir.MDValue | None = None) -> Iterator[ir.Value]:
    """`for i = start; i < stop; i += step` (i64, step > 0). The body is emitted inside the `with`;
    the builder ends positioned after the loop."""
    function = builder.function
    preheader = builder.block
    header = function.append_basic_block(f"{name}.header")
    body = function.append_basic_block(f"{name}.body")
    exit_block = function.append_basic_block(f"{name}.exit")
    builder.branch(header)
    builder.position_at_end(header)
    index = builder.phi(I64, name=name)
    index.add_incoming(start, preheader)
    builder.cbranch(builder.icmp_signed("<", index, stop), body, exit_block)
    builder.position_at_end(body)
    yield index
    following = builder.add(index, ir.Constant(I64, step), name=f"{name}.next", flags=("nsw",))
    index.add_incoming(following, builder.block)
    latch = builder.branch(header)
    if loop_metadata is not None:
        latch.set_metadata("llvm.loop", loop_metadata)
    builder.position_at_end(exit_block)


def loop_hints(module: ir.Module, vectorize: bool = False, unroll_count: int | None = None) -> ir.MDValue:
    """A self-referential `llvm.loop` node asking LLVM to vectorize and/or unroll the loop."""
    hints = []
    if vectorize:
        hints.append(module.add_metadata([ir.MetaDataString(module, "llvm.loop.vectorize.enable"),
                                          ir.Constant(ir.IntType(1), 1)]))
    if unroll_count is not None:
        hints.append(module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.count"),
                                          ir.Constant(I32, unroll_count)]))
    node = ir.MDValue(module, hints, name=str(len(module.metadata)))  # appends itself to the module
    node.operands = (node,) + tuple(hints)  # a loop ID refers to itself, so each loop gets its own
    return node


def splat(builder: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """A vector of `lanes` copies of the scalar `value` (constants fold to a vector constant)."""
    vector_type = ir.VectorType(value.type, lanes)
    if isinstance(value, ir.Constant):
        return ir.Constant(vector_type, [value.constant] * lanes)
    single = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(single, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def constant(typ: ir.Type, value: int | float | bool) -> ir.Constant:
    """A scalar constant, or a splat vector constant when `typ` is a vector type."""
    if isinstance(typ, ir.VectorType):
        return ir.Constant(typ, [ir.Constant(typ.element, value).constant] * typ.count)
    return ir.Constant(typ, value)


def iota(lanes: int, typ: ir.Type = I64) -> ir.Constant:
    return ir.Constant(ir.VectorType(typ, lanes), list(range(lanes)))


def intrinsic(module: ir.Module, base: str, return_type: ir.Type, arg_types: Sequence[ir.Type],
              overloads: Sequence[ir.Type] = ()) -> ir.Function:
    """Declare (once) the intrinsic `base` mangled with `overloads` (default: the return type)."""
    mangled = ".".join([base] + [intrinsic_suffix(t) for t in (overloads or [return_type])])
    existing = module.globals.get(mangled)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(return_type, list(arg_types)), name=mangled)


def call_unary_intrinsic(builder: ir.IRBuilder, base: str, value: ir.Value) -> ir.Value:
    function = intrinsic(builder.module, base, value.type, [value.type])
    return builder.call(function, [value])


def call_binary_intrinsic(builder: ir.IRBuilder, base: str, a: ir.Value, b: ir.Value) -> ir.Value:
    function = intrinsic(builder.module, base, a.type, [a.type, a.type])
    return builder.call(function, [a, b])


def declare_function(module: ir.Module, name: str, return_type: ir.Type, arg_types: Sequence[ir.Type]) -> ir.Function:
    """A C function from the process (malloc, GOMP_parallel, ...), declared once."""
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(return_type, list(arg_types)), name=name)


def const_i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def alloca(builder: ir.IRBuilder, typ: ir.Type, name: str = "", align: int | None = None) -> ir.Value:
    """An alloca whose value has the opaque `ptr` type (llvmlite types it `T*`, which then disagrees with
    the explicit element types every gep/load/store here passes)."""
    slot = builder.alloca(typ, name=name)
    slot.type = ir.PointerType()
    if align is not None:
        slot.align = align
    return slot
