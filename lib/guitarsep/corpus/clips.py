"""Reading a built corpus: :class:`Corpus` (its tables, notes, stems and clips) and
:class:`Clip`, the one contract for an evaluation clip (used by 01_data.ipynb,
02_train.ipynb through ``guitarsep.training.data``, 03_evaluate.ipynb, 05_listen.ipynb and
06_robustness.ipynb; ``guitarsep`` CLI commands load it with :func:`load_corpus`).
No torch import here. The files are described in :mod:`guitarsep.corpus.layout`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from guitarsep.config import Profile
from guitarsep.corpus.layout import notes_file, stem_file
from guitarsep.corpus.timbres import load_timbres
from guitarsep.io import load_audio
from guitarsep.score import Notes, load_notes

__all__ = ["Clip", "Corpus", "load_corpus"]


@dataclass
class Clip:
    """One evaluation clip (01_data.ipynb, 03_evaluate.ipynb, 05_listen.ipynb,
    06_robustness.ipynb).

    ``mix = target + other`` (float32 mono, same length, at ``sr``); ``target_notes`` /
    ``accomp_notes`` are the notes of the target part and of the other part (the
    accompaniment), times relative to the clip start. ``scenario``, ``combination``,
    ``target_timbre`` and ``other_timbre`` come from the clip's manifest row, which ``row``
    holds in full.
    """
    clip_id: str
    mix: np.ndarray
    target: np.ndarray
    other: np.ndarray
    target_notes: Notes
    accomp_notes: Notes
    sr: int
    scenario: str
    combination: str
    target_timbre: str
    other_timbre: str
    row: dict = field(default_factory=dict)


class Corpus:
    """A built corpus (files: :mod:`guitarsep.corpus.layout`). Used by 01_data.ipynb,
    ``guitarsep.training.data`` (02_train.ipynb: training remixes and fixed clips) and the
    evaluation (03_evaluate.ipynb, 05_listen.ipynb, 06_robustness.ipynb).

    Attributes: ``root`` (Path), ``pieces``, ``renders``, ``manifest``, ``timbres``
    (DataFrames), ``info`` (corpus.json), ``sr``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info = self.root / "corpus.json"
        if not info.exists():
            raise FileNotFoundError(f"no complete corpus at {self.root} (corpus.json missing); "
                                    "run guitarsep.corpus.build_corpus(profile) or "
                                    "`guitarsep build-corpus`")
        self.info = json.loads(info.read_text())
        self.sr = int(self.info["sr"])
        self.pieces = pd.read_csv(self.root / "pieces.csv", dtype={"piece_id": str})
        self.renders = pd.read_csv(self.root / "renders.csv",
                                   dtype={"piece_id": str, "timbre_id": str})
        self.manifest = pd.read_csv(self.root / "manifest.csv",
                                    dtype={"clip_id": str, "piece_id": str,
                                           "target_timbre": str, "other_timbre": str})
        self.timbres = load_timbres()
        self._notes: dict = {}

    def __repr__(self) -> str:
        return (f"Corpus({self.root}, {len(self.pieces)} pieces, {len(self.renders)} renders, "
                f"{len(self.manifest)} clips)")

    def path(self, rel: str) -> Path:
        """Absolute path of a path stored in the tables (01_data.ipynb)."""
        return self.root / rel

    def audio(self, rel: str) -> np.ndarray:
        """float32 mono audio of a stored (relative) path (01_data.ipynb)."""
        x, sr = load_audio(self.root / rel)
        if sr != self.sr:
            raise ValueError(f"{rel}: sample rate {sr}, corpus says {self.sr}")
        return x

    def notes_path(self, piece_id: str, part: int) -> Path:
        """The file of a part's full-piece notes (02_train.ipynb's score-mask cache keys it)."""
        return self.root / notes_file(piece_id, part)

    def notes(self, piece_id: str, part: int) -> Notes:
        """Full-piece notes of a part, cached (01_data.ipynb, 02_train.ipynb's score masks)."""
        k = (piece_id, int(part))
        if k not in self._notes:
            self._notes[k] = load_notes(self.notes_path(piece_id, part))
        return self._notes[k]

    def stem(self, piece_id: str, part: int, timbre_id: str) -> np.ndarray:
        """A train/valid rendering (01_data.ipynb)."""
        return self.audio(stem_file(piece_id, part, timbre_id))

    def clip_notes(self, rel: str) -> Notes:
        """Notes of a stored clip notes file (a manifest ``target_notes`` / ``other_notes``
        path); an empty part (possible in a clip window) is ``Notes.empty()`` rather than the
        error ``load_notes`` raises for user files (01_data.ipynb's statistics)."""
        path = self.root / rel
        has_notes = any(ln.strip() and not ln.lstrip().startswith("#")
                        for ln in path.read_text().splitlines())
        return load_notes(path) if has_notes else Notes.empty()

    def clips(self, split: str | None = None, scenario: str | None = None,
              combination: str | None = None) -> pd.DataFrame:
        """Manifest rows filtered by split / scenario / combination (01_data.ipynb,
        03_evaluate.ipynb, 05_listen.ipynb, 06_robustness.ipynb)."""
        m = self.manifest
        for col, v in (("split", split), ("scenario", scenario), ("combination", combination)):
            if v is not None:
                m = m[m[col] == v]
        return m

    def clip(self, clip_id: str) -> Clip:
        """The clip's audio (mix = target + other) and notes (01_data.ipynb,
        03_evaluate.ipynb, 05_listen.ipynb, 06_robustness.ipynb)."""
        rows = self.manifest[self.manifest.clip_id == clip_id]
        if not len(rows):
            raise KeyError(f"unknown clip_id {clip_id!r}")
        row = rows.iloc[0].to_dict()
        target = self.audio(row["target_audio"])
        other = self.audio(row["other_audio"])
        return Clip(clip_id, (target + other).astype(np.float32), target, other,
                    self.clip_notes(row["target_notes"]), self.clip_notes(row["other_notes"]),
                    self.sr, scenario=str(row["scenario"]), combination=str(row["combination"]),
                    target_timbre=str(row["target_timbre"]),
                    other_timbre=str(row["other_timbre"]), row=row)


def load_corpus(profile: Profile) -> Corpus:
    """The complete corpus of ``profile`` (raises ``FileNotFoundError`` if not built).
    Used by 02_train.ipynb, 03_evaluate.ipynb, 05_listen.ipynb, 06_robustness.ipynb and the
    ``guitarsep`` CLI."""
    return Corpus(profile.corpus_dir)
