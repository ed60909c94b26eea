"""Guitar timbres of the synthetic corpus: soundfont + General MIDI program + effects chain
(used by ``guitarsep.corpus.build`` / ``guitarsep.corpus.render``; 01_data.ipynb shows the table and plays
one clip per timbre).

The table lives in ``lib/guitarsep/resources/timbres.csv`` (committed), columns ``timbre_id,
family, soundfont, program, chain, pool``:

- ``family``: ``ag`` (acoustic, GM programs 24 nylon / 25 steel) or ``eg`` (electric, GM 26
  jazz, 27 clean, 28 muted, 29 overdrive, 30 distortion).
- ``pool``: ``seen`` timbres are the only ones rendered for training and validation; they use
  two soundfonts (TimGM6mb, FluidR3_GM) and the chains ``clean, comp_chorus, amp_od,
  distortion, reverb_room, eq_warm``. ``unseen`` timbres (test scenarios a-d) use a third
  soundfont (MuseScore General) and add chains never used in training (``phaser,
  plate_delay, eq_bright, fuzz``). The paper holds out two timbres; we hold out a pool so that
  per-clip results are not about one lucky/unlucky timbre.

Effects run in ``pedalboard`` on a freshly built board per call (LFOs, reverb and delay lines
start from the same state every time, so a render depends only on its input).
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from guitarsep import RESOURCES

__all__ = ["TIMBRE_CSV", "CHAINS", "SEEN_CHAINS", "UNSEEN_CHAINS", "FAMILY_PROGRAMS",
           "load_timbres", "timbre_table_hash", "timbre_sides", "soundfont_path", "apply_chain",
           "build_chain"]

TIMBRE_CSV = RESOURCES / "timbres.csv"
FAMILY_PROGRAMS = {"ag": (24, 25), "eg": (26, 27, 28, 29, 30)}
_COLUMNS = ["timbre_id", "family", "soundfont", "program", "chain", "pool"]


def _chain_specs() -> dict[str, list[tuple[str, dict]]]:
    """Chain name -> list of (pedalboard plugin class name, kwargs). Data, not objects, so the
    spec can be printed in the notebook and a fresh board built for every render."""
    return {
        # --- seen in training ---
        "clean": [],
        "comp_chorus": [("Compressor", dict(threshold_db=-24.0, ratio=4.0, attack_ms=5.0,
                                            release_ms=120.0)),
                        ("Chorus", dict(rate_hz=0.8, depth=0.25, centre_delay_ms=7.0,
                                        feedback=0.0, mix=0.4))],
        # amp-ish overdrive: pre-gain, soft clipper with a small drive, speaker-like low-pass
        "amp_od": [("Gain", dict(gain_db=6.0)), ("Distortion", dict(drive_db=12.0)),
                   ("LowpassFilter", dict(cutoff_frequency_hz=5000.0))],
        "distortion": [("HighpassFilter", dict(cutoff_frequency_hz=80.0)),
                       ("Distortion", dict(drive_db=28.0)),
                       ("LowpassFilter", dict(cutoff_frequency_hz=6500.0))],
        "reverb_room": [("Reverb", dict(room_size=0.35, damping=0.5, wet_level=0.25,
                                        dry_level=0.8, width=0.0))],
        "eq_warm": [("LowShelfFilter", dict(cutoff_frequency_hz=250.0, gain_db=5.0)),
                    ("HighShelfFilter", dict(cutoff_frequency_hz=3000.0, gain_db=-6.0))],
        # --- never used in training (unseen pool only) ---
        # MuseScore General's guitars descend from FluidR3's samples (their dry log-mel
        # distance is ~2 dB), so the unseen pool gets its distance from these chains, which
        # change the spectrum more than the seen ones do.
        "phaser_wah": [("LadderFilter", dict(mode="BPF12", cutoff_hz=1000.0, resonance=0.5,
                                             drive=1.0)),
                       ("Phaser", dict(rate_hz=0.6, depth=0.8, centre_frequency_hz=1000.0,
                                       feedback=0.4, mix=0.6))],
        # a bright, long "plate" (large, lightly damped room) after a delay
        "plate_delay": [("LowShelfFilter", dict(cutoff_frequency_hz=250.0, gain_db=-9.0)),
                        ("HighShelfFilter", dict(cutoff_frequency_hz=2500.0, gain_db=8.0)),
                        ("Delay", dict(delay_seconds=0.32, feedback=0.3, mix=0.25)),
                        ("Reverb", dict(room_size=0.85, damping=0.2, wet_level=0.35,
                                        dry_level=0.7, width=0.0))],
        "mid_scoop": [("LowShelfFilter", dict(cutoff_frequency_hz=150.0, gain_db=8.0)),
                      ("PeakFilter", dict(cutoff_frequency_hz=800.0, gain_db=-18.0, q=0.5)),
                      ("HighShelfFilter", dict(cutoff_frequency_hz=4000.0, gain_db=8.0))],
        # band-limited "telephone" guitar with a little grit
        "telephone": [("HighpassFilter", dict(cutoff_frequency_hz=500.0)),
                      ("HighpassFilter", dict(cutoff_frequency_hz=500.0)),
                      ("LowpassFilter", dict(cutoff_frequency_hz=3000.0)),
                      ("LowpassFilter", dict(cutoff_frequency_hz=3000.0)),
                      ("Distortion", dict(drive_db=6.0))],
        "fuzz_honk": [("Gain", dict(gain_db=18.0)), ("Clipping", dict(threshold_db=-10.0)),
                      ("PeakFilter", dict(cutoff_frequency_hz=1500.0, gain_db=10.0, q=1.0)),
                      ("LowpassFilter", dict(cutoff_frequency_hz=3000.0)),
                      ("HighpassFilter", dict(cutoff_frequency_hz=250.0))],
    }


CHAINS: dict[str, list[tuple[str, dict]]] = _chain_specs()
SEEN_CHAINS = ("clean", "comp_chorus", "amp_od", "distortion", "reverb_room", "eq_warm")
UNSEEN_CHAINS = ("phaser_wah", "plate_delay", "mid_scoop", "telephone", "fuzz_honk")


def load_timbres(path: str | Path | None = None) -> pd.DataFrame:
    """The timbre table (default: the committed ``resources/timbres.csv``), one row per timbre.

    Columns ``timbre_id, family, soundfont, program, chain, pool``; ``program`` is int. Checks
    the columns, unique ids, families (ag|eg), pools (seen|unseen) and known chains, and that no
    unseen-only chain appears in the seen pool. Used by the corpus and 01_data.ipynb.
    """
    path = Path(path) if path else TIMBRE_CSV
    df = pd.read_csv(path, dtype={"timbre_id": str, "family": str, "soundfont": str,
                                  "program": int, "chain": str, "pool": str})
    if list(df.columns) != _COLUMNS:
        raise ValueError(f"{path}: columns {list(df.columns)}, expected {_COLUMNS}")
    if df.timbre_id.duplicated().any():
        dup = df.timbre_id[df.timbre_id.duplicated()].tolist()
        raise ValueError(f"{path}: duplicate timbre ids {dup}")
    for col, ok in (("family", {"ag", "eg"}), ("pool", {"seen", "unseen"}), ("chain", set(CHAINS))):
        bad = sorted(set(df[col]) - ok)
        if bad:
            raise ValueError(f"{path}: unknown {col} {bad}; known: {sorted(ok)}")
    leak = df[(df.pool == "seen") & df.chain.isin(UNSEEN_CHAINS)]
    if len(leak):
        raise ValueError(f"{path}: seen timbres use unseen-only chains: {leak.timbre_id.tolist()}")
    return df.reset_index(drop=True)


def timbre_sides(timbres: pd.DataFrame) -> dict[str, str]:
    """The fixed roles of the seen pool: ``{timbre_id: "target" | "other"}`` for every seen
    timbre (unseen timbres have no side).

    The paper's blind Open-Unmix had a cue which guitar to return: its training tracks kept
    fixed stems, the target always rendered in the same seen timbre. We mirror that with a
    convention (our decision): within each family, the seen timbres sorted by id alternate
    target side, other side (ag: s00 s02 s04 | s01 s03 s05; eg: s06 s08 s10 s12 | s07 s09 s11
    s13), so each side mixes both soundfonts and several chains. The blind model trains on
    remixes whose target is rendered from the target side and whose other guitar from the
    other side (``training.data.RemixDataset``), and the test clips follow the same convention
    wherever a seen timbre is drawn (``corpus.build``: seen, a, b), so every model is scored on
    the same clips and the blind one has its cue exactly where the paper's had it. Used by
    ``corpus.build``, ``training.loop`` and 01_data.ipynb.
    """
    sides = {}
    seen = timbres[timbres.pool == "seen"]
    for fam in sorted(set(seen.family)):
        ids = sorted(seen[seen.family == fam].timbre_id)
        sides.update({t: ("target" if k % 2 == 0 else "other") for k, t in enumerate(ids)})
    return sides


def timbre_table_hash(path: str | Path | None = None) -> str:
    """sha256 (12 hex) of the timbre table *and* chain specs: part of the corpus cache key."""
    path = Path(path) if path else TIMBRE_CSV
    h = hashlib.sha256(Path(path).read_bytes())
    h.update(repr(sorted(CHAINS.items())).encode())
    return h.hexdigest()[:12]


def _soundfont_dirs() -> list[Path]:
    import pretty_midi  # ships TimGM6mb.sf2 next to its module
    dirs = [Path(d) for d in os.environ.get("GUITARSEP_SOUNDFONTS", "").split(os.pathsep) if d]
    dirs += [Path(pretty_midi.__file__).parent, Path("/usr/share/sounds/sf2"),
             Path("/usr/share/sounds/sf3"), Path("/usr/share/soundfonts"),
             Path("/usr/local/share/soundfonts")]
    return dirs


@lru_cache(maxsize=None)
def soundfont_path(name: str) -> str:
    """Absolute path of a soundfont file name from the table.

    Searched in ``$GUITARSEP_SOUNDFONTS`` (os.pathsep-separated), pretty_midi's package folder
    (``TimGM6mb.sf2``), ``/usr/share/sounds/sf2`` (Debian ``fluid-soundfont-gm``:
    ``FluidR3_GM.sf2``), ``/usr/share/sounds/sf3`` (Debian ``musescore-general-soundfont``;
    there ``MuseScore_General.sf3`` may be a link to the Lite edition, which is what we use),
    ``/usr/share/soundfonts``. Raises ``FileNotFoundError`` listing the folders searched.
    """
    dirs = _soundfont_dirs()
    for d in dirs:
        p = d / name
        if p.is_file():
            return str(p.resolve())
    raise FileNotFoundError(f"soundfont {name!r} not found in {[str(d) for d in dirs]}; "
                            "install it or set GUITARSEP_SOUNDFONTS")


def build_chain(chain):
    """A fresh ``pedalboard.Pedalboard`` for a chain name (see :data:`CHAINS`) or a spec
    ``[[plugin class name, kwargs], ...]`` (``corpus.variety.draw_effects``)."""
    import pedalboard
    if isinstance(chain, str):
        if chain not in CHAINS:
            raise ValueError(f"unknown effects chain {chain!r}; known: {sorted(CHAINS)}")
        chain = CHAINS[chain]
    plugins = []
    for cls, kw in chain:
        kw = dict(kw)
        if cls == "LadderFilter" and isinstance(kw.get("mode"), str):   # enum kept as text
            kw["mode"] = getattr(pedalboard.LadderFilter.Mode, kw["mode"])
        plugins.append(getattr(pedalboard, cls)(**kw))
    return pedalboard.Pedalboard(plugins)


def apply_chain(audio: np.ndarray, sr: int, chain) -> np.ndarray:
    """``audio`` (float32 mono ``(n,)``) through an effects chain (a name or a spec list, see
    :func:`build_chain`); same length, float32.

    Deterministic: a new board per call. The level going in matters for the drive of the
    distortions, so ``render.render_part`` feeds the chain a loudness-normalised dry signal.
    """
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if not (CHAINS.get(chain, True) if isinstance(chain, str) else chain):   # no effects
        return x.copy()
    board = build_chain(chain)
    y = board(x[None, :], float(sr), reset=True)
    return np.ascontiguousarray(y[0, : len(x)], dtype=np.float32)
