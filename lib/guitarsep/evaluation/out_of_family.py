"""Scoring models on the out-of-family test clips (``corpus.out_of_family``) and on the
corpus's test clips, for the shipped model, the ablations and the model card.

Used by ``guitarsep evaluate-oof``, ``scripts/ablations.py``, ``scripts/ship_model.py`` and
03_evaluate.ipynb (:func:`run_generalization`: the table of ``figures/generalization.png``). Every model and reference goes through ``separation.separate_batch``, the
path of every other table; only SI-SDR is computed (BSS Eval is the corpus evaluation's).

The verdict the separator issue asks for, per cell (family x pairing): the model's median
SI-SDR minus the score-only mask's median on the same clips, and the share of clips where
the model beats the score-only mask (:func:`against_score_only`).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from guitarsep.config import SETTINGS, EvalConfig, MaskParams
from guitarsep.evaluation.metrics import evaluate_clips
from guitarsep.parallel import run_tasks, single_threaded, worker_count

__all__ = ["score_models", "score_tasks", "run_score_tasks", "cell_medians",
           "against_score_only", "run_generalization",
           "read_generalization", "GENERALIZATION_CSV", "SHIPPED_MODEL"]

#: The shipped model of ``generalization.png`` ("Shipped (score NMF)") and the listening page:
#: the default of ``guitarsep separate``, the score-informed NMF (``separation.score_nmf``;
#: its card: resources/score_nmf.md).
SHIPPED_MODEL = "score_nmf"
#: The results file of :func:`run_generalization` (in the profile's results folder).
GENERALIZATION_CSV = "generalization_scores.csv"


def score_models(corpus, models: Mapping[str, object], *, mask: MaskParams,
                 scenarios: tuple[str, ...] | None = None, split: str = "test",
                 device: str = "cpu", progress: bool = True,
                 workers: int | None = None) -> pd.DataFrame:
    """Per-clip SI-SDR of every entry of ``models`` on the ``split`` clips of ``corpus``.

    ``models``: label -> a ``models.LoadedModel`` (separated with its own mask parameters
    and setting) or a reference name (``oracle_irm``, ``score_only``, ``mixture``; modern
    setting, ``mask``). ``scenarios``: keep only these (default all). ``workers``: processes
    (None: one per core), one entry each at a time; the table is the same bytes either way.
    Returns the tidy table of ``metrics.evaluate_clips`` with ``model`` = the label.
    """
    tasks = score_tasks(corpus, models, mask=mask, scenarios=scenarios, split=split,
                        device=device)
    workers = workers if device == "cpu" else 1
    return pd.concat(run_score_tasks(tasks, workers, progress=progress, desc=f"scoring {split}"),
                     ignore_index=True)


def score_tasks(corpus, models: Mapping[str, object], *, mask: MaskParams,
                scenarios: tuple[str, ...] | None = None, split: str = "test",
                device: str = "cpu") -> list[tuple]:
    """The ``(function, args)`` tasks of :func:`score_models`, one per entry of ``models``
    (to pool with other tasks in :func:`run_score_tasks`)."""
    rows = corpus.clips(split=split)
    if scenarios is not None:
        rows = rows[rows.scenario.isin(scenarios)]
    if rows.empty:
        raise ValueError(f"{corpus.root}: no {split} clips in scenarios {scenarios}")
    ids = tuple(rows.clip_id)
    return [(_score_entry, (corpus, ids, label, entry, mask, device))
            for label, entry in models.items()]


def run_score_tasks(tasks: list[tuple], workers: int | None, *, progress: bool,
                    desc: str) -> list[pd.DataFrame]:
    """Run :func:`score_tasks`' tasks over ``workers`` processes (None: one per core); their
    tables in the tasks' order."""
    n = worker_count(workers, tasks=len(tasks))
    return run_tasks(tasks, n, progress=progress, desc=f"{desc} ({n} processes)", unit="model")


def _score_entry(corpus, clip_ids: tuple[str, ...], label: str, entry, mask: MaskParams,
                 device: str) -> pd.DataFrame:
    """One model (or reference) on the clips ``clip_ids`` of ``corpus``, separated with one
    torch / BLAS thread wherever it runs (the bytes do not depend on the worker count)."""
    from guitarsep.separation import separate_batch

    clips = [corpus.clip(c) for c in clip_ids]
    if isinstance(entry, str):
        model, setting, params = entry, SETTINGS["modern"], mask
    else:
        model, setting, params = entry.model, entry.setting, entry.mask
    with single_threaded():
        est = separate_batch(model, clips, setting, sr=corpus.sr, mask_params=params,
                             device=device, progress=False, desc=label)
        items = (({"model": label, "setting": setting.name, "scenario": c.scenario,
                   "combination": c.combination, "clip_id": c.clip_id,
                   "target_timbre": c.target_timbre, "other_timbre": c.other_timbre},
                  y, c.target, c.other) for c, y in est)
        return evaluate_clips(items, EvalConfig(museval_clips_per_cell=0), sr=corpus.sr,
                              museval_ids=set(), progress=False, total=len(clips))


def cell_medians(scores: pd.DataFrame) -> pd.DataFrame:
    """Median SI-SDR per (scenario, combination) cell and model: rows = cells, columns =
    models, plus ``n`` (clips per cell)."""
    med = scores.pivot_table(index=["scenario", "combination"], columns="model",
                             values="si_sdr", aggfunc="median")
    med["n"] = scores.groupby(["scenario", "combination"]).clip_id.nunique()
    return med.reset_index()


def against_score_only(scores: pd.DataFrame, model: str,
                       reference: str = "score_only") -> pd.DataFrame:
    """Per cell: ``model`` and ``reference`` medians, their difference (dB) and the share of
    clips where ``model`` beats ``reference`` (paired by clip id)."""
    wide = scores.pivot_table(index=["scenario", "combination", "clip_id"], columns="model",
                              values="si_sdr")
    diff = wide[model] - wide[reference]
    g = wide.assign(diff=diff).groupby(level=["scenario", "combination"])
    out = pd.DataFrame({
        "model_median": g[model].median(), "reference_median": g[reference].median(),
        "gain_db": g[model].median() - g[reference].median(),
        "share_better": g["diff"].apply(lambda d: float(np.mean(d > 0))),
        "n": g[model].count(),
    })
    return out.reset_index()


def run_generalization(profile, *, shipped: tuple[str, ...] | None = None,
                       progress: bool = True, workers: int | None = None) -> pd.DataFrame:
    """The table of ``figures/generalization.png`` (03_evaluate.ipynb, ``guitarsep
    evaluate-oof``): on the out-of-family clips (built if needed), the profile's trained
    models of every scenario (``vocabulary.ALL_SCENARIO_MODELS``), the ``shipped`` models
    (default: :data:`SHIPPED_MODEL`; label ``shipped-<name>``) and the references; on the
    corpus's test clips, the shipped models only (the profile's models are in
    ``scores.csv``). ``workers``: processes (None: one per core). Writes
    ``<results_dir>/generalization_scores.csv`` and returns it.
    """
    from guitarsep.corpus import load_corpus
    from guitarsep.corpus.out_of_family import build_out_of_family
    from guitarsep.models.checkpoint import load_model
    from guitarsep.training.loop import load_trained
    from guitarsep.vocabulary import ALL_SCENARIO_MODELS

    ship = {f"shipped-{n}": load_model(n) for n in (shipped or (SHIPPED_MODEL,))}
    models: dict = {spec.name: load_trained(profile, spec) for spec in profile.models
                    if spec.key in ALL_SCENARIO_MODELS}
    models.update(ship)
    models.update({ref: ref for ref in profile.eval.references})
    oof = build_out_of_family(profile, progress=progress)
    # one pool for both clip sets, the shipped models on the corpus (the longest tasks) first;
    # the table keeps the out-of-family rows first
    on_corpus = score_tasks(load_corpus(profile), ship, mask=profile.mask)
    on_oof = score_tasks(oof, models, mask=profile.mask)
    frames = run_score_tasks(on_corpus + on_oof, workers, progress=progress,
                             desc="out-of-family and shipped models")
    n = len(on_corpus)
    scores = pd.concat(frames[n:] + frames[:n], ignore_index=True)
    out = profile.results_dir
    out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out / GENERALIZATION_CSV, index=False, float_format="%.4f")
    return scores


def read_generalization(profile) -> pd.DataFrame | None:
    """The committed table of :func:`run_generalization`, or None when it has not been made
    (04_figures.ipynb, ``guitarsep figures``)."""
    path = profile.results_dir / GENERALIZATION_CSV
    return pd.read_csv(path, dtype={"clip_id": str}) if path.is_file() else None
