"""Score-informed convolutional autoencoder after Miron, Janer & Gómez (ISMIR 2018; the
DeepConvSep family of Chandna et al. 2017). Registry name: ``si_cnn`` (``score_kind="soft"``).

Input: three planes over a context of ``context = 30`` frames: the mixture magnitude (divided
by the example's maximum), the target soft score mask ``score`` and the accompaniment soft mask
``score_accomp`` (``frontend.score_pair``); ``uses_accomp = True``, so ``forward`` needs both.

One context window ``(3, 30, F')`` (time x frequency, ``F'`` = ``max_bin`` zero-padded so the
vertical kernel tiles it)::

    vertical conv   Conv2d(3 -> v_channels, kernel (1, 30), stride (1, 15)) -> ReLU
                    -> (v_channels, 30, n_f)     n_f = (F' - 30) / 15 + 1   (99 modern, 34 low_res)
    horizontal conv Conv2d(v -> h_channels, kernel (15, 1), stride (5, 1)) -> ReLU
                    -> (h_channels, 4, n_f)
    flatten -> Linear(-> bottleneck=128) -> ReLU                          shared encoder
    per source (target, accompaniment), mirrored decoder:
    Linear(128 -> h_channels*4*n_f) -> ReLU -> reshape
    ConvTranspose2d(h -> v, (15, 1), stride (5, 1)) -> ReLU
    ConvTranspose2d(v -> 1, (1, 30), stride (1, 15)) -> softplus       -> (30, F') estimate
    ratio mask m = t / (t + a + eps), cropped to (30, nb)

Time: the model accepts any ``T``. The (zero-padded) spectrogram is cut into windows of
``context`` frames with hop ``window_hop = 15`` (50 % overlap); the masks of overlapping
windows are averaged with triangular weights (all positive, normalised by their sum, so every
frame is covered exactly), and the mask multiplies the unnormalised mixture magnitude.
Sequences shorter than 30 frames are padded to one window.

Decisions where the papers are silent or we deviate:
- Strides: the vertical layer strides 15 bins (half its 30-bin kernel) and the horizontal layer
  strides 5 frames; this keeps the bottleneck's input at ~6k (modern) instead of ~700k with
  unit strides at 4096-point resolution.
- Activations: ReLU in hidden layers; softplus on the decoder outputs so both source estimates
  are strictly positive and the ratio mask always has a gradient.
- The network is trained through the target magnitude only (shared MSE loss of all models);
  the accompaniment decoder is trained implicitly through the ratio mask.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guitarsep.config import StftSetting
from guitarsep.models.base import SeparationModel, normalize_by_max, stack_channels

__all__ = ["ScoreCNN"]


class ScoreCNN(SeparationModel):
    """Miron-style score-informed CNN with per-source decoders and ratio masks.

    Args:
        setting: STFT setting.
        score_kind: kind of both score masks (``"soft"``; ``"binary"`` also works).
        context: frames per window (30).
        window_hop: hop between windows in frames (15).
        v_channels, freq_kernel, freq_stride: vertical conv (32 filters, 30 bins, stride 15).
        h_channels, time_kernel, time_stride: horizontal conv (16 filters, 15 frames, stride 5);
            ``(context - time_kernel)`` must be a multiple of ``time_stride``.
        bottleneck: dense bottleneck width (128).
        eps: ratio-mask regulariser.
    """

    uses_accomp = True

    def __init__(self, setting: StftSetting, score_kind: str | None = "soft", context: int = 30,
                 window_hop: int = 15, v_channels: int = 32, freq_kernel: int = 30,
                 freq_stride: int = 15, h_channels: int = 16, time_kernel: int = 15,
                 time_stride: int = 5, bottleneck: int = 128, eps: float = 1e-8):
        super().__init__(setting, score_kind)
        if score_kind is None:
            raise ValueError("si_cnn is score-informed: score_kind must be 'soft' or 'binary'")
        if (context - time_kernel) % time_stride:
            raise ValueError("(context - time_kernel) must be a multiple of time_stride")
        if not 0 < window_hop <= context:
            raise ValueError("need 0 < window_hop <= context")
        self.hparams = dict(context=context, window_hop=window_hop, v_channels=v_channels,
                            freq_kernel=freq_kernel, freq_stride=freq_stride,
                            h_channels=h_channels, time_kernel=time_kernel,
                            time_stride=time_stride, bottleneck=bottleneck, eps=eps)
        self.context, self.window_hop, self.eps = context, window_hop, eps
        nb = self.max_bin
        n_f = max(1, math.ceil((nb - freq_kernel) / freq_stride) + 1)
        self.f_pad = freq_kernel + freq_stride * (n_f - 1)           # F' >= nb
        n_t = (context - time_kernel) // time_stride + 1
        self.code_shape = (h_channels, n_t, n_f)
        n_code = h_channels * n_t * n_f
        self.v_conv = nn.Conv2d(3, v_channels, (1, freq_kernel), stride=(1, freq_stride))
        self.h_conv = nn.Conv2d(v_channels, h_channels, (time_kernel, 1), stride=(time_stride, 1))
        self.dense = nn.Linear(n_code, bottleneck)
        self.decoders = nn.ModuleList(
            nn.ModuleDict(dict(
                dense=nn.Linear(bottleneck, n_code),
                h_deconv=nn.ConvTranspose2d(h_channels, v_channels, (time_kernel, 1),
                                            stride=(time_stride, 1)),
                v_deconv=nn.ConvTranspose2d(v_channels, 1, (1, freq_kernel),
                                            stride=(1, freq_stride)),
            )) for _ in range(2))                                  # 0: target, 1: accomp
        tri = 1.0 - torch.abs((2 * torch.arange(context) + 1) / context - 1.0)
        self.register_buffer("ola_weight", tri, persistent=False)   # (context,), > 0

    # -- windowing ---------------------------------------------------------------------
    def _n_windows(self, T: int) -> int:
        return 1 + max(0, math.ceil((T - self.context) / self.window_hop))

    def _windows(self, x: Tensor) -> Tensor:
        """``(B, C, T, F)`` -> ``(B * W, C, context, F)`` (zero-padded in time)."""
        B, C, T, Fb = x.shape
        W = self._n_windows(T)
        T_pad = self.context + self.window_hop * (W - 1)
        x = F.pad(x, (0, 0, 0, T_pad - T))
        w = x.unfold(2, self.context, self.window_hop)               # (B, C, W, F, context)
        return w.permute(0, 2, 1, 4, 3).reshape(B * W, C, self.context, Fb)

    def _overlap_add(self, m: Tensor, B: int, T: int) -> Tensor:
        """Weighted average of window masks ``(B * W, context, F)`` -> ``(B, T, F)``."""
        W = self._n_windows(T)
        T_pad = self.context + self.window_hop * (W - 1)
        Fb = m.shape[-1]
        w = self.ola_weight.to(m.dtype)
        cols = (m.reshape(B, W, self.context, Fb) * w[:, None]).permute(0, 3, 2, 1)
        fold = dict(output_size=(T_pad, 1), kernel_size=(self.context, 1),
                    stride=(self.window_hop, 1))
        num = F.fold(cols.reshape(B, Fb * self.context, W), **fold)          # (B, F, T_pad, 1)
        den = F.fold(w[None, :, None].expand(1, self.context, W), **fold)    # (1, 1, T_pad, 1)
        return (num / den)[..., :T, 0].transpose(1, 2)

    # -- network -----------------------------------------------------------------------
    def _decode(self, dec: nn.ModuleDict, code: Tensor) -> Tensor:
        h = torch.relu(dec["dense"](code)).view(-1, *self.code_shape)
        h = torch.relu(dec["h_deconv"](h))                           # (N, v, context, n_f)
        return F.softplus(dec["v_deconv"](h))[:, 0]                  # (N, context, F')

    def estimate(self, mix: Tensor, score: Tensor | None, score_accomp: Tensor | None) -> Tensor:
        """``mix``, ``score``, ``score_accomp`` ``(B, T, nb)`` -> target magnitude ``(B, T, nb)``."""
        B, T, nb = mix.shape
        x = stack_channels(normalize_by_max(mix), score, score_accomp)    # (B, 3, T, nb)
        x = F.pad(x, (0, self.f_pad - nb))
        x = self._windows(x)                                               # (N, 3, ctx, F')
        h = torch.relu(self.v_conv(x))
        h = torch.relu(self.h_conv(h))
        code = torch.relu(self.dense(h.flatten(1)))                        # (N, bottleneck)
        tgt, acc = (self._decode(d, code) for d in self.decoders)
        mask = (tgt / (tgt + acc + self.eps))[..., :nb]                    # (N, ctx, nb)
        return self._overlap_add(mask, B, T) * mix
