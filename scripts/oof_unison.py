"""How much of each clip the two parts play in unison, and what that costs the separators.

For every out-of-family clip and every dev clip of the score NMF (``scripts/nmf_dev.py``): the
target's unison share (``corpus.stats.unison_share``: the share of its sounding time in which
the other part holds the same pitch), joined with the SI-SDR already scored for the shipped
NMF, the score-only mask and the oracle ratio mask (out of family:
``data/results/default/generalization_scores.csv``; dev: ``nmf_dev.csv``, its ``chosen``
rows). Nothing is separated here and nothing is chosen: it explains the table of
``guitarsep evaluate-oof``, measured once before.

Writes ``data/results/default/oof_unison.csv`` (per clip) and the table of docs/ablations.md
between its markers: medians per clip set, cell and unison band.

    python scripts/oof_unison.py      # about a second; needs the default reproduce's clips
"""
from __future__ import annotations

import pandas as pd

from guitarsep.config import load_profile
from guitarsep.corpus.clips import Corpus
from guitarsep.corpus.out_of_family import nmf_dev_sets, out_of_family_dir
from guitarsep.corpus.stats import unison_share
from guitarsep.evaluation.out_of_family import GENERALIZATION_CSV
from guitarsep.io import run_doc_table

MARK = ("<!-- oof-unison:begin -->", "<!-- oof-unison:end -->")
#: Unison bands of the table (share of the target's sounding time).
BANDS = [0.0, 0.3, 0.6, 1.0]


def _clip_sets(profile) -> list[tuple[str, Corpus, str, str, str, str | None]]:
    """``(name, corpus, split, scores file, the NMF's model name in it, its dev_set)`` of
    every clip set (two dev sets share clip ids: ``nmf_dev.csv`` tells them apart)."""
    oof = Corpus(out_of_family_dir(profile))
    dev = [(f"dev {name}", corpus, split, "nmf_dev.csv", "chosen", name)
           for name, corpus, split in nmf_dev_sets(profile, progress=False)]
    return [("out of family", oof, "test", GENERALIZATION_CSV, "shipped-score_nmf", None),
            *dev]


def unison_scores(profile) -> pd.DataFrame:
    """Per clip: set, cell (diff / same), unison share and the three models' SI-SDR. Reads
    only the clips' notes (no audio)."""
    rows = []
    for name, corpus, split, scores_file, nmf, dev_set in _clip_sets(profile):
        scores = pd.read_csv(profile.results_dir / scores_file)
        if dev_set is not None:
            scores = scores[scores.dev_set == dev_set]
        si_sdr = scores.pivot_table(index="clip_id", columns="model", values="si_sdr")
        for r in corpus.clips(split=split).itertuples(index=False):
            unison = unison_share(corpus.clip_notes(r.target_notes),
                                  corpus.clip_notes(r.other_notes))
            rows.append(dict(clip_set=name, clip_id=r.clip_id,
                             cell="same" if r.target_timbre == r.other_timbre else "diff",
                             unison=unison, nmf=si_sdr.loc[r.clip_id, nmf],
                             score_only=si_sdr.loc[r.clip_id, "score_only"],
                             oracle=si_sdr.loc[r.clip_id, "oracle_irm"]))
    return pd.DataFrame(rows)


def table(scores: pd.DataFrame) -> list[str]:
    """Markdown: per clip set, cell and unison band, the clips, medians and the NMF's lead."""
    band = pd.cut(scores.unison, BANDS, include_lowest=True, right=False)
    band = band.cat.rename_categories([f"{a:.0%}-{b:.0%}" for a, b in zip(BANDS, BANDS[1:])])
    df = scores.assign(band=band, gain=scores.nmf - scores.score_only)
    out = ["| clips | cell | unison | n | median unison | NMF | score-only | oracle "
           "| NMF over score-only (per clip) | clips better |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for (clip_set, cell, b), g in df.groupby(["clip_set", "cell", "band"], observed=True):
        out.append(f"| {clip_set} | {cell} | {b} | {len(g)} | {g.unison.median():.0%} | "
                   f"{g.nmf.median():.2f} | {g.score_only.median():.2f} | "
                   f"{g.oracle.median():.2f} | {g.gain.median():+.2f} | "
                   f"{(g.gain > 0).mean():.0%} |")
    return out


def main(argv=None) -> None:
    profile = load_profile("default")
    run_doc_table(argv, __doc__, lambda: unison_scores(profile), table,
                  profile.results_dir / "oof_unison.csv", MARK)


if __name__ == "__main__":
    main()
