"""The project's vocabulary, defined once: scenarios, combinations, score kinds, references,
metrics and the models of each figure.

Every stage names things with these (the corpus manifest, the results table, the figures, the
listening panel and demo page); docs/method.md explains what they mean. No torch, no I/O.
"""
from __future__ import annotations

__all__ = ["COMBINATIONS", "SCENARIOS", "UNSEEN_SCENARIOS", "SCENARIO_COMBINATIONS",
           "SCENARIO_TITLES", "SCORE_KINDS", "REFERENCES", "METRICS", "LOW_RES_MODELS",
           "MODERN_MODELS", "UNSEEN_MODELS", "FIGURE_MODEL_KEYS", "ALL_SCENARIO_MODELS",
           "RANKING_MODEL", "OOF_FAMILIES", "OOF_PAIRINGS", "GENERALIZATION_FAMILIES",
           "GENERALIZATION_MODELS", "SHIPPED_LABEL", "OOF_TITLES"]

#: Timbre families of the two guitars: ag = acoustic, eg = electric.
COMBINATIONS: tuple[str, ...] = ("ag+ag", "ag+eg", "eg+eg")
#: Test scenarios (docs/method.md): seen = both timbres seen in training; a = target seen,
#: other unseen; b = target unseen, other seen; c = two different unseen timbres; d = both
#: guitars in one unseen timbre.
SCENARIOS: tuple[str, ...] = ("seen", "a", "b", "c", "d")
UNSEEN_SCENARIOS: tuple[str, ...] = ("a", "b", "c", "d")
#: Scenario d shares one timbre, so it exists only for same-family pairs.
SCENARIO_COMBINATIONS: dict[str, tuple[str, ...]] = {
    s: (("ag+ag", "eg+eg") if s == "d" else COMBINATIONS) for s in SCENARIOS}
SCENARIO_TITLES: dict[str, str] = {
    "seen": "both timbres seen",
    "a": "(a) target seen, other unseen",
    "b": "(b) target unseen, other seen",
    "c": "(c) both unseen, different",
    "d": "(d) both unseen, same timbre",
}

#: The score input of a network: soft mask M_t/(M_t+M_a), binary mask M_t, or none (blind).
SCORE_KINDS: tuple[str | None, ...] = ("soft", "binary", None)
#: Reference "models" of the results table: the oracle ratio mask (upper bound), the soft
#: score mask alone (no learning) and the mixture itself (the floor).
REFERENCES: tuple[str, ...] = ("oracle_irm", "score_only", "mixture")
#: Metric columns of the results table: SI-SDR for every clip, BSS Eval v4 for a subset.
METRICS: tuple[str, ...] = ("si_sdr", "sdr", "sir", "sar")

#: (model name in the results table, legend label) of each paper figure, in legend order.
LOW_RES_MODELS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "SI-Open-unmix"), ("si_unet_soft", "SI-U-Net"), ("si_cnn", "baseline CNN"))
MODERN_MODELS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "Open-unmix-Soft"), ("si_umx_binary", "Open-unmix-Binary"),
    ("si_unet_soft", "UNet-Soft"), ("si_unet_binary", "UNet-Binary"))
UNSEEN_MODELS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "Soft"), ("si_umx_binary", "Binary"), ("umx_blind", "Blind"))

#: (network, setting) of every model the figures need: what a profile trains.
FIGURE_MODEL_KEYS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "low_res"), ("si_unet_soft", "low_res"), ("si_cnn", "low_res"),
    ("si_umx_soft", "modern"), ("si_umx_binary", "modern"), ("umx_blind", "modern"),
    ("si_unet_soft", "modern"), ("si_unet_binary", "modern"),
)
#: Run keys evaluated in every scenario (the unseen figure's models and the shipped network,
#: ``si_umx_prior`` of the ship profile); the others on "seen".
ALL_SCENARIO_MODELS: frozenset[str] = frozenset(
    [f"modern-{name}" for name, _ in UNSEEN_MODELS] + ["modern-si_umx_prior"])
#: The out-of-family test families (``corpus.variety.HELD_OUT``) and their two cells.
OOF_FAMILIES: tuple[str, ...] = ("oof_sample", "oof_fm", "oof_karplus")
OOF_PAIRINGS: tuple[str, ...] = ("diff", "same")
OOF_TITLES: dict[str, str] = {
    "oof_sample": "out of family: csound GM sample bank",
    "oof_fm": "out of family: OPL3 FM synthesis",
    "oof_karplus": "out of family: Karplus-Strong strings",
}
#: (model, setting) whose per-clip SI-SDR ranks clips as best / median / worst for listening.
RANKING_MODEL: tuple[str, str] = ("si_umx_soft", "modern")
#: The test families of ``figures/generalization.png``: label -> scenarios of the results
#: tables. "unseen soundfont" = both guitars in MuseScore General timbres (scenarios c, d).
GENERALIZATION_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("seen", ("seen",)), ("unseen soundfont", ("c", "d")),
    ("csound samples", ("oof_sample",)), ("OPL3 FM", ("oof_fm",)),
    ("Karplus-Strong", ("oof_karplus",)))
#: The model column of a shipped model in the generalization table is ``shipped-<name>``;
#: the figure shows them all under this key.
SHIPPED_LABEL: str = "shipped"
#: (model, legend label) of ``figures/generalization.png``, in legend order.
GENERALIZATION_MODELS: tuple[tuple[str, str], ...] = (
    (SHIPPED_LABEL, "Shipped (score NMF)"), ("si_umx_soft", "Soft"),
    ("si_umx_binary", "Binary"), ("umx_blind", "Blind"), ("score_only", "Score mask only"),
    ("oracle_irm", "Oracle ratio mask"))
