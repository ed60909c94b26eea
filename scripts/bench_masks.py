"""Time guitarsep.score.score_masks on a 3-minute two-part piece (~2,000 notes).

Usage: python scripts/bench_masks.py [--setting modern|low_res] [--runs 5]

Prints the median wall time of ``score_masks`` over ``--runs`` runs (target: < 0.5 s for the
modern setting, 4096/1024 at 44.1 kHz, on 2 cores). The piece is random but seeded, so the
figure is comparable between runs.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from guitarsep.config import SETTINGS, MaskParams
from guitarsep.score import Notes, score_masks

PIECE_SECONDS = 180.0
NOTES_PER_PART = 1000


def random_part(rng: np.random.Generator, n: int, seconds: float, low: int, high: int) -> Notes:
    """``n`` notes with uniform onsets in ``[0, seconds)``, 0.05-1.5 s long, pitches low..high."""
    onset = rng.uniform(0.0, seconds, n)
    offset = np.minimum(onset + rng.uniform(0.05, 1.5, n), seconds)
    return Notes.from_arrays(onset, offset, rng.integers(low, high + 1, n),
                             rng.integers(40, 120, n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", default="modern", choices=sorted(SETTINGS))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    s = SETTINGS[args.setting]
    rng = np.random.default_rng(0)
    target = random_part(rng, NOTES_PER_PART, PIECE_SECONDS, 52, 88)   # lead guitar range
    accomp = random_part(rng, NOTES_PER_PART, PIECE_SECONDS, 40, 76)   # rhythm guitar range
    n_frames = s.frames_for(PIECE_SECONDS)
    kw = dict(sr=s.sr, n_fft=s.n_fft, hop=s.hop, params=MaskParams())

    score_masks(target, accomp, n_frames, **kw)   # warm-up: fills the harmonic-comb cache
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        soft, binary = score_masks(target, accomp, n_frames, **kw)
        times.append(time.perf_counter() - t0)
    print(f"score_masks, {args.setting} ({s.n_fft}/{s.hop} at {s.sr} Hz): "
          f"{len(target) + len(accomp)} notes, {PIECE_SECONDS:.0f} s, "
          f"masks {soft.shape[0]} x {soft.shape[1]}")
    print(f"median of {args.runs} runs: {statistics.median(times):.3f} s "
          f"(min {min(times):.3f} s, max {max(times):.3f} s)")


if __name__ == "__main__":
    main()
