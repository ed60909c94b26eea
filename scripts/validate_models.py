"""Acceptance check of the models issue, on the validation clips of a trained profile.

Runs SI-UMX soft, blind UMX and the no-learning reference ``score_only`` (soft score mask x
mixture magnitude, through the same Wiener/iSTFT path as every model) on the profile's
validation clips and prints their median SI-SDR; writes data/results/<profile>/valid_scores.csv.

    python scripts/validate_models.py --profile default
"""
import argparse

from guitarsep.config import ModelSpec, load_profile
from guitarsep.corpus import load_corpus
from guitarsep.evaluation.evaluate import EvalJob, run_evaluation


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--root", default=None)
    args = ap.parse_args(argv)
    profile = load_profile(args.profile, root=args.root)
    jobs = [EvalJob("si_umx_soft", "modern", (), ModelSpec("si_umx_soft", "modern")),
            EvalJob("si_umx_binary", "modern", (), ModelSpec("si_umx_binary", "modern")),
            EvalJob("umx_blind", "modern", (), ModelSpec("umx_blind", "modern")),
            EvalJob("score_only", "modern", (), None)]
    scores, timing = run_evaluation(profile, load_corpus(profile), jobs=jobs, split="valid")
    med = scores.groupby("model").si_sdr.median().sort_values(ascending=False)
    print(f"median SI-SDR on {scores.clip_id.nunique()} validation clips (dB):")
    print(med.round(2).to_string())
    same = scores[scores.target_timbre == scores.other_timbre]
    if len(same):
        print(f"same-timbre validation clips ({same.clip_id.nunique()}):")
        print(same.groupby("model").si_sdr.median().round(2).to_string())
    print(f"si_umx_soft - score_only: {med['si_umx_soft'] - med['score_only']:+.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
