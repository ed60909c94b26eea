"""Out-of-family test clips: duets in sound sources that no training or validation clip uses.

The corpus's own test scenarios draw every timbre from GM soundfonts that share samples
(MuseScore General descends from FluidR3), so they cannot show whether a separator holds on
guitar sounds it has never heard. This set can: each *family* of :data:`HELD_OUT` is a sound
source held out of every profile's training data (``corpus.variety`` never draws it):

- ``oof_sample``: the csound GM bank (Debian ``csound-soundfont``), a sample set;
- ``oof_fm``: an OPL3 FM-chip soundfont (Debian ``opl3-soundfont``);
- ``oof_karplus``: our Karplus-Strong plucked string (``corpus.synth.render_karplus``).

The same machinery builds the dev clips of ``scripts/nmf_dev.py`` from a family of
:data:`~guitarsep.corpus.variety.DEV_FAMILIES` (its own seed and folder). Each family has
two cells: ``diff`` (two different timbres of the family) and ``same`` (both
parts in one timbre: only the score tells them apart). ``clips_per_cell`` clips each, cut
from freshly composed pieces (their own seeds, never a training piece), drawn effects on
half of them. The result is a folder readable by :class:`guitarsep.corpus.Corpus` (scenario =
family, combination = cell), under ``<data>/<profile>/out_of_family``. Built by
``guitarsep build-corpus`` and scored by ``guitarsep.evaluation.out_of_family``
(03_evaluate.ipynb).
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from guitarsep.config import OutOfFamilyConfig, Profile, config_hash
from guitarsep.corpus.build import (PREROLL_S, _window_in, _prepare_root,
                                    _stored_key, _task_clip, _write_csv)
from guitarsep.corpus.clips import Corpus, load_corpus
from guitarsep.corpus.compose import CHORD_PAIRS, Piece, generate_idiom_piece
from guitarsep.corpus.layout import (MANIFEST_COLUMNS, PIECES_COLUMNS, RENDERS_COLUMNS,
                                     clip_files, notes_file)
from guitarsep.corpus.variety import DEV_FAMILIES, HELD_OUT, draw_held_out_timbre
from guitarsep.io import write_text_atomic
from guitarsep.parallel import run_tasks
from guitarsep.score import save_notes
from guitarsep.vocabulary import OOF_PAIRINGS

__all__ = ["OOF_VERSION", "NMF_DEV", "NMF_DEV_CHORDS", "build_out_of_family", "out_of_family_dir",
           "nmf_dev_sets"]

OOF_VERSION = 1
#: The score NMF's dev family (scripts/nmf_dev.py, scripts/nmf_diagnose.py): 16 + 16 duets of
#: ``corpus.variety.DEV_FAMILIES``'s additive synthesis, from their own pieces (own seed).
NMF_DEV = OutOfFamilyConfig(seed=9876, families=("dev_additive",), n_pieces=8,
                            clips_per_cell=16)
#: Its chord-on-chord set: 24 + 24 duets of the same synthesis from 16 pieces whose two parts
#: both play chords (``compose.CHORD_PAIRS``): about as much unison as the test families
#: (scripts/oof_unison.py), which the set above lacks.
NMF_DEV_CHORDS = OutOfFamilyConfig(seed=13579, families=("dev_additive",), n_pieces=16,
                                   clips_per_cell=24, role_pairs=CHORD_PAIRS)


def out_of_family_dir(profile: Profile) -> Path:
    """``<data>/<profile>/out_of_family``."""
    return profile.data_dir / "out_of_family"


def _key(cfg: OutOfFamilyConfig) -> str:
    return f"oof-{config_hash(cfg)}-v{OOF_VERSION}"


def _pieces(cfg: OutOfFamilyConfig) -> list[Piece]:
    out = []
    for i in range(int(cfg.n_pieces)):
        roles = None
        if cfg.role_pairs:          # drawn apart from the piece's own stream
            rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 9, i]))
            roles = tuple(cfg.role_pairs[int(rng.integers(len(cfg.role_pairs)))])
            roles = roles[::-1] if rng.random() < 0.5 else roles
        p0, p1, meta = generate_idiom_piece(np.random.SeedSequence([cfg.seed, 7, i]),
                                            cfg.piece_seconds, roles=roles)
        out.append(Piece(f"oof_{i:03d}", "idiom", meta["style"], "test", meta["tempo"],
                         (p0, p1), meta))
    return out


def _pair(rng, family: str, pairing: str, clip_id: str) -> tuple[dict, dict]:
    """(target spec, other spec): one spec twice for ``same``; two different ones for
    ``diff`` (for a soundfont family, two different programs)."""
    target = draw_held_out_timbre(rng, family, f"{clip_id}_t")
    if pairing == "same":
        return target, dict(target)
    for _ in range(20):
        other = draw_held_out_timbre(rng, family, f"{clip_id}_o")
        if other.get("program") is None or other["program"] != target["program"]:
            break
    return target, other


def _plan(cfg: OutOfFamilyConfig, pieces: list[Piece]) -> tuple[list[dict], dict]:
    rows, specs = [], {}
    for fi, family in enumerate(cfg.families):
        for pj, pairing in enumerate(OOF_PAIRINGS):
            for k in range(int(cfg.clips_per_cell)):
                rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 8, fi, pj, k]))
                clip_id = f"{family}_{pairing}_{k:03d}"
                order = (k + int(rng.integers(len(pieces)))) % len(pieces)
                piece, start = _window_in(rng, pieces, order, cfg.clip_seconds)
                if start is None:
                    raise ValueError(f"no out-of-family piece has a {cfg.clip_seconds} s window "
                                     "with notes in both parts; raise n_pieces")
                t_spec, o_spec = _pair(rng, family, pairing, clip_id)
                specs[t_spec["timbre_id"]], specs[o_spec["timbre_id"]] = t_spec, o_spec
                rows.append(dict(clip_id=clip_id, split="test", scenario=family,
                                 combination=pairing, piece_id=piece.piece_id,
                                 target_part=int(rng.integers(2)),
                                 target_timbre=t_spec["timbre_id"],
                                 other_timbre=o_spec["timbre_id"], **clip_files(clip_id),
                                 seed=int(rng.integers(2**31)), start_s=start,
                                 duration_s=float(cfg.clip_seconds)))
    return rows, specs


def build_out_of_family(profile: Profile, progress: bool = True) -> Corpus:
    """Build (or reuse) the out-of-family clips of ``profile``; return them as a Corpus.

    Cached like the corpus: a folder whose ``corpus.json`` holds the current key is returned
    at once; another key's files are wiped first; files are written atomically.
    """
    cfg = profile.oof
    root = out_of_family_dir(profile)
    key = {"key": _key(cfg), "version": OOF_VERSION}
    if _stored_key(root / "corpus.json") == key["key"]:
        return Corpus(root)
    t_start = time.time()
    _prepare_root(root, key)
    pieces = _pieces(cfg)
    prow = []
    for pc in pieces:
        for part, notes in enumerate(pc.parts):
            save_notes(root / notes_file(pc.piece_id, part), notes)
        prow.append(dict(piece_id=pc.piece_id, source=pc.source, style=pc.style, split="test",
                         duration=float(cfg.piece_seconds), tempo=float(pc.tempo),
                         n_notes_p0=len(pc.parts[0]), n_notes_p1=len(pc.parts[1])))
    rows, specs = _plan(cfg, pieces)
    by_id = {pc.piece_id: pc for pc in pieces}
    tasks = []
    for c in rows:
        t0 = max(0.0, c["start_s"] - PREROLL_S)
        parts = tuple(p.window(t0, c["start_s"] + c["duration_s"]).shift(t0)
                      for p in by_id[c["piece_id"]].parts)
        tasks.append((_task_clip, (str(root), c, parts, specs, int(cfg.sr),
                                   float(cfg.target_lufs))))
    run_tasks(tasks, int(cfg.n_jobs), progress=progress, unit="render",
              desc=f"out-of-family clips {profile.name}")
    write_text_atomic(root / "drawn_timbres.json", json.dumps(specs, indent=0) + "\n")
    _write_csv(root / "pieces.csv", pd.DataFrame(prow, columns=PIECES_COLUMNS))
    _write_csv(root / "renders.csv", pd.DataFrame([], columns=RENDERS_COLUMNS))
    _write_csv(root / "manifest.csv", pd.DataFrame(rows, columns=MANIFEST_COLUMNS))
    info = dict(key, profile=profile.name, sr=int(cfg.sr), n_clips=len(rows),
                families={f: list({**HELD_OUT, **DEV_FAMILIES}[f]) for f in cfg.families},
                build_seconds=round(time.time() - t_start, 1))
    write_text_atomic(root / "corpus.json", json.dumps(info, indent=1) + "\n")
    return Corpus(root)


def nmf_dev_sets(profile: Profile, progress: bool = True) -> list[tuple[str, Corpus, str]]:
    """``(name, corpus, split)`` of the score NMF's three dev sets: the :data:`NMF_DEV` and
    :data:`NMF_DEV_CHORDS` duets (built if needed under ``<data>/nmf_dev*/out_of_family``)
    and ``profile``'s validation clips. Never a test clip (scripts/nmf_dev.py,
    scripts/nmf_diagnose.py, scripts/oof_unison.py)."""
    dev = build_out_of_family(replace(profile, name="nmf_dev", oof=NMF_DEV), progress)
    chords = build_out_of_family(replace(profile, name="nmf_dev_chords", oof=NMF_DEV_CHORDS),
                                 progress)
    return [("additive", dev, "test"), ("chords", chords, "test"),
            ("validation", load_corpus(profile), "valid")]
