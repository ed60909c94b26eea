"""Score input and score masks (used by 01_data.ipynb, the corpus, training and separation).

A part's notes are held in :class:`Notes`: parallel arrays of onset and offset (seconds),
MIDI pitch and velocity. Who uses what:

- ``01_data.ipynb``: :func:`load_notes` / :func:`list_parts` on the user's own scores, and
  :func:`score_masks` to draw the masks over a spectrogram.
- the corpus (``guitarsep.corpus``): :func:`save_notes`, :func:`load_notes`,
  :func:`notes_to_pretty_midi` (to render stems), :meth:`Notes.window` (to cut clips).
- training (``guitarsep.data``): :func:`binary_score_mask` once per (piece, part), cached, then
  :func:`soft_from_binary` per remix, so the soft mask of any target/accompaniment pair costs
  one division.
- separation (``guitarsep.separate``): :func:`score_masks` for a clip's two parts.

The mask follows METHOD.md ("Score mask"): a harmonic comb of ``params.n_harmonics``
harmonics, ``±params.cents`` wide, over the frames a note sounds in, extended by the onset /
offset tolerances. Decisions that METHOD.md leaves open are written in the docstrings of
:func:`binary_score_mask` (frame and bin inclusion, the nearest-bin rule for low notes at a
coarse resolution).

The module imports neither torch nor music21 / pretty_midi at import time: the corpus must
stay torch-free and the score readers are only needed when a file is read.
"""
from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guitarsep.config import MaskParams

__all__ = [
    "Notes", "validate_notes", "load_notes", "list_parts", "save_notes", "notes_to_pretty_midi",
    "binary_score_mask", "soft_from_binary", "score_masks", "DEFAULT_VELOCITY",
    "MIDI_EXTENSIONS", "TEXT_EXTENSIONS", "MUSICXML_EXTENSIONS", "GUITARPRO_EXTENSIONS",
]

DEFAULT_VELOCITY = 90
DEFAULT_BPM = 120.0
MIDI_EXTENSIONS = (".mid", ".midi")
TEXT_EXTENSIONS = (".txt", ".csv", ".tsv", ".lab")
MUSICXML_EXTENSIONS = (".xml", ".musicxml", ".mxl")
GUITARPRO_EXTENSIONS = (".gp3", ".gp4", ".gp5")
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
# Reading and writing scores
# --------------------------------------------------------------------------------------------

def load_notes(path: str | Path, part: int | str | None = None) -> Notes:
    """Read one part of a score file as validated, sorted :class:`Notes`.

    Format by extension:

    - ``.mid``/``.midi`` (pretty_midi): ``part`` is an instrument index, an instrument name
      (case-insensitive) or None for the only non-drum instrument.
    - ``.txt``/``.csv``/``.tsv``/``.lab``: the paper's text format, one note per line
      ``onset offset pitch [velocity]`` (seconds, MIDI), fields separated by whitespace, commas
      or tabs; ``#`` starts a comment, blank lines are skipped and so is one leading header line
      of words (e.g. ``onset,offset,pitch``). Velocity defaults to 90. One part: ``part`` must
      be None or 0.
    - ``.xml``/``.musicxml``/``.mxl`` (music21): ``part`` is a part index, a part name or id
      (case-insensitive) or None for the only part. Times come from the score's metronome marks
      (120 bpm before the first / without one); ties are merged, chords give one note per
      pitch, zero-length (grace) notes and chord symbols are dropped, repeats are not expanded.
    - ``.gp3``/``.gp4``/``.gp5`` (Guitar Pro tabs, pyguitarpro): ``part`` is a track index, a
      track name (case-insensitive) or None for the only non-percussion track. Pitch = string
      tuning + fret + capo; times from the song tempo and mix-table tempo changes; ties extend
      the note on the same string; repeats (with alternate endings) are expanded as played;
      rests, dead notes and grace notes give no note (see :func:`_load_guitarpro`).

    Raises ``ValueError`` naming the file for a missing, unreadable or corrupt file, an unknown
    extension, an unknown or ambiguous part (listing the parts found), an empty part and every
    problem :func:`validate_notes` checks.
    """
    path = Path(path)
    reader = _reader_for(path)
    onset, offset, pitch, velocity = reader(path, part)
    validate_notes(onset, offset, pitch, velocity, str(path))
    return Notes(onset, offset, pitch, velocity)._sorted()


def list_parts(path: str | Path) -> list[str]:
    """One description per part of a score file, in part-index order.

    MIDI: ``"0: Guitar (program 25)"`` (``", drums"`` appended for drum tracks); MusicXML:
    ``"0: Guitar I (id P1)"``; Guitar Pro: ``"0: Lead (6 strings, capo 0)"`` (``", drums"``
    for percussion tracks); text files hold one part: ``["0: <file stem>"]``. Use the index
    or the name as ``part`` in :func:`load_notes`. Raises ``ValueError`` like :func:`load_notes`.
    """
    path = Path(path)
    _reader_for(path)   # same checks (exists, known extension) and messages as load_notes
    ext = path.suffix.lower()
    if ext in MIDI_EXTENSIONS:
        return [_describe_midi(i, inst) for i, inst in enumerate(_read_midi(path).instruments)]
    if ext in MUSICXML_EXTENSIONS:
        return [_describe_xml(i, p) for i, p in enumerate(_read_musicxml(path).parts)]
    if ext in GUITARPRO_EXTENSIONS:
        return [_describe_gp(i, t) for i, t in enumerate(_read_guitarpro(path).tracks)]
    return [f"0: {path.stem}"]


def save_notes(path: str | Path, notes: Notes) -> None:
    """Write ``notes`` in the text format read by :func:`load_notes`.

    A header comment ``# onset offset pitch velocity``, then one note per line with times as
    ``%.6f`` (microsecond precision, enough for any sample rate used here). Fields are separated
    by commas for ``.csv``, tabs for ``.tsv`` and a space otherwise. Parent folders are created.
    """
    path = Path(path)
    sep = _TEXT_SEPARATORS.get(path.suffix.lower(), " ")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([notes.onset, notes.offset, notes.pitch, notes.velocity])
    np.savetxt(path, table.reshape(-1, 4), fmt=["%.6f", "%.6f", "%d", "%d"], delimiter=sep,
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


def _reader_for(path: Path):
    """The reader for ``path``'s extension; checks the file exists first."""
    ext = path.suffix.lower()
    readers = {**{e: _load_midi for e in MIDI_EXTENSIONS},
               **{e: _load_text for e in TEXT_EXTENSIONS},
               **{e: _load_musicxml for e in MUSICXML_EXTENSIONS},
               **{e: _load_guitarpro for e in GUITARPRO_EXTENSIONS}}
    if ext in (".gp", ".gpx"):
        raise ValueError(f"{path}: Guitar Pro 6/7 files ({ext}) cannot be read; export the "
                         f"tab as .gp5 (File > Export) or as MusicXML / MIDI")
    if ext not in readers:
        raise ValueError(f"{path}: unknown score extension {ext!r}; "
                         f"supported: {', '.join(readers)}")
    if not path.is_file():
        raise ValueError(f"{path}: cannot read score: no such file")
    return readers[ext]


def _unknown_part(path: Path, part, parts: list[str], why: str) -> ValueError:
    listing = "; ".join(parts) if parts else "none"
    return ValueError(f"{path}: {why} (part={part!r}); parts found: {listing}")


def _select(path: Path, part, names: list[str], descriptions: list[str],
            default: list[int]) -> int:
    """Index of the part asked for: an index, a case-insensitive name, or None -> ``default``
    (the candidate indices; exactly one is required)."""
    if part is None:
        if len(default) == 1:
            return default[0]
        why = ("empty part: nothing to read" if not default
               else "several parts, choose one with part=")
        raise _unknown_part(path, part, descriptions, why)
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool):
        if 0 <= part < len(names):
            return int(part)
        raise _unknown_part(path, part, descriptions, "part index out of range")
    if isinstance(part, str):
        hits = [i for i, n in enumerate(names) if n.strip().lower() == part.strip().lower()]
        if len(hits) == 1:
            return hits[0]
        why = "no part with this name" if not hits else "several parts with this name"
        raise _unknown_part(path, part, descriptions, why)
    raise TypeError(f"part must be an int, a str or None, not {type(part).__name__}")


# MIDI ----------------------------------------------------------------------------------------

def _read_midi(path: Path):
    import pretty_midi

    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # mido/pretty_midi raise many types on corrupt files
        raise ValueError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from e


def _describe_midi(i: int, inst) -> str:
    return f"{i}: {inst.name or '<unnamed>'} (program {inst.program}" + \
        (", drums)" if inst.is_drum else ")")


def _load_midi(path: Path, part):
    pm = _read_midi(path)
    insts = pm.instruments
    i = _select(path, part, [inst.name for inst in insts],
                [_describe_midi(i, inst) for i, inst in enumerate(insts)],
                default=[i for i, inst in enumerate(insts) if not inst.is_drum])
    notes = insts[i].notes
    return (np.array([n.start for n in notes], dtype=np.float64),
            np.array([n.end for n in notes], dtype=np.float64),
            np.array([n.pitch for n in notes], dtype=np.int64),
            np.array([n.velocity for n in notes], dtype=np.int64))


# text ----------------------------------------------------------------------------------------

_FIELD_SPLIT = re.compile(r"[\s,]+")


def _load_text(path: Path, part):
    if part not in (None, 0):
        raise _unknown_part(path, part, [f"0: {path.stem}"], "a text file holds one part")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read notes ({type(e).__name__}: {e})") from e
    rows = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = _FIELD_SPLIT.split(line)
        if not rows and all(_is_word(f) for f in fields):
            continue   # a column-name header such as "onset,offset,pitch"
        if len(fields) not in (3, 4):
            raise ValueError(f"{path}: line {lineno}: expected 'onset offset pitch [velocity]',"
                             f" got {len(fields)} fields: {raw.strip()!r}")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise ValueError(f"{path}: line {lineno}: not a number in {raw.strip()!r}") from None
        rows.append(values if len(values) == 4 else values + [DEFAULT_VELOCITY])
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    # pitch/velocity stay float here so validate_notes can report non-integers
    return table[:, 0], table[:, 1], table[:, 2], table[:, 3]


def _is_word(field: str) -> bool:
    try:
        float(field)
        return False
    except ValueError:
        return True


# MusicXML ------------------------------------------------------------------------------------

def _read_musicxml(path: Path):
    import music21

    try:
        # forceSource/storePickle: no pickle cache in music21's scratch folder (it can go stale)
        score = music21.converter.parse(str(path), format="musicxml", forceSource=True,
                                        storePickle=False)
    except Exception as e:  # music21 raises many types on corrupt files
        raise ValueError(f"{path}: not a readable MusicXML file ({type(e).__name__}: {e})") \
            from e
    if not isinstance(score, music21.stream.Score) or not score.parts:
        raise ValueError(f"{path}: MusicXML file holds no parts")
    return score


def _describe_xml(i: int, part) -> str:
    return f"{i}: {part.partName or '<unnamed>'} (id {part.id})"


def _load_musicxml(path: Path, part):
    from music21 import harmony

    score = _read_musicxml(path)
    parts = list(score.parts)
    descriptions = [_describe_xml(i, p) for i, p in enumerate(parts)]
    # a part can be named by its name or its id: try names first, then ids
    try:
        i = _select(path, part, [p.partName or "" for p in parts], descriptions,
                    default=list(range(len(parts))))
    except ValueError:
        if not isinstance(part, str):
            raise
        i = _select(path, part, [str(p.id) for p in parts], descriptions, default=[])
    to_seconds = _tempo_map(score)
    flat = parts[i].stripTies().flatten()
    start_q, end_q, pitch, velocity = [], [], [], []
    for el in flat.notes:   # Note and Chord (rests excluded)
        if isinstance(el, harmony.Harmony) or el.quarterLength <= 0:
            continue   # chord symbols are labels, grace notes have no written duration
        vel = el.volume.velocity
        for p in el.pitches:
            start_q.append(float(el.offset))
            end_q.append(float(el.offset + el.quarterLength))
            pitch.append(p.midi)
            velocity.append(DEFAULT_VELOCITY if vel is None else max(1, int(round(vel))))
    return (to_seconds(np.array(start_q)), to_seconds(np.array(end_q)),
            np.array(pitch, dtype=np.int64), np.array(velocity, dtype=np.int64))


def _tempo_map(score):
    """Function mapping quarter-note offsets (array) to seconds, from all the score's tempo
    marks (they usually sit in the first part only but apply to every part)."""
    from music21 import tempo

    flat = score.flatten()
    marks = {0.0: DEFAULT_BPM}
    for ti in flat.getElementsByClass(tempo.TempoIndication):
        mm = ti.getSoundingMetronomeMark()
        bpm = mm.getQuarterBPM() if mm is not None else None
        if bpm:
            marks[float(ti.getOffsetBySite(flat))] = float(bpm)
    starts = np.array(sorted(marks))
    sec_per_q = 60.0 / np.array([marks[s] for s in starts])
    # seconds elapsed at the start of each tempo segment
    seg_seconds = np.concatenate([[0.0], np.cumsum(np.diff(starts) * sec_per_q[:-1])])

    def to_seconds(q: np.ndarray) -> np.ndarray:
        seg = np.searchsorted(starts, q, side="right") - 1
        return seg_seconds[seg] + (q - starts[seg]) * sec_per_q[seg]

    return to_seconds


# Guitar Pro ----------------------------------------------------------------------------------

_GP_OCTAVE_SHIFT = {"ottava": 12, "quindicesima": 24, "ottavaBassa": -12,
                    "quindicesimaBassa": -24}
_GP_MAX_PLAYED_MEASURES = 100_000     # guard against malformed repeat structures


def _read_guitarpro(path: Path):
    import guitarpro

    try:
        song = guitarpro.parse(str(path))
    except Exception as e:  # pyguitarpro raises many types on corrupt files
        raise ValueError(f"{path}: not a readable Guitar Pro file ({type(e).__name__}: {e})") \
            from e
    if not song.tracks:
        raise ValueError(f"{path}: Guitar Pro file holds no tracks")
    return song


def _describe_gp(i: int, track) -> str:
    return (f"{i}: {track.name or '<unnamed>'} ({len(track.strings)} strings, "
            f"capo {track.offset}" + (", drums)" if track.isPercussionTrack else ")"))


def _gp_play_order(headers) -> list[int]:
    """Measure-header indices in playing order: repeats and alternate endings expanded.

    The rule of TuxGuitar's MIDI player: a repeat-open bar marks where to jump back to; a bar
    with ``repeatClose = n > 0`` jumps back ``n`` times; a bar with ``repeatAlternative`` (a
    bit mask of the passes it belongs to) is skipped on the other passes. Unbalanced marks
    are tolerated (a close without an open jumps back to the start).
    """
    order: list[int] = []
    i, start, n_pass, last = 0, 0, 0, -1
    while i < len(headers):
        h = headers[i]
        if h.isRepeatOpen and i > last:          # entering a repeated section for the 1st time
            start, n_pass = i, 0
        if h.repeatAlternative and not (h.repeatAlternative >> n_pass) & 1:
            i += 1                               # ending of another pass
            continue
        order.append(i)
        if len(order) > _GP_MAX_PLAYED_MEASURES:
            raise ValueError("repeat structure does not terminate")
        last = max(last, i)
        if h.repeatClose > 0 and n_pass < h.repeatClose:
            n_pass += 1
            i = start
            continue
        if h.repeatClose > 0:
            n_pass = 0
        i += 1
    return order


def _gp_tempo_events(song) -> dict[int, list[tuple[int, float]]]:
    """Header index -> sorted ``[(tick offset in the bar, bpm)]`` of mix-table tempo changes
    (a tempo change is global: it is read from every track)."""
    index = {id(h): k for k, h in enumerate(song.measureHeaders)}
    events: dict[int, dict[int, float]] = {}
    for track in song.tracks:
        for measure in track.measures:
            for voice in measure.voices:
                for beat in voice.beats:
                    mix = beat.effect.mixTableChange if beat.effect is not None else None
                    if mix is None or mix.tempo is None or mix.tempo.value <= 0:
                        continue
                    k = index[id(measure.header)]
                    events.setdefault(k, {})[beat.start - measure.header.start] = \
                        float(mix.tempo.value)
    return {k: sorted(v.items()) for k, v in events.items()}


def _load_guitarpro(path: Path, part):
    """Notes of one Guitar Pro track (see :func:`load_notes`).

    Decisions: pitch = string tuning + fret + capo (``track.offset``), plus the beat's octave
    sign (8va/15ma, GP5); a tied note extends the last note on the same string to the end of
    its beat; rests, empty beats, dead (muted) notes and grace notes give no note; both voices
    are read; a grace note (an effect on its main note) is dropped, the main note kept;
    triplet feel, let-ring, bends and harmonics are ignored (harmonics sound at the fretted
    pitch here). Tick times (960 per quarter, dots and tuplets included in
    ``Duration.time``) become seconds through the song tempo and the mix-table tempo changes,
    in playing order (repeats expanded, :func:`_gp_play_order`).
    """
    import guitarpro

    song = _read_guitarpro(path)
    tracks = song.tracks
    i = _select(path, part, [t.name for t in tracks],
                [_describe_gp(k, t) for k, t in enumerate(tracks)],
                default=[k for k, t in enumerate(tracks) if not t.isPercussionTrack])
    track = tracks[i]
    headers = song.measureHeaders
    try:
        order = _gp_play_order(headers)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    tempo_events = _gp_tempo_events(song)
    q = float(guitarpro.Duration.quarterTime)
    tuning = {s.number: s.value for s in track.strings}
    capo = int(track.offset or 0)

    onset, offset, pitch, velocity = [], [], [], []
    open_note: dict[int, int] = {}           # string number -> index of its sounding note
    bpm = float(song.tempo) if song.tempo and song.tempo > 0 else DEFAULT_BPM
    t_bar = 0.0                              # seconds at the start of the current bar
    for k in order:
        h = headers[k]
        measure = track.measures[k]
        # piecewise-constant tempo inside the bar: (tick, seconds at tick, bpm from tick on)
        segs = [(0, 0.0, bpm)]
        for tick, new_bpm in tempo_events.get(k, []):
            t0, s0, b0 = segs[-1]
            segs.append((tick, s0 + (tick - t0) / q * 60.0 / b0, new_bpm))
        seg_ticks = np.array([s[0] for s in segs], dtype=np.float64)

        def sec(tick: float, segs=segs, seg_ticks=seg_ticks, t_bar=t_bar) -> float:
            j = int(np.searchsorted(seg_ticks, tick, side="right")) - 1
            t0, s0, b0 = segs[max(j, 0)]
            return t_bar + s0 + (tick - t0) / q * 60.0 / b0

        for voice in measure.voices:
            for beat in voice.beats:
                if beat.status == guitarpro.BeatStatus.rest:
                    open_note.clear()                # nothing rings through a rest
                if beat.status != guitarpro.BeatStatus.normal or not beat.notes:
                    continue
                rel = beat.start - h.start
                b_on, b_off = sec(rel), sec(rel + beat.duration.time)
                octave = _GP_OCTAVE_SHIFT.get(getattr(beat.octave, "name", "none"), 0)
                for note in beat.notes:
                    if note.type == guitarpro.NoteType.tie and note.string in open_note:
                        j = open_note[note.string]
                        offset[j] = max(offset[j], b_off)
                        continue
                    if note.type not in (guitarpro.NoteType.normal, guitarpro.NoteType.tie):
                        open_note.pop(note.string, None)     # rest / dead note
                        continue
                    if note.string not in tuning:
                        raise ValueError(f"{path}: track {i} bar {h.number}: note on string "
                                         f"{note.string}, the track has {len(tuning)} strings")
                    open_note[note.string] = len(onset)
                    onset.append(b_on)
                    offset.append(b_off)
                    pitch.append(tuning[note.string] + int(note.value) + capo + octave)
                    velocity.append(min(127, max(1, int(note.velocity))))
        # tempo in force at the end of the bar carries into the next bar played
        bpm = segs[-1][2]
        t_bar = sec(float(h.length))
    return (np.array(onset, dtype=np.float64), np.array(offset, dtype=np.float64),
            np.array(pitch, dtype=np.int64), np.array(velocity, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# Score masks
# --------------------------------------------------------------------------------------------

def binary_score_mask(notes: Notes, n_frames: int, *, sr: int, n_fft: int, hop: int,
                      params: MaskParams = MaskParams()) -> np.ndarray:
    """Harmonic-comb score mask of one part: bool ``(n_frames, n_fft // 2 + 1)``.

    Frames (``torch.stft(center=True)``): frame ``t`` is centred at ``t * hop / sr`` s. A note
    is active in every frame whose centre lies in ``[onset - onset_tol, end]`` (both ends
    included) with ``end = offset + max(offset_tol, fermata)``, except that the release
    extension stops where the next note of the same pitch begins: ``end`` is lowered to that
    note's ``onset - onset_tol``, but never below the note's own ``offset``.

    Bins: for each harmonic ``k = 1..n_harmonics`` with ``f_k = k * a4_hz * 2**((pitch -
    69) / 12)`` below Nyquist (``f_k < sr / 2``), the bins ``b`` whose centre ``b * sr / n_fft``
    lies in ``[f_k * 2**(-cents/1200), f_k * 2**(cents/1200)]`` are set. Decision: when that
    interval holds no bin centre (low notes at a coarse resolution: ±30 cents is ±1.4 Hz at
    E2, while the low_res bins are 8 Hz apart), the single bin nearest to ``f_k`` is set
    instead, so that every harmonic below Nyquist marks at least one bin.

    Cost: the comb of each pitch is built once per (sr, n_fft, params) and cached; activity is
    a frame x pitch table built with a cumulative sum over frames, and the mask is that table
    times the combs (one matrix product), so there is no Python loop over notes, frames or bins.
    """
    n_bins = n_fft // 2 + 1
    if len(notes) == 0 or n_frames <= 0:
        return np.zeros((max(n_frames, 0), n_bins), dtype=bool)
    pitches, pitch_idx = np.unique(notes.pitch, return_inverse=True)
    active = _pitch_activity(notes, pitch_idx, len(pitches), n_frames, sr=sr, hop=hop,
                             params=params)
    combs = _harmonic_combs(sr, n_fft, params)[pitches]           # (n_pitches, n_bins)
    # float32 products of 0/1 values are exact counts: > 0 is a logical OR over pitches
    return (active.astype(np.float32) @ combs.astype(np.float32)) > 0


def _note_spans(notes: Notes, params: MaskParams) -> tuple[np.ndarray, np.ndarray]:
    """Per note, the time span ``[start, end]`` (seconds) in which it marks the mask."""
    start = notes.onset - params.onset_tol
    end = notes.offset + max(params.offset_tol, params.fermata)
    # next onset of the same pitch: order by (pitch, onset) so it is the next row
    order = np.lexsort((notes.onset, notes.pitch))
    same = notes.pitch[order][1:] == notes.pitch[order][:-1]
    next_onset = np.full(len(notes), np.inf)
    next_onset[order[:-1][same]] = notes.onset[order][1:][same]
    cut = np.maximum(next_onset - params.onset_tol, notes.offset)
    return start, np.minimum(end, cut)


def _pitch_activity(notes: Notes, pitch_idx: np.ndarray, n_pitches: int, n_frames: int, *,
                    sr: int, hop: int, params: MaskParams) -> np.ndarray:
    """Bool ``(n_frames, n_pitches)``: which pitch (column ``pitch_idx``) sounds in which frame."""
    start, end = _note_spans(notes, params)
    centres = np.arange(n_frames) * hop / sr
    # searchsorted on the frame centres applies the inclusive [start, end] test exactly
    first = np.searchsorted(centres, start, side="left")
    last = np.searchsorted(centres, end, side="right")            # one past the last frame
    keep = first < last
    # +1 at the first frame, -1 one past the last, cumulative sum over frames = overlap count
    delta = np.zeros((n_frames + 1, n_pitches), dtype=np.int32)
    np.add.at(delta, (first[keep], pitch_idx[keep]), 1)
    np.add.at(delta, (last[keep], pitch_idx[keep]), -1)
    return np.cumsum(delta[:-1], axis=0) > 0


@functools.lru_cache(maxsize=16)
def _harmonic_combs(sr: int, n_fft: int, params: MaskParams) -> np.ndarray:
    """Bool ``(128, n_fft // 2 + 1)``: the bins of each MIDI pitch's harmonic comb.

    Cached (read-only) because it depends only on the STFT and the mask parameters.
    """
    n_bins = n_fft // 2 + 1
    freqs = np.arange(n_bins) * sr / n_fft                          # bin centres, Hz
    k = np.arange(1, params.n_harmonics + 1)
    f0 = params.a4_hz * 2.0 ** ((np.arange(128) - 69) / 12.0)
    fk = f0[:, None] * k[None, :]                                   # (128, n_harmonics)
    width = 2.0 ** (params.cents / 1200.0)
    lo = np.searchsorted(freqs, fk / width, side="left")           # first bin >= lower edge
    hi = np.searchsorted(freqs, fk * width, side="right")          # one past last bin <= upper
    nearest = np.minimum(np.rint(fk * n_fft / sr).astype(np.int64), n_bins - 1)
    empty = lo >= hi
    lo = np.where(empty, nearest, lo)
    hi = np.where(empty, nearest + 1, hi)
    below_nyquist = fk < sr / 2
    rows = np.broadcast_to(np.arange(128)[:, None], fk.shape)[below_nyquist]
    delta = np.zeros((128, n_bins + 1), dtype=np.int32)
    np.add.at(delta, (rows, lo[below_nyquist]), 1)
    np.add.at(delta, (rows, hi[below_nyquist]), -1)
    combs = np.cumsum(delta[:, :-1], axis=1) > 0
    combs.flags.writeable = False
    return combs


def soft_from_binary(m_target, m_accomp):
    """Soft score mask ``M_t / (M_t + M_a)``, 0 where both are 0, as float32.

    Inputs of the same shape, bool or numeric: numpy arrays give a numpy array, torch tensors
    (any shape, e.g. ``(batch, frames, bins)``, any device) give a torch tensor. torch is not
    imported here: a tensor can only come from a caller that already imported it.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(m_target, torch.Tensor):
        mt, ma = m_target.to(torch.float32), m_accomp.to(torch.float32)
        den = mt + ma
        return torch.where(den > 0, mt / den.clamp_min(torch.finfo(torch.float32).tiny),
                           torch.zeros((), dtype=torch.float32, device=mt.device))
    if (isinstance(m_target, np.ndarray) and isinstance(m_accomp, np.ndarray)
            and m_target.dtype == bool and m_accomp.dtype == bool
            and m_target.shape == m_accomp.shape):
        # 0/1 masks: the ratio is 1 (target only) or 1/2 (both); a masked store is ~5x faster
        # than the division on full-piece masks
        soft = m_target.astype(np.float32)
        soft[m_target & m_accomp] = 0.5
        return soft
    mt = np.asarray(m_target, dtype=np.float32)
    ma = np.asarray(m_accomp, dtype=np.float32)
    den = mt + ma
    return np.divide(mt, den, out=np.zeros(np.broadcast_shapes(mt.shape, ma.shape), np.float32),
                     where=den > 0)


def score_masks(target: Notes, accomp: Notes, n_frames: int, *, sr: int, n_fft: int, hop: int,
                params: MaskParams = MaskParams()) -> tuple[np.ndarray, np.ndarray]:
    """``(soft, binary)`` score masks of the target part, float32 ``(n_frames, n_fft//2+1)``.

    ``binary`` is the target's :func:`binary_score_mask` ``M_t`` (0/1), ``soft`` is
    ``M_t / (M_t + M_a)`` with ``M_a`` the accompaniment's mask: 1 where only the target plays
    a harmonic, 0.5 where both do, 0 elsewhere.
    """
    kw = dict(sr=sr, n_fft=n_fft, hop=hop, params=params)
    m_t = binary_score_mask(target, n_frames, **kw)
    m_a = binary_score_mask(accomp, n_frames, **kw)
    return soft_from_binary(m_t, m_a), m_t.astype(np.float32)
