"""The evaluation stage: every trained model and reference on the test clips -> scores.csv.

Used by 03_evaluate.ipynb and ``guitarsep evaluate``. It only wires existing pieces together:
clips come from :mod:`guitarsep.corpus.build`, estimates from :func:`guitarsep.separation.separate.separate_batch`
(the same path for every model and reference) and scores from
:func:`guitarsep.evaluation.metrics.evaluate_clips`.

Which clips each row is evaluated on (a decision of ours, to keep the default profile's
evaluation inside its budget): the models of ``unseen.png`` (SI-UMX soft / binary and blind
UMX, modern setting) and the references run on every test scenario (seen, a, b, c, d); the
other models appear only in the seen-timbre figures and run on scenario ``seen``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from guitarsep.config import SETTINGS, ModelSpec, Profile
from guitarsep.vocabulary import ALL_SCENARIO_MODELS, SCENARIOS
from guitarsep.evaluation.metrics import evaluate_clips, medians_table, select_museval_clips
from guitarsep.parallel import run_tasks, single_threaded, worker_count

__all__ = ["EvalJob", "evaluation_jobs", "run_evaluation"]



@dataclass(frozen=True)
class EvalJob:
    """One row group of the results table: a model (or reference) in a setting on scenarios."""

    model: str              # network name, or a reference name from EvalConfig.references
    setting: str
    scenarios: tuple[str, ...]
    spec: ModelSpec | None  # None for references


def evaluation_jobs(profile: Profile) -> list[EvalJob]:
    """The jobs of a profile: its trained models, then the references (modern setting)."""
    jobs = [EvalJob(s.name, s.setting,
                    SCENARIOS if s.key in ALL_SCENARIO_MODELS else ("seen",), s)
            for s in profile.models]
    jobs += [EvalJob(ref, "modern", SCENARIOS, None) for ref in profile.eval.references]
    return jobs


class _Timed:
    """Wraps an iterator and adds the time spent producing its items to ``self.seconds``;
    lets us report separation time apart from metric time in one streaming pass."""

    def __init__(self, it):
        self.it, self.seconds = iter(it), 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        try:
            return next(self.it)
        finally:
            self.seconds += time.perf_counter() - t0


def run_evaluation(profile: Profile, corpus, *, device: str = "cpu", progress: bool = True,
                   jobs: list[EvalJob] | None = None, split: str = "test",
                   workers: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Separate and score every clip of ``split`` for every job; write the results tables.

    Returns ``(scores, timing)`` where ``scores`` is the tidy per-clip table
    (:data:`guitarsep.evaluation.metrics.RESULT_COLUMNS`) and ``timing`` holds the wall seconds spent
    separating and scoring (summed over the jobs). Writes ``<results_dir>/scores.csv`` and
    ``medians.csv`` for the test split, ``<split>_scores.csv`` and ``<split>_medians.csv``
    otherwise. On a split other than "test" (the validation clips, scenario "valid") every job
    runs on every clip.

    On the CPU the jobs go to ``workers`` processes (default: one per core;
    :mod:`guitarsep.parallel`), each separating with one torch / BLAS thread, as the jobs do
    here when ``workers`` is 1: the table is the same bytes either way.
    """
    test = corpus.clips(split=split)
    if test.empty:
        raise ValueError(f"{corpus.root}: the corpus has no {split} clips")
    museval_ids = select_museval_clips(test, profile.eval.museval_clips_per_cell)
    todo = [j for j in (jobs or evaluation_jobs(profile)) if _job_clip_ids(test, j, split)]
    n = worker_count(workers, tasks=len(todo), on_cpu=device == "cpu")
    if n == 1:
        # each clip is read once and shared by all jobs (a few hundred 15 s clips fit in RAM)
        clips = {cid: corpus.clip(cid) for cid in test.clip_id}
        results = [_evaluate_job(profile, job, [clips[c] for c in _job_clip_ids(test, job, split)],
                                 museval_ids, device, progress, profile.eval.n_jobs)
                   for job in todo]
    else:
        tasks = [(_evaluate_job_in_worker, (profile, job, corpus, split, museval_ids, device))
                 for job in todo]
        results = run_tasks(tasks, n, progress=progress, unit="job",
                            desc=f"evaluation {profile.name} ({n} processes)")
    scores = pd.concat([r[0] for r in results], ignore_index=True)
    out = profile.results_dir
    out.mkdir(parents=True, exist_ok=True)
    prefix = "" if split == "test" else f"{split}_"
    scores.to_csv(out / f"{prefix}scores.csv", index=False, float_format="%.4f")
    medians_table(scores, n_boot=profile.eval.bootstrap, seed=profile.seed).to_csv(
        out / f"{prefix}medians.csv", index=False, float_format="%.3f")
    t_sep, t_total = sum(r[1] for r in results), sum(r[2] for r in results)
    timing = {"separation_s": round(t_sep, 1), "metrics_s": round(t_total - t_sep, 1),
              "clips": len(test), "rows": len(scores), "museval_clips": len(museval_ids),
              "processes": n}
    return scores, timing


def _job_clip_ids(rows: pd.DataFrame, job: EvalJob, split: str) -> list[str]:
    """The clip ids of ``rows`` (manifest rows of ``split``) that ``job`` runs on: on the test
    split those of its scenarios, on another split every clip."""
    ids = rows.clip_id if split != "test" else rows.clip_id[rows.scenario.isin(job.scenarios)]
    return list(ids)


def _evaluate_job_in_worker(profile: Profile, job: EvalJob, corpus, split: str,
                            museval_ids: set[str],
                            device: str) -> tuple[pd.DataFrame, float, float]:
    """A worker's task of :func:`run_evaluation`: the job's clips read here, then
    :func:`_evaluate_job` without bars and with BSS Eval in this process."""
    t_start = time.perf_counter()
    ids = _job_clip_ids(corpus.clips(split=split), job, split)
    scores, t_sep, _ = _evaluate_job(profile, job, [corpus.clip(c) for c in ids],
                                         museval_ids, device, False, 1)
    return scores, t_sep, time.perf_counter() - t_start


def _evaluate_job(profile: Profile, job: EvalJob, chosen: list, museval_ids: set[str],
                  device: str, progress: bool,
                  museval_jobs: int) -> tuple[pd.DataFrame, float, float]:
    """One job of :func:`run_evaluation` on its clips (``corpus.Clip``):
    ``(scores, separation seconds, total seconds)``. Separates with one torch / BLAS thread."""
    from guitarsep.separation import separate_batch
    from guitarsep.training.loop import load_trained

    t_start = time.perf_counter()
    if job.spec:       # a trained network, separated with the mask it was trained on
        lm = load_trained(profile, job.spec, device=device)
        model, mask = lm.model, lm.mask
    else:              # a reference
        model, mask = job.model, profile.mask
    with single_threaded():
        estimates = _Timed(separate_batch(model, chosen, SETTINGS[job.setting],
                                          sr=chosen[0].sr, mask_params=mask, device=device,
                                          progress=progress, desc=f"{job.setting}-{job.model}"))
        items = ((_meta(clip, job), est, clip.target, clip.other) for clip, est in estimates)
        scores = evaluate_clips(items, profile.eval, sr=chosen[0].sr, museval_ids=museval_ids,
                                n_jobs=museval_jobs, progress=False, total=len(chosen))
    return scores, estimates.seconds, time.perf_counter() - t_start


def _meta(clip, job: EvalJob) -> dict:
    return {"model": job.model, "setting": job.setting, "scenario": clip.scenario,
            "combination": clip.combination, "clip_id": clip.clip_id,
            "target_timbre": clip.row["target_timbre"], "other_timbre": clip.row["other_timbre"]}
