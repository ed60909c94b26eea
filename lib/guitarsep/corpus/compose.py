"""Two-part guitar scores for the synthetic corpus (used by ``guitarsep.corpus.build`` and shown in
01_data.ipynb).

Two sources, both returning ``(Notes part0, Notes part1, metadata dict)``:

1. **Idiom generator** (:func:`generate_idiom_piece`): a seeded ``numpy`` Generator draws a
   key (major or minor), a diatonic progression (I-V-vi-IV, ii-V-I, i-VII-VI-V, ...), a meter
   (3/4, 4/4, 6/8), a tempo and a pair of guitar *roles* for the two parts. The roles are
   strummed chords, fingerpicked arpeggios, bass line + chord stabs, power chords with
   palm-muted (short) eighths, scale-based single-note melodies and riffs. Both parts share
   key, tempo and harmony; their roles differ (rhythm + lead) or match (both rhythm, both
   arpeggio, with different voicings/patterns). Chord shapes are searched on a guitar in
   standard tuning (EADGBE): one note per string, at most 6 notes, frets 0..12, fretted notes
   within a 4-fret window (``max - min <= 3``), so what the score says is playable.
   Humanisation: onsets jitter by a clipped Gaussian (|jitter| <= 10 ms), strums stagger their
   string onsets (first to last string 5-25 ms), velocities follow accents plus noise.
2. **music21 corpus reductions** (:func:`music21_piece`): Bach chorales (SATB) and Palestrina
   mass movements shipped inside music21 (no internet needed) reduced to two guitar parts
   (e.g. soprano+alto / tenor+bass, or two single voices), each voice moved by octaves into the
   guitar range, at a seeded tempo 60-120 bpm, looped or trimmed to the piece length.

Tempo convention (our decision): ``tempo`` is the bpm of the meter's counting unit, a quarter
note in 3/4 and 4/4 (60-180 bpm) and an eighth note in 6/8 (120-180 bpm, i.e. dotted quarter
40-60), so that no 6/8 piece crawls at 60 eighths per minute.

All pitches lie in E2..E6 (MIDI 40..88). All times are rounded to the microsecond, the
precision of the text files (``score.save_notes``), so a piece read back equals the piece
rendered. Within a part, a note never overlaps a later note of the same pitch (it is cut 1 ms
before): a synthesiser cannot play the same key twice on one channel, so the score must not
claim it.

:func:`compose_pieces` turns a ``CorpusConfig`` into the list of :class:`Piece` of every
split; pieces never cross splits (generated pieces draw per-split seeds, music21 works are
dealt out one work to one split).
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from guitarsep.score import Notes

__all__ = [
    "STANDARD_TUNING", "MAX_FRET", "MAX_SPAN", "PITCH_MIN", "PITCH_MAX", "ROLES", "ROLE_PAIRS",
    "CHORD_PAIRS",
    "Piece", "chord_voicings", "is_playable", "voicing_pitches", "generate_idiom_piece",
    "music21_works", "music21_piece", "compose_pieces", "fit_range",
]

STANDARD_TUNING = (40, 45, 50, 55, 59, 64)    # E2 A2 D3 G3 B3 E4, low to high
MAX_FRET = 12
MAX_SPAN = 3          # fretted notes within frets [f, f+3]: a 4-fret hand position
PITCH_MIN, PITCH_MAX = 40, 88                 # E2..E6
_MIN_DUR = 0.03       # shortest note (s); palm mutes are 60-150 ms
_JITTER_S = 0.004     # onset jitter std (s), clipped to +-10 ms
_JITTER_MAX = 0.010

# ---------------------------------------------------------------------------------------------
# Harmony
# ---------------------------------------------------------------------------------------------
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)                # natural minor; V is raised to major below

# progressions as (degree 0..6, quality); degrees of the key's scale
PROGRESSIONS = {
    "major": [
        [(0, "maj"), (4, "maj"), (5, "min"), (3, "maj")],          # I-V-vi-IV
        [(1, "min"), (4, "maj"), (0, "maj"), (0, "maj")],          # ii-V-I
        [(0, "maj"), (3, "maj"), (4, "maj"), (0, "maj")],          # I-IV-V-I
        [(0, "maj"), (5, "min"), (3, "maj"), (4, "maj")],          # I-vi-IV-V
        [(5, "min"), (3, "maj"), (0, "maj"), (4, "maj")],          # vi-IV-I-V
        [(0, "maj7"), (1, "m7"), (4, "7"), (0, "maj7")],           # Imaj7-ii7-V7-Imaj7
        [(0, "maj"), (3, "maj"), (0, "maj"), (4, "7")],            # I-IV-I-V7
    ],
    "minor": [
        [(0, "min"), (6, "maj"), (5, "maj"), (4, "maj")],          # i-VII-VI-V (andalusian)
        [(0, "min"), (3, "min"), (4, "maj"), (0, "min")],          # i-iv-V-i
        [(0, "min"), (5, "maj"), (2, "maj"), (6, "maj")],          # i-VI-III-VII
        [(0, "min"), (3, "min"), (6, "maj"), (2, "maj")],          # i-iv-VII-III
        [(0, "m7"), (3, "m7"), (4, "7"), (0, "m7")],               # i7-iv7-V7-i7
        [(0, "min"), (5, "maj"), (3, "min"), (4, "maj")],          # i-VI-iv-V
    ],
}
QUALITIES = {"maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "7": (0, 4, 7, 10),
             "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10), "5": (0, 7)}

# meters: eighth notes per bar, strong eighths (accents), the count unit in eighths
METERS = {"4/4": dict(bar=8, accents=(0, 4), unit=2, bpm=(60, 180)),
          "3/4": dict(bar=6, accents=(0,), unit=2, bpm=(60, 180)),
          "6/8": dict(bar=6, accents=(0, 3), unit=1, bpm=(120, 180))}

ROLES = ("strum", "arpeggio", "bass_chords", "power", "melody", "riff")
# (role of one part, role of the other): rhythm + lead, or matching roles
ROLE_PAIRS = (("strum", "melody"), ("arpeggio", "melody"), ("bass_chords", "melody"),
              ("power", "riff"), ("power", "melody"), ("strum", "riff"),
              ("strum", "strum"), ("arpeggio", "arpeggio"), ("strum", "arpeggio"),
              ("bass_chords", "arpeggio"))
#: the pairs where both parts play chords (no melody or riff): the hardest duets for a ratio
#: mask, since the two parts often hold the same pitches (the NMF's chord-on-chord dev set,
#: ``corpus.out_of_family.NMF_DEV_CHORDS``)
CHORD_PAIRS = tuple(p for p in ROLE_PAIRS if not {"melody", "riff"} & set(p))


# ---------------------------------------------------------------------------------------------
# Fretboard
# ---------------------------------------------------------------------------------------------

def is_playable(frets) -> bool:
    """True if a chord shape is playable in standard tuning (tested in tests/test_corpus.py).

    ``frets``: 6 entries, low E to high E, a fret 0..12 or None (string not played). Rules:
    one note per string (implicit), 1..6 notes, frets 0..``MAX_FRET``, fretted (non-open)
    notes within ``MAX_SPAN`` frets (``max - min <= 3``), played strings contiguous.
    """
    if len(frets) != 6:
        return False
    played = [i for i, f in enumerate(frets) if f is not None]
    if not played or any(not 0 <= frets[i] <= MAX_FRET for i in played):
        return False
    if played != list(range(played[0], played[-1] + 1)):
        return False
    fretted = [frets[i] for i in played if frets[i] > 0]
    return not fretted or max(fretted) - min(fretted) <= MAX_SPAN


def voicing_pitches(frets) -> list[int]:
    """MIDI pitches of a chord shape, low string first."""
    return [STANDARD_TUNING[i] + f for i, f in enumerate(frets) if f is not None]


@functools.lru_cache(maxsize=None)
def chord_voicings(root_pc: int, quality: str) -> tuple[tuple, ...]:
    """Every playable shape (see :func:`is_playable`) of a chord in standard tuning (used by
    the idiom generator; 01_data.ipynb can print the shapes of a chord).

    Root position (the lowest note is the root), at least 3 strings (2 for power chords
    ``"5"``), every chord tone present (the fifth may be left out of 4-note chords). Returned
    sorted from low to high hand position; cached per chord.
    """
    tones = QUALITIES[quality]
    pcs = {(root_pc + t) % 12 for t in tones}
    root = root_pc % 12
    need = set(pcs) if len(tones) < 4 else pcs - {(root_pc + 7) % 12}
    min_strings = 2 if quality == "5" else 3
    found = set()
    for pos in range(1, MAX_FRET - MAX_SPAN + 2):
        window = range(pos, min(pos + MAX_SPAN, MAX_FRET) + 1)
        opts = []
        for s, open_p in enumerate(STANDARD_TUNING):
            o = [f for f in (0, *window) if (open_p + f) % 12 in pcs]
            opts.append(o)
        for lo in range(0, 4):                       # bass on E, A, D or G string
            if (STANDARD_TUNING[lo] + 0) % 12 != root and not any(
                    (STANDARD_TUNING[lo] + f) % 12 == root for f in opts[lo]):
                continue
            bass = [f for f in opts[lo] if (STANDARD_TUNING[lo] + f) % 12 == root]
            for hi in range(lo + min_strings - 1, 6):
                for combo in itertools.product(bass, *opts[lo + 1:hi + 1]):
                    frets = [None] * 6
                    frets[lo:hi + 1] = combo
                    pitches = voicing_pitches(frets)
                    if min(pitches) != pitches[0] or not need <= {p % 12 for p in pitches}:
                        continue
                    if quality == "5" and len(pitches) > 3:
                        continue
                    if is_playable(frets):
                        found.add(tuple(frets))
    out = sorted(found, key=lambda v: (max(f for f in v if f is not None),
                                       -sum(f is not None for f in v), v.__repr__()))
    return tuple(out)


def _pick_voicing(rng, root_pc, quality, *, position: str, min_strings=4):
    vs = [v for v in chord_voicings(root_pc, quality)
          if sum(f is not None for f in v) >= min_strings] or list(chord_voicings(root_pc, quality))
    if not vs:
        raise RuntimeError(f"no playable voicing for pc {root_pc} {quality}")
    hi_fret = np.array([max(f for f in v if f is not None) for v in vs])
    if position == "open":
        w = np.exp(-hi_fret / 2.0)
    else:                                  # "up": prefer shapes around frets 5-10
        w = np.exp(-np.abs(hi_fret - 8) / 2.0)
    w = w / w.sum()
    return vs[int(rng.choice(len(vs), p=w))]


# ---------------------------------------------------------------------------------------------
# Note accumulation
# ---------------------------------------------------------------------------------------------

@dataclass
class _Part:
    """Mutable note list used while composing one part."""
    on: list = field(default_factory=list)
    off: list = field(default_factory=list)
    pitch: list = field(default_factory=list)
    vel: list = field(default_factory=list)
    string: list = field(default_factory=list)   # -1: no string model (free)
    group: list = field(default_factory=list)    # notes of one strum share a timing jitter

    def add(self, on, off, pitch, vel, string=-1, group=None):
        self.on.append(on), self.off.append(off), self.pitch.append(int(pitch))
        self.vel.append(int(vel)), self.string.append(int(string))
        self.group.append(len(self.group) + 1_000_000 if group is None else group)


def _ring_per_string(part: _Part) -> None:
    """A plucked string sounds until it is plucked again: cut each note at the next onset on
    the same string (strummed and picked notes are written "let ring" to the chord end)."""
    on = np.array(part.on)
    for s in set(part.string) - {-1}:
        idx = [i for i, x in enumerate(part.string) if x == s]
        idx.sort(key=lambda i: on[i])
        for a, b in zip(idx[:-1], idx[1:]):
            part.off[a] = min(part.off[a], part.on[b] - 0.005)


def _finish(part: _Part, duration: float, rng=None, jitter=True) -> Notes:
    """Humanise, clip to ``[0, duration)``, fold into E2..E6, remove same-pitch overlaps."""
    if not part.on:
        return Notes.empty()
    on = np.array(part.on, float)
    off = np.array(part.off, float)
    pitch = fit_range(np.array(part.pitch, np.int64))
    vel = np.clip(np.array(part.vel, np.int64), 20, 127)
    if jitter and rng is not None:
        # one jitter per strum (group), so the strum's string order and spread survive
        groups, inv = np.unique(np.array(part.group), return_inverse=True)
        j = np.clip(rng.normal(0.0, _JITTER_S, groups.shape), -_JITTER_MAX, _JITTER_MAX)[inv]
        on = on + j
        off = off + j
    on = np.maximum(on, 0.0)
    keep = on < duration - _MIN_DUR
    on, off, pitch, vel = on[keep], np.minimum(off[keep], duration), pitch[keep], vel[keep]
    return _clean(on, off, pitch, vel)


def _clean(on, off, pitch, vel) -> Notes:
    """Sort, drop exact duplicates, cut same-pitch overlaps, enforce a minimum duration and
    round times to the microsecond (the text-file precision)."""
    on = np.round(np.asarray(on, float), 6)
    off = np.round(np.asarray(off, float), 6)
    order = np.lexsort((-off, pitch, on))
    on, off, pitch, vel = on[order], off[order], np.asarray(pitch)[order], np.asarray(vel)[order]
    keep = np.ones(len(on), bool)
    for p in np.unique(pitch):
        idx = np.flatnonzero(pitch == p)
        last = None
        for i in idx:
            if last is not None and on[i] - on[last] < _MIN_DUR:   # same key struck twice at once
                keep[i] = False
                off[last] = max(off[last], off[i])
                continue
            if last is not None and off[last] > on[i] - 0.001:
                off[last] = on[i] - 0.001
            last = i
    on, off, pitch, vel = on[keep], off[keep], pitch[keep], vel[keep]
    off = np.round(np.maximum(off, on + _MIN_DUR), 6)
    # a minimum-duration stretch may re-create an overlap only for notes < 31 ms apart, which
    # were merged above; the rare remaining case is cut again
    for p in np.unique(pitch):
        idx = np.flatnonzero(pitch == p)
        for a, b in zip(idx[:-1], idx[1:]):
            if off[a] > on[b] - 0.001:
                off[a] = max(on[a] + 0.005, on[b] - 0.001)
    return Notes.from_arrays(on, np.round(off, 6), pitch, vel, source="compose")


def fit_range(pitch: np.ndarray, lo: int = PITCH_MIN, hi: int = PITCH_MAX) -> np.ndarray:
    """Move each pitch by octaves into ``[lo, hi]`` (E2..E6 by default)."""
    p = np.asarray(pitch, np.int64).copy()
    while (p < lo).any():
        p[p < lo] += 12
    while (p > hi).any():
        p[p > hi] -= 12
    return p


# ---------------------------------------------------------------------------------------------
# Idiom generator
# ---------------------------------------------------------------------------------------------

@dataclass
class _Song:
    """Shared frame of a generated piece: key, meter, tempo and the chord grid."""
    tonic: int
    mode: str
    meter: str
    bpm: float
    eighth: float                 # seconds per eighth note
    bar: int                      # eighths per bar
    accents: tuple
    chords: list                  # (start_eighth, length_eighths, root_pc, quality)
    scale: tuple
    duration: float

    def t(self, e: float) -> float:
        return float(e) * self.eighth


def _make_song(rng, duration: float) -> _Song:
    meter = str(rng.choice(list(METERS)))
    m = METERS[meter]
    bpm = float(rng.integers(m["bpm"][0], m["bpm"][1] + 1))
    eighth = 60.0 / bpm / (2 if m["unit"] == 2 else 1)
    mode = "major" if rng.random() < 0.6 else "minor"
    tonic = int(rng.integers(0, 12))
    prog = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    scale = MAJOR if mode == "major" else MINOR
    # harmonic rhythm: a chord per bar, sometimes two per bar in 4/4
    per_bar = 2 if (meter == "4/4" and rng.random() < 0.25) else 1
    clen = m["bar"] // per_bar
    n_chords = int(np.ceil(duration / (clen * eighth))) + 1
    chords = []
    for k in range(n_chords):
        deg, q = prog[k % len(prog)]
        chords.append((k * clen, clen, (tonic + scale[deg]) % 12, q))
    return _Song(tonic, mode, meter, bpm, eighth, m["bar"], m["accents"], chords, scale,
                 duration)


def _vel(rng, base, e, song, accent=10, spread=6):
    """Velocity: part base + accent on strong eighths + Gaussian noise."""
    strong = (e % song.bar) in song.accents
    return int(np.clip(base + (accent if strong else 0) + rng.normal(0, spread), 25, 127))


STRUM_PATTERNS = {   # (eighth in bar, "D"/"U")
    "4/4": [[(0, "D"), (2, "D"), (3, "U"), (5, "U"), (6, "D"), (7, "U")],
            [(0, "D"), (2, "D"), (4, "D"), (6, "D")],
            [(0, "D"), (3, "D"), (6, "D"), (7, "U")],
            [(0, "D"), (1, "U"), (2, "D"), (3, "U"), (4, "D"), (5, "U"), (6, "D"), (7, "U")]],
    "3/4": [[(0, "D"), (2, "D"), (3, "U"), (4, "D"), (5, "U")],
            [(0, "D"), (2, "D"), (4, "D")]],
    "6/8": [[(0, "D"), (2, "U"), (3, "D"), (5, "U")],
            [(0, "D"), (1, "U"), (2, "U"), (3, "D"), (4, "U"), (5, "U")],
            [(0, "D"), (3, "D")]],
}


def _strum(rng, song: _Song, frets, t0, vel, direction, part: _Part, ring_until,
           spread=(0.005, 0.025), up_strings=4):
    """One strum: down strums play low to high, up strums hit the top strings high to low;
    first-to-last string onset spread drawn in ``spread`` (5-25 ms)."""
    strings = [i for i, f in enumerate(frets) if f is not None]
    if direction == "U":
        strings = strings[-up_strings:][::-1]
        vel -= 12
    total = rng.uniform(*spread)
    step = total / max(len(strings) - 1, 1)
    group = len(part.group)
    for k, s in enumerate(strings):
        part.add(t0 + k * step, ring_until, STANDARD_TUNING[s] + frets[s],
                 vel + rng.normal(0, 4), string=s, group=group)


def _role_strum(rng, song, part, position):
    pattern = STRUM_PATTERNS[song.meter][int(rng.integers(len(STRUM_PATTERNS[song.meter])))]
    base = rng.uniform(70, 95)
    for (c0, clen, root, q) in song.chords:
        frets = _pick_voicing(rng, root, q, position=position)
        end = song.t(c0 + clen) - 0.02
        for e, d in pattern:
            e_abs = c0 + e
            if e_abs >= c0 + clen:      # half-bar chords take the first half of the pattern
                continue
            _strum(rng, song, frets, song.t(e_abs), _vel(rng, base, e_abs, song), d, part, end)
            part_voicings(part).append(frets)


def part_voicings(part: _Part) -> list:
    """The chord shapes a part used (kept for the playability test)."""
    if not hasattr(part, "_voicings"):
        part._voicings = []
    return part._voicings


ARP_PATTERNS = {   # per bar, entries index the chord's strings: 0 = bass, k = k-th from the top
    "4/4": [[0, 3, 2, 1, 0, 3, 2, 1], [0, 3, 2, 3, 1, 3, 2, 3], [0, 2, 3, 1, 0, 2, 3, 1]],
    "3/4": [[0, 3, 2, 1, 2, 3], [0, 2, 1, 2, 3, 2]],
    "6/8": [[0, 3, 2, 1, 2, 3], [0, 2, 3, 0, 2, 3]],
}


def _role_arpeggio(rng, song, part, position):
    pattern = ARP_PATTERNS[song.meter][int(rng.integers(len(ARP_PATTERNS[song.meter])))]
    base = rng.uniform(65, 90)
    for (c0, clen, root, q) in song.chords:
        frets = _pick_voicing(rng, root, q, position=position)
        part_voicings(part).append(frets)
        strings = [i for i, f in enumerate(frets) if f is not None]
        end = song.t(c0 + clen) - 0.01
        for k in range(clen):
            idx = pattern[k % len(pattern)]
            s = strings[0] if idx == 0 else strings[-min(idx, len(strings) - 1)]
            e = c0 + k
            part.add(song.t(e), end, STANDARD_TUNING[s] + frets[s], _vel(rng, base, e, song),
                     string=s)


BASS_CHORD_PATTERNS = {   # (eighth in bar, "B" root bass / "A" alternate bass / "C" stab)
    "4/4": [(0, "B"), (2, "C"), (4, "A"), (6, "C")],
    "3/4": [(0, "B"), (2, "C"), (4, "C")],          # waltz: bass on 1, chord on 2 and 3
    "6/8": [(0, "B"), (2, "C"), (3, "A"), (5, "C")],
}


def _role_bass_chords(rng, song, part, position):
    """Boom-chick: bass notes (root, alternating with the fifth) and short upper-string stabs."""
    base = rng.uniform(70, 92)
    pattern = BASS_CHORD_PATTERNS[song.meter]
    for (c0, clen, root, q) in song.chords:
        frets = _pick_voicing(rng, root, q, position=position)
        part_voicings(part).append(frets)
        strings = [i for i, f in enumerate(frets) if f is not None]
        bass_s = strings[0]
        bass = (bass_s, STANDARD_TUNING[bass_s] + frets[bass_s])
        # alternate bass: the fifth on a higher string of the shape when it has one
        alt = next(((s, STANDARD_TUNING[s] + frets[s]) for s in strings[1:]
                    if (STANDARD_TUNING[s] + frets[s] - bass[1]) % 12 == 7), bass)
        top = [s for s in strings[-3:] if s != bass_s]
        slots = [e for e, _ in pattern] + [song.bar]
        for k, (e, kind) in enumerate(pattern):
            if e >= clen:
                continue
            e_abs, nxt = c0 + e, c0 + min(slots[k + 1], clen)
            if kind in "BA":
                s, p = bass if kind == "B" else alt
                part.add(song.t(e_abs), song.t(nxt) - 0.01, p, _vel(rng, base + 5, e_abs, song),
                         string=s)
            else:
                stab = song.t(e_abs) + (song.t(nxt) - song.t(e_abs)) * rng.uniform(0.4, 0.8)
                group = len(part.group)
                for j, s in enumerate(top):
                    part.add(song.t(e_abs) + 0.004 * j, stab, STANDARD_TUNING[s] + frets[s],
                             _vel(rng, base - 8, e_abs, song), string=s, group=group)


def _power_shape(root_pc, rng):
    """Power chord (root, fifth, octave) with the root on the low E or A string."""
    s = int(rng.integers(0, 2))
    f = (root_pc - STANDARD_TUNING[s]) % 12
    if f > 9:                       # too high up: use the other string
        s = 1 - s
        f = (root_pc - STANDARD_TUNING[s]) % 12
    frets = [None] * 6
    frets[s], frets[s + 1], frets[s + 2] = f, f + 2, f + 2
    return frets


def _role_power(rng, song, part, position):
    base = rng.uniform(80, 100)
    mute = rng.uniform(0.06, 0.15)          # palm-muted note length (s)
    ring_on_accent = rng.random() < 0.6
    for (c0, clen, root, q) in song.chords:
        frets = _power_shape(root, rng)
        part_voicings(part).append(frets)
        for e in range(c0, c0 + clen):
            accent = (e % song.bar) in song.accents
            end = song.t(e + (2 if accent else 1)) - 0.01 if (accent and ring_on_accent) \
                else song.t(e) + mute
            _strum(rng, song, frets, song.t(e), _vel(rng, base, e, song, accent=12), "D",
                   part, end, spread=(0.005, 0.012))


MELODY_RHYTHMS = {   # eighth-note durations filling a bar
    "4/4": [[2, 2, 2, 2], [1, 1, 2, 2, 2], [3, 1, 2, 2], [4, 2, 2], [2, 1, 1, 4],
            [1, 1, 1, 1, 2, 2], [2, 2, 4], [1.5, 1.5, 1, 2, 2]],
    "3/4": [[2, 2, 2], [1, 1, 2, 2], [4, 2], [2, 1, 1, 2], [3, 1, 2]],
    "6/8": [[3, 3], [2, 1, 3], [1, 1, 1, 3], [2, 1, 2, 1], [1, 1, 1, 1, 1, 1]],
}


def _scale_pitches(song, lo, hi, pentatonic=False):
    sc = song.scale
    if pentatonic:
        sc = (0, 3, 5, 7, 10) if song.mode == "minor" else (0, 2, 4, 7, 9)
    pcs = {(song.tonic + s) % 12 for s in sc}
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


def _role_melody(rng, song, part, position):
    lo = int(rng.integers(52, 60))
    hi = min(lo + int(rng.integers(17, 25)), 86)
    pitches = _scale_pitches(song, lo, hi)
    base = rng.uniform(75, 100)
    legato = rng.uniform(0.6, 0.95)
    idx = len(pitches) // 2
    n_bars = int(np.ceil(song.duration / (song.bar * song.eighth))) + 1
    for b in range(n_bars):
        cells = MELODY_RHYTHMS[song.meter]
        rhythm = cells[int(rng.integers(len(cells)))]
        e = b * song.bar
        for d in rhythm:
            chord = next((c for c in song.chords if c[0] <= e < c[0] + c[1]), song.chords[-1])
            step = int(rng.choice([-2, -1, -1, 1, 1, 2, -3, 3, 0, -4, 4],
                                  p=[.12, .2, .0, .2, .0, .12, .08, .08, .06, .07, .07]))
            idx = int(np.clip(idx + step, 0, len(pitches) - 1))
            p = pitches[idx]
            if (e % song.bar) in song.accents:        # strong beats land on chord tones
                tones = {(chord[2] + t) % 12 for t in QUALITIES[chord[3]]}
                cand = [i for i, q in enumerate(pitches) if q % 12 in tones]
                idx = min(cand, key=lambda i: abs(i - idx))
                p = pitches[idx]
            if rng.random() > 0.08:                   # occasional rest
                part.add(song.t(e), song.t(e + d * legato), p, _vel(rng, base, e, song))
            e += d


def _role_riff(rng, song, part, position):
    """A one-bar pentatonic motif in the low register, moved with each chord's root."""
    pitches = _scale_pitches(song, 40, 64, pentatonic=True)
    start = [i for i, p in enumerate(pitches) if p % 12 == song.tonic][0]
    cells = MELODY_RHYTHMS[song.meter]
    rhythm = [x for c in (cells[int(rng.integers(len(cells)))],) for x in c]
    if rng.random() < 0.5:                            # a busier riff: split some notes
        rhythm = [y for x in rhythm for y in ((x / 2, x / 2) if x >= 2 and rng.random() < .5
                                              else (x,))]
    motif = [int(np.clip(start + rng.integers(-1, 5), 0, len(pitches) - 1)) for _ in rhythm]
    motif[0] = start
    base = rng.uniform(80, 100)
    short = rng.random() < 0.4
    for (c0, clen, root, q) in song.chords:
        shift = (root - song.tonic) % 12
        shift = shift - 12 if shift > 6 else shift
        e = c0
        for d, m in zip(itertools.cycle(rhythm), itertools.cycle(motif)):
            if e >= c0 + clen:
                break
            dur = min(d, c0 + clen - e)
            end = song.t(e) + (0.12 if short else song.t(dur) * 0.9)
            part.add(song.t(e), end, pitches[m] + shift, _vel(rng, base, e, song))
            e += d


_ROLE_FUNCS = {"strum": _role_strum, "arpeggio": _role_arpeggio,
               "bass_chords": _role_bass_chords, "power": _role_power,
               "melody": _role_melody, "riff": _role_riff}


def generate_idiom_piece(seed, duration: float, *, roles: tuple[str, str] | None = None):
    """One generated two-part piece (used by the corpus; 01_data.ipynb plays one).

    ``seed``: an int or ``numpy.random.SeedSequence``; ``duration`` in seconds (the piece is
    cut there); ``roles``: force a pair of :data:`ROLES` (default: drawn from
    :data:`ROLE_PAIRS`, order shuffled so the lead is part 0 or part 1).
    Returns ``(Notes, Notes, meta)``, ``meta`` with keys style, key, mode, meter, tempo,
    progression, roles, voicings (the chord shapes of each part, for tests).
    """
    rng = np.random.default_rng(seed)
    song = _make_song(rng, duration)
    if roles is None:
        pair = list(ROLE_PAIRS[int(rng.integers(len(ROLE_PAIRS)))])
        if rng.random() < 0.5:
            pair = pair[::-1]
    else:
        pair = list(roles)
    # two rhythm parts take different hand positions so they do not double each other
    positions = ["open", "up"] if rng.random() < 0.5 else ["up", "open"]
    parts, voicings = [], []
    for role, pos in zip(pair, positions):
        part = _Part()
        _ROLE_FUNCS[role](rng, song, part, pos)
        _ring_per_string(part)
        voicings.append([tuple(v) for v in part_voicings(part)])
        parts.append(_finish(part, duration, rng))
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    meta = dict(style="+".join(pair), key=names[song.tonic] + ("m" if song.mode == "minor"
                                                                 else ""),
                mode=song.mode, meter=song.meter, tempo=song.bpm,
                progression=[f"{names[c[2]]}{c[3]}" for c in song.chords[:4]],
                roles=tuple(pair), voicings=voicings)
    return parts[0], parts[1], meta


# ---------------------------------------------------------------------------------------------
# music21 reductions
# ---------------------------------------------------------------------------------------------

_BACH_RE = re.compile(r"^(bwv\d+(?:\.\d+)?)(?:-.*)?\.mxl$")


@functools.lru_cache(maxsize=None)
def music21_works(sources: tuple[str, ...] = ("bach", "palestrina")) -> tuple[tuple[str, str], ...]:
    """``((work_id, corpus_path), ...)`` of the multi-voice pieces bundled with music21.

    Bach: the ``bwv*.mxl`` files, one per work (variants such as ``bwv248.23-2`` and
    ``bwv248.23-s`` count as the work ``bwv248.23``, so a chorale lands in one split only).
    Palestrina: the ``.krn`` mass movements. Sorted, so the order is stable across machines.
    """
    from music21 import corpus
    paths = sorted(str(p) for p in corpus.getCorePaths())
    works = {}
    for p in paths:
        parts = p.replace("\\", "/").split("/")
        comp, fname = parts[-2], parts[-1]
        if comp not in sources:
            continue
        if comp == "bach":
            m = _BACH_RE.match(fname)
            if not m:
                continue
            wid = "bach_" + m.group(1)
        elif comp == "palestrina":
            if not fname.endswith(".krn"):
                continue
            wid = "palestrina_" + fname[:-4]
        else:
            wid = comp + "_" + fname.rsplit(".", 1)[0]
        works.setdefault(wid, p)          # first (sorted) variant of a work
    return tuple(sorted(works.items()))


def _voice_notes(part, spq: float, rng):
    """(onset, offset, pitch) arrays of a music21 part at ``spq`` seconds per quarter."""
    rows = []
    flat = part.flatten().stripTies()
    for n in flat.notes:
        ql = float(n.quarterLength)
        if ql <= 0:                               # grace notes
            continue
        t = float(n.offset)
        for p in n.pitches:
            rows.append((t * spq, (t + ql) * spq, int(round(p.ps))))
    return np.array(rows, float).reshape(-1, 3)


def _reduce_voices(voices: list[np.ndarray], rng: np.random.Generator):
    """``(mode, groups, parts)``: :func:`music21_piece`'s two-part reduction of ``voices``
    (rows ``(onset, offset, pitch)``, high to low), each voice moved by whole octaves into
    range and folded."""
    n = len(voices)
    mode = str(rng.choice(["pairs", "outer", "two"])) if n >= 4 else "two"
    if mode == "pairs":
        h = n // 2
        groups = [list(range(0, h)), list(range(h, n))]
    elif mode == "outer":
        groups = [[0], [n - 1]]
    else:
        i, j = sorted(rng.choice(n, 2, replace=False).tolist())
        groups = [[i], [j]]
    parts = []
    for g in groups:
        arrs = []
        for vi in g:
            a = voices[vi].copy()
            # octave shift of the whole voice that keeps most notes in range, then fold
            best = min(range(-3, 4), key=lambda k: (np.sum((a[:, 2] + 12 * k < PITCH_MIN) |
                                                           (a[:, 2] + 12 * k > PITCH_MAX)),
                                                    abs(k)))
            a[:, 2] = fit_range(a[:, 2].astype(np.int64) + 12 * best)
            arrs.append(a)
        parts.append(np.concatenate(arrs))
    return mode, groups, parts


def _excerpt_part(p: np.ndarray, start: float, length: float, duration: float, spq: float,
                  rng: np.random.Generator) -> Notes:
    """One reduced part of :func:`music21_piece` from ``start`` for ``duration`` seconds,
    looped (with a one-beat breath) when the piece is shorter, with articulation, onset
    jitter and drawn velocities."""
    rows = p[p[:, 1] > start].copy()
    rows[:, :2] -= start
    rows[:, 0] = np.maximum(rows[:, 0], 0.0)
    if length - start < duration:             # loop the piece (with a one-beat breath)
        period = (length - start) + spq
        reps = int(np.ceil(duration / period))
        rows = np.concatenate([rows + np.array([k * period, k * period, 0])
                               for k in range(reps)])
    on, off, pitch = rows[:, 0], rows[:, 1], rows[:, 2].astype(np.int64)
    off = off - np.minimum(0.03, 0.1 * (off - on))          # articulate repeated notes
    j = np.clip(rng.normal(0, _JITTER_S, on.shape), -_JITTER_MAX, _JITTER_MAX)
    on, off = np.maximum(on + j, 0.0), off + j
    vel = np.clip(np.round(rng.normal(80, 8, on.shape)), 40, 115).astype(np.int64)
    keep = on < duration - _MIN_DUR
    return _clean(on[keep], np.minimum(off[keep], duration), pitch[keep], vel[keep])


def music21_piece(path: str, seed, duration: float, *, style: str = ""):
    """A two-guitar reduction of one music21 corpus work (used by the corpus; 01_data.ipynb
    plays one).

    Voices are ordered high to low; the reduction is drawn from: upper pair / lower pair
    (e.g. soprano+alto -> part 0, tenor+bass -> part 1), outer voices (soprano / bass), or
    two random single voices. Each voice moves by whole octaves into E2..E6 (then single
    notes fold in), the tempo is drawn in 60-120 bpm (quarter note for Bach, half note, the
    tactus, for Palestrina), onsets get <= 10 ms
    jitter and velocities a phrase-free Gaussian around 80. Pieces shorter than ``duration``
    loop (with a one-beat breath), longer ones start at a drawn bar so that both parts play.
    Returns ``(Notes, Notes, meta)``.
    """
    from music21 import converter
    rng = np.random.default_rng(seed)
    score = converter.parse(path)
    bpm = float(rng.integers(60, 121))
    # Bach counts quarter notes; Palestrina's beat (tactus) is the half note of its notation
    spq = 60.0 / bpm / (2.0 if "palestrina" in path.replace("\\", "/") else 1.0)
    voices = []
    for part in score.parts:
        name = (part.partName or "").lower()
        if any(k in name for k in ("horn", "violin", "oboe", "trumpet", "continuo", "organ",
                                   "flute", "viola", "tromb", "timp")):
            continue
        arr = _voice_notes(part, spq, rng)
        if len(arr) >= 8:
            voices.append(arr)
    if len(voices) < 2:
        raise ValueError(f"{path}: fewer than two usable voices")
    voices.sort(key=lambda a: -np.median(a[:, 2]))
    n = len(voices)
    mode, groups, parts = _reduce_voices(voices, rng)
    length = max(float(p[:, 1].max()) for p in parts)
    start = 0.0
    if length > duration:
        # start on a drawn quarter-note boundary where both parts have begun playing
        first = max(float(p[:, 0].min()) for p in parts)
        latest = max(first, length - duration)
        start = float(np.floor(rng.uniform(first, latest + 1e-9) / spq) * spq) if latest > first \
            else first
    out = [_excerpt_part(p, start, length, duration, spq, rng) for p in parts]
    meta = dict(style=style or path.replace("\\", "/").split("/")[-2], tempo=bpm,
                reduction=mode, groups=groups, n_voices=n, start_s=round(start, 6),
                source_path=path.replace("\\", "/").split("/corpus/")[-1])
    return out[0], out[1], meta


# ---------------------------------------------------------------------------------------------
# Pieces of a corpus
# ---------------------------------------------------------------------------------------------

SPLITS = ("train", "valid", "test")


@dataclass
class Piece:
    """One two-part piece of the corpus: ``parts`` is ``(Notes, Notes)``."""
    piece_id: str
    source: str            # "idiom" | "music21"
    style: str
    split: str
    tempo: float
    parts: tuple
    meta: dict

    @property
    def duration(self) -> float:
        return max(p.duration for p in self.parts)


def compose_pieces(cfg) -> list[Piece]:
    """Every piece of a corpus config (``config.CorpusConfig``), in a fixed order (called by
    ``corpus.build_corpus``; 01_data.ipynb shows the resulting ``pieces.csv``).

    Generated pieces: piece ``i`` of split ``s`` draws from
    ``SeedSequence([cfg.seed, split index, i, 0])``, so splits never share a seed. music21
    works: the work list (:func:`music21_works`) is shuffled with ``cfg.seed``, alternating
    Bach and Palestrina, and dealt out train first, then valid, then test; a work that fails
    to reduce, or whose two parts repeat the opening pitches of a work already dealt (the same
    chorale tune in another harmonisation), is skipped. A work is used at most once, so no work
    is in two splits.
    """
    pieces: list[Piece] = []
    gen = cfg.counts("n_generated")
    m21 = cfg.counts("n_music21")
    for si, split in enumerate(SPLITS):
        for i in range(gen.get(split, 0)):
            ss = np.random.SeedSequence([cfg.seed, si, i, 0])
            p0, p1, meta = generate_idiom_piece(ss, cfg.piece_seconds)
            pieces.append(Piece(f"gen_{split}_{i:03d}", "idiom", meta["style"], split,
                                meta["tempo"], (p0, p1), meta))
    if sum(m21.values()):
        works = music21_works()
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 99]))
        by_src = {}
        for wid, path in works:
            by_src.setdefault(wid.split("_")[0], []).append((wid, path))
        streams = [list(by_src[k][i] for i in rng.permutation(len(by_src[k])))
                   for k in sorted(by_src)]
        order = [w for grp in itertools.zip_longest(*streams) for w in grp if w is not None]
        seen_sigs = set()
        it = iter(order)
        for si, split in enumerate(SPLITS):
            k = 0
            while k < m21.get(split, 0):
                try:
                    wid, path = next(it)
                except StopIteration:
                    raise RuntimeError("ran out of music21 works") from None
                ss = np.random.SeedSequence([cfg.seed, si, k, 1])
                try:
                    p0, p1, meta = music21_piece(path, ss, cfg.piece_seconds,
                                                 style=wid.split("_")[0])
                except Exception:        # unusable file (too few voices, parse problem)
                    continue
                if len(p0) < 8 or len(p1) < 8:
                    continue
                sig = (tuple(p0.pitch[:12] % 12), tuple(p1.pitch[:12] % 12))
                if sig in seen_sigs:
                    continue
                seen_sigs.add(sig)
                meta["work"] = wid
                pieces.append(Piece(f"m21_{split}_{k:03d}_{wid}".replace(".", "-"), "music21",
                                    meta["style"], split, meta["tempo"], (p0, p1), meta))
                k += 1
    return pieces
