"""Tests for guitarsep.score: Notes, score readers/writers, part resolution, validation and
score masks (notes.py, readers.py, guitarpro.py, masks.py)."""
from __future__ import annotations

import numpy as np
import pytest

from guitarsep.config import SETTINGS, MaskParams
from guitarsep.score import (
    Notes, binary_score_mask, list_parts, load_notes, notes_to_pretty_midi, parse_part,
    part_names, resolve_part, save_notes, score_masks, soft_score_mask, validate_notes,
)

MODERN = dict(sr=44100, n_fft=4096, hop=1024)
LOW_RES = dict(sr=8192, n_fft=1024, hop=768)


def notes(*rows) -> Notes:
    """Notes from (onset, offset, pitch) rows."""
    on, off, p = np.array(rows, dtype=float).T
    return Notes.from_arrays(on, off, p.astype(int))


# --- expected masks, computed independently (loops, straight from the definition) -----------

def expected_bins(pitch: int, sr: int, n_fft: int, cents=30.0, n_harm=20) -> set[int]:
    freqs = [b * sr / n_fft for b in range(n_fft // 2 + 1)]
    out = set()
    for k in range(1, n_harm + 1):
        f = k * 440.0 * 2 ** ((pitch - 69) / 12)
        if f >= sr / 2:
            continue
        lo, hi = f * 2 ** (-cents / 1200), f * 2 ** (cents / 1200)
        hits = {b for b, fb in enumerate(freqs) if lo <= fb <= hi}
        # documented rule: no bin centre within ±cents -> the nearest bin
        out |= hits or {min(range(len(freqs)), key=lambda b: abs(freqs[b] - f))}
    return out


def expected_frames(t0: float, t1: float, n_frames: int, sr: int, hop: int) -> list[int]:
    return [t for t in range(n_frames) if t0 <= t * hop / sr <= t1]


def expected_mask(pitch, t0, t1, n_frames, sr, n_fft, hop) -> np.ndarray:
    m = np.zeros((n_frames, n_fft // 2 + 1), dtype=bool)
    m[np.ix_(expected_frames(t0, t1, n_frames, sr, hop), sorted(expected_bins(pitch, sr, n_fft)))] \
        = True
    return m


# --- masks ------------------------------------------------------------------------------------

def test_single_a4_modern_exact_bins_and_frames():
    sr, n_fft, hop = MODERN.values()
    n_frames = 200
    m = binary_score_mask(notes((1.0, 2.0, 69)), n_frames, **MODERN)
    assert m.dtype == bool and m.shape == (n_frames, n_fft // 2 + 1)
    # at 4096/44.1 kHz every ±30 cent interval holds a bin centre: no nearest-bin fallback here
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    for k in range(1, 21):
        f = 440.0 * k
        assert ((freqs >= f * 2 ** (-30 / 1200)) & (freqs <= f * 2 ** (30 / 1200))).any()
    frames = expected_frames(0.9, 2.5, n_frames, sr, hop)
    assert frames[0] == 39 and frames[-1] == 107
    np.testing.assert_array_equal(m, expected_mask(69, 0.9, 2.5, n_frames, **MODERN))


@pytest.mark.parametrize("setting", ["modern", "low_res"])
@pytest.mark.parametrize("pitch", [28, 40, 52, 69, 88])
def test_any_resolution_matches_definition(setting, pitch):
    s = SETTINGS[setting]
    kw = dict(sr=s.sr, n_fft=s.n_fft, hop=s.hop)
    n_frames = s.frames_for(4.0)
    m = binary_score_mask(notes((1.0, 2.0, pitch)), n_frames, **kw)
    np.testing.assert_array_equal(m, expected_mask(pitch, 0.9, 2.5, n_frames, **kw))


def test_low_res_low_note_uses_nearest_bin():
    # E2 (82.4 Hz) at 8 Hz bins: ±30 cents (±1.4 Hz) holds no bin centre -> bin 10 (80 Hz)
    m = binary_score_mask(notes((0.5, 1.0, 40)), 10, **LOW_RES)
    t = 6   # centre 0.5625 s
    assert m[t, 10] and not m[t, 9] and not m[t, 11]


def test_harmonics_above_nyquist_are_dropped():
    # pitch 100 (2637 Hz) at 8192 Hz: only harmonic 1 is below Nyquist (4096 Hz)
    m = binary_score_mask(notes((0.5, 1.0, 100)), 10, **LOW_RES)
    assert m.any(axis=0).sum() == len(expected_bins(100, LOW_RES["sr"], LOW_RES["n_fft"]))
    assert not m[:, 400:].any()


def test_same_pitch_in_both_parts_gives_half():
    part = notes((1.0, 2.0, 69))
    soft, binary = score_masks(part, part, 150, **MODERN)
    assert soft.dtype == np.float32 and binary.dtype == np.float32
    assert np.all(soft[binary == 1] == 0.5) and np.all(soft[binary == 0] == 0)


def test_soft_values_and_binary_dominates():
    target = notes((0.0, 1.0, 60), (1.0, 3.0, 64), (2.0, 2.5, 67))
    accomp = notes((0.5, 2.0, 60), (1.5, 3.0, 45))
    soft, binary = score_masks(target, accomp, 200, **MODERN)
    assert set(np.unique(soft)) <= {0.0, 0.5, 1.0}
    assert np.all(binary >= soft)
    assert (soft == 1).any() and (soft == 0.5).any()
    m_a = binary_score_mask(accomp, 200, **MODERN)
    np.testing.assert_array_equal(soft == 0.5, (binary == 1) & m_a)


def test_soft_score_mask_zero_where_both_zero():
    mt = np.array([[1, 1, 0, 0]], dtype=bool)
    ma = np.array([[1, 0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(soft_score_mask(mt, ma), [[0.5, 1.0, 0.0, 0.0]])
    # numeric inputs take the general division path
    out = soft_score_mask(mt.astype(np.float64), ma.astype(np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.5, 1.0, 0.0, 0.0]])


def test_soft_score_mask_torch():
    torch = pytest.importorskip("torch")
    mt = torch.tensor([[[True, True, False, False]]])
    ma = torch.tensor([[[True, False, True, False]]])
    out = soft_score_mask(mt, ma)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.tolist() == [[[0.5, 1.0, 0.0, 0.0]]]
    # a floating target keeps its dtype; the accompaniment is converted to it
    out = soft_score_mask(mt.double() * 0.3, ma)
    assert out.dtype == torch.float64
    assert out.tolist() == [[[0.3 / 1.3, 1.0, 0.0, 0.0]]]


def test_soft_score_mask_numpy_and_torch_agree():
    """The bool fast path, the numpy division and the torch path give the same float32 bits."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    mt, ma = rng.random((2, 50, 60)) < 0.4, rng.random((2, 50, 60)) < 0.3
    fast = soft_score_mask(mt, ma)
    general = soft_score_mask(mt.astype(np.uint8), ma)
    tensor = soft_score_mask(torch.from_numpy(mt), torch.from_numpy(ma)).numpy()
    assert fast.dtype == general.dtype == tensor.dtype == np.float32
    np.testing.assert_array_equal(fast.view(np.int32), general.view(np.int32))
    np.testing.assert_array_equal(fast.view(np.int32), tensor.view(np.int32))


def test_score_input_uses_soft_score_mask():
    """``models.frontend.score_input`` is ``soft_score_mask`` for the soft kind, bit for bit,
    and ``score_pair`` swaps the parts."""
    torch = pytest.importorskip("torch")
    from guitarsep.models.frontend import score_input, score_pair
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 30, 20, generator=g), torch.rand(2, 30, 20, generator=g)
    x[x < 0.3], y[y < 0.4] = 0, 0
    for a, b in ((x, y), (x.double(), y.double()), (x > 0.5, y > 0.5), (x.half(), y > 0.5)):
        soft = score_input("soft", a, b)
        direct = soft_score_mask(a, b)
        assert torch.equal(soft, direct) and soft.dtype == direct.dtype
        den = a.to(soft.dtype) + b.to(soft.dtype)
        ref = torch.where(den > 0, a.to(soft.dtype) / den.clamp_min(torch.finfo(soft.dtype).tiny),
                          torch.zeros_like(den))
        assert torch.equal(soft, ref)
        s_t, s_a = score_pair("soft", a, b)
        assert torch.equal(s_t, soft) and torch.equal(s_a, soft_score_mask(b, a))


def test_next_same_pitch_cuts_the_release():
    from guitarsep.score.masks import _note_spans
    p = MaskParams()
    # the release of note 0 (to 2.5 s) stops at the next C4's onset - 0.1 = 2.1 s;
    # the E4 does not cut it (different pitch)
    start, end = _note_spans(notes((1.0, 2.0, 60), (2.2, 3.0, 60), (1.5, 1.8, 64)), p)
    # sorted order: C4@1.0, E4@1.5, C4@2.2
    np.testing.assert_allclose(start, [0.9, 1.4, 2.1])
    np.testing.assert_allclose(end, [2.1, 2.3, 3.5])


def test_cut_never_before_own_offset():
    # a same-pitch note starting inside a long note: the long note keeps its own offset (3.0 s)
    # but loses its release; in the OR-ed mask that is the only place the cut is visible
    sr, n_fft, hop = MODERN.values()
    m = binary_score_mask(notes((1.0, 3.0, 60), (1.5, 2.0, 60)), 200, **MODERN)
    active = np.flatnonzero(m.any(axis=1))
    assert active[0] == expected_frames(0.9, 3.0, 200, sr, hop)[0]
    assert active[-1] == expected_frames(0.9, 3.0, 200, sr, hop)[-1]


def test_mask_clips_to_n_frames_and_empty_part():
    m = binary_score_mask(notes((0.0, 100.0, 60)), 5, **MODERN)
    assert m.shape == (5, 2049) and m[0].any() and m[4].any()
    assert not binary_score_mask(Notes.empty(), 5, **MODERN).any()
    assert not binary_score_mask(notes((10.0, 11.0, 60)), 5, **MODERN).any()


# --- Notes ------------------------------------------------------------------------------------

def test_from_arrays_sorts_and_defaults_velocity():
    n = Notes.from_arrays([2.0, 1.0, 1.0], [3.0, 2.0, 1.5], [60, 64, 62])
    np.testing.assert_array_equal(n.onset, [1.0, 1.0, 2.0])
    np.testing.assert_array_equal(n.pitch, [62, 64, 60])
    np.testing.assert_array_equal(n.velocity, [90, 90, 90])
    assert n.onset.dtype == np.float64 and n.pitch.dtype == np.int64
    assert len(n) == 3 and n.duration == 3.0
    assert Notes.empty().duration == 0.0 and len(Notes.empty()) == 0


def test_window_shift_transpose_concat():
    n = notes((0.0, 1.0, 60), (0.5, 3.0, 64), (2.0, 2.5, 67), (4.0, 5.0, 72))
    w = n.window(1.0, 3.0)
    np.testing.assert_allclose(w.onset, [0.0, 1.0])
    np.testing.assert_allclose(w.offset, [2.0, 1.5])
    np.testing.assert_array_equal(w.pitch, [64, 67])
    assert len(n.window(5.0, 6.0)) == 0          # [t0, t1): a note ending at t0 is out
    assert n.shift(1.0).onset[0] == 1.0
    with pytest.raises(ValueError):
        n.shift(-1.0)
    assert n.transpose(-12).pitch.tolist() == [48, 52, 55, 60]
    with pytest.raises(ValueError):
        n.transpose(100)
    c = n.window(0, 1).concat(n.window(0, 1).transpose(1))
    assert c.pitch.tolist() == [60, 61, 64, 65]
    assert n.concat(Notes.empty()) == n


# --- validation and bad files ---------------------------------------------------------------

def write(tmp_path, name, text) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("body, problem", [
    ("0 1 60\n2.0 1.5 62\n", "onset 2.0 >= offset 1.5"),
    ("0 1 128\n", "pitch 128 outside 0..127"),
    ("0 1 60.5\n", "non-integer pitch"),
    ("0 nan 60\n", "not finite"),
    ("0 inf 60\n", "not finite"),
    ("-0.5 1 60\n", "negative onset"),
    ("0 1 60 0\n", "velocity 0 outside 1..127"),
    ("# onset offset pitch\n\n", "empty part"),
    ("0 1\n", "expected 'onset offset pitch [velocity]'"),
    ("0 1 C4\n", "not a number"),
])
def test_bad_text_files_name_the_file(tmp_path, body, problem):
    path = write(tmp_path, "bad_song.txt", body)
    with pytest.raises(ValueError, match="bad_song.txt") as e:
        load_notes(path)
    assert problem in str(e.value)


def test_validate_notes_message_format():
    with pytest.raises(ValueError, match=r"^x\.txt: note 1 has onset 2\.0 >= offset 1\.5$"):
        validate_notes([0.0, 2.0], [1.0, 1.5], [60, 60], [90, 90], "x.txt")
    validate_notes([], [], [], [], "x", allow_empty=True)


@pytest.mark.parametrize("name, content", [
    ("missing.mid", None),
    ("corrupt.mid", b"this is not a midi file"),
    ("corrupt.musicxml", b"<?xml version='1.0'?><score-partwise><part id="),
    ("notes.foo", b"0 1 60\n"),
    ("binary.txt", b"\xff\xfe\x00\x81"),
])
def test_unreadable_files_name_the_file(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        load_notes(path)


# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".txt", ".csv", ".tsv"])
def test_save_load_round_trip(tmp_path, ext):
    rng = np.random.default_rng(0)
    on = np.sort(rng.uniform(0, 20, 50))
    n = Notes.from_arrays(on, on + rng.uniform(0.05, 2, 50), rng.integers(30, 90, 50),
                          rng.integers(1, 128, 50))
    path = tmp_path / f"part{ext}"
    save_notes(path, n)
    assert path.read_text().startswith("# onset offset pitch velocity\n")
    back = load_notes(path)
    np.testing.assert_allclose(back.onset, n.onset, atol=1e-6)
    np.testing.assert_allclose(back.offset, n.offset, atol=1e-6)
    assert back.pitch.tolist() == n.pitch.tolist() and back.velocity.tolist() == n.velocity.tolist()


def test_text_format_separators_comments_header(tmp_path):
    path = write(tmp_path, "p.csv",
                 "onset,offset,pitch\n# comment\n\n0.5,1.0,60  # trailing\n0.0\t0.5\t62\t70\n")
    n = load_notes(path)
    assert n.onset.tolist() == [0.0, 0.5] and n.pitch.tolist() == [62, 60]
    assert n.velocity.tolist() == [70, 90]
    assert list_parts(path) == ["0: p"]


@pytest.fixture
def two_guitar_midi(tmp_path):
    import pretty_midi
    pm = pretty_midi.PrettyMIDI()
    a = notes((0.0, 0.5, 60), (0.5, 1.0, 64), (1.0, 2.0, 67))
    b = notes((0.0, 2.0, 40), (2.0, 3.0, 45))
    pm.instruments.append(notes_to_pretty_midi(a, 24, name="Nylon"))
    pm.instruments.append(notes_to_pretty_midi(b, 29, name="Overdrive"))
    path = tmp_path / "duo.mid"
    pm.write(str(path))
    return path, a, b


def test_midi_two_instruments(two_guitar_midi):
    path, a, b = two_guitar_midi
    for part, ref in ((0, a), ("nylon", a), (1, b), ("OVERDRIVE", b)):
        got = load_notes(path, part)
        np.testing.assert_allclose(got.onset, ref.onset, atol=1e-3)
        np.testing.assert_allclose(got.offset, ref.offset, atol=1e-3)
        assert got.pitch.tolist() == ref.pitch.tolist()
    assert list_parts(path) == ["0: Nylon (program 24)", "1: Overdrive (program 29)"]
    for part in (None, "bass", 5):
        with pytest.raises(ValueError, match="duo.mid") as e:
            load_notes(path, part)
        assert "0: Nylon (program 24)" in str(e.value)
        assert "1: Overdrive (program 29)" in str(e.value)


def test_midi_empty_part(tmp_path):
    import pretty_midi
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(program=25, name="Silent"))
    pm.write(str(tmp_path / "silent.mid"))
    with pytest.raises(ValueError, match="silent.mid.*empty part"):
        load_notes(tmp_path / "silent.mid")


def test_musicxml_two_parts_chord_and_tie(tmp_path):
    from music21 import chord, meter, note, stream, tempo, tie
    p1 = stream.Part()
    p1.partName = "Guitar I"
    p1.append([tempo.MetronomeMark(number=90), meter.TimeSignature("4/4"),
               note.Note("C4", quarterLength=1), chord.Chord(["E4", "G4"], quarterLength=1)])
    first, second = note.Note("A4", quarterLength=2), note.Note("A4", quarterLength=1)
    first.tie, second.tie = tie.Tie("start"), tie.Tie("stop")
    p1.append([first, second, note.Rest(quarterLength=1)])
    p2 = stream.Part()
    p2.partName = "Guitar II"
    p2.append([meter.TimeSignature("4/4"), note.Note("E2", quarterLength=4)])
    p3 = stream.Part()
    p3.partName = "Tacet"
    p3.append([meter.TimeSignature("4/4"), note.Rest(quarterLength=4)])
    score = stream.Score([p1, p2, p3])
    path = tmp_path / "duo.musicxml"
    score.write("musicxml", fp=str(path))

    q = 60 / 90   # seconds per quarter note at the score's tempo (applies to part 2 as well)
    n1 = load_notes(path, "guitar i")
    np.testing.assert_allclose(n1.onset, [0, q, q, 2 * q])
    np.testing.assert_allclose(n1.offset, [q, 2 * q, 2 * q, 5 * q])   # tie merged: 3 quarters
    assert n1.pitch.tolist() == [60, 64, 67, 69]
    n2 = load_notes(path, 1)
    np.testing.assert_allclose(n2.offset, [4 * q])
    assert n2.pitch.tolist() == [40]
    assert [s.split(" (")[0] for s in list_parts(path)] == \
        ["0: Guitar I", "1: Guitar II", "2: Tacet"]
    with pytest.raises(ValueError, match="duo.musicxml.*Guitar II"):
        load_notes(path)
    with pytest.raises(ValueError, match="duo.musicxml: empty part"):
        load_notes(path, "tacet")


# --- part resolution (guitarsep separate --part) ---------------------------------------------

def test_parse_part():
    assert parse_part(None) is None and parse_part(3) == 3 and parse_part(np.int64(2)) == 2
    assert parse_part(" 1 ") == 1 and parse_part(" Lead ") == "Lead"
    assert parse_part("program:25") == ("program", 25) == parse_part("Program = 25")
    assert parse_part("-1") == "-1"


def test_resolve_part_chooses_as_load_notes(two_guitar_midi, tmp_path):
    path, a, b = two_guitar_midi
    assert resolve_part(path, "1") == (1, 1)
    assert resolve_part(path, " overdrive ") == ("overdrive", 1)
    assert resolve_part(path, "program:24") == (0, 0)
    assert part_names(path) == ([["Nylon"], ["Overdrive"]], [False, False])
    for part in (None, "bass", "5"):
        with pytest.raises(ValueError, match="duo.mid.*parts found: 0: Nylon") as e:
            resolve_part(path, part)
        with pytest.raises(ValueError) as e2:
            load_notes(path, parse_part(part))
        assert str(e.value) == str(e2.value)            # the reader's own message
    with pytest.raises(ValueError, match=r"duo.mid: no track\(s\) with program 1 "
                                         r"\(part=program:1\); parts found: 0: Nylon"):
        resolve_part(path, "program:1")
    text = tmp_path / "solo.txt"
    save_notes(text, a)
    assert resolve_part(text, None) == (None, 0) and resolve_part(text, "0") == (0, 0)
    assert part_names(text) == ([["solo"]], [False])
    with pytest.raises(ValueError, match="solo.txt: a text file holds one part"):
        resolve_part(text, "solo")
    with pytest.raises(ValueError, match="solo.txt: program:N selects a MIDI track"):
        resolve_part(text, "program:24")
    with pytest.raises(ValueError, match="nope.mid: cannot read score: no such file"):
        resolve_part(tmp_path / "nope.mid", None)


def test_import_is_torch_free():
    import subprocess
    import sys
    code = ("import sys, guitarsep.score, guitarsep.score.align; "
            "heavy = {'torch', 'pretty_midi', 'music21', 'guitarpro'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_notes_around_keeps_true_times_of_notes_sounding_into_the_block():
    """``Notes.around`` hands a block of the recording its notes: those within the margin,
    unclipped, relative to the block's start (a note held into it keeps its onset < 0)."""
    n = Notes.from_arrays([0.5, 3.0, 9.0, 20.0], [6.0, 4.0, 12.0, 21.0], [60, 64, 67, 72])
    got = n.around(5.0, 10.0, margin_s=2.0)
    np.testing.assert_allclose(got.onset, [-4.5, -2.0, 4.0])
    np.testing.assert_allclose(got.offset, [1.0, -1.0, 7.0])
    assert list(got.pitch) == [60, 64, 67]
    assert len(n.around(5.0, 10.0, margin_s=0.0)) == 2
