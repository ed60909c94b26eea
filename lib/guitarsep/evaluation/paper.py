"""The paper's numbers and claims, typed in once: what our results are compared against.

Used by :mod:`guitarsep.evaluation.summary` (``summary.md`` beside the figures of
04_figures.ipynb and ``guitarsep figures``). Where the numbers come from:
docs/method.md#the-papers-figures-and-numbers. Nothing here is computed.
"""
from __future__ import annotations

from dataclasses import dataclass

from guitarsep.vocabulary import UNSEEN_SCENARIOS

__all__ = ["PAPER_MEDIANS", "PAPER_ORDERINGS", "Ordering"]

#: Medians read off the paper's figures (docs/method.md#the-papers-figures-and-numbers), dB:
#: ``PAPER_MEDIANS[setting][scenario][model][combination]``. Unseen: only the examples the
#: paper's text quotes.
PAPER_MEDIANS: dict = {
    "low_res": {"seen": {
        "si_umx_soft": {"ag+ag": 3.1, "ag+eg": 8.2, "eg+eg": 3.5},
        "si_unet_soft": {"ag+ag": -2.5, "ag+eg": 1.0, "eg+eg": -1.1},
        "si_cnn": {"ag+ag": 1.2, "ag+eg": 3.9, "eg+eg": 1.5},
    }},
    "modern": {
        "seen": {
            "si_umx_soft": {"ag+ag": 6.2, "ag+eg": 11.0, "eg+eg": 5.8},
            "si_umx_binary": {"ag+ag": 5.3, "ag+eg": 10.5, "eg+eg": 5.8},
            "si_unet_soft": {"ag+ag": 5.7, "ag+eg": 9.2, "eg+eg": 5.1},
            "si_unet_binary": {"ag+ag": 2.2, "ag+eg": 5.1, "eg+eg": 2.1},
        },
        "a": {
            "si_umx_soft": {"ag+ag": 3.7, "ag+eg": 9.0},
            "si_umx_binary": {"ag+ag": -1.5, "ag+eg": 8.3},
            "umx_blind": {"ag+ag": 2.0, "ag+eg": 10.8},
        },
        "c": {
            "si_umx_soft": {"ag+eg": 5.8},
            "si_umx_binary": {"ag+eg": 1.3},
            "umx_blind": {"ag+eg": -4.3},
        },
        "d": {
            "si_umx_soft": {"ag+ag": 1.5},
            "si_umx_binary": {"ag+ag": -1.0},
            "umx_blind": {"ag+ag": -2.8},
        },
    },
}


@dataclass(frozen=True)
class Ordering:
    """A claim of the paper: median SI-SDR ``models[0] > models[1] > ...`` (``>=`` unless
    ``strict``) in ``setting``, for every combination of each of ``scenarios``."""

    desc: str
    setting: str
    scenarios: tuple[str, ...]
    models: tuple[str, ...]
    strict: bool


#: The orderings the paper claims, in the order ``summary.md`` lists them.
PAPER_ORDERINGS: tuple[Ordering, ...] = (
    Ordering("low_res: SI-UMX > CNN > SI-U-Net", "low_res", ("seen",),
             ("si_umx_soft", "si_cnn", "si_unet_soft"), True),
    Ordering("modern: Open-unmix soft >= binary", "modern", ("seen",),
             ("si_umx_soft", "si_umx_binary"), False),
    Ordering("modern: UNet soft >= binary", "modern", ("seen",),
             ("si_unet_soft", "si_unet_binary"), False),
    Ordering("unseen: soft >= binary", "modern", UNSEEN_SCENARIOS,
             ("si_umx_soft", "si_umx_binary"), False),
    Ordering("unseen: soft > blind", "modern", ("c", "d"), ("si_umx_soft", "umx_blind"), True),
)
