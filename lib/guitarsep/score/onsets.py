"""Per-note onset refinement: each note's onset moved to where its pitch starts in the recording.

Used by ``guitarsep separate --refine-onsets`` (:mod:`guitarsep.app.separate_file`) and by
``scripts/onset_refine_dev.py``, which chose its parameters on dev clips (docs/ablations.md).

A hand-made score (a tab typed in, a MIDI part played along) is right about the pitches and
their order but loose in time, note by note. DTW alignment (:mod:`guitarsep.score.align`)
fixes the tempo and a global offset, not each note; the score NMF tolerates about 50 ms and
loses about 1 dB at +-200 ms (the robustness study). Here every note looks, within
``radius_s`` of its written onset, for the frame where the recording's energy rises most in
its own pitch's harmonics (:func:`pitch_novelty`: the log-magnitude flux averaged over a comb
of ``n_harmonics`` harmonics, ``1/k`` weighted, less its mean over the spectrum), weighted by
a Gaussian of ``sigma_s`` around the written onset so that the nearest rise wins over a
louder one farther off. The note moves
there (its duration kept) only if that rise is ``min_gain`` times the strongest one within a
frame and a half of where it was written, and at least ``min_rise``: a note already on an
onset stays, and so does one with no onset of its pitch within reach.

Decisions of ours (the paper's scores are exact): a 2048-point STFT with hop 256 (5.8 ms
frames at 44.1 kHz) for the onsets, the flux over two frames, magnitudes compressed as
``log(1 + 100 |X| / ref)`` with ``ref`` from the recording's peak (level-invariant).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guitarsep.config import MaskParams
from guitarsep.score.notes import Notes
from guitarsep.score.tuning import tuned

__all__ = ["OnsetRefine", "pitch_novelty", "refine_onsets", "refine_parts", "refine_score"]


@dataclass(frozen=True)
class OnsetRefine:
    """Onset refinement settings (chosen on dev clips: scripts/onset_refine_dev.py)."""

    # Chosen on dev clips (docs/ablations.md): radius 0.25 s reaches the notes of a score
    # jittered by +-0.2 s (+0.72 dB per clip on average there, against +0.14 dB with 0.15 s,
    # which snaps some of them to a neighbour's onset); on a right score it changes the
    # median clip by nothing (one clip of 30 loses 0.25 dB).
    radius_s: float = 0.25          # how far from its written onset a note may move
    sigma_s: float = 0.15           # Gaussian preference for the nearest rise
    min_gain: float = 1.5           # the rise found / the rise where the note is written
    min_rise: float = 0.05          # ... and at least this (a plucked note's rise: about 1)
    n_fft: int = 2048
    hop: int = 256
    lag: int = 2                    # flux between frames t - lag and t
    n_harmonics: int = 10
    block_s: float = 30.0           # the STFT in blocks: memory stays flat for any length


def _comb(pitches: np.ndarray, sr: int, p: OnsetRefine, a4_hz: float) -> np.ndarray:
    """``(P, F)``: each pitch's harmonics (+-1 bin), harmonic ``k`` weighted ``1/k``, rows
    summing to 1."""
    n_bins = p.n_fft // 2 + 1
    out = np.zeros((len(pitches), n_bins))
    f0 = a4_hz * 2.0 ** ((np.asarray(pitches, dtype=np.float64) - 69.0) / 12.0)
    for k in range(1, p.n_harmonics + 1):
        centre = k * f0 * p.n_fft / sr
        for i, c in enumerate(centre):
            if c < n_bins - 1:
                lo, hi = max(int(np.floor(c - 1.0)), 0), int(np.ceil(c + 1.0))
                out[i, lo:hi + 1] = np.maximum(out[i, lo:hi + 1], 1.0 / k)
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)


def pitch_novelty(mix: np.ndarray, sr: int, pitches: np.ndarray, *,
                  params: OnsetRefine = OnsetRefine(), a4_hz: float = 440.0) -> np.ndarray:
    """``(P, T)`` float32: the onset novelty of each of ``pitches`` (MIDI) in the mono
    recording ``mix (n,)``, frame ``t`` centred at ``t * hop / sr``. Computed block by block
    (``block_s``), so memory stays flat for any length."""
    p = params
    x = np.pad(np.asarray(mix, dtype=np.float32).reshape(-1), (p.n_fft // 2, p.n_fft // 2))
    n_frames = 1 + max(len(x) - p.n_fft, 0) // p.hop
    window = np.hanning(p.n_fft + 1)[:-1].astype(np.float32)
    ref = max(float(np.abs(x).max()) * window.sum() / 2.0, 1e-9)
    comb = _comb(np.asarray(pitches), sr, p, a4_hz).astype(np.float32)
    out = np.zeros((len(comb), n_frames), dtype=np.float32)
    block = max(1, round(p.block_s * sr / p.hop))
    if len(x) < p.n_fft:
        x = np.pad(x, (0, p.n_fft - len(x)))
    all_frames = np.lib.stride_tricks.sliding_window_view(x, p.n_fft)[::p.hop]   # a view
    for f0 in range(0, n_frames, block):
        f1 = min(f0 + block, n_frames)
        g0 = max(f0 - p.lag, 0)                        # the lag's frames before the block
        frames = all_frames[g0:f1] * window
        log_mag = np.log1p(100.0 * np.abs(np.fft.rfft(frames, axis=1)) / ref).T   # (F, t)
        flux = np.zeros((log_mag.shape[0], f1 - f0), dtype=np.float32)
        cur = np.arange(f0, f1) - g0
        has_prev = cur >= p.lag
        flux[:, has_prev] = np.maximum(log_mag[:, cur[has_prev]]
                                       - log_mag[:, cur[has_prev] - p.lag], 0.0)
        # a pitch's own rise: its comb's flux over the spectrum's mean flux (a click or a
        # strum raises every bin a little; the played pitches' harmonics much more)
        out[:, f0:f1] = np.maximum(comb @ flux - flux.mean(axis=0, keepdims=True), 0.0)
    return out


def refine_onsets(notes: Notes, novelty: np.ndarray, pitches: np.ndarray, sr: int, *,
                  params: OnsetRefine = OnsetRefine()) -> Notes:
    """``notes`` with each onset moved to its pitch's rise in ``novelty (P, T)`` (rows in
    the order of ``pitches``; :func:`pitch_novelty`), durations kept. A note that would
    land within two frames of the previous note of its pitch keeps its written onset."""
    if len(notes) == 0:
        return notes
    p = params
    frame_s = p.hop / sr
    times = np.arange(novelty.shape[1]) * frame_s
    row = {int(q): i for i, q in enumerate(pitches)}
    onset = notes.onset.copy()
    for i, (o, q) in enumerate(zip(notes.onset, notes.pitch)):
        nov = novelty[row[int(q)]]
        near = np.flatnonzero(np.abs(times - o) <= p.radius_s)
        here = np.flatnonzero(np.abs(times - o) <= 1.5 * frame_s)
        if len(near) == 0 or len(here) == 0:
            continue
        j = near[np.argmax(nov[near] * np.exp(-0.5 * ((times[near] - o) / p.sigma_s) ** 2))]
        if nov[j] > max(p.min_gain * nov[here].max(), p.min_rise):
            onset[i] = times[j]
    for q in np.unique(notes.pitch):                   # no two notes of a pitch on one onset
        same = np.flatnonzero(notes.pitch == q)
        for a, b in zip(same, same[1:]):
            if onset[b] <= onset[a] + 2 * frame_s:
                onset[b] = notes.onset[b]
    onset = np.maximum(onset, 0.0)
    offset = np.maximum(notes.offset + (onset - notes.onset), onset + frame_s)
    return Notes.from_arrays(onset, offset, notes.pitch, notes.velocity)


def refine_parts(parts: list[Notes], mix: np.ndarray, sr: int, *,
                 params: OnsetRefine = OnsetRefine(), a4_hz: float = 440.0) -> list[Notes]:
    """Every part of ``parts`` refined against the mono recording ``mix (n,)`` (one
    novelty computation for all their pitches)."""
    pitches = np.unique(np.concatenate([np.asarray(n.pitch) for n in parts] or [[]])
                        ).astype(np.int64)
    if len(pitches) == 0:
        return list(parts)
    novelty = pitch_novelty(mix, sr, pitches, params=params, a4_hz=a4_hz)
    return [refine_onsets(n, novelty, pitches, sr, params=params) for n in parts]


def refine_score(target: Notes, accomp: Notes | None, mix: np.ndarray, sr: int, *,
                 mask: MaskParams = MaskParams(), params: OnsetRefine = OnsetRefine()
                 ) -> tuple[Notes, Notes | None, int]:
    """``(target, accomp, notes moved)``: both parts refined against the mono recording
    ``mix (n,)`` at its tuning (:func:`guitarsep.score.tuning.tuned` of ``mask``); ``accomp``
    None (no accompaniment score) stays None. What ``guitarsep separate --refine-onsets`` and
    ``Separator.separate(refine_onsets=True)`` do."""
    other = accomp if accomp is not None else Notes.empty()
    a4_hz = tuned(mask, mix, sr, target, other).a4_hz
    new_target, new_other = refine_parts([target, other], mix, sr, params=params, a4_hz=a4_hz)
    moved = sum(len(set(zip(b.onset, b.pitch)) - set(zip(a.onset, a.pitch)))
                for a, b in ((target, new_target), (other, new_other)))
    return new_target, (new_other if accomp is not None else None), moved
