"""Score masks: the harmonic-comb mask of a part and the soft mask of a target/accompaniment pair.

Used by ``01_data.ipynb`` (:func:`score_masks` drawn over a spectrogram), training
(``guitarsep.training.data``: :func:`binary_score_mask` once per (piece, part), cached; the
network input is then built per batch by :func:`guitarsep.models.frontend.score_pair`, which
calls :func:`soft_score_mask`), separation (``guitarsep.separation.separate``: the binary masks
of a chunk's two parts, then ``score_pair``) and the listening widgets / demo page
(:func:`binary_score_mask` drawn over a spectrogram).

The masks follow ``docs/method.md#score-mask``: a harmonic comb of ``params.n_harmonics``
harmonics, ``±params.cents`` wide, over the frames a note sounds in, extended by the onset /
offset tolerances; the binary mask is ``M_t``, the soft mask ``M_t / (M_t + M_a)`` (0 where
both are 0). Decisions the method leaves open:

- **Frames**: frame ``t`` is centred at ``t * hop / sr`` (``center=True``); a note marks every
  frame whose centre lies in ``[onset - onset_tol, offset + max(offset_tol, fermata)]`` (both
  ends included), the release cut where the next note of the same pitch begins (never before
  the note's own offset).
- **Bins**: a harmonic marks the bins whose centre lies within ``±cents`` of it; when no bin
  centre does (low notes at a coarse resolution), the single nearest bin.
- **Soft mask**: one implementation, :func:`soft_score_mask`, for numpy arrays and torch
  tensors; float32 (a floating torch target keeps its dtype).

Details in the docstrings of :func:`binary_score_mask` and :func:`soft_score_mask`. The module
imports no torch (the corpus and the data notebook stay torch-free): a tensor can only come
from a caller that already imported it.
"""
from __future__ import annotations

import functools
import sys

import numpy as np

from guitarsep.config import MaskParams
from guitarsep.score.notes import Notes

__all__ = ["binary_score_mask", "pitch_activity", "soft_score_mask", "score_masks",
           "frames_in_spans"]


def binary_score_mask(notes: Notes, n_frames: int, *, sr: int, n_fft: int, hop: int,
                      params: MaskParams = MaskParams()) -> np.ndarray:
    """Harmonic-comb score mask of one part: bool ``(n_frames, n_fft // 2 + 1)``.

    Frames (``torch.stft(center=True)``): frame ``t`` is centred at ``t * hop / sr`` s. A note
    is active in every frame whose centre lies in ``[onset - onset_tol, end]`` (both ends
    included) with ``end = offset + max(offset_tol, fermata)``, except that the release
    extension stops where the next note of the same pitch begins: ``end`` is lowered to that
    note's ``onset - onset_tol``, but never below the note's own ``offset``.

    Bins: for each harmonic ``k = 1..n_harmonics`` with ``f_k = k * a4_hz * 2**((pitch -
    69) / 12)`` below Nyquist (``f_k < sr / 2``), the bins ``b`` whose centre ``b * sr / n_fft``
    lies in ``[f_k * 2**(-cents/1200), f_k * 2**(cents/1200)]`` are set. Decision: when that
    interval holds no bin centre (low notes at a coarse resolution: ±30 cents is ±1.4 Hz at
    E2, while the low_res bins are 8 Hz apart), the single bin nearest to ``f_k`` is set
    instead, so that every harmonic below Nyquist marks at least one bin.

    Cost: the comb of each pitch is built once per (sr, n_fft, params) and cached; activity is
    a frame x pitch table built with a cumulative sum over frames, and the mask is that table
    times the combs (one matrix product), so there is no Python loop over notes, frames or bins.
    """
    n_bins = n_fft // 2 + 1
    if len(notes) == 0 or n_frames <= 0:
        return np.zeros((max(n_frames, 0), n_bins), dtype=bool)
    pitches, pitch_idx = np.unique(notes.pitch, return_inverse=True)
    active = _pitch_activity(notes, pitch_idx, len(pitches), n_frames, sr=sr, hop=hop,
                             params=params)
    combs = _harmonic_combs(sr, n_fft, params)[pitches]           # (n_pitches, n_bins)
    # float32 products of 0/1 values are exact counts: > 0 is a logical OR over pitches
    return (active.astype(np.float32) @ combs.astype(np.float32)) > 0


def _note_spans(notes: Notes, params: MaskParams) -> tuple[np.ndarray, np.ndarray]:
    """Per note, the time span ``[start, end]`` (seconds) in which it marks the mask."""
    start = notes.onset - params.onset_tol
    end = notes.offset + max(params.offset_tol, params.fermata)
    # next onset of the same pitch: order by (pitch, onset) so it is the next row
    order = np.lexsort((notes.onset, notes.pitch))
    same = notes.pitch[order][1:] == notes.pitch[order][:-1]
    next_onset = np.full(len(notes), np.inf)
    next_onset[order[:-1][same]] = notes.onset[order][1:][same]
    cut = np.maximum(next_onset - params.onset_tol, notes.offset)
    return start, np.minimum(end, cut)


def _pitch_activity(notes: Notes, pitch_idx: np.ndarray, n_pitches: int, n_frames: int, *,
                    sr: int, hop: int, params: MaskParams) -> np.ndarray:
    """Bool ``(n_frames, n_pitches)``: which pitch (column ``pitch_idx``) sounds in which frame."""
    start, end = _note_spans(notes, params)
    return frames_in_spans(start, end, pitch_idx, n_pitches, n_frames, sr=sr, hop=hop)


def frames_in_spans(start: np.ndarray, end: np.ndarray, column: np.ndarray, n_columns: int,
                    n_frames: int, *, sr: int, hop: int) -> np.ndarray:
    """Bool ``(n_frames, n_columns)``: frame ``t`` (centred at ``t * hop / sr``) is True in
    column ``column[i]`` when it lies in the span ``[start[i], end[i]]`` (seconds) of any
    ``i``. Used by the score masks and ``separation.score_nmf`` (its attack components)."""
    centres = np.arange(n_frames) * hop / sr
    # searchsorted on the frame centres applies the inclusive [start, end] test exactly
    first = np.searchsorted(centres, start, side="left")
    last = np.searchsorted(centres, end, side="right")            # one past the last frame
    keep = first < last
    # +1 at the first frame, -1 one past the last, cumulative sum over frames = overlap count
    delta = np.zeros((n_frames + 1, n_columns), dtype=np.int32)
    np.add.at(delta, (first[keep], column[keep]), 1)
    np.add.at(delta, (last[keep], column[keep]), -1)
    return np.cumsum(delta[:-1], axis=0) > 0


def pitch_activity(notes: Notes, n_frames: int, *, sr: int, hop: int,
                   params: MaskParams = MaskParams()) -> tuple[np.ndarray, np.ndarray]:
    """``(pitches, active)``: the part's distinct MIDI pitches ``(P,)`` and bool ``(n_frames,
    P)``, which pitch sounds in which frame, with the tolerances of :func:`binary_score_mask`.
    Used by ``separation.score_nmf`` (its activation constraints)."""
    if len(notes) == 0 or n_frames <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros((max(n_frames, 0), 0), dtype=bool)
    pitches, pitch_idx = np.unique(notes.pitch, return_inverse=True)
    return pitches, _pitch_activity(notes, pitch_idx, len(pitches), n_frames, sr=sr, hop=hop,
                                    params=params)


@functools.lru_cache(maxsize=16)
def _harmonic_combs(sr: int, n_fft: int, params: MaskParams) -> np.ndarray:
    """Bool ``(128, n_fft // 2 + 1)``: the bins of each MIDI pitch's harmonic comb.

    Cached (read-only) because it depends only on the STFT and the mask parameters.
    """
    n_bins = n_fft // 2 + 1
    freqs = np.arange(n_bins) * sr / n_fft                          # bin centres, Hz
    k = np.arange(1, params.n_harmonics + 1)
    f0 = params.a4_hz * 2.0 ** ((np.arange(128) - 69) / 12.0)
    fk = f0[:, None] * k[None, :]                                   # (128, n_harmonics)
    width = 2.0 ** (params.cents / 1200.0)
    lo = np.searchsorted(freqs, fk / width, side="left")           # first bin >= lower edge
    hi = np.searchsorted(freqs, fk * width, side="right")          # one past last bin <= upper
    nearest = np.minimum(np.rint(fk * n_fft / sr).astype(np.int64), n_bins - 1)
    empty = lo >= hi
    lo = np.where(empty, nearest, lo)
    hi = np.where(empty, nearest + 1, hi)
    below_nyquist = fk < sr / 2
    rows = np.broadcast_to(np.arange(128)[:, None], fk.shape)[below_nyquist]
    delta = np.zeros((128, n_bins + 1), dtype=np.int32)
    np.add.at(delta, (rows, lo[below_nyquist]), 1)
    np.add.at(delta, (rows, hi[below_nyquist]), -1)
    combs = np.cumsum(delta[:, :-1], axis=1) > 0
    combs.flags.writeable = False
    return combs


def soft_score_mask(m_target, m_accomp):
    """Soft score mask ``M_t / (M_t + M_a)``, 0 where both are 0.

    Inputs of the same shape (numpy: broadcastable), bool or numeric:

    - numpy arrays (or array-likes) give a float32 numpy array. Two bool arrays of the same
      shape take a fast path: the ratio is 1 (target only) or 1/2 (both), stored directly.
    - torch tensors (any shape, e.g. ``(batch, frames, bins)``, any device) give a tensor of
      ``m_target``'s dtype if it is floating, else float32 (``m_accomp`` is converted to it):
      ``where(den > 0, m_t / den.clamp_min(tiny), 0)`` with ``den = m_t + m_a``.

    Used by :func:`score_masks` and by :func:`guitarsep.models.frontend.score_input`, the score
    input of every soft-mask model in training and separation. torch is not imported here.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(m_target, torch.Tensor):
        dtype = m_target.dtype if m_target.is_floating_point() else torch.float32
        mt, ma = m_target.to(dtype), m_accomp.to(dtype)
        den = mt + ma
        return torch.where(den > 0, mt / den.clamp_min(torch.finfo(dtype).tiny),
                           torch.zeros_like(mt))
    if (isinstance(m_target, np.ndarray) and isinstance(m_accomp, np.ndarray)
            and m_target.dtype == bool and m_accomp.dtype == bool
            and m_target.shape == m_accomp.shape):
        # 0/1 masks: the ratio is 1 (target only) or 1/2 (both); a masked store is ~5x faster
        # than the division on full-piece masks
        soft = m_target.astype(np.float32)
        soft[m_target & m_accomp] = 0.5
        return soft
    mt = np.asarray(m_target, dtype=np.float32)
    ma = np.asarray(m_accomp, dtype=np.float32)
    den = mt + ma
    return np.divide(mt, den, out=np.zeros(np.broadcast_shapes(mt.shape, ma.shape), np.float32),
                     where=den > 0)


def score_masks(target: Notes, accomp: Notes, n_frames: int, *, sr: int, n_fft: int, hop: int,
                params: MaskParams = MaskParams()) -> tuple[np.ndarray, np.ndarray]:
    """``(soft, binary)`` score masks of the target part, float32 ``(n_frames, n_fft//2+1)``.

    ``binary`` is the target's :func:`binary_score_mask` ``M_t`` (0/1), ``soft`` is
    :func:`soft_score_mask` ``M_t / (M_t + M_a)`` with ``M_a`` the accompaniment's mask: 1
    where only the target plays a harmonic, 0.5 where both do, 0 elsewhere.
    """
    kw = dict(sr=sr, n_fft=n_fft, hop=hop, params=params)
    m_t = binary_score_mask(target, n_frames, **kw)
    m_a = binary_score_mask(accomp, n_frames, **kw)
    return soft_score_mask(m_t, m_a), m_t.astype(np.float32)
