"""The evaluation stage: every trained model and reference on the test clips -> scores.csv.

Used by 03_evaluate.ipynb and ``guitarsep evaluate``. It only wires existing pieces together:
clips come from :mod:`guitarsep.corpus`, estimates from :func:`guitarsep.separate.separate_batch`
(the same path for every model and reference) and scores from
:func:`guitarsep.metrics.evaluate_clips`.

Which clips each row is evaluated on (a decision of ours, to keep the default profile's
evaluation inside its budget): the models of ``unseen.png`` (SI-UMX soft / binary and blind
UMX, modern setting) and the references run on every test scenario (seen, a, b, c, d); the
other models appear only in the seen-timbre figures and run on scenario ``seen``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from .config import SETTINGS, ModelSpec, Profile
from .metrics import evaluate_clips, medians_table, select_museval_clips

__all__ = ["EvalJob", "evaluation_jobs", "run_evaluation", "ALL_SCENARIO_MODELS"]

#: Models evaluated on every scenario (those of the unseen figure); others on "seen" only.
ALL_SCENARIO_MODELS = frozenset({"modern-si_umx_soft", "modern-si_umx_binary",
                                 "modern-umx_blind"})
ALL_SCENARIOS = ("seen", "a", "b", "c", "d")


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
                    ALL_SCENARIOS if s.key in ALL_SCENARIO_MODELS else ("seen",), s)
            for s in profile.models]
    jobs += [EvalJob(ref, "modern", ALL_SCENARIOS, None) for ref in profile.eval.references]
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
                   jobs: list[EvalJob] | None = None,
                   split: str = "test") -> tuple[pd.DataFrame, dict]:
    """Separate and score every clip of ``split`` for every job; write the results tables.

    Returns ``(scores, timing)`` where ``scores`` is the tidy per-clip table
    (:data:`guitarsep.metrics.RESULT_COLUMNS`) and ``timing`` holds the wall seconds spent
    separating and scoring. Writes ``<results_dir>/scores.csv`` and ``medians.csv`` for the
    test split, ``<split>_scores.csv`` and ``<split>_medians.csv`` otherwise. On a split other
    than "test" (the validation clips, scenario "valid") every job runs on every clip.
    """
    from .train import load_trained

    test = corpus.clips(split=split)
    if test.empty:
        raise ValueError(f"{corpus.root}: the corpus has no {split} clips")
    # Each clip is read once and shared by all jobs (a few hundred 15 s clips fit in RAM).
    clips = {cid: corpus.clip(cid) for cid in test.clip_id}
    museval_ids = select_museval_clips(test, profile.eval.museval_clips_per_cell)
    frames, t_sep, t_total = [], 0.0, 0.0
    for job in jobs or evaluation_jobs(profile):
        rows = test if split != "test" else test[test.scenario.isin(job.scenarios)]
        chosen = [clips[c] for c in rows.clip_id]
        if not chosen:
            continue
        model = load_trained(profile, job.spec, device=device) if job.spec else job.model
        estimates = _Timed(separate_batch_for(model, chosen, profile, job, device, progress))
        t0 = time.perf_counter()
        items = ((_meta(clip, job), est, clip.target, clip.other) for clip, est in estimates)
        frames.append(evaluate_clips(items, profile.eval, sr=corpus.sr, museval_ids=museval_ids,
                                     progress=False, total=len(chosen)))
        t_total += time.perf_counter() - t0
        t_sep += estimates.seconds
    scores = pd.concat(frames, ignore_index=True)
    out = profile.results_dir
    out.mkdir(parents=True, exist_ok=True)
    prefix = "" if split == "test" else f"{split}_"
    scores.to_csv(out / f"{prefix}scores.csv", index=False, float_format="%.4f")
    medians_table(scores, n_boot=profile.eval.bootstrap, seed=profile.seed).to_csv(
        out / f"{prefix}medians.csv", index=False, float_format="%.3f")
    timing = {"separation_s": round(t_sep, 1), "metrics_s": round(t_total - t_sep, 1),
              "clips": len(clips), "rows": len(scores), "museval_clips": len(museval_ids)}
    return scores, timing


def separate_batch_for(model, clips, profile: Profile, job: EvalJob, device, progress):
    from .separate import separate_batch

    return separate_batch(model, clips, SETTINGS[job.setting], sr=clips[0].sr,
                          mask_params=profile.mask, device=device, progress=progress,
                          desc=f"{job.setting}-{job.model}")


def _meta(clip, job: EvalJob) -> dict:
    return {"model": job.model, "setting": job.setting, "scenario": clip.scenario,
            "combination": clip.combination, "clip_id": clip.clip_id,
            "target_timbre": clip.row["target_timbre"], "other_timbre": clip.row["other_timbre"]}
