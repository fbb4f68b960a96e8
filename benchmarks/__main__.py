"""`python -m benchmarks [CASE ...] [--repeats N] [--threads T] [--quick]`: run the benchmarks, print a table.

CASE `sparse` is the sparse matmul table of `benchmarks/sparse.py` (Niche vs scipy CSR vs dense numpy),
printed after the others when no case is named.

For every case: the median time of numpy and of Niche's cpu target measured side by side, the ratio
(numpy time / Niche time, above 1 means Niche is faster), the throughput (GB/s or GFLOP/s), Niche's
compile time and kernel count, and the largest relative difference between the two results.
"""

from __future__ import annotations

import argparse
import os
import sys

from benchmarks.cases import BUILDERS
from benchmarks.timing import median_times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"cases to run (default: all): {', '.join(BUILDERS)}")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per implementation (default 7)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads for Niche (default: the CPUs this process may use)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a measurement")
    args = parser.parse_args(argv)
    unknown = [name for name in args.cases if name not in BUILDERS and name != "sparse"]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)} (cases: {', '.join(BUILDERS)}, sparse)")
    names = [name for name in args.cases if name != "sparse"] if args.cases else list(BUILDERS)
    sparse = not args.cases or "sparse" in args.cases  # its own table (benchmarks/sparse.py)
    if names:
        print(f"{'case':<18}{'numpy ms':>10}{'niche ms':>10}{'ratio':>8}{'niche':>16}{'numpy':>16}"
              f"{'compile s':>11}{'kernels':>9}{'rel err':>10}")
    for name in names:
        case = BUILDERS[name](args.threads, args.quick)
        times = median_times({"numpy": case.numpy, "niche": case.niche}, args.repeats)
        scale = 1e9
        niche_rate = case.work / times["niche"] / scale
        numpy_rate = case.work / times["numpy"] / scale
        print(f"{case.name:<18}{times['numpy'] * 1e3:>10.2f}{times['niche'] * 1e3:>10.2f}"
              f"{times['numpy'] / times['niche']:>7.2f}x{niche_rate:>10.1f} {case.unit:<5}{numpy_rate:>10.1f} "
              f"{case.unit:<5}{case.compile_seconds:>10.2f}{case.kernels:>9}{case.check():>10.1e}", flush=True)
    if sparse:
        from benchmarks.sparse import run_sparse
        run_sparse(args.threads, args.repeats, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
