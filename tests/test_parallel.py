"""guitarsep.parallel and the stages built on it: worker processes change the wall time, never
the bytes of a result (evaluation and robustness tables, worker pool order)."""
from __future__ import annotations

import dataclasses
import os
import time

import pytest

from guitarsep.parallel import run_tasks, single_threaded, torch_threads, worker_count
from guitarsep.vocabulary import SCENARIOS


def _sleep_then_return(x: float, tag: str) -> tuple[str, int]:
    time.sleep(x)
    return tag, os.getpid()


def test_worker_count():
    cores = os.cpu_count() or 1
    assert worker_count(3) == 3 and worker_count(1, 4) == 1
    assert worker_count(None) == worker_count(0) == worker_count(-1) == cores
    assert worker_count(None, threads_per_job=cores) == 1
    assert worker_count(None, threads_per_job=10 * cores) == 1
    assert worker_count(8, tasks=3) == 3 and worker_count(None, tasks=0) == 1
    assert worker_count(8, on_cpu=False) == 1


def test_run_tasks_keeps_the_tasks_order_across_processes():
    # the first task is the slowest: it finishes last but stays first in the results
    tasks = [(_sleep_then_return, (0.6, "a")), (_sleep_then_return, (0.0, "b")),
             (_sleep_then_return, (0.0, "c"))]
    seen = []
    out = run_tasks(tasks, 2, progress=False, desc="t", on_result=lambda i, r: seen.append(i))
    assert [tag for tag, _ in out] == ["a", "b", "c"]
    assert seen[-1] == 0 and sorted(seen) == [0, 1, 2]
    assert len({pid for _, pid in out}) == 2 and os.getpid() not in {pid for _, pid in out}
    inline = run_tasks(tasks[1:], 1, progress=False, desc="t")
    assert {pid for _, pid in inline} == {os.getpid()}


def test_thread_contexts_restore_the_thread_count():
    import torch
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    with single_threaded():
        assert torch.get_num_threads() == 1
    with torch_threads(None):
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before


def test_evaluation_in_two_processes_writes_the_same_bytes(smoke_profile, smoke_corpus,
                                                           tmp_path):
    from guitarsep.evaluation.evaluate import EvalJob, run_evaluation

    jobs = [EvalJob("score_only", "modern", SCENARIOS, None),
            EvalJob("oracle_irm", "modern", ("seen",), None)]
    tables = []
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        profile = dataclasses.replace(smoke_profile, root=root)
        scores, timing = run_evaluation(profile, smoke_corpus, progress=False, jobs=jobs,
                                        workers=workers)
        assert timing["processes"] == workers
        tables.append((profile.results_dir / "scores.csv").read_bytes())
    assert tables[0] == tables[1]
    assert set(scores.model) == {"score_only", "oracle_irm"}
    assert (scores.model == "oracle_irm").sum() == (smoke_corpus.clips("test").scenario
                                                     == "seen").sum()
