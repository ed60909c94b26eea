"""Ship the ``ship`` profile's model: export it, score it on every test cell, write its card.

1. ``best.pt`` of the ship run -> ``lib/guitarsep/resources/si_umx_prior.pt`` (float16
   weights, provenance sidecar), the model ``guitarsep separate`` uses by default;
2. ``--skip-export``: the shipped file, the model it replaces, the score-only mask and the
   oracle are scored on the default corpus's test clips and the out-of-family clips
   (``data/results/ship/card_scores.csv``);
3. the model card ``lib/guitarsep/resources/si_umx_prior.md`` from that table: data,
   training, medians per cell beside the model it replaced, the score-only mask and the
   oracle, and the issue's verdict per out-of-family cell.

    guitarsep train --profile ship && python scripts/ship_model.py     # 1
    python scripts/ship_model.py --skip-export --bench bench.json      # 2, 3
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pandas as pd

from guitarsep import RESOURCES
from guitarsep.config import load_profile
from guitarsep.corpus import build_corpus, load_corpus
from guitarsep.corpus.out_of_family import build_out_of_family
from guitarsep.corpus.variety import HELD_OUT, timbre_family
from guitarsep.evaluation.model_card import cell_table, verdict_table
from guitarsep.evaluation.out_of_family import score_models
from guitarsep.models.checkpoint import export_model, load_model
from guitarsep.training.loop import run_dir

NAME = "si_umx_prior"
BEFORE = "si_umx_soft"
CARD_COLUMNS = [f"shipped-{NAME}", f"before-{BEFORE}", "score_only", "oracle_irm"]
RUN_KEYS = ("best_epoch", "best_valid_loss", "best_valid_si_sdr", "config_hash", "device",
            "epochs", "key", "steps", "wall_s", "git_commit", "params")


def export(profile, out_dir: Path) -> dict:
    spec = profile.models[0]
    rd = run_dir(profile, spec)
    run = json.loads((rd / "run.json").read_text())
    prov = {"profile": profile.name, "commit": run.get("git_commit"),
            "source": f"data/{profile.name}/models/{spec.key}/best.pt (guitarsep train "
                      f"--profile {profile.name})",
            "stored_as": "float16 weights (loaded back as float32)",
            "training_run": {k: run.get(k) for k in RUN_KEYS}}
    return export_model(rd / "best.pt", out_dir / f"{NAME}.pt", prov, dtype="float16")


def card_scores(profile) -> pd.DataFrame:
    """The card's per-clip SI-SDR: the shipped file, the model it replaces (``si_umx_soft.pt``),
    the score-only mask and the oracle on the default corpus's test clips (seen, a-d) and on
    the out-of-family clips; written to ``data/results/ship/card_scores.csv``."""
    default = load_profile("default")
    models = {f"shipped-{NAME}": load_model(NAME), f"before-{BEFORE}": load_model(BEFORE),
              "score_only": "score_only", "oracle_irm": "oracle_irm"}
    scores = pd.concat([score_models(c, models, mask=default.mask)
                        for c in (build_corpus(default), build_out_of_family(default))],
                       ignore_index=True)
    profile.results_dir.mkdir(parents=True, exist_ok=True)
    scores.to_csv(profile.results_dir / "card_scores.csv", index=False, float_format="%.4f")
    return scores


def data_summary(profile) -> list[str]:
    corpus = load_corpus(profile)
    pieces = pd.read_csv(corpus.root / "pieces.csv").set_index("piece_id")
    renders = pd.read_csv(corpus.root / "renders.csv")
    drawn = json.loads((corpus.root / "drawn_timbres.json").read_text())
    lines = []
    for split in ("train", "valid"):
        r = renders[renders.split == split]
        hours = float(pieces.loc[r.piece_id, "duration"].sum()) / 3600
        used = [drawn[t] for t in r.timbre_id.unique() if t in drawn]
        fam = Counter(timbre_family(s) if s["source"] == "soundfont" else s["source"]
                      for s in used)
        fonts = sorted({s["soundfont"] for s in used if s["source"] == "soundfont"})
        head = (f"- **{split}**: {r.piece_id.nunique()} pieces, {len(r)} part renderings, "
                f"{hours:.1f} h of rendered parts; ")
        if not used:
            lines.append(head + f"the seen timbres of `resources/timbres.csv` "
                         f"({r.timbre_id.nunique()} of them: TimGM6mb, FluidR3_GM).")
            continue
        lines.append(head + f"{len(used)} drawn timbres (soundfont ag {fam.get('ag', 0)}, "
                     f"soundfont eg {fam.get('eg', 0)}, our additive/FM synthesis "
                     f"{fam.get('additive', 0)}); soundfonts {', '.join(fonts)} (all guitar "
                     "programs 24-31); effects drawn per rendering; playing departs from the "
                     "score (`corpus.variety.perform`).")
    held = ", ".join(f"`{k}` ({src}{', ' + sf if sf else ''})" for k, (src, sf) in HELD_OUT.items())
    lines.append(f"- **held out of training** (out-of-family test): {held}; MuseScore General "
                 "(the corpus's unseen pool, scenarios c/d) is not trained on either.")
    return lines


def write_card(profile, side: dict, scores: pd.DataFrame, out: Path, bench: dict | None
               ) -> None:
    run = side.get("training_run", {})
    text = [f"# Model card: `{NAME}` (shipped; `guitarsep separate --model {NAME}`)", "",
            "The score-prior SI-Open-Unmix (`guitarsep.models.prior_umx`): log-compressed, "
            "per-frame-normalised mixture features and both parts' soft score masks in, a "
            "correction of the soft score mask out. Trained by `guitarsep train --profile ship`, "
            "exported and scored by `scripts/ship_model.py` (this file is its output).", "",
            "## Data", *data_summary(profile), "",
            "## Training",
            f"- {run.get('steps')} steps ({run.get('epochs')} epochs), best epoch "
            f"{run.get('best_epoch')}, validation SI-SDR {run.get('best_valid_si_sdr', 0):.2f} dB;"
            f" loss: SI-SDR of the waveform (inverse STFT of the masked mixture); absolute level "
            f"+-{profile.train.level_db:g} dB, relative +-{profile.train.gain_db:g} dB, "
            f"same-timbre pairs {profile.train.p_same_timbre:.0%}.",
            f"- wall time {run.get('wall_s', 0) / 60:.0f} min on {run.get('device')} "
            f"({run.get('wall_s', 0) / max(1, run.get('steps') or 1):.3f} s per step of batch "
            f"{profile.train.batch_size} x {profile.train.seq_frames} frames, mean over the "
            "run, validation included); "
            f"{run.get('params')} parameters; file {side['size_bytes'] / 1e6:.1f} MB "
            f"({side['dtype']}), sha256 {side['sha256'][:12]}; commit {side.get('commit')}.",
            "", "## Test medians (SI-SDR, dB)", "",
            "The default corpus's test clips (scenarios seen, a-d) and the out-of-family "
            "families (sound sources no training clip uses), from "
            "`data/results/ship/card_scores.csv`. `before` is "
            "the default model of `guitarsep separate` (`si_umx_soft.pt`: the default "
            "profile's SI-Open-Unmix soft, trained on the seen pool's two GM soundfonts).", "",
            *cell_table(scores, CARD_COLUMNS), "",
            "## Against the score-only mask, out of family", "",
            *verdict_table(scores, f"shipped-{NAME}"), ""]
    if bench:
        text += ["## Speed (`scripts/bench_separate.py`)", "",
                 f"{bench['audio_s'] / 60:.0f} min stereo {bench['sr']} Hz: "
                 f"{bench['wall_s']:.0f} s wall ({bench['audio_s'] / bench['wall_s']:.0f}x real "
                 f"time), peak memory {bench['peak_rss_bytes'] / 2**30:.2f} GiB.", ""]
    out.write_text("\n".join(text))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-export", action="store_true",
                    help="keep the file already shipped and write its card from the results")
    ap.add_argument("--bench", default=None, help="JSON printed by scripts/bench_separate.py")
    args = ap.parse_args(argv)
    profile = load_profile("ship")
    path = RESOURCES / f"{NAME}.pt"
    if not args.skip_export:
        # the results tables scored the previous file: score this one before writing a card
        export(profile, RESOURCES)
        print(f"exported {path}; `python scripts/ship_model.py --skip-export "
              "[--bench bench.json]` scores it and writes its card")
        return 0
    side = json.loads(path.with_suffix(".json").read_text())
    table = profile.results_dir / "card_scores.csv"
    fresh = table.is_file() and table.stat().st_mtime > path.stat().st_mtime
    scores = (pd.read_csv(table, dtype={"clip_id": str}) if fresh    # this file, scored
              else card_scores(profile))
    bench = json.loads(Path(args.bench).read_text()) if args.bench else None
    write_card(profile, side, scores, RESOURCES / f"{NAME}.md", bench)
    print((RESOURCES / f"{NAME}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
