"""Score-file readers: one part of a MIDI, text, MusicXML or Guitar Pro file as :class:`Notes`.

Used by ``01_data.ipynb`` (:func:`list_parts` and :func:`load_notes` on the user's own scores),
the corpus (:func:`load_notes` on the saved parts) and ``guitarsep separate``
(:mod:`guitarsep.app.separate_file`: :func:`resolve_part`, :func:`part_names`,
:func:`load_notes`).

Every format goes through the same three steps: read the file (one ``ValueError`` naming the
file for a missing, unreadable or corrupt file or an unknown extension), choose the part
(:func:`_select`: an index, a case-insensitive name, or None for the only candidate part; the
error lists the parts found), turn that part into note arrays, which
:func:`~guitarsep.score.notes.validate_notes` checks. The part choice is shared by
:func:`load_notes` and :func:`resolve_part`, so the CLI resolves ``--part`` exactly as the
reader does. The Guitar Pro reader lives in :mod:`guitarsep.score.guitarpro`.

pretty_midi, music21 and pyguitarpro are imported only when a file of their format is read.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from guitarsep.score import guitarpro as gp
from guitarsep.score.guitarpro import GUITARPRO_EXTENSIONS
from guitarsep.score.notes import (DEFAULT_BPM, DEFAULT_VELOCITY, TEXT_EXTENSIONS, Notes,
                                   validate_notes)

__all__ = ["load_notes", "list_parts", "parse_part", "part_names", "resolve_part",
           "MIDI_EXTENSIONS", "TEXT_EXTENSIONS", "MUSICXML_EXTENSIONS", "GUITARPRO_EXTENSIONS"]

MIDI_EXTENSIONS = (".mid", ".midi")
MUSICXML_EXTENSIONS = (".xml", ".musicxml", ".mxl")
_FORMATS = {**{e: "midi" for e in MIDI_EXTENSIONS}, **{e: "text" for e in TEXT_EXTENSIONS},
            **{e: "musicxml" for e in MUSICXML_EXTENSIONS},
            **{e: "guitarpro" for e in GUITARPRO_EXTENSIONS}}


# --------------------------------------------------------------------------------------------
# Public API
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
      rests, dead notes and grace notes give no note (see
      :func:`guitarsep.score.guitarpro.track_notes`).

    Raises ``ValueError`` naming the file for a missing, unreadable or corrupt file, an unknown
    extension, an unknown or ambiguous part (listing the parts found), an empty part and every
    problem :func:`~guitarsep.score.notes.validate_notes` checks.
    """
    path = Path(path)
    fmt, doc = _open(path)
    i = _index(path, fmt, doc, part)
    onset, offset, pitch, velocity = _part_notes(path, fmt, doc, i)
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
    return _descriptions(path, *_open(path))


def parse_part(spec):
    """A part spec as typed on the command line -> ``int`` index, ``str`` name,
    ``("program", n)`` (MIDI ``program:N`` / ``program=N``) or None.

    None and integers are returned as they are; a string of digits is an index, anything else
    a name (stripped).
    """
    if spec is None or isinstance(spec, (int, np.integer)):
        return spec
    s = str(spec).strip()
    if re.fullmatch(r"\d+", s):
        return int(s)
    m = re.fullmatch(r"(?i)program\s*[:=]\s*(\d+)", s)
    if m:
        return ("program", int(m.group(1)))
    return s


def part_names(path: str | Path) -> tuple[list[list[str]], list[bool]]:
    """``(names, drums)``: per part of a score file, the names it answers to (MusicXML: its
    name and its id; text: the file stem) and whether it is a drum / percussion part.

    Raises ``ValueError`` like :func:`load_notes`.
    """
    path = Path(path)
    fmt, doc = _open(path)
    if fmt == "midi":
        insts = doc.instruments
        return [[i.name or ""] for i in insts], [bool(i.is_drum) for i in insts]
    if fmt == "musicxml":
        parts = list(doc.parts)
        return [[p.partName or "", str(p.id)] for p in parts], [False] * len(parts)
    if fmt == "guitarpro":
        tracks = doc.tracks
        return [[t.name or ""] for t in tracks], [bool(t.isPercussionTrack) for t in tracks]
    return [[path.stem]], [False]


def resolve_part(path: str | Path, part) -> tuple[int | str | None, int]:
    """``(part for load_notes, index of that part)`` for a part spec (:func:`parse_part`).

    The part is chosen as :func:`load_notes` chooses it; ``program:N`` (MIDI only) picks the
    one non-drum track playing General MIDI program ``N``. Raises ``ValueError`` (one line,
    naming the file, listing the parts found) for an unreadable file or a part that is
    unknown, ambiguous or empty.
    """
    path = Path(path)
    spec = parse_part(part)
    fmt, doc = _open(path)
    if isinstance(spec, tuple):                       # ("program", n): MIDI only
        if fmt != "midi":
            raise ValueError(f"{path}: program:N selects a MIDI track; this is not MIDI")
        n = spec[1]
        hits = [i for i, inst in enumerate(doc.instruments)
                if inst.program == n and not inst.is_drum]
        if len(hits) != 1:
            listing = "; ".join(_descriptions(path, fmt, doc))
            raise ValueError(f"{path}: {'no' if not hits else 'several'} track(s) with "
                             f"program {n} (part=program:{n}); parts found: {listing}")
        return hits[0], hits[0]
    return spec, _index(path, fmt, doc, spec)


# --------------------------------------------------------------------------------------------
# Dispatch: read the file, describe / choose its parts, read one part
# --------------------------------------------------------------------------------------------

def _open(path: Path) -> tuple[str, object]:
    """``(format, parsed file)``; the text format is read later (None here). Checks the
    extension, then that the file exists."""
    ext = path.suffix.lower()
    if ext in (".gp", ".gpx"):
        raise ValueError(f"{path}: Guitar Pro 6/7 files ({ext}) cannot be read; export the "
                         f"tab as .gp5 (File > Export) or as MusicXML / MIDI")
    if ext not in _FORMATS:
        raise ValueError(f"{path}: unknown score extension {ext!r}; "
                         f"supported: {', '.join(_FORMATS)}")
    if not path.is_file():
        raise ValueError(f"{path}: cannot read score: no such file")
    fmt = _FORMATS[ext]
    read = {"midi": _read_midi, "musicxml": _read_musicxml, "guitarpro": gp.read_guitarpro,
            "text": lambda p: None}[fmt]
    return fmt, read(path)


def _descriptions(path: Path, fmt: str, doc) -> list[str]:
    if fmt == "midi":
        return [_describe_midi(i, inst) for i, inst in enumerate(doc.instruments)]
    if fmt == "musicxml":
        return [_describe_xml(i, p) for i, p in enumerate(doc.parts)]
    if fmt == "guitarpro":
        return [gp.describe_track(i, t) for i, t in enumerate(doc.tracks)]
    return [f"0: {path.stem}"]


def _index(path: Path, fmt: str, doc, part) -> int:
    """Index of the part ``part`` names (see :func:`load_notes`); ``ValueError`` otherwise."""
    if fmt == "midi":
        insts = doc.instruments
        return _select(path, part, [inst.name for inst in insts],
                       _descriptions(path, fmt, doc),
                       default=[i for i, inst in enumerate(insts) if not inst.is_drum])
    if fmt == "musicxml":
        parts = list(doc.parts)
        descriptions = _descriptions(path, fmt, doc)
        # a part can be named by its name or its id: try names first, then ids
        try:
            return _select(path, part, [p.partName or "" for p in parts], descriptions,
                           default=list(range(len(parts))))
        except ValueError:
            if not isinstance(part, str):
                raise
            return _select(path, part, [str(p.id) for p in parts], descriptions, default=[])
    if fmt == "guitarpro":
        return _select(path, part, [t.name for t in doc.tracks],
                       _descriptions(path, fmt, doc), default=gp.default_tracks(doc))
    if part not in (None, 0):
        raise _unknown_part(path, part, [f"0: {path.stem}"], "a text file holds one part")
    return 0


def _part_notes(path: Path, fmt: str, doc, i: int):
    """``(onset, offset, pitch, velocity)`` arrays of part ``i``, in file order."""
    if fmt == "midi":
        return _midi_notes(doc, i)
    if fmt == "musicxml":
        return _musicxml_notes(doc, i)
    if fmt == "guitarpro":
        return gp.track_notes(path, doc, i)
    return _text_notes(path)


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


# --------------------------------------------------------------------------------------------
# MIDI
# --------------------------------------------------------------------------------------------

def _read_midi(path: Path):
    import pretty_midi

    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # mido/pretty_midi raise many types on corrupt files
        raise ValueError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from e


def _describe_midi(i: int, inst) -> str:
    return f"{i}: {inst.name or '<unnamed>'} (program {inst.program}" + \
        (", drums)" if inst.is_drum else ")")


def _midi_notes(pm, i: int):
    notes = pm.instruments[i].notes
    return (np.array([n.start for n in notes], dtype=np.float64),
            np.array([n.end for n in notes], dtype=np.float64),
            np.array([n.pitch for n in notes], dtype=np.int64),
            np.array([n.velocity for n in notes], dtype=np.int64))


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------

_FIELD_SPLIT = re.compile(r"[\s,]+")


def _text_notes(path: Path):
    try:
        text = path.read_text(encoding="utf-8-sig")      # a BOM (Windows editors) is dropped
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


# --------------------------------------------------------------------------------------------
# MusicXML
# --------------------------------------------------------------------------------------------

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


def _musicxml_notes(score, i: int):
    from music21 import harmony

    to_seconds = _tempo_map(score)
    flat = list(score.parts)[i].stripTies().flatten()
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

