"""Robustness of score-informed separation to score errors (used by ``06_robustness.ipynb``).

A user's score is rarely the performance: notes are early or late, the whole score is offset
from the recording, notes are missing, extra, in the wrong octave, or end too early. This
module corrupts the true score of test clips in these ways, separates with the trained
score-informed models and the shipped score NMF (``RobustnessConfig.models``), with and
without DTW alignment (what ``guitarsep separate --align`` does: ``guitarsep.score.align``,
then the given score kept where it explains the recording better,
``guitarsep.separation.score_fit``), the models of ``RobustnessConfig.refine_models`` also
with each note's onset refined to the recording (``guitarsep separate --refine-onsets``:
``guitarsep.score.onsets``), and tabulates SI-SDR against the true target.

    >>> df = run_robustness(profile, corpus)          # one row per clip x condition x model
    >>> fig = plot_robustness(df)                      # guitarsep.evaluation.figures.plot_robustness

Perturbations (:func:`perturb_notes`; ``level`` in seconds or as a fraction of the notes):

* ``onset_jitter``: every note moves by ``U(-level, level)`` seconds (onset and offset
  together, so durations are kept; onsets are clipped at 0).
* ``global_offset``: every note is ``level`` seconds late (the score starts after the audio).
* ``missing_notes``: ``round(level * n)`` notes are dropped.
* ``extra_notes``: ``round(level * n)`` notes are added, with pitches drawn uniformly from the
  part's own pitch range, durations drawn from its own notes, onsets uniform over the clip.
* ``wrong_octave``: ``round(level * n)`` notes move one octave up or down (random sign,
  reflected when the move would leave the MIDI range).
* ``early_offsets``: every note keeps the first ``1 - level`` of its duration (a tab that does
  not notate let-ring); the score NMF's release start reads note ends, the networks' score
  masks tolerate them (``MaskParams.fermata``).

One perturbation of the recording instead of the score (:data:`RECORDING_KINDS`):

* ``detune_cents``: the recording is played ``level`` cents sharp (resampled, so its tempo
  rises by the same factor, and the score's times are scaled to match: only the tuning
  differs from the score). The score NMF reads the tuning (``guitarsep.score.tuning``); the
  networks keep the combs they were trained with, at 440 Hz.

Both parts of the score (target and accompaniment) get the same kind and level of error, with
independent draws, except the global offset, which is one shift of the whole score. Draws are a
pure function of ``(RobustnessConfig.seed, clip, kind, level, part)``, so the table is identical
on rerun.

Decisions where the paper is silent (it has no robustness study): jitter is uniform rather
than Gaussian so that ``level`` is the largest error; the alignment uses ``align_notes``
with its defaults (``subseq=False``: first and last notes pinned to the first and last sound);
``onset_error_ms`` is the median distance from each onset of the target score given to the
model to the nearest true onset of the same pitch (so it is defined for added and octave-moved
notes too, where no one-to-one match exists; NaN when no pitch matches).
"""
from __future__ import annotations

import time
import zlib

import numpy as np
import pandas as pd

from guitarsep.config import SETTINGS, ModelSpec, Profile
from guitarsep.io import resample
from guitarsep.parallel import run_tasks, single_threaded, worker_count
from guitarsep.score.notes import Notes
from guitarsep.score.perturb import PERTURBATION_KINDS, onset_error_ms, perturb_notes

__all__ = ["PERTURBATION_KINDS", "RECORDING_KINDS", "perturb_notes", "onset_error_ms",
           "robustness_conditions", "robustness_clips", "run_robustness", "detuned"]

#: perturbations of the recording rather than of the score (level: cents sharp)
RECORDING_KINDS = ("detune_cents",)

_RESULT_COLUMNS = ["clip_id", "combination", "kind", "level", "align", "refine", "model",
                   "si_sdr", "onset_error_ms", "n_target_notes"]


def _rng(seed: int, *keys) -> np.random.Generator:
    """A generator keyed by ``seed`` and strings/numbers (stable across runs and platforms)."""
    ints = [int(seed)] + [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(ints))


def robustness_conditions(cfg) -> list[tuple[str, float]]:
    """``[("none", 0.0), (kind, level), ...]``: the clean score, then every kind x level of
    ``cfg.levels`` (``RobustnessConfig``)."""
    out = [("none", 0.0)]
    for kind, levels in cfg.levels:
        if kind not in PERTURBATION_KINDS + RECORDING_KINDS:
            raise ValueError(f"unknown perturbation {kind!r} in the profile")
        out += [(kind, float(lv)) for lv in levels if float(lv) > 0]
    return out


def detuned(clip, cents: float) -> tuple[np.ndarray, np.ndarray, Notes, Notes]:
    """``(mix, target, target notes, accomp notes)`` of ``clip`` played ``cents`` sharp:
    resampled by ``r = 2 ** (cents / 1200)`` (pitch and tempo together), the notes' times
    divided by ``r``; the two waveforms have one length."""
    r = 2.0 ** (cents / 1200.0)
    mix, target = (resample(y, clip.sr * r, clip.sr) for y in (clip.mix, clip.target))
    n = min(len(mix), len(target))
    return (mix[:n], target[:n],
            *(Notes(x.onset / r, x.offset / r, x.pitch, x.velocity)
              for x in (clip.target_notes, clip.accomp_notes)))


def robustness_clips(corpus, cfg) -> list:
    """The first ``cfg.n_clips`` test clips of ``cfg.scenario``, taken round robin over its
    combinations (sorted ids), so every combination is represented."""
    man = corpus.manifest
    man = man[(man.split == "test") & (man.scenario == cfg.scenario)]
    if man.empty:
        raise ValueError(f"the corpus has no test clips of scenario {cfg.scenario!r}")
    groups = [sorted(g.clip_id) for _, g in man.groupby("combination", sort=True)]
    ids = []
    for i in range(max(len(g) for g in groups)):
        ids += [g[i] for g in groups if i < len(g)]
    return [corpus.clip(c) for c in ids[:int(cfg.n_clips)]]


def run_robustness(profile: Profile, corpus, *, device: str = "cpu", progress: bool = True,
                   models: dict | None = None,
                   workers: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Separate corrupted-score versions of test clips; return ``(table, timing)``.

    Args:
        profile: gives ``profile.robustness`` (clips, kinds, levels, models, seed) and the
            trained models (``training.load_trained``; ``score_nmf``: the shipped NMF, in its
            own setting).
        corpus: the built corpus of ``profile``.
        models: optional ``{name: network}`` overriding the trained ones (tests).
        workers: processes on the CPU, one clip each at a time (None: one per core); every
            clip is separated with one torch / BLAS thread, so the table is the same bytes
            either way.

    Returns:
        ``table``: one row per clip x condition x score fit (as given, aligned, onsets
        refined) x model, columns ``clip_id, combination, kind, level, align, refine, model,
        si_sdr, onset_error_ms, n_target_notes``;
        written to ``<results_dir>/robustness.csv``. ``timing``: seconds spent aligning and
        separating (summed over the clips), and the counts.
    """
    from guitarsep.models.checkpoint import SCORE_NMF, load_model
    from guitarsep.training.loop import load_trained

    cfg = profile.robustness
    setting = SETTINGS[cfg.setting]
    if models is None:
        loaded = {m: load_model(SCORE_NMF) if m == SCORE_NMF else
                  load_trained(profile, ModelSpec(m, cfg.setting), device=device)
                  for m in cfg.models}
        runs = {m: (lm.model, lm.setting) for m, lm in loaded.items()}
    else:
        runs = {m: (net, setting) for m, net in models.items()}
    clips = robustness_clips(corpus, cfg)
    conditions = robustness_conditions(cfg)
    n = worker_count(workers, tasks=len(clips), on_cpu=device == "cpu")
    results = run_tasks([(_robustness_of_clip, (profile, clip, runs, conditions, device))
                         for clip in clips], n, progress=progress, unit="clip",
                        desc=f"robustness ({len(conditions)} conditions, {n} processes)")
    table = pd.DataFrame([r for rows, _, _ in results for r in rows], columns=_RESULT_COLUMNS)
    out = profile.results_dir
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "robustness.csv", index=False, float_format="%.4f")
    timing = {"align_s": round(sum(r[1] for r in results), 1),
              "separation_s": round(sum(r[2] for r in results), 1),
              "clips": len(clips), "conditions": len(conditions), "rows": len(table),
              "processes": n}
    return table, timing


def _score_fits(cfg) -> list[tuple[bool, bool]]:
    """``(align, refine)`` of every score fit of the study: as given and aligned (``cfg.align``),
    then onsets refined (for ``cfg.refine_models`` only)."""
    return [(bool(a), False) for a in cfg.align] + [(False, True)] * bool(cfg.refine_models)


def _robustness_of_clip(profile: Profile, clip, runs: dict, conditions: list,
                        device: str) -> tuple[list[dict], float, float]:
    """Every condition x score fit x model of :func:`run_robustness` on one clip:
    ``(rows, score-fit seconds, separation seconds)``, with one torch / BLAS thread."""
    from guitarsep.evaluation.metrics import si_sdr
    from guitarsep.separation.separate import separate_clip

    cfg = profile.robustness
    rows, t_align, t_sep = [], 0.0, 0.0
    with single_threaded():
        for kind, level in conditions:
            mix, true_target, target, accomp = _condition(clip, kind, level, cfg.seed)
            for aligned, refined in _score_fits(cfg):
                t0 = time.perf_counter()
                t_n, a_n = _fitted_score(target, accomp, mix, clip.sr, profile.mask,
                                         aligned, refined)
                t_align += time.perf_counter() - t0
                true_notes = target if kind in RECORDING_KINDS else clip.target_notes
                err = onset_error_ms(t_n, true_notes) if len(t_n) else float("nan")
                for name, (model, model_setting) in runs.items():
                    if refined and name not in cfg.refine_models:
                        continue
                    t0 = time.perf_counter()
                    est = separate_clip(model, mix, t_n, a_n, model_setting, sr=clip.sr,
                                        mask_params=profile.mask, device=device)
                    t_sep += time.perf_counter() - t0
                    rows.append(dict(clip_id=clip.clip_id, combination=clip.combination,
                                     kind=kind, level=level, align=aligned, refine=refined,
                                     model=name, si_sdr=float(si_sdr(est, true_target)),
                                     onset_error_ms=err, n_target_notes=len(t_n)))
    return rows, t_align, t_sep


def _fitted_score(target: Notes, accomp: Notes, mix: np.ndarray, sr: int, mask,
                  aligned: bool, refined: bool) -> tuple[Notes, Notes]:
    """The score as the separation gets it: as given, after what `guitarsep separate
    --align` does, or after what `--refine-onsets` does."""
    if aligned:
        from guitarsep.separation.score_fit import align_checked
        (target, accomp), _report, _choice = align_checked(target, accomp, mix, sr, mask=mask)
    if refined:
        from guitarsep.score.onsets import refine_score
        target, accomp, _moved = refine_score(target, accomp, mix, sr, mask=mask)
    return target, accomp


def _condition(clip, kind: str, level: float, seed: int):
    """``(mix, true target, target notes, accomp notes)`` of one condition on ``clip``."""
    if kind in RECORDING_KINDS:
        return detuned(clip, level)
    # the global offset draws nothing: both parts get the same shift
    dur = len(clip.mix) / clip.sr
    target, accomp = (
        perturb_notes(notes, kind, level, _rng(seed, clip.clip_id, kind, level, part),
                      duration=dur)
        for part, notes in (("target", clip.target_notes), ("accomp", clip.accomp_notes)))
    return clip.mix, clip.target, target, accomp
