"""Process-level parallelism on the CPU: independent tasks over worker processes, and torch's
thread count for a block.

Why processes and not threads: on 2 cores one torch process with 2 intra-op threads runs a
training step of SI-UMX (hidden 256, modern) in 0.178 s; two processes with 1 thread each run
one step each in 0.24 s, i.e. 0.12 s per step (``scripts/bench_models.py --threads 1`` twice at
once: 1.48x the throughput; U-Net 1.13x). Whole runs gain less (input pipeline, validation,
the last run alone on one core): the default profile's eight trainings took 41.5 min in two
processes against 45.5 min in one, its evaluation 5.5 against 9.5 min and the robustness
study 61 against 131 s (fresh-clone ``make reproduce`` runs of 2026-12-04). Independent
pieces of work (the trainings of a profile, its evaluation jobs, the corpus renders) therefore
go to ``cores // threads`` workers. A result depends on the thread count it was computed with
(the order of floating-point sums), never on how many workers ran beside it, so the thread
count of a run is fixed by the profile (``TrainConfig.cpu_threads``) and the workers only
change the wall time.

Used by :mod:`guitarsep.corpus.build` and :mod:`guitarsep.corpus.out_of_family` (renders),
:mod:`guitarsep.training.loop` (:func:`~guitarsep.training.loop.train_all`),
:mod:`guitarsep.evaluation.evaluate`, :mod:`guitarsep.evaluation.out_of_family`,
:mod:`guitarsep.evaluation.robustness` and :mod:`guitarsep.app.separator` (the 01, 02, 03 and
06 notebooks, the CLI).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

__all__ = ["run_tasks", "single_threaded", "torch_threads", "worker_count"]


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` (None or 0: unchanged) for the block."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def single_threaded() -> Iterator[None]:
    """One torch thread and one BLAS / OpenMP thread (threadpoolctl) for the block: what an
    evaluation task computes with, in a worker or not, so its bytes never depend on how many
    tasks ran at once."""
    from threadpoolctl import threadpool_limits

    with torch_threads(1), threadpool_limits(limits=1):
        yield


def worker_count(n_jobs: int | None, threads_per_job: int = 1, *, tasks: int | None = None,
                 on_cpu: bool = True) -> int:
    """Workers to start: 1 off the CPU (a GPU takes the tasks in turn); else ``n_jobs`` when
    > 0, otherwise (0, None or -1) as many as the machine's cores hold at ``threads_per_job``
    threads each; never more than ``tasks`` (when given), never fewer than 1."""
    if not on_cpu:
        return 1
    if n_jobs is not None and int(n_jobs) > 0:
        n = int(n_jobs)
    else:
        n = (os.cpu_count() or 1) // max(1, int(threads_per_job))
    return max(1, min(n, tasks) if tasks is not None else n)


def run_tasks(tasks: Sequence[tuple[Callable, tuple]], n_jobs: int, *, progress: bool,
              desc: str, unit: str = "task",
              on_result: Callable[[int, object], None] | None = None) -> list:
    """Run ``(func, args)`` tasks over ``n_jobs`` processes (joblib's loky) with a tqdm bar;
    return the results in the order of ``tasks``, whatever order they finish in.

    With ``n_jobs == 1`` or a single task everything runs in this process. Tasks are handed
    out in order, one at a time, so put the longest first when their lengths differ.
    ``on_result(i, result)`` is called as each task finishes (e.g. to print a line).
    ``func`` must be importable by the workers (a module-level function of the package).
    """
    from tqdm.auto import tqdm
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit=unit)
    out: list = [None] * len(tasks)

    def done(i: int, res) -> None:
        out[i] = res
        if on_result is not None:
            on_result(i, res)
        bar.update(1)

    if n_jobs == 1 or len(tasks) <= 1:
        for i, (f, args) in enumerate(tasks):
            done(i, f(*args))
    else:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered",
                       batch_size=1, pre_dispatch="n_jobs")
        with warnings.catch_warnings():
            # A task holds a model or a corpus, so a worker's memory can grow past loky's
            # leak threshold (300 MB over its size after the first task); loky then starts a
            # fresh worker for the next task, which changes no result: not worth a warning.
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs",
                                    category=UserWarning)
            for i, res in par(delayed(_indexed)(i, f, a) for i, (f, a) in enumerate(tasks)):
                done(i, res)
    bar.close()
    return out


def _indexed(i: int, f: Callable, args: tuple):
    return i, f(*args)
