"""Tests for guitarsep.separation.separate: lengths, resampling, references, chunking, Wiener path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from guitarsep.corpus import Clip
from guitarsep.config import SETTINGS, MaskParams
from guitarsep.evaluation.metrics import si_sdr
from guitarsep.io import gated_level_db
from guitarsep.score import Notes
from guitarsep.separation.separate import (
    estimate_magnitude, mixture, oracle_irm, score_only, separate_batch, separate_clip,
    wiener_target,
)

SR = 44100


class MaskTimesMix(torch.nn.Module):
    """Frame-local fake model: target magnitude = score mask x mixture magnitude."""

    def __init__(self, score_kind="soft"):
        super().__init__()
        self.score_kind = score_kind
        self.gain = torch.nn.Parameter(torch.ones(()))

    def forward(self, mix_mag, score, score_accomp=None):
        if self.score_kind is None:
            return mix_mag * self.gain
        return mix_mag * score * self.gain


class AccompChecker(MaskTimesMix):
    """Like si_cnn, reads score_accomp; checks it is the parts-swapped soft mask."""

    def forward(self, mix_mag, score, score_accomp=None):
        assert score_accomp is not None and score_accomp.shape == score.shape
        both = (score > 0) | (score_accomp > 0)
        torch.testing.assert_close(score[both] + score_accomp[both],
                                   torch.ones_like(score[both]))
        return mix_mag * score


def tone(midi: int, seconds: float, sr: int = SR, n_harm: int = 6) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, n_harm + 1) if k * f0 < sr / 2)
    return (0.1 * y).astype(np.float32)


def two_tones(seconds: float, sr: int = SR, n: int | None = None):
    """Target C4 held, other G4 held (both for the whole clip), with their notes."""
    tgt, oth = tone(60, seconds, sr), tone(67, seconds, sr)
    if n is not None:
        tgt, oth = tgt[:n], oth[:n]
    dur = tgt.size / sr
    return (tgt + oth, tgt, oth, Notes.from_arrays([0.0], [dur], [60]),
            Notes.from_arrays([0.0], [dur], [67]))


def melody(seconds: float, sr: int = SR, seed: int = 0):
    """Two random note sequences, for chunking tests (notes cross chunk boundaries)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    parts = []
    for lo, hi in ((55, 72), (45, 62)):
        y = np.zeros(n, np.float32)
        on, off, pitch = [], [], []
        t0 = 0.0
        while t0 < seconds - 0.1:
            d = float(rng.uniform(0.15, 0.9))
            p = int(rng.integers(lo, hi))
            seg = tone(p, d, sr)
            i0 = int(t0 * sr)
            y[i0:i0 + seg.size] += seg[:max(0, n - i0)]
            on.append(t0), off.append(min(t0 + d, seconds)), pitch.append(p)
            t0 += d
        parts.append((y, Notes.from_arrays(on, off, pitch)))
    (tgt, tn), (oth, an) = parts
    return tgt + oth, tgt, oth, tn, an


# --- lengths and sample rates ----------------------------------------------------------------

@pytest.mark.parametrize("setting", ["modern", "low_res"])
@pytest.mark.parametrize("n", [SR + 1, 2 * SR + 513, 12345])
def test_output_length_matches_input(setting, n):
    mix, _, _, tn, an = two_tones(n / SR + 0.01, n=n)
    est = separate_clip(MaskTimesMix(), mix, tn, an, SETTINGS[setting])
    assert est.shape == mix.shape and est.dtype == np.float32
    assert np.all(np.isfinite(est))
    assert np.abs(est).max() < 2 * np.abs(mix).max()


def test_non_44k_input_rate():
    sr = 22050
    mix, tgt, _, tn, an = two_tones(2.0, sr=sr, n=2 * sr + 7)
    for setting in ("modern", "low_res"):
        est = separate_clip(MaskTimesMix(), mix, tn, an, SETTINGS[setting], sr=sr)
        assert est.shape == mix.shape
        assert si_sdr(est, tgt) > 0.0
    assert oracle_irm(mix, tgt, SETTINGS["modern"], sr=sr).shape == mix.shape
    assert score_only(mix, tn, an, SETTINGS["low_res"], sr=sr).shape == mix.shape


# --- references --------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["modern", "low_res"])
def test_oracle_beats_score_only_beats_mixture(setting):
    mix, tgt, _, tn, an = two_tones(3.0)
    st = SETTINGS[setting]
    s_oracle = si_sdr(oracle_irm(mix, tgt, st), tgt)
    s_score = si_sdr(score_only(mix, tn, an, st), tgt)
    s_mix = si_sdr(mixture(mix), tgt)
    assert s_oracle > s_score > s_mix, (s_oracle, s_score, s_mix)
    assert s_oracle > 10.0


def test_mixture_returns_a_copy():
    mix = np.arange(10, dtype=np.float32)
    out = mixture(mix, "ignored", setting=None)
    np.testing.assert_array_equal(out, mix)
    assert out is not mix


def test_score_only_equals_soft_mask_model():
    mix, _, _, tn, an = two_tones(2.0)
    st = SETTINGS["modern"]
    np.testing.assert_allclose(separate_clip(MaskTimesMix("soft"), mix, tn, an, st),
                               score_only(mix, tn, an, st), atol=1e-6)


# --- chunking ----------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["modern", "low_res"])
def test_chunked_equals_one_shot(setting):
    mix, _, _, tn, an = melody(7.3)
    st = SETTINGS[setting]
    model = MaskTimesMix("soft")
    one = separate_clip(model, mix, tn, an, st, chunk_s=None)
    chunked = separate_clip(model, mix, tn, an, st, chunk_s=2.0, overlap_s=0.5, context_s=0.3)
    assert chunked.shape == one.shape
    np.testing.assert_allclose(chunked, one, atol=1e-4)
    assert np.abs(one).max() > 0.01                  # not trivially zero


def test_chunked_references_equal_one_shot():
    mix, tgt, _, tn, an = melody(6.1, seed=3)
    st = SETTINGS["modern"]
    kw = dict(chunk_s=2.0, overlap_s=0.5, context_s=0.3)
    np.testing.assert_allclose(oracle_irm(mix, tgt, st, **kw),
                               oracle_irm(mix, tgt, st, chunk_s=None), atol=1e-4)
    np.testing.assert_allclose(score_only(mix, tn, an, st, **kw),
                               score_only(mix, tn, an, st, chunk_s=None), atol=1e-4)


# --- Wiener path and model interface -----------------------------------------------------

def test_identity_model_returns_the_mixture():
    mix, _, _, tn, an = melody(3.0)
    est = separate_clip(MaskTimesMix(None), mix, Notes.empty(), Notes.empty(), SETTINGS["modern"])
    assert si_sdr(est, mix) > 60.0


def test_wiener_target_limits():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 33)) + 1j * rng.standard_normal((20, 33))
    np.testing.assert_allclose(wiener_target(X, np.abs(X), 1), X, atol=1e-6)
    assert np.abs(wiener_target(X, np.zeros((20, 33)), 1)).max() < 1e-6
    half = 0.5 * np.abs(X)
    np.testing.assert_allclose(wiener_target(X, half, 0), 0.5 * X, rtol=1e-9)
    np.testing.assert_allclose(wiener_target(X, half, 1), 0.5 * X, atol=1e-6)
    # scale only moves norbert's regulariser: results agree far above it
    np.testing.assert_allclose(wiener_target(X, half, 1, scale=1.0), 0.5 * X, atol=1e-4)
    X_before = X.copy()
    wiener_target(X, half, 1)
    np.testing.assert_array_equal(X, X_before)     # norbert must not touch the caller's array


def test_accomp_mask_is_passed():
    mix, _, _, tn, an = two_tones(1.5)
    est = separate_clip(AccompChecker("soft"), mix, tn, an, SETTINGS["low_res"])
    assert est.shape == mix.shape


def test_binary_model_and_restores_training_mode():
    mix, tgt, _, tn, an = two_tones(1.5)
    model = MaskTimesMix("binary")
    model.train()
    est = separate_clip(model, mix, tn, an, SETTINGS["modern"])
    assert model.training
    assert si_sdr(est, tgt) > 0.0


def test_estimate_magnitude_checks():
    X = torch.randn(1, 5, 2049, dtype=torch.complex64)
    with pytest.raises(ValueError, match="needs the score"):
        estimate_magnitude(MaskTimesMix("soft"), X, None)

    class Bad(MaskTimesMix):
        def forward(self, mix_mag, score, score_accomp=None):
            return mix_mag[..., :10]
    with pytest.raises(ValueError, match="expected"):
        estimate_magnitude(Bad(None), X, None)
    m = torch.zeros(1, 5, 2049, dtype=torch.bool)
    out = estimate_magnitude(MaskTimesMix("soft"), X, {"target": m, "accomp": m})
    assert out.shape == X.shape and float(out.abs().max()) == 0.0


def test_separate_batch_models_and_references():
    clips = []
    for secs in (1.0, 1.3):
        mix, tgt, oth, tn, an = two_tones(secs)
        clips.append(Clip(f"c{secs}", mix, tgt, oth, tn, an, 44100, "seen", "ag+ag", "s01", "s02"))
    st = SETTINGS["modern"]
    for model in (MaskTimesMix(), "oracle_irm", "score_only", "mixture"):
        out = list(separate_batch(model, clips, st, progress=False))
        assert len(out) == 2
        for clip, est in out:
            assert est.shape == clip.mix.shape
    with pytest.raises(ValueError, match="unknown reference"):
        list(separate_batch("oracle", clips, st, progress=False))


# --------------------------------------------------------------------------------------------
# streaming separation (guitarsep separate, the Separator API)
# --------------------------------------------------------------------------------------------

def _stream(x, sr, model, tn, an, st, chunk_s, mono=False):
    from guitarsep.separation.stream import ArraySource, stream_separate

    pieces = list(stream_separate(ArraySource(x, sr), model, tn, an, st,
                                  peak=float(np.abs(x).max()),
                                  level_db=gated_level_db(x.mean(axis=1) if x.ndim == 2 else x, sr),
                                  mask_params=MaskParams(),
                                  chunk_s=chunk_s, mono=mono))
    return [np.concatenate([p[k] for p in pieces]) for k in (0, 1)]


@pytest.mark.parametrize("sr", [44100, 48000])
def test_stream_blocks_equal_one_pass_and_parts_sum_to_mix(sr):
    """Blocks on the granule grid give the one-pass estimate; target + other = mixture."""
    from guitarsep.separation.stream import block_plan

    mix, _, _, tn, an = two_tones(25.0, sr=sr)
    st = SETTINGS["modern"]
    model = MaskTimesMix("soft")
    assert len(block_plan(len(mix), sr, st, 8.0)) > 2
    ref = separate_clip(model, mix, tn, an, st, sr=sr, chunk_s=None)
    for chunk_s in (None, 8.0):
        target, other = _stream(mix, sr, model, tn, an, st, chunk_s)
        assert target.shape == (len(mix), 1)
        np.testing.assert_allclose(target[:, 0], ref, atol=1e-4)
        np.testing.assert_allclose(target + other, mix[:, None], atol=1e-6)


def test_stream_stereo_keeps_channels():
    """Stereo in, stereo out: each channel gets the target at its own level (the network's
    mask through the multichannel Wiener filter), and target + other = mixture per channel."""
    sr = 44100
    mix, tgt, _, tn, an = two_tones(12.0, sr=sr)
    st = SETTINGS["modern"]
    stereo = np.stack([mix, 0.25 * mix], axis=1)
    target, other = _stream(stereo, sr, MaskTimesMix("soft"), tn, an, st, 5.0)
    assert target.shape == stereo.shape
    np.testing.assert_allclose(target + other, stereo, atol=1e-6)
    level = np.sqrt((target ** 2).mean(axis=0))
    assert level[1] == pytest.approx(0.25 * level[0], rel=0.05)
    mono, _ = _stream(stereo, sr, MaskTimesMix("soft"), tn, an, st, 5.0, mono=True)
    assert mono.shape == (len(mix), 1)


def test_one_channel_wiener_is_norberts():
    """wiener_target's closed-form single iteration = norbert.wiener's, zeros included."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import norbert

    rng = np.random.default_rng(1)
    X = (rng.standard_normal((40, 65)) + 1j * rng.standard_normal((40, 65))) * 30.0
    X[3, :5] = 0.0
    est = np.abs(X) * rng.uniform(0.0, 1.2, X.shape)
    est[:, 7] = 0.0                                     # a bin where the target is silent
    scale = 10.0 / np.abs(X).max()
    resid = np.clip(np.abs(X) - est, 0.0, None)
    v = np.stack([est, resid], axis=-1)[:, :, None, :] * scale
    ref = norbert.wiener(v, X[:, :, None] * scale, iterations=1,
                         use_softmask=False)[:, :, 0, 0] / scale
    np.testing.assert_allclose(wiener_target(X, est, 1, scale=scale), ref,
                               rtol=0, atol=1e-12 * np.abs(ref).max())


def test_batched_em_step_is_norberts():
    """The stereo Wiener filter's EM step over frame batches = norbert.wiener's."""
    import warnings

    from guitarsep.separation.stream import _em_step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import norbert

    rng = np.random.default_rng(0)
    x = ((rng.standard_normal((150, 33, 2)) + 1j * rng.standard_normal((150, 33, 2)))
         * 0.1).astype(np.complex64)
    mask = rng.uniform(0, 1, (150, 33, 1)).astype(np.float32)
    v = np.stack([mask * np.abs(x), (1 - mask) * np.abs(x)], axis=-1)
    ref = norbert.wiener(v, x.copy(), iterations=1, use_softmask=False)
    y0 = (v * np.exp(1j * np.angle(x[..., None]))).astype(np.complex64)
    np.testing.assert_allclose(_em_step([y0[..., 0], y0[..., 1]], x, frames=16), ref[..., 0],
                               atol=1e-6)


@pytest.mark.parametrize("model", ["si_umx_soft", "score_nmf"])
@pytest.mark.parametrize("gain_db", [-30.0, -10.0, 10.0])
def test_output_follows_input_gain(gain_db, model):
    """The shipped models hear every input at one level: a gain on the mixture changes the
    estimate's SI-SDR by < 0.1 dB (it changed 1-6 dB before the level normalisation)."""
    from guitarsep.models.checkpoint import load_model

    lm = load_model(model)
    mix, target, _, tn, an = two_tones(8.0)
    g = 10 ** (gain_db / 20)
    ref = si_sdr(target, separate_clip(lm.model, mix, tn, an, lm.setting, mask_params=lm.mask))
    out = si_sdr(target, separate_clip(lm.model, mix * g, tn, an, lm.setting,
                                       mask_params=lm.mask) / g)
    assert abs(out - ref) < 0.1, (gain_db, ref, out)


def test_level_meter_is_block_size_independent():
    from guitarsep.io import LevelMeter

    x = np.random.default_rng(0).standard_normal(44100 * 3).astype(np.float32) * 0.1
    x[: 44100] *= 0.001                                   # a quiet start the gate drops
    whole = gated_level_db(x, 44100)
    meter = LevelMeter(44100)
    for i in range(0, len(x), 1234):
        meter.add(x[i:i + 1234])
    assert meter.db() == pytest.approx(whole, abs=1e-9)
    # windows across the quiet-loud border count partly: within 0.5 dB of the loud part
    assert whole == pytest.approx(10 * np.log10(np.mean(x[44100:] ** 2)), abs=0.5)
    assert gated_level_db(np.zeros(100), 44100) == float("-inf")


def test_stereo_wiener_equals_norberts():
    """The written-out stereo filter of ``stream`` is norbert's one EM iteration with the
    sources mask * x and (1 - mask) * x."""
    import norbert

    from guitarsep.separation.stream import _em_step_stereo

    rng = np.random.default_rng(1)
    x = ((rng.standard_normal((150, 33, 2)) + 1j * rng.standard_normal((150, 33, 2)))
         * 0.1).astype(np.complex64)
    mask = rng.uniform(0, 1, (150, 33)).astype(np.float32)
    v = np.stack([mask[..., None] * np.abs(x), (1 - mask[..., None]) * np.abs(x)], axis=-1)
    ref = norbert.wiener(v, x.copy(), iterations=1, use_softmask=False)
    np.testing.assert_allclose(_em_step_stereo(mask, x, frames=16), ref[..., 0], atol=2e-6)
