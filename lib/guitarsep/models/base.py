"""Pieces shared by every separation network: the common interface and tensor helpers.

Interface (``docs/design.md``, "models/")::

    target_mag = model(mix_mag, score, score_accomp=None)

- ``mix_mag``: mixture magnitude ``(B, T, F)``, ``F = setting.n_bins`` (all STFT bins).
- ``score``: the target-side score mask ``(B, T, F)`` of kind ``model.score_kind``
  (``frontend.score_input``): ``"soft"`` = ``M_t / (M_t + M_a)``, ``"binary"`` = ``M_t``;
  ignored (may be ``None``) when ``score_kind is None`` (blind model).
- ``score_accomp``: the accompaniment-side mask of the same kind (``M_a / (M_t + M_a)`` for
  soft), ``(B, T, F)``; only models with ``uses_accomp = True`` (``si_cnn``) read it, the others
  ignore it. ``frontend.score_pair`` returns both, so a training loop can always call
  ``model(mix_mag, *score_pair(model.score_kind, m_t, m_a))``.
- returns the target magnitude estimate ``(B, T, F)``, non-negative. Networks only see bins
  ``< setting.max_bin`` (the bandwidth, 16 kHz for ``modern``); the output is exactly 0 above it
  (as Open-Unmix does with its bandwidth cut; the Wiener filter in ``separate.py`` then gives
  those bins to the residual).

Every ``T >= 1`` works (the U-Net pads time to a multiple of 64, the CNN to whole 30-frame
context windows, and both crop back). In training mode Open-Unmix's batch norm needs
``B * T > 1``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guitarsep.config import StftSetting
from guitarsep.vocabulary import SCORE_KINDS

__all__ = [
    "SeparationModel", "count_parameters", "crop_bins", "pad_bins", "score_filtered",
    "concat_score", "stack_channels", "pad_to_multiple", "crop_to", "normalize_by_max",
    "apply_time_distributed",
]



# ----------------------------------------------------------------------------- helpers
def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def crop_bins(x: Tensor, max_bin: int) -> Tensor:
    """``(..., F) -> (..., max_bin)``: keep the bins inside the model's bandwidth."""
    return x[..., :max_bin]


def pad_bins(x: Tensor, n_bins: int) -> Tensor:
    """``(..., max_bin) -> (..., n_bins)``: zero-fill the bins above the bandwidth."""
    return F.pad(x, (0, n_bins - x.shape[-1]))


def score_filtered(mix_mag: Tensor, score: Tensor) -> Tensor:
    """Score-filtered spectrogram ``X_s = score ⊙ |X|``, ``(B, T, F)`` (score may be bool)."""
    return score.to(mix_mag.dtype) * mix_mag


def concat_score(mix_mag: Tensor, score: Tensor | None) -> Tensor:
    """SI-Open-Unmix input: ``[|X|, score ⊙ |X|]`` along frequency, ``(B, T, F)`` ->
    ``(B, T, 2F)``; with ``score=None`` (blind) returns ``mix_mag`` unchanged."""
    if score is None:
        return mix_mag
    return torch.cat([mix_mag, score_filtered(mix_mag, score)], dim=-1)


def stack_channels(*planes: Tensor) -> Tensor:
    """Image input for the conv nets: ``k`` tensors ``(B, T, F)`` -> ``(B, k, T, F)``."""
    dtype = planes[0].dtype
    return torch.stack([p.to(dtype) for p in planes], dim=1)


def normalize_by_max(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale each example to a maximum of 1: ``(B, ...)`` divided by its own max over all
    non-batch dims (the ``[0, 1]`` input normalisation of Jansson et al. 2017). Makes the conv
    nets' masks independent of the mixture's gain."""
    peak = x.detach().flatten(1).amax(dim=1).clamp_min(eps)
    return x / peak.view(-1, *([1] * (x.dim() - 1)))


def pad_to_multiple(x: Tensor, dims: Sequence[int], multiple: int | Sequence[int],
                    value: float = 0.0) -> tuple[Tensor, tuple[int, ...]]:
    """Zero-pad (at the end) each dim in ``dims`` up to a multiple of ``multiple``.

    Returns the padded tensor and the original sizes of ``dims`` (for :func:`crop_to`).
    """
    dims = [d % x.dim() for d in dims]
    mults = [multiple] * len(dims) if isinstance(multiple, int) else list(multiple)
    sizes = tuple(x.shape[d] for d in dims)
    pad = [0] * (2 * x.dim())
    for d, m, n in zip(dims, mults, sizes):
        target = max(m, int(math.ceil(n / m)) * m)
        pad[2 * (x.dim() - 1 - d) + 1] = target - n       # F.pad lists dims last-first
    if any(pad):
        x = F.pad(x, pad, value=value)
    return x, sizes


def crop_to(x: Tensor, dims: Sequence[int], sizes: Sequence[int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: keep the first ``sizes[i]`` entries of ``dims[i]``."""
    for d, n in zip(dims, sizes):
        x = x.narrow(d % x.dim(), 0, n)
    return x


def apply_time_distributed(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a per-frame module (e.g. ``BatchNorm1d``) to ``(B, T, C)`` by folding time into
    the batch: ``(B*T, C)`` in, ``(B, T, C')`` out."""
    B, T = x.shape[:2]
    y = module(x.reshape(B * T, *x.shape[2:]))
    return y.reshape(B, T, *y.shape[1:])


# ----------------------------------------------------------------------------- base class
class SeparationModel(nn.Module):
    """Base class: stores ``setting`` / ``score_kind``, checks inputs, crops to the bandwidth
    and pads the output back. Subclasses implement :meth:`estimate` on cropped bins.

    Attributes:
        setting: the :class:`~guitarsep.config.StftSetting` the model was built for.
        score_kind: ``"soft"``, ``"binary"`` or ``None`` (blind).
        uses_accomp: whether :meth:`forward` needs ``score_accomp`` (only ``si_cnn``).
        name, hparams: set by ``models.build_model`` so a checkpoint can rebuild the model.
    """

    uses_accomp: bool = False

    def __init__(self, setting: StftSetting, score_kind: str | None):
        super().__init__()
        if score_kind not in SCORE_KINDS:
            raise ValueError(f"score_kind must be one of {SCORE_KINDS}, got {score_kind!r}")
        self.setting = setting
        self.score_kind = score_kind
        self.name: str | None = None
        self.hparams: dict = {}

    @property
    def n_bins(self) -> int:
        return self.setting.n_bins

    @property
    def max_bin(self) -> int:
        return self.setting.max_bin

    # -- interface ------------------------------------------------------------------
    def forward(self, mix_mag: Tensor, score: Tensor | None = None,
                score_accomp: Tensor | None = None) -> Tensor:
        """``mix_mag (B, T, F)``, ``score (B, T, F) | None``, ``score_accomp (B, T, F) | None``
        -> target magnitude ``(B, T, F)`` (zero above ``setting.max_bin``)."""
        self._check(mix_mag, score, score_accomp)
        nb = self.max_bin
        mix_c = crop_bins(mix_mag, nb)
        if self.score_kind is None:
            score_c = accomp_c = None
        else:
            score_c = crop_bins(score, nb).to(mix_mag.dtype)
            accomp_c = (crop_bins(score_accomp, nb).to(mix_mag.dtype)
                        if self.uses_accomp else None)
        est = self.estimate(mix_c, score_c, accomp_c)
        return pad_bins(est, self.n_bins)

    def estimate(self, mix: Tensor, score: Tensor | None, score_accomp: Tensor | None) -> Tensor:
        """Network proper on cropped bins: ``(B, T, max_bin)`` each -> ``(B, T, max_bin)``."""
        raise NotImplementedError

    def _check(self, mix_mag: Tensor, score, score_accomp) -> None:
        if mix_mag.dim() != 3:
            raise ValueError(f"mix_mag must be (B, T, F), got shape {tuple(mix_mag.shape)}")
        if mix_mag.shape[-1] != self.n_bins:
            raise ValueError(f"mix_mag has {mix_mag.shape[-1]} bins; setting "
                             f"{self.setting.name!r} needs n_bins={self.n_bins}")
        if self.score_kind is None:
            return
        needed = [("score", score)] + ([("score_accomp", score_accomp)] if self.uses_accomp else [])
        for label, s in needed:
            if s is None:
                raise ValueError(f"{type(self).__name__} ({self.score_kind}) needs {label}")
            if s.shape != mix_mag.shape:
                raise ValueError(f"{label} shape {tuple(s.shape)} != mix_mag shape "
                                 f"{tuple(mix_mag.shape)}")

    # -- input statistics (Open-Unmix uses them; a no-op elsewhere) --------------------
    def set_input_stats(self, mean: Tensor, std: Tensor, score_mean: Tensor | None = None,
                        score_std: Tensor | None = None) -> bool:
        """Initialise input normalisation from data. Returns whether the model uses it
        (``False`` here; Open-Unmix overrides)."""
        return False

    @torch.no_grad()
    def fit_input_stats(self, mix_mag: Tensor, score: Tensor | None = None) -> bool:
        """Per-bin mean/std of ``mix_mag`` (and of ``score ⊙ mix_mag``) over all examples and
        frames of ``(B, T, F)`` tensors, passed to :meth:`set_input_stats`."""
        m = mix_mag.reshape(-1, mix_mag.shape[-1])
        args = [m.mean(0), m.std(0)]
        if score is not None and self.score_kind is not None:
            s = score_filtered(mix_mag, score).reshape(-1, mix_mag.shape[-1])
            args += [s.mean(0), s.std(0)]
        return self.set_input_stats(*args)

    def extra_repr(self) -> str:
        return (f"setting={self.setting.name}, score_kind={self.score_kind}, "
                f"bins={self.max_bin}/{self.n_bins}")
