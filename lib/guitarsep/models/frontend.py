"""STFT front end and score-mask inputs (torch).

The one place where waveforms become spectrograms and back. Used by ``data.py`` (training
chunks), the training notebook ``02_train`` / ``training/loop.py`` (mixture magnitude and score input of
each batch) and ``separate.py`` (analysis of the mixture, Wiener filtering, resynthesis).

Conventions (``docs/design.md``): waveforms are ``(B, N)`` float tensors, spectrograms are
``(B, T, F)`` with ``T = N // hop + 1`` frames and ``F = n_fft // 2 + 1`` bins. Frame ``t`` is
centred at sample ``t * hop`` (``center=True``). Leading batch dimensions are optional: any
``(..., N)`` gives ``(..., T, F)`` and back.

Decision: the ``center=True`` padding is zero padding (``pad_mode="constant"``), not torch's
default reflection. It works for any length (reflection needs ``N > n_fft // 2``) and keeps the
STFT linear, so ``STFT(target) + STFT(other) == STFT(mix)`` holds exactly, edges included.

    >>> from guitarsep.config import SETTINGS
    >>> spec = Spectrogram(SETTINGS["modern"])
    >>> X = spec(wav)                     # (B, T, 2049) complex64
    >>> y = spec.istft(X, wav.shape[-1])  # (B, N)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from guitarsep.config import StftSetting
from guitarsep.score.masks import soft_score_mask
from guitarsep.vocabulary import SCORE_KINDS

__all__ = ["Spectrogram", "istft", "magnitude", "score_input", "score_pair"]



def _window(setting: StftSetting, device=None, dtype=torch.float32) -> Tensor:
    return torch.hann_window(setting.n_fft, periodic=True, device=device, dtype=dtype)


def _stft(wav: Tensor, setting: StftSetting, window: Tensor) -> Tensor:
    lead = wav.shape[:-1]
    x = wav.reshape(-1, wav.shape[-1])
    X = torch.stft(x, n_fft=setting.n_fft, hop_length=setting.hop, win_length=setting.n_fft,
                   window=window.to(device=x.device, dtype=x.dtype), center=True,
                   pad_mode="constant", normalized=False, onesided=True, return_complex=True)
    X = X.transpose(-1, -2)                                  # (B', T, F)
    return X.reshape(*lead, X.shape[-2], X.shape[-1])


def istft(X: Tensor, setting: StftSetting, length: int | None = None) -> Tensor:
    """Inverse STFT of a complex spectrogram.

    Args:
        X: complex ``(..., T, F)`` with ``F = setting.n_bins``.
        setting: the :class:`~guitarsep.config.StftSetting` that made ``X``.
        length: number of output samples (default ``(T - 1) * hop``); pass the original
            waveform length to undo :class:`Spectrogram` exactly.

    Returns:
        real ``(..., N)`` waveform. Uses the windowed least-squares inverse of ``torch.istft``,
        so it is exact for the periodic Hann window at both settings (the low_res 1024/768
        Hann analysis is not COLA, but the squared-window sum never vanishes).
    """
    if X.shape[-1] != setting.n_bins:
        raise ValueError(f"expected {setting.n_bins} bins for {setting.name}, got {X.shape[-1]}")
    lead = X.shape[:-2]
    Z = X.reshape(-1, X.shape[-2], X.shape[-1]).transpose(-1, -2)   # (B', F, T)
    real_dtype = torch.float64 if Z.dtype == torch.complex128 else torch.float32
    y = torch.istft(Z, n_fft=setting.n_fft, hop_length=setting.hop, win_length=setting.n_fft,
                    window=_window(setting, Z.device, real_dtype), center=True,
                    normalized=False, onesided=True, length=length)
    return y.reshape(*lead, y.shape[-1])


class Spectrogram(nn.Module):
    """Complex STFT as a module (``torch.stft``, periodic Hann, ``center=True``).

    ``forward(wav (B, N) float) -> X (B, T, F) complex`` with ``T = N // hop + 1`` and
    ``F = n_fft // 2 + 1``. :meth:`istft` inverts it. The window is a (non-persistent) buffer,
    so the module follows ``.to(device)`` and adds nothing to a state dict.
    """

    def __init__(self, setting: StftSetting):
        super().__init__()
        self.setting = setting
        self.register_buffer("window", _window(setting), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        """``(..., N)`` real -> ``(..., T, F)`` complex."""
        return _stft(wav, self.setting, self.window)

    def istft(self, X: Tensor, length: int | None = None) -> Tensor:
        """``(..., T, F)`` complex -> ``(..., N)`` real; see :func:`istft`."""
        return istft(X, self.setting, length)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` samples: ``n_samples // hop + 1``."""
        return n_samples // self.setting.hop + 1

    def extra_repr(self) -> str:
        s = self.setting
        return f"{s.name}: sr={s.sr}, n_fft={s.n_fft}, hop={s.hop}"


def magnitude(X: Tensor) -> Tensor:
    """``|X|``: complex ``(..., T, F)`` -> real ``(..., T, F)``."""
    return X.abs()


def _as_float(m: Tensor, dtype=None) -> Tensor:
    if dtype is None:
        dtype = m.dtype if m.is_floating_point() else torch.float32
    return m.to(dtype)


def score_input(kind: str | None, m_target: Tensor, m_accomp: Tensor | None = None) -> Tensor | None:
    """The score mask a model gets as its ``score`` argument.

    Args:
        kind: ``"soft"`` -> ``M_t / (M_t + M_a)`` (0 where both are 0;
            :func:`guitarsep.score.masks.soft_score_mask`); ``"binary"`` -> ``M_t``;
            ``None`` (blind model) -> ``None``.
        m_target: target part's harmonic-comb mask ``M_t``, bool or float ``(B, T, F)``
            (any shape; ``guitarsep.score.binary_score_mask`` per example, stacked).
        m_accomp: accompaniment mask ``M_a``, same shape (needed for ``"soft"``).

    Returns:
        float ``(B, T, F)`` in [0, 1] (float32 for bool input), or ``None``.
    """
    if kind is None:
        return None
    if kind == "binary":
        return _as_float(m_target)
    if kind == "soft":
        if m_accomp is None:
            raise ValueError("the soft score mask needs the accompaniment mask m_accomp")
        return soft_score_mask(m_target, m_accomp)
    raise ValueError(f"unknown score kind {kind!r}; expected one of {SCORE_KINDS}")


def score_pair(kind: str | None, m_target: Tensor, m_accomp: Tensor | None = None
               ) -> tuple[Tensor | None, Tensor | None]:
    """``(score, score_accomp)``: the target-side and accompaniment-side score inputs.

    ``score = score_input(kind, m_target, m_accomp)`` and ``score_accomp`` is the same mask with
    the parts swapped (soft: ``M_a / (M_t + M_a)``; binary: ``M_a``; None: None). Every model
    can be called as ``model(mix_mag, *score_pair(model.score_kind, m_t, m_a))``; only
    ``si_cnn`` reads ``score_accomp``. Shapes ``(B, T, F)``.
    """
    if kind is None:
        return None, None
    return score_input(kind, m_target, m_accomp), (
        None if m_accomp is None else score_input(kind, m_accomp, m_target))
