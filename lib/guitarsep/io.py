"""Shared infrastructure: audio files, resampling, atomic writes and hashing.

One implementation of each, used by every stage: the corpus build (``corpus.build``), the
training caches and checkpoints (``training``, ``models.checkpoint``), the results tables and
figures (``evaluation``, ``provenance``) and the app (``app.separate_file``, the listening
panel). No notebook calls these directly.

Decisions:

* **Atomic writes.** Every file is written to ``.<name>.tmp<pid>`` in the same folder and
  renamed over the target (``os.replace``), so a reader, or a rerun after a crash, never sees
  half a file; the temporary file is removed when the write fails.
  :func:`remove_stale_temporaries` deletes such leftovers of killed runs.
* **Resampling** uses soxr "HQ" on float32 (identity when the rates agree).
* **Audio reading** is block-wise into one preallocated buffer, down-mixed to mono by the
  channel mean; NaN/inf samples and empty files are errors naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["resample", "fix_length", "AudioFileError", "AudioInfo", "read_audio", "load_audio",
           "write_audio", "AudioWriter", "AudioScan", "scan_audio", "LevelMeter", "gated_level_db", "output_format",
           "OUTPUT_FORMATS", "atomic_path", "write_text_atomic", "write_between_markers", "run_doc_table",
           "write_json_atomic", "save_npy_atomic", "save_torch_atomic",
           "remove_stale_temporaries", "json_hash", "sha256_hex", "one_line"]

BLOCK_FRAMES = 1 << 20               # audio read in blocks of ~1M frames (flat memory)
#: Output extension -> (libsndfile format, subtype). Float WAV/AIFF never clip.
OUTPUT_FORMATS = {".wav": ("WAV", "FLOAT"), ".aiff": ("AIFF", "FLOAT"), ".aif": ("AIFF", "FLOAT"),
                  ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}


def one_line(e: BaseException | str, limit: int = 200) -> str:
    """``e``'s message on one line, at most ``limit`` characters."""
    s = " ".join(str(e).split())
    return s if len(s) <= limit else s[:limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------
def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """float32 ``x`` (``(n,)`` or ``(n, channels)``) from ``sr_in`` to ``sr_out`` (soxr "HQ")."""
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x
    import soxr
    return soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def fix_length(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut or zero-padded on its last axis to exactly ``n`` samples."""
    if y.shape[-1] >= n:
        return y[..., :n]
    return np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])])


# --------------------------------------------------------------------------------------------
# audio files
# --------------------------------------------------------------------------------------------
class AudioFileError(ValueError):
    """An audio file that cannot be used (one line, naming the file and the problem)."""


@dataclass
class AudioInfo:
    """What the file said about itself (``frames`` = samples actually read)."""

    sr: int
    channels: int
    frames: int
    format: str
    subtype: str


def read_audio(path: str | os.PathLike, *, block_frames: int = BLOCK_FRAMES
               ) -> tuple[np.ndarray, AudioInfo]:
    """An audio file as a mono float32 waveform ``(n,)`` (channel mean), read block by block.

    Raises :class:`AudioFileError` for a missing, unreadable or empty file and for NaN or
    infinite samples (with the time of the first one).
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such audio file")
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:   # soundfile.LibsndfileError (RuntimeError) and friends
        raise AudioFileError(f"{path}: not a readable audio file ({one_line(e)})") from None
    with f:
        info = AudioInfo(int(f.samplerate), int(f.channels), int(f.frames), str(f.format),
                         str(f.subtype))
        if info.frames <= 0:
            raise AudioFileError(f"{path}: audio file holds no samples")
        mono, done = _read_blocks(f, path, info, block_frames)
    if done == 0:
        raise AudioFileError(f"{path}: audio file holds no samples")
    info.frames = int(done)
    return mono[:done], info


def _read_blocks(f, path: Path, info: AudioInfo, block_frames: int) -> tuple[np.ndarray, int]:
    mono = np.empty(info.frames, dtype=np.float32)   # one buffer: no concatenation copy
    done = 0
    try:
        for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
            _check_finite(block, path, info.sr, done)
            k = block.shape[0]
            if done + k > mono.size:                  # header under-reported the length
                mono = np.concatenate([mono, np.empty(done + k - mono.size, np.float32)])
            if block.shape[1] > 1:
                block.mean(axis=1, dtype=np.float32, out=mono[done:done + k])
            else:
                mono[done:done + k] = block[:, 0]
            done += k
    except AudioFileError:
        raise
    except Exception as e:
        raise AudioFileError(f"{path}: audio data unreadable after {done / info.sr:.2f} s"
                             f" ({one_line(e)})") from None
    return mono, done


def load_audio(path: str | os.PathLike, sr: int | None = None) -> tuple[np.ndarray, int]:
    """``(mono float32 waveform, sample rate)``; resampled to ``sr`` when given."""
    x, info = read_audio(path)
    if sr is None or sr == info.sr:
        return x, info.sr
    return resample(x, info.sr, sr), int(sr)


def output_format(path: str | os.PathLike) -> tuple[str, str]:
    """``(libsndfile format, default subtype)`` for ``path``'s extension; raises
    :class:`AudioFileError` for an extension not in :data:`OUTPUT_FORMATS`."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in OUTPUT_FORMATS:
        raise AudioFileError(f"{path}: unsupported output extension {ext or '(none)'!r}; "
                             f"use one of {', '.join(OUTPUT_FORMATS)}")
    return OUTPUT_FORMATS[ext]


def _no_peak_chunk(f) -> None:
    """Ask libsndfile not to write a PEAK chunk (float WAV/AIFF): it holds a timestamp, so
    two identical runs would give different bytes."""
    from soundfile import _ffi, _snd

    SFC_SET_ADD_PEAK_CHUNK = 0x1050
    _snd.sf_command(f._file, SFC_SET_ADD_PEAK_CHUNK, _ffi.NULL, 0)


class AudioWriter:
    """Write an audio file block by block, atomically: the blocks go to a temporary file
    beside ``path`` that replaces ``path`` only when the ``with`` block ends without an
    exception. Deterministic bytes (no PEAK chunk). Used by :func:`write_audio` and the
    streaming separation (``guitarsep separate``).

        >>> with AudioWriter("out.wav", 48000, channels=2) as w:
        ...     w.write(block)            # (n,) or (n, channels) float
    """

    def __init__(self, path: str | os.PathLike, sr: int, channels: int = 1, *,
                 subtype: str | None = None):
        self.path = Path(path)
        self.format, default = output_format(self.path)
        self.sr, self.channels, self.subtype = int(sr), int(channels), subtype or default
        self.frames = 0
        self._atomic = self._file = None

    def __enter__(self) -> "AudioWriter":
        import soundfile as sf

        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._file = sf.SoundFile(str(tmp), "w", self.sr, self.channels,
                                      subtype=self.subtype, format=self.format)
            _no_peak_chunk(self._file)
        except BaseException as e:      # also Ctrl-C / SIGTERM: no temporary file is left
            self._atomic.__exit__(type(e), e, e.__traceback__)
            if not isinstance(e, Exception):
                raise
            raise AudioFileError(f"{self.path}: cannot write output ({one_line(e)})") from None
        return self

    def write(self, y: np.ndarray) -> None:
        try:
            self._file.write(y)
        except Exception as e:
            raise AudioFileError(f"{self.path}: cannot write output ({one_line(e)})") from None
        self.frames += len(y)

    def __exit__(self, *exc) -> bool:
        try:
            self._file.close()
        finally:
            self._atomic.__exit__(*exc)
        return False


def write_audio(path: str | os.PathLike, y: np.ndarray, sr: int, *,
                subtype: str | None = None) -> Path:
    """Write ``y`` (``(n,)`` or ``(n, channels)``) at ``sr`` atomically (:class:`AudioWriter`).

    The format follows the extension (:data:`OUTPUT_FORMATS`); ``subtype`` overrides the
    extension's default (the corpus stores 16-bit FLAC). Raises :class:`AudioFileError` for an
    unknown extension or a failed write (no partial file is left).
    """
    with AudioWriter(path, sr, 1 if np.ndim(y) == 1 else np.shape(y)[1], subtype=subtype) as w:
        w.write(y)
    return Path(path)


@dataclass
class AudioScan:
    """One pass over a file: its :class:`AudioInfo` and peaks (per channel, of the mono
    down-mix), for checks before separating."""

    info: AudioInfo
    channel_peaks: np.ndarray
    mix_peak: float
    mix_level_db: float = float("-inf")

    @property
    def silent(self) -> bool:
        return float(self.channel_peaks.max()) == 0.0

    @property
    def downmix_cancels(self) -> bool:
        """The channels cancel in the mono down-mix (anti-phase): it is > 40 dB below them."""
        return not self.silent and self.mix_peak < 0.01 * float(self.channel_peaks.max())


def scan_audio(path: str | os.PathLike, *, block_frames: int = BLOCK_FRAMES) -> AudioScan:
    """Read ``path`` once in blocks (no full copy in memory): info, peaks, and the same
    checks and one-line errors as :func:`read_audio`."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such audio file")
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:
        raise AudioFileError(f"{path}: not a readable audio file ({one_line(e)})") from None
    with f:
        info = AudioInfo(int(f.samplerate), int(f.channels), int(f.frames), str(f.format),
                         str(f.subtype))
        peaks, mix_peak, done = np.zeros(info.channels), 0.0, 0
        meter = LevelMeter(info.sr)
        try:
            for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                _check_finite(block, path, info.sr, done)
                peaks = np.maximum(peaks, np.abs(block).max(axis=0))
                mix = block.mean(axis=1)
                mix_peak = max(mix_peak, float(np.abs(mix).max()))
                meter.add(mix)
                done += block.shape[0]
        except AudioFileError:
            raise
        except Exception as e:
            raise AudioFileError(f"{path}: audio data unreadable after {done / info.sr:.2f} s"
                                 f" ({one_line(e)})") from None
    if done == 0:
        raise AudioFileError(f"{path}: audio file holds no samples")
    info.frames = done
    return AudioScan(info, peaks, mix_peak, meter.db())


class LevelMeter:
    """Gated level in dBFS of a mono signal fed block by block (flat memory).

    BS.1770-style gating without K-weighting, as the corpus renderer measures its stems
    (``corpus.render.loudness_db``): mean squares of 400 ms windows every 100 ms, an absolute
    gate at -70 dBFS, then a relative gate 10 dB below the mean of what is left. The windows are
    built from 100 ms sub-blocks, so feeding a signal in any block sizes gives the same result.
    Used by ``separate_clip`` / ``guitarsep separate`` to bring every input to the level the
    networks were trained at (03_evaluate, 05_listen, the CLI). ``-inf`` for silence.
    """

    def __init__(self, sr: int):
        self.sub = max(1, int(round(0.1 * sr)))
        self._energy: list[float] = []
        self._rest = np.zeros(0, np.float64)

    def add(self, block: np.ndarray) -> None:
        """Feed the next samples ``(k,)``."""
        x = np.concatenate([self._rest, np.asarray(block, np.float64).reshape(-1)])
        n_full = len(x) // self.sub
        if n_full:
            e = np.square(x[:n_full * self.sub]).reshape(n_full, self.sub).sum(axis=1)
            self._energy.extend(e.tolist())
        self._rest = x[n_full * self.sub:]

    def db(self) -> float:
        """The gated level of everything fed so far."""
        e = np.asarray(self._energy)
        if len(e) < 4:
            n = len(e) * self.sub + len(self._rest)
            p = np.array([(e.sum() + np.square(self._rest).sum()) / n]) if n else np.zeros(1)
        else:
            p = (e[:-3] + e[1:-2] + e[2:-1] + e[3:]) / (4 * self.sub)
        p = p[p > 1e-7]                                     # absolute gate, -70 dBFS
        if not len(p):
            return float("-inf")
        p = p[p > np.mean(p) * 0.1]                         # relative gate, -10 dB
        return float(10 * np.log10(np.mean(p)))


def gated_level_db(x: np.ndarray, sr: int) -> float:
    """:class:`LevelMeter` level of a whole mono signal ``(n,)`` in dBFS."""
    meter = LevelMeter(sr)
    meter.add(x)
    return meter.db()


def _check_finite(block: np.ndarray, path: Path, sr: int, offset: int) -> None:
    bad = ~np.isfinite(block)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0]) + offset
        raise AudioFileError(f"{path}: NaN or infinite sample at {i / sr:.3f} s (frame {i})")


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------
def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The parent folder is created; on an exception the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_between_markers(path: str | os.PathLike, markers: tuple[str, str], body: str) -> Path:
    """Replace what stands between the two ``markers`` of the text file ``path`` with
    ``body`` (the generated tables of docs/ablations.md: ``scripts/ablations.py``,
    ``scripts/nmf_dev.py``); the rest of the file stays as written by hand."""
    text = Path(path).read_text()
    start, end = text.index(markers[0]) + len(markers[0]), text.index(markers[1])
    return write_text_atomic(path, text[:start] + "\n" + body + "\n" + text[end:])


def run_doc_table(argv, description: str, compute, table, csv_path: Path,
                  markers: tuple[str, str]):
    """The command line of the scripts that write a table of docs/ablations.md
    (``scripts/nmf_dev.py``, ``nmf_diagnose.py``, ``nmf_ceiling.py``, ``oof_unison.py``,
    ``oof_target_only.py``, ``align_guard_dev.py``, ``onset_refine_dev.py``):
    ``compute()`` gives the per-clip table (a DataFrame), written to ``csv_path``;
    ``table(scores)`` its markdown lines, written between ``markers`` of ``--doc``
    (docs/ablations.md) and printed with the wall time. Returns the per-clip table."""
    import argparse
    import time

    ap = argparse.ArgumentParser(description=description.splitlines()[0])
    ap.add_argument("--doc", type=Path, default=Path("docs/ablations.md"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    scores = compute()
    with atomic_path(csv_path) as tmp:
        scores.to_csv(tmp, index=False, float_format="%.4f")
    lines = table(scores)
    write_between_markers(args.doc, markers, "\n".join(lines))
    print("\n".join(lines))
    print(f"wall {time.perf_counter() - t0:.0f} s")
    return scores


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """JSON (indent 2, sorted keys, ``str`` for anything else) written atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_npy_atomic(path: str | os.PathLike, arr: np.ndarray | None = None, **arrays) -> Path:
    """``np.save(arr)``, or ``np.savez(**arrays)`` when named arrays are given, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if arrays:
            np.savez(f, **arrays)
        else:
            np.save(f, arr)
    return Path(path)


def save_torch_atomic(obj, path: str | os.PathLike) -> Path:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None, *,
                             recursive: bool = True, keep_running: bool = False) -> int:
    """Delete the temporary files of :func:`atomic_path` (``.<name>.tmp<pid>``) that killed
    runs left in ``folder`` (and its subfolders when ``recursive``); ``name`` None: of any
    file. ``keep_running``: keep those whose process still runs (another writer of the same
    output; where process ids cannot be asked, POSIX only, nothing is deleted). Returns how
    many were removed."""
    n = 0
    for p in (Path(folder).rglob(".*") if recursive else Path(folder).glob(".*")):
        stem, sep, pid = p.name.rpartition(".tmp")
        if not sep or not pid.isdigit() or (name is not None and stem != f".{name}"):
            continue
        if keep_running and (int(pid) == os.getpid() or _process_running(int(pid))):
            continue
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def _process_running(pid: int) -> bool:
    if os.name != "posix":        # no safe way to ask whether a process id is alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True               # someone else's process (or a nonsense id: leave it)
    return True


# --------------------------------------------------------------------------------------------
# hashing
# --------------------------------------------------------------------------------------------
def sha256_hex(data: bytes | str | os.PathLike, n: int | None = None) -> str:
    """sha256 hex digest of ``data`` (bytes, or the bytes of the file at a path), cut to
    ``n`` characters when given."""
    if not isinstance(data, bytes):
        data = Path(data).read_bytes()
    return hashlib.sha256(data).hexdigest()[:n]


def json_hash(obj, n: int = 12) -> str:
    """Short stable hash of a JSON-able object (sorted keys, ``str`` for anything else)."""
    return sha256_hex(json.dumps(obj, sort_keys=True, default=str).encode(), n)
