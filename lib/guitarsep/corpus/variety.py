"""Random timbres: the training variety of the ``ship`` profile and the held-out test families.

A *timbre spec* is a plain dict (JSON-serialisable, so the corpus can store what it rendered)
that :func:`guitarsep.corpus.render.render_part` understands besides a row of the timbre
table::

    {"timbre_id": "v0003p1r0", "source": "soundfont", "soundfont": "FluidR3_GM.sf2",
     "program": 27, "effects": [["Compressor", {...}], ["Reverb", {...}]], "seed": 12}
    {"timbre_id": "...", "source": "additive", "synth": {...AdditiveParams...}, "effects": [...]}
    {"timbre_id": "...", "source": "karplus", "synth": {...KarplusParams...}, "effects": [...]}

Used by ``guitarsep.corpus.build`` (``CorpusConfig.train_timbres = "variety"``: every
training rendering draws its own timbre) and ``guitarsep.corpus.out_of_family`` (the test
families); 01_data.ipynb lists the families.

Decisions (docs/method.md#data-and-scenarios):

* **Training sources**: every guitar program (GM 24-31: nylon, steel, jazz, clean, muted,
  overdrive, distortion, harmonics) of the two training soundfonts, and our additive/FM
  synthesis (``corpus.synth``) with parameters drawn per rendering, about half each.
  MuseScore General stays out (it makes the corpus's *unseen* pool), and so do the held-out
  families of :data:`HELD_OUT`.
* **Effects** are drawn with continuous parameters: EQ (low/high shelf, one peak), drive with a
  speaker low-pass, compression, chorus, a room. The plugins of the corpus's unseen-only
  chains (phaser, delay, ladder filter, hard clipping) are never drawn, so scenarios c/d keep
  effects that training never heard.
* **Playing** departs from the score (:func:`perform`, drawn per rendering; on half of the
  test renderings): jittered onsets, strummed chords with staggered onsets, notes cut short
  (palm mute) or left ringing. Pitch bends and slides are not modelled (the soundfonts would
  need per-note channels).
"""
from __future__ import annotations

import numpy as np

__all__ = ["TRAINING_SOUNDFONTS", "GUITAR_PROGRAMS", "HELD_OUT", "DEV_FAMILIES", "draw_effects",
           "draw_performance", "perform", "draw_training_timbre", "draw_held_out_timbre",
           "timbre_family"]

TRAINING_SOUNDFONTS = ("TimGM6mb.sf2", "FluidR3_GM.sf2")
GUITAR_PROGRAMS = tuple(range(24, 32))
#: Out-of-family test families: name -> (source, soundfont or None). Never rendered for
#: training or validation (tests/test_corpus.py checks the training draws).
HELD_OUT: dict[str, tuple[str, str | None]] = {
    "oof_sample": ("soundfont", "sf_GMbank.sf2"),        # Debian csound-soundfont
    "oof_fm": ("soundfont", "OPL-3_FM_128M.sf2"),        # Debian opl3-soundfont (OPL3 FM)
    "oof_karplus": ("karplus", None),                    # our Karplus-Strong (corpus.synth)
}
#: Dev families: sound sources on which the score NMF's parameters are chosen
#: (scripts/nmf_dev.py). The NMF learns nothing, so a training source serves; it must only not
#: be a test family, so that choosing never looks at a test clip.
DEV_FAMILIES: dict[str, tuple[str, str | None]] = {
    "dev_additive": ("additive", None),                  # our additive/FM synthesis
}
_ELECTRIC = set(range(26, 32))


def _u(rng, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def draw_effects(rng: np.random.Generator) -> list:
    """A random effects chain: ``[[pedalboard class name, kwargs], ...]`` (possibly empty)."""
    fx: list = []
    if rng.random() < 0.6:
        fx.append(["LowShelfFilter", dict(cutoff_frequency_hz=_u(rng, 80, 400),
                                          gain_db=_u(rng, -8, 8))])
        fx.append(["HighShelfFilter", dict(cutoff_frequency_hz=_u(rng, 1500, 6000),
                                           gain_db=_u(rng, -12, 8))])
    if rng.random() < 0.4:
        fx.append(["PeakFilter", dict(cutoff_frequency_hz=float(np.exp(_u(rng, np.log(200),
                                                                           np.log(4000)))),
                                      gain_db=_u(rng, -12, 12), q=_u(rng, 0.4, 3.0))])
    if rng.random() < 0.35:
        fx.append(["Distortion", dict(drive_db=_u(rng, 4, 32))])
        fx.append(["LowpassFilter", dict(cutoff_frequency_hz=_u(rng, 2500, 9000))])
    if rng.random() < 0.4:
        fx.append(["Compressor", dict(threshold_db=_u(rng, -36, -12), ratio=_u(rng, 1.5, 8),
                                      attack_ms=_u(rng, 1, 30), release_ms=_u(rng, 50, 300))])
    if rng.random() < 0.25:
        fx.append(["Chorus", dict(rate_hz=_u(rng, 0.2, 2.0), depth=_u(rng, 0.05, 0.4),
                                  centre_delay_ms=_u(rng, 4, 12), feedback=0.0,
                                  mix=_u(rng, 0.2, 0.5))])
    if rng.random() < 0.45:
        fx.append(["Reverb", dict(room_size=_u(rng, 0.1, 0.7), damping=_u(rng, 0.2, 0.8),
                                  wet_level=_u(rng, 0.08, 0.35), dry_level=_u(rng, 0.7, 0.9),
                                  width=0.0)])
    return fx


def draw_performance(rng: np.random.Generator) -> dict:
    """How a rendering departs from its score (:func:`perform`): onset jitter (s), strum
    spread of chord notes (s per string), note-length factor range (palm mute .. let-ring)."""
    return {"jitter_s": _u(rng, 0.0, 0.025), "strum_s": _u(rng, 0.0, 0.02),
            "legato": sorted((_u(rng, 0.5, 1.0), _u(rng, 1.0, 1.6))),
            "seed": int(rng.integers(2**31))}


def perform(notes, performance: dict | None):
    """The notes as played: each onset jittered, chord notes (onsets within 15 ms) spread
    like a strum (up or down, per chord), each length scaled by a factor drawn in ``legato``.
    The score the network is given stays the written one, so training teaches it that a
    score is only approximate. ``None`` returns ``notes``. Notes -> Notes (same count)."""
    from guitarsep.score.notes import Notes

    if not performance or len(notes) == 0:
        return notes
    rng = np.random.default_rng(int(performance["seed"]))
    onset = notes.onset.copy()
    chord = np.concatenate([[0], np.cumsum(np.diff(onset) > 0.015)])
    for c in np.unique(chord):
        idx = np.flatnonzero(chord == c)
        order = idx[np.argsort(notes.pitch[idx])]
        if rng.random() < 0.5:                          # down-strum starts on the high string
            order = order[::-1]
        onset[order] += np.arange(len(order)) * float(performance["strum_s"])
    onset += np.clip(rng.normal(0, float(performance["jitter_s"]) + 1e-9, len(onset)),
                     -0.05, 0.05)
    lo, hi = performance["legato"]
    length = (notes.offset - notes.onset) * rng.uniform(lo, hi, len(onset))
    onset = np.maximum(onset, 0.0)
    return Notes.from_arrays(onset, onset + np.maximum(length, 0.03), notes.pitch,
                             notes.velocity, source="performance")


def timbre_family(spec: dict) -> str:
    """``ag`` (acoustic programs), ``eg`` (electric programs) or ``synth``."""
    if spec["source"] != "soundfont":
        return "synth"
    return "eg" if int(spec["program"]) in _ELECTRIC else "ag"


def draw_training_timbre(rng: np.random.Generator, timbre_id: str) -> dict:
    """A random training timbre spec (soundfont program or additive synthesis, plus
    :func:`draw_effects`)."""
    from guitarsep.corpus.synth import AdditiveParams

    spec: dict = {"timbre_id": timbre_id, "seed": int(rng.integers(2**31))}
    if rng.random() < 0.55:
        spec.update(source="soundfont",
                    soundfont=TRAINING_SOUNDFONTS[int(rng.integers(len(TRAINING_SOUNDFONTS)))],
                    program=int(GUITAR_PROGRAMS[int(rng.integers(len(GUITAR_PROGRAMS)))]))
    else:
        from dataclasses import asdict
        spec.update(source="additive", synth=asdict(AdditiveParams.draw(rng)))
    spec["effects"] = draw_effects(rng)
    spec["performance"] = draw_performance(rng)
    return spec


def draw_held_out_timbre(rng: np.random.Generator, family: str, timbre_id: str) -> dict:
    """A random timbre of an out-of-family test family (:data:`HELD_OUT`) or a dev family
    (:data:`DEV_FAMILIES`); effects as in training with probability 1/2, else dry, so the
    family differs by its sound source."""
    from dataclasses import asdict

    from guitarsep.corpus.synth import AdditiveParams, KarplusParams

    families = {**HELD_OUT, **DEV_FAMILIES}
    if family not in families:
        raise ValueError(f"unknown test family {family!r}; known: {sorted(families)}")
    source, soundfont = families[family]
    spec: dict = {"timbre_id": timbre_id, "source": source, "seed": int(rng.integers(2**31))}
    if source == "soundfont":
        spec.update(soundfont=soundfont, program=int(rng.integers(24, 31)))
    elif source == "karplus":
        spec["synth"] = asdict(KarplusParams.draw(rng))
    else:
        spec["synth"] = asdict(AdditiveParams.draw(rng))
    spec["effects"] = draw_effects(rng) if rng.random() < 0.5 else []
    spec["performance"] = draw_performance(rng) if rng.random() < 0.5 else None
    return spec
