"""From a mixture and the target's score to the target's waveform, for every model and reference.

``separate.py``: STFT -> magnitude estimate (network, oracle ratio mask, or score mask x |X|)
-> Wiener filter (norbert) -> inverse STFT, in chunks with context and cross-fades, so memory
stays flat for any length. Used by evaluation (03_evaluate.ipynb), the listening panel
(05_listen.ipynb), the robustness study (06_robustness.ipynb) and ``guitarsep separate``.
"""
from guitarsep.separation.separate import (estimate_magnitude, mixture, oracle_irm,
                                           score_only, separate_batch, separate_clip,
                                           wiener_target)

__all__ = ["separate_clip", "separate_batch", "estimate_magnitude", "oracle_irm", "score_only",
           "mixture", "wiener_target"]
