"""The schema of hardware spec files: which fields exist, their dimensions, and which each kind requires.

Sections (`docs/comparing-targets.md` shows a whole file):

* `[clock]` `core` (Hz).
* `[compute.UNIT]` one peak dense rate per precision (FLOP/s or OP/s), for each kind of unit (tensor, vector,
  special, mxm, fmac, ...). Precisions: f64, f32, tf32, bf16, f16, f8, f6, f4, i64, i32, i8, i4.
* `[memory.LEVEL]` innermost level first: `capacity` (bytes, per `per` = chip|core|sm|pe|slice),
  `bandwidth` (B/s, whole chip), `latency`; exactly one level has `main = true` (where tensors live).
* `[interconnect]` chip-to-chip: `bandwidth` (per chip per direction, all links), `latency` (per message),
  `links`, `link_bandwidth`, `domain` (chips directly connected), `name`, `topology`.
* `[power]` `tdp`, optional `idle`; optional `[energy.compute]` (J/FLOP per precision) and
  `[energy.memory]` (J/B per level): per-operation energies, used instead of TDP x time when present.
* `[price]` `per_chip_hour` (USD/h).
* `[model]` the cost model's achievable fractions and overheads (always assumptions or measurements).
* `[cpu]`, `[gpu]`, `[lpu]`, `[wse]`: facts only that kind's model uses (SMs, slices, PEs, ...).

Every quantity must be finite and non-negative; the rules below add positivity, integrality and ranges.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Callable, Iterable

from ir.dtypes import DType

KINDS = ("cpu", "gpu", "lpu", "wse")
PRECISIONS = ("f64", "f32", "tf32", "bf16", "f16", "f8", "f6", "f4", "i64", "i32", "i8", "i4")
MEMORY_SCOPES = ("chip", "core", "sm", "pe", "slice")

_DTYPE_PRECISION = {DType.F64: "f64", DType.F32: "f32", DType.F16: "f16", DType.BF16: "bf16", DType.I8: "i8",
                    DType.I32: "i32", DType.I64: "i64", DType.BOOL: "i8"}


def precision_of(dtype: DType | str) -> str:
    if isinstance(dtype, DType):
        return _DTYPE_PRECISION[dtype]
    return dtype


# (pattern, allowed dimensions, check); the first matching pattern applies. Checks: "positive" (> 0),
# "nonnegative", "count" (a non-negative integer), "positive_count" (an integer >= 1), "fraction" (0 < x <= 1).
RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("clock.*", ("frequency",), "positive"),
    ("compute.*.*", ("rate",), "positive"),
    ("memory.*.capacity", ("bytes",), "positive"),
    ("memory.*.bandwidth", ("bandwidth",), "positive"),
    ("memory.*.latency", ("time", "cycles"), "nonnegative"),
    ("interconnect.links", ("count",), "count"),
    ("interconnect.domain", ("count",), "positive_count"),
    ("interconnect.bandwidth", ("bandwidth",), "positive"),
    ("interconnect.link_bandwidth", ("bandwidth",), "positive"),
    ("interconnect.latency", ("time",), "nonnegative"),
    ("host_link.bandwidth", ("bandwidth",), "positive"),
    ("host_link.latency", ("time",), "nonnegative"),
    ("power.tdp", ("power",), "positive"),
    ("power.*", ("power",), "nonnegative"),
    ("energy.compute.*", ("energy_per_op",), "nonnegative"),
    ("energy.memory.*", ("energy_per_byte",), "nonnegative"),
    ("price.per_chip_hour", ("money_rate",), "nonnegative"),
    ("model.*_fraction", ("fraction",), "fraction"),
)

# Fields every spec of a kind must have: path -> (dimension, check).
_COMMON = {"clock.core": ("frequency", "positive"), "power.tdp": ("power", "positive")}
REQUIRED: dict[str, dict[str, tuple[str, str]]] = {
    "cpu": {**_COMMON,
            "cpu.cores": ("count", "positive_count"),
            "cpu.fma_units": ("count", "positive_count"),
            "cpu.fma_width_bits": ("bits", "positive"),
            "cpu.isa_vector_bits": ("bits", "positive"),
            "cpu.vector_registers": ("count", "positive_count"),
            "model.compute_fraction": ("fraction", "fraction"),
            "model.memory_fraction": ("fraction", "fraction"),
            "model.transcendental_flops": ("count", "positive"),
            "model.parallel_overhead": ("time", "nonnegative")},
    "gpu": {**_COMMON,
            "gpu.sm_count": ("count", "positive_count"),
            "gpu.registers_per_sm": ("bytes", "positive"),
            "gpu.smem_per_sm": ("bytes", "positive"),
            "gpu.smem_per_block": ("bytes", "positive"),
            "gpu.max_threads_per_sm": ("count", "positive_count"),
            "gpu.max_threads_per_block": ("count", "positive_count"),
            "gpu.max_blocks_per_sm": ("count", "positive_count"),
            "gpu.warp_size": ("count", "positive_count"),
            "gpu.launch_overhead": ("time", "nonnegative"),
            "memory.l2.capacity": ("bytes", "positive"),
            "interconnect.bandwidth": ("bandwidth", "positive"),
            "interconnect.latency": ("time", "nonnegative")},
    "lpu": {**_COMMON,
            "lpu.superlanes": ("count", "positive_count"),
            "lpu.lanes_per_superlane": ("count", "positive_count"),
            "lpu.streams_per_direction": ("count", "positive_count"),
            "lpu.mem_slices": ("count", "positive_count"),
            "lpu.sram_per_tile": ("bytes", "positive"),
            "lpu.vector_bytes": ("bytes", "positive"),
            "lpu.mxm_planes": ("count", "positive_count"),
            "lpu.mxm_dim": ("count", "positive_count"),
            "lpu.vxm_alus_per_lane": ("count", "positive_count"),
            "interconnect.bandwidth": ("bandwidth", "positive"),
            "interconnect.latency": ("time", "nonnegative")},
    "wse": {**_COMMON,
            "wse.pes": ("count", "positive_count"),
            "wse.mesh_width": ("count", "positive_count"),
            "wse.mesh_height": ("count", "positive_count"),
            "wse.sram_per_pe": ("bytes", "positive"),
            "wse.fmac_lanes_f16": ("count", "positive_count"),
            "wse.fabric_link_bandwidth": ("bandwidth", "positive"),
            "wse.hop_latency": ("time", "nonnegative"),
            "wse.colors": ("count", "positive_count"),
            "interconnect.bandwidth": ("bandwidth", "positive"),
            "interconnect.latency": ("time", "nonnegative")},
}


def expected_dimensions(path: str) -> tuple[str, ...]:
    for pattern, dims, _ in RULES:
        if fnmatchcase(path, pattern):
            return dims
    for required in REQUIRED.values():
        if path in required:
            return (required[path][0],)
    return ()


def _check_value(path: str, value: float, check: str, add: Callable[[str, str], None]) -> None:
    if value < 0:
        add(path, f"must not be negative (got {value:g})")
    elif check == "positive" and value <= 0:
        add(path, f"must be positive (got {value:g})")
    elif check in ("count", "positive_count") and not float(value).is_integer():
        add(path, f"must be a whole number (got {value:g})")
    elif check == "positive_count" and value < 1:
        add(path, f"must be at least 1 (got {value:g})")
    elif check == "fraction" and not 0 < value <= 1:
        add(path, f"must be a fraction in (0, 1] (got {value:g})")


def memory_level_names(quantities: Iterable, texts: Iterable[tuple[str, object]]) -> list[str]:
    """Memory level names in file order (innermost first)."""
    names: list[str] = []
    paths = [q.path for q in quantities] + [path for path, _ in texts]
    for path in paths:
        parts = path.split(".")
        if parts[0] == "memory" and len(parts) == 3 and parts[1] not in names:
            names.append(parts[1])
    return names


def check_spec(kind: str | None, quantities: list, texts: list[tuple[str, object]],
               add: Callable[[str, str], None]) -> None:
    """Add a problem for every field that breaks the schema (dimension, range, requirement)."""
    by_path = {q.path: q for q in quantities}
    required = REQUIRED.get(kind or "", {})
    for quantity in quantities:
        dims = expected_dimensions(quantity.path)
        check = "nonnegative"
        for pattern, _, rule_check in RULES:
            if fnmatchcase(quantity.path, pattern):
                check = rule_check
                break
        else:
            if quantity.path in required:
                check = required[quantity.path][1]
        if dims and quantity.dimension not in dims:
            add(quantity.path, f"unit '{quantity.written.split(' ', 1)[1]}' measures {quantity.dimension}; "
                               f"{quantity.path} is {' or '.join(dims)}")
            continue
        _check_value(quantity.path, quantity.value, check, add)
        parts = quantity.path.split(".")
        if parts[0] == "compute" and (len(parts) != 3 or parts[2] not in PRECISIONS):
            add(quantity.path, f"compute rates are compute.UNIT.PRECISION with PRECISION one of "
                               f"{', '.join(PRECISIONS)}")
    for path, (dimension, _) in required.items():
        if path not in by_path:
            add(path, f"missing: a {kind} spec needs {path} ({dimension})")
    if kind is not None and not any(q.path.startswith("compute.") for q in quantities):
        add("compute", "missing: the spec needs at least one compute rate (compute.UNIT.PRECISION)")
    _check_memory(by_path, quantities, texts, add)
    for path, value in texts:
        if path.endswith(".main") and not isinstance(value, bool):
            add(path, "main must be true or false")
        if path.endswith(".per") and path.startswith("memory.") and value not in MEMORY_SCOPES:
            add(path, f"per must be one of {', '.join(MEMORY_SCOPES)} (got {value!r})")
    if "interconnect.bandwidth" in by_path and "interconnect.latency" not in by_path:
        add("interconnect.latency", "missing: an interconnect needs a latency to price messages")


def _check_memory(by_path: dict, quantities: list, texts: list[tuple[str, object]],
                  add: Callable[[str, str], None]) -> None:
    names = memory_level_names(quantities, texts)
    if not names:
        add("memory", "missing: the spec needs at least one memory level ([memory.NAME] with capacity, bandwidth)")
        return
    main = [name for name in names if dict(texts).get(f"memory.{name}.main") is True]
    if len(main) != 1:
        add("memory", f"exactly one memory level must have main = true (where tensors live); found "
                      f"{len(main)} ({', '.join(main) or 'none'})")
    for name in main:
        for key in ("capacity", "bandwidth"):
            if f"memory.{name}.{key}" not in by_path:
                add(f"memory.{name}.{key}", f"missing: the main memory level needs its {key}")
