"""The Guitar Pro reader (``.gp3`` / ``.gp4`` / ``.gp5`` tabs, through pyguitarpro).

Used by :func:`guitarsep.score.readers.load_notes` and :func:`~guitarsep.score.readers.list_parts`
(``01_data.ipynb``, ``guitarsep separate --score song.gp5``), which choose the track; this module
reads the file, describes its tracks and turns one track into note arrays.

Decisions (see :func:`track_notes`): pitch = string tuning + fret + capo, plus the beat's octave
sign; ties extend the note on the same string; repeats (with alternate endings) are expanded as
played (:func:`_gp_play_order`, TuxGuitar's rule); rests, dead notes and grace notes give no
note; tick times become seconds through the song tempo and the mix-table tempo changes.
Guitar Pro 6/7 files (``.gp``, ``.gpx``) are not readable by pyguitarpro: the reader refuses
them with a hint to export ``.gp5``.

pyguitarpro is imported only when a file is read.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from guitarsep.score.notes import DEFAULT_BPM

__all__ = ["GUITARPRO_EXTENSIONS", "read_guitarpro", "describe_track", "default_tracks",
           "track_notes"]

GUITARPRO_EXTENSIONS = (".gp3", ".gp4", ".gp5")
_GP_OCTAVE_SHIFT = {"ottava": 12, "quindicesima": 24, "ottavaBassa": -12,
                    "quindicesimaBassa": -24}
_GP_MAX_PLAYED_MEASURES = 100_000     # guard against malformed repeat structures


def read_guitarpro(path: Path):
    """The parsed ``guitarpro.Song``; ``ValueError`` naming the file if it is unreadable or
    holds no tracks."""
    import guitarpro

    try:
        song = guitarpro.parse(str(path))
    except Exception as e:  # pyguitarpro raises many types on corrupt files
        raise ValueError(f"{path}: not a readable Guitar Pro file ({type(e).__name__}: {e})") \
            from e
    if not song.tracks:
        raise ValueError(f"{path}: Guitar Pro file holds no tracks")
    return song


def describe_track(i: int, track) -> str:
    """``"0: Lead (6 strings, capo 0)"`` (``", drums"`` appended for a percussion track)."""
    return (f"{i}: {track.name or '<unnamed>'} ({len(track.strings)} strings, "
            f"capo {track.offset}" + (", drums)" if track.isPercussionTrack else ")"))


def default_tracks(song) -> list[int]:
    """The tracks ``part=None`` may choose from: every non-percussion track."""
    return [k for k, t in enumerate(song.tracks) if not t.isPercussionTrack]


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


def _bar_clock(t_bar: float, bpm: float, events: list[tuple[int, float]], q: float):
    """``(sec, bpm at the end of the bar)``: ``sec(tick)`` maps a tick offset in the bar to
    seconds, with the tempo piecewise constant between the bar's tempo ``events``."""
    # (tick, seconds at tick, bpm from tick on)
    segs = [(0, 0.0, bpm)]
    for tick, new_bpm in events:
        t0, s0, b0 = segs[-1]
        segs.append((tick, s0 + (tick - t0) / q * 60.0 / b0, new_bpm))
    seg_ticks = np.array([s[0] for s in segs], dtype=np.float64)

    def sec(tick: float) -> float:
        j = int(np.searchsorted(seg_ticks, tick, side="right")) - 1
        t0, s0, b0 = segs[max(j, 0)]
        return t_bar + s0 + (tick - t0) / q * 60.0 / b0

    return sec, segs[-1][2]


def track_notes(path: Path, song, i: int):
    """``(onset, offset, pitch, velocity)`` arrays of track ``i`` of ``song`` (file order).

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

    track = song.tracks[i]
    headers = song.measureHeaders
    try:
        order = _gp_play_order(headers)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    tempo_events = _gp_tempo_events(song)
    q = float(guitarpro.Duration.quarterTime)
    tuning = {s.number: s.value for s in track.strings}
    capo = int(track.offset or 0)

    notes: tuple[list, list, list, list] = ([], [], [], [])
    open_note: dict[int, int] = {}           # string number -> index of its sounding note
    bpm = float(song.tempo) if song.tempo and song.tempo > 0 else DEFAULT_BPM
    t_bar = 0.0                              # seconds at the start of the current bar
    for k in order:
        h = headers[k]
        sec, end_bpm = _bar_clock(t_bar, bpm, tempo_events.get(k, []), q)
        for voice in track.measures[k].voices:
            for beat in voice.beats:
                _read_beat(path, beat, h, i, sec, tuning, capo, open_note, notes)
        # tempo in force at the end of the bar carries into the next bar played
        bpm = end_bpm
        t_bar = sec(float(h.length))
    onset, offset, pitch, velocity = notes
    return (np.array(onset, dtype=np.float64), np.array(offset, dtype=np.float64),
            np.array(pitch, dtype=np.int64), np.array(velocity, dtype=np.int64))


def _read_beat(path: Path, beat, h, i: int, sec, tuning: dict, capo: int,
               open_note: dict[int, int], notes: tuple[list, list, list, list]) -> None:
    """Append the notes of one beat to ``notes`` (onset, offset, pitch, velocity lists),
    extending tied notes in place; ``open_note`` maps a string to its sounding note."""
    import guitarpro

    onset, offset, pitch, velocity = notes
    if beat.status == guitarpro.BeatStatus.rest:
        open_note.clear()                # nothing rings through a rest
    if beat.status != guitarpro.BeatStatus.normal or not beat.notes:
        return
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
