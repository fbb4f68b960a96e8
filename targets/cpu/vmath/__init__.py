"""Branch-free vector math emitted as LLVM IR: exp, log, tanh, sigmoid, gelu, silu, sin, cos, sqrt,
rsqrt, pow for f32 and f64, scalars and vectors.

llvmlite's LLVM has no vector math library, and a libm call per element costs about 10x in a
vectorized loop, so each routine is range reduction plus a polynomial written with selects instead of
branches (`ops.MathOps`). `functions.emit_math` is the entry point. Accuracy against numpy is measured
by tests/targets/cpu/test_vmath.py and recorded in docs/targets/cpu.md.
"""
