"""`niche compare --measure`: run the CPU kernels and put measured time beside the model's prediction.

The program is compiled for this machine by the CPU target (for real: loop IR, LLVM, native code) and
priced again on that artifact, so prediction and measurement name the same kernels; each kernel's
time is the median of a few calls on random inputs (`CpuArtifact.time_kernels`). Measuring allocates the
program's tensors, so it is refused when the CPU report says the program does not fit this machine.
"""

from __future__ import annotations

import sys

from targets.base import target_names
from targets.comparison import Comparison


def _note(message: str) -> None:
    print(f"niche: note: --measure: {message}", file=sys.stderr)


def measure_cpu(comparison: Comparison, path: str, entry: str | None, opt_level: int, repeats: int = 5) -> bool:
    """Replace the `cpu` report by one priced on the compiled loop IR and record measured kernel times.
    Returns False (with a note on stderr saying why) when nothing could be measured."""
    if "cpu" not in target_names():
        _note("no cpu backend in this build; nothing measured")
        return False
    index = next((i for i, r in enumerate(comparison.reports) if r.target == "cpu"), None)
    if index is None:
        _note("add cpu to --targets to measure it; nothing measured")
        return False
    if not comparison.reports[index].fits:
        _note("the program does not fit this machine's memory; measure it at a smaller size (-D)")
        return False
    from compiler.driver import compile
    from compiler.inputs import random_inputs
    from targets.base import get_target
    program = compile(path, target="cpu", defines=comparison.defines, entry=entry, opt_level=opt_level)
    artifact = program.artifact
    if not callable(getattr(artifact, "time_kernels", None)):
        _note("the cpu target cannot time its kernels in this build; nothing measured")
        return False
    comparison.reports[index] = get_target("cpu").estimate(artifact)
    inputs = random_inputs(program.graph, 0)
    comparison.measured["cpu"] = artifact.time_kernels(inputs, repeats)
    return True
