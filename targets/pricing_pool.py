"""Pricing several targets at once, one worker process per core (`niche compare --jobs`).

Once the shared graph is built, pricing it is independent per target: each target compiles the graph
for pricing and runs its own cost model, and none of them changes the graph or anything else they share
(tests/targets/test_compare_sharing.py checks that the graph is left as it was). So the targets can be
priced in parallel, and the result is the same as pricing them one after another: every report is
computed by the same code from the same graph and counts, and the reports are put back in the order the
targets were given.

The workers are forked from the process that built the graph, so they start with the graph, the shared
counts and every module already in memory instead of rebuilding them (which would take longer than the
pricing). Where workers cannot be forked safely (`can_fork`: anywhere but Linux), or with one core or
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


def _work(name: str, options: CompileOptions) -> tuple[str, object, tuple[BaseException | None, str]]:
    """Run in a worker: price one target; an `Outcome` whose cause is (the exception when it survives
    pickling, else None; its traceback as text)."""
    gc.disable()  # a short-lived worker: collections would only rescan the inherited graph
    kind, value, cause = price_outcome(*_FORKED, name, options)
    if cause is None:
        return kind, value, (None, "")
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    try:
        pickle.loads(pickle.dumps(cause))
    except Exception:
        cause = None
    return kind, value, (cause, text)


def price_in_workers(price: Callable[..., CostReport], builder: object, jobs: list[tuple[str, CompileOptions]],
                     workers: int, finished: Callable[[str], None] | None = None) -> list[Outcome]:
    """`price(builder, name, options)` for every (name, options) of `jobs`, in `workers` forked
    processes; the outcomes in the order of `jobs`. `finished(name)` is called in this process as each
    target is done (the progress bar)."""
    global _FORKED
    _FORKED = (price, builder)
    outcomes: dict[int, Outcome] = {}
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            pending: dict[Future, int] = {pool.submit(_work, name, options): index
                                          for index, (name, options) in enumerate(jobs)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    try:
                        kind, value, (cause, text) = future.result()
                        outcomes[index] = (kind, value, _with_traceback(cause, text))
                    except Exception as error:  # the worker died (killed, out of memory, a crash in C)
                        outcomes[index] = ("internal", f"internal error in target '{jobs[index][0]}': its pricing "
                                           f"worker stopped ({type(error).__name__}: {error})", error)
                    if finished is not None:
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
