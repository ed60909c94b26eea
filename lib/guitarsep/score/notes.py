"""A part's notes (:class:`Notes`), their validation and the text score format.

Used by every score user: ``01_data.ipynb`` and ``06_robustness.ipynb`` (through
:mod:`guitarsep.score`), the corpus build (:func:`save_notes` writes each part's notes,
:func:`notes_to_pretty_midi` renders the stems, :meth:`Notes.window` cuts clips), training
(:meth:`Notes.window` for chunks) and ``guitarsep separate`` (:mod:`guitarsep.app.separate_file`).

The text format (read by :func:`guitarsep.score.readers.load_notes`, written by
:func:`save_notes`): one note per line, ``onset offset pitch [velocity]`` (seconds, MIDI),
under the header comment ``# onset offset pitch velocity``.

Imports numpy only (pretty_midi when :func:`notes_to_pretty_midi` is called): the corpus is
torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guitarsep.io import atomic_path

__all__ = ["Notes", "validate_notes", "save_notes", "notes_to_pretty_midi", "DEFAULT_VELOCITY",
           "DEFAULT_BPM", "TEXT_EXTENSIONS"]

DEFAULT_VELOCITY = 90                 # a note without a velocity (text format, MusicXML)
DEFAULT_BPM = 120.0                   # a score without a tempo mark (MusicXML, Guitar Pro)
TEXT_EXTENSIONS = (".txt", ".csv", ".tsv", ".lab")
_TEXT_HEADER = "# onset offset pitch velocity"
_TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t"}     # everything else: one space


# --------------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Notes:
    """The notes of one part, sorted by onset then pitch.

    Attributes, all of shape ``(n,)``: ``onset``, ``offset`` (float64 seconds, ``onset <
    offset``), ``pitch`` (int64 MIDI 0..127), ``velocity`` (int64 1..127).

    The constructor only coerces dtypes and freezes the arrays (read-only); it trusts the caller
    on order and ranges. Build from untrusted data with :meth:`from_arrays`, which validates and
    sorts. Two ``Notes`` compare equal when all four arrays are equal.
    """

    onset: np.ndarray
    offset: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray

    def __post_init__(self) -> None:
        for name, dtype in (("onset", np.float64), ("offset", np.float64),
                            ("pitch", np.int64), ("velocity", np.int64)):
            arr = np.array(getattr(self, name), dtype=dtype).reshape(-1)
            arr.flags.writeable = False   # frozen all the way down: arrays are shared by views
            object.__setattr__(self, name, arr)
        n = {self.onset.shape[0], self.offset.shape[0], self.pitch.shape[0],
             self.velocity.shape[0]}
        if len(n) != 1:
            raise ValueError(f"Notes arrays differ in length: {sorted(n)}")

    # construction -----------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, onset, offset, pitch, velocity=None, *, source: str = "<arrays>",
                    allow_empty: bool = True) -> "Notes":
        """Validated, sorted ``Notes`` from array-likes of shape ``(n,)``.

        ``velocity`` defaults to :data:`DEFAULT_VELOCITY` (90) for every note. ``source`` names
        the origin (a file path) in error messages. Raises ``ValueError`` as
        :func:`validate_notes` does; an empty part is accepted unless ``allow_empty=False``.
        """
        onset = np.asarray(onset, dtype=np.float64).reshape(-1)
        if velocity is None:
            velocity = np.full(onset.shape, DEFAULT_VELOCITY, dtype=np.int64)
        validate_notes(onset, offset, pitch, velocity, source, allow_empty=allow_empty)
        return cls(onset, offset, pitch, velocity)._sorted()

    @classmethod
    def empty(cls) -> "Notes":
        """A part with no notes (all arrays of shape ``(0,)``)."""
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def _sorted(self) -> "Notes":
        # onset, then pitch, then offset: a total order, so equal inputs give equal outputs
        order = np.lexsort((self.offset, self.pitch, self.onset))
        return self._take(order)

    def _take(self, index) -> "Notes":
        return Notes(self.onset[index], self.offset[index], self.pitch[index],
                     self.velocity[index])

    # queries ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.onset.shape[0])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Notes):
            return NotImplemented
        return all(np.array_equal(getattr(self, f), getattr(other, f))
                   for f in ("onset", "offset", "pitch", "velocity"))

    __hash__ = None  # mutable-looking array payload: not hashable, like numpy arrays

    def __repr__(self) -> str:
        return f"Notes(n={len(self)}, duration={self.duration:.3f} s)"

    @property
    def duration(self) -> float:
        """Latest offset in seconds (0.0 for an empty part)."""
        return float(self.offset.max()) if len(self) else 0.0

    # transformations (each returns a new Notes) -----------------------------------------------
    def window(self, t0: float, t1: float) -> "Notes":
        """Notes overlapping ``[t0, t1)``, clipped to it, with times shifted so ``t0`` -> 0.

        A note held across ``t0`` starts at 0 in the window, one held across ``t1`` ends at
        ``t1 - t0``. Used by the corpus to cut evaluation clips and by training to cut chunks.
        """
        if not t1 > t0:
            raise ValueError(f"window needs t0 < t1, got [{t0}, {t1})")
        keep = (self.onset < t1) & (self.offset > t0)
        clipped = Notes(np.maximum(self.onset[keep], t0) - t0,
                        np.minimum(self.offset[keep], t1) - t0,
                        self.pitch[keep], self.velocity[keep])
        # clipping can bring several onsets to 0: restore the (onset, pitch) order
        return clipped._sorted()

    def around(self, t0: float, t1: float, margin_s: float) -> "Notes":
        """Notes overlapping ``[t0 - margin_s, t1 + margin_s)``, not clipped, with times
        shifted so ``t0`` -> 0 (onsets may be < 0: a note sounding into the block keeps its
        true onset, not a false one at the cut). Used by the separation to hand a block of
        the recording its notes (``separation.separate``, ``separation.score_fit``)."""
        keep = (self.onset < t1 + margin_s) & (self.offset > t0 - margin_s)
        return Notes(self.onset[keep] - t0, self.offset[keep] - t0, self.pitch[keep],
                     self.velocity[keep])

    def shift(self, dt: float) -> "Notes":
        """All times moved by ``dt`` seconds. Raises ``ValueError`` if a time would be < 0."""
        if len(self) and self.onset[0] + dt < 0:
            raise ValueError(f"shift by {dt} s makes the first onset negative "
                             f"({self.onset[0] + dt:.6f} s)")
        return Notes(self.onset + dt, self.offset + dt, self.pitch, self.velocity)

    def transpose(self, semitones: int) -> "Notes":
        """All pitches moved by ``semitones``. Raises ``ValueError`` if one leaves 0..127."""
        pitch = self.pitch + int(semitones)
        if len(self) and (pitch.min() < 0 or pitch.max() > 127):
            raise ValueError(f"transpose by {semitones} leaves the MIDI range 0..127 "
                             f"(pitches {pitch.min()}..{pitch.max()})")
        return Notes(self.onset, self.offset, pitch, self.velocity)

    def concat(self, other: "Notes") -> "Notes":
        """The notes of both parts, merged and sorted (e.g. to treat two parts as one)."""
        return Notes(np.concatenate([self.onset, other.onset]),
                     np.concatenate([self.offset, other.offset]),
                     np.concatenate([self.pitch, other.pitch]),
                     np.concatenate([self.velocity, other.velocity]))._sorted()


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def validate_notes(onset, offset, pitch, velocity, source: str, *,
                   allow_empty: bool = False) -> None:
    """Raise ``ValueError`` naming ``source`` and the first problem found, else return None.

    Arrays are array-likes of shape ``(n,)``; "note i" in messages is the 0-based index in the
    given (file) order. Problems: arrays of different lengths, an empty part (unless
    ``allow_empty``), NaN or inf anywhere, a negative time, ``onset >= offset``, a pitch that is
    not an integer in 0..127, a velocity that is not an integer in 1..127. Example message:
    ``"song.txt: note 3 has onset 2.0 >= offset 1.5"``.
    """
    arrays = {name: np.asarray(a, dtype=np.float64).reshape(-1)
              for name, a in (("onset", onset), ("offset", offset), ("pitch", pitch),
                              ("velocity", velocity))}
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{source}: note arrays differ in length {lengths}")
    if lengths["onset"] == 0:
        if allow_empty:
            return
        raise ValueError(f"{source}: empty part (no notes)")

    def first(bad: np.ndarray) -> int | None:
        idx = np.flatnonzero(bad)
        return int(idx[0]) if idx.size else None

    on, off, pitch, vel = (arrays[k] for k in ("onset", "offset", "pitch", "velocity"))
    for name, a in arrays.items():
        if (i := first(~np.isfinite(a))) is not None:
            raise ValueError(f"{source}: note {i} has {name} {a[i]} (not finite)")
    for name, a in (("onset", on), ("offset", off)):
        if (i := first(a < 0)) is not None:
            raise ValueError(f"{source}: note {i} has negative {name} {a[i]}")
    if (i := first(on >= off)) is not None:
        raise ValueError(f"{source}: note {i} has onset {on[i]} >= offset {off[i]}")
    for name, a, lo, hi in (("pitch", pitch, 0, 127), ("velocity", vel, 1, 127)):
        if (i := first(a != np.round(a))) is not None:
            raise ValueError(f"{source}: note {i} has non-integer {name} {a[i]}")
        if (i := first((a < lo) | (a > hi))) is not None:
            raise ValueError(f"{source}: note {i} has {name} {a[i]:g} outside {lo}..{hi}")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def save_notes(path: str | Path, notes: Notes) -> None:
    """Write ``notes`` in the text format read by :func:`~guitarsep.score.readers.load_notes`.

    A header comment ``# onset offset pitch velocity``, then one note per line with times as
    ``%.6f`` (microsecond precision, enough for any sample rate used here). Fields are separated
    by commas for ``.csv``, tabs for ``.tsv`` and a space otherwise. Parent folders are created;
    the file is written atomically.
    """
    path = Path(path)
    sep = _TEXT_SEPARATORS.get(path.suffix.lower(), " ")
    table = np.column_stack([notes.onset, notes.offset, notes.pitch, notes.velocity])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, table.reshape(-1, 4), fmt=["%.6f", "%.6f", "%d", "%d"], delimiter=sep,
                   header=_TEXT_HEADER.removeprefix("# "), comments="# ")


def notes_to_pretty_midi(notes: Notes, program: int, *, name: str = "",
                         is_drum: bool = False):
    """A ``pretty_midi.Instrument`` (General MIDI ``program`` 0..127) playing ``notes``.

    Used by the corpus to render stems with a soundfont.
    """
    import pretty_midi

    inst = pretty_midi.Instrument(program=int(program), is_drum=is_drum, name=name)
    inst.notes = [pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(s), end=float(e))
                  for s, e, p, v in zip(notes.onset, notes.offset, notes.pitch, notes.velocity)]
    return inst
