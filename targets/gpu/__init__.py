"""The NVIDIA GPU target (`gpu`, `gpu:a100|h100|h200|b200`): loop IR in SIMT form -> LLVM NVPTX -> PTX.

Pipeline, one module per step:

    schedules/  GpuSchedule: kernel specs -> loop IR in SIMT form (`simt`): grid, thread phases, locals
    mapping     launch rules: threads per block, reduction mode, matmul tiles (shared with the cost model)
    codegen/    SIMT loop IR -> LLVM IR for nvptx64-nvidia-cuda (ptx_kernel functions, address spaces 1/3)
    ptx         LLVM IR -> PTX through llvmlite's NVPTX target machine (sm_80, sm_90, sm_100)
    ptxas       `ptxas -v` where it is installed: registers, shared memory, spills per kernel
    launch      the launch description (JSON): grid, block, shared memory, arguments, call order
    launcher    running the PTX on a real GPU through the CUDA driver (cuda-python or CuPy)
    cost        the occupancy-aware roofline model behind `estimate`
    target      GpuTarget: the protocol of `targets.base`
"""
