"""Command line: ``guitarsep build-corpus | train | evaluate | figures | demo-page | separate``.

``separate`` (``guitarsep separate MIX --score FILE [--part P] [--accomp FILE] [--model M]
[--align] -o OUT.wav``) takes its own arguments (no profile): see
:mod:`guitarsep.user_separate`.

Each sub-command is a thin caller of the same functions the notebooks use, so the notebook
path and the command-line path cannot disagree.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from .config import PROFILE_NAMES, load_profile


def _cmd_build_corpus(profile, args) -> int:
    from .corpus import build_corpus
    from .provenance import stage_timer

    with stage_timer(profile, "data"):
        corpus = build_corpus(profile, progress=not args.quiet)
    print(corpus)
    return 0


def _cmd_train(profile, args) -> int:
    from .corpus import load_corpus
    from .provenance import stage_timer
    from .train import train_all

    with stage_timer(profile, "train"):
        runs = train_all(profile, load_corpus(profile), progress=not args.quiet)
    print(runs.to_string(index=False))
    return 0


def _cmd_evaluate(profile, args) -> int:
    from .corpus import load_corpus
    from .evaluate import run_evaluation
    from .provenance import record_stage

    t0 = time.perf_counter()
    scores, timing = run_evaluation(profile, load_corpus(profile), progress=not args.quiet)
    record_stage(profile, "evaluate", time.perf_counter() - t0, **timing)
    print(json.dumps(timing))
    return 0


def _read_scores(profile):
    """The profile's committed results table, or None (with a one-line hint) when missing."""
    import pandas as pd

    scores_path = profile.results_dir / "scores.csv"
    if not scores_path.is_file():
        print(f"guitarsep: {scores_path} not found; run `make reproduce PROFILE={profile.name}`",
              file=sys.stderr)
        return None
    return pd.read_csv(scores_path, dtype={"clip_id": str})


def _cmd_figures(profile, args) -> int:
    """Redraw the figures from the committed ``data/results/<profile>/scores.csv`` (and
    ``robustness.png`` from ``robustness.csv`` when present)."""
    from .figures import write_figures
    from .provenance import collect

    scores = _read_scores(profile)
    if scores is None:
        return 1
    old = profile.figures_dir / "provenance.json"
    # Keep the provenance of the run that produced the scores; note the redraw.
    prov = json.loads(old.read_text()) if old.is_file() else collect(profile)
    prov["redrawn_by"] = "guitarsep figures"
    paths = write_figures(scores, profile.figures_dir, prov,
                          n_boot=profile.eval.bootstrap, seed=profile.seed)
    for p in paths.values():
        print(p)
    rob = profile.results_dir / "robustness.csv"
    if rob.is_file():        # 06_robustness's table, when that notebook has run
        import pandas as pd

        from .figures import plot_robustness, save_figure
        side = profile.figures_dir / "robustness.json"
        rprov = (json.loads(side.read_text()).get("provenance", {}) if side.is_file()
                 else collect(profile))
        rprov["redrawn_by"] = "guitarsep figures"
        fig = plot_robustness(pd.read_csv(rob, dtype={"clip_id": str}))
        print(save_figure(fig, profile.figures_dir / "robustness.png", rprov))
    return 0


def _cmd_demo_page(profile, args) -> int:
    """Write the static listening page ``<figures_dir>/demo/`` from the run's own outputs."""
    from .corpus import load_corpus
    from .demo_page import page_size, write_demo_page
    from .widgets import load_listen_models

    scores = _read_scores(profile)
    if scores is None:
        return 1
    try:
        corpus = load_corpus(profile)
        models = load_listen_models(profile)
    except FileNotFoundError as err:
        print(f"guitarsep: {err}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    index = write_demo_page(profile, corpus, scores, models=models, progress=not args.quiet)
    print(f"{index} ({page_size(index.parent) / 1e6:.1f} MB, "
          f"{time.perf_counter() - t0:.0f} s)")
    return 0


def separate_parser() -> argparse.ArgumentParser:
    """Arguments of ``guitarsep separate`` (its own parser: it takes no profile)."""
    p = argparse.ArgumentParser(
        prog="guitarsep separate",
        description="Separate one guitar part from a recording of two guitars, given its "
                    "score (MIDI, MusicXML, Guitar Pro .gp3/.gp4/.gp5, or the text format "
                    "'onset offset pitch [velocity]').")
    p.add_argument("mix", help="the recording (wav, flac, ogg, aiff, ...; any sample rate and "
                               "channel count; down-mixed to mono)")
    p.add_argument("--score", required=True, help="score file holding the part to extract")
    p.add_argument("--part", default=None,
                   help="the part to extract: index, name, or program:N (MIDI); default: "
                        "the only part")
    p.add_argument("--accomp", default=None,
                   help="score of the other guitar (default: the other parts of --score; "
                        "without any, the binary-mask model is used)")
    p.add_argument("--accomp-part", default=None, help="part of --accomp (index or name)")
    p.add_argument("--model", default=None,
                   help="model name (shipped with the package, default si_umx_soft) or path "
                        "to a model / training checkpoint (best.pt) / run folder")
    p.add_argument("--align", action="store_true",
                   help="align the score to the recording first (DTW on chroma + onsets)")
    p.add_argument("-o", "--output", required=True,
                   help="output file (.wav float32, .flac, .aiff, .ogg); mono, at the input's "
                        "sample rate")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the batch-1 LSTM gains nothing from more "
                        "and slows down badly when other programs keep the cores busy)")
    p.add_argument("--chunk-s", type=float, default=30.0,
                   help="seconds per inference chunk (memory vs. speed), default 30")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no notes")
    return p


def _cmd_separate(argv) -> int:
    """``guitarsep separate MIX --score FILE [...] -o OUT``: see :func:`separate_parser`."""
    args = separate_parser().parse_args(argv)
    from .user_separate import SeparationError, separate_file

    def log(msg: str) -> None:
        if not args.quiet or msg.startswith("warning"):
            print(msg, file=sys.stderr, flush=True)

    try:
        separate_file(args.mix, args.score, args.output, part=args.part,
                      accomp_path=args.accomp, accomp_part=args.accomp_part, model=args.model,
                      align=args.align, device=args.device, chunk_s=args.chunk_s,
                      progress=False if args.quiet else None, log=log,
                      threads=args.threads)
    except SeparationError as err:
        print(f"guitarsep separate: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("guitarsep separate: interrupted (no output written)", file=sys.stderr)
        return 130
    return 0


COMMANDS = {"build-corpus": _cmd_build_corpus, "train": _cmd_train,
            "evaluate": _cmd_evaluate, "figures": _cmd_figures, "demo-page": _cmd_demo_page}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `separate` has its own arguments (no profile): it must be the first word
    if argv and argv[0] == "separate":
        return _cmd_separate(argv[1:])
    parser = argparse.ArgumentParser(
        prog="guitarsep", description=__doc__.split("\n")[0],
        epilog="Separate your own recording: guitarsep separate MIX --score FILE -o OUT.wav "
               "(see guitarsep separate --help).")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--profile", default="default", help=f"one of {', '.join(PROFILE_NAMES)}")
    parser.add_argument("--root", default=None, help="project root (default: found from cwd)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile, root=args.root)
    except ValueError as err:
        parser.error(str(err))
    return COMMANDS[args.command](profile, args)


if __name__ == "__main__":
    sys.exit(main())
