"""Separation of a recording of any length and channel count, block by block, in flat memory.

Used by ``guitarsep separate`` (:mod:`guitarsep.app.separate_file`) and the Python API
(:class:`guitarsep.app.separator.Separator`). The evaluation path (a clip in memory, mono) is
:func:`guitarsep.separation.separate.separate_clip`; both share the chunk layout
(:mod:`guitarsep.separation.chunking`), the score masks and the Wiener filter.

Decisions:

* **Blocks at the input rate.** The recording is read in blocks (a core of ``chunk_s`` seconds
  with context on both sides), each block is resampled to the model's rate, separated, and
  resampled back; the cores are joined with a raised-cosine cross-fade. Block starts lie on a
  *granule*: a multiple of the input samples after which both the resampler's phase and the
  model's STFT hop grid repeat, so a block sees exactly the samples and frames of the whole
  recording (away from its edges, which lie in the discarded context). Memory depends on
  ``chunk_s``, not on the length of the recording.
* **Channels.** The network is mono: it sees the down-mix (channel mean) and gives a target
  magnitude ``est``. With one channel (or ``mono=True``, which down-mixes first) the mixture
  STFT is Wiener-filtered as in the evaluation. With several channels, the network's mask
  ``min(est / |X_mix|, 1)`` is applied to each channel's magnitude (target ``m |X_c|``,
  other ``(1 - m) |X_c|``) and the channels go through norbert's multichannel Wiener filter
  (one EM iteration, as Open-Unmix does), which estimates each source's spatial covariance.
* **The other guitar** is ``mixture - target`` in the time domain, so target + other equals the
  input to float precision.
* **Level.** norbert regularises after scaling by the input's peak: one scale for the whole
  recording (from the peaks the caller measured in a first pass), so blocks agree.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from guitarsep.config import MaskParams, StftSetting
from guitarsep.io import fix_length, resample
from guitarsep.models.frontend import Spectrogram, istft
from guitarsep.score.tuning import EXCERPT_S, tuned
from guitarsep.separation.chunking import ChunkPlan, overlap_add, plan_chunks
from guitarsep.separation.separate import (CHUNK_S, CONTEXT_S, OVERLAP_S, Segment,
                                           input_gain, segment_magnitude, wiener_target)

__all__ = ["ArraySource", "FileSource", "stream_separate", "block_plan", "granule"]


class ArraySource:
    """Audio held in memory: ``x`` of shape ``(n,)`` or ``(n, channels)`` at ``sr``."""

    def __init__(self, x: np.ndarray, sr: int):
        x = np.asarray(x, dtype=np.float32)
        self.x = x[:, None] if x.ndim == 1 else x
        self.sr, self.frames, self.channels = int(sr), self.x.shape[0], self.x.shape[1]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.x[start:stop]


class FileSource:
    """An open ``soundfile.SoundFile``: blocks are read on demand (``(k, channels)``)."""

    def __init__(self, f, frames: int):
        self.f, self.sr, self.channels = f, int(f.samplerate), int(f.channels)
        self.frames = int(frames)

    def read(self, start: int, stop: int) -> np.ndarray:
        self.f.seek(start)
        return self.f.read(stop - start, dtype="float32", always_2d=True)


def granule(sr: int, setting: StftSetting) -> int:
    """Input samples after which the resampler's phase and the model's hop grid repeat."""
    g = math.gcd(int(sr), int(setting.sr))
    per_model = setting.sr // g                 # model samples per period of sr // g inputs
    return (sr // g) * (setting.hop // math.gcd(setting.hop, per_model))


def block_plan(n: int, sr: int, setting: StftSetting, chunk_s: float | None,
               overlap_s: float = OVERLAP_S, context_s: float = CONTEXT_S) -> ChunkPlan:
    """Blocks (input samples) of a recording of ``n`` samples at ``sr``: cores and context
    are whole granules (a hop at the input rate when a granule is longer than half a core)."""
    unit = granule(sr, setting)
    if chunk_s is not None and unit > chunk_s * sr / 2:
        unit = max(1, round(setting.hop * sr / setting.sr))   # grid kept to within a sample
    fade = max(1, round(overlap_s * sr))
    core = None if chunk_s is None else max(1, round(chunk_s * sr / unit)) * unit
    ctx = math.ceil((fade // 2 + context_s * sr + setting.n_fft * sr / setting.sr) / unit) * unit
    return plan_chunks(n, core=core, fade=fade, context=ctx)


@dataclass
class _Block:
    """What one block's separation needs (shared by every block of a recording)."""

    model: torch.nn.Module
    target_notes: object
    accomp_notes: object
    setting: StftSetting
    params: MaskParams
    device: str | torch.device
    sr: int
    scale: float
    gain: float
    spec: Spectrogram

    def segment(self, start_in: int, n_model: int) -> Segment:
        """The block as a segment of the recording on the model's sample grid."""
        start = round(start_in * self.setting.sr / self.sr)
        return Segment(start, start + n_model, self.setting.sr, self.setting.hop)

    def separate(self, x: np.ndarray, start_in: int) -> np.ndarray:
        """Target ``(k, C)`` at the input rate for the block ``x (k, C)`` starting at
        ``start_in`` (input samples)."""
        st, pad = self.setting, self.setting.n_fft
        z = np.pad(resample(x, self.sr, st.sr).T, ((0, 0), (0, pad)))    # (C, n) model rate
        zm = z[0] if z.shape[0] == 1 else z.mean(axis=0)
        Xm = self.spec(torch.from_numpy(np.ascontiguousarray(zm))[None])   # (1, T, F)
        est = segment_magnitude(self.model, Xm, self.target_notes, self.accomp_notes,
                                self.segment(start_in, zm.shape[0]), st, self.params,
                                gain=self.gain, device=self.device)
        if z.shape[0] == 1:
            Y = wiener_target(Xm[0].numpy(), est.astype(np.float64), 1, scale=self.scale)[None]
        else:
            Y = _wiener_channels(self.spec(torch.from_numpy(z)).numpy(), Xm[0].numpy(), est,
                                 self.scale)
        y = istft(torch.from_numpy(Y), st, None).numpy()                  # (C, ~n)
        y = fix_length(y, z.shape[1])[:, :z.shape[1] - pad]
        return fix_length(resample(np.ascontiguousarray(y.T), st.sr, self.sr).T, x.shape[0]).T


def _wiener_channels(X: np.ndarray, X_mix: np.ndarray, est: np.ndarray, scale: float
                     ) -> np.ndarray:
    """Target STFT ``(C, T, F)`` from the channels' STFT ``X (C, T, F)``: the network's mask
    on the down-mix ``X_mix (T, F)``, applied to each channel, then the multichannel Wiener
    filter of norbert (``norbert.wiener(v, x, iterations=1, use_softmask=False)``: target
    and other, one EM iteration, run by :func:`_em_step_stereo` for two channels, by
    :func:`_em_step` otherwise). In single precision, as Open-Unmix filters: half the memory
    and time of double precision."""
    mix_mag = np.abs(X_mix)
    mask = np.clip(np.divide(est, mix_mag, out=np.zeros_like(mix_mag), where=mix_mag > 0),
                   0.0, 1.0).astype(np.float32)[..., None]
    x = np.moveaxis(X, 0, -1).astype(np.complex64) * np.float32(scale)     # (T, F, C)
    if x.shape[-1] == 2:    # norbert's max_abs rescale below is 1 here: `scale` set the level
        return np.moveaxis(_em_step_stereo(mask[..., 0], x), -1, 0) / scale
    mag = np.abs(x)
    # norbert's start: each source's magnitude with the mixture's phase (x / |x| is
    # exp(1j * angle(x)), 0 where x is 0)
    phase = np.divide(x, mag, out=np.zeros_like(x), where=mag > 0)
    sources = [mask * x, phase * ((1.0 - mask) * mag)]                    # target, other
    max_abs = max(1.0, float(mag.max()) / 10.0)          # norbert's rescale (1 after `scale`)
    if max_abs > 1.0:
        sources, x = [s / max_abs for s in sources], x / max_abs
    y = _em_step(sources, x) * max_abs
    return np.moveaxis(y, -1, 0) / scale


def _em_step(sources: list[np.ndarray], x: np.ndarray, frames: int = 64) -> np.ndarray:
    """The first source's estimate after one iteration of ``norbert.expectation_maximization``
    (sources ``(T, F, C)`` each, mixture ``x (T, F, C)``), made of norbert's own functions
    but over batches of ``frames`` frames instead of one frame at a time, and filtering only
    the source we keep: the same equations (equal to float rounding), several times faster,
    because norbert's Python loop over single frames dominates its cost."""
    with warnings.catch_warnings():     # norbert.contrib imports a deprecated scipy path
        warnings.simplefilter("ignore", DeprecationWarning)
        import norbert

    eps = np.finfo(np.real(x[0]).dtype).eps
    n_frames, n_bins, n_channels = x.shape
    batches = [slice(t0, t0 + frames) for t0 in range(0, n_frames, frames)]
    v = [np.mean(np.abs(s) ** 2, axis=2) for s in sources]                # (T, F) each
    R = np.stack([sum(norbert._covariance(s[sl]).sum(axis=0) for sl in batches)
                  / (eps + vj.sum(axis=0))[..., None, None]                # get_local_
                  for s, vj in zip(sources, v)], axis=-1)                   # gaussian_model
    v = np.stack(v, axis=-1)                                                # (T, F, J)
    reg = np.sqrt(eps) * np.tile(np.eye(n_channels, dtype=np.complex64), (1, n_bins, 1, 1))
    out = np.empty_like(x)
    for sl in batches:
        inv_cxx = norbert._invert(norbert.get_mix_model(v[sl], R) + reg, eps)
        out[sl] = norbert.apply_filter(x[sl], norbert.wiener_gain(v[sl, ..., 0], R[..., 0],
                                                                  inv_cxx))
    return out


def _em_step_stereo(mask: np.ndarray, x: np.ndarray, frames: int = 256) -> np.ndarray:
    """What :func:`_wiener_channels` computes for two channels, with the sources ``mask * x``
    and ``(1 - mask) * x`` (``mask (T, F)`` float32, ``x (T, F, 2)`` complex64), in closed
    form: norbert's one EM iteration (empirical spatial covariances ``A``, ``B`` of target
    and other, mixture model ``C = v_t A + v_o B + reg I``, gain ``v_t A C^-1``) with the
    2 x 2 algebra done by hand. ``A adj(C)`` and ``det(C)`` are polynomials in the two
    power spectra whose coefficients depend on the frequency only, so each bin costs a few
    real operations and four complex products (equal to norbert to float rounding;
    ``tests/test_separate.py``), where the generic path builds ``(T, F, 2, 2)`` arrays."""
    eps = np.finfo(np.float32).eps
    batches = [slice(t0, t0 + frames) for t0 in range(0, x.shape[0], frames)]
    # (T, F) temporaries only per batch: whole-chunk ones cost more in page faults than in
    # arithmetic (measured in `guitarsep separate`)
    sums = np.zeros((2, 4, x.shape[1]), dtype=np.complex64)     # per source: v, r11, r12, r22
    for sl in batches:
        p0, p1 = np.abs(x[sl, :, 0]) ** 2, np.abs(x[sl, :, 1]) ** 2
        cross = x[sl, :, 0] * np.conj(x[sl, :, 1])
        for j, m in enumerate((mask[sl], 1.0 - mask[sl])):
            m2 = m * m
            sums[j, 0] += (m2 * (0.5 * (p0 + p1))).sum(axis=0)
            sums[j, 1] += (m2 * p0).sum(axis=0)
            sums[j, 2] += (m2 * cross).sum(axis=0)
            sums[j, 3] += (m2 * p1).sum(axis=0)
    cov = sums[:, 1:] / (eps + sums[:, :1].real)                            # (2, 3, F)
    (a11, a12, a22), (b11, b12, b22) = ((c[0].real, c[1], c[2].real) for c in cov)
    reg = float(np.sqrt(eps))
    ab = (a12 * np.conj(b12)).real
    det_tt, det_oo = a11 * a22 - np.abs(a12) ** 2, b11 * b22 - np.abs(b12) ** 2
    det_to = a11 * b22 + b11 * a22 - 2.0 * ab
    k11, k12 = a11 * b22 - a12 * np.conj(b12), a12 * b11 - a11 * b12
    k21, k22 = np.conj(a12) * b22 - a22 * np.conj(b12), a22 * b11 - np.conj(a12) * b12
    out = np.empty_like(x)
    for sl in batches:
        px = 0.5 * (np.abs(x[sl, :, 0]) ** 2 + np.abs(x[sl, :, 1]) ** 2)
        w0, w1 = mask[sl] ** 2 * px, (1.0 - mask[sl]) ** 2 * px             # v_target, v_other
        det = (w0 * w0 * det_tt + w1 * w1 * det_oo + w0 * w1 * det_to
               + reg * (w0 * (a11 + a22) + w1 * (b11 + b22)) + reg * reg)
        gain = w0 / det
        x0, x1 = x[sl, :, 0], x[sl, :, 1]
        g11 = w0 * det_tt + w1 * k11 + reg * a11                            # A adj(C)
        g22 = w0 * det_tt + w1 * k22 + reg * a22
        g12, g21 = w1 * k12 + reg * a12, w1 * k21 + reg * np.conj(a12)
        out[sl, :, 0] = gain * (g11 * x0 + g12 * x1)
        out[sl, :, 1] = gain * (g21 * x0 + g22 * x1)
    return out


def stream_separate(source, model: torch.nn.Module, target_notes, accomp_notes,
                    setting: StftSetting, *, peak: float, level_db: float,
                    mask_params: MaskParams,
                    device: str | torch.device = "cpu", chunk_s: float | None = CHUNK_S,
                    mono: bool = False,
                    on_chunk: Callable[[int, int], None] | None = None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(target, other)`` pieces ``(k, C)`` (float32, ``C = 1`` when ``mono``) that
    cover the recording in order; ``target + other`` = the (down-mixed) input.

    ``source``: :class:`ArraySource` or :class:`FileSource`. ``peak``: the largest absolute
    sample of the recording (any channel), for the one Wiener scale of every block;
    ``level_db``: the gated level of its mono down-mix (``io.LevelMeter``), which sets the one
    network input gain of every block (``separate.input_gain``).
    """
    was_training = model.training
    model.to(device).eval()
    scale = 10.0 / (peak * setting.n_fft / 2) if peak > 0 else 1.0
    if getattr(model, "score_kind", None) == "notes":   # the NMF (score.tuning); from the start
        start = source.read(0, min(source.frames, int(EXCERPT_S * source.sr))).mean(axis=1)
        mask_params = tuned(mask_params, start, source.sr, target_notes, accomp_notes)
    block = _Block(model, target_notes, accomp_notes, setting, mask_params, device, source.sr,
                   scale, input_gain(level_db), Spectrogram(setting))

    def read(a: int, b: int) -> np.ndarray:
        x = source.read(a, b)
        return x.mean(axis=1, keepdims=True, dtype=np.float32) if mono else x

    try:
        plan = block_plan(source.frames, source.sr, setting, chunk_s)
        for start, target in overlap_add(plan, lambda a, b: block.separate(read(a, b), a),
                                         on_chunk):
            target = target.astype(np.float32)
            yield target, read(start, start + len(target)) - target
    finally:
        model.train(was_training)
