"""How well a score explains a recording, and the guard that keeps a given score when its
alignment explains the recording worse.

Used by ``guitarsep separate --align`` (:mod:`guitarsep.app.separate_file`) and by the
robustness study's aligned rows (``06_robustness.ipynb``, :mod:`guitarsep.evaluation.robustness`).

DTW alignment (:mod:`guitarsep.score.align`) rescues a score that is offset or played at
another tempo, but it also moves the notes of a score that was right: its path is a chroma
match at 23 ms frames, and the warped onsets wander by a few frames, more where the score has
errors of its own (extra or missing notes). So :func:`prefer_aligned` measures both scores
with the score NMF's own model (:mod:`guitarsep.separation.score_nmf`): the score's harmonic
components only (no spare, free or slack components, which would explain what the score does
not), fitted to the recording's magnitude in full KL steps, and keeps the score whose model
leaves the smaller divergence per unit of the recording's magnitude
(:func:`score_divergence`).

Chosen on dev clips only (a throwaway probe, 2026-12-06: 30 clips of the three NMF dev sets
of ``scripts/nmf_dev.py``, 13 score conditions of the robustness study's kinds, each
separated by the score NMF with the given and with the aligned score). Per condition the
guard's median was the better of the two in 11 of 13 (clean score: given 7.54, aligned 7.19,
guarded 7.54 dB; 0.5 s late: 0.14 / 7.20 / 7.20 dB), and over the 390 cases +0.12 dB per clip
over always aligning (3 % of them 0.5 dB or more below the better score). Margins of 1-5 %
on the divergence changed nothing; the plain comparison stands.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from guitarsep.config import SETTINGS, MaskParams
from guitarsep.io import resample
from guitarsep.models.frontend import Spectrogram
from guitarsep.score.notes import Notes
from guitarsep.score.tuning import tuned
from guitarsep.separation.score_nmf import NmfParams, fit_factors, initial_factors

__all__ = ["FitConfig", "AlignmentChoice", "score_divergence", "prefer_aligned",
           "align_checked"]

_EPS = 1e-12


@dataclass(frozen=True)
class FitConfig:
    """The fit measure: the score NMF's model in ``setting``, ``iterations`` full KL steps,
    over blocks of ``block_s`` seconds (memory stays flat for any length), each fitted with
    the notes of ``margin_s`` around it."""

    setting: str = "modern"
    iterations: int = 10
    block_s: float = 30.0
    margin_s: float = 2.0


@dataclass(frozen=True)
class AlignmentChoice:
    """What :func:`prefer_aligned` decided: ``aligned`` True when the aligned score is kept;
    the two divergences (KL per unit of the recording's magnitude; lower fits better)."""

    aligned: bool
    divergence_given: float
    divergence_aligned: float

    def describe(self) -> str:
        """One line for the CLI."""
        which = ("the aligned score" if self.aligned else
                 "the score as given (the alignment fits the recording worse)")
        return (f"score fit: kept {which}; divergence given {self.divergence_given:.3f}, "
                f"aligned {self.divergence_aligned:.3f}")


def _score_only_params() -> NmfParams:
    """The score NMF's parameters without the components that explain what no note does
    (spare, slack, free, and the unknown part that stands in for a missing accompaniment)."""
    return dataclasses.replace(NmfParams(), spare_components=0, slack_start=0.0,
                               free_components=0, unknown_pitches=(0, -1))


def score_divergence(mix: np.ndarray, sr: int, target: Notes, accomp: Notes, *,
                     mask: MaskParams = MaskParams(), cfg: FitConfig = FitConfig()) -> float:
    """KL divergence ``D(V | W H)`` of the score's model fitted to the recording, divided by
    ``sum(V)``: 0 when the score's notes explain every bin exactly, the larger the more of
    the recording they leave unexplained (bins outside every note's harmonics cost the most).

    Args:
        mix: mono waveform ``(n,)`` at ``sr`` (resampled to the setting's rate).
        target, accomp: the two parts' notes (``accomp`` may be empty), times relative to
            the start of ``mix``.
        mask: the score's tolerances and tuning (``MaskParams``).
    """
    setting = SETTINGS[cfg.setting]
    x = resample(np.asarray(mix, dtype=np.float32).reshape(-1), sr, setting.sr)
    # at one level (RMS 0.1, about the corpus's): the bins no note explains cost V log(V /
    # eps), which would otherwise depend on the recording's level
    x = x * np.float32(0.1 / max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))),
                                 1e-12)) if x.size else x
    spec, params = Spectrogram(setting), _score_only_params()
    hop, n_frames = setting.hop, len(x) // setting.hop + 1
    block = max(1, int(round(cfg.block_s * setting.sr / hop)))          # in frames
    divergence, total = 0.0, 0.0
    for f0 in range(0, n_frames, block):
        f1 = min(n_frames, f0 + block)
        # the frames f0..f1 of the whole recording's STFT: the block with n_fft of context
        lo = max(0, f0 * hop - setting.n_fft)
        with torch.no_grad():
            X = spec(torch.from_numpy(x[lo:(f1 - 1) * hop + setting.n_fft]))
        skip = (f0 * hop - lo) // hop
        V = np.ascontiguousarray(X[skip:skip + f1 - f0].abs().numpy().T)    # (F, T)
        t0, t1 = f0 * hop / setting.sr, f1 * hop / setting.sr
        f = initial_factors(V, target.around(t0, t1, cfg.margin_s),
                            accomp.around(t0, t1, cfg.margin_s), sr=setting.sr,
                            n_fft=setting.n_fft, hop=hop, mask=mask, params=params)
        fit_factors(V, f, cfg.iterations)
        WH = f.W @ f.H + _EPS
        divergence += float((V * np.log((V + _EPS) / WH) - V + WH).sum())
        total += float(V.sum())
    return divergence / max(total, _EPS)


def prefer_aligned(mix: np.ndarray, sr: int, given: tuple[Notes, Notes],
                   aligned: tuple[Notes, Notes], *, mask: MaskParams = MaskParams(),
                   cfg: FitConfig = FitConfig()) -> AlignmentChoice:
    """Whether the aligned ``(target, accomp)`` explains ``mix`` better than the ``given``
    one (:func:`score_divergence`, both with the tuning read from the given score)."""
    mask = tuned(mask, np.asarray(mix, dtype=np.float32).reshape(-1), sr, *given)
    d_given = score_divergence(mix, sr, *given, mask=mask, cfg=cfg)
    d_aligned = score_divergence(mix, sr, *aligned, mask=mask, cfg=cfg)
    return AlignmentChoice(bool(d_aligned < d_given), d_given, d_aligned)


def align_checked(target: Notes, accomp: Notes, mix: np.ndarray, sr: int, *,
                  mask: MaskParams = MaskParams(), cfg: FitConfig = FitConfig()
                  ) -> tuple[tuple[Notes, Notes], dict, AlignmentChoice]:
    """DTW-align the score (:func:`guitarsep.score.align.align_notes`), then keep whichever
    of the given and the aligned ``(target, accomp)`` explains ``mix`` better
    (:func:`prefer_aligned`): ``((target, accomp), alignment report, choice)``. Raises the
    alignment's ``ValueError``."""
    from guitarsep.score.align import align_notes

    aligned, report = align_notes([target, accomp], mix, sr)
    choice = prefer_aligned(mix, sr, (target, accomp), tuple(aligned), mask=mask, cfg=cfg)
    return (tuple(aligned) if choice.aligned else (target, accomp)), report, choice
