"""Tests for ``guitarsep separate`` (guitarsep.app.separate_file, the CLI) and the Guitar Pro reader.

A tiny untrained model (si_umx_soft, hidden_size 16) is exported with ``export_model`` so the
tests do not depend on training. The "recording" is made of synthetic harmonic tones (no
soundfont needed), 48 kHz stereo, 6.5 s.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from guitarsep.app import cli
from guitarsep.app import separate_file as us
from guitarsep.io import load_audio
from guitarsep.models import checkpoint
from guitarsep.models.checkpoint import export_model
from guitarsep.evaluation.metrics import si_sdr
from guitarsep.separation import separate_clip
from guitarsep.score import Notes, list_parts, load_notes, notes_to_pretty_midi, save_notes

SR = 48000
DUR = 6.5
BPM = 120.0          # 0.5 s per quarter note

# part A (target): 12 quarter notes on string 1 (E4 = 64); part B: 6 half notes on string 5
A_FRETS = [0, 3, 5, 7, 8, 7, 5, 3, 0, 3, 5, 7]
B_FRETS = [0, 3, 5, 7, 5, 3]


def part_a() -> Notes:
    k = np.arange(len(A_FRETS))
    return Notes.from_arrays(k * 0.5, (k + 1) * 0.5, 64 + np.array(A_FRETS))


def part_b() -> Notes:
    k = np.arange(len(B_FRETS))
    return Notes.from_arrays(k * 1.0, (k + 1) * 1.0, 45 + np.array(B_FRETS))


def synth(notes: Notes, sr: int = SR, dur: float = DUR) -> np.ndarray:
    t = np.arange(int(round(dur * sr))) / sr
    y = np.zeros_like(t)
    for on, off, p in zip(notes.onset, notes.offset, notes.pitch):
        m = (t >= on) & (t < off + 0.2)
        tt = t[m] - on
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        tone = sum(np.sin(2 * np.pi * h * f0 * tt) / h for h in range(1, 7))
        y[m] += 0.15 * tone * np.exp(-3 * tt)
    return y.astype(np.float32)


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

def _save_checkpoint(path, name="si_umx_soft", extra=None):
    import torch

    from guitarsep.models import build_model

    from guitarsep.config import MaskParams
    from guitarsep.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    m = build_model(name, "modern", hidden_size=16)
    save_checkpoint(path, m, "modern", MaskParams(), meta={"epoch": 3, "valid_loss": 0.5},
                    training=extra)
    return m


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Scores in every format, the 48 kHz stereo recording and a tiny exported model."""
    d = tmp_path_factory.mktemp("separate_cli")
    a, b = part_a(), part_b()
    ya, yb = synth(a), synth(b)
    sf.write(d / "mix.wav", np.stack([ya + 0.8 * yb, 0.8 * ya + yb], axis=1), SR,
             subtype="FLOAT")
    save_notes(d / "a.txt", a)
    save_notes(d / "b.txt", b)
    import pretty_midi
    pm = pretty_midi.PrettyMIDI()
    pm.instruments += [notes_to_pretty_midi(a, 25, name="Lead"),
                       notes_to_pretty_midi(b, 29, name="Rhythm")]
    pm.write(str(d / "song.mid"))
    _write_musicxml(d / "song.musicxml", a, b)
    _write_gp5(d / "song.gp5", [("Lead", _quarters(A_FRETS, 1)), ("Rhythm", _halves(B_FRETS, 5))])
    _save_checkpoint(d / "best.pt")
    export_model(d / "best.pt", d / "tiny.pt", {"purpose": "tests (untrained)"})
    return d


def _write_musicxml(path, a: Notes, b: Notes):
    from music21 import meter, note, stream, tempo

    sc = stream.Score()
    for name, notes in (("Lead", a), ("Rhythm", b)):
        p = stream.Part()
        p.partName = name
        p.append(tempo.MetronomeMark(number=BPM))
        p.append(meter.TimeSignature("4/4"))
        for on, off, pitch in zip(notes.onset, notes.offset, notes.pitch):
            n = note.Note(int(pitch))
            n.quarterLength = (off - on) * BPM / 60
            p.append(n)
        sc.insert(0, p)
    sc.write("musicxml", fp=str(path))


# Guitar Pro writing (pyguitarpro): a beat is (duration value, dotted, tuplet, notes, status)
# with notes = [(string, fret, "normal" | "tie" | "dead")]; a bar is a list of beats.

def _quarters(frets, string):
    beats = [(4, False, None, [(string, f, "normal")], "normal") for f in frets]
    return [beats[i:i + 4] for i in range(0, len(beats), 4)]


def _halves(frets, string):
    beats = [(2, False, None, [(string, f, "normal")], "normal") for f in frets]
    return [beats[i:i + 2] for i in range(0, len(beats), 2)]


def _write_gp5(path, tracks, *, tempo=120, capo=0, tempo_changes=None, percussion=(),
               repeats=None):
    """tracks: [(name, bars)]; tempo_changes: {(track, bar, beat): bpm};
    repeats: {bar: (open, close_count)}."""
    import guitarpro as gp

    n_bars = max(len(bars) for _, bars in tracks)
    song = gp.Song()
    song.tempo = tempo
    song.measureHeaders = []
    for k in range(n_bars):
        h = gp.MeasureHeader(number=k + 1)
        if repeats and k in repeats:
            h.isRepeatOpen, h.repeatClose = repeats[k]
        song.addMeasureHeader(h)
    song.tracks = []
    types = {"normal": gp.NoteType.normal, "tie": gp.NoteType.tie, "dead": gp.NoteType.dead}
    for ti, (name, bars) in enumerate(tracks):
        track = gp.Track(song, number=ti + 1, name=name, offset=capo)
        track.channel = gp.MidiChannel(channel=9 if ti in percussion else ti,
                                       effectChannel=ti + 10)
        track.isPercussionTrack = ti in percussion
        track.measures = [gp.Measure(track, h) for h in song.measureHeaders]
        for bi, bar in enumerate(bars):
            voice = track.measures[bi].voices[0]
            for ki, (value, dotted, tuplet, notes, status) in enumerate(bar):
                beat = gp.Beat(voice, status=getattr(gp.BeatStatus, status))
                beat.duration = gp.Duration(value=value, isDotted=dotted)
                if tuplet:
                    beat.duration.tuplet = gp.Tuplet(*tuplet)
                for string, fret, kind in notes:
                    beat.notes.append(gp.Note(beat, value=fret, string=string, type=types[kind]))
                if tempo_changes and (ti, bi, ki) in tempo_changes:
                    beat.effect.mixTableChange = gp.MixTableChange(
                        tempo=gp.MixTableItem(value=tempo_changes[(ti, bi, ki)]))
                voice.beats.append(beat)
        song.tracks.append(track)
    gp.write(song, str(path))


def run_cli(capsys, *argv):
    rc = cli.main(["separate", *map(str, argv)])
    err = capsys.readouterr().err
    return rc, err


def assert_one_line_error(rc, err, *needles):
    assert rc != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("guitarsep separate: error: ")
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])


# --------------------------------------------------------------------------------------------
# every score format, end to end (48 kHz stereo in -> 48 kHz mono out, same length)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("score,extra", [
    ("a.txt", ["--accomp", "b.txt"]),
    ("song.mid", ["--part", "Lead"]),
    ("song.mid", ["--part", "program:25"]),
    ("song.musicxml", ["--part", "0"]),
    ("song.gp5", ["--part", "lead"]),
])
def test_formats_end_to_end(files, capsys, score, extra):
    out = files / f"out_{score}.wav"
    extra = [files / e if e.endswith(".txt") else e for e in extra]
    rc, err = run_cli(capsys, files / "mix.wav", "--score", files / score, *extra,
                      "--model", files / "tiny.pt", "-o", out)
    assert rc == 0, err
    y, sr = sf.read(out)
    assert sr == SR and y.shape == (int(round(DUR * SR)), 2)          # stereo in, stereo out
    assert np.isfinite(y).all() and np.abs(y).max() > 0
    assert "2 channels" in err and "48000 Hz" in err
    # the accompaniment comes from the file's other part (or --accomp), never missing
    assert "accompaniment: none" not in err and "warning" not in err


def test_target_notes_identical_across_formats(files):
    ref = part_a()
    for f, part in (("a.txt", None), ("song.mid", "Lead"), ("song.musicxml", "Lead"),
                    ("song.gp5", "Lead")):
        got = load_notes(files / f, part)
        np.testing.assert_allclose(got.onset, ref.onset, atol=1e-6, err_msg=f)
        np.testing.assert_allclose(got.offset, ref.offset, atol=1e-6, err_msg=f)
        np.testing.assert_array_equal(got.pitch, ref.pitch, err_msg=f)
    tgt, acc, desc = us.load_score(files / "song.gp5", "Lead")
    assert acc == load_notes(files / "song.gp5", "Rhythm") and "Rhythm" in desc


def test_python_api_result(files):
    import torch

    threads = torch.get_num_threads()
    res = us.separate_file(files / "mix.wav", files / "song.mid", files / "api.flac",
                           part="Lead", model=files / "tiny.pt", log=None)
    assert res.sr == SR and res.n_samples == int(round(DUR * SR)) and res.channels_in == 2
    assert res.model == "si_umx_soft" and "Rhythm" in res.accompaniment
    info = sf.info(str(files / "api.flac"))
    assert info.samplerate == SR and info.channels == 2 and info.frames == res.n_samples
    assert res.channels_out == 2
    assert torch.get_num_threads() == threads           # threads=1 only during the call


def test_chunked_equals_one_shot(files, tmp_path):
    """Block-wise separation of a file equals one pass (44.1 kHz: blocks on the hop grid):
    to float precision in mono; in stereo the multichannel Wiener filter estimates each
    source's spatial covariance per block, so blocks differ slightly (> 30 dB down)."""
    from guitarsep.io import resample
    from guitarsep.separation.stream import block_plan

    x, sr = sf.read(files / "mix.wav", dtype="float32")
    sf.write(tmp_path / "mix44.wav", resample(x, sr, 44100), 44100, subtype="FLOAT")
    lm = us.load_model(files / "tiny.pt")
    assert len(block_plan(len(x) * 44100 // sr, 44100, lm.setting, 1.5)) > 2
    for mono in (True, False):
        ys = []
        for chunk_s in (None, 1.5):
            out = tmp_path / f"chunk_{chunk_s}_{mono}.wav"
            us.separate_file(tmp_path / "mix44.wav", files / "a.txt", out, mono=mono,
                             accomp_path=files / "b.txt", model=files / "tiny.pt",
                             chunk_s=chunk_s, log=None, progress=False)
            ys.append(sf.read(out)[0])
        if mono:
            np.testing.assert_allclose(ys[1], ys[0], atol=1e-4)
        else:
            err = np.sum((ys[1] - ys[0]) ** 2) / np.sum(ys[0] ** 2)
            assert ys[0].shape[1] == 2 and 10 * np.log10(err) < -30


def test_align_option(files, capsys):
    # the score starts 1 s late and is 10 % slow: --align puts it back
    a = part_a()
    late = Notes(a.onset * 1.1 + 1.0, a.offset * 1.1 + 1.0, a.pitch, a.velocity)
    b = part_b()
    save_notes(files / "late_a.txt", late)
    save_notes(files / "late_b.txt", Notes(b.onset * 1.1 + 1.0, b.offset * 1.1 + 1.0,
                                           b.pitch, b.velocity))
    rc, err = run_cli(capsys, files / "mix.wav", "--score", files / "late_a.txt", "--accomp",
                      files / "late_b.txt", "--model", files / "tiny.pt", "--align",
                      "-o", files / "aligned.wav")
    assert rc == 0, err
    assert "alignment (" in err and "first onset moved -1.0" in err
    assert "score fit: kept the aligned score" in err


def test_align_keeps_a_score_that_was_in_time(files, capsys):
    """DTW would move the notes of a score that is right: --align keeps it as given, so the
    output is the very one without --align (guitarsep.separation.score_fit)."""
    common = [files / "mix.wav", "--score", files / "a.txt", "--accomp", files / "b.txt",
              "--model", files / "tiny.pt"]
    rc, err = run_cli(capsys, *common, "--align", "-o", files / "in_time_aligned.wav")
    assert rc == 0, err
    assert "score fit: kept the score as given" in err, err
    rc, err = run_cli(capsys, *common, "-o", files / "in_time.wav")
    assert rc == 0, err
    a, b = (sf.read(files / name)[0] for name in ("in_time_aligned.wav", "in_time.wav"))
    assert np.array_equal(a, b)


def test_refine_onsets_option_moves_loose_notes_back(files, capsys):
    """--refine-onsets (guitarsep.score.onsets): a score whose notes are 80 ms late, one by
    one, separates as well as the right one once refined, and better than as given."""
    a, b = part_a(), part_b()
    late = [Notes(n.onset + 0.08, n.offset + 0.08, n.pitch, n.velocity) for n in (a, b)]
    save_notes(files / "loose_a.txt", late[0])
    save_notes(files / "loose_b.txt", late[1])
    ref = synth(a)
    sdr = {}
    for name, score, extra in (("right", ("a.txt", "b.txt"), []),
                               ("loose", ("loose_a.txt", "loose_b.txt"), []),
                               ("refined", ("loose_a.txt", "loose_b.txt"), ["--refine-onsets"])):
        rc, err = run_cli(capsys, files / "mix.wav", "--score", files / score[0], "--accomp",
                          files / score[1], "--mono", *extra, "-o", files / f"{name}.wav")
        assert rc == 0, err
        sdr[name] = float(si_sdr(sf.read(files / f"{name}.wav", dtype="float32")[0], ref))
    assert "onsets refined:" in err and "notes moved" in err
    assert sdr["refined"] > sdr["loose"] and sdr["refined"] > sdr["right"] - 0.3, sdr
    # the API does the same (Separator.separate(refine_onsets=True))
    from guitarsep.app.separator import Separator
    mix = sf.read(files / "mix.wav", dtype="float32")[0].mean(axis=1)
    api, _ = Separator("score_nmf").separate(mix, SR, *late, refine_onsets=True)
    np.testing.assert_allclose(api, sf.read(files / "refined.wav", dtype="float32")[0],
                               atol=1e-4)          # (Wiener scale: the file's stereo peak)


# --------------------------------------------------------------------------------------------
# no accompaniment: the default NMF models the other guitar freely; a soft network warns
# --------------------------------------------------------------------------------------------

def test_no_accomp_default_model_runs_without_warning(files, tmp_path, capsys):
    rc, err = run_cli(capsys, files / "mix.wav", "--score", files / "a.txt",
                      "-o", tmp_path / "o.wav")
    assert rc == 0, err
    assert "model score_nmf" in err and "warning" not in err
    assert (tmp_path / "o.wav").is_file()


def test_no_accomp_soft_model_warns(files, capsys, tmp_path):
    rc, err = run_cli(capsys, files / "mix.wav", "--score", files / "a.txt", "--model",
                      files / "tiny.pt", "-o", tmp_path / "o.wav")
    assert rc == 0 and "warning: model si_umx_soft uses the soft mask" in err


# --------------------------------------------------------------------------------------------
# bad input: non-zero exit, one line naming the file, no output
# --------------------------------------------------------------------------------------------

def _bad(capsys, files, tmp_path, mix=None, score=None, *extra, model=None):
    out = tmp_path / "never.wav"
    rc, err = run_cli(capsys, mix or files / "mix.wav", "--score", score or files / "a.txt",
                      "--accomp", files / "b.txt", "--model", model or files / "tiny.pt",
                      *extra, "-o", out)
    assert not out.exists()
    assert not list(tmp_path.glob(".never.wav*"))          # no temporary file left either
    return rc, err


def test_corrupt_audio(files, tmp_path, capsys):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(200)))
    assert_one_line_error(*_bad(capsys, files, tmp_path, mix=bad), bad, "not a readable audio")


def test_missing_audio(files, tmp_path, capsys):
    assert_one_line_error(*_bad(capsys, files, tmp_path, mix=tmp_path / "nope.wav"),
                          "nope.wav", "no such audio file")


def test_empty_audio(files, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), SR)
    assert_one_line_error(*_bad(capsys, files, tmp_path, mix=empty), empty, "no samples")


def test_nan_audio(files, tmp_path, capsys):
    y = synth(part_a())
    y[SR * 2] = np.nan
    nan = tmp_path / "nan.wav"
    sf.write(nan, y, SR, subtype="FLOAT")
    assert_one_line_error(*_bad(capsys, files, tmp_path, mix=nan), nan, "NaN", "2.000 s")


def test_score_without_notes(files, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# onset offset pitch velocity\n")
    assert_one_line_error(*_bad(capsys, files, tmp_path, score=empty), empty, "no notes")


def test_unknown_part_lists_parts(files, tmp_path, capsys):
    rc, err = _bad(capsys, files, tmp_path, None, files / "song.mid", "--part", "Bass")
    assert_one_line_error(rc, err, "song.mid", "'Bass'", "0: Lead", "1: Rhythm")
    rc, err = _bad(capsys, files, tmp_path, None, files / "song.gp5", "--part", "7")
    assert_one_line_error(rc, err, "song.gp5", "out of range", "0: Lead")


def test_several_parts_need_part(files, tmp_path, capsys):
    rc, err = _bad(capsys, files, tmp_path, None, files / "song.musicxml")
    assert_one_line_error(rc, err, "song.musicxml", "several parts", "Rhythm")


def test_score_entirely_after_audio(files, tmp_path, capsys):
    late = tmp_path / "late.txt"
    save_notes(late, part_a().shift(100.0))
    assert_one_line_error(*_bad(capsys, files, tmp_path, score=late), late,
                          "after the end of the recording", "try --align")


def test_score_shorter_or_longer_warns(files, tmp_path, capsys):
    short = tmp_path / "short.txt"
    save_notes(short, part_a().window(0.0, 2.0))
    rc, err = run_cli(capsys, files / "mix.wav", "--score", short, "--accomp",
                      files / "b.txt", "--model", files / "tiny.pt", "-o", tmp_path / "s.wav")
    assert rc == 0 and "warning:" in err and "ends at 2.00 s" in err
    long = tmp_path / "long.txt"
    save_notes(long, part_a().concat(part_a().shift(6.0)))
    rc, err = run_cli(capsys, files / "mix.wav", "--score", long, "--accomp",
                      files / "b.txt", "--model", files / "tiny.pt", "-o", tmp_path / "l.wav")
    assert rc == 0 and "warning:" in err and "notes after 6.50 s are ignored" in err


def test_unreadable_model(files, tmp_path, capsys):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"this is not a torch file")
    assert_one_line_error(*_bad(capsys, files, tmp_path, model=bad), bad,
                          "not a readable model file")


def test_model_with_wrong_weights(files, tmp_path, capsys):
    import torch
    wrong = tmp_path / "wrong.pt"
    ck = torch.load(files / "tiny.pt", weights_only=True)
    ck["hparams"] = {"hidden_size": 32}      # the file's weights are for hidden size 16
    torch.save(ck, wrong)
    assert_one_line_error(*_bad(capsys, files, tmp_path, model=wrong), wrong,
                          "do not fit si_umx_soft")


def test_missing_model_file_and_name(files, tmp_path, capsys):
    assert_one_line_error(*_bad(capsys, files, tmp_path, model=tmp_path / "none.pt"),
                          "none.pt", "not found")
    assert_one_line_error(*_bad(capsys, files, tmp_path, model="no_such_model"),
                          "no_such_model", "si_umx_soft")


def test_shipped_model_missing_says_how(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpoint, "RESOURCES", tmp_path / "empty_resources")
    rc, err = run_cli(capsys, files / "mix.wav", "--score", files / "song.mid", "--part",
                      "Lead", "--model", "si_umx_soft", "-o", tmp_path / "o.wav")
    assert_one_line_error(rc, err, "si_umx_soft.pt", "guitarsep train",
                          "guitarsep export")
    assert not (tmp_path / "o.wav").exists()


def test_bad_output_extension(files, tmp_path, capsys):
    rc, err = run_cli(capsys, files / "mix.wav", "--score", files / "a.txt", "--model",
                      files / "tiny.pt", "-o", tmp_path / "out.xyz")
    assert_one_line_error(rc, err, "out.xyz", "unsupported output extension")


def test_error_keeps_existing_output(files, tmp_path, capsys):
    out = tmp_path / "keep.wav"
    sf.write(out, np.zeros(10, np.float32), SR)
    before = out.read_bytes()
    rc, err = run_cli(capsys, tmp_path / "missing.wav", "--score", files / "a.txt", "-o", out)
    assert rc != 0 and out.read_bytes() == before


# --------------------------------------------------------------------------------------------
# models: export / load
# --------------------------------------------------------------------------------------------

def test_export_and_load(files, tmp_path):
    import json

    import torch

    side = json.loads((files / "tiny.json").read_text())
    assert side["model"] == "si_umx_soft" and side["purpose"] == "tests (untrained)"
    assert side["epoch"] == 3 and side["size_bytes"] == (files / "tiny.pt").stat().st_size
    lm = us.load_model(files / "tiny.pt")
    ref = us.load_model(files / "best.pt")            # the training-style checkpoint
    for (k, v), (_, w) in zip(lm.model.state_dict().items(), ref.model.state_dict().items()):
        assert torch.equal(v, w), k
    export_model(files / "best.pt", tmp_path / "half.pt", {}, dtype="float16")
    half = us.load_model(tmp_path / "half.pt")
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (files / "tiny.pt").stat().st_size
    for (k, v), (_, w) in zip(half.model.state_dict().items(), ref.model.state_dict().items()):
        assert v.dtype == w.dtype
        if v.is_floating_point():
            torch.testing.assert_close(v, w, atol=2e-3, rtol=2e-3)
    # a run folder, and a last.pt with optimizer / numpy RNG state
    _save_checkpoint(tmp_path / "last.pt", extra={"rng": {"numpy": np.random.get_state()},
                                                  "optimizer": {}})
    assert us.load_model(tmp_path).path.name == "last.pt"


# --------------------------------------------------------------------------------------------
# Guitar Pro reader
# --------------------------------------------------------------------------------------------

def test_guitarpro_durations_ties_tempo_capo(tmp_path):
    """Dotted, eighth, rest, tie, triplets, a mix-table tempo change, capo, dead note."""
    bar1 = [(4, False, None, [(1, 0, "normal")], "normal"),                 # 0.0-0.5
            (4, True, None, [(2, 1, "normal")], "normal"),                  # 0.5-1.25 dotted
            (8, False, None, [(3, 2, "normal")], "normal"),                 # 1.25-1.5
            (4, False, None, [], "rest")]                                   # 1.5-2.0
    bar2 = [(4, False, None, [(6, 3, "normal"), (5, 2, "normal")], "normal"),  # @240 bpm
            (4, False, None, [(6, 3, "tie"), (5, 2, "tie")], "normal"),       # tied: to 2.5
            (8, False, (3, 2), [(1, 5, "normal")], "normal"),
            (8, False, (3, 2), [(1, 5, "dead")], "normal"),                  # no note
            (8, False, (3, 2), [(1, 5, "normal")], "normal"),
            (4, False, None, [(1, 7, "normal")], "normal")]
    path = tmp_path / "t.gp5"
    _write_gp5(path, [("Gtr", [bar1, bar2]), ("Drums", [[(1, False, None, [(1, 0, "normal")],
                                                          "normal")]])],
               tempo=120, capo=2, tempo_changes={(0, 1, 0): 240}, percussion=(1,))
    assert list_parts(path) == ["0: Gtr (6 strings, capo 2)", "1: Drums (6 strings, capo 2, "
                                "drums)"]
    n = load_notes(path)                          # the only non-percussion track
    tri = 0.25 * 2 / 3 / 2                        # triplet eighth at 240 bpm
    rows = [(0.0, 0.5, 64 + 0 + 2), (0.5, 1.25, 59 + 1 + 2), (1.25, 1.5, 55 + 2 + 2),
            (2.0, 2.5, 40 + 3 + 2), (2.0, 2.5, 45 + 2 + 2),
            (2.5, 2.5 + 1 * tri, 64 + 5 + 2), (2.5 + 2 * tri, 2.5 + 3 * tri, 64 + 5 + 2),
            (2.5 + 3 * tri, 2.75 + 3 * tri, 64 + 7 + 2)]
    exp = Notes.from_arrays(*np.array(rows).T)
    np.testing.assert_allclose(n.onset, exp.onset, atol=1e-9)
    np.testing.assert_allclose(n.offset, exp.offset, atol=1e-9)
    np.testing.assert_array_equal(n.pitch, exp.pitch)


def test_guitarpro_repeats_expanded(tmp_path):
    bars = _quarters([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 1)       # 3 bars of 2 s
    path = tmp_path / "rep.gp5"
    _write_gp5(path, [("Gtr", bars)], repeats={1: (True, 1)})          # bar 2 played twice
    n = load_notes(path, "gtr")
    assert len(n) == 16 and n.duration == pytest.approx(8.0)
    np.testing.assert_array_equal(n.pitch[4:12], 64 + np.array([4, 5, 6, 7, 4, 5, 6, 7]))


@pytest.mark.parametrize("version,ext", [((3, 0, 0), ".gp3"), ((4, 0, 6), ".gp4")])
def test_guitarpro_older_versions(files, tmp_path, version, ext):
    import guitarpro

    song = guitarpro.parse(str(files / "song.gp5"))
    path = tmp_path / f"song{ext}"
    guitarpro.write(song, str(path), version=version)
    assert load_notes(path, "Lead") == load_notes(files / "song.gp5", "Lead")
    assert len(list_parts(path)) == 2


def test_guitarpro_errors(tmp_path):
    bad = tmp_path / "bad.gp5"
    bad.write_bytes(b"\x18FICHIER GUITAR PRO v5.00" + bytes(30))
    with pytest.raises(ValueError, match="bad.gp5: not a readable Guitar Pro file"):
        load_notes(bad)
    gpx = tmp_path / "song.gpx"
    gpx.write_bytes(b"BCFZ")
    with pytest.raises(ValueError, match="export the tab as .gp5"):
        load_notes(gpx)


def test_old_commands_still_parse(tmp_path, capsys):
    # `figures` with a profile and root: unchanged behaviour (no scores -> 1 and a hint)
    assert cli.main(["figures", "--profile", "smoke", "--root", str(tmp_path), "--quiet"]) == 1
    assert "scores.csv not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["no-such-command"])


def test_model_separates_with_its_own_mask_parameters(files, tmp_path):
    """A model file carries the score-mask parameters it was trained with, and
    ``separate_file`` builds the masks with those, not with the defaults."""
    from guitarsep.config import MaskParams
    from guitarsep.models.checkpoint import save_checkpoint

    own_mask = MaskParams(n_harmonics=4, cents=60.0, onset_tol=0.05, fermata=0.2)
    tiny = us.load_model(files / "tiny.pt")
    save_checkpoint(tmp_path / "m.pt", tiny.model, tiny.setting, own_mask)
    assert us.load_model(tmp_path / "m.pt").mask == own_mask
    out = tmp_path / "own.wav"
    us.separate_file(files / "mix.wav", files / "a.txt", out, accomp_path=files / "b.txt",
                     model=tmp_path / "m.pt", log=None, progress=False, mono=True)
    got = sf.read(out, dtype="float32")[0]
    mix, sr = load_audio(files / "mix.wav")
    a, b = load_notes(files / "a.txt"), load_notes(files / "b.txt")
    with_own, with_default = (separate_clip(tiny.model, mix, a, b, tiny.setting, sr=sr,
                                            mask_params=m) for m in (own_mask, MaskParams()))
    # (the file path scales the Wiener filter by the recording's peak, the in-memory path by
    # the resampled one: differences of ~1e-6)
    np.testing.assert_allclose(got, with_own, atol=1e-4)
    assert np.abs(got - with_default).max() > 20 * np.abs(got - with_own).max()


def test_other_guitar_file_sums_to_the_mixture(files, tmp_path):
    """``other_path`` (``--other``): target + other = the recording, per channel."""
    res = us.separate_file(files / "mix.wav", files / "song.mid", tmp_path / "lead.wav",
                           part="Lead", other_path=tmp_path / "rhythm.wav",
                           model=files / "tiny.pt", log=None)
    mix = sf.read(files / "mix.wav", dtype="float32")[0]
    lead, rhythm = (sf.read(tmp_path / f, dtype="float32")[0] for f in ("lead.wav", "rhythm.wav"))
    assert lead.shape == rhythm.shape == mix.shape and res.other_path == tmp_path / "rhythm.wav"
    np.testing.assert_allclose(lead + rhythm, mix, atol=1e-6)
    assert np.abs(rhythm).max() > 0.01 and np.abs(lead).max() > 0.01


def test_separator_api(files):
    """Separator: numpy or torch in, the same type and shape out; Notes or score files."""
    import torch

    from guitarsep.app.separator import Separator

    sep = Separator(files / "tiny.pt")
    stereo, sr = sf.read(files / "mix.wav", dtype="float32")
    a, b = load_notes(files / "a.txt"), load_notes(files / "b.txt")
    target, other = sep.separate(stereo, sr, a, b)
    assert target.shape == other.shape == stereo.shape and isinstance(target, np.ndarray)
    np.testing.assert_allclose(target + other, stereo, atol=1e-6)
    t2, _ = sep.separate(torch.from_numpy(stereo), sr, files / "song.mid", part="Lead")
    assert isinstance(t2, torch.Tensor) and tuple(t2.shape) == stereo.shape
    np.testing.assert_allclose(t2.numpy(), target, atol=1e-5)      # same notes, same result
    mono, _ = sep.separate(stereo.mean(axis=1), sr, a, b)
    assert mono.shape == (len(stereo),)
    down, _ = sep.separate(stereo, sr, a, b, mono=True)
    np.testing.assert_allclose(down, mono, atol=1e-4)      # (Wiener scale: stereo peak)
    for bad, msg in ((np.zeros((0,)), "shape"), (np.full(100, np.nan), "NaN"),
                     (np.zeros((2, 1000)), "samples first")):
        with pytest.raises(us.SeparationError, match=msg):
            sep.separate(bad, sr, a, b)
    with pytest.raises(us.SeparationError, match="no_such.mid"):
        sep.separate(stereo, sr, files / "no_such.mid")
