"""Choose how `--align` uses the DTW alignment, on dev clips only, never on a test clip.

DTW alignment (``guitarsep.score.align``) rescues a late or slow score, but it also moves the
notes of a score that was right: on the robustness study's clean scores it cost the score NMF
0.24 dB (2026-12-06). ``guitarsep.separation.score_fit`` keeps the score as given where it
explains the recording better than the aligned one. This script scores that guard beside
"never align" and "always align": 10 clips of each of the score NMF's three dev sets
(``corpus.out_of_family.nmf_dev_sets``, as ``scripts/nmf_dev.py``), 13 score conditions of the
robustness study's kinds (its own perturbations and draws, ``evaluation.robustness``), each
separated by the score NMF. Writes ``data/results/default/align_guard_dev.csv`` (per clip) and the table of
docs/ablations.md between its markers.

    python scripts/align_guard_dev.py          # about 5 minutes on 2 cores
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from guitarsep.config import SETTINGS, MaskParams, load_profile
from guitarsep.corpus.out_of_family import nmf_dev_sets
from guitarsep.evaluation.metrics import si_sdr
from guitarsep.evaluation.robustness import _condition
from guitarsep.io import run_doc_table
from guitarsep.models.checkpoint import SCORE_NMF, load_model
from guitarsep.score.align import align_notes
from guitarsep.separation.score_fit import prefer_aligned
from guitarsep.separation.separate import separate_clip

CONDITIONS = [("none", 0.0), ("onset_jitter", 0.05), ("onset_jitter", 0.2),
              ("global_offset", 0.1), ("global_offset", 0.25), ("global_offset", 0.5),
              ("global_offset", 1.0), ("extra_notes", 0.1), ("extra_notes", 0.25),
              ("missing_notes", 0.1), ("missing_notes", 0.25), ("wrong_octave", 0.25),
              ("early_offsets", 0.5)]
CLIPS_PER_SET = 10
SEED = 0
MARK = ("<!-- align-guard:begin -->", "<!-- align-guard:end -->")


def _rows(dev_set: str, clip, model, setting) -> list[dict]:
    rows = []
    for kind, level in CONDITIONS:
        _mix, _target, *given = _condition(clip, kind, level, SEED)   # the study's draws
        given = tuple(given)
        aligned, _report = align_notes(list(given), clip.mix, clip.sr)
        choice = prefer_aligned(clip.mix, clip.sr, given, tuple(aligned))
        sdr = {name: float(si_sdr(separate_clip(model, clip.mix, *notes, setting, sr=clip.sr,
                                                mask_params=MaskParams()), clip.target))
               for name, notes in (("given", given), ("aligned", aligned))}
        rows.append(dict(dev_set=dev_set, clip_id=clip.clip_id, kind=kind, level=level,
                         given=sdr["given"], aligned=sdr["aligned"],
                         guarded=sdr["aligned"] if choice.aligned else sdr["given"],
                         kept_aligned=choice.aligned, divergence_given=choice.divergence_given,
                         divergence_aligned=choice.divergence_aligned))
    return rows


def dev_scores(profile) -> pd.DataFrame:
    model, setting = load_model(SCORE_NMF).model, SETTINGS["modern"]
    rows = []
    for dev_set, corpus, split in nmf_dev_sets(profile):
        man = corpus.manifest
        ids = sorted(man[man.split == split].clip_id)
        ids = ids[::max(1, len(ids) // CLIPS_PER_SET)][:CLIPS_PER_SET]
        for cid in tqdm(ids, desc=f"align guard: {dev_set}", unit="clip"):
            rows += _rows(dev_set, corpus.clip(cid), model, setting)
    return pd.DataFrame(rows)


def table(scores: pd.DataFrame) -> list[str]:
    out = ["| condition | level | clips | given | aligned | guarded | better of the two "
           "| aligned score kept |", "|---|---|---|---|---|---|---|---|"]
    scores = scores.assign(best=np.maximum(scores.given, scores.aligned))
    groups = list(scores.groupby(["kind", "level"], sort=False)) + [(("all", ""), scores)]
    for (kind, level), g in groups:
        meds = " | ".join(f"{g[c].median():.2f}" for c in ("given", "aligned", "guarded", "best"))
        out.append(f"| {kind} | {level} | {len(g)} | {meds} | {g.kept_aligned.mean():.0%} |")
    gain = scores.guarded - scores.aligned
    loss = scores.best - scores.guarded
    out.append("")
    out.append(f"Guarded against always aligned, per case: {gain.mean():+.2f} dB on average "
               f"(median {gain.median():+.2f}); {(loss > 0.5).mean():.1%} of the "
               f"{len(scores)} cases 0.5 dB or more below the better of the two scores.")
    return out


def main(argv=None) -> None:
    profile = load_profile("default")
    run_doc_table(argv, __doc__, lambda: dev_scores(profile), table,
                  profile.results_dir / "align_guard_dev.csv", MARK)


if __name__ == "__main__":
    main()
