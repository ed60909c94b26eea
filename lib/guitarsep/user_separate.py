"""Separate your own recording: a mixture of two guitars + the score of one part -> that part.

The user-facing path behind ``guitarsep separate`` (:mod:`guitarsep.cli`)::

    guitarsep separate MIX --score FILE [--part NAME|INDEX] [--accomp FILE [--accomp-part P]]
                       [--model NAME|PATH] [--align] -o OUT.wav

and the same as a function, :func:`separate_file`. It reuses the evaluation path
(:func:`guitarsep.separate.separate_clip`: STFT -> network -> Wiener -> iSTFT, in 30 s chunks
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
  package, written by :func:`export_model` with a JSON provenance sidecar), a checkpoint
  written by training (``best.pt`` / ``last.pt``, or the run folder holding them), or a
  slim exported file anywhere. Default: ``si_umx_soft``.
* **Alignment** (``align=True``): :func:`guitarsep.align.align_notes` warps target and
  accompaniment notes together onto the recording; its report goes to stderr.
* **Errors.** Every problem with the user's input raises :class:`SeparationError` with ONE
  line naming the file and the problem: unreadable/empty audio, NaN/inf samples, a score with no
  notes or an unknown part (the parts found are listed), a score entirely after the end of the
  recording, an unreadable or missing model. Soft problems (score shorter/longer than the
  audio, a doubtful alignment) are warnings on stderr.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["separate_file", "load_model", "export_model", "read_audio", "load_score",
           "write_audio", "SeparationError", "LoadedModel", "SeparationResult",
           "shipped_model_path", "RESOURCES", "DEFAULT_MODEL", "BINARY_MODEL"]

RESOURCES = Path(__file__).with_name("resources")
DEFAULT_MODEL = "si_umx_soft"
BINARY_MODEL = "si_umx_binary"
MODEL_FORMAT = "guitarsep-model"
MODEL_FORMAT_VERSION = 1
BLOCK_FRAMES = 1 << 20               # audio read in blocks of ~1M frames (flat memory)
_OUT_FORMATS = {".wav": ("WAV", "FLOAT"), ".aiff": ("AIFF", "FLOAT"), ".aif": ("AIFF", "FLOAT"),
                ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}


class SeparationError(Exception):
    """A problem with the user's input (one line, naming the file and the problem)."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# models: export and load
# --------------------------------------------------------------------------------------------

@dataclass
class LoadedModel:
    """A network ready for :func:`guitarsep.separate.separate_clip`."""

    model: object                      # guitarsep.models.SeparationModel, eval mode
    name: str
    setting: object                    # config.StftSetting
    hparams: dict
    path: Path | None
    info: dict = field(default_factory=dict)   # provenance sidecar / checkpoint metadata

    @property
    def score_kind(self):
        return getattr(self.model, "score_kind", None)


def shipped_model_path(name: str) -> Path:
    """Where the shipped model ``name`` lives: ``lib/guitarsep/resources/<name>.pt``."""
    return RESOURCES / f"{name}.pt"


def _read_checkpoint(path: Path) -> dict:
    import torch

    try:
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # training's last.pt holds RNG states (numpy arrays), which the safe loader
            # refuses; the user named this file, so load it fully
            ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise SeparationError(f"{path}: not a readable model file ({type(e).__name__}: "
                              f"{_one_line(e)})") from None
    if not isinstance(ck, dict):
        raise SeparationError(f"{path}: not a guitarsep model file (holds a "
                              f"{type(ck).__name__}, expected a checkpoint dict)")
    return ck


def _model_from_checkpoint(ck: dict, path: Path | None):
    """``(model, name, setting, hparams)`` from an exported file or a training checkpoint."""
    from guitarsep import models as gmodels
    from guitarsep.config import SETTINGS

    where = str(path) if path is not None else "<checkpoint>"
    state = ck.get("state_dict", ck.get("model"))
    name, setting = ck.get("name"), ck.get("setting", "modern")
    if not isinstance(state, dict) or not isinstance(name, str):
        raise SeparationError(f"{where}: not a guitarsep model file (keys "
                              f"{sorted(map(str, ck))[:8]}; expected name, setting, hparams "
                              f"and state_dict/model)")
    if name not in gmodels.MODEL_NAMES:
        raise SeparationError(f"{where}: unknown model name {name!r} in the file")
    if setting not in SETTINGS:
        raise SeparationError(f"{where}: unknown STFT setting {setting!r} in the file")
    hparams = dict(ck.get("hparams") or {})
    try:
        model = gmodels.build_model(name, setting, **hparams)
        ref = model.state_dict()
        state = {k: (v.to(ref[k].dtype) if k in ref and v.is_floating_point() else v)
                 for k, v in state.items()}
        model.load_state_dict(state)
    except Exception as e:
        raise SeparationError(f"{where}: weights do not fit {name} {hparams} "
                              f"({type(e).__name__}: {_one_line(e)})") from None
    model.eval()
    return model, name, SETTINGS[setting], hparams


def _one_line(e: BaseException, limit: int = 200) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= limit else s[:limit - 3] + "..."


def load_model(name_or_path: str | os.PathLike | None = None, device: str = "cpu"
               ) -> LoadedModel:
    """Load a separation model.

    ``name_or_path``: None (``si_umx_soft``), a registered model name (its shipped file
    ``resources/<name>.pt``), a file written by :func:`export_model`, a training checkpoint
    (``best.pt``/``last.pt``) or a training run folder (``best.pt``, else ``last.pt``).
    Raises :class:`SeparationError` for a missing or unreadable file, with instructions when a
    shipped model is missing.
    """
    from guitarsep.models import MODEL_NAMES

    spec = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    path = Path(spec).expanduser()
    if path.is_dir():
        for fname in ("best.pt", "last.pt"):
            if (path / fname).is_file():
                path = path / fname
                break
        else:
            raise SeparationError(f"{path}: folder holds no best.pt or last.pt checkpoint")
    elif not path.is_file():
        looks_like_path = (os.sep in spec or "/" in spec
                           or path.suffix.lower() in (".pt", ".pth", ".ckpt"))
        if looks_like_path or spec not in MODEL_NAMES:
            if looks_like_path:
                raise SeparationError(f"{path}: model file not found")
            raise SeparationError(f"unknown model {spec!r}: not a file, and not one of "
                                  f"{', '.join(MODEL_NAMES)}")
        path = shipped_model_path(spec)
        if not path.is_file():
            raise SeparationError(
                f"{path}: model {spec!r} is not shipped with this copy; train it "
                f"(`python -m guitarsep.train --profile default --model {spec} --setting "
                f"modern`, or `make reproduce`), export it (`python -m guitarsep.user_separate "
                f"export data/default/models/modern-{spec}/best.pt {path}`), or pass a "
                f"checkpoint with --model PATH")
    ck = _read_checkpoint(path)
    model, name, setting, hparams = _model_from_checkpoint(ck, path)
    info = dict(ck.get("provenance") or {})
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            info = {**json.loads(sidecar.read_text()), **info}
        except (OSError, ValueError):
            pass
    for k in ("epoch", "valid_loss", "valid_si_sdr", "config_hash"):
        if k in ck:
            info.setdefault(k, ck[k])
    return LoadedModel(model.to(device), name, setting, hparams, path, info)


def export_model(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike,
                 provenance: dict | None = None, *, dtype: str = "float32") -> dict:
    """Write a slim, shippable model file from a training checkpoint (or another export).

    ``out_path`` (``.pt``) holds ``{"format": "guitarsep-model", "version", "name", "setting",
    "hparams", "state_dict", "provenance"}``: weights only (no optimizer, no RNG), floating
    tensors in ``dtype`` ("float32", or "float16" to halve the size; :func:`load_model`
    converts back to float32). The sidecar ``out_path.with_suffix(".json")`` records the
    provenance given (e.g. profile, commit, training run, scores) plus the model's name,
    setting, hparams, parameter count, the checkpoint's epoch / validation loss, the file's
    size and sha256. Both are written atomically. Returns the sidecar dict.
    """
    import torch

    src = Path(checkpoint_path)
    out = Path(out_path)
    ck = _read_checkpoint(src)
    model, name, setting, hparams = _model_from_checkpoint(ck, src)
    tdtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    state = {k: (v.detach().to(tdtype) if v.is_floating_point() else v.detach()).contiguous()
             for k, v in model.state_dict().items()}
    provenance = dict(provenance or {})
    payload = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "name": name,
               "setting": setting.name, "hparams": hparams, "state_dict": state,
               "provenance": provenance}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    from guitarsep.models import count_parameters
    side = {**provenance, "model": name, "setting": setting.name, "hparams": hparams,
            "parameters": int(count_parameters(model)), "dtype": dtype,
            "file": out.name, "size_bytes": out.stat().st_size, "sha256": digest,
            "source_checkpoint": str(src)}
    for k in ("epoch", "valid_loss", "valid_si_sdr", "config_hash"):
        if k in ck:
            side.setdefault(k, ck[k] if not hasattr(ck[k], "item") else ck[k].item())
    jtmp = out.with_name(f".{out.stem}.json.tmp{os.getpid()}")
    jtmp.write_text(json.dumps(side, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(jtmp, out.with_suffix(".json"))
    return side


# --------------------------------------------------------------------------------------------
# audio in / out
# --------------------------------------------------------------------------------------------

@dataclass
class AudioInfo:
    sr: int
    channels: int
    frames: int
    format: str
    subtype: str


def read_audio(path: str | os.PathLike, *, block_frames: int = BLOCK_FRAMES
               ) -> tuple[np.ndarray, AudioInfo]:
    """Read an audio file as a mono float32 waveform (channels averaged), block by block.

    Raises :class:`SeparationError` for a missing, unreadable or empty file and for NaN or
    infinite samples (with the time of the first one).
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise SeparationError(f"{path}: no such audio file")
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:   # soundfile.LibsndfileError (RuntimeError) and friends
        raise SeparationError(f"{path}: not a readable audio file ({_one_line(e)})") from None
    with f:
        info = AudioInfo(int(f.samplerate), int(f.channels), int(f.frames), str(f.format),
                         str(f.subtype))
        if info.frames <= 0:
            raise SeparationError(f"{path}: audio file holds no samples")
        mono = np.empty(info.frames, dtype=np.float32)   # one buffer: no concatenation copy
        done = 0
        try:
            for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                bad = ~np.isfinite(block)
                if bad.any():
                    i = int(np.flatnonzero(bad.any(axis=1))[0]) + done
                    raise SeparationError(f"{path}: NaN or infinite sample at "
                                          f"{i / info.sr:.3f} s (frame {i})")
                k = block.shape[0]
                if done + k > mono.size:                  # header under-reported the length
                    mono = np.concatenate([mono, np.empty(done + k - mono.size, np.float32)])
                if block.shape[1] > 1:
                    block.mean(axis=1, dtype=np.float32, out=mono[done:done + k])
                else:
                    mono[done:done + k] = block[:, 0]
                done += k
        except SeparationError:
            raise
        except Exception as e:
            raise SeparationError(f"{path}: audio data unreadable after {done / info.sr:.2f} s"
                                  f" ({_one_line(e)})") from None
    if done == 0:
        raise SeparationError(f"{path}: audio file holds no samples")
    mono = mono[:done]
    info.frames = int(done)
    return mono, info


def _out_format(path: Path) -> tuple[str, str]:
    ext = path.suffix.lower()
    if ext not in _OUT_FORMATS:
        raise SeparationError(f"{path}: unsupported output extension {ext or '(none)'!r}; "
                              f"use one of {', '.join(_OUT_FORMATS)}")
    return _OUT_FORMATS[ext]


def write_audio(path: str | os.PathLike, y: np.ndarray, sr: int, *,
                log: Callable[[str], None] | None = _stderr) -> Path:
    """Write mono ``y`` at ``sr`` atomically (temporary file in the same folder + rename).

    Format from the extension (see module docstring). Integer formats: samples beyond
    [-1, 1] are clipped, with a warning.
    """
    import soundfile as sf

    path = Path(path)
    fmt, subtype = _out_format(path)
    if not subtype.startswith("FLOAT"):
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if peak > 1.0:
            if log:
                log(f"warning: output peak {peak:.2f} > 1: clipped in {fmt} (use .wav for "
                    f"32-bit float output)")
            y = np.clip(y, -1.0, 1.0)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        sf.write(str(tmp), y, sr, format=fmt, subtype=subtype)
        os.replace(tmp, path)
    except Exception as e:
        raise SeparationError(f"{path}: cannot write output ({_one_line(e)})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------

def _parse_part(part):
    """CLI part spec -> int index, str name, ("program", n) or None."""
    if part is None or isinstance(part, (int, np.integer)):
        return part
    s = str(part).strip()
    if re.fullmatch(r"\d+", s):
        return int(s)
    m = re.fullmatch(r"(?i)program\s*[:=]\s*(\d+)", s)
    if m:
        return ("program", int(m.group(1)))
    return s


def _part_names(path: Path) -> tuple[list[list[str]], list[bool]]:
    """Per part: the names it answers to, and whether it is a drum part (skipped)."""
    from guitarsep import score as sc

    ext = path.suffix.lower()
    if ext in sc.MIDI_EXTENSIONS:
        insts = sc._read_midi(path).instruments
        return [[i.name or ""] for i in insts], [bool(i.is_drum) for i in insts]
    if ext in sc.MUSICXML_EXTENSIONS:
        parts = list(sc._read_musicxml(path).parts)
        return [[p.partName or "", str(p.id)] for p in parts], [False] * len(parts)
    if ext in sc.GUITARPRO_EXTENSIONS:
        tracks = sc._read_guitarpro(path).tracks
        return [[t.name or ""] for t in tracks], [bool(t.isPercussionTrack) for t in tracks]
    return [[path.stem]], [False]


def _resolve_part(path: Path, part) -> tuple[int | str | None, int]:
    """``(part for load_notes, index of that part)``; a bad part or file raises
    :class:`SeparationError` worded as load_notes words it."""
    try:
        return _resolve_part_or_raise(path, part)
    except ValueError as e:
        raise SeparationError(_one_line(e, 400)) from None


def _resolve_part_or_raise(path: Path, part) -> tuple[int | str | None, int]:
    from guitarsep import score as sc

    part = _parse_part(part)
    names, drums = _part_names(path)
    if isinstance(part, tuple):                       # ("program", n): MIDI only
        if path.suffix.lower() not in sc.MIDI_EXTENSIONS:
            raise SeparationError(f"{path}: program:N selects a MIDI track; this is not MIDI")
        insts = sc._read_midi(path).instruments
        hits = [i for i, inst in enumerate(insts) if inst.program == part[1] and not inst.is_drum]
        if len(hits) != 1:
            listing = "; ".join(sc.list_parts(path))
            raise SeparationError(f"{path}: {'no' if not hits else 'several'} track(s) with "
                                  f"program {part[1]} (part=program:{part[1]}); parts found: "
                                  f"{listing}")
        return hits[0], hits[0]
    if isinstance(part, int):
        return part, part
    if part is None:
        cands = [i for i, d in enumerate(drums) if not d]
        return None, (cands[0] if len(cands) == 1 else -1)
    hits = [i for i, ns in enumerate(names) if any(n.strip().lower() == part.lower()
                                                  for n in ns)]
    return part, (hits[0] if len(hits) == 1 else -1)


def _load(path: Path, part):
    from guitarsep.score import load_notes

    try:
        return load_notes(path, part)
    except ValueError as e:
        raise SeparationError(_one_line(e, 400)) from None


def load_score(score_path: str | os.PathLike, part=None, accomp_path=None, accomp_part=None
               ) -> tuple[object, object | None, str]:
    """``(target Notes, accompaniment Notes or None, description of the accompaniment)``.

    The accompaniment is ``accomp_path``'s part if given, else every other non-drum part
    with notes in the score file (merged), else None. Raises :class:`SeparationError`.
    """
    from guitarsep.score import Notes

    score_path = Path(score_path)
    lp, index = _resolve_part(score_path, part)
    target = _load(score_path, lp)
    if accomp_path is not None:
        accomp_path = Path(accomp_path)
        ap, _ = _resolve_part(accomp_path, accomp_part)
        accomp = _load(accomp_path, ap)
        return target, accomp, f"{accomp_path} ({len(accomp)} notes)"
    names, drums = _part_names(score_path)
    others, used = Notes.empty(), []
    if index >= 0:
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

def _check_span(target, duration: float, score_path: Path, mix_path: Path, warn, hint: str
                ) -> None:
    """Error if the part starts after the recording ends; warnings if it ends > 0.5 s after
    or > 2 s before the end of the recording."""
    first, last = float(target.onset.min()), float(target.offset.max())
    if first >= duration:
        raise SeparationError(f"{score_path}: the part starts at {first:.2f} s, after the end "
                              f"of the recording {mix_path.name} ({duration:.2f} s){hint}")
    if last > duration + 0.5:
        warn(f"{score_path}: the part lasts until {last:.2f} s, the recording only "
             f"{duration:.2f} s: notes after {duration:.2f} s are ignored{hint}")
    if last < duration - 2.0:
        warn(f"{score_path}: the part ends at {last:.2f} s, the recording lasts "
             f"{duration:.2f} s: the output is near silent after the last note{hint}")


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


def _with_progress(model, bar):
    """The model wrapped so that each chunk's forward pass advances a tqdm bar
    (separate_clip has no callback). Behaves like the model for separate_clip: parameters,
    device moves, score_kind, train/eval mode."""
    import torch

    class WithProgress(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model
            self.score_kind = getattr(model, "score_kind", None)
            self.uses_accomp = getattr(model, "uses_accomp", False)
            self.name = getattr(model, "name", "model")

        def forward(self, *args, **kwargs):
            out = self.inner(*args, **kwargs)
            bar.update(1)
            return out

    return WithProgress()


class _restore_threads:
    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        import torch
        torch.set_num_threads(self.n)
        return False


def _n_chunks(n_samples: int, sr: int, setting, chunk_s, overlap_s: float = 1.0) -> int:
    """Number of model calls separate_clip makes (mirrors separate._run_chunked's layout)."""
    if chunk_s is None:
        return 1
    n = int(math.ceil(n_samples * setting.sr / sr)) + setting.n_fft
    hop = setting.hop
    core = max(1, round(chunk_s * setting.sr / hop)) * hop
    fade = max(1, round(overlap_s * setting.sr / hop)) * hop
    if n <= core + fade:
        return 1
    k = len(range(0, n, core))
    if k > 1 and n - (k - 1) * core <= fade // 2:
        k -= 1
    return k


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
        model: a name, a path or a :class:`LoadedModel` (default ``si_umx_soft``).
        align: DTW-align the score to the recording first (:mod:`guitarsep.align`).
        chunk_s: chunk length of the chunked inference (None: one pass).
        progress: tqdm bar over chunks (None: when there are several chunks).
        log: where notes and warnings go (default stderr; None: silent).
        threads: torch intra-op threads during the call (restored afterwards); None: leave
            torch's setting. Default 1: the network is a batch-1 BiLSTM over ~1500 frames,
            thousands of tiny parallel regions; a second thread gains nothing on an idle
            machine (10 min at 48 kHz: 46x real time with 1 or 2 threads, 2 cores) and
            collapses when another process keeps the cores busy (0.8x vs 20x real time).

    Returns a :class:`SeparationResult`. Raises :class:`SeparationError` (one line, naming the
    file) for bad input; no output file is left behind on error.
    """
    from guitarsep.score import Notes
    from guitarsep.separate import separate_clip

    t_start = time.perf_counter()
    warnings: list[str] = []
    # notes and warnings wait until every input has been checked, so that bad input gives
    # exactly one line (the error) on stderr
    pending: list[str] | None = []

    def say(msg: str) -> None:
        if log is None:
            return
        if pending is not None:
            pending.append(msg)
        else:
            log(msg)

    def flush() -> None:
        nonlocal pending
        lines, pending = pending or [], None
        for line in lines:
            say(line)

    def warn(msg: str) -> None:
        warnings.append(msg)
        say(f"warning: {msg}")

    mix_path, score_path, out_path = Path(mix_path), Path(score_path), Path(out_path)
    _out_format(out_path)                                       # fail fast on a bad name
    if not out_path.parent.is_dir():
        raise SeparationError(f"{out_path}: output folder {out_path.parent} does not exist")
    if out_path.exists() and mix_path.exists() and out_path.resolve() == mix_path.resolve():
        raise SeparationError(f"{out_path}: output would overwrite the input recording")

    # --- inputs ---------------------------------------------------------------------------
    mix, ainfo = read_audio(mix_path)
    sr, duration = ainfo.sr, ainfo.frames / ainfo.sr
    t_read = time.perf_counter()
    target, accomp, accomp_desc = load_score(score_path, part, accomp_path, accomp_part)
    if accomp is None and accomp_path is None:
        say(f"note: {score_path.name} holds no other part and no --accomp was given: "
            f"no accompaniment score")

    # --- model ----------------------------------------------------------------------------
    if isinstance(model, LoadedModel):
        lm = model
    elif model is None and accomp is None and shipped_model_path(BINARY_MODEL).is_file():
        lm = load_model(BINARY_MODEL, device)
        say(f"note: using the binary-mask model {BINARY_MODEL} (its score input does not "
            f"need the accompaniment)")
    else:
        lm = load_model(model, device)
    if lm.score_kind == "soft" and accomp is None:
        warn(f"model {lm.name} uses the soft mask M_t/(M_t+M_a) but there is no accompaniment "
             f"score: it gets the binary mask M_t instead (pass --accomp for better results)")
    say(f"note: model {lm.name} ({lm.setting.name}, {lm.setting.sr} Hz) from "
        f"{lm.path if lm.path else '<in memory>'}; accompaniment: {accomp_desc}")
    if ainfo.channels > 1:
        say(f"note: {mix_path.name} has {ainfo.channels} channels: down-mixed to mono "
            f"(the output is mono)")
    if sr != lm.setting.sr:
        say(f"note: {mix_path.name} is at {sr} Hz, the model works at {lm.setting.sr} Hz: "
            f"resampled for the model, output written at {sr} Hz")
    if float(np.max(np.abs(mix))) == 0.0:
        warn(f"{mix_path}: the recording is silent")

    # --- alignment ------------------------------------------------------------------------
    if not align:
        _check_span(target, duration, score_path, mix_path, warn, hint=" (are score and "
                    "recording the same piece? try --align)")
    flush()
    report = None
    if align:
        from guitarsep.align import align_notes, format_report

        t0 = time.perf_counter()
        try:
            (target, accomp), report = align_notes([target, accomp], mix, sr)
        except ValueError as e:
            raise SeparationError(f"{mix_path}: alignment failed ({_one_line(e)})") from None
        say(f"note: {format_report(report)} [{time.perf_counter() - t0:.1f} s]")
        for w in report["warnings"]:
            warnings.append(f"alignment: {w}")

        _check_span(target, duration, score_path, mix_path, warn, hint="")

    # --- separation -----------------------------------------------------------------------
    n_chunks = _n_chunks(mix.size, sr, lm.setting, chunk_s)
    show = (n_chunks > 1) if progress is None else bool(progress)
    from tqdm.auto import tqdm

    t_sep = time.perf_counter()
    import torch

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    with _restore_threads(old_threads), tqdm(total=n_chunks, desc=f"separating {mix_path.name}", unit="chunk",
              disable=not show, file=sys.stderr, leave=False) as bar:
        net = _with_progress(lm.model, bar) if show else lm.model
        est = separate_clip(net, mix, target, accomp if accomp is not None else Notes.empty(),
                            lm.setting, sr=sr, mask_params=mask_params, device=device,
                            chunk_s=chunk_s)
    t_done = time.perf_counter()
    if not np.isfinite(est).all():
        raise SeparationError(f"{lm.path}: the model produced non-finite output")
    write_audio(out_path, est, sr, log=log)
    timings = dict(read_s=t_read - t_start, separate_s=t_done - t_sep,
                   total_s=time.perf_counter() - t_start, audio_s=duration,
                   x_real_time=duration / max(time.perf_counter() - t_start, 1e-9))
    say(f"wrote {out_path} ({duration:.1f} s, {sr} Hz, mono) in {timings['total_s']:.1f} s "
        f"({timings['x_real_time']:.0f}x real time)")
    return SeparationResult(out_path, sr, int(est.size), ainfo.channels, lm.name,
                            str(lm.path) if lm.path else None, accomp_desc, report, warnings,
                            timings)


# --------------------------------------------------------------------------------------------
# python -m guitarsep.user_separate export CHECKPOINT OUT.pt [--float16] [--provenance JSON]
# --------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m guitarsep.user_separate",
                                description="export a training checkpoint as a slim model")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write a shippable model file + JSON sidecar")
    e.add_argument("checkpoint")
    e.add_argument("out")
    e.add_argument("--float16", action="store_true", help="store weights as float16")
    e.add_argument("--provenance", default=None,
                   help="JSON file (or inline JSON object) recorded in the sidecar")
    args = p.parse_args(argv)
    prov = {}
    if args.provenance:
        src = Path(args.provenance)
        prov = json.loads(src.read_text() if src.is_file() else args.provenance)
    try:
        side = export_model(args.checkpoint, args.out, prov,
                            dtype="float16" if args.float16 else "float32")
    except SeparationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(side, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
