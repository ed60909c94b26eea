"""The ``guitarsep`` command: one parser, one subcommand per pipeline step and app feature.

    guitarsep build-corpus | train | evaluate | figures | demo-page  [--profile P] [--root R]
    guitarsep train --model NAME --setting S [--steps-scale X] ...   (one model; torchrun: DDP)
    guitarsep separate MIX [MIX ...] --score FILE|--score-dir DIR [--part P] [--accomp FILE]
                       [--model M] [--align [--strict]] [--refine-onsets] [--other FILE]
                       [--mono] -o OUT
    guitarsep export CHECKPOINT OUT.pt [--float16] [--provenance JSON]

Each subcommand is a thin caller of the functions the notebooks use, so the notebook path and
the command-line path cannot disagree. ``python -m guitarsep`` is the same command.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time

from guitarsep.config import PROFILE_NAMES, SETTINGS, ModelSpec, load_profile


def _cmd_build_corpus(profile, args) -> int:
    from guitarsep.corpus import build_corpus
    from guitarsep.provenance import stage_timer

    with stage_timer(profile, "data"):
        corpus = build_corpus(profile, progress=not args.quiet)
    print(corpus)
    return 0


def _cmd_train(profile, args) -> int:
    """Every model of the profile, or the one named by ``--model``/``--setting``."""
    from guitarsep.corpus import load_corpus
    from guitarsep.provenance import stage_timer
    from guitarsep.training.loop import train_all, train_model

    if args.model is None:
        with stage_timer(profile, "train"):
            runs = train_all(profile, load_corpus(profile), progress=not args.quiet,
                             device=args.device, jobs=args.jobs)
        print(runs.to_string(index=False))
        return 0
    spec = next((m for m in profile.models
                 if m.name == args.model and m.setting == args.setting),
                ModelSpec(args.model, args.setting))
    if args.steps_scale is not None:
        spec = dataclasses.replace(spec, steps_scale=args.steps_scale)
    rec = train_model(profile, spec, device=args.device, progress=not args.quiet,
                      ckpt_every=args.ckpt_every, max_steps=args.max_steps,
                      step_sleep=args.step_sleep)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: rec[k] for k in ("key", "steps", "epochs", "best_epoch",
                                              "best_valid_si_sdr", "wall_s", "complete")}))
    return 0


def _cmd_evaluate(profile, args) -> int:
    from guitarsep.corpus import load_corpus
    from guitarsep.evaluation.evaluate import run_evaluation
    from guitarsep.provenance import record_stage

    t0 = time.perf_counter()
    scores, timing = run_evaluation(profile, load_corpus(profile), progress=not args.quiet,
                                    workers=args.jobs)
    record_stage(profile, "evaluate", time.perf_counter() - t0, **timing)
    print(json.dumps(timing))
    return 0


def _cmd_out_of_family(profile, args) -> int:
    """The out-of-family clips: build them, score the profile's trained models of every
    scenario, the shipped models and the references -> ``generalization_scores.csv``."""
    from guitarsep.evaluation.out_of_family import (GENERALIZATION_CSV, cell_medians,
                                                    run_generalization)

    t0 = time.perf_counter()
    scores = run_generalization(profile, shipped=tuple(args.shipped) or None,
                                progress=not args.quiet, workers=args.jobs)
    print(cell_medians(scores).round(2).to_string(index=False))
    print(f"{len(scores)} rows in {time.perf_counter() - t0:.0f} s -> "
          f"{profile.results_dir / GENERALIZATION_CSV}")
    return 0


def _add_jobs_argument(p: argparse.ArgumentParser, what: str,
                       default: str = "one per core") -> None:
    p.add_argument("--jobs", type=int, default=None,
                   help=f"worker processes for {what} on the CPU (default: {default}); the "
                        "results do not depend on it")


def _add_oof_arguments(p: argparse.ArgumentParser) -> None:
    _add_jobs_argument(p, "the models")
    p.add_argument("--shipped", nargs="*", default=[],
                   help="shipped model names to score besides the profile's (default: "
                        "score_nmf, the default of `guitarsep separate`)")


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
    """Redraw the figures from the committed ``data/results/<profile>/scores.csv`` (with
    ``generalization.png`` from ``generalization_scores.csv`` and ``robustness.png`` from
    ``robustness.csv`` when present)."""
    from guitarsep.evaluation.figures import write_figures
    from guitarsep.evaluation.out_of_family import read_generalization
    from guitarsep.provenance import collect

    scores = _read_scores(profile)
    if scores is None:
        return 1
    old = profile.figures_dir / "provenance.json"
    # Keep the provenance of the run that produced the scores; note the redraw.
    prov = json.loads(old.read_text()) if old.is_file() else collect(profile)
    prov["redrawn_by"] = "guitarsep figures"
    paths = write_figures(scores, profile.figures_dir, prov, n_boot=profile.eval.bootstrap,
                          seed=profile.seed, general=read_generalization(profile))
    for p in paths.values():
        print(p)
    rob = profile.results_dir / "robustness.csv"
    if rob.is_file():        # 06_robustness's table, when that notebook has run
        import pandas as pd

        from guitarsep.evaluation.figures import plot_robustness, save_figure
        side = profile.figures_dir / "robustness.json"
        rprov = (json.loads(side.read_text()).get("provenance", {}) if side.is_file()
                 else collect(profile))
        rprov["redrawn_by"] = "guitarsep figures"
        fig = plot_robustness(pd.read_csv(rob, dtype={"clip_id": str}))
        print(save_figure(fig, profile.figures_dir / "robustness.png", rprov))
    return 0


def _cmd_demo_page(profile, args) -> int:
    """Write the static listening page ``<figures_dir>/demo/`` from the run's own outputs."""
    from guitarsep.app.demo_page import page_size, write_demo_page
    from guitarsep.app.listening import load_listen_models
    from guitarsep.corpus import load_corpus
    from guitarsep.corpus.out_of_family import build_out_of_family
    from guitarsep.evaluation.out_of_family import SHIPPED_MODEL, read_generalization
    from guitarsep.models.checkpoint import load_model

    scores = _read_scores(profile)
    if scores is None:
        return 1
    try:
        corpus = load_corpus(profile)
        models = {**load_listen_models(profile), "shipped": load_model(SHIPPED_MODEL)}
    except FileNotFoundError as err:
        print(f"guitarsep: {err}", file=sys.stderr)
        return 1
    general = read_generalization(profile)    # the out-of-family clips, once 03 scored them
    oof = None if general is None else (build_out_of_family(profile, progress=False), general)
    t0 = time.perf_counter()
    index = write_demo_page(profile, corpus, scores, models=models, out_of_family=oof,
                            progress=not args.quiet)
    print(f"{index} ({page_size(index.parent) / 1e6:.1f} MB, "
          f"{time.perf_counter() - t0:.0f} s)")
    return 0


def _add_separate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("mix", nargs="+",
                   help="the recording(s) (wav, flac, ogg, aiff, ...; any sample rate; stereo "
                        "stays stereo, more channels are down-mixed to mono)")
    scores = p.add_mutually_exclusive_group(required=True)
    scores.add_argument("--score", default=None,
                        help="score file holding the part to extract; with several "
                             "recordings, a pattern where {stem} is the recording's name "
                             "without extension (e.g. 'tabs/{stem}.gp5'), or one score for "
                             "all (takes of one piece)")
    scores.add_argument("--score-dir", default=None, metavar="DIR",
                        help="pair each recording with the score of the same name in DIR "
                             "(MIDI, MusicXML, Guitar Pro or text)")
    p.add_argument("--part", default=None,
                   help="the part to extract: index, name, or program:N (MIDI); default: "
                        "the only part")
    p.add_argument("--accomp", default=None,
                   help="score of the other guitar (a file, or a pattern with {stem}; "
                        "default: the other parts of the score; without any, the other "
                        "guitar is modelled without notes)")
    p.add_argument("--accomp-part", default=None, help="part of --accomp (index or name)")
    p.add_argument("--model", default=None,
                   help="model name (default score_nmf, the score-informed NMF; or a network "
                        "shipped with the package: si_umx_soft, si_umx_binary, si_umx_prior) or "
                        "path to a model / training checkpoint (best.pt) / run folder")
    p.add_argument("--align", action="store_true",
                   help="align the score to the recording first (DTW on chroma + onsets)")
    p.add_argument("--refine-onsets", action="store_true",
                   help="move each note to its pitch's nearest onset in the recording (within "
                        "0.25 s; after --align): for a hand-made score whose timing is loose")
    p.add_argument("--strict", action="store_true",
                   help="with --align: a doubtful alignment is an error (no output), not a "
                        "warning")
    p.add_argument("-o", "--output", required=True,
                   help="output file (.wav float32, .flac, .aiff, .ogg) at the input's sample "
                        "rate; with several recordings a folder (DIR/<stem>.wav) or a "
                        "pattern with {stem}")
    p.add_argument("--other", default=None, metavar="FILE",
                   help="also write the other guitar (the recording minus the target) there "
                        "(a file, a folder or a pattern with {stem}, as -o)")
    p.add_argument("--mono", action="store_true",
                   help="down-mix the recording to mono first (mono output)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:N, mps)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the batch-1 LSTM gains nothing from more "
                        "and slows down badly when other programs keep the cores busy)")
    p.add_argument("--chunk-s", type=float, default=30.0,
                   help="seconds per inference chunk, 2 to 600 (memory vs. speed), default 30")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no notes")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the atomic writers remove their temporary files."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`_Terminated` (the previous handler is
    restored afterwards). Outside the main thread signals cannot be handled: unchanged."""
    import signal

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)      # a second SIGTERM kills at once
        raise _Terminated()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:                       # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _import_extensions(align: bool) -> None:
    """Import the compiled libraries a separation uses before SIGTERM becomes an exception:
    an exception raised while a C extension module initialises crashes the interpreter
    (seen: SIGTERM during soxr's first import, exit -11), while before the handler SIGTERM
    simply ends the process, which has not written anything yet."""
    import warnings

    import soundfile  # noqa: F401
    import soxr  # noqa: F401
    import torch  # noqa: F401
    with warnings.catch_warnings():          # norbert.contrib imports a deprecated scipy path
        warnings.simplefilter("ignore", DeprecationWarning)
        import norbert  # noqa: F401

    import guitarsep.app.separator  # noqa: F401
    import guitarsep.separation.stream  # noqa: F401
    if align:                                # the alignment's features
        import librosa  # noqa: F401
        import scipy.ndimage  # noqa: F401


def _cmd_separate(args) -> int:
    """``guitarsep separate MIX [MIX ...] --score FILE|--score-dir DIR [...] -o OUT``.

    Exit status: 0; 1 when a recording failed (bad input: one line each); 2 for a bad option
    (one line, nothing runs); 130 / 143 when interrupted by SIGINT / SIGTERM (no partial
    output is left)."""
    done: list = []
    _import_extensions(args.align)
    try:
        with _sigterm_as_interrupt():
            return _separate_all(args, done)
    except KeyboardInterrupt as e:
        what = ("no output written" if not done else
                f"{len(done)} recording{'s' if len(done) > 1 else ''} written before")
        kind = "terminated" if isinstance(e, _Terminated) else "interrupted"
        print(f"guitarsep separate: {kind} ({what})", file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130


def _error(msg, status: int) -> int:
    print(f"guitarsep separate: error: {msg}", file=sys.stderr)
    return status


def _checked_options(args):
    """``(device, threads, chunk_s, jobs, warnings)``; raises ``OptionError`` (exit 2)."""
    from guitarsep.app.batch import plan_jobs
    from guitarsep.app.options import check_chunk_s, check_device, check_threads

    warnings: list[str] = []
    device = check_device(args.device)
    threads = check_threads(args.threads, warnings.append)
    chunk_s = check_chunk_s(args.chunk_s)
    jobs = plan_jobs(args.mix, output=args.output, score=args.score, score_dir=args.score_dir,
                     accomp=args.accomp, other=args.other)
    if args.strict and not args.align:
        warnings.append("--strict only matters with --align")
    return device, threads, chunk_s, jobs, warnings


class _Console:
    """Notes and warnings on stderr, through the progress bar over files when there are
    several recordings."""

    def __init__(self, n_jobs: int, quiet: bool):
        self.quiet, self.bar = quiet, None
        if n_jobs > 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_jobs, desc="recordings", unit="file", file=sys.stderr,
                            disable=quiet)

    def log(self, msg: str) -> None:
        if not self.quiet or msg.startswith("warning"):
            if self.bar is not None:
                self.bar.write(msg, file=sys.stderr)
            else:
                print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_jobs(args, jobs, model, options: dict, console: _Console, done: list) -> list:
    """Separate every job; returns the failures ``(job, message)`` of a batch (a single
    recording's error propagates as ``SeparationError``)."""
    from guitarsep.app.separate_file import SeparationError, separate_file
    from guitarsep.io import one_line

    batch, failures = len(jobs) > 1, []
    for job in jobs:
        try:
            if job.error:
                raise SeparationError(job.error)
            separate_file(job.mix, job.score, job.out, part=args.part, accomp_path=job.accomp,
                          accomp_part=args.accomp_part, model=model, align=args.align,
                          refine_onsets=args.refine_onsets,
                          progress=False if args.quiet else None, log=console.log,
                          other_path=job.other, mono=args.mono, strict=args.strict, **options)
            done.append(job)
        except Exception as err:             # one bad file must not stop the rest
            if not batch:
                raise
            msg = (str(err) if isinstance(err, SeparationError)
                   else f"unexpected {type(err).__name__}: {one_line(err)}")
            failures.append((job, msg))
            console.log(f"guitarsep separate: error: {msg}")
        if console.bar is not None:
            console.bar.update(1)
    return failures


def _separate_all(args, done: list) -> int:
    from guitarsep.app.options import OptionError
    from guitarsep.app.separate_file import ModelCache, SeparationError

    try:
        device, threads, chunk_s, jobs, warnings = _checked_options(args)
    except OptionError as err:
        return _error(err, 2)
    console = _Console(len(jobs), args.quiet)
    try:
        for w in warnings:
            console.log(f"warning: {w}")
        models = ModelCache()                          # one load per model for all files
        model = args.model
        if len(jobs) > 1 and model is not None:        # and fail fast on a bad --model
            model = models.load(model, device)
        failures = _run_jobs(args, jobs, model, dict(device=device, chunk_s=chunk_s,
                                                     threads=threads, models=models),
                             console, done)
    except SeparationError as err:
        return _error(err, 1)
    finally:
        console.close()
    if failures:
        print(f"guitarsep separate: {len(failures)} of {len(jobs)} recordings failed:",
              file=sys.stderr)
        for job, msg in failures:
            print(f"  {job.mix}: {msg}" if not msg.startswith(str(job.mix)) else f"  {msg}",
                  file=sys.stderr)
        return 1
    return 0


def _add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training checkpoint (best.pt / last.pt), run folder, "
                                      "or another exported model")
    p.add_argument("out", help="the model file to write (.pt); a .json sidecar goes beside it")
    p.add_argument("--float16", action="store_true", help="store weights as float16")
    p.add_argument("--provenance", default=None,
                   help="JSON file (or inline JSON object) recorded in the sidecar")


def _cmd_export(args) -> int:
    """``guitarsep export CHECKPOINT OUT.pt``: a slim, shippable model file + sidecar."""
    from pathlib import Path

    from guitarsep.models.checkpoint import ModelFileError, export_model

    prov = {}
    if args.provenance:
        src = Path(args.provenance)
        prov = json.loads(src.read_text() if src.is_file() else args.provenance)
    try:
        side = export_model(args.checkpoint, args.out, prov,
                            dtype="float16" if args.float16 else "float32")
    except ModelFileError as err:
        print(f"guitarsep export: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(side, indent=2, default=str))
    return 0


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    from guitarsep.models import MODEL_NAMES

    p.add_argument("--model", default=None, choices=MODEL_NAMES,
                   help="train only this network (with --setting); default: every model of "
                        "the profile")
    p.add_argument("--setting", default="modern", choices=sorted(SETTINGS),
                   help="STFT setting of --model (default modern)")
    p.add_argument("--steps-scale", type=float, default=None,
                   help="with --model: override the spec's steps_scale")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    _add_jobs_argument(p, "the runs (without --model)",
                       "cores // the profile's cpu_threads")
    p.add_argument("--ckpt-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--step-sleep", type=float, default=0.0, help=argparse.SUPPRESS)


#: name -> (help, function(profile, args), extra arguments) of the profile-driven steps.
PIPELINE_COMMANDS = {
    "build-corpus": ("render the synthetic two-guitar corpus", _cmd_build_corpus, None),
    "train": ("train the profile's models (or one of them)", _cmd_train, _add_train_arguments),
    "evaluate": ("separate the test clips, write the results table", _cmd_evaluate,
                 lambda p: _add_jobs_argument(p, "the evaluation jobs")),
    "evaluate-oof": ("score models on the out-of-family test clips (sound sources no "
                     "training uses)", _cmd_out_of_family, _add_oof_arguments),
    "figures": ("redraw the figures from the committed results table", _cmd_figures, None),
    "demo-page": ("write the static listening page", _cmd_demo_page, None),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``guitarsep`` parser, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="guitarsep", description="Score-informed separation of two guitars: the "
        "pipeline steps of a profile, and separation of your own recordings.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, _, add_arguments) in PIPELINE_COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--profile", default="default",
                       help=f"one of {', '.join(PROFILE_NAMES)} (default: default)")
        p.add_argument("--root", default=None, help="project root (default: found from cwd)")
        p.add_argument("--quiet", "--no-progress", action="store_true", help="no progress bars")
        if add_arguments:
            add_arguments(p)
    sep = sub.add_parser(
        "separate", help="separate one guitar of your own recording, given its score",
        description="Separate one guitar part from a recording of two guitars, given its "
                    "score (MIDI, MusicXML, Guitar Pro .gp3/.gp4/.gp5, or the text format "
                    "'onset offset pitch [velocity]').")
    _add_separate_arguments(sep)
    exp = sub.add_parser("export", help="write a slim, shippable model file from a checkpoint")
    _add_export_arguments(exp)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.command == "separate":
        return _cmd_separate(args)
    if args.command == "export":
        return _cmd_export(args)
    try:
        profile = load_profile(args.profile, root=args.root)
    except ValueError as err:
        parser.error(str(err))
    return PIPELINE_COMMANDS[args.command][1](profile, args)


if __name__ == "__main__":
    sys.exit(main())
