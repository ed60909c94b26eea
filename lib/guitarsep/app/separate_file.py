"""Separate your own recording: a mixture of two guitars + the score of one part -> that part.

The user-facing path behind ``guitarsep separate`` (:mod:`guitarsep.app.cli`)::

    guitarsep separate MIX --score FILE [--part NAME|INDEX] [--accomp FILE [--accomp-part P]]
                       [--model NAME|PATH] [--align] [--refine-onsets] [--other FILE]
                       [--mono] -o OUT.wav

and the same as a function, :func:`separate_file`, built on the Python API
(:class:`guitarsep.app.separator.Separator`) and the streaming engine
(:mod:`guitarsep.separation.stream`: STFT -> network -> Wiener -> iSTFT in blocks of 30 s with
context and a 1 s cross-fade, read from and written to disk block by block, so memory stays
flat for any length).

Decisions:

* **Audio in/out.** Any format and sample rate libsndfile reads. A first pass checks the file
  (NaN/inf samples, silence, stereo that cancels in the down-mix) and measures its peak; the
  second separates it. Mono and stereo keep their channels (the network hears the down-mix;
  its mask is applied per channel through the multichannel Wiener filter); more than two
  channels, or ``mono=True``, are down-mixed to mono, with a note. The model's STFT setting
  resamples internally (soxr) and the estimate is resampled back, so the output has the
  input's sample rate and length. ``other_path`` also writes the other guitar, ``mixture -
  target``. The output format follows the extension (``.wav`` / ``.aiff``: 32-bit float, so
  nothing clips; ``.flac``: 24-bit; ``.ogg``: Vorbis), without a PEAK chunk (identical runs
  give identical bytes), and is written atomically (temporary file + rename): an error never
  leaves a partial or stale output behind.
* **Scores.** Everything :func:`guitarsep.score.load_notes` reads: MIDI, MusicXML, the text
  format, Guitar Pro ``.gp3/.gp4/.gp5``. ``part`` is an index, a name, or (MIDI) ``program:N``.
* **Accompaniment** (the soft mask ``M_t / (M_t + M_a)`` needs the other part's notes):
  ``accomp_path`` if given; else, when the score file has other (non-drum) parts, all of them
  together; else there is no accompaniment score. The default model (``score_nmf``) then
  models the other guitar as a part of unknown notes (validation clips: 6.3 dB median
  without the accompaniment against 8.2 dB with it, ``scripts/nmf_dev.py``; out of family
  1.0-3.4 dB below, ``scripts/oof_target_only.py``). A soft-mask network without an accompaniment gets the binary mask
  ``M_t`` as its soft mask (it never saw such input in training) and a warning on stderr.
* **Models.** ``model`` is a registered name (the file ``resources/<name>.pt`` shipped with the
  package, written by ``guitarsep export`` with a JSON provenance sidecar), a checkpoint
  written by training (``best.pt`` / ``last.pt``, or the run folder holding them), or a
  slim exported file anywhere (:func:`guitarsep.models.checkpoint.load_model`), or
  ``score_nmf``, the default: the score-informed NMF (:mod:`guitarsep.separation.score_nmf`,
  no file). The score masks use the mask parameters stored with the model.
* **Alignment** (``align=True``): :func:`guitarsep.score.align.align_notes` warps target and
  accompaniment notes together onto the recording; its report goes to stderr. The warped
  score is then used only if it explains the recording better than the score as given
  (:mod:`guitarsep.separation.score_fit`): DTW also moves the notes of a score that was
  right, which costs the separation (stderr says which score was kept).
* **Onset refinement** (``refine_onsets=True``, after the alignment if both are asked for):
  each note moves to its pitch's nearest rise in the recording, within 0.25 s
  (:mod:`guitarsep.score.onsets`); for hand-made scores whose timing is loose note by note.
* **Errors.** Every problem with the user's input raises :class:`SeparationError` with ONE
  line naming the file and the problem: unreadable/empty audio, NaN/inf samples, a score with no
  notes or an unknown part (the parts found are listed), a score entirely after the end of the
  recording, an unreadable or missing model, an output folder that cannot be written (checked
  before any work; temporary files of killed earlier runs of the same output are removed).
  Soft problems are warnings on stderr: score shorter/longer than the audio, a doubtful
  alignment (an error with ``strict``), an accompaniment with the target's notes or entirely
  after the recording, a part of pitches no guitar plays (0, 127), anti-phase stereo. With
  ``align``, notes beyond twice the recording's length are cut (warning) so that the
  alignment's rendering stays bounded.
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

from guitarsep.config import MaskParams
from guitarsep.io import (AudioInfo, one_line, output_format, remove_stale_temporaries,
                          scan_audio)
from guitarsep.models.checkpoint import LoadedModel

__all__ = ["separate_file", "load_model", "read_audio", "load_score",
           "SeparationError", "SeparationResult", "ModelCache"]


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


class ModelCache:
    """Models loaded once per (model, device): ``guitarsep separate`` over many recordings
    passes one to every :func:`separate_file` call, so the model is loaded once for all."""

    def __init__(self):
        self._models: dict[tuple[str, str], LoadedModel] = {}

    def __len__(self) -> int:
        return len(self._models)

    def load(self, name_or_path: str | os.PathLike | None = None, device: str = "cpu"
             ) -> LoadedModel:
        key = (str(name_or_path), str(device))
        if key not in self._models:
            self._models[key] = load_model(name_or_path, device)
        return self._models[key]


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, AudioInfo]:
    """:func:`guitarsep.io.read_audio` (mono float32), raising :class:`SeparationError`."""
    from guitarsep import io

    with _user_errors():
        return io.read_audio(path)


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
    channels_out: int = 1
    other_path: Path | None = None


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
    """Before any work: a known extension, an existing writable folder, not the input; then
    remove the temporary files that killed runs left for this output."""
    import tempfile

    with _user_errors():                                        # fail fast on a bad name
        output_format(out_path)
    folder = out_path.parent
    if not folder.is_dir():
        raise SeparationError(f"{out_path}: output folder {folder} does not exist")
    if out_path.is_dir():
        raise SeparationError(f"{out_path}: is a folder, not an output file")
    if out_path.exists() and mix_path.exists() and out_path.resolve() == mix_path.resolve():
        raise SeparationError(f"{out_path}: output would overwrite the input recording")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SeparationError(f"{out_path}: output folder {folder} is not writable")
    try:                          # os.access can say yes where writing fails (read-only mount)
        fd, probe = tempfile.mkstemp(prefix=f".{out_path.name}.probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SeparationError(f"{out_path}: cannot write in the output folder {folder} "
                              f"({e.strerror or one_line(e)})") from None
    # leftovers of runs killed by a signal that cannot be caught; not another live run's
    remove_stale_temporaries(folder, out_path.name, recursive=False, keep_running=True)


def _choose_model(model, accomp, device: str, msgs: _Messages,
                  models: ModelCache | None = None) -> LoadedModel:
    """The model asked for (default :data:`~guitarsep.models.checkpoint.DEFAULT_MODEL`);
    a warning when a soft-mask network gets no accompaniment."""
    load = models.load if models is not None else load_model
    if isinstance(model, LoadedModel):
        lm = model
    else:
        lm = load(model, device)
    if lm.score_kind == "soft" and accomp is None:
        msgs.warn(f"model {lm.name} uses the soft mask M_t/(M_t+M_a) but there is no "
                  f"accompaniment score: it gets the binary mask M_t instead (pass --accomp "
                  f"for better results)")
    return lm


def _describe_inputs(lm: LoadedModel, scan, mix_path: Path, accomp_desc: str, mono: bool,
                     msgs: _Messages) -> None:
    ainfo = scan.info
    msgs.say(f"note: model {lm.name} ({lm.setting.name}, {lm.setting.sr} Hz) from "
             f"{lm.path if lm.path else '<in memory>'}; accompaniment: {accomp_desc}")
    if ainfo.channels > 2:
        msgs.say(f"note: {mix_path.name} has {ainfo.channels} channels: down-mixed to mono "
                 f"(the output is mono; stereo is kept, more channels are not)")
    elif ainfo.channels == 2 and mono:
        msgs.say(f"note: {mix_path.name} is stereo: down-mixed to mono (--mono)")
    if ainfo.sr != lm.setting.sr:
        msgs.say(f"note: {mix_path.name} is at {ainfo.sr} Hz, the model works at "
                 f"{lm.setting.sr} Hz: resampled for the model, output written at "
                 f"{ainfo.sr} Hz")
    if scan.silent:
        msgs.warn(f"{mix_path}: the recording is silent")
    elif scan.downmix_cancels:
        msgs.warn(f"{mix_path}: its channels cancel in the mono down-mix (anti-phase stereo): "
                  f"the model hears a near-silent down-mix, not the recording; invert one "
                  f"channel's polarity")


#: The score's notes that can be aligned end before ALIGN_SPAN[0] x the recording's length +
#: ALIGN_SPAN[1] s: a score more than twice as long as the recording is outside the tempo
#: ratios the alignment accepts (0.5..2), and the rendering of the score must fit in memory.
ALIGN_SPAN = (2.0, 10.0)


def _align_bound(target, accomp, duration: float, score_path: Path, mix_path: Path,
                 msgs: _Messages):
    """``(target, accomp)`` without the notes starting after the alignment's bound (offsets
    clipped to it), with a warning; an error if no target note is left."""
    from guitarsep.score import Notes

    limit = ALIGN_SPAN[0] * duration + ALIGN_SPAN[1]

    def bounded(n):
        if n is None or not len(n) or n.duration <= limit:
            return n, 0
        keep = n.onset < limit
        return (Notes(n.onset[keep], np.minimum(n.offset[keep], limit), n.pitch[keep],
                      n.velocity[keep]), int(np.count_nonzero(n.offset > limit)))

    first = float(target.onset.min())
    (target, cut_t), (accomp, cut_a) = bounded(target), bounded(accomp)
    if not len(target):
        raise SeparationError(f"{score_path}: the part starts at {first:.4g} s, more than "
                              f"twice the length of the recording {mix_path.name} "
                              f"({duration:.2f} s): it cannot be aligned")
    if cut_t or cut_a:
        msgs.warn(f"{score_path}: {cut_t + cut_a} note(s) of the score last beyond "
                  f"{limit:.1f} s, more than twice the length of the recording "
                  f"({duration:.2f} s): cut there for the alignment and the separation")
    return target, accomp


def _refine(target, accomp, mix: np.ndarray, sr: int, msgs: _Messages, *,
            mask_params: MaskParams):
    """``(target, accomp)`` with every note's onset refined (:mod:`guitarsep.score.onsets`);
    says how many notes moved."""
    from guitarsep.score.onsets import refine_score

    t0 = time.perf_counter()
    target, accomp, moved = refine_score(target, accomp, mix, sr, mask=mask_params)
    n = len(target) + (len(accomp) if accomp is not None else 0)
    msgs.say(f"note: onsets refined: {moved} of {n} notes moved "
             f"[{time.perf_counter() - t0:.1f} s]")
    return target, accomp


def _align(target, accomp, mix: np.ndarray, sr: int, mix_path: Path, msgs: _Messages, *,
           score_path: Path | None = None, strict: bool = False,
           mask_params: MaskParams | None = None):
    """``(target, accomp, report)`` with both parts warped onto the recording, unless the
    score as given explains the recording better (:mod:`guitarsep.separation.score_fit`;
    ``report["kept_given"]`` then True). A doubtful alignment is a warning, or with
    ``strict`` an error."""
    from guitarsep.score.align import format_report
    from guitarsep.separation.score_fit import align_checked

    target, accomp = _align_bound(target, accomp, len(mix) / sr, score_path or mix_path,
                                  mix_path, msgs)
    t0 = time.perf_counter()
    try:
        (target, accomp), report, choice = align_checked(target, accomp, mix, sr,
                                                         mask=mask_params or MaskParams())
    except ValueError as e:
        raise SeparationError(f"{mix_path}: alignment failed ({one_line(e)})") from None
    report = {**report, "kept_given": not choice.aligned,
              "divergence_given": choice.divergence_given,
              "divergence_aligned": choice.divergence_aligned}
    doubts = report["warnings"]      # about score and recording, whichever score is kept
    if doubts and strict:
        raise SeparationError(f"{mix_path}: doubtful alignment of {score_path or 'the score'}"
                              f" ({'; '.join(doubts)}); --strict makes this an error")
    msgs.say(f"note: {format_report({**report, 'warnings': []})} "
             f"[{time.perf_counter() - t0:.1f} s]")
    msgs.say(f"note: {choice.describe()}")
    for w in doubts:
        msgs.warn(f"doubtful alignment: {w}")
    return target, accomp, report


#: MIDI pitches a guitar part can hold (a piano's range, generous for 7/8-string and
#: baritone guitars and harmonics); pitch 0 or 127 marks a drum, controller or placeholder
#: track.
GUITAR_PITCHES = (21, 108)


def _same_notes(a, b, tol: float = 0.02) -> int:
    """How many notes of ``a`` have a note of ``b`` with the same pitch and an onset within
    ``tol`` seconds."""
    n = 0
    for p in np.unique(a.pitch):
        ob = np.sort(b.onset[b.pitch == p])
        if not ob.size:
            continue
        oa = a.onset[a.pitch == p]
        i = np.clip(np.searchsorted(ob, oa), 1, max(ob.size - 1, 1))
        near = np.minimum(np.abs(oa - ob[i - 1]), np.abs(oa - ob[np.minimum(i, ob.size - 1)]))
        n += int(np.count_nonzero(near <= tol))
    return n


def _check_parts(target, accomp, accomp_desc: str, score_path: Path, duration: float,
                 align: bool, msgs: _Messages) -> None:
    """Warnings for suspicious scores: pitches no guitar plays, an accompaniment that is
    the target part again, an accompaniment entirely after the recording."""
    lo, hi = GUITAR_PITCHES
    odd = (target.pitch < lo) | (target.pitch > hi)
    if odd.sum() * 2 >= len(target):
        found = ", ".join(str(p) for p in np.unique(target.pitch[odd])[:4])
        msgs.warn(f"{score_path}: {int(odd.sum())} of {len(target)} notes of the part have "
                  f"pitches no guitar plays (MIDI {found}; a guitar's range is within "
                  f"{lo}..{hi}): a drum or placeholder track? the mask keeps nothing there")
    if accomp is None or not len(accomp):
        return
    same = _same_notes(target, accomp)
    if same >= max(1, 0.8 * len(target)):
        msgs.warn(f"the accompaniment {accomp_desc} plays the same notes as the target part "
                  f"({same} of {len(target)}): is it the same part? the masks cannot tell the "
                  f"two guitars apart")
    if not align and float(accomp.onset.min()) >= duration:
        msgs.warn(f"the accompaniment {accomp_desc} starts at {float(accomp.onset.min()):.2f} s,"
                  f" after the end of the recording ({duration:.2f} s): it plays no part in "
                  f"the separation (try --align)")


def _clipped(y: np.ndarray, subtype: str, peaks: list[float]) -> np.ndarray:
    """``y`` clipped to [-1, 1] for integer formats (peaks beyond are recorded)."""
    if subtype.startswith("FLOAT") or y.size == 0:
        return y
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:
        peaks.append(peak)
        return np.clip(y, -1.0, 1.0)
    return y


def _separate_to_files(sep, mix_path: Path, scan, target, accomp, out_path: Path,
                       other_path: Path | None, *, mono: bool, progress, mask_params,
                       msgs: _Messages) -> int:
    """Stream the recording through ``sep`` (a :class:`~guitarsep.app.separator.Separator`)
    into the output file(s), block by block; returns the channels written."""
    from contextlib import nullcontext

    import soundfile as sf

    from guitarsep.io import AudioWriter
    from guitarsep.separation.stream import FileSource

    info, peaks = scan.info, []
    channels = 1 if mono or info.channels > 2 else info.channels
    with _user_errors(), sf.SoundFile(str(mix_path)) as f, \
            AudioWriter(out_path, info.sr, channels) as w_target, \
            (AudioWriter(other_path, info.sr, channels) if other_path else nullcontext()) as w_other:
        for t, o in sep.stream(FileSource(f, info.frames), target, accomp,
                               peak=float(scan.channel_peaks.max()),
                               level_db=scan.mix_level_db, mono=mono,
                               progress=progress, desc=f"separating {mix_path.name}",
                               mask_params=mask_params):
            w_target.write(_clipped(t, w_target.subtype, peaks))
            if w_other is not None:
                w_other.write(_clipped(o, w_other.subtype, peaks))
    if peaks:
        msgs.warn(f"output peak {max(peaks):.2f} > 1: clipped (use .wav for 32-bit float "
                  f"output)")
    return channels


def separate_file(mix_path: str | os.PathLike, score_path: str | os.PathLike,
                  out_path: str | os.PathLike, *, part=None, accomp_path=None,
                  accomp_part=None, model: str | os.PathLike | LoadedModel | None = None,
                  align: bool = False, refine_onsets: bool = False, device: str = "cpu",
                  chunk_s: float | None = 30.0,
                  progress: bool | None = None, log: Callable[[str], None] | None = _stderr,
                  mask_params=None, threads: int | None = 1,
                  other_path: str | os.PathLike | None = None, mono: bool = False,
                  strict: bool = False, models: ModelCache | None = None
                  ) -> SeparationResult:
    """Separate the part ``part`` of ``score_path`` from the recording ``mix_path``.

    Args:
        mix_path: the recording (any libsndfile format, sample rate and channel count).
        score_path: MIDI / MusicXML / text / Guitar Pro score holding the target part.
        out_path: output audio (``.wav``, ``.flac``, ``.aiff``, ``.ogg``) at the input's
            sample rate, length and channels (stereo stays stereo; more than two channels
            are down-mixed); written block by block and atomically.
        part: target part: index, name, ``"program:N"`` (MIDI) or None (the only part).
        accomp_path, accomp_part: the accompaniment's score (default: the other parts of
            ``score_path``; see the module docstring for the fallback without one).
        model: a name, a path or a :class:`~guitarsep.models.checkpoint.LoadedModel`
            (default ``score_nmf``).
        align: DTW-align the score to the recording first (:mod:`guitarsep.score.align`).
        refine_onsets: move each note to its pitch's nearest onset in the recording (after
            ``align``; :mod:`guitarsep.score.onsets`).
        chunk_s: chunk length of the chunked inference (None: one pass).
        progress: tqdm bar over chunks (None: when there are several chunks).
        log: where notes and warnings go (default stderr; None: silent).
        mask_params: score-mask parameters; default: those stored with the model.
        other_path: also write the other guitar (mixture - target) there.
        mono: down-mix the recording first (mono output).
        strict: a doubtful alignment is an error, not a warning.
        models: a :class:`ModelCache` shared by the calls of one run (many recordings).
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
    other_path = Path(other_path) if other_path is not None else None
    for path in (out_path, other_path) if other_path else (out_path,):
        _check_output(mix_path, path)
    if other_path is not None and other_path.resolve() == out_path.resolve():
        raise SeparationError(f"{other_path}: --other must differ from the output file")
    with _user_errors():
        scan = scan_audio(mix_path)
    ainfo = scan.info
    sr, duration = ainfo.sr, ainfo.frames / ainfo.sr
    t_read = time.perf_counter()
    target, accomp, accomp_desc = load_score(score_path, part, accomp_path, accomp_part)
    if accomp is None and accomp_path is None:
        msgs.say(f"note: {score_path.name} holds no other part and no --accomp was given: "
                 f"no accompaniment score (the other guitar's notes, if you have them, "
                 f"usually separate 1-3 dB better)")
    lm = _choose_model(model, accomp, device, msgs, models)
    _describe_inputs(lm, scan, mix_path, accomp_desc, mono, msgs)
    _check_parts(target, accomp, accomp_desc, score_path, duration, align, msgs)
    if not align:
        _check_span(target, duration, score_path, mix_path, msgs, hint=" (are score and "
                    "recording the same piece? try --align)")
    report = None
    # the alignment and the onset refinement need the whole (mono) recording in memory
    mono_mix = read_audio(mix_path)[0] if align or refine_onsets else None
    if align:
        target, accomp, report = _align(target, accomp, mono_mix, sr, mix_path, msgs,
                                        score_path=score_path, strict=strict,
                                        mask_params=mask_params)
        _check_span(target, duration, score_path, mix_path, msgs, hint="")
    if refine_onsets:
        target, accomp = _refine(target, accomp, mono_mix, sr, msgs,
                                 mask_params=mask_params or lm.mask)
    del mono_mix                  # not held through the block-wise separation
    msgs.flush()                  # after the alignment: with --strict, it is a check too
    from guitarsep.app.separator import Separator

    t_sep = time.perf_counter()
    sep = Separator(lm, device, chunk_s=chunk_s, threads=threads)
    channels = _separate_to_files(sep, mix_path, scan, target, accomp, out_path, other_path,
                                  mono=mono, progress=progress, mask_params=mask_params,
                                  msgs=msgs)
    t_done = time.perf_counter()
    total = t_done - t_start
    timings = dict(read_s=t_read - t_start, separate_s=t_done - t_sep, total_s=total,
                   audio_s=duration, x_real_time=duration / max(total, 1e-9))
    msgs.say(f"wrote {out_path}{f' and {other_path}' if other_path else ''} ({duration:.1f} s, "
             f"{sr} Hz, {'mono' if channels == 1 else f'{channels} channels'}) in "
             f"{total:.1f} s ({timings['x_real_time']:.0f}x real time)")
    return SeparationResult(out_path, sr, int(ainfo.frames), ainfo.channels, lm.name,
                            str(lm.path) if lm.path else None, accomp_desc, report,
                            msgs.warnings, timings, channels, other_path)
