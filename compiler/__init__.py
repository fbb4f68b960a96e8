"""Niche: a multi-level IR kernel compiler.

    import compiler
    prog = compiler.compile("examples/mlp.nk", target="cpu", defines={"B": 8})
    probabilities = prog(x=x, w1=w1, b1=b1, w2=w2)
    print(prog.ir("graph"))
"""

from compiler.diagnostics import ArgumentError, CompileError, Diagnostic, InternalError, NicheError
from compiler.driver import Program, compile, compile_string

__version__ = "0.1.0"

__all__ = [
    "ArgumentError", "CompileError", "Diagnostic", "InternalError", "NicheError", "Program", "compile",
    "compile_string", "__version__",
]
