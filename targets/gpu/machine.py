"""A GPU as the schedules and the cost model see it: the numbers of a `gpu` hardware spec, in base units.

`GpuMachine.from_spec(spec)` reads `targets/specs/<chip>.toml` (or a user's file of kind "gpu"). The
variants of the target name a shipped spec (`gpu:a100`, `gpu:h100`, `gpu:h200`, `gpu:b200`) or a .toml
path; plain `gpu` is the H100. The PTX architecture is the spec's `gpu.arch` (sm_80, sm_90, sm_100).

Model parameters a spec may leave out default to the values below, each an assumption the report lists
when it is used: `model.vector_fraction` (share of CUDA-core peak generated SIMT loops sustain),
`model.transcendental_flops` (FMAs per exp/tanh/log: the polynomial routines shared with the CPU target),
`model.bytes_in_flight_per_warp` (memory parallelism one warp provides) and `model.l2_reuse_fraction`
(share of L2 one matmul operand may occupy and still be reused).
"""

from __future__ import annotations

from dataclasses import dataclass

from targets.spec import HardwareSpec, SpecError, load_spec

DEFAULT_VARIANT = "h100"
SHIPPED = ("a100", "h100", "h200", "b200")
ARCHS = ("sm_80", "sm_90", "sm_100")

# model parameter -> (default, why), used when a spec does not give the value
MODEL_DEFAULTS: dict[str, tuple[float, str]] = {
    "model.vector_fraction": (0.5, "share of CUDA-core FMA peak generated SIMT loops sustain (i64 index math, "
                                   "no dual issue); chosen a priori, not fitted"),
    "model.transcendental_flops": (20.0, "exp/tanh/log run as ~20-FMA polynomials (the CPU target's vmath), "
                                         "not on the special-function units"),
    "model.bytes_in_flight_per_warp": (512.0, "a warp keeps about four 128-byte coalesced loads in flight"),
    "model.l2_reuse_fraction": (0.5, "one matmul operand stays in L2 between waves when it takes at most half "
                                     "of it"),
}


@dataclass(frozen=True)
class GpuMachine:
    name: str
    arch: str
    sms: int
    clock: float
    warp: int
    max_threads_per_sm: int
    max_threads_per_block: int
    max_blocks_per_sm: int
    registers_per_sm: int  # 32-bit registers
    smem_per_sm: float  # bytes
    smem_per_block: float
    l2_bytes: float
    smem_bandwidth: float | None  # all SMs together
    l2_bandwidth: float | None
    hbm_bytes: float
    hbm_bandwidth: float
    hbm_latency: float
    launch_overhead: float
    tensor: tuple[tuple[str, float], ...] = ()  # (precision, dense ops/s)
    vector: tuple[tuple[str, float], ...] = ()
    tensor_fraction: float = 0.7
    memory_fraction: float = 0.85
    vector_fraction: float = 0.5
    transcendental_flops: float = 20.0
    bytes_in_flight_per_warp: float = 512.0
    l2_reuse_fraction: float = 0.5
    defaulted: tuple[str, ...] = ()  # model parameters taken from MODEL_DEFAULTS

    @classmethod
    def from_spec(cls, spec: HardwareSpec) -> GpuMachine:
        if spec.kind != "gpu":
            raise SpecError(f"{spec.path} describes a {spec.kind}, not a gpu; price it with that target")
        arch = str(spec.text("gpu.arch", ""))
        if arch not in ARCHS:
            raise SpecError(f"{spec.path}: gpu.arch must be one of {', '.join(ARCHS)} (the PTX targets of "
                              f"LLVM's NVPTX backend here), got {arch!r}")
        main = spec.main_memory
        l2 = spec.memory_level("l2")
        rates = spec.compute_rates()
        defaulted = []
        model = {}
        for path, (default, _) in MODEL_DEFAULTS.items():
            value = spec.value(path)
            if value is None:
                defaulted.append(path)
                value = default
            model[path.split(".", 1)[1]] = value
        count = lambda path: int(spec.value(path))  # noqa: E731
        return cls(
            name=spec.name, arch=arch, sms=count("gpu.sm_count"), clock=spec.clock, warp=count("gpu.warp_size"),
            max_threads_per_sm=count("gpu.max_threads_per_sm"),
            max_threads_per_block=count("gpu.max_threads_per_block"),
            max_blocks_per_sm=count("gpu.max_blocks_per_sm"),
            registers_per_sm=int(spec.value("gpu.registers_per_sm") // 4),
            smem_per_sm=spec.value("gpu.smem_per_sm"), smem_per_block=spec.value("gpu.smem_per_block"),
            l2_bytes=spec.value("memory.l2.capacity"), smem_bandwidth=spec.value("memory.smem.bandwidth"),
            l2_bandwidth=l2.bandwidth if l2 is not None else None,
            hbm_bytes=main.capacity, hbm_bandwidth=main.bandwidth, hbm_latency=main.latency or 600e-9,
            launch_overhead=spec.value("gpu.launch_overhead"),
            tensor=tuple((prec, rate) for (unit, prec), rate in rates.items() if unit == "tensor"),
            vector=tuple((prec, rate) for (unit, prec), rate in rates.items() if unit == "vector"),
            tensor_fraction=spec.value("model.compute_fraction", 0.7),
            memory_fraction=spec.value("model.memory_fraction", 0.85),
            defaulted=tuple(defaulted), **model)

    def tensor_rate(self, precision: str) -> float | None:
        return dict(self.tensor).get(precision)

    def vector_rate(self, precision: str) -> float:
        """CUDA-core rate: f64 at its own rate, everything else at the f32 rate (f16/bf16 compute in f32)."""
        rates = dict(self.vector)
        return rates["f64"] if precision == "f64" and "f64" in rates else rates["f32"]


def gpu_spec(variant: str | None) -> HardwareSpec:
    """The spec of a variant: a shipped chip name, a .toml path, or None for the H100."""
    spec = load_spec(variant or DEFAULT_VARIANT)  # a SpecError is the user's, with its own message
    if spec.kind != "gpu":
        raise SpecError(f"'gpu:{variant}': {spec.path} describes a {spec.kind}, not a gpu")
    return spec


def machine_for(variant: str | None) -> GpuMachine:
    return GpuMachine.from_spec(gpu_spec(variant))
