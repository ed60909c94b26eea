"""Pair recordings with their scores and outputs: ``guitarsep separate MIX [MIX ...]``.

    guitarsep separate takes/*.wav --score-dir scores/ -o separated/
    guitarsep separate a.flac b.flac --score 'tabs/{stem}.gp5' --other 'minus/{stem}.wav' -o out/

Rules (:func:`plan_jobs`):

* **Score.** ``--score-dir DIR``: the score file in DIR with the recording's stem and a score
  extension (MIDI, MusicXML, Guitar Pro, text); none or several is that recording's error.
  ``--score`` / ``--accomp``: a file (the same for every recording: takes of one piece) or a
  pattern where ``{stem}`` stands for the recording's file name without extension.
* **Outputs.** ``-o`` / ``--other``: a pattern with ``{stem}``; or a folder (an existing one,
  a name ending in ``/``, or with several recordings any name that is not an audio file:
  it is created), giving ``DIR/<stem>.wav`` (``DIR/<stem>.other.wav`` for ``--other`` when
  that is ``-o``'s folder too); or, for one recording, the output file itself (whose folder
  must exist, as before). With several recordings, missing output folders are created.
* Two recordings that would write the same file, or a recording that another one's output
  would overwrite, are an option error (nothing runs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from guitarsep.app.options import OptionError
from guitarsep.io import OUTPUT_FORMATS

__all__ = ["Job", "plan_jobs", "find_score", "SCORE_EXTENSIONS", "STEM"]

STEM = "{stem}"


def _score_extensions() -> tuple[str, ...]:
    from guitarsep.score import (GUITARPRO_EXTENSIONS, MIDI_EXTENSIONS, MUSICXML_EXTENSIONS,
                                 TEXT_EXTENSIONS)

    return MIDI_EXTENSIONS + MUSICXML_EXTENSIONS + GUITARPRO_EXTENSIONS + TEXT_EXTENSIONS


SCORE_EXTENSIONS = _score_extensions()


@dataclass
class Job:
    """One recording to separate; ``error``: why it cannot be (its score was not found)."""

    mix: Path
    score: Path | None
    out: Path
    other: Path | None = None
    accomp: Path | None = None
    error: str | None = None


def find_score(score_dir: Path, stem: str) -> tuple[Path | None, str | None]:
    """``(score, None)``: the one score file named ``stem`` in ``score_dir``; else ``(None,
    one-line reason)``."""
    found = sorted(p for p in score_dir.iterdir()
                   if p.stem == stem and p.suffix.lower() in SCORE_EXTENSIONS and p.is_file())
    if len(found) == 1:
        return found[0], None
    if not found:
        return None, (f"{score_dir}: no score named {stem!r} (looked for {stem}"
                      f"{', '.join(SCORE_EXTENSIONS)})")
    return None, (f"{score_dir}: several scores named {stem!r} "
                  f"({', '.join(p.name for p in found)}): keep one, or name it with --score")


def _substitute(spec: str, stem: str) -> Path:
    return Path(spec.replace(STEM, stem))


def _is_folder(spec: str, n_inputs: int) -> bool:
    if STEM in spec:
        return False
    if Path(spec).is_dir() or spec.endswith(("/", os.sep)):
        return True
    return n_inputs > 1


def _output(spec: str | None, option: str, stem: str, n_inputs: int, *,
            taken: Path | None = None) -> Path | None:
    if spec is None:
        return None
    if not _is_folder(spec, n_inputs):
        return _substitute(spec, stem)
    out = Path(spec) / f"{stem}.wav"
    if taken is not None and out == taken:
        out = Path(spec) / f"{stem}.other.wav"
    return out


def _check_output_spec(spec: str | None, option: str, n_inputs: int) -> None:
    """Several recordings need a folder or a pattern: not one audio file name. A folder
    that does not exist is created."""
    if spec is None or not _is_folder(spec, n_inputs):
        return
    path = Path(spec)
    if path.suffix.lower() in OUTPUT_FORMATS and not path.is_dir():
        raise OptionError(f"{option} {spec}: {n_inputs} recordings need an output folder "
                          f"({option} DIR) or a name with {STEM}, e.g. {option} "
                          f"'{path.with_name(STEM + path.suffix)}'")
    if path.exists() and not path.is_dir():
        raise OptionError(f"{option} {spec}: not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"{option} {spec}: cannot create the output folder "
                          f"({e.strerror or e})") from None


def plan_jobs(mixes: list[str], *, output: str, score: str | None = None,
              score_dir: str | None = None, accomp: str | None = None,
              other: str | None = None) -> list[Job]:
    """One :class:`Job` per recording (see the module docstring). Raises
    :class:`~guitarsep.app.options.OptionError` for options that cannot work for any
    recording (nothing is separated then)."""
    n = len(mixes)
    if (score is None) == (score_dir is None):
        raise OptionError("give the score as --score FILE (or a pattern with {stem}) or "
                          "--score-dir DIR")
    if score_dir is not None and not Path(score_dir).is_dir():
        raise OptionError(f"--score-dir {score_dir}: no such folder")
    for option, spec in (("-o", output), ("--other", other)):
        _check_output_spec(spec, option, n)
    jobs = []
    for m in mixes:
        mix = Path(m)
        stem = mix.stem
        out = _output(output, "-o", stem, n)
        job = Job(mix, None, out, _output(other, "--other", stem, n, taken=out),
                  _substitute(accomp, stem) if accomp is not None else None)
        if score_dir is not None and mix.is_file():    # else: separate_file says so
            job.score, job.error = find_score(Path(score_dir), stem)
        elif score_dir is not None:
            job.score = Path(score_dir) / mix.name
        else:
            job.score = _substitute(score, stem)
        jobs.append(job)
    if n > 1:
        _check_collisions(jobs)
        for path in sorted({p.parent for j in jobs for p in (j.out, j.other) if p}):
            try:                                  # e.g. the folders of a {stem} pattern
                path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OptionError(f"{path}: cannot create the output folder "
                                  f"({e.strerror or e})") from None
    return jobs


def _check_collisions(jobs: list[Job]) -> None:
    def key(p: Path) -> str:
        return os.path.normcase(os.path.abspath(p))

    writers: dict[str, Job] = {}
    inputs = {key(j.mix): j for j in jobs}
    for j in jobs:
        for path in (j.out, j.other):
            if path is None:
                continue
            k = key(path)
            if k in writers and writers[k] is not j:
                raise OptionError(f"{writers[k].mix} and {j.mix} would both be written to "
                                  f"{path}: rename one, or use {STEM} in a pattern")
            if k in inputs and inputs[k] is not j:
                raise OptionError(f"{j.mix}'s output {path} would overwrite the recording "
                                  f"{inputs[k].mix}")
            writers[k] = j
