"""`niche compare --measure`: run each target's kernels and put measured time beside the model's prediction.

For every priced target that says its artifacts can time their kernels (`times_kernels`; the artifact's
`time_kernels(inputs, repeats)`: the CPU target always, the GPU target on a machine with an NVIDIA GPU),
the program is compiled for real (loop
IR, native code or PTX) and priced again on that artifact, so prediction and measurement name the same
kernels; each kernel's time is the median of a few calls on random inputs. Targets that cannot be
measured here get a note saying why (a simulated target, no GPU, does not fit this machine); nothing is
ever made up. Measuring allocates the program's tensors, so a target whose report says the program does
not fit is not measured (run it at a smaller size with -D).
"""

from __future__ import annotations

from typing import Any, Callable

from compiler.diagnostics import NicheError
from targets.comparison import Comparison


def measure(comparison: Comparison, path: str, entry: str | None, opt_level: int, repeats: int = 5,
            note: Callable[[str], None] | None = None) -> list[str]:
    """Measure every report's target that can be measured; replaces its report by the one priced on the
    compiled artifact and records `comparison.measured[target]`. Returns the notes on targets not measured
    (also passed to `note` as they come)."""
    notes: list[str] = []

    def say(target: str, message: str) -> None:
        text = f"{target}: {message}"
        notes.append(text)
        if note is not None:
            note(text)

    from compiler.driver import compile
    from compiler.inputs import random_inputs
    from targets.base import get_target
    for index, report in enumerate(list(comparison.reports)):
        name = report.target
        if not report.fits:
            say(name, "the program does not fit this target, so it cannot run; measure it at a smaller size (-D)")
            continue
        if not getattr(get_target(name), "times_kernels", False):  # decided before compiling for real
            say(name, "its target is simulated or priced only: it cannot time kernels on hardware; nothing measured")
            continue
        options: dict[str, Any] = dict(comparison.options.get(name, {}))
        try:
            program = compile(path, target=name, defines=comparison.defines, entry=entry, opt_level=opt_level,
                              chips=comparison.chips, partition=comparison.partition, **options)
            artifact = program.artifact
        except NicheError as error:
            say(name, f"cannot be compiled to run here: {_message(error)}")
            continue
        try:
            measured = artifact.time_kernels(random_inputs(program.graph, 0), repeats)
        except NicheError as error:  # e.g. no NVIDIA GPU on this machine
            say(name, f"not measured: {_message(error)}")
            continue
        comparison.reports[index] = get_target(name).estimate(artifact)
        comparison.measured[name] = measured
    return notes


def _message(error: NicheError) -> str:
    return " ".join(d.message for d in error.diagnostics).replace("error: ", "")
