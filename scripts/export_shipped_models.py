"""Export the shipped models (``lib/guitarsep/resources/si_umx_{soft,binary}.pt``) from a run.

Takes ``best.pt`` of the profile's modern SI-UMX soft and binary runs, stores float16 weights
with ``guitarsep.models.checkpoint.export_model`` and a provenance sidecar: profile, commit of the run, the
training record (``run.json``) and the run's per-cell test medians from ``scores.csv``.

    python scripts/export_shipped_models.py --root /path/to/the/reproduce/clone
"""
import argparse
import json
from pathlib import Path

import pandas as pd

from guitarsep.config import ModelSpec, load_profile
from guitarsep import RESOURCES
from guitarsep.models.checkpoint import export_model
from guitarsep.training.loop import run_dir

RUN_KEYS = ("best_epoch", "best_valid_loss", "best_valid_si_sdr", "config_hash", "device",
            "epochs", "key", "steps", "wall_s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--root", default=None, help="project root of the run (default: this one)")
    ap.add_argument("--out", default=str(RESOURCES))
    args = ap.parse_args(argv)
    profile = load_profile(args.profile, root=args.root)
    scores = pd.read_csv(profile.results_dir / "scores.csv", dtype={"clip_id": str})
    stages = json.loads((profile.data_dir / "stages.json").read_text())
    commit = stages.get("train", {}).get("commit", "unknown")
    for name in ("si_umx_soft", "si_umx_binary"):
        spec = ModelSpec(name, "modern")
        rd = run_dir(profile, spec)
        run = json.loads((rd / "run.json").read_text())
        sub = scores[(scores.model == name) & (scores.setting == "modern")]
        med = sub.groupby(["scenario", "combination"]).si_sdr.median().round(2)
        prov = {"profile": profile.name, "commit": commit,
                "source": f"data/{profile.name}/models/{spec.key}/best.pt of the `make "
                          f"reproduce` run whose results are in data/results/{profile.name}/",
                "stored_as": "float16 weights (loaded back as float32)",
                "training_run": {k: run.get(k) for k in RUN_KEYS},
                "test_median_si_sdr": {f"{s}/{c}": float(v) for (s, c), v in med.items()}}
        side = export_model(rd / "best.pt", Path(args.out) / f"{name}.pt", prov,
                            dtype="float16")
        print(name, side["size_bytes"], "bytes", side["sha256"][:12])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
