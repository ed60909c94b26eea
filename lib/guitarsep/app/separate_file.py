"""Separate your own recording: a mixture of two guitars + the score of one part -> that part.

The user-facing path behind ``guitarsep separate`` (:mod:`guitarsep.app.cli`)::

    guitarsep separate MIX --score FILE [--part NAME|INDEX] [--accomp FILE [--accomp-part P]]
                       [--model NAME|PATH] [--align] -o OUT.wav

and the same as a function, :func:`separate_file`. It reuses the evaluation path
(:func:`guitarsep.separation.separate.separate_clip`: STFT -> network -> Wiener -> iSTFT, in 30 s chunks
with 2 s of context and a 1 s cross-fade, so memory stays flat for any length).

Decisions:

* **Audio in/out.** Any format and sample rate libsndfile reads, any channel count. The audio is
  read in blocks as float32 and down-mixed to mono (the models are mono; a note on stderr says
  so); the model's STFT setting resamples internally (soxr) and the estimate is resampled back,
  so the output has the input's sample rate and length, one channel. The output format follows
  the extension (``.wav`` / ``.aiff``: 32-bit float, so nothing clips; ``.flac``: 24-bit;
  ``.ogg``: Vorbis) and is written atomically (temporary file + rename): an error never
  leaves a partial or stale output behind.
* **Scores.** Everything :func:`guitarsep.score.load_notes` reads: MIDI, MusicXML, the text
  format, Guitar Pro ``.gp3/.gp4/.gp5``. ``part`` is an index, a name, or (MIDI) ``program:N``.
* **Accompaniment** (the soft mask ``M_t / (M_t + M_a)`` needs the other part's notes):
  ``accomp_path`` if given; else, when the score file has other (non-drum) parts, all of them
  together; else there is no accompaniment score: we then use the **binary-mask model**
  (``si_umx_binary``, whose input does not depend on the accompaniment) when it is shipped,
  otherwise the soft model with an empty accompaniment (its soft mask then equals the binary
  mask ``M_t``: it works, but it never saw such input in training where the parts overlap).
  Which one is used is printed on stderr. An explicit ``model`` is always used as given.
* **Models.** ``model`` is a registered name (the file ``resources/<name>.pt`` shipped with the
  package, written by ``guitarsep export`` with a JSON provenance sidecar), a checkpoint
  written by training (``best.pt`` / ``last.pt``, or the run folder holding them), or a
  slim exported file anywhere (:func:`guitarsep.models.checkpoint.load_model`). Default:
  ``si_umx_soft``. The score masks use the mask parameters stored with the model.
* **Alignment** (``align=True``): :func:`guitarsep.score.align.align_notes` warps target and
  accompaniment notes together onto the recording; its report goes to stderr.
* **Errors.** Every problem with the user's input raises :class:`SeparationError` with ONE
  line naming the file and the problem: unreadable/empty audio, NaN/inf samples, a score with no
  notes or an unknown part (the parts found are listed), a score entirely after the end of the
  recording, an unreadable or missing model. Soft problems (score shorter/longer than the
  audio, a doubtful alignment) are warnings on stderr.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from guitarsep.io import AudioInfo, OUTPUT_FORMATS, one_line
from guitarsep.models.checkpoint import LoadedModel, shipped_model_path

__all__ = ["separate_file", "load_model", "read_audio", "load_score", "write_audio",
           "SeparationError", "SeparationResult", "BINARY_MODEL"]

BINARY_MODEL = "si_umx_binary"


class SeparationError(Exception):
    """A problem with the user's input (one line, naming the file and the problem)."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's one-line ``ValueError``s about files (audio, model, score) into
    :class:`SeparationError`."""
    try:
        yield
    except ValueError as e:
        raise SeparationError(one_line(e, 400)) from None


# --------------------------------------------------------------------------------------------
# models, audio in / out
# --------------------------------------------------------------------------------------------

def load_model(name_or_path: str | os.PathLike | None = None, device: str = "cpu"
               ) -> LoadedModel:
    """:func:`guitarsep.models.checkpoint.load_model`, raising :class:`SeparationError`."""
    from guitarsep.models.checkpoint import load_model as load

    with _user_errors():
        return load(name_or_path, device)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, AudioInfo]:
    """:func:`guitarsep.io.read_audio` (mono float32), raising :class:`SeparationError`."""
    from guitarsep import io

    with _user_errors():
        return io.read_audio(path)


def write_audio(path: str | os.PathLike, y: np.ndarray, sr: int, *,
                log: Callable[[str], None] | None = _stderr) -> Path:
    """Write mono ``y`` at ``sr`` atomically (:func:`guitarsep.io.write_audio`).

    Format from the extension (see module docstring). Integer formats: samples beyond
    [-1, 1] are clipped, with a warning.
    """
    from guitarsep import io

    path = Path(path)
    fmt, subtype = _out_format(path)
    if not subtype.startswith("FLOAT"):
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if peak > 1.0:
            if log:
                log(f"warning: output peak {peak:.2f} > 1: clipped in {fmt} (use .wav for "
                    f"32-bit float output)")
            y = np.clip(y, -1.0, 1.0)
    with _user_errors():
        return io.write_audio(path, y, sr)


def _out_format(path: Path) -> tuple[str, str]:
    ext = path.suffix.lower()
    if ext not in OUTPUT_FORMATS:
        raise SeparationError(f"{path}: unsupported output extension {ext or '(none)'!r}; "
                              f"use one of {', '.join(OUTPUT_FORMATS)}")
    return OUTPUT_FORMATS[ext]


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------

def _load(path: Path, part):
    """:func:`guitarsep.score.load_notes`, raising :class:`SeparationError`."""
    from guitarsep.score import load_notes

    with _user_errors():
        return load_notes(path, part)


def load_score(score_path: str | os.PathLike, part=None, accomp_path=None, accomp_part=None
               ) -> tuple[object, object | None, str]:
    """``(target Notes, accompaniment Notes or None, description of the accompaniment)``.

    ``part`` / ``accomp_part``: as :func:`guitarsep.score.resolve_part` reads them (index,
    name, ``program:N`` for MIDI, None). The accompaniment is ``accomp_path``'s part if given,
    else every other non-drum part with notes in the score file (merged), else None. Raises
    :class:`SeparationError`.
    """
    from guitarsep.score import Notes, part_names, resolve_part

    score_path = Path(score_path)
    with _user_errors():
        lp, index = resolve_part(score_path, part)
    target = _load(score_path, lp)
    if accomp_path is not None:
        accomp_path = Path(accomp_path)
        with _user_errors():
            ap, _ = resolve_part(accomp_path, accomp_part)
        accomp = _load(accomp_path, ap)
        return target, accomp, f"{accomp_path} ({len(accomp)} notes)"
    with _user_errors():
        names, drums = part_names(score_path)
    others, used = Notes.empty(), []
    for i, (ns, drum) in enumerate(zip(names, drums)):
        if i == index or drum:
            continue
        try:
            n = _load(score_path, i)
        except SeparationError:
            continue                   # empty part
        others = others.concat(n)
        used.append(f"{i}: {ns[0] or '<unnamed>'}")
    if len(others):
        return target, others, (f"the other part(s) of {score_path.name}: {', '.join(used)} "
                                f"({len(others)} notes)")
    return target, None, "none"


# --------------------------------------------------------------------------------------------
# separation
# --------------------------------------------------------------------------------------------

@dataclass
class SeparationResult:
    out_path: Path
    sr: int
    n_samples: int
    channels_in: int
    model: str
    model_path: str | None
    accompaniment: str
    alignment: dict | None
    warnings: list[str]
    timings: dict


@dataclass
class _Messages:
    """Notes and warnings for the user. They wait until every input has been checked, so
    that bad input gives exactly one line (the error) on stderr."""

    log: Callable[[str], None] | None
    warnings: list[str] = field(default_factory=list)
    pending: list[str] | None = field(default_factory=list)

    def say(self, msg: str) -> None:
        if self.log is None:
            return
        if self.pending is not None:
            self.pending.append(msg)
        else:
            self.log(msg)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        self.say(f"warning: {msg}")

    def flush(self) -> None:
        lines, self.pending = self.pending or [], None
        for line in lines:
            self.say(line)


def _check_span(target, duration: float, score_path: Path, mix_path: Path, msgs: _Messages,
                hint: str) -> None:
    """Error if the part starts after the recording ends; warnings if it ends > 0.5 s after
    or > 2 s before the end of the recording."""
    first, last = float(target.onset.min()), float(target.offset.max())
    if first >= duration:
        raise SeparationError(f"{score_path}: the part starts at {first:.2f} s, after the end "
                              f"of the recording {mix_path.name} ({duration:.2f} s){hint}")
    if last > duration + 0.5:
        msgs.warn(f"{score_path}: the part lasts until {last:.2f} s, the recording only "
                  f"{duration:.2f} s: notes after {duration:.2f} s are ignored{hint}")
    if last < duration - 2.0:
        msgs.warn(f"{score_path}: the part ends at {last:.2f} s, the recording lasts "
                  f"{duration:.2f} s: the output is near silent after the last note{hint}")


def _check_output(mix_path: Path, out_path: Path) -> None:
    _out_format(out_path)                                       # fail fast on a bad name
    if not out_path.parent.is_dir():
        raise SeparationError(f"{out_path}: output folder {out_path.parent} does not exist")
    if out_path.exists() and mix_path.exists() and out_path.resolve() == mix_path.resolve():
        raise SeparationError(f"{out_path}: output would overwrite the input recording")


def _choose_model(model, accomp, device: str, msgs: _Messages) -> LoadedModel:
    """The model asked for; without one and without an accompaniment score, the shipped
    binary-mask model (its input does not need the accompaniment)."""
    if isinstance(model, LoadedModel):
        lm = model
    elif model is None and accomp is None and shipped_model_path(BINARY_MODEL).is_file():
        lm = load_model(BINARY_MODEL, device)
        msgs.say(f"note: using the binary-mask model {BINARY_MODEL} (its score input does "
                 f"not need the accompaniment)")
    else:
        lm = load_model(model, device)
    if lm.score_kind == "soft" and accomp is None:
        msgs.warn(f"model {lm.name} uses the soft mask M_t/(M_t+M_a) but there is no "
                  f"accompaniment score: it gets the binary mask M_t instead (pass --accomp "
                  f"for better results)")
    return lm


def _describe_inputs(lm: LoadedModel, ainfo: AudioInfo, mix: np.ndarray, mix_path: Path,
                     accomp_desc: str, msgs: _Messages) -> None:
    msgs.say(f"note: model {lm.name} ({lm.setting.name}, {lm.setting.sr} Hz) from "
             f"{lm.path if lm.path else '<in memory>'}; accompaniment: {accomp_desc}")
    if ainfo.channels > 1:
        msgs.say(f"note: {mix_path.name} has {ainfo.channels} channels: down-mixed to mono "
                 f"(the output is mono)")
    if ainfo.sr != lm.setting.sr:
        msgs.say(f"note: {mix_path.name} is at {ainfo.sr} Hz, the model works at "
                 f"{lm.setting.sr} Hz: resampled for the model, output written at "
                 f"{ainfo.sr} Hz")
    if float(np.max(np.abs(mix))) == 0.0:
        msgs.warn(f"{mix_path}: the recording is silent")


def _align(target, accomp, mix: np.ndarray, sr: int, mix_path: Path, msgs: _Messages):
    """``(target, accomp, report)`` with both parts warped onto the recording."""
    from guitarsep.score.align import align_notes, format_report

    t0 = time.perf_counter()
    try:
        (target, accomp), report = align_notes([target, accomp], mix, sr)
    except ValueError as e:
        raise SeparationError(f"{mix_path}: alignment failed ({one_line(e)})") from None
    msgs.say(f"note: {format_report(report)} [{time.perf_counter() - t0:.1f} s]")
    msgs.warnings.extend(f"alignment: {w}" for w in report["warnings"])
    return target, accomp, report


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` (None: unchanged) for the block."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def _chunk_progress(desc: str, progress: bool | None) -> Iterator[Callable[[int, int], None]]:
    """An ``on_chunk`` callback driving a tqdm bar over chunks (by default only when there
    are several)."""
    from tqdm.auto import tqdm

    bars = []

    def on_chunk(done: int, total: int) -> None:
        if not bars:
            show = (total > 1) if progress is None else bool(progress)
            bars.append(tqdm(total=total, desc=desc, unit="chunk", disable=not show,
                             file=sys.stderr, leave=False))
        bars[0].update(1)

    try:
        yield on_chunk
    finally:
        for bar in bars:
            bar.close()


def _run_model(lm: LoadedModel, mix: np.ndarray, target, accomp, sr: int, *, device: str,
               chunk_s, progress, threads, mask_params, desc: str) -> np.ndarray:
    from guitarsep.score import Notes
    from guitarsep.separation import separate_clip

    with _torch_threads(threads), _chunk_progress(desc, progress) as on_chunk:
        est = separate_clip(lm.model, mix, target, accomp if accomp is not None else
                            Notes.empty(), lm.setting, sr=sr,
                            mask_params=mask_params or lm.mask, device=device,
                            chunk_s=chunk_s, on_chunk=on_chunk)
    if not np.isfinite(est).all():
        raise SeparationError(f"{lm.path}: the model produced non-finite output")
    return est


def separate_file(mix_path: str | os.PathLike, score_path: str | os.PathLike,
                  out_path: str | os.PathLike, *, part=None, accomp_path=None,
                  accomp_part=None, model: str | os.PathLike | LoadedModel | None = None,
                  align: bool = False, device: str = "cpu", chunk_s: float | None = 30.0,
                  progress: bool | None = None, log: Callable[[str], None] | None = _stderr,
                  mask_params=None, threads: int | None = 1) -> SeparationResult:
    """Separate the part ``part`` of ``score_path`` from the recording ``mix_path``.

    Args:
        mix_path: the recording (any libsndfile format, sample rate and channel count).
        score_path: MIDI / MusicXML / text / Guitar Pro score holding the target part.
        out_path: output audio (``.wav``, ``.flac``, ``.aiff``, ``.ogg``), mono, at the input's
            sample rate and length; written atomically.
        part: target part: index, name, ``"program:N"`` (MIDI) or None (the only part).
        accomp_path, accomp_part: the accompaniment's score (default: the other parts of
            ``score_path``; see the module docstring for the fallback without one).
        model: a name, a path or a :class:`~guitarsep.models.checkpoint.LoadedModel`
            (default ``si_umx_soft``).
        align: DTW-align the score to the recording first (:mod:`guitarsep.score.align`).
        chunk_s: chunk length of the chunked inference (None: one pass).
        progress: tqdm bar over chunks (None: when there are several chunks).
        log: where notes and warnings go (default stderr; None: silent).
        mask_params: score-mask parameters; default: those stored with the model.
        threads: torch intra-op threads during the call (restored afterwards); None: leave
            torch's setting. Default 1: the network is a batch-1 BiLSTM over ~1500 frames,
            thousands of tiny parallel regions; a second thread gains nothing on an idle
            machine (10 min at 48 kHz: 46x real time with 1 or 2 threads, 2 cores) and
            collapses when another process keeps the cores busy (0.8x vs 20x real time).

    Returns a :class:`SeparationResult`. Raises :class:`SeparationError` (one line, naming the
    file) for bad input; no output file is left behind on error.
    """
    t_start = time.perf_counter()
    msgs = _Messages(log)
    mix_path, score_path, out_path = Path(mix_path), Path(score_path), Path(out_path)
    _check_output(mix_path, out_path)
    mix, ainfo = read_audio(mix_path)
    sr, duration = ainfo.sr, ainfo.frames / ainfo.sr
    t_read = time.perf_counter()
    target, accomp, accomp_desc = load_score(score_path, part, accomp_path, accomp_part)
    if accomp is None and accomp_path is None:
        msgs.say(f"note: {score_path.name} holds no other part and no --accomp was given: "
                 f"no accompaniment score")
    lm = _choose_model(model, accomp, device, msgs)
    _describe_inputs(lm, ainfo, mix, mix_path, accomp_desc, msgs)
    if not align:
        _check_span(target, duration, score_path, mix_path, msgs, hint=" (are score and "
                    "recording the same piece? try --align)")
    msgs.flush()
    report = None
    if align:
        target, accomp, report = _align(target, accomp, mix, sr, mix_path, msgs)
        _check_span(target, duration, score_path, mix_path, msgs, hint="")
    t_sep = time.perf_counter()
    est = _run_model(lm, mix, target, accomp, sr, device=device, chunk_s=chunk_s,
                     progress=progress, threads=threads, mask_params=mask_params,
                     desc=f"separating {mix_path.name}")
    t_done = time.perf_counter()
    write_audio(out_path, est, sr, log=log)
    total = time.perf_counter() - t_start
    timings = dict(read_s=t_read - t_start, separate_s=t_done - t_sep, total_s=total,
                   audio_s=duration, x_real_time=duration / max(total, 1e-9))
    msgs.say(f"wrote {out_path} ({duration:.1f} s, {sr} Hz, mono) in {total:.1f} s "
             f"({timings['x_real_time']:.0f}x real time)")
    return SeparationResult(out_path, sr, int(est.size), ainfo.channels, lm.name,
                            str(lm.path) if lm.path else None, accomp_desc, report,
                            msgs.warnings, timings)
