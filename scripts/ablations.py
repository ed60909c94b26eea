"""Ablations of the shipped separator: what makes the network hold on sounds it never heard.

Every variant trains on the ``ship`` corpus (drawn timbres) for the same number of steps and
is scored on the validation clips (during training) and on the out-of-family clips
(``corpus.out_of_family``), beside the score-only mask, the oracle and the shipped model of
the default corpus. Writes ``data/results/ship/ablations.csv`` (per clip) and the table of
``docs/ablations.md`` (between its markers).

    python scripts/ablations.py --steps 1500 [--only prior_sisdr ...]

Train alone on the machine (two torch processes on 2 cores slow each other ~20x).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass

import pandas as pd

from guitarsep.config import ModelSpec, load_profile
from guitarsep.corpus import build_corpus
from guitarsep.corpus.out_of_family import build_out_of_family
from guitarsep.evaluation.out_of_family import score_models
from guitarsep.io import write_between_markers
from guitarsep.models.checkpoint import load_model
from guitarsep.training.loop import load_trained, train_model


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    loss: str
    hidden: int
    what: str


VARIANTS = (
    Variant("umx_soft_mse", "si_umx_soft", "mse", 256,
            "the paper's SI-Open-Unmix (linear magnitude, score-filtered input, free mask), "
            "magnitude MSE"),
    Variant("umx_soft_sisdr", "si_umx_soft", "sisdr", 256,
            "the paper's network, waveform SI-SDR loss"),
    Variant("prior_mse", "si_umx_prior", "mse", 256,
            "log + per-frame-normalised input, both score sides, residual on the score "
            "mask; magnitude MSE"),
    Variant("prior_sisdr", "si_umx_prior", "sisdr", 256,
            "score-prior network, waveform SI-SDR loss"),
    Variant("prior_sisdr_h512", "si_umx_prior", "sisdr", 512,
            "score-prior network, SI-SDR loss, hidden 512"),
)
MARK = ("<!-- ablations:begin -->", "<!-- ablations:end -->")


def train_variant(ship, corpus, v: Variant, steps: int):
    epochs = 5
    prof = dataclasses.replace(
        ship, name=f"ship_ablation_{v.name}",
        train=dataclasses.replace(ship.train, loss=v.loss, hidden_size=v.hidden, epochs=epochs,
                                  steps_per_epoch=max(1, steps // epochs)))
    spec = ModelSpec(v.model, "modern")
    rec = train_model(prof, spec, corpus)
    return load_trained(prof, spec), rec


def table(scores: pd.DataFrame, records: dict) -> str:
    wide = scores.pivot_table(index=["scenario", "combination", "clip_id"], columns="model",
                              values="si_sdr")
    ref = wide["score_only"]
    lines = ["| variant | what changed | valid SI-SDR | OOF median | over score-only "
             "(median of per-clip gains) | clips better | per cell (diff / same) | s/step |",
             "|---|---|---|---|---|---|---|---|"]
    labels = [c for c in wide.columns if c not in ("score_only", "oracle_irm", "mixture")]
    for label in labels + ["score_only", "oracle_irm"]:
        col = wide[label]
        gain = (col - ref)
        cells = col.groupby(level=["scenario", "combination"]).median()
        per = ", ".join(f"{s.replace('oof_', '')} {cells[(s, 'diff')]:.1f}/{cells[(s, 'same')]:.1f}"
                        for s in sorted({k[0] for k in cells.index}))
        rec = records.get(label, {})
        v = next((x for x in VARIANTS if x.name == label), None)
        what = v.what if v else {"score_only": "no learning: the soft score mask",
                                 "oracle_irm": "oracle ratio mask (upper bound)",
                                 "shipped-si_umx_soft": "before: shipped SI-UMX soft "
                                                        "(default corpus, 3 GM soundfonts)"}.get(label, "")
        vs = rec.get("best_valid_si_sdr")
        sps = rec.get("s_per_step")
        lines.append(f"| {label} | {what} | {'' if vs is None else f'{vs:.2f}'} | "
                     f"{col.median():.2f} | {gain.median():+.2f} | {(gain > 0).mean():.0%} | "
                     f"{per} | {'' if sps is None else f'{sps:.3f}'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    ship = load_profile("ship")
    corpus = build_corpus(ship)
    oof = build_out_of_family(ship)
    out = ship.results_dir
    out.mkdir(parents=True, exist_ok=True)
    rec_path = out / "ablations_runs.json"
    records = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
    models: dict = {"shipped-si_umx_soft": load_model("si_umx_soft"),
                    "score_only": "score_only", "oracle_irm": "oracle_irm"}
    for v in VARIANTS:
        if args.only and v.name not in args.only:
            continue
        t0 = time.perf_counter()
        lm, rec = train_variant(ship, corpus, v, args.steps)
        records[v.name] = dict(steps=rec["steps"], best_valid_si_sdr=rec["best_valid_si_sdr"],
                               wall_s=rec["wall_s"],
                               s_per_step=rec["wall_s"] / max(1, rec["steps"]),
                               loss=v.loss, model=v.model, hidden=v.hidden,
                               elapsed_s=round(time.perf_counter() - t0, 1))
        rec_path.write_text(json.dumps(records, indent=1))
        models[v.name] = lm
    old = out / "ablations.csv"
    scores = score_models(oof, models, mask=ship.mask)
    if old.is_file():   # keep variants scored before and not rerun now
        prev = pd.read_csv(old, dtype={"clip_id": str})
        scores = pd.concat([prev[~prev.model.isin(scores.model.unique())], scores])
    scores.to_csv(old, index=False, float_format="%.4f")
    md = table(scores, records)
    print(md)
    write_between_markers(ship.root / "docs" / "ablations.md", MARK, md)


if __name__ == "__main__":
    main()
