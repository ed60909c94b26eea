#!/usr/bin/env python
"""Time the metrics on one 15 s clip at 44.1 kHz and size the BSS Eval (museval) budget.

    python scripts/bench_metrics.py [--seconds 15] [--reps 3] [--n-jobs 2]
        [--pipeline-min 45] [--share 0.10] [--models 8] [--cells 14] [--clips-per-cell 24]

Prints seconds per clip for ``metrics.si_sdr`` and ``metrics.bss_eval`` (museval BSS Eval v4,
1 s windows), the wall time of ``metrics.evaluate_clips`` on a small batch with ``n_jobs``
workers, and the largest ``EvalConfig.museval_clips_per_cell`` that keeps the whole metric pass
within ``share`` of a ``pipeline-min`` minute pipeline over ``models x cells x clips-per-cell``
clip evaluations. Used to set the profiles' museval budget (config.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from guitarsep.evaluation.metrics import bss_eval, evaluate_clips, si_sdr  # noqa: E402


def synth_pair(seconds: float, sr: int, seed: int = 0):
    """Two guitar-like parts (decaying harmonic notes) and an imperfect target estimate."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr

    def part(lo, hi):
        y = np.zeros(n)
        onset = 0.0
        while onset < seconds:
            dur = rng.uniform(0.2, 0.8)
            f0 = 440 * 2 ** ((rng.integers(lo, hi) - 69) / 12)
            i0, i1 = int(onset * sr), min(n, int((onset + dur + 0.3) * sr))
            tt = t[i0:i1] - onset
            env = np.exp(-tt * 4)
            y[i0:i1] += env * sum(np.sin(2 * np.pi * k * f0 * tt) / k ** 1.5 for k in range(1, 12))
            onset += dur
        return (0.1 * y / np.abs(y).max()).astype(np.float32)

    target, other = part(52, 76), part(40, 64)
    est = (target + 0.2 * other + 0.01 * rng.standard_normal(n)).astype(np.float32)
    return est, target, other


def timeit(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--pipeline-min", type=float, default=45.0)
    ap.add_argument("--share", type=float, default=0.10)
    ap.add_argument("--models", type=int, default=8, help="models + references evaluated")
    ap.add_argument("--cells", type=int, default=14, help="scenario x combination cells")
    ap.add_argument("--clips-per-cell", type=int, default=24)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)

    est, ref, other = synth_pair(args.seconds, args.sr)
    t_si = timeit(lambda: si_sdr(est, ref), max(args.reps, 20))
    t_bss = timeit(lambda: bss_eval(est, ref, other, args.sr, 1.0), args.reps)
    r = bss_eval(est, ref, other, args.sr, 1.0)

    # evaluate_clips end to end: 2 * n_jobs clips with BSS Eval + 20 without
    n_bss = 4 * args.n_jobs
    items = [({"model": "bench", "setting": "modern", "scenario": "seen",
               "combination": "ag+ag", "clip_id": f"c{i:03d}", "target_timbre": "0",
               "other_timbre": "1"}, est, ref, other) for i in range(n_bss + 20)]
    t0 = time.perf_counter()          # cold: includes starting the joblib workers
    evaluate_clips(items[:args.n_jobs], museval_clips_per_cell=args.n_jobs,
                   n_jobs=args.n_jobs, sr=args.sr, progress=False)
    t_startup = time.perf_counter() - t0
    t0 = time.perf_counter()          # warm workers (loky reuses them between calls)
    df = evaluate_clips(items, museval_clips_per_cell=n_bss, n_jobs=args.n_jobs, sr=args.sr,
                        progress=False)
    t_eval = time.perf_counter() - t0
    assert int(np.isfinite(df["sdr"]).sum()) == n_bss
    t_bss_parallel = max(t_eval - 20 * t_si, 1e-9) / n_bss       # effective s per BSS clip

    n_evals = args.models * args.cells * args.clips_per_cell
    budget = args.share * args.pipeline_min * 60.0
    left = budget - n_evals * t_si
    per_cell = int(max(0.0, left) // (args.models * args.cells * t_bss_parallel))
    per_cell = min(per_cell, args.clips_per_cell)
    out = {
        "clip_seconds": args.seconds, "sr": args.sr, "cpu_count": os.cpu_count(),
        "si_sdr_s_per_clip": t_si,
        "bss_eval_s_per_clip": t_bss,
        "bss_eval_result": r,
        "evaluate_clips_cold_start_s": t_startup, "evaluate_clips_wall_s": t_eval, "evaluate_clips_n_bss": n_bss,
        "evaluate_clips_n_jobs": args.n_jobs,
        "bss_eval_effective_s_per_clip_parallel": t_bss_parallel,
        "clip_evaluations": n_evals, "metric_budget_s": budget,
        "si_sdr_total_s": n_evals * t_si,
        "recommended_museval_clips_per_cell": per_cell,
        "museval_total_s_at_recommendation": per_cell * args.models * args.cells
        * t_bss_parallel,
    }
    print(f"clip: {args.seconds:g} s at {args.sr} Hz, {os.cpu_count()} CPUs")
    print(f"si_sdr:   {t_si * 1e3:8.2f} ms per clip")
    print(f"bss_eval: {t_bss:8.2f} s per clip (one process; SDR {r['sdr']:.1f}, "
          f"SIR {r['sir']:.1f}, SAR {r['sar']:.1f} dB)")
    print(f"evaluate_clips: {t_eval:.2f} s for {n_bss} BSS + 20 SI-SDR-only clips "
          f"with n_jobs={args.n_jobs} (warm workers; a cold start of {args.n_jobs} clips "
          f"took {t_startup:.2f} s) -> {t_bss_parallel:.2f} s per BSS clip effective")
    print(f"budget: {args.share:.0%} of {args.pipeline_min:g} min = {budget:.0f} s for "
          f"{n_evals} clip evaluations ({args.models} models x {args.cells} cells x "
          f"{args.clips_per_cell} clips); SI-SDR takes {n_evals * t_si:.1f} s")
    print(f"=> museval_clips_per_cell <= {per_cell} "
          f"({out['museval_total_s_at_recommendation']:.0f} s of BSS Eval)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
