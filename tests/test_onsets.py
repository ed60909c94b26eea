"""Per-note onset refinement (guitarsep.score.onsets; guitarsep separate --refine-onsets)."""
from __future__ import annotations

import dataclasses

import numpy as np

from guitarsep.score.notes import Notes
from guitarsep.score.onsets import OnsetRefine, pitch_novelty, refine_onsets, refine_parts

SR = 44100


def _pluck(midi: int, seconds: float, n_harm: int = 6) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, n_harm + 1))
    return (0.1 * y * np.exp(-t / 0.6)).astype(np.float32)


def _duet():
    """C4 at 0.5 s and E4 at 1.5 s in one part, G3 at 1.0 s in the other (true onsets)."""
    mix = np.zeros(3 * SR, np.float32)
    for midi, on in ((60, 0.5), (64, 1.5), (55, 1.0)):
        i = int(on * SR)
        mix[i:i + SR] += _pluck(midi, 1.0)
    return mix


def test_loose_onsets_move_to_the_recording_and_right_ones_stay():
    mix = _duet()
    right = (Notes.from_arrays([0.5, 1.5], [1.4, 2.4], [60, 64]),
             Notes.from_arrays([1.0], [1.9], [55]))
    loose = (Notes.from_arrays([0.62, 1.40], [1.52, 2.30], [60, 64]),
             Notes.from_arrays([1.11], [2.01], [55]))
    got = refine_parts(list(loose), mix, SR)
    hop_s = OnsetRefine().hop / SR
    for g, r, lo in zip(got, right, loose):
        np.testing.assert_allclose(g.onset, r.onset, atol=2.5 * hop_s)
        np.testing.assert_allclose(g.offset - g.onset, lo.offset - lo.onset)   # durations kept
    kept = refine_parts(list(right), mix, SR)
    # a note written on its onset may settle on the frame of its rise, never farther
    for k, r in zip(kept, right):
        np.testing.assert_allclose(k.onset, r.onset, atol=1.5 * hop_s)


def test_a_note_beyond_the_radius_or_without_a_rise_stays_where_written():
    mix = np.zeros(2 * SR, np.float32)
    mix[SR // 2:SR // 2 + SR] = _pluck(60, 1.0)         # C4 alone, from 0.5 s
    far = Notes.from_arrays([0.8], [1.5], [60])          # written 0.3 s late: out of reach
    assert refine_parts([far], mix, SR)[0] == far
    near = Notes.from_arrays([0.7], [1.4], [60])         # 0.2 s late: found
    assert abs(refine_parts([near], mix, SR)[0].onset[0] - 0.5) < 0.015
    silent = Notes.from_arrays([0.6], [1.2], [95])       # no energy near B6 (1976 Hz)
    assert refine_parts([silent], mix, SR)[0] == silent


def test_novelty_is_level_invariant_and_the_same_in_blocks():
    mix = _duet()
    pitches = np.array([55, 60, 64])
    whole = pitch_novelty(mix, SR, pitches)
    np.testing.assert_allclose(pitch_novelty(mix * 10 ** (-30 / 20), SR, pitches), whole,
                               rtol=1e-3, atol=1e-5)
    blocks = pitch_novelty(mix, SR, pitches,
                           params=dataclasses.replace(OnsetRefine(), block_s=0.37))
    np.testing.assert_allclose(blocks, whole, rtol=1e-5, atol=1e-6)
    assert whole.shape == (3, 1 + len(mix) // OnsetRefine().hop)


def test_two_notes_of_one_pitch_never_land_on_one_onset():
    mix = _duet()
    notes = Notes.from_arrays([0.45, 0.58], [0.55, 1.4], [60, 60])
    pitches = np.array([60])
    got = refine_onsets(notes, pitch_novelty(mix, SR, pitches), pitches, SR)
    assert np.diff(got.onset)[0] > 2 * OnsetRefine().hop / SR
