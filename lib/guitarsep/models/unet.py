"""Score-informed U-Net after Jansson et al. (ISMIR 2017, singing-voice U-Net).

Registry names: ``si_unet_soft``, ``si_unet_binary``.

The spectrogram is an image ``(B, C, T, F)`` (time x frequency; 5x5 kernels are symmetric so the
orientation does not matter). With ``c = channels`` (16 in Jansson et al.)::

    input  (B, 2, T', F')   channels: |X| / max|X| and score ⊙ |X| / max|X|
    enc1..enc6: Conv2d 5x5 stride 2 -> BatchNorm -> LeakyReLU(0.2)
                channels c, 2c, 4c, 8c, 16c, 32c; each halves T' and F'
    dec1: ConvTranspose2d 5x5 stride 2 (32c -> 16c) -> BN -> ReLU -> Dropout(0.5)
    dec2..dec5: input concat(previous, skip from enc6-k) -> deconv -> BN -> ReLU
                (dropout 0.5 on dec2, dec3); outputs 8c, 4c, 2c, c channels
    dec6: concat(dec5, enc1) -> ConvTranspose2d (2c -> 1) -> sigmoid        = mask
    output: mask (cropped back to (T, nb)) * |X|

``T' , F'`` are ``T`` and ``nb = setting.max_bin`` zero-padded at the end to multiples of
``2**depth = 64`` (Jansson et al. fix 128 x 512 patches instead; padding lets any ``T`` through),
then cropped back. ``modern``: 1487 bins -> 1536; ``low_res``: 513 -> 576 (Jansson et al. drop
the Nyquist bin to get 512; we keep the common ``max_bin`` crop of all models).

Decisions where the paper is silent or we deviate:
- Score input: the second channel is the score-filtered magnitude ``score ⊙ |X|`` (soft or
  binary mask), the same ``X_s`` SI-Open-Unmix gets; the paper's U-Net is not score-informed.
- Normalisation: each example is divided by its own maximum mixture magnitude (Jansson's
  ``[0, 1]`` scaling), so the mask does not depend on the gain; the output multiplies the
  unnormalised mixture.
- Padding: zeros (silence) at the end of time and frequency.
- Conv layers have biases; batch norm is on every layer except dec6.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from guitarsep.config import StftSetting
from guitarsep.models.base import (SeparationModel, crop_to, normalize_by_max, pad_to_multiple,
                                   score_filtered, stack_channels)

__all__ = ["ScoreUNet"]


def _down(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def _up(c_in: int, c_out: int, k: int, dropout: float, last: bool = False) -> nn.Sequential:
    conv = nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=1)
    if last:
        return nn.Sequential(conv)
    layers = [conv, nn.BatchNorm2d(c_out), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class ScoreUNet(SeparationModel):
    """Jansson-style U-Net producing a sigmoid mask on the mixture magnitude.

    Args:
        setting: STFT setting.
        score_kind: ``"soft"`` or ``"binary"`` (``None`` gives a blind U-Net with one channel).
        channels: first encoder layer width ``c`` (16 in Jansson et al.).
        depth: number of strided conv (and deconv) layers (6).
        kernel: square kernel size, odd (5).
        dropout: dropout probability on the first ``n_dropout`` decoder layers (0.5, 3).
    """

    def __init__(self, setting: StftSetting, score_kind: str | None = "soft", channels: int = 16,
                 depth: int = 6, kernel: int = 5, dropout: float = 0.5, n_dropout: int = 3):
        super().__init__(setting, score_kind)
        if kernel % 2 == 0:
            raise ValueError("kernel must be odd")
        self.hparams = dict(channels=channels, depth=depth, kernel=kernel, dropout=dropout,
                            n_dropout=n_dropout)
        self.multiple = 2 ** depth
        widths = [channels * 2 ** i for i in range(depth)]               # c .. 32c
        c_in = 1 if score_kind is None else 2
        self.encoders = nn.ModuleList(
            _down(a, b, kernel) for a, b in zip([c_in] + widths[:-1], widths))
        ups = []
        for i in range(depth):                                            # dec1 .. dec_depth
            src = widths[depth - 1 - i] * (1 if i == 0 else 2)            # concat skip after dec1
            dst = widths[depth - 2 - i] if i < depth - 1 else 1
            ups.append(_up(src, dst, kernel, dropout if i < n_dropout else 0.0,
                           last=(i == depth - 1)))
        self.decoders = nn.ModuleList(ups)

    def estimate(self, mix: Tensor, score: Tensor | None, score_accomp: Tensor | None) -> Tensor:
        """``mix (B, T, nb)``, ``score (B, T, nb)`` -> target magnitude ``(B, T, nb)``."""
        x_n = normalize_by_max(mix)
        planes = [x_n] if score is None else [x_n, score_filtered(x_n, score)]
        x, sizes = pad_to_multiple(stack_channels(*planes), dims=(2, 3), multiple=self.multiple)
        skips = []
        for enc in self.encoders:                          # (B, c*2^i, T'/2^(i+1), F'/2^(i+1))
            x = enc(x)
            skips.append(x)
        h = skips.pop()
        for i, dec in enumerate(self.decoders):
            if i > 0:
                h = torch.cat([h, skips.pop()], dim=1)
            h = dec(h)                                      # last: (B, 1, T', F')
        mask = torch.sigmoid(crop_to(h[:, 0], dims=(1, 2), sizes=sizes))   # (B, T, nb)
        return mask * mix
