"""Tests for guitarsep.score.align: DTW alignment of a score to a recording.

The "recording" is a generated two-part piece rendered with unseen timbres (the alignment
renders the score with seen ones); the score is the same piece shifted by 2 s and played 10 %
slower or faster. Aligned onsets must land within 50 ms (median) of the recording's.
"""
from __future__ import annotations

import numpy as np
import pytest

from guitarsep.score import align
from guitarsep.score import Notes

SR = 22050


@pytest.fixture(scope="module")
def recording():
    from guitarsep.corpus import generate_idiom_piece
    from guitarsep.corpus import render_part
    from guitarsep.corpus import load_timbres

    # seed 1: an arpeggio over strummed chords, a repetitive texture where plain DTW slips
    a, b, _ = generate_idiom_piece(1, 20.0)
    t = load_timbres()
    unseen = t[t["pool"] == "unseen"].reset_index(drop=True)
    mix = (render_part(a, unseen.iloc[1], sr=SR, duration=21.0)
           + render_part(b, unseen.iloc[5], sr=SR, duration=21.0))
    return a, b, mix


def stretched(n: Notes, factor: float, shift: float) -> Notes:
    return Notes(n.onset * factor + shift, n.offset * factor + shift, n.pitch, n.velocity)


def onset_errors(aligned, truth) -> np.ndarray:
    return np.abs(np.concatenate([al.onset - tr.onset for al, tr in zip(aligned, truth)]))


@pytest.mark.parametrize("factor", [1.1, 0.9])
def test_align_recovers_shift_and_tempo(recording, factor):
    a, b, mix = recording
    score = [stretched(a, factor, 2.0), stretched(b, factor, 2.0)]
    aligned, rep = align.align_notes(score, mix, SR)
    err = onset_errors(aligned, [a, b])
    assert np.median(err) < 0.05, (np.median(err), rep)
    assert np.percentile(err, 90) < 0.1
    assert rep["quality"] == "good" and rep["method"] == "full"
    assert rep["tempo_ratio"] == pytest.approx(1 / factor, rel=0.03)
    assert rep["offset_s"] == pytest.approx(-2.0, abs=0.05)
    # the same notes (the warp may merge onsets, which re-sorts them by pitch), offsets after
    # onsets
    for al, sc in zip(aligned, score):
        np.testing.assert_array_equal(np.sort(al.pitch), np.sort(sc.pitch))
        assert np.all(al.offset > al.onset)
    assert "alignment (full" in align.format_report(rep)


def test_coarse_to_fine_path(recording):
    """Long inputs go coarse-to-fine; force it on the short piece with a tiny cell budget."""
    a, b, mix = recording
    cfg = align.AlignConfig(max_cells=5e4, window_s=5.0)
    aligned, rep = align.align_notes([stretched(a, 1.1, 2.0), stretched(b, 1.1, 2.0)], mix, SR,
                                     cfg=cfg)
    assert rep["method"].startswith("coarse-to-fine")
    assert np.median(onset_errors(aligned, [a, b])) < 0.05


def test_wrong_score_is_flagged(recording):
    from guitarsep.corpus import generate_idiom_piece

    _, _, mix = recording
    a2, b2, _ = generate_idiom_piece(100, 20.0)
    _, rep = align.align_notes([a2, b2], mix, SR)
    assert rep["quality"] == "doubtful" and rep["warnings"]


def test_warp_times_identity_and_clamp():
    path = np.stack([np.arange(100), np.arange(100)], axis=1)
    t = np.array([0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(align.warp_times(t, path, 0.02), [0.0, 0.5, 1.0, 1.98])
    # a path twice as slow in the mixture doubles the times
    path2 = np.stack([np.arange(50).repeat(2), np.arange(100)], axis=1)
    np.testing.assert_allclose(align.warp_times(np.array([0.5]), path2, 0.02), [1.01])
