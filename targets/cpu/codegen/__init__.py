"""Loop IR -> LLVM IR. `program.build_module` is the entry point; see that module's docstring."""
