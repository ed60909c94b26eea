"""``guitarsep separate``: many recordings in one call, bad options, suspicious input,
interruptions and determinism (issue 15, items 4 and 6-9).

Reuses the tiny exported model and the synthetic 48 kHz stereo recording of
``test_separate_cli`` (its ``files`` fixture). Bad options end in one line and exit status 2,
bad input in one line and exit status 1, suspicious input in one warning line; none of them in a
traceback, and an error never leaves an output (or a temporary file) behind.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from guitarsep.app import separate_file as us
from guitarsep.app.options import OptionError, check_chunk_s, check_device, check_threads
from guitarsep.models import checkpoint
from guitarsep.score import Notes, load_notes, save_notes
from test_separate_cli import (SR, assert_one_line_error, files,  # noqa: F401 (fixture)
                               part_a, part_b, run_cli)


def _run(capsys, files, out, *extra, score=None, accomp=None, mix=None):
    return run_cli(capsys, mix or files / "mix.wav", "--score", score or files / "a.txt",
                   "--accomp", accomp or files / "b.txt", "--model", files / "tiny.pt",
                   *extra, "-o", out)


def _no_output(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def _one_warning(rc, err, *needles):
    """Success, and stderr (``--quiet``) is one warning line holding ``needles``."""
    assert rc == 0, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: "), err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])


# --------------------------------------------------------------------------------------------
# 6. bad options: one line, exit status 2, nothing written
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra,needles", [
    (["--device", "cuda"], ["--device cuda", "CUDA is not available"]),
    (["--device", "cuda:0"], ["--device cuda:0", "CUDA is not available"]),
    (["--device", "mps"], ["--device mps", "MPS is not available"]),
    (["--device", "gpu0"], ["--device gpu0", "not a torch device"]),
    (["--device", "meta"], ["--device meta", "not supported"]),
    (["--threads", "-1"], ["--threads -1", "positive"]),
    (["--threads", "100000"], ["--threads 100000", "at most", "CPU cores"]),
    (["--chunk-s", "0"], ["--chunk-s 0", "at least 2 s"]),
    (["--chunk-s", "-3"], ["--chunk-s -3", "at least 2 s"]),
    (["--chunk-s", "0.5"], ["--chunk-s 0.5", "at least 2 s"]),
    (["--chunk-s", "nan"], ["--chunk-s nan", "finite"]),
    (["--chunk-s", "inf"], ["--chunk-s inf", "finite"]),
    (["--chunk-s", "1e9"], ["--chunk-s 1e+09", "at most 600 s", "PB"]),
])
def test_bad_option_is_one_line_exit_2(files, tmp_path, capsys, monkeypatch, extra, needles):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    out = tmp_path / "never.wav"
    rc, err = _run(capsys, files, out, *extra)
    assert rc == 2
    assert_one_line_error(rc, err, *needles)
    _no_output(out)


def test_cuda_index_beyond_devices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == "cuda:0" and check_device("cuda") == "cuda"
    with pytest.raises(OptionError, match="only 1 CUDA device"):
        check_device("cuda:3")
    assert check_device("cpu") == "cpu"


def test_option_checks_accept_good_values():
    assert check_chunk_s(30.0) == 30.0 and check_chunk_s(None) is None
    assert check_chunk_s(2.0) == 2.0 and check_chunk_s(600.0) == 600.0
    warned = []
    assert check_threads(1, warned.append) == 1 and check_threads(None) is None
    assert not warned


@pytest.mark.parametrize("threads,needle", [("0", "torch's default"),
                                            (str((os.cpu_count() or 1) + 1),
                                             "more threads than the")])
def test_threads_warnings(files, tmp_path, capsys, threads, needle):
    out = tmp_path / "t.wav"
    rc, err = _run(capsys, files, out, "--threads", threads, "--quiet")
    _one_warning(rc, err, f"--threads {threads}", needle)
    assert out.is_file()


def test_align_bounds_huge_note_times(files, tmp_path, capsys):
    """A note at 1e12 s: cut from the alignment with a warning (it used to allocate 86 PiB
    in render_score); a part that only starts there is a one-line error."""
    huge = tmp_path / "huge.txt"
    save_notes(huge, part_a().concat(Notes.from_arrays([1e12], [1e12 + 1], [64])))
    out = tmp_path / "h.wav"
    rc, err = _run(capsys, files, out, "--align", "--quiet", score=huge)
    _one_warning(rc, err, "huge.txt", "1 note(s)", "more than twice the length", "cut there")
    assert out.is_file()
    late = tmp_path / "late.txt"
    save_notes(late, Notes.from_arrays([1e12], [1e12 + 1], [64]))
    out = tmp_path / "never.wav"
    rc, err = _run(capsys, files, out, "--align", score=late)
    assert rc == 1
    assert_one_line_error(rc, err, "late.txt", "1e+12 s", "cannot be aligned")
    _no_output(out)


def test_align_notes_refuses_a_score_far_longer_than_the_recording():
    from guitarsep.score.align import align_notes

    with pytest.raises(ValueError, match="too long to align"):
        align_notes([Notes.from_arrays([0.0, 1e12], [1.0, 1e12 + 1], [64, 64])],
                    np.zeros(SR, np.float32), SR)


# --------------------------------------------------------------------------------------------
# 7. suspicious input: one warning line (or, with --strict, one error line)
# --------------------------------------------------------------------------------------------

def test_accomp_same_as_target_warns(files, tmp_path, capsys):
    rc, err = _run(capsys, files, tmp_path / "o.wav", "--quiet", accomp=files / "a.txt")
    _one_warning(rc, err, "a.txt", "same notes as the target part", "12 of 12")


def test_accomp_outside_recording_warns(files, tmp_path, capsys):
    late = tmp_path / "late_b.txt"
    save_notes(late, part_b().shift(100.0))
    rc, err = _run(capsys, files, tmp_path / "o.wav", "--quiet", accomp=late)
    _one_warning(rc, err, "late_b.txt", "starts at 100.00 s", "after the end of the recording")


def test_score_of_pitch_0_and_127_warns(files, tmp_path, capsys):
    a = part_a()
    odd = tmp_path / "odd.txt"
    save_notes(odd, Notes.from_arrays(a.onset, a.offset, np.where(np.arange(len(a)) % 2,
                                                                  0, 127)))
    out = tmp_path / "o.wav"
    rc, err = _run(capsys, files, out, "--quiet", score=odd)
    _one_warning(rc, err, "odd.txt", "12 of 12 notes", "no guitar plays", "0, 127")
    assert out.is_file()


def test_anti_phase_stereo_warns_about_the_downmix(files, tmp_path, capsys):
    y = sf.read(files / "mix.wav", dtype="float32")[0].mean(axis=1)
    anti = tmp_path / "anti.wav"
    sf.write(anti, np.stack([y, -y], axis=1), SR, subtype="FLOAT")
    rc, err = _run(capsys, files, tmp_path / "o.wav", "--mono", "--quiet", mix=anti)
    _one_warning(rc, err, "anti.wav", "anti-phase", "down-mix")
    assert "the recording is silent" not in err


def test_text_score_with_utf8_bom(files, tmp_path, capsys):
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + (files / "a.txt").read_bytes())
    assert load_notes(bom) == load_notes(files / "a.txt")
    bom2 = tmp_path / "bom2.txt"                  # a BOM before the first note, no header
    bom2.write_bytes(b"\xef\xbb\xbf0.0 0.5 64\n0.5 1.0 67\n")
    assert len(load_notes(bom2)) == 2
    rc, err = _run(capsys, files, tmp_path / "o.wav", "--quiet", score=bom)
    assert rc == 0 and err.strip() == "", err


def _mismatched_score(path: Path) -> Path:
    """part A's rhythm with pitches that are not in the recording: a doubtful alignment."""
    a = part_a()
    pitches = [41, 78, 47, 72, 44, 81, 50, 75, 43, 79, 46, 73]
    save_notes(path, Notes.from_arrays(a.onset, a.offset, pitches))
    return path


def test_doubtful_alignment_warns_and_strict_is_an_error(files, tmp_path, capsys):
    bad = _mismatched_score(tmp_path / "wrong.txt")
    out = tmp_path / "w.wav"
    rc, err = _run(capsys, files, out, "--align", "--quiet", score=bad)
    assert rc == 0 and out.is_file(), err
    lines = err.strip().splitlines()
    assert lines and all(ln.startswith("warning: doubtful alignment: ") for ln in lines), err
    out = tmp_path / "never.wav"
    rc, err = _run(capsys, files, out, "--align", "--strict", score=bad)   # not --quiet
    assert rc == 1
    assert_one_line_error(rc, err, "mix.wav", "doubtful alignment of", "wrong.txt", "--strict")
    _no_output(out)


def test_strict_without_align_is_noted(files, tmp_path, capsys):
    rc, err = _run(capsys, files, tmp_path / "o.wav", "--strict", "--quiet")
    _one_warning(rc, err, "--strict only matters with --align")


# --------------------------------------------------------------------------------------------
# 4. many recordings in one call
# --------------------------------------------------------------------------------------------

@pytest.fixture
def takes(files, tmp_path):
    """Three recordings (two wav, one flac) and a score folder."""
    rec, scores = tmp_path / "rec", tmp_path / "scores"
    rec.mkdir()
    scores.mkdir()
    y, sr = sf.read(files / "mix.wav", dtype="float32")
    sf.write(rec / "take1.wav", y, sr, subtype="FLOAT")
    sf.write(rec / "take2.flac", 0.5 * y, sr)
    sf.write(rec / "take3.wav", y[: sr * 4], sr, subtype="FLOAT")
    for k in (1, 2, 3):
        shutil.copy(files / "song.mid", scores / f"take{k}.mid")
    return rec, scores


def test_many_files_with_score_dir(files, takes, tmp_path, capsys):
    rec, scores = takes
    out = tmp_path / "separated"                          # created
    rc, err = run_cli(capsys, rec / "take1.wav", rec / "take2.flac", "--score-dir", scores,
                      "--part", "Lead", "--model", files / "tiny.pt", "-o", out,
                      "--other", out)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["take1.other.wav", "take1.wav",
                                                     "take2.other.wav", "take2.wav"]
    assert "recordings" in err and "2/2" in err           # the progress bar over files
    # each output is what the single-file command writes
    rc, err = run_cli(capsys, rec / "take1.wav", "--score", scores / "take1.mid", "--part",
                      "Lead", "--model", files / "tiny.pt", "-o", tmp_path / "single.wav")
    assert rc == 0, err
    assert (out / "take1.wav").read_bytes() == (tmp_path / "single.wav").read_bytes()


def test_many_files_with_patterns_load_the_model_once(files, takes, tmp_path, capsys,
                                                      monkeypatch):
    rec, _ = takes
    txt = tmp_path / "txt"
    txt.mkdir()
    for k in (1, 2, 3):
        shutil.copy(files / "a.txt", txt / f"take{k}.txt")
        shutil.copy(files / "b.txt", txt / f"take{k}_b.txt")
    loads = []
    real = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    rc, err = run_cli(capsys, rec / "take1.wav", rec / "take2.flac", rec / "take3.wav",
                      "--score", f"{txt}/{{stem}}.txt", "--accomp", f"{txt}/{{stem}}_b.txt",
                      "--model", files / "tiny.pt", "-o", f"{tmp_path}/out/{{stem}}.flac",
                      "--quiet")
    assert rc == 0, err
    assert len(loads) == 1
    got = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in got] == ["take1.flac", "take2.flac", "take3.flac"]
    assert sf.info(str(got[2])).frames == 4 * SR


def test_many_files_default_model_loaded_once(files, takes, tmp_path, capsys, monkeypatch):
    rec, scores = takes
    res = tmp_path / "resources"
    res.mkdir()
    shutil.copy(files / "tiny.pt", res / f"{checkpoint.DEFAULT_MODEL}.pt")
    monkeypatch.setattr(checkpoint, "RESOURCES", res)
    loads = []
    real = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    rc, err = run_cli(capsys, rec / "take1.wav", rec / "take3.wav", "--score-dir", scores,
                      "--part", "Lead", "-o", tmp_path / "out", "--quiet")
    assert rc == 0, err
    assert len(loads) == 1                               # one load for both recordings


def test_many_files_failures_are_summarised(files, takes, tmp_path, capsys):
    rec, scores = takes
    (scores / "take2.gp5").write_bytes(b"x")              # take2: two scores
    (scores / "take3.mid").unlink()                       # take3: none
    out = tmp_path / "out"
    rc, err = run_cli(capsys, rec / "take1.wav", rec / "take2.flac", rec / "take3.wav",
                      rec / "missing.wav", "--score-dir", scores, "--part", "Lead",
                      "--model", files / "tiny.pt", "-o", out, "--quiet")
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["take1.wav"]     # the rest went on
    lines = err.strip().splitlines()
    i = lines.index("guitarsep separate: 3 of 4 recordings failed:")
    summary = lines[i + 1:]
    assert len(summary) == 3, err
    assert "take2.flac" in summary[0] and "several scores named 'take2'" in summary[0]
    assert "take3.wav" in summary[1] and "no score named 'take3'" in summary[1]
    assert "missing.wav" in summary[2] and "no such audio file" in summary[2]
    assert "Traceback" not in err


def test_single_recording_with_score_dir(files, takes, tmp_path, capsys):
    rec, scores = takes
    rc, err = run_cli(capsys, rec / "take1.wav", "--score-dir", scores, "--part", "Lead",
                      "--model", files / "tiny.pt", "-o", tmp_path / "one.flac", "--quiet")
    assert rc == 0 and (tmp_path / "one.flac").is_file(), err
    (scores / "take1.mid").unlink()
    rc, err = run_cli(capsys, rec / "take1.wav", "--score-dir", scores, "--model",
                      files / "tiny.pt", "-o", tmp_path / "never.wav")
    assert rc == 1
    assert_one_line_error(rc, err, "no score named 'take1'")
    assert not (tmp_path / "never.wav").exists()


@pytest.mark.parametrize("case", ["file_output", "same_stem", "no_score_dir"])
def test_many_files_bad_options(files, takes, tmp_path, capsys, case):
    rec, scores = takes
    mixes, opts = [rec / "take1.wav", rec / "take2.flac"], ["--score-dir", scores]
    out = tmp_path / "out"
    needles = []
    if case == "file_output":
        out = tmp_path / "out.wav"
        needles = ["-o", "out.wav", "2 recordings need an output folder", "{stem}"]
    elif case == "same_stem":
        (tmp_path / "other").mkdir()
        shutil.copy(rec / "take1.wav", tmp_path / "other" / "take1.wav")
        mixes.append(tmp_path / "other" / "take1.wav")
        needles = ["take1.wav", "would both be written to"]
    else:
        opts = ["--score-dir", tmp_path / "nowhere"]
        needles = ["--score-dir", "no such folder"]
    rc, err = run_cli(capsys, *mixes, *opts, "--model", files / "tiny.pt", "-o", out)
    assert rc == 2
    assert_one_line_error(rc, err, *needles)
    assert not out.is_file() and not (out.is_dir() and any(out.iterdir()))


# --------------------------------------------------------------------------------------------
# 8. interruptions and the output folder
# --------------------------------------------------------------------------------------------

def test_sigterm_leaves_no_partial_output(files, tmp_path):
    """SIGTERM while the output is being written: exit 143, one line, no output and no
    temporary file (the signal is handled like Ctrl-C, so the atomic writer cleans up)."""
    y, sr = sf.read(files / "mix.wav", dtype="float32")
    long = tmp_path / "long.wav"
    sf.write(long, np.tile(y, (10, 1)), sr, subtype="FLOAT")          # 65 s, 33 chunks
    out = tmp_path / "t.wav"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "guitarsep", "separate", str(long), "--score",
         str(files / "a.txt"), "--accomp", str(files / "b.txt"), "--model",
         str(files / "tiny.pt"), "--chunk-s", "2", "--quiet", "-o", str(out)],
        stderr=subprocess.PIPE, text=True, env=env)
    tmp = tmp_path / f".t.wav.tmp{proc.pid}"
    while not tmp.exists() and proc.poll() is None and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    assert tmp.exists(), proc.stderr.read() if proc.poll() is not None else "no temp file"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "guitarsep separate: terminated (no output written)"
    assert "Traceback" not in err
    _no_output(out)


def test_sigterm_handler_is_restored(files, tmp_path, capsys):
    before = signal.getsignal(signal.SIGTERM)
    rc, err = _run(capsys, files, tmp_path / "o.wav", "--quiet")
    assert rc == 0, err
    assert signal.getsignal(signal.SIGTERM) is before


def test_stale_temporaries_of_dead_runs_are_removed(files, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "o.wav"
    stale = tmp_path / f".o.wav.tmp{dead.pid}"
    live = tmp_path / f".o.wav.tmp{os.getppid()}"          # a running process: kept
    other = tmp_path / f".x.wav.tmp{dead.pid}"              # another output's: kept
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    rc, err = _run(capsys, files, out, "--quiet")
    assert rc == 0, err
    assert out.is_file() and not stale.exists() and live.exists() and other.exists()


def test_output_folder_checked_before_anything(files, tmp_path, capsys, monkeypatch):
    """An unwritable output folder is reported before the recording is even read (the
    recording here does not exist: the output error comes first)."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "o.wav"
    rc, err = _run(capsys, files, out, mix=tmp_path / "missing.wav")
    assert rc == 1
    assert_one_line_error(rc, err, "o.wav", "cannot write in the output folder",
                          "Permission denied")
    monkeypatch.undo()
    (tmp_path / "sub.wav").mkdir()                # the API: a folder is no output file
    with pytest.raises(us.SeparationError, match="sub.wav: is a folder"):
        us.separate_file(files / "mix.wav", files / "a.txt", tmp_path / "sub.wav", log=None)
    rc, err = _run(capsys, files, tmp_path / "sub.wav", "--quiet")    # the CLI: DIR/<stem>.wav
    assert rc == 0 and (tmp_path / "sub.wav" / "mix.wav").is_file(), err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root may write to read-only folders")
def test_read_only_output_folder(files, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc, err = _run(capsys, files, ro / "o.wav")
        assert_one_line_error(rc, err, "o.wav", "not writable")
    finally:
        ro.chmod(0o700)


# --------------------------------------------------------------------------------------------
# 9. determinism
# --------------------------------------------------------------------------------------------

def test_identical_runs_give_identical_bytes(files, tmp_path, capsys):
    outs = []
    for k in (1, 2):
        out, other = tmp_path / f"run{k}.wav", tmp_path / f"other{k}.wav"
        rc, err = _run(capsys, files, out, "--other", other, "--quiet")
        assert rc == 0, err
        outs.append((out.read_bytes(), other.read_bytes()))
    assert outs[0] == outs[1]
    assert b"PEAK" not in outs[0][0]
