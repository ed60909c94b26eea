"""Choose the per-note onset refinement (``guitarsep.score.onsets``) on dev clips only.

``guitarsep separate --refine-onsets`` moves each note of the score to its pitch's nearest
rise in the recording. This script scores it beside the score as given: 10 clips of each of
the score NMF's three dev sets (``corpus.out_of_family.nmf_dev_sets``, as
``scripts/nmf_dev.py``), score conditions of the robustness study's kinds (its own
perturbations and draws, ``evaluation.robustness``), each separated by the score NMF with the
score as given and refined (the chosen ``OnsetRefine`` and two variants). Writes
``data/results/default/onset_refine_dev.csv`` (per clip) and the table of docs/ablations.md
between its markers.

    python scripts/onset_refine_dev.py          # about 2-3 minutes on 2 cores
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from guitarsep.config import SETTINGS, MaskParams, load_profile
from guitarsep.corpus.out_of_family import nmf_dev_sets
from guitarsep.evaluation.metrics import si_sdr
from guitarsep.evaluation.robustness import _condition
from guitarsep.io import run_doc_table
from guitarsep.models.checkpoint import SCORE_NMF, load_model
from guitarsep.parallel import run_tasks, worker_count
from guitarsep.score.onsets import OnsetRefine, refine_parts
from guitarsep.separation.separate import separate_clip

CONDITIONS = [("none", 0.0), ("onset_jitter", 0.05), ("onset_jitter", 0.1),
              ("onset_jitter", 0.2), ("extra_notes", 0.1), ("missing_notes", 0.1),
              ("wrong_octave", 0.25), ("early_offsets", 0.5)]
#: label -> the refinement's settings (None: the score as given)
VARIANTS: dict[str, OnsetRefine | None] = {
    "given": None,
    "refined": OnsetRefine(),
    "radius_0.15": dataclasses.replace(OnsetRefine(), radius_s=0.15, sigma_s=0.1),
    "min_gain_1": dataclasses.replace(OnsetRefine(), min_gain=1.0),
}
CLIPS_PER_SET = 10
SEED = 0
MARK = ("<!-- onset-refine:begin -->", "<!-- onset-refine:end -->")


def clip_rows(dev_set: str, corpus, clip_id: str) -> list[dict]:
    """One row per condition of :data:`CONDITIONS`: the SI-SDR of every variant."""
    clip = corpus.clip(clip_id)
    model, setting = load_model(SCORE_NMF).model, SETTINGS["modern"]
    rows = []
    for kind, level in CONDITIONS:
        _mix, _target, *given = _condition(clip, kind, level, SEED)   # the study's draws
        row = dict(dev_set=dev_set, clip_id=clip_id, kind=kind, level=level)
        for label, params in VARIANTS.items():
            notes = given if params is None else refine_parts(given, clip.mix, clip.sr,
                                                              params=params)
            y = separate_clip(model, clip.mix, *notes, setting, sr=clip.sr,
                              mask_params=MaskParams())
            row[label] = float(si_sdr(y, clip.target))
        rows.append(row)
    return rows


def dev_scores(profile) -> pd.DataFrame:
    tasks = []
    for dev_set, corpus, split in nmf_dev_sets(profile):
        ids = sorted(corpus.clips(split=split).clip_id)
        ids = ids[::max(1, len(ids) // CLIPS_PER_SET)][:CLIPS_PER_SET]
        tasks += [(clip_rows, (dev_set, corpus, cid)) for cid in ids]
    out = run_tasks(tasks, worker_count(None, tasks=len(tasks)), progress=True,
                    desc="onset refinement", unit="clip")
    return pd.DataFrame([row for rows in out for row in rows])


def table(scores: pd.DataFrame) -> list[str]:
    labels = list(VARIANTS)
    out = ["| condition | level | clips | " + " | ".join(labels)
           + " | refined over given (per clip; clips 0.2 dB better / worse) |",
           "|---|---|---|" + "---|" * len(labels) + "---|"]
    groups = list(scores.groupby(["kind", "level"], sort=False)) + [(("all", ""), scores)]
    for (kind, level), g in groups:
        meds = " | ".join(f"{g[c].median():.2f}" for c in labels)
        d = g.refined - g.given
        out.append(f"| {kind} | {level} | {len(g)} | {meds} | {d.median():+.2f} "
                   f"({(d > 0.2).mean():.0%} / {(d < -0.2).mean():.0%}) |")
    return out


def main(argv=None) -> None:
    profile = load_profile("default")
    run_doc_table(argv, __doc__, lambda: dev_scores(profile), table,
                  profile.results_dir / "onset_refine_dev.csv", MARK)


if __name__ == "__main__":
    main()
