"""Pricing several targets at once, one worker process per core (`niche compare --jobs`).

Once the shared graph is built, pricing it is independent per target: each target compiles the graph
for pricing and runs its own cost model, and none of them changes the graph or anything else they share
(tests/targets/test_compare_sharing.py checks that the graph is left as it was). So the targets can be
priced in parallel, and the result is the same as pricing them one after another: every report is
computed by the same code from the same graph and counts, and the reports are put back in the order the
targets were given.

The workers are forked from the process that built the graph, so they start with the graph, the shared
counts and every module already in memory instead of rebuilding them (which would take longer than the
pricing). Targets are handed out heaviest first (`Target.pricing_weight`), so that the longest one starts
at once on a worker of its own while the others fill the rest, and targets of one kind go to the same
worker when there are kinds enough for every worker (`tasks_of`): the second GPU then finds the modules
the first imported. Which worker prices a target, and when, changes no figure. Where workers cannot be forked safely (`can_fork`: anywhere but Linux), or with one core or
one target, the targets are priced in this process, one after another.

A worker sends back what the caller needs and nothing that may not survive pickling: a report, or the
message of a user error (the target refusing the program), or an internal error's message and cause.
A traceback does not survive pickling, so the cause comes back with the worker's traceback as text in
its own `__cause__` (a `RemoteTraceback`, which `--debug` prints), as `concurrent.futures` does for the
exceptions of its own workers; a cause that cannot be pickled is replaced by that text alone.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable

from compiler.diagnostics import InternalError, NicheError
from targets.base import CompileOptions
from targets.cost import CostReport


class RemoteTraceback(Exception):
    """An internal error raised in a pricing worker: its traceback, as text (the cause of `Failed`)."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0]) if self.args else ""


# One target's outcome: ("report", CostReport, None), ("refused", message, None) or ("internal", message,
# the cause: the exception, or a RemoteTraceback).
Outcome = tuple[str, object, "BaseException | None"]

# Set in the parent just before the workers are forked, so that they inherit it instead of receiving
# it pickled: (price_target, the graph builder). Cleared once the pool is shut down.
_FORKED: tuple[Callable[..., CostReport], object] | None = None


def available_cores() -> int:
    """The cores this process may run on (the affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether workers can be forked safely here: on Linux. (macOS offers fork, but its system libraries
    are not safe to use in a forked child; Windows has no fork.)"""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def worker_count(jobs: int | None, targets: int) -> int:
    """Worker processes to price `targets` targets with, `jobs` asked for (None: one per core): at most
    one per target, and none (0: price in this process) where forking is not safe or one would not help."""
    if not can_fork():
        return 0
    count = min(available_cores() if jobs is None else jobs, targets)
    return count if count >= 2 else 0


def price_outcome(price: Callable[..., CostReport], builder: object, name: str, options: CompileOptions) -> Outcome:
    """`price(builder, name, options)` as an `Outcome` (an internal error's cause: what it was raised from)."""
    try:
        return ("report", price(builder, name, options), None)
    except InternalError as error:
        return ("internal", " ".join(d.message for d in error.diagnostics), error.__cause__)
    except NicheError as error:
        return ("refused", " ".join(d.message for d in error.diagnostics), None)


def _work(task: list[tuple[str, CompileOptions]]) -> list[tuple[str, object, tuple[BaseException | None, str]]]:
    """Run in a worker: price a task's targets one after another (`_work_one`)."""
    gc.disable()  # a short-lived worker: collections would only rescan the inherited graph
    return [_work_one(name, options) for name, options in task]


def _work_one(name: str, options: CompileOptions) -> tuple[str, object, tuple[BaseException | None, str]]:
    """Price one target; an `Outcome` whose cause is (the exception when it survives pickling, else None;
    its traceback as text)."""
    kind, value, cause = price_outcome(*_FORKED, name, options)
    if cause is None:
        return kind, value, (None, "")
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    try:
        pickle.loads(pickle.dumps(cause))
    except Exception:
        cause = None
    return kind, value, (cause, text)


def longest_first(weights: list[float]) -> list[int]:
    """Task indices in the order to hand them out: heaviest first, ties in the given order. Each worker takes
    the next task when it is free, so the heaviest target starts at once on a worker of its own and the
    lighter ones fill the other workers (longest processing time first)."""
    return sorted(range(len(weights)), key=lambda index: -weights[index])


def tasks_of(names: list[str], weights: list[float], workers: int) -> list[list[int]]:
    """The jobs (indices into `names`) that one worker prices one after another, as tasks in the order they
    are handed out (`longest_first` by their summed weights). Targets of one kind (gpu:h100, gpu:h200) make
    one task when that leaves a task for every worker: they import the same modules and warm the same
    caches, which a second worker would do again; else every target is a task of its own."""
    kinds: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        kinds.setdefault(name.split(":", 1)[0], []).append(index)
    tasks = list(kinds.values()) if len(kinds) >= workers else [[index] for index in range(len(names))]
    return [tasks[index] for index in longest_first([sum(weights[job] for job in task) for task in tasks])]


def price_in_workers(price: Callable[..., CostReport], builder: object, jobs: list[tuple[str, CompileOptions]],
                     workers: int, finished: Callable[[str], None] | None = None,
                     weights: list[float] | None = None) -> list[Outcome]:
    """`price(builder, name, options)` for every (name, options) of `jobs`, in `workers` forked
    processes; the outcomes in the order of `jobs`. `weights`: how long each job is expected to take,
    relative to the others (`Target.pricing_weight`): jobs are grouped and handed out heaviest first
    (`tasks_of`), which changes when and where each is priced, never what. `finished(name)` is called in
    this process as each target is done (the progress bar)."""
    global _FORKED
    _FORKED = (price, builder)
    outcomes: dict[int, Outcome] = {}
    tasks = tasks_of([name for name, _ in jobs], weights if weights is not None else [1.0] * len(jobs), workers)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            pending: dict[Future, list[int]] = {pool.submit(_work, [jobs[index] for index in task]): task
                                                for task in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    try:
                        results = future.result()
                        for index, (kind, value, (cause, text)) in zip(task, results):
                            outcomes[index] = (kind, value, _with_traceback(cause, text))
                    except Exception as error:  # the worker died (killed, out of memory, a crash in C)
                        for index in task:
                            outcomes[index] = ("internal", f"internal error in target '{jobs[index][0]}': its "
                                               f"pricing worker stopped ({type(error).__name__}: {error})", error)
                    if finished is not None:
                        for index in task:
                            finished(jobs[index][0])
    finally:
        _FORKED = None
    return [outcomes[index] for index in range(len(jobs))]


def _with_traceback(cause: BaseException | None, text: str) -> BaseException | None:
    if not text:
        return cause
    remote = RemoteTraceback(text.rstrip())
    if cause is None:
        return remote
    cause.__cause__ = remote
    return cause
