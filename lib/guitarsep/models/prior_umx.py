"""Score-prior Open-Unmix (``si_umx_prior``): the soft score mask as a prior the network
corrects. Ours, not the paper's (docs/method.md#models; the ablations are in
docs/ablations.md). Used by the ``ship`` profile and ``guitarsep separate``'s shipped model.

What differs from SI-Open-Unmix (:class:`guitarsep.models.umx.OpenUnmix`, whose trunk it
reuses: fc1 -> BN -> tanh -> 3-layer BiLSTM -> skip -> fc2 -> fc3), shapes per example with
``nb = setting.max_bin``:

- **Inputs that do not carry the level or the timbre's overall colour.** The magnitude is
  log-compressed and normalised per frame: ``log(|X| + eps) - log(mean_f |X| + eps)``
  ``(T, nb)``, beside ``log1p(|X| / ref)`` ``(T, nb)`` (``ref`` fixed: inputs arrive at one
  level, ``separation.separate.MODEL_INPUT_DB``).
- **Both sides of the score.** ``score = M_t / (M_t + M_a)`` and ``score_accomp =
  M_a / (M_t + M_a)`` ``(T, nb)`` each: together they tell "target only", "other only",
  "both" and "neither" apart, which one soft mask cannot (0 means "other" and "neither").
- **A residual on the prior.** ``mask = sigmoid(alpha * (score - score_accomp) + delta)``,
  where ``delta`` is the trunk's output times a learnable per-bin scale that starts at 0: an
  untrained network returns (nearly) the score mask, and training only has to learn
  corrections (bins the comb misses, overlapping partials, decays past the offset).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from guitarsep.config import StftSetting
from guitarsep.models.umx import OpenUnmix

__all__ = ["ScorePriorUnmix"]

_EPS = 1e-5
_REF = 0.05     # magnitude scale of log1p(|X| / ref): ~ a strong partial at -17 dBFS input


class ScorePriorUnmix(OpenUnmix):
    """Open-Unmix trunk on log inputs and both score masks, predicting a correction of the
    soft score mask. ``forward(mix_mag, score, score_accomp)`` as every model
    (``models.base``); ``score_kind = "soft"``, ``uses_accomp = True``.

    Args: as :class:`OpenUnmix` (``hidden_size``, ``nb_layers``, ``dropout``), plus
    ``prior_gain``: the initial ``alpha`` (4: a bin of the target's comb alone starts at 0.98).
    """

    uses_accomp = True

    def __init__(self, setting: StftSetting, score_kind: str | None = "soft",
                 hidden_size: int = 512, nb_layers: int = 3, dropout: float = 0.4,
                 prior_gain: float = 4.0):
        if score_kind != "soft":
            raise ValueError("si_umx_prior needs the soft score mask (score_kind='soft')")
        super().__init__(setting, score_kind, hidden_size, nb_layers, dropout)
        self.hparams = dict(self.hparams, prior_gain=prior_gain)
        nn.init.zeros_(self.output_scale)              # delta = 0 at the start
        nn.init.zeros_(self.output_mean)
        self.prior_gain = nn.Parameter(torch.tensor(float(prior_gain)))

    def _n_inputs(self, nb: int) -> int:
        return 4 * nb

    def features(self, mix: Tensor, score: Tensor, score_accomp: Tensor) -> Tensor:
        """``(B, T, nb)`` x 3 -> per-frame inputs ``(B, T, 4 nb)``."""
        log_mag = torch.log(mix + _EPS)
        frame = torch.log(mix.mean(dim=-1, keepdim=True) + _EPS)
        return torch.cat([log_mag - frame, torch.log1p(mix / _REF), score, score_accomp], -1)

    def estimate(self, mix: Tensor, score: Tensor | None, score_accomp: Tensor | None) -> Tensor:
        """Target magnitude ``(B, T, nb)`` = corrected prior mask ⊙ ``|X|``."""
        delta = self.trunk(self.features(mix, score, score_accomp))
        delta = delta * self.output_scale + self.output_mean
        prior = self.prior_gain * (score - score_accomp)
        return torch.sigmoid(prior + delta) * mix

    def set_input_stats(self, mean: Tensor, std: Tensor, score_mean: Tensor | None = None,
                        score_std: Tensor | None = None) -> bool:
        """No data statistics: the log features are normalised by construction (BN follows)."""
        return False
