"""Niche: a multi-level IR kernel compiler.

    import compiler
    prog = compiler.compile("examples/mlp.nk", target="cpu", defines={"B": 8})
    probabilities = prog(x=x, w1=w1, b1=b1, w2=w2)
    print(prog.ir("graph"))
"""

from typing import Any

from compiler.diagnostics import ArgumentError, CompileError, Diagnostic, InternalError, NicheError


def __getattr__(name: str) -> Any:
    # The driver imports the targets, which import compiler.diagnostics: load it on first use so that
    # importing any module of the project first (targets.base, say) never meets a half-initialised package.
    if name in ("Program", "compile", "compile_string"):
        from compiler import driver
        return getattr(driver, name)
    raise AttributeError(f"module 'compiler' has no attribute '{name}'")


__version__ = "0.1.0"

__all__ = [
    "ArgumentError", "CompileError", "Diagnostic", "InternalError", "NicheError", "Program", "compile",
    "compile_string", "__version__",
]
