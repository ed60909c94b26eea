"""Separation networks (networks only; they never read files).

    >>> from guitarsep.config import SETTINGS
    >>> from guitarsep.models import build_model
    >>> from guitarsep.models.frontend import score_pair
    >>> model = build_model("si_umx_soft", SETTINGS["modern"], hidden_size=256)
    >>> est = model(mix_mag, *score_pair(model.score_kind, m_t, m_a))   # (B, T, 2049)

Every model maps ``forward(mix_mag (B, T, F), score (B, T, F) | None, score_accomp=None)`` to
the target magnitude ``(B, T, F)``, ``F = setting.n_bins``, zero above ``setting.max_bin``
(see :mod:`guitarsep.models.base`). ``model.score_kind`` says which mask ``score`` must be
(``frontend.score_input``); ``model.uses_accomp`` whether ``score_accomp`` is read (``si_cnn``).

======================  ===============  =====================================================
name                    score_kind       network
======================  ===============  =====================================================
``si_umx_soft``         soft             SI-Open-Unmix (:class:`umx.OpenUnmix`)
``si_umx_binary``       binary           SI-Open-Unmix
``umx_blind``           None             Open-Unmix without score
``si_unet_soft``        soft             Jansson U-Net + score channel (:class:`unet.ScoreUNet`)
``si_unet_binary``      binary           same, binary mask
``si_cnn``              soft (+accomp)   Miron et al. CNN autoencoder (:class:`cnn.ScoreCNN`)
``si_umx_prior``        soft (+accomp)   ours: Open-Unmix trunk correcting the score mask
                                         (:class:`prior_umx.ScorePriorUnmix`; not the paper's)
======================  ===============  =====================================================

``build_model`` records ``model.name`` and ``model.hparams``, so a model file
(:mod:`guitarsep.models.checkpoint`: the one contract for training checkpoints and exported
models, with the mask parameters the network was trained with) can rebuild it with
``build_model(name, setting, **hparams)``. ``frontend.py`` is the STFT front end and score
input every network shares. Used by 02_train.ipynb (training), 03/05/06 (separation).
"""
from __future__ import annotations

from typing import Any

from guitarsep.config import SETTINGS, StftSetting
from guitarsep.models.base import SeparationModel, count_parameters
from guitarsep.models.checkpoint import LoadedModel, export_model, load_model, save_checkpoint
from guitarsep.models.cnn import ScoreCNN
from guitarsep.models.prior_umx import ScorePriorUnmix
from guitarsep.models.umx import OpenUnmix
from guitarsep.models.unet import ScoreUNet

__all__ = ["build_model", "MODEL_NAMES", "count_parameters", "hparams_for", "SeparationModel",
           "OpenUnmix", "ScorePriorUnmix", "ScoreUNet", "ScoreCNN", "model_family", "score_kind_of", "LoadedModel", "load_model",
           "save_checkpoint", "export_model"]

# name -> (class, score_kind)
_REGISTRY: dict[str, tuple[type[SeparationModel], str | None]] = {
    "si_umx_soft": (OpenUnmix, "soft"),
    "si_umx_binary": (OpenUnmix, "binary"),
    "umx_blind": (OpenUnmix, None),
    "si_unet_soft": (ScoreUNet, "soft"),
    "si_unet_binary": (ScoreUNet, "binary"),
    "si_cnn": (ScoreCNN, "soft"),
    "si_umx_prior": (ScorePriorUnmix, "soft"),
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def model_family(name: str) -> str:
    """``"umx"``, ``"unet"`` or ``"cnn"`` for a registry name."""
    cls = _REGISTRY[_check_name(name)][0]
    return {OpenUnmix: "umx", ScorePriorUnmix: "umx", ScoreUNet: "unet", ScoreCNN: "cnn"}[cls]


def score_kind_of(name: str) -> str | None:
    """The score input of registry model ``name``: ``"soft"``, ``"binary"`` or ``None``
    (blind)."""
    return _REGISTRY[_check_name(name)][1]


def _check_name(name: str) -> str:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return name


def build_model(name: str, setting: StftSetting | str, **hparams: Any) -> SeparationModel:
    """Build the network called ``name`` for ``setting`` (a ``StftSetting`` or a key of
    ``config.SETTINGS``). ``hparams`` go to the class: ``hidden_size``, ``nb_layers``,
    ``dropout`` (UMX); ``channels``, ``depth``, ``kernel``, ``dropout``, ``n_dropout`` (U-Net);
    ``context``, ``window_hop``, ``v_channels``, ``h_channels``, ``bottleneck``, ... (CNN)."""
    cls, kind = _REGISTRY[_check_name(name)]
    if isinstance(setting, str):
        setting = SETTINGS[setting]
    model = cls(setting, score_kind=kind, **hparams)
    model.name = name
    return model


def hparams_for(name: str, train) -> dict[str, Any]:
    """The hparams a ``config.TrainConfig`` sets for model ``name``: ``hidden_size`` for the
    Open-Unmix family, ``channels`` (``unet_channels``) for the U-Nets, none for ``si_cnn``."""
    fam = model_family(name)
    if fam == "umx":
        return {"hidden_size": train.hidden_size}
    if fam == "unet":
        return {"channels": train.unet_channels}
    return {}
