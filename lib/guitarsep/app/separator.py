"""The Python API for separating recordings: ``Separator`` (``guitarsep separate`` is built on it).

    >>> from guitarsep.app.separator import Separator
    >>> sep = Separator("si_umx_soft", device="cpu")          # or a path, or a LoadedModel
    >>> target, other = sep.separate(audio, 48000, "song.mid", part="Lead")

``audio`` is a numpy array or a torch tensor, ``(n,)`` (mono) or ``(n, channels)`` (samples
first, as soundfile reads it), at any sample rate; ``score`` / ``accomp`` are
:class:`~guitarsep.score.Notes` or score files (MIDI, MusicXML, Guitar Pro, text) with ``part``
/ ``accomp_part``. It returns the target guitar and the other guitar in the input's type, shape
and sample rate (stereo stays stereo unless ``mono=True``; more than two channels are
down-mixed), with ``target + other == audio`` to float precision. Errors are the CLI's:
:class:`~guitarsep.app.separate_file.SeparationError`, one line. Used by the CLI
(:mod:`guitarsep.app.separate_file`) and by users' own scripts and notebooks.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from guitarsep.app.separate_file import SeparationError, load_model, load_score
from guitarsep.io import gated_level_db
from guitarsep.models.checkpoint import LoadedModel
from guitarsep.parallel import torch_threads
from guitarsep.score import Notes

__all__ = ["Separator"]

MAX_CHANNELS = 2          # more channels are down-mixed to mono


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


def _as_samples(audio) -> tuple[np.ndarray, bool]:
    """``(float32 (n, C) array, whether the input was a torch tensor)``."""
    is_torch = type(audio).__module__.startswith("torch")
    x = audio.detach().cpu().numpy() if is_torch else audio
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (1, 2) or x.size == 0:
        raise SeparationError(f"audio: expected (n,) or (n, channels) samples, got shape "
                              f"{x.shape}")
    x = x[:, None] if x.ndim == 1 else x
    if x.shape[1] > x.shape[0]:
        raise SeparationError(f"audio: shape {x.shape} has more channels than samples; pass "
                              f"(n, channels), samples first")
    if not np.isfinite(x).all():
        raise SeparationError("audio: NaN or infinite samples")
    return x, is_torch


class Separator:
    """A loaded model and how to run it: ``separate`` arrays, or ``stream`` a long source.

    Args:
        model: a shipped model name, a model file / training checkpoint / run folder, or a
            :class:`~guitarsep.models.checkpoint.LoadedModel` (default ``score_nmf``).
        device: torch device of the network.
        chunk_s: seconds per block (memory grows with it, not with the recording).
        threads: torch intra-op threads during a call (None: unchanged).
    """

    def __init__(self, model: str | os.PathLike | LoadedModel | None = None,
                 device: str = "cpu", *, chunk_s: float | None = 30.0,
                 threads: int | None = None):
        self.model = model if isinstance(model, LoadedModel) else load_model(model, device)
        self.device, self.chunk_s, self.threads = device, chunk_s, threads

    def notes(self, score, part=None, accomp=None, accomp_part=None
              ) -> tuple[Notes, Notes | None, str]:
        """``(target, accompaniment or None, its description)`` from Notes or score files
        (a score file's other parts are the accompaniment when none is given)."""
        if isinstance(score, Notes):
            if accomp is None or isinstance(accomp, Notes):
                return score, accomp, "given" if accomp is not None else "none"
            _, acc, desc = load_score(accomp, accomp_part)
            return score, acc, desc
        if isinstance(accomp, Notes):
            return load_score(score, part)[0], accomp, "given"
        return load_score(score, part, accomp, accomp_part)

    def stream(self, source, target: Notes, accomp: Notes | None, *, peak: float,
               level_db: float, mono: bool = False, progress: bool | None = False, desc: str = "separating",
               mask_params=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(target, other)`` pieces ``(k, C)`` of a
        :class:`~guitarsep.separation.stream.ArraySource` / ``FileSource``, in order."""
        from guitarsep.separation.stream import stream_separate

        lm = self.model
        with torch_threads(self.threads), _chunk_progress(desc, progress) as on_chunk:
            for t, o in stream_separate(
                    source, lm.model, target, accomp if accomp is not None else Notes.empty(),
                    lm.setting, peak=peak, level_db=level_db, mask_params=mask_params or lm.mask,
                    device=self.device, chunk_s=self.chunk_s,
                    mono=mono or source.channels > MAX_CHANNELS, on_chunk=on_chunk):
                if not np.isfinite(t).all():
                    raise SeparationError(f"{lm.path}: the model produced non-finite output")
                yield t, o

    def separate(self, audio, sr: int, score, accomp=None, *, part=None, accomp_part=None,
                 align: bool = False, refine_onsets: bool = False, mono: bool = False,
                 progress: bool | None = False, mask_params=None):
        """``(target, other)`` for ``audio`` (see the module docstring). ``align``: DTW-align
        the score first (kept only where it explains the recording better);
        ``refine_onsets``: then move each note to its pitch's nearest onset in the recording
        (:mod:`guitarsep.score.onsets`)."""
        from guitarsep.separation.stream import ArraySource

        x, is_torch = _as_samples(audio)
        target, acc, _ = self.notes(score, part, accomp, accomp_part)
        if align:
            from guitarsep.separation.score_fit import align_checked

            with _user_alignment_errors():
                (target, acc), _, _ = align_checked(
                    target, acc if acc is not None else Notes.empty(), x.mean(axis=1),
                    int(sr), mask=mask_params or self.model.mask)
        if refine_onsets:
            from guitarsep.score.onsets import refine_score

            target, acc, _ = refine_score(target, acc, x.mean(axis=1), int(sr),
                                          mask=mask_params or self.model.mask)
        pieces = list(self.stream(ArraySource(x, sr), target, acc, peak=float(np.abs(x).max()),
                                  level_db=gated_level_db(x.mean(axis=1), int(sr)), mono=mono, progress=progress, mask_params=mask_params))
        out = [np.concatenate([p[k] for p in pieces]) for k in (0, 1)]
        if out[0].shape[1] == 1 and (np.ndim(audio) == 1 or mono or x.shape[1] > 1):
            out = [y[:, 0] for y in out]          # mono in, --mono, or down-mixed: (n,)
        if is_torch:
            import torch
            out = [torch.from_numpy(np.ascontiguousarray(y)) for y in out]
        return out[0], out[1]


@contextmanager
def _user_alignment_errors() -> Iterator[None]:
    try:
        yield
    except ValueError as e:
        raise SeparationError(f"alignment failed ({' '.join(str(e).split())})") from None
