"""The entry point of the vector math: `emit_math(builder, name, args)`.

Each (routine, type) pair becomes one small internal `alwaysinline` function in the module, e.g.
`niche.math.tanh.v16f32`, defined the first time a kernel needs it: the emitted IR reads as calls, and
after LLVM's inliner every use is straight-line vector code (no call and no libm in the loop).
Arguments are f32 or f64, scalars or vectors; f16/bf16 reach here already widened to f32.
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir

from targets.cpu.codegen.lltypes import intrinsic_suffix
from targets.cpu.vmath import activations, exp_log, power, trig
from targets.cpu.vmath.ops import MathOps

_UNARY: dict[str, Callable[[MathOps, ir.Value], ir.Value]] = {
    "exp": exp_log.exp,
    "log": exp_log.log,
    "tanh": activations.tanh,
    "sigmoid": activations.sigmoid,
    "silu": activations.silu,
    "gelu": activations.gelu,
    "sin": trig.sin,
    "cos": trig.cos,
}
_BINARY: dict[str, Callable[[MathOps, ir.Value, ir.Value], ir.Value]] = {
    "pow": power.pow_,
}
MATH_FUNCTIONS = frozenset(_UNARY) | frozenset(_BINARY)


def emit_math(builder: ir.IRBuilder, name: str, args: list[ir.Value], has_fma: bool) -> ir.Value:
    """Call (defining it on first use) the routine `name` on `args` of one floating type."""
    typ = args[0].type
    module = builder.module
    symbol = f"niche.math.{name}.{intrinsic_suffix(typ)}"
    function = module.globals.get(symbol)
    if function is None:
        function = ir.Function(module, ir.FunctionType(typ, [typ] * len(args)), name=symbol)
        function.linkage = "internal"
        function.attributes.add("alwaysinline")
        function.attributes.add("nounwind")
        body = ir.IRBuilder(function.append_basic_block("entry"))
        ops = MathOps(body, has_fma)
        if name in _UNARY:
            result = _UNARY[name](ops, function.args[0])
        elif name in _BINARY:
            result = _BINARY[name](ops, function.args[0], function.args[1])
        else:
            raise KeyError(f"no vector math routine '{name}'")
        body.ret(result)
    return builder.call(function, args)
