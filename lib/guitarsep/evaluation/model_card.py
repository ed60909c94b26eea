"""The tables of a shipped model's card (``lib/guitarsep/resources/<name>.md``): medians per
test cell beside the model it replaced, the score-only mask and the oracle, and the separator
issue's verdict per out-of-family cell.

Used by ``scripts/ship_model.py`` (the score-prior network) and ``scripts/card_score_nmf.py``
(the score-informed NMF); the scores come from :func:`out_of_family.score_models`.
"""
from __future__ import annotations

import pandas as pd

from guitarsep.evaluation.out_of_family import against_score_only

__all__ = ["cell_table", "verdict_table"]


def cell_table(scores: pd.DataFrame, cols: list[str]) -> list[str]:
    """Markdown rows: median SI-SDR of each model of ``cols`` per (scenario, cell), then
    the median over the corpus's test clips (every scenario not ``oof_*``)."""
    med = scores.pivot_table(index=["scenario", "combination"], columns="model",
                             values="si_sdr", aggfunc="median")
    n = scores.groupby(["scenario", "combination"]).clip_id.nunique()
    lines = ["| scenario | cell | clips | " + " | ".join(cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for (s, c), row in med.iterrows():
        lines.append(f"| {s} | {c} | {n[(s, c)]} | "
                     + " | ".join(f"{row[m]:.2f}" for m in cols) + " |")
    corpus = scores[~scores.scenario.str.startswith("oof_")]
    all_med = corpus.groupby("model").si_sdr.median()
    lines.append(f"| corpus test (seen, a-d) | all | {corpus.clip_id.nunique()} | "
                 + " | ".join(f"**{all_med[m]:.2f}**" for m in cols) + " |")
    return lines


def verdict_table(scores: pd.DataFrame, model: str) -> list[str]:
    """Markdown rows: per out-of-family cell, ``model`` against the score-only mask (median
    gain, target >= 3 dB; share of clips better, target >= 90 %)."""
    oof = scores[scores.scenario.str.startswith("oof_")]
    v = against_score_only(oof, model)
    lines = ["| family | cell | model | score-only | gain (target >= 3 dB) | clips better "
             "(target >= 90 %) |", "|---|---|---|---|---|---|"]
    for r in v.itertuples(index=False):
        lines.append(f"| {r.scenario} | {r.combination} | {r.model_median:.2f} | "
                     f"{r.reference_median:.2f} | {r.gain_db:+.2f} | {r.share_better:.0%} |")
    return lines
