"""How far the score NMF's model could reach on the out-of-family test cells: a post-hoc look.

``scripts/nmf_diagnose.py``'s rows (the NMF's gain; the oracle's; the NMF's factors fitted
to each isolated part, then one or both held) on the out-of-family *test* clips. It was run
after every parameter was chosen on dev clips and chooses nothing: it asks whether the
issue's target for these cells (the score-only mask + 3 dB) lies inside what the NMF's model
can express at all. ``both_known`` is that ceiling: each part's templates and activations
fitted to the part alone, nothing refitted to the mixture. Rows are masks on the whole clip
without the Wiener filter, as in the diagnosis; ``score_only`` is the committed score-only
mask of ``generalization_scores.csv`` (with the Wiener filter, as it is evaluated).

Writes ``data/results/default/nmf_ceiling.csv`` (per clip) and the table of
docs/ablations.md between its markers.

    python scripts/nmf_ceiling.py          # about 80 s on 2 cores
"""
from __future__ import annotations

import pandas as pd
from nmf_diagnose import clip_row           # scripts/ is sys.path[0] when run as a script

from guitarsep.config import load_profile
from guitarsep.corpus.out_of_family import build_out_of_family
from guitarsep.evaluation.out_of_family import read_generalization
from guitarsep.io import run_doc_table
from guitarsep.separation.score_nmf import NmfParams

MARK = ("<!-- nmf-ceiling:begin -->", "<!-- nmf-ceiling:end -->")
SHOWN = ["score_only", "nmf", "templates_known", "activations_known", "both_known", "oracle"]


def ceiling(profile) -> pd.DataFrame:
    """Per out-of-family test clip: the diagnosis's rows and the committed score-only SI-SDR."""
    corpus = build_out_of_family(profile)
    general = read_generalization(profile)
    score_only = general[general.model == "score_only"].set_index("clip_id").si_sdr
    rows = []
    for clip in corpus.clips(split="test").itertuples():
        rows.append(dict(family=clip.scenario, clip_id=clip.clip_id,
                         score_only=score_only[clip.clip_id],
                         **clip_row(corpus.clip(clip.clip_id), NmfParams(), profile.mask)))
    return pd.DataFrame(rows)


def table(scores: pd.DataFrame) -> list[str]:
    """Markdown: per family and cell, the medians and the per-clip lead over the score mask."""
    out = ["| family | cell | " + " | ".join(SHOWN) + " | nmf / both_known over score-only "
           "(per clip; target >= +3) |", "|---|---|" + "---|" * (len(SHOWN) + 1)]
    for (family, cell), g in scores.groupby(["family", "cell"]):
        lead = [(g[row] - g.score_only).median() for row in ("nmf", "both_known")]
        out.append(f"| {family} | {cell} | " + " | ".join(f"{g[c].median():.2f}" for c in SHOWN)
                   + f" | {lead[0]:+.2f} / {lead[1]:+.2f} |")
    return out


def main(argv=None) -> None:
    profile = load_profile("default")
    run_doc_table(argv, __doc__, lambda: ceiling(profile), table,
                  profile.results_dir / "nmf_ceiling.csv", MARK)


if __name__ == "__main__":
    main()
