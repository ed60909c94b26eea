"""Tests for guitarsep.separation.score_fit: the divergence prefers the score that matches the
recording, blocks keep it for any length, and the alignment guard keeps a right score."""
from __future__ import annotations

import numpy as np
import pytest

from guitarsep.score import Notes
from guitarsep.separation.score_fit import (FitConfig, align_checked, prefer_aligned,
                                            score_divergence)

from test_separate import melody

SR = 44100


def _late(notes: Notes, dt: float) -> Notes:
    return Notes(notes.onset + dt, notes.offset + dt, notes.pitch, notes.velocity)


def _jittered(notes: Notes, seed: int, level: float = 0.15) -> Notes:
    d = np.random.default_rng(seed).uniform(-level, level, len(notes))
    return Notes(np.maximum(notes.onset + d, 0.0), np.maximum(notes.offset + d, 0.01),
                 notes.pitch, notes.velocity)._sorted()


@pytest.fixture(scope="module")
def duet():
    mix, _, _, tn, an = melody(6.0, seed=3)
    return mix, tn, an


def test_divergence_is_lowest_for_the_true_score(duet):
    mix, tn, an = duet
    true = score_divergence(mix, SR, tn, an)
    assert 0 <= true < score_divergence(mix, SR, _late(tn, 0.3), _late(an, 0.3))
    assert true < score_divergence(mix, SR, _jittered(tn, 0), _jittered(an, 1))
    # the target's notes alone explain less of the duet than both parts' notes
    assert true < score_divergence(mix, SR, tn, Notes.empty())


def test_divergence_does_not_depend_on_level_and_blocks_change_it_little(duet):
    mix, tn, an = duet
    one = score_divergence(mix, SR, tn, an)
    assert score_divergence(0.01 * mix, SR, tn, an) == pytest.approx(one, rel=1e-3)
    blocks = score_divergence(mix, SR, tn, an, cfg=FitConfig(block_s=2.5))   # 3 blocks
    assert blocks == pytest.approx(one, rel=0.1)
    # another sample rate: resampled to the model's
    assert score_divergence(mix[::2].copy(), SR // 2, tn, an) < score_divergence(
        mix[::2].copy(), SR // 2, _late(tn, 0.3), _late(an, 0.3))


def test_prefer_aligned_keeps_the_better_score(duet):
    mix, tn, an = duet
    wrong = (_late(tn, 0.4), _late(an, 0.4))
    keep = prefer_aligned(mix, SR, (tn, an), wrong)
    assert not keep.aligned and keep.divergence_given < keep.divergence_aligned
    assert "as given" in keep.describe()
    take = prefer_aligned(mix, SR, wrong, (tn, an))
    assert take.aligned and "aligned score" in take.describe()


def test_align_checked_rescues_a_late_score_and_returns_notes_it_chose(duet):
    mix, tn, an = duet
    (t, a), report, choice = align_checked(_late(tn, 0.5), _late(an, 0.5), mix, SR)
    assert choice.aligned and "mean_cost" in report
    assert abs(float(t.onset[0]) - float(tn.onset[0])) < 0.1
    # the notes returned are the given ones exactly when the alignment fits worse
    (t, a), _, choice = align_checked(tn, an, mix, SR)
    assert choice.aligned == (choice.divergence_aligned < choice.divergence_given)
    assert (t == tn and a == an) == (not choice.aligned)
