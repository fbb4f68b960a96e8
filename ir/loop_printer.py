"""Text form of the loop IR, in the spirit of TVM's TIR script. `ir.loop_parser` reads it back.

    kernel @fused_3(x: f32[8,512], y: f32[8,512]) writes(y) attrs(kind = "elementwise") {
      for i in 0..8 parallel {
        for j in 0..512 step 16 {
          for v in 0..16 vectorize {
            y[i, j + v] = exp(x[i, j + v]) * 0.5
          }
        }
      }
    }

`for v in A..B` runs v = A, A+step, ... below B when A and B are constants; a loop whose extent is
not a constant prints as `A..+E` (E iterations). `let` and `local` scope over the rest of their block.
Constants print bare when their type is implied (i64 ints, f32 floats, bools) and as `1.0:f16` otherwise.
"""

from __future__ import annotations

import math

from ir.dtypes import DType
from ir.loops import (INDEX, Allocate, Binary, Buffer, Cast, Const, Expr, For, If, Kernel, Let, Load,
                      LoopProgram, Scope, Select, Seq, Stmt, Store, Unary, Var)

_INFIX = {
    "add": ("+", 4), "sub": ("-", 4), "mul": ("*", 5), "div": ("/", 5), "floordiv": ("//", 5), "mod": ("%", 5),
    "eq": ("==", 3), "ne": ("!=", 3), "lt": ("<", 3), "le": ("<=", 3), "gt": (">", 3), "ge": (">=", 3),
    "logical_and": ("and", 2), "logical_or": ("or", 1),
}
_CALL = {"pow": "pow", "maximum": "max", "minimum": "min"}


def format_const(value: int | float | bool, dtype: DType) -> str:
    if dtype is DType.BOOL:
        return "true" if value else "false"
    if dtype.is_float:
        if math.isnan(value):
            text = "nan"
        elif math.isinf(value):
            text = "inf" if value > 0 else "-inf"
        else:
            text = repr(float(value))
        return text if dtype is DType.F32 else f"{text}:{dtype}"
    return str(int(value)) if dtype is INDEX else f"{int(value)}:{dtype}"


def format_expr(expr: Expr, parent_precedence: int = 0) -> str:
    if isinstance(expr, Const):
        text = format_const(expr.value, expr.dtype)
        return f"({text})" if text.startswith("-") and parent_precedence > 0 else text
    if isinstance(expr, Var):
        return expr.name
    if isinstance(expr, Load):
        return f"{expr.buffer}[{', '.join(format_expr(i) for i in expr.indices)}]"
    if isinstance(expr, Unary):
        return f"{expr.op}({format_expr(expr.operand)})"
    if isinstance(expr, Binary):
        if expr.op in _CALL:
            return f"{_CALL[expr.op]}({format_expr(expr.left)}, {format_expr(expr.right)})"
        symbol, precedence = _INFIX[expr.op]
        # Left-associative: the right operand needs parentheses at equal precedence.
        text = f"{format_expr(expr.left, precedence)} {symbol} {format_expr(expr.right, precedence + 1)}"
        return f"({text})" if precedence < parent_precedence else text
    if isinstance(expr, Select):
        return (f"select({format_expr(expr.cond)}, {format_expr(expr.true_value)}, "
                f"{format_expr(expr.false_value)})")
    if isinstance(expr, Cast):
        return f"cast<{expr.dtype}>({format_expr(expr.operand)})"
    raise TypeError(f"not a loop IR expression: {expr!r}")


def format_buffer(buffer: Buffer) -> str:
    text = f"{buffer.name}: {buffer.dtype}[{','.join(str(d) for d in buffer.shape)}]"
    if buffer.strides is not None:
        text += f" strides[{','.join(str(s) for s in buffer.strides)}]"
    return text


def _stmt_lines(stmt: Stmt, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(stmt, Seq):
        for child in stmt.stmts:
            _stmt_lines(child, indent, out)
    elif isinstance(stmt, For):
        if isinstance(stmt.start, Const) and isinstance(stmt.extent, Const):
            bounds = f"{format_expr(stmt.start)}..{stmt.start.value + stmt.extent.value * stmt.step}"
        else:
            bounds = f"{format_expr(stmt.start, 9)}..+{format_expr(stmt.extent, 9)}"
        step = f" step {stmt.step}" if stmt.step != 1 else ""
        kind = f" {stmt.kind}" if stmt.kind.value != "serial" else ""
        out.append(f"{pad}for {stmt.var} in {bounds}{step}{kind} {{")
        _stmt_lines(stmt.body, indent + 1, out)
        out.append(f"{pad}}}")
    elif isinstance(stmt, Store):
        out.append(f"{pad}{stmt.buffer}[{', '.join(format_expr(i) for i in stmt.indices)}] = "
                   f"{format_expr(stmt.value)}")
    elif isinstance(stmt, If):
        out.append(f"{pad}if {format_expr(stmt.cond)} {{")
        _stmt_lines(stmt.then_body, indent + 1, out)
        if stmt.else_body is not None:
            out.append(f"{pad}}} else {{")
            _stmt_lines(stmt.else_body, indent + 1, out)
        out.append(f"{pad}}}")
    elif isinstance(stmt, Let):
        out.append(f"{pad}let {stmt.var}: {stmt.value.dtype} = {format_expr(stmt.value)}")
        _stmt_lines(stmt.body, indent, out)
    elif isinstance(stmt, Allocate):
        out.append(f"{pad}local {format_buffer(stmt.buffer)}")
        _stmt_lines(stmt.body, indent, out)
    else:
        raise TypeError(f"not a loop IR statement: {stmt!r}")


def format_attr(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    return repr(value)


def print_kernel(kernel: Kernel) -> str:
    params = ", ".join(format_buffer(p) for p in kernel.params)
    header = f"kernel @{kernel.name}({params}) writes({', '.join(kernel.writes)})"
    if kernel.attrs:
        header += " attrs(" + ", ".join(f"{k} = {format_attr(v)}" for k, v in kernel.attrs) + ")"
    lines = [header + " {"]
    _stmt_lines(kernel.body, 1, lines)
    lines.append("}")
    return "\n".join(lines)


def print_stmt(stmt: Stmt) -> str:
    lines: list[str] = []
    _stmt_lines(stmt, 0, lines)
    return "\n".join(lines)


def print_program(program: LoopProgram) -> str:
    lines = [f"program @{program.name} {{"]
    for name, buffer in program.buffers.items():
        role = []
        if name in program.inputs:
            role.append(f"input {program.inputs.index(name)}")
        if name in program.outputs:
            role.append("output " + ",".join(str(i) for i, o in enumerate(program.outputs) if o == name))
        if buffer.scope is not Scope.GLOBAL:
            role.append(str(buffer.scope))
        lines.append(f"  buffer {format_buffer(buffer)}" + (f" ({'; '.join(role)})" if role else ""))
    for kernel in program.kernels.values():
        lines.append("")
        lines.extend("  " + line for line in print_kernel(kernel).splitlines())
    lines.append("")
    for call in program.calls:
        lines.append(f"  call @{call.kernel}({', '.join(call.args)})")
    lines.append("}")
    return "\n".join(lines) + "\n"
