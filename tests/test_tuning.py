"""guitarsep.score.tuning: a recording tuned away from A4 = 440 Hz is read from where the score
puts its harmonics, and the separation follows it."""
from __future__ import annotations

import numpy as np
import pytest

from guitarsep.config import MaskParams
from guitarsep.evaluation.metrics import si_sdr
from guitarsep.io import resample
from guitarsep.models.checkpoint import SCORE_NMF, load_model
from guitarsep.score import Notes
from guitarsep.score.tuning import DEAD_ZONE_CENTS, estimate_cents, tuned

from test_separate import melody

SR = 44100


def _detuned(cents: float, seconds: float = 8.0, seed: int = 3):
    """``melody`` played ``cents`` sharp (resampled: pitch and tempo move together, so the
    notes' times scale by the same factor). Returns mix, target, target notes, other notes."""
    mix, tgt, _, tn, an = melody(seconds, seed=seed)
    r = 2.0 ** (cents / 1200.0)

    def play(y):
        return resample(y, SR * r, SR)

    def scale(n: Notes) -> Notes:
        return Notes(n.onset / r, n.offset / r, n.pitch, n.velocity)
    return play(mix), play(tgt), scale(tn), scale(an)


@pytest.mark.parametrize("cents", [-48.0, -20.0, 0.0, 35.0])
def test_estimate_reads_the_deviation_within_a_few_cents(cents):
    """Half a semitone flat too: a blind estimate confuses -48 with +52 cents, the score
    does not."""
    mix, _, tn, an = _detuned(cents)
    assert estimate_cents(mix, SR, tn, an) == pytest.approx(cents, abs=4.0)


def test_in_tune_recordings_and_a_given_tuning_keep_their_mask_parameters():
    mix, _, tn, an = _detuned(0.0)
    params = MaskParams()
    assert abs(estimate_cents(mix, SR, tn, an)) < DEAD_ZONE_CENTS
    assert tuned(params, mix, SR, tn, an) is params
    mix, _, tn, an = _detuned(40.0)
    given = MaskParams(a4_hz=432.0)
    assert tuned(given, mix, SR, tn, an) is given
    assert tuned(params, mix, SR, tn, an).a4_hz == pytest.approx(440 * 2 ** (40 / 1200), abs=1.0)
    assert estimate_cents(np.zeros(SR, np.float32), SR, tn, an) == 0.0
    assert estimate_cents(mix, SR, Notes.empty(), Notes.empty()) == 0.0


def test_separation_of_a_detuned_recording_follows_its_tuning(monkeypatch):
    """40 cents sharp: the score NMF keeps its in-tune SI-SDR because separate_clip reads
    the tuning (measured 11.0 dB in tune, 10.9 dB sharp); with the combs left at 440 Hz it
    loses 2.7 dB (8.3 dB)."""
    import guitarsep.separation.separate as separate

    nmf = load_model(SCORE_NMF)

    def run(cents):
        mix, tgt, tn, an = _detuned(cents)
        return si_sdr(tgt, separate.separate_clip(nmf.model, mix, tn, an, nmf.setting,
                                                  mask_params=nmf.mask))
    in_tune, sharp = run(0.0), run(40.0)
    monkeypatch.setattr(separate, "tuned", lambda params, *_: params)
    at_440 = run(40.0)
    assert sharp > in_tune - 0.5, (sharp, in_tune)
    assert sharp > at_440 + 1.0, (sharp, at_440)


def test_the_separator_reads_the_tuning_from_the_recordings_start(monkeypatch):
    """The streaming path (``guitarsep separate``, the Separator API, the widgets) reads the
    tuning too, from its first ``EXCERPT_S`` seconds, before the first block."""
    import guitarsep.separation.stream as stream
    from guitarsep.app.separator import Separator

    mix, tgt, tn, an = _detuned(40.0)
    sep = Separator(SCORE_NMF, chunk_s=3.0)
    sharp = si_sdr(tgt, sep.separate(mix, SR, tn, an)[0])
    monkeypatch.setattr(stream, "tuned", lambda params, *_: params)
    at_440 = si_sdr(tgt, sep.separate(mix, SR, tn, an)[0])
    assert sharp > at_440 + 1.0, (sharp, at_440)


def test_a_networks_combs_stay_at_440_hz(monkeypatch):
    """A network reads its combs as the pattern it was trained on (A4 = 440 Hz): moving them
    to a recording's tuning cost SI-UMX soft 6 dB on a corpus clip played 20 cents sharp.
    So separate_clip gives a network the same masks with or without the tuning reading."""
    import torch

    import guitarsep.separation.separate as separate
    from guitarsep.config import SETTINGS

    class ScoreMask(torch.nn.Module):
        score_kind = "soft"

        def forward(self, mix_mag, score, score_accomp=None):
            return mix_mag * score

    mix, _, tn, an = _detuned(40.0)
    read = separate.separate_clip(ScoreMask(), mix, tn, an, SETTINGS["modern"])
    monkeypatch.setattr(separate, "tuned", lambda params, *_: pytest.fail("tuning read"))
    np.testing.assert_array_equal(read, separate.separate_clip(ScoreMask(), mix, tn, an,
                                                               SETTINGS["modern"]))
