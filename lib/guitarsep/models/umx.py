"""Open-Unmix (Stöter et al. 2019) and its score-informed variant SI-Open-Unmix.

Registry names: ``si_umx_soft``, ``si_umx_binary`` (score-informed) and ``umx_blind``.

Architecture, per frame (shapes for one example, ``nb = setting.max_bin``, ``H = hidden_size``)::

    |X| (T, nb)  --[concat score ⊙ |X| along frequency]-->  (T, 2nb)   (blind: (T, nb))
    (x + input_mean) * input_scale                        learnable, per input bin
    fc1: Linear(in -> H, no bias) -> BatchNorm1d -> tanh  (T, H)
    BiLSTM, nb_layers layers, H/2 per direction           (T, H)
    skip: concat(fc1 out, LSTM out)                       (T, 2H)
    fc2: Linear(2H -> H, no bias) -> BatchNorm1d -> ReLU  (T, H)
    fc3: Linear(H -> nb, no bias) -> BatchNorm1d          (T, nb)
    * output_scale + output_mean, ReLU                    learnable, per output bin
    * |X| (cropped)                                       (T, nb)  -> zero-padded to n_bins

The only change for SI-Open-Unmix (docs/method.md#models) is the doubled input: the first linear layer sees
``2 * nb`` values, the score-filtered spectrogram ``X_s = mask ⊙ |X|`` after the mixture.

Decisions where the papers are silent or we deviate:
- Input normalisation parameters are initialised to mean 0 / scale 1; call
  :meth:`OpenUnmix.set_input_stats` (or ``fit_input_stats``) with training-set statistics, as
  Open-Unmix does. The score half gets its own statistics (of ``X_s``) when given, else reuses
  the mixture's.
- Output scale and mean start at 1 (the network starts near an all-pass mask).
- LSTM dropout between layers ``dropout=0.4`` (Open-Unmix's default), hparam.
- Input is the linear magnitude (Open-Unmix's ``power=1``); no log compression.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from guitarsep.config import StftSetting
from guitarsep.models.base import SeparationModel, apply_time_distributed, concat_score, crop_bins

__all__ = ["OpenUnmix"]


class OpenUnmix(SeparationModel):
    """(SI-)Open-Unmix. ``score_kind=None`` gives the blind model.

    Args:
        setting: STFT setting (bins up to ``setting.max_bin`` are modelled).
        score_kind: ``"soft"``, ``"binary"`` or ``None``.
        hidden_size: ``H`` (paper 1024; default 512 as Open-Unmix). Must be even.
        nb_layers: BiLSTM layers (3).
        dropout: dropout between LSTM layers (0.4).
    """

    def __init__(self, setting: StftSetting, score_kind: str | None = None,
                 hidden_size: int = 512, nb_layers: int = 3, dropout: float = 0.4):
        super().__init__(setting, score_kind)
        if hidden_size % 2:
            raise ValueError("hidden_size must be even (BiLSTM uses hidden_size // 2 per direction)")
        nb = self.max_bin
        n_in = self._n_inputs(nb)
        H = hidden_size
        self.hparams = dict(hidden_size=hidden_size, nb_layers=nb_layers, dropout=dropout)
        self.input_mean = nn.Parameter(torch.zeros(n_in))
        self.input_scale = nn.Parameter(torch.ones(n_in))
        self.fc1 = nn.Linear(n_in, H, bias=False)
        self.bn1 = nn.BatchNorm1d(H)
        self.lstm = nn.LSTM(H, H // 2, num_layers=nb_layers, bidirectional=True,
                            batch_first=True, dropout=dropout if nb_layers > 1 else 0.0)
        self.fc2 = nn.Linear(2 * H, H, bias=False)
        self.bn2 = nn.BatchNorm1d(H)
        self.fc3 = nn.Linear(H, nb, bias=False)
        self.bn3 = nn.BatchNorm1d(nb)
        self.output_scale = nn.Parameter(torch.ones(nb))
        self.output_mean = nn.Parameter(torch.ones(nb))

    def _n_inputs(self, nb: int) -> int:
        """Input values per frame: ``|X|`` and, for SI models, ``score ⊙ |X|``."""
        return nb * (1 if self.score_kind is None else 2)

    def trunk(self, x: Tensor) -> Tensor:
        """The network proper: per-frame inputs ``(B, T, n_in)`` -> ``(B, T, nb)`` (before
        the output scale and mean)."""
        x = (x + self.input_mean) * self.input_scale
        h = torch.tanh(apply_time_distributed(self.bn1, self.fc1(x)))    # (B, T, H)
        r, _ = self.lstm(h)                                            # (B, T, H)
        y = torch.cat([h, r], dim=-1)                                  # (B, T, 2H)
        y = torch.relu(apply_time_distributed(self.bn2, self.fc2(y)))  # (B, T, H)
        return apply_time_distributed(self.bn3, self.fc3(y))           # (B, T, nb)

    def estimate(self, mix: Tensor, score: Tensor | None, score_accomp: Tensor | None) -> Tensor:
        """``mix (B, T, nb)``, ``score (B, T, nb) | None`` -> target magnitude ``(B, T, nb)``."""
        y = self.trunk(concat_score(mix, score))                       # (B, T, nb)
        mask = torch.relu(y * self.output_scale + self.output_mean)
        return mask * mix

    @torch.no_grad()
    def set_input_stats(self, mean: Tensor, std: Tensor, score_mean: Tensor | None = None,
                        score_std: Tensor | None = None) -> bool:
        """Set ``input_mean = -mean`` and ``input_scale = 1 / std`` per bin.

        Args:
            mean, std: per-bin statistics of the mixture magnitude, length ``n_bins`` or
                ``max_bin`` (cropped here).
            score_mean, score_std: statistics of ``score ⊙ |X|`` for the score half of the
                input (SI models); default: the mixture's.
        Returns ``True``. Standard deviations are floored at ``1e-4 * max(std)`` so bins that
        are (almost) always silent do not get huge scales.
        """
        nb = self.max_bin

        def prep(m, s):
            m = crop_bins(torch.as_tensor(m, dtype=torch.float32).flatten(), nb)
            s = crop_bins(torch.as_tensor(s, dtype=torch.float32).flatten(), nb)
            if m.numel() != nb or s.numel() != nb:
                raise ValueError(f"stats need {nb} (max_bin) or {self.n_bins} (n_bins) values")
            s = s.clamp_min(float(s.max()) * 1e-4 + 1e-8)
            return -m, 1.0 / s

        m, s = prep(mean, std)
        if self.score_kind is not None:
            m2, s2 = (m, s) if score_mean is None else prep(score_mean, score_std)
            m, s = torch.cat([m, m2]), torch.cat([s, s2])
        self.input_mean.copy_(m)
        self.input_scale.copy_(s)
        return True
