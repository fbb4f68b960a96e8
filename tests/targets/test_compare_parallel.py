"""`niche compare --jobs`: pricing targets in forked worker processes (`targets.pricing_pool`) gives the
same reports, refusals and internal errors, in the same order, as pricing them one after another."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import compiler  # noqa: F401  (loads compiler.driver before targets.base, which it imports)
from compiler.diagnostics import InternalError
from compiler.driver import Source
from targets.base import CompileOptions, get_target, target_names
from targets.comparison import compare, run_comparison
from targets.pricing_pool import (RemoteTraceback, WorkerStopped, can_fork, longest_first, price_in_workers,
                                  tasks_of, worker_count)

ROOT = Path(__file__).resolve().parents[2]
MLP = "examples/mlp.nk"
SPARSE = "examples/sparse_mlp.nk"
TARGETS = ["cpu", "gpu:h100", "gpu:h200", "lpu", "wse:wse3"]

pytestmark = pytest.mark.skipif(not can_fork(), reason="worker processes are forked, on Linux only")


@pytest.fixture(autouse=True)
def _every_target_is_built() -> None:
    missing = {name.split(":")[0] for name in TARGETS} - set(target_names())
    if missing:
        pytest.skip(f"backends not built: {', '.join(sorted(missing))}")


def _reports(comparison) -> list[dict]:
    return [report.to_dict() for report in comparison.reports]


@pytest.mark.parametrize("path", [MLP, SPARSE])
def test_workers_give_the_reports_of_one_process(path: str) -> None:
    alone = run_comparison(path, TARGETS, [], {}, jobs=1)
    parallel = run_comparison(path, TARGETS, [], {}, jobs=3)
    assert _reports(parallel) == _reports(alone)
    assert [r.target for r in parallel.reports] == [r.target for r in alone.reports]
    assert parallel.skipped == alone.skipped  # a target refusing the program is refused either way
    assert parallel.errors == alone.errors == []


def test_an_internal_error_in_a_worker_comes_back_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    target = type(get_target("lpu"))

    def broken(self, artifact):
        raise RuntimeError("boom in the lpu model")

    monkeypatch.setattr(target, "estimate", broken)  # inherited by the forked workers
    comparison = run_comparison(MLP, ["cpu", "lpu", "wse:wse3"], [], {"B": 2}, jobs=2)
    assert [r.target for r in comparison.reports] == ["cpu", "wse:wse3"]
    (failed,) = comparison.errors
    assert failed.target == "lpu" and "RuntimeError: boom in the lpu model" in failed.error
    assert isinstance(failed.cause, RuntimeError)
    assert isinstance(failed.cause.__cause__, RemoteTraceback)
    assert "in broken" in str(failed.cause.__cause__)  # the worker's own traceback, as text
    with pytest.raises(InternalError, match="boom in the lpu model"):
        compare(Source.from_file(MLP), ["cpu", "lpu"], {"B": 2}, jobs=2)


def test_a_target_refusing_in_a_worker_is_skipped_with_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from targets.base import TargetError

    def refuses(self, artifact):
        raise TargetError("this wafer does not take mlps today")

    monkeypatch.setattr(type(get_target("wse")), "estimate", refuses)
    comparison = run_comparison(MLP, ["cpu", "wse:wse3", "lpu"], [], {"B": 2}, jobs=2)
    assert [r.target for r in comparison.reports] == ["cpu", "lpu"]
    assert [(s.target, s.reason) for s in comparison.skipped] == [("wse:wse3", "this wafer does not take mlps today")]


def test_a_worker_that_dies_is_an_internal_error_of_its_target(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    target = type(get_target("wse"))

    def dies(self, artifact):
        os._exit(7)  # as a crash in native code or the kernel's out-of-memory killer would

    monkeypatch.setattr(target, "estimate", dies)
    comparison = run_comparison(MLP, ["wse:wse3", "cpu"], [], {"B": 2}, jobs=2)
    assert any(f.target == "wse:wse3" and "pricing worker stopped" in f.error for f in comparison.errors)


def test_progress_names_the_targets_still_being_priced() -> None:
    labels: list[str] = []
    compare(Source.from_file(MLP), ["cpu", "gpu:h100", "lpu"], {"B": 2}, progress=labels.append, jobs=2)
    assert labels[0] == "building the graph"
    assert labels[1] == "pricing cpu, gpu:h100, lpu"
    assert len(labels) == 4  # one step per stage, as when pricing one after another (the bar counts them)
    assert all(label.startswith("pricing ") for label in labels[1:])


def test_workers_only_where_they_help() -> None:
    assert worker_count(None, 1) == 0
    assert worker_count(None, 0) == 0
    assert worker_count(None, 5) in (0, *range(2, 6))
    assert worker_count(1, 5) == 0  # -j 1: in this process
    assert worker_count(8, 3) == 3  # at most one per target


def test_cli_jobs_option() -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "compiler", "compare", MLP, "--targets", "cpu,lpu,wse:wse3",
                               "--json", *args], cwd=ROOT, capture_output=True, text=True)

    one, two = run("--jobs", "1"), run("-j", "2")
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    assert json.loads(one.stdout)["reports"] == json.loads(two.stdout)["reports"]
    bad = run("--jobs", "0")
    assert bad.returncode != 0 and "--jobs" in bad.stderr and "at least 1" in bad.stderr


_HANDED: list[str] = []  # in a worker: the targets it was handed, in order


def _hand_in_order(builder: object, name: str, options: CompileOptions) -> tuple[int, list[str]]:
    """When (the system-wide monotonic clock, so that workers' times compare) and after what a job ran."""
    _HANDED.append(name)
    return time.monotonic_ns(), list(_HANDED)


def test_the_heaviest_targets_are_handed_out_first_and_reported_in_the_order_given() -> None:
    assert longest_first([1, 4, 3, 1]) == [1, 2, 0, 3]  # ties keep the given order
    assert longest_first([]) == []
    weights = [getattr(get_target(name), "pricing_weight", 1) for name in TARGETS]
    assert weights == [1, 1, 1, 4, 3]
    assert tasks_of(TARGETS, weights, 2) == [[3], [4], [1, 2], [0]]  # the two gpus together, after the wse
    assert tasks_of(["gpu:h100", "gpu:h200"], [1, 1], 2) == [[0], [1]]  # one kind: a worker each
    jobs = [(name, CompileOptions(target=name)) for name in TARGETS]
    outcomes = price_in_workers(_hand_in_order, None, jobs, 1, weights=weights)  # one worker: one after another
    started = sorted((when, name) for (_, (when, _), _), name in zip(outcomes, TARGETS))
    assert [name for _, name in started] == ["lpu", "wse:wse3", "gpu:h100", "gpu:h200", "cpu"]
    assert [value[1][-1] for _, value, _ in outcomes] == TARGETS  # each outcome in its job's place
    assert outcomes[TARGETS.index("gpu:h200")][1][1] == ["gpu:h100", "gpu:h200"]  # one kind, one worker


_PREPARED = False  # set by `_prepare` in the process that hands out the jobs


def _prepare() -> None:
    global _PREPARED
    _PREPARED = True


def _saw_prepared(builder: object, name: str, options: CompileOptions) -> bool:
    return _PREPARED


def test_early_jobs_start_before_prepare_and_the_others_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """While `prepare` makes what the workers share, up to workers - 1 tasks of early jobs price; every
    other job is forked after it, and so inherits what it made."""
    monkeypatch.setattr(sys.modules[__name__], "_PREPARED", False)
    names = ["a", "b", "c", "d"]
    jobs = [(name, CompileOptions(target=name)) for name in names]
    weights = [4.0, 3.0, 2.0, 1.0]
    early = [False, True, True, False]
    outcomes = price_in_workers(_saw_prepared, None, jobs, 2, weights=weights, early=early, prepare=_prepare)
    # b (the heaviest early job) went before prepare; c, though early, waited: one core is prepare's
    assert [value for _, value, _ in outcomes] == [True, False, True, True]
    monkeypatch.setattr(sys.modules[__name__], "_PREPARED", False)
    outcomes = price_in_workers(_saw_prepared, None, jobs, 3, weights=weights, early=early, prepare=_prepare)
    assert [value for _, value, _ in outcomes] == [True, False, False, True]  # two cores for early jobs
    monkeypatch.setattr(sys.modules[__name__], "_PREPARED", False)
    outcomes = price_in_workers(_saw_prepared, None, jobs, 2, weights=weights, prepare=_prepare)  # none early
    assert [value for _, value, _ in outcomes] == [True, True, True, True]


def _killed(builder: object, name: str, options: CompileOptions) -> None:
    import os
    import signal
    if name == "b":
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_by_a_signal_says_so_for_each_job_it_held() -> None:
    jobs = [(name, CompileOptions(target=name)) for name in ["a", "b", "c"]]
    outcomes = price_in_workers(_killed, None, jobs, 2, weights=[1.0, 1.0, 1.0])
    assert outcomes[0] == ("report", None, None) and outcomes[2] == ("report", None, None)
    kind, message, cause = outcomes[1]
    assert kind == "internal" and "'b': its pricing worker stopped (killed by signal 9 (SIGKILL))" in message
    assert isinstance(cause, WorkerStopped)


def test_the_targets_that_price_without_the_counts_never_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target marked `pricing_reads_counts = False` is started before the shared counts are made; were
    it to count anyway, its figures would not change but the parallel speed-up would be lost."""
    from targets.comparison import reads_counts
    from targets.graph_counts import GraphCounter

    count_free = [name for name in TARGETS if not reads_counts(name)]
    assert count_free == ["wse:wse3"]
    assert all(reads_counts(name) for name in ["cpu", "gpu:h100", "lpu"])

    def counts(self):
        raise AssertionError("counted the graph")

    monkeypatch.setattr(GraphCounter, "count", counts)
    for path in (MLP, SPARSE, "examples/llama_decode.nk"):
        comparison = run_comparison(path, count_free, [], {}, jobs=1)
        assert [r.target for r in comparison.reports] == count_free and not comparison.errors
    # in workers too, and then nothing counts the graph for them beforehand either
    comparison = run_comparison(MLP, ["wse:wse3", "wse:wse2"], [], {}, jobs=2)
    assert [r.target for r in comparison.reports] == ["wse:wse3", "wse:wse2"] and not comparison.errors


def test_pricing_leaves_no_object_frozen() -> None:
    """`compare` sets the graph aside from the collector's young generations while it prices (`gc.freeze`)
    and puts it back (`gc.unfreeze`); objects someone else froze stay frozen."""
    import gc
    compare(Source.from_file(MLP), ["cpu", "lpu"], {"B": 2}, jobs=1)
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        compare(Source.from_file(MLP), ["cpu", "lpu"], {"B": 2}, jobs=2)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
