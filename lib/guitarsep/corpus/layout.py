"""Where a built corpus keeps what: the table columns and the one place each stored file's
path is spelled (written by :mod:`guitarsep.corpus.build`, read by
:class:`guitarsep.corpus.clips.Corpus`; 01_data.ipynb shows the tables). No torch import here.

Layout under ``profile.corpus_dir`` (docs/design.md, "corpus/layout.py"):

- ``pieces.csv`` (:data:`PIECES_COLUMNS`): piece_id, source (idiom|music21), style, split,
  duration, tempo, n_notes_p0, n_notes_p1
- ``notes/<piece_id>_p<part>.txt`` (:func:`notes_file`): the full piece's notes per part
  (``score.save_notes``)
- ``stems/<piece_id>_p<part>_<timbre_id>.flac`` (:func:`stem_file`): train/valid renderings,
  44.1 kHz mono, 16-bit FLAC
- ``renders.csv`` (:data:`RENDERS_COLUMNS`): piece_id, part, timbre_id, family, pool, split,
  path (relative)
- ``clips/<clip_id>/{target.flac, other.flac, target.txt, other.txt}`` (:func:`clip_files`):
  evaluation clips
- ``manifest.csv`` (:data:`MANIFEST_COLUMNS`): one row per clip (valid + test): clip_id, split,
  scenario, combination, piece_id, target_part, target_timbre, other_timbre, target_audio,
  other_audio, target_notes, other_notes, seed, start_s, duration_s
- ``corpus.json``: cache key, build time, sizes, hours per split; written last, only when
  the build is complete. ``build.json`` (the key of the build in progress) is written first.
- ``cache/``: arrays that ``guitarsep.training.data`` derives from the corpus (02_train.ipynb).
"""
from __future__ import annotations

__all__ = ["PIECES_COLUMNS", "RENDERS_COLUMNS", "MANIFEST_COLUMNS", "notes_file", "stem_file",
           "clip_files"]

PIECES_COLUMNS = ["piece_id", "source", "style", "split", "duration", "tempo", "n_notes_p0",
                  "n_notes_p1"]
RENDERS_COLUMNS = ["piece_id", "part", "timbre_id", "family", "pool", "split", "path"]
MANIFEST_COLUMNS = ["clip_id", "split", "scenario", "combination", "piece_id", "target_part",
                    "target_timbre", "other_timbre", "target_audio", "other_audio",
                    "target_notes", "other_notes", "seed", "start_s", "duration_s"]


def notes_file(piece_id: str, part: int) -> str:
    """``notes/<piece_id>_p<part>.txt``: a part's full-piece notes, relative to the corpus
    root (the build writes it, ``Corpus.notes_path`` / ``Corpus.notes`` and 02_train.ipynb's
    score masks read it)."""
    return f"notes/{piece_id}_p{int(part)}.txt"


def stem_file(piece_id: str, part: int, timbre_id: str) -> str:
    """``stems/<piece_id>_p<part>_<timbre_id>.flac``: a train/valid rendering, relative to the
    corpus root (as stored in ``renders.csv``; 01_data.ipynb and 02_train.ipynb read them)."""
    return f"stems/{piece_id}_p{int(part)}_{timbre_id}.flac"


def clip_files(clip_id: str) -> dict[str, str]:
    """The four files of an evaluation clip, relative to the corpus root, keyed by their
    manifest column (``target_audio``, ``other_audio``, ``target_notes``, ``other_notes``).
    Read through ``Corpus.clip`` by 01_data.ipynb, 03_evaluate.ipynb and 05_listen.ipynb."""
    base = f"clips/{clip_id}"
    return dict(target_audio=f"{base}/target.flac", other_audio=f"{base}/other.flac",
                target_notes=f"{base}/target.txt", other_notes=f"{base}/other.txt")
