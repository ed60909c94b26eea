"""The recording's tuning: the concert A its notes sound at, so the score's combs sit on them.

A recording tuned away from A4 = 440 Hz (guitars tuned to each other, not to a tuner; an old
tape's speed) moves every harmonic off the comb the score predicts: 35 cents sharp cost the
score NMF 0.9-2.1 dB on dev clips, 50 cents flat 2.1-4.9 dB (2026-12-06). The score says
which pitches sound when, so the deviation is read where the score puts each note's lowest
harmonics; a blind estimate (librosa's ``estimate_tuning``) knows the deviation only modulo a
semitone, so that 50 cents flat and 50 cents sharp look alike to it, and it strayed up to
32 cents on in-tune out-of-family clips.

Who follows it: the score NMF (``separation.separate.separate_clip`` and
``separation.stream.stream_separate``, so evaluation, the widgets and ``guitarsep separate``)
and the score-only mask (``separate.score_only``). Not the networks: a network trained on
combs at 440 Hz reads each pitch's comb as the pattern of bins it saw in training, not as
where the energy is. Moving the combs 10 cents on an in-tune clip cost SI-UMX soft 5.4 dB
(10.9 -> 5.4 dB), and on the same clip played 20 cents sharp the combs at 440 Hz kept
10.7 dB where the moved ones gave 4.5 dB (2026-12-06). The 06_robustness notebook shows all
three on recordings played sharp.
"""
from __future__ import annotations

import dataclasses

import librosa
import numpy as np

from guitarsep.config import MaskParams
from guitarsep.score.masks import pitch_activity
from guitarsep.score.notes import Notes

#: below this deviation (cents) the score's combs are left at A4 = 440 Hz: the comb and the
#: NMF's harmonic supports (±30 / ±40 cents) hold it (20 cents cost the NMF 0.2-0.4 dB on dev
#: clips), while :func:`estimate_cents` reads in-tune clips from -10.8 to +5.4 cents (the
#: out-of-family OPL3 clips lowest; the corpus's test clips within ±4.2)
DEAD_ZONE_CENTS = 15.0
#: the excerpt the tuning is read from (the recording's start), seconds
EXCERPT_S = 60.0
#: the harmonics read (the lowest: string stiffness moves the upper ones sharp), and how far
#: from the score's pitch a peak may lie (a tuning off by half a semitone or less)
HARMONICS = 4
WINDOW_CENTS = 55.0
_N_FFT, _HOP = 4096, 1024


def estimate_cents(mix: np.ndarray, sr: int, target: Notes, accomp: Notes) -> float:
    """Deviation (cents) of the mono recording ``mix (n,)`` from A4 = 440 Hz, read from its
    first :data:`EXCERPT_S` seconds: the magnitude-weighted median, over the score's notes
    and their first :data:`HARMONICS` harmonics, of how far the spectral peaks
    (librosa's ``piptrack``, interpolated between bins) lie from where the score puts the
    harmonic, within ±:data:`WINDOW_CENTS`. 0.0 when no peak is found."""
    x = np.asarray(mix[: int(EXCERPT_S * sr)], dtype=np.float32)
    notes = target.concat(accomp)
    if not np.any(x) or not len(notes):
        return 0.0
    freqs, mags = librosa.piptrack(y=x, sr=sr, n_fft=_N_FFT, hop_length=_HOP, fmin=50.0,
                                   fmax=min(4000.0, sr / 2 - 1))              # (F, T) each
    pitches, active = pitch_activity(notes, freqs.shape[1], sr=sr, hop=_HOP,
                                     params=MaskParams())                     # (T, P)
    nominal = 440.0 * 2.0 ** ((pitches - 69) / 12.0)
    harmonics = nominal[:, None] * np.arange(1, HARMONICS + 1)[None, :]      # (P, K)
    dev, weight = [], []
    for t in np.flatnonzero(active.any(axis=1)):
        peak = mags[:, t] > 0
        if not peak.any():
            continue
        expected = harmonics[active[t]].ravel()                              # (n,)
        cents = 1200.0 * np.log2(freqs[peak, t][None, :] / expected[:, None])  # (n, peaks)
        near = np.abs(cents) < WINDOW_CENTS
        dev.append(cents[near])
        weight.append(np.broadcast_to(mags[peak, t][None, :], cents.shape)[near])
    if not dev or not np.concatenate(dev).size:
        return 0.0
    return _weighted_median(np.concatenate(dev), np.concatenate(weight))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def tuned(params: MaskParams, mix: np.ndarray, sr: int, target: Notes,
          accomp: Notes) -> MaskParams:
    """``params`` with ``a4_hz`` set to the recording's tuning (:func:`estimate_cents`), or
    ``params`` itself within :data:`DEAD_ZONE_CENTS` of 440 Hz or when its ``a4_hz`` was set
    to anything but 440 Hz (the caller's choice stands)."""
    if params.a4_hz != 440.0:
        return params
    cents = estimate_cents(mix, sr, target, accomp)
    if abs(cents) < DEAD_ZONE_CENTS:
        return params
    return dataclasses.replace(params, a4_hz=440.0 * 2.0 ** (cents / 1200.0))
