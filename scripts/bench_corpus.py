#!/usr/bin/env python
"""Build the ``default`` corpus into ROOT and report its budget figures.

    python scripts/bench_corpus.py /tmp/bench_root [--profile default] [--n-jobs 2]

Prints: build wall time, hours per split (stems / clips), disk size, single-process render
speed (x real time, per soundfont), score/audio onset agreement on 20 test clips, and the
timbre-distance summary (seen-vs-seen vs unseen-vs-seen). A build that already exists under
ROOT with the same config is reused (the wall time then says so): pass a fresh ROOT to time
a full build. Budgets (issue): default >= 2 h of training stems and <= 8 min on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

import guitarsep.corpus as K  # noqa: E402
from guitarsep.corpus import generate_idiom_piece  # noqa: E402
from guitarsep.config import load_profile  # noqa: E402
from guitarsep.corpus import render_part  # noqa: E402
from guitarsep.corpus import load_timbres  # noqa: E402


def render_speed(seconds: float = 45.0) -> dict:
    """Seconds of audio rendered per second of CPU, per soundfont (one process, warm synth)."""
    p0, _, _ = generate_idiom_piece(0, seconds, roles=("strum", "melody"))
    out = {}
    for sf, grp in load_timbres().groupby("soundfont"):
        rows = [r._asdict() for r in grp.itertuples(index=False)]
        render_part(p0, rows[0], duration=2.0)             # load the soundfont first
        t = time.perf_counter()
        for r in rows:
            render_part(p0, r, duration=seconds)
        out[sf] = round(seconds * len(rows) / (time.perf_counter() - t), 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--fresh", action="store_true", help="delete ROOT's corpus first")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    prof = load_profile(args.profile, root=args.root)
    if args.fresh and prof.corpus_dir.exists():
        shutil.rmtree(prof.corpus_dir)
    t = time.time()
    c = K.build_corpus(prof, progress=True, n_jobs=args.n_jobs)
    wall = time.time() - t
    info = c.info
    print(f"\nprofile {prof.name}: corpus at {c.root}")
    print(f"build wall time: {wall:.1f} s (build itself: {info['build_seconds']} s, "
          f"{info['rendered']} files rendered, n_jobs={args.n_jobs or prof.corpus.n_jobs})")
    hours = K.corpus_stats(c)["hours"]
    print("hours per split:\n" + hours.to_string())
    print(f"disk: {info['disk_bytes'] / 1e6:.0f} MB; pieces {info['n_pieces']}, "
          f"renders {info['n_renders']}, clips {info['n_clips']}")
    speed = render_speed()
    print("render speed (x real time, one process, incl. effects):", speed)
    oa = K.onset_agreement(c, n_clips=20, seed=0)
    print(f"onset agreement (20 test clips): median {oa['median_ms']:.1f} ms, "
          f"mean {oa['mean_ms']:.1f} ms, p90 {oa['p90_ms']:.1f} ms over {oa['n_onsets']} onsets")
    d = K.distance_summary(K.timbre_distances())
    print(f"timbre distance (mean |log-mel| dB): seen-vs-seen median {d['seen_vs_seen']:.1f}, "
          f"unseen-vs-seen median {d['unseen_vs_seen']:.1f}, unseen-vs-unseen "
          f"{d['unseen_vs_unseen']:.1f}; nearest seen: unseen {d['unseen_nearest_seen_median']:.1f}"
          f" vs seen {d['seen_nearest_seen_median']:.1f} (medians)")
    print("  each unseen timbre's nearest seen:",
          {u: (s, round(v, 1)) for u, (s, v) in d["nearest_seen"].items()})
    if args.json:
        args.json.write_text(json.dumps(dict(
            wall_s=wall, hours=info["hours"], disk_bytes=info["disk_bytes"],
            render_speed=speed, onset_median_ms=oa["median_ms"],
            distances={k: v for k, v in d.items() if k != "nearest_seen"}), indent=1))
    ok = info["hours"]["train"]["stems_h"] >= 2.0 if prof.name == "default" else True
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
