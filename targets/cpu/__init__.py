"""The CPU target: loop IR -> LLVM IR (llvmlite) -> native code for the host, JIT-compiled or as a .so.

Modules, in pipeline order:

* `host`: what the machine is (triple, CPU name, features, vector width, cores, caches).
* `schedule`: graph kernel specs -> fast loop IR for this host (vectorized, parallel, tiled matmul).
* `codegen/`: loop IR -> one LLVM module (kernels, vector code, OpenMP outlining, the entry function).
* `vmath/`: branch-free vector math (exp, log, tanh, ...) emitted inline as LLVM IR.
* `jit`: LLVM optimisation (new pass manager) and MCJIT; `cache`: compiled objects in memory and on disk.
* `library`: `-o lib.so` with its C header; `artifact`: calling from Python; `target`: the protocol.

`docs/targets/cpu.md` describes the calling convention, the math accuracy and the schedules.
"""
