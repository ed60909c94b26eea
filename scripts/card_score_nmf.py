"""Write the model card of the default separator, the score-informed NMF, from the results.

The NMF (``guitarsep.separation.score_nmf``) has no weights: shipping it is shipping its code
and its parameters. Its card (``lib/guitarsep/resources/score_nmf.md``) is drawn from the
committed tables of the default profile, so it needs no separation:

- ``data/results/default/generalization_scores.csv`` (``guitarsep evaluate-oof``, run by
  03_evaluate.ipynb): the NMF as ``shipped-score_nmf`` on the corpus's test clips (seen, a-d)
  and the out-of-family clips; the profile's SI-UMX soft, the score-only mask and the oracle
  on the out-of-family clips;
- ``data/results/default/scores.csv``: the same three on the corpus's test clips.

    python scripts/card_score_nmf.py [--bench nmf.json --reference-bench network.json]
    # the JSON files: what scripts/bench_separate.py [--model score_nmf] prints
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from guitarsep import RESOURCES
from guitarsep.config import load_profile
from guitarsep.evaluation.model_card import cell_table, verdict_table
from guitarsep.evaluation.out_of_family import read_generalization
from guitarsep.models.checkpoint import SCORE_NMF, load_model

SHIPPED = f"shipped-{SCORE_NMF}"
COLUMNS = [SHIPPED, "si_umx_soft", "score_only", "oracle_irm"]


def card_scores(profile) -> pd.DataFrame:
    """Per-clip SI-SDR of :data:`COLUMNS` on every test cell, from the committed tables."""
    general = read_generalization(profile)
    if general is None or SHIPPED not in set(general.model):
        raise SystemExit(f"{profile.results_dir}: no {SHIPPED} rows in the generalization "
                         "table; run `guitarsep evaluate-oof --profile default` first")
    corpus = pd.read_csv(profile.results_dir / "scores.csv", dtype={"clip_id": str})
    corpus = corpus[(corpus.setting == "modern") & corpus.model.isin(COLUMNS[1:])]
    return pd.concat([general[general.model.isin(COLUMNS)], corpus], ignore_index=True)


def write_card(scores: pd.DataFrame, bench: dict | None, reference: dict | None,
               out: Path, target_only: dict | None = None) -> None:
    lm = load_model(SCORE_NMF)
    text = [f"# Model card: `{SCORE_NMF}` (the default of `guitarsep separate`)", "",
            "Score-informed NMF (`guitarsep.separation.score_nmf`; after Ewert & Müller 2012). "
            "The mixture magnitude is factorised into harmonic templates and activations per "
            "(part, pitch) of the score, plus one attack component per part and a few "
            "spare components for energy no scored note explains (a note the score misses; "
            "they pay a penalty per unit of energy, and half of what they model goes to each "
            "part), and each part's pitches may sound outside their notes at a price (pitch slack, "
            "for a missed note of a pitch the part plays elsewhere). Templates are "
            "zero off their pitch's harmonics and activations zero outside the score's note "
            "spans; the activations start with a plucked decay from each onset and a release "
            "after each offset, and KL multiplicative updates fit the rest to the recording "
            "(the activations' updates damped, so that the start keeps deciding which part "
            "sounds where the parts' harmonics meet). Without the accompaniment's notes the "
            "other guitar is a part of unknown notes: one harmonic component per pitch of a "
            "guitar's range, free to sound in any frame from a tiny start, so that the "
            "target's scored notes explain what they can first. The target mask "
            "V_t^p / (V_t^p + V_o^p), p = mask_power, goes through the same Wiener filter and "
            "inverse STFT as the networks. No learned parameters: nothing was trained, so "
            "there is no training timbre to overfit to. The parameters were chosen on dev clips "
            "only, never on a test clip: the default corpus's 24 validation clips and 32 "
            "additive-synthesis duets, and checked on 48 chord-on-chord ones as unison-heavy "
            "as the test families (`scripts/nmf_dev.py`; the table in docs/ablations.md).",
            "",
            f"- parameters: `{json.dumps(lm.hparams)}`",
            f"- activation tolerances (the score mask's): `{json.dumps(asdict(lm.mask))}`",
            f"- STFT: `{lm.setting.name}` ({lm.setting.n_fft}-point, hop {lm.setting.hop}, "
            f"{lm.setting.sr} Hz)",
            "", "## Test medians (SI-SDR, dB)", "",
            "The default corpus's test clips (scenarios seen, a-d) and the out-of-family "
            "families (sound sources no training clip uses; for the NMF nothing is trained, "
            "so they test only how far its harmonic model fits other instruments), from "
            "`data/results/default/generalization_scores.csv` and `scores.csv` "
            "(`scripts/card_score_nmf.py`). `si_umx_soft`: the default profile's SI-Open-Unmix "
            "soft, trained on the seen pool's two GM soundfonts.", "",
            *cell_table(scores, COLUMNS), "",
            "## Against the score-only mask, out of family", "",
            *verdict_table(scores, SHIPPED), ""]
    if bench:
        text += ["## Speed (`scripts/bench_separate.py --model score_nmf`)", "",
                 f"{bench['audio_s'] / 60:.0f} min stereo {bench['sr']} Hz on "
                 f"{bench['cpu_count']} CPU cores: {bench['wall_s']:.0f} s wall "
                 f"({bench['audio_s'] / bench['wall_s']:.1f}x real time), peak memory "
                 f"{bench['peak_rss_bytes'] / 2**30:.2f} GiB."]
        if reference:
            text[-1] += (f" On the same machine, in the same session, the default-size network "
                         f"(`scripts/bench_separate.py`, si_umx_soft) ran at "
                         f"{reference['audio_s'] / reference['wall_s']:.1f}x: machines of "
                         f"this kind differ up to 2x.")
        if target_only:
            text[-1] += (f" With the target's part alone in the score (`--no-accomp`: the "
                         f"other guitar a part of unknown notes): "
                         f"{target_only['wall_s']:.0f} s wall "
                         f"({target_only['audio_s'] / target_only['wall_s']:.1f}x real time), "
                         f"peak memory {target_only['peak_rss_bytes'] / 2**30:.2f} GiB.")
        text.append("")
    out.write_text("\n".join(text))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=None, help="JSON printed by scripts/bench_separate.py")
    ap.add_argument("--reference-bench", default=None,
                    help="JSON of scripts/bench_separate.py for the network, same machine")
    ap.add_argument("--no-accomp-bench", default=None,
                    help="JSON of scripts/bench_separate.py --model score_nmf --no-accomp")
    args = ap.parse_args(argv)
    scores = card_scores(load_profile("default"))
    bench, reference, target_only = (
        json.loads(Path(f).read_text()) if f else None
        for f in (args.bench, args.reference_bench, args.no_accomp_bench))
    write_card(scores, bench, reference, RESOURCES / f"{SCORE_NMF}.md", target_only)
    print((RESOURCES / f"{SCORE_NMF}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
