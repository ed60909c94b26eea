"""The score NMF with the target's notes alone, on the out-of-family test clips (post hoc).

The mission names one score: a mix of two guitars and the notes of *one* of them. Every other
table of the project gives the separators both parts' notes, as the paper does. This script
scores the case without the accompaniment's notes on the 144 out-of-family test clips
(``corpus.out_of_family``), after its parameters were chosen on dev clips
(``scripts/nmf_dev.py``, the ``no_accompaniment*`` rows); it chooses nothing:

- ``nmf_target_only``: the shipped NMF without the accompaniment's notes (the other guitar a
  part of unknown notes, ``NmfParams.unknown_pitches``);
- ``nmf_free_components``: the same with the 8 free components it had before 2026-12-06;
- ``comb_target_only``: the target's harmonic-comb mask alone (``score.masks``, the binary
  score mask: what a score-only mask can do without the other part's notes), through the
  same Wiener filter and inverse STFT;
- ``shipped-score_nmf``, ``score_only``, ``oracle_irm``: with both parts' notes, read from
  ``generalization_scores.csv`` (not separated again).

Writes ``data/results/default/oof_target_only.csv`` (per clip) and the table of
docs/ablations.md between its markers.

    python scripts/oof_target_only.py          # about 2 minutes on 2 cores
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from guitarsep.config import SETTINGS, MaskParams, load_profile
from guitarsep.corpus.out_of_family import build_out_of_family
from guitarsep.evaluation.out_of_family import read_generalization, score_models
from guitarsep.io import run_doc_table
from guitarsep.models.checkpoint import SCORE_NMF, LoadedModel
from guitarsep.score import Notes
from guitarsep.score.masks import binary_score_mask
from guitarsep.separation.score_nmf import NmfParams, ScoreNmf

MARK = ("<!-- oof-target-only:begin -->", "<!-- oof-target-only:end -->")
FROM_GENERALIZATION = ("shipped-score_nmf", "score_only", "oracle_irm")


class TargetOnly(ScoreNmf):
    """The NMF given the target's notes alone."""

    def magnitude(self, mag, target, accomp, mask=None):
        return super().magnitude(mag, target, Notes.empty(), mask)


class TargetComb(ScoreNmf):
    """The target's binary harmonic-comb score mask times the mixture magnitude."""

    def magnitude(self, mag, target, accomp, mask=None):
        st = self.setting
        comb = binary_score_mask(target, mag.shape[0], sr=st.sr, n_fft=st.n_fft, hop=st.hop,
                                 params=mask or self.mask)
        return comb * mag


def _loaded(kind: type[ScoreNmf], params: NmfParams = NmfParams()) -> LoadedModel:
    setting, mask = SETTINGS["modern"], MaskParams()
    return LoadedModel(kind(setting, mask, params), SCORE_NMF, setting,
                       dataclasses.asdict(params), mask)


def target_only_scores(profile) -> pd.DataFrame:
    corpus = build_out_of_family(profile)
    models = {"nmf_target_only": _loaded(TargetOnly),
              "nmf_free_components": _loaded(TargetOnly, NmfParams(unknown_pitches=(0, -1),
                                                                   free_components=8)),
              "comb_target_only": _loaded(TargetComb)}
    scores = score_models(corpus, models, mask=profile.mask)
    both = read_generalization(profile)
    both = both[both.model.isin(FROM_GENERALIZATION) & both.clip_id.isin(scores.clip_id)]
    return pd.concat([scores, both[scores.columns]], ignore_index=True)


def table(scores: pd.DataFrame) -> list[str]:
    wide = scores.pivot_table(index=["scenario", "combination", "clip_id"], columns="model",
                              values="si_sdr")
    cols = ["nmf_target_only", "nmf_free_components", "comb_target_only", "shipped-score_nmf",
            "score_only", "oracle_irm"]
    out = ["| family | cell | " + " | ".join(cols) + " | target-only NMF over the target's comb "
           "(per clip; clips better) | over the both-parts score mask |",
           "|---|---|" + "---|" * (len(cols) + 2)]
    for (fam, cell), g in wide.groupby(level=["scenario", "combination"]):
        meds = " | ".join(f"{g[c].median():.2f}" for c in cols)
        gain = g.nmf_target_only - g.comb_target_only
        gain2 = g.nmf_target_only - g.score_only
        out.append(f"| {fam} | {cell} | {meds} | {gain.median():+.2f} ({(gain > 0).mean():.0%})"
                   f" | {gain2.median():+.2f} ({(gain2 > 0).mean():.0%}) |")
    return out


def main(argv=None) -> None:
    profile = load_profile("default")
    run_doc_table(argv, __doc__, lambda: target_only_scores(profile), table,
                  profile.results_dir / "oof_target_only.csv", MARK)


if __name__ == "__main__":
    main()
