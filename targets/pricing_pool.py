"""Pricing several targets at once, in forked worker processes (`niche compare --jobs`).

Once the shared graph is built, pricing it is independent per target: each target compiles the graph
for pricing and runs its own cost model, and none of them changes the graph or anything else they share
(tests/targets/test_compare_sharing.py checks that the graph is left as it was). So the targets can be
priced in parallel, and the result is the same as pricing them one after another: every report is
computed by the same code from the same graph and counts, and the reports are put back in the order the
targets were given.

Each task (one target, or the targets of one kind) is priced in a process forked from the one that built
the graph, so it starts with the graph, the shared counts and every module already in memory instead of
rebuilding them (which would take longer than the pricing); at most `workers` run at once, and a new one
is forked as one ends. Tasks are handed out heaviest first (`Target.pricing_weight`), so that the longest
one starts at once while the others fill the rest, and targets of one kind make one task when there are
kinds enough for every worker (`tasks_of`): the second GPU then finds the modules the first imported.

What the caller makes for the workers to share before they start (`prepare`: the shared counts) is made
while the first tasks that do not read it (`early`: a target whose pricing does not read the counts) are
already pricing, on the other cores: a task forked before it is made would make it itself if it did read
it, so this changes when a task starts, never what it computes. Which worker prices a target, and when,
changes no figure. Where workers cannot be forked safely (`can_fork`: anywhere but Linux), or with one
core or one target, the targets are priced in this process, one after another.

A worker sends back, pickled through a pipe, what the caller needs and nothing that may not survive
pickling: a report, or the message of a user error (the target refusing the program), or an internal
error's message and cause. A traceback does not survive pickling, so the cause comes back with the
worker's traceback as text in its own `__cause__` (a `RemoteTraceback`, which `--debug` prints), as
`concurrent.futures` does for the exceptions of its own workers; a cause that cannot be pickled is
replaced by that text alone. A worker that stops without an answer (killed, out of memory, a crash in
C) is an internal error of the targets it was pricing, saying how it stopped (`WorkerStopped`).
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable

from compiler.diagnostics import InternalError, NicheError
from targets.base import CompileOptions
from targets.cost import CostReport


class RemoteTraceback(Exception):
    """An internal error raised in a pricing worker: its traceback, as text (the cause of `Failed`)."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0]) if self.args else ""


class WorkerStopped(Exception):
    """A pricing worker that stopped before it answered: how it stopped (the cause of `Failed`)."""


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
    return sys.platform.startswith("linux") and hasattr(os, "fork")


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
                     weights: list[float] | None = None, early: list[bool] | None = None,
                     prepare: Callable[[], None] | None = None) -> list[Outcome]:
    """`price(builder, name, options)` for every (name, options) of `jobs`, in forked processes, at most
    `workers` at once; the outcomes in the order of `jobs`. `weights`: how long each job is expected to
    take, relative to the others (`Target.pricing_weight`): jobs are grouped and handed out heaviest first
    (`tasks_of`), which changes when and where each is priced, never what. `prepare()`, when given, is
    run in this process before any job that is not `early` starts (it makes what they share), while up
    to `workers - 1` tasks of early jobs price on the other cores. `finished(name)` is called in this
    process as each target is done (the progress bar)."""
    global _FORKED
    names = [name for name, _ in jobs]
    tasks = tasks_of(names, weights if weights is not None else [1.0] * len(jobs), workers)
    outcomes: dict[int, Outcome] = {}
    running: dict[int, _Worker] = {}  # the read end of its pipe -> the worker
    _FORKED = (price, builder)
    try:
        if prepare is not None:
            flags = early if early is not None else [False] * len(jobs)
            first = [task for task in tasks if all(flags[index] for index in task)][:max(0, workers - 1)]
            for task in first:
                tasks.remove(task)
                _start(task, jobs, running)
            prepare()
        while tasks or running:
            while tasks and len(running) < workers:
                _start(tasks.pop(0), jobs, running)
            for worker in _wait_for_one(running):
                outcomes.update(worker.outcomes(jobs))
                if finished is not None:
                    for index in worker.task:
                        finished(jobs[index][0])
    finally:
        _FORKED = None
        for worker in running.values():  # only when interrupted: stop and reap what is still pricing
            worker.stop()
    return [outcomes[index] for index in range(len(jobs))]


@dataclass
class _Worker:
    """A forked process pricing one task, and what it has sent back so far."""

    pid: int
    read: int  # the read end of the pipe it answers through
    task: list[int]
    received: list[bytes] = field(default_factory=list)
    status: int | None = None  # its wait status, once reaped

    def outcomes(self, jobs: list[tuple[str, CompileOptions]]) -> dict[int, Outcome]:
        """The outcome of each job of its task: its answer, or every job an internal error when it stopped
        without one."""
        try:
            kind, value = pickle.loads(b"".join(self.received))
        except Exception:  # nothing (or not all of it) came back
            kind, value = "stopped", self.how_it_stopped()
        if kind == "results":
            return {index: (outcome, result, _with_traceback(cause, text))
                    for index, (outcome, result, (cause, text)) in zip(self.task, value)}
        error = WorkerStopped(value)
        return {index: ("internal", f"internal error in target '{jobs[index][0]}': its pricing worker stopped "
                                    f"({value})", error) for index in self.task}

    def how_it_stopped(self) -> str:
        status = self.status if self.status is not None else 0
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                return f"killed by signal {number} ({signal.Signals(number).name})"
            except ValueError:
                return f"killed by signal {number}"
        return f"exit status {os.waitstatus_to_exitcode(status)}, without an answer"

    def stop(self) -> None:
        os.close(self.read)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)


def _start(task: list[int], jobs: list[tuple[str, CompileOptions]], running: dict[int, _Worker]) -> None:
    """Fork a worker that prices `task` (indices into `jobs`) and answers through a pipe."""
    read, write = os.pipe()
    sys.stdout.flush()  # what this process has buffered is written once, by itself
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the caller's code
        code = 1
        try:
            os.close(read)
            for other in running:
                os.close(other)
            _answer(write, [jobs[index] for index in task])
            code = 0
        finally:
            _flush_and_exit(code)
    os.close(write)
    running[read] = _Worker(pid, read, task)


def _answer(write: int, task: list[tuple[str, CompileOptions]]) -> None:
    """In a worker: price the task and write ("results", [per job: `_work_one`]) to the pipe, pickled; or
    ("stopped", why) when pricing or pickling raised what `price_outcome` does not catch."""
    try:
        answer = pickle.dumps(("results", _work(task)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as error:  # noqa: BLE001 (a worker reports whatever stopped it, then ends)
        answer = pickle.dumps(("stopped", f"{type(error).__name__}: {error}"))
    with os.fdopen(write, "wb") as pipe:
        pipe.write(answer)


def _flush_and_exit(code: int) -> None:
    """End a worker at once (none of the caller's cleanup runs in it), with what it printed to stdout
    written out. (stderr is line-buffered, and a progress bar's thread in the parent may have held its
    lock when the worker was forked, which would then never be released here.)"""
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 (a closed or broken stream: nothing to write out)
        pass
    os._exit(code)


def _wait_for_one(running: dict[int, _Worker]) -> list[_Worker]:
    """Read what the workers send until at least one has finished (its pipe closed); the finished ones,
    reaped and taken out of `running`."""
    done: list[_Worker] = []
    while not done:
        readable, _, _ = select.select(list(running), [], [])
        for read in readable:
            worker = running[read]
            chunk = os.read(read, 1 << 20)
            if chunk:
                worker.received.append(chunk)
                continue
            os.close(read)
            del running[read]
            worker.status = os.waitpid(worker.pid, 0)[1]
            done.append(worker)
    return done


def _with_traceback(cause: BaseException | None, text: str) -> BaseException | None:
    if not text:
        return cause
    remote = RemoteTraceback(text.rstrip())
    if cause is None:
        return remote
    cause.__cause__ = remote
    return cause
