"""SIMT loop IR -> LLVM IR for nvptx64-nvidia-cuda. `module.build_module` is the entry point."""
