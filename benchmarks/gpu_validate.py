"""Validate the GPU target on a real NVIDIA GPU: run every example, check it, and print measured beside
predicted time per kernel.

    python benchmarks/gpu_validate.py                      # gpu:h200, medium sizes + roofline probes
    python benchmarks/gpu_validate.py --target gpu:h100 --quick --json out.json

For each case: compile for the target, run once on the GPU and compare every output with the reference
interpreter (`--check`, on by default), time each kernel with CUDA events (median of --repeats runs after
a warm-up), price the compiled artifact with the target's cost model (`estimate`: the SIMT loop IR, the
launches, and ptxas's registers when ptxas is installed), and print one row per kernel: launch shape,
predicted and measured microseconds, their ratio and the resource the model says binds. A summary per
case and a geometric mean of measured / predicted close the table. Cases:

* every example in examples/ (sparse_mlp is refused by the gpu target and listed as such) at medium sizes
  (`--quick`: the files' tiny defaults, which are launch-bound);
* roofline probes, where one resource dominates: a 4096^3 bf16 matmul (tensor cores), a decode-shaped
  bf16 GEMV, a 2048^3 f32 matmul (CUDA cores), exp over 2^26 f32 (HBM), a 4096 x 4096 softmax.

Needs the gpu extra (`pip install -e '.[gpu]'`: cuda-python; CuPy works too). Without an NVIDIA GPU it
prints why and exits with status 2. Exit status 1 when an output differs from the reference.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compiler  # noqa: E402
from compiler.checking import compare  # noqa: E402
from compiler.inputs import random_inputs  # noqa: E402
from targets.base import TargetError, get_target  # noqa: E402

MEDIUM = {
    "attention": {"B": 4, "S": 512, "H": 12, "Dh": 64},
    "code_completion": {"B": 1, "P": 128, "T": 256, "L": 2, "D": 2048, "Hq": 32, "Hkv": 8, "Dh": 64, "F": 8192,
                        "V": 32000},
    "decoder_layer": {"B": 1, "S": 1024, "D": 4096, "Hq": 32, "Hkv": 8, "Dh": 128, "F": 14336, "DT": "bf16"},
    "llama_decode": {"B": 1, "T": 2048, "L": 2, "D": 4096, "Hq": 32, "Hkv": 8, "Dh": 128, "F": 14336, "V": 32000},
    "llama_prefill": {"B": 1, "S": 512, "L": 1, "D": 4096, "Hq": 32, "Hkv": 8, "Dh": 128, "F": 14336, "V": 32000},
    "mlp": {"B": 4096},
    "video_diffusion": {"B": 1, "FR": 8, "HH": 16, "WW": 16, "D": 1152, "H": 16, "NB": 1},
    "sparse_mlp": {},
}
PROBES = {
    "matmul_bf16_4096": "def f(a: bf16[4096, 4096], b: bf16[4096, 4096]) { return a @ b }",
    "gemv_bf16_decode": "def f(x: bf16[1, 8192], w: bf16[8192, 8192]) { return x @ w }",
    "matmul_f32_2048": "def f(a: f32[2048, 2048], b: f32[2048, 2048]) { return a @ b }",
    "exp_f32_2e26": "def f(x: f32[67108864]) { return exp(x) }",
    "softmax_4096": "def f(x: f32[4096, 4096]) { return softmax(x, axis=-1) }",
}


def cases(quick: bool, only: list[str]) -> list[tuple[str, object]]:
    found = []
    for path in sorted((ROOT / "examples").glob("*.nk")):
        found.append((path.stem, (str(path), {} if quick else MEDIUM.get(path.stem, {}))))
    if not quick:
        found += [(name, text) for name, text in PROBES.items()]
    return [(name, case) for name, case in found if not only or name in only]


def build(target: str, case: object) -> compiler.Program:
    if isinstance(case, tuple):
        path, defines = case
        return compiler.compile(path, target=target, defines=defines)
    return compiler.compile_string(case, target=target)


def run_case(name: str, case: object, target: str, repeats: int, check: bool) -> dict:
    started = time.perf_counter()
    program = build(target, case)
    artifact = program.artifact
    artifact.ptx()
    compile_seconds = time.perf_counter() - started
    inputs = random_inputs(program.graph, 0)
    result = {"case": name, "compile_seconds": compile_seconds, "checks": [], "kernels": []}
    if check:
        outputs = program.run(inputs)
        expected = program.run_reference(inputs)
        for index, (got, want, node) in enumerate(zip(outputs, expected, program.graph.outputs)):
            verdict = compare(got, want, program.graph.node(node).type.dtype, f"output {index}")
            result["checks"].append({"ok": verdict.ok, "message": verdict.message})
    measured = artifact.time_kernels(inputs, repeats)
    report = get_target(target).estimate(artifact)
    predicted: dict[str, dict] = {}
    calls = {}
    for call in artifact.program.calls:
        calls[call.kernel] = calls.get(call.kernel, 0) + 1
    for kernel in report.kernels:
        entry = predicted.setdefault(kernel.name, {"seconds": 0.0, "binding": kernel.cost.binding, "note": kernel.note})
        entry["seconds"] += kernel.cost.latency
    for name_, seconds in measured.items():
        row = predicted.get(name_, {})
        result["kernels"].append({"kernel": name_, "calls": calls.get(name_, 0), "measured": seconds,
                                  "predicted": row.get("seconds"), "binding": row.get("binding"),
                                  "launch": row.get("note", "").split(";")[0]})
    return result


def print_case(result: dict) -> list[float]:
    ratios = []
    ok = all(check["ok"] for check in result["checks"])
    status = "checked" if result["checks"] and ok else "MISMATCH" if result["checks"] else "unchecked"
    print(f"\n== {result['case']}  (compiled in {result['compile_seconds']:.1f} s, {status})")
    for check in result["checks"]:
        if not check["ok"]:
            print(f"   {check['message']}")
    print(f"   {'kernel':<24}{'calls':>6}{'predicted us':>14}{'measured us':>13}{'meas/pred':>11}  "
          f"{'binding':<10} launch")
    total_predicted = total_measured = 0.0
    for row in result["kernels"]:
        predicted, measured = row["predicted"], row["measured"]
        ratio = measured / predicted if predicted else math.nan
        if predicted:
            ratios.append(ratio)
            total_predicted += predicted
        total_measured += measured
        print(f"   {row['kernel']:<24}{row['calls']:>6}{(predicted or math.nan) * 1e6:>14.2f}{measured * 1e6:>13.2f}"
              f"{ratio:>11.2f}  {str(row['binding']):<10} {row['launch']}")
    if total_predicted:
        print(f"   {'total':<24}{'':>6}{total_predicted * 1e6:>14.2f}{total_measured * 1e6:>13.2f}"
              f"{total_measured / total_predicted:>11.2f}")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="gpu:h200", help="the gpu target and spec to compile and price for")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per kernel (median)")
    parser.add_argument("--quick", action="store_true", help="the examples' tiny defaults only, no probes")
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the comparison with the "
                                                                                "reference interpreter")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    parser.add_argument("cases", nargs="*", help="run only these cases (example or probe names)")
    args = parser.parse_args(argv)

    from targets.gpu.launcher import GpuUnavailable, find_driver
    try:
        driver = find_driver()
    except GpuUnavailable as error:
        print(f"gpu_validate: {error}", file=sys.stderr)
        return 2
    print(f"gpu_validate: {args.target} on the GPU found through {driver.name}; predicted = the cost model's "
          f"latency per kernel (launch overhead included), measured = CUDA events, median of {args.repeats}")
    results, ratios, failures = [], [], 0
    for name, case in cases(args.quick, args.cases):
        try:
            result = run_case(name, case, args.target, args.repeats, args.check)
        except TargetError as error:
            print(f"\n== {name}: not compiled: {error}")
            results.append({"case": name, "error": str(error)})
            continue
        results.append(result)
        ratios += print_case(result)
        failures += sum(not check["ok"] for check in result["checks"])
    if ratios:
        geomean = math.exp(sum(math.log(r) for r in ratios if r > 0) / len(ratios))
        print(f"\nmeasured / predicted over {len(ratios)} kernels: geometric mean {geomean:.2f}, "
              f"range {min(ratios):.2f} .. {max(ratios):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"target": args.target, "results": results}, indent=2))
    if failures:
        print(f"gpu_validate: {failures} output(s) differ from the reference interpreter", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
