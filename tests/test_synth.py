"""Tests for guitarsep.corpus.synth: the additive and Karplus-Strong renderers (length, dtype,
determinism, pitch, silence, tuning) and their params (draw, dict round trip)."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from guitarsep.corpus.synth import (AdditiveParams, KarplusParams, params_from_dict,
                                    render_additive, render_karplus)
from guitarsep.score import Notes

SR = 44100
KINDS = {"additive": (AdditiveParams, render_additive), "karplus": (KarplusParams, render_karplus)}


def notes(*rows) -> Notes:
    """Notes from (onset, offset, pitch, velocity) rows."""
    on, off, p, v = np.array(rows, dtype=float).T
    return Notes.from_arrays(on, off, p.astype(int), v.astype(int))


def cents(f: float, ref: float) -> float:
    return 1200.0 * np.log2(f / ref)


def peak_hz(x: np.ndarray, sr: int, lo: float, hi: float, n_fft: int = 2 ** 20) -> float:
    """Frequency of the largest Hann-windowed spectrum peak in [lo, hi] (parabolic on dB)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0]), n_fft))
    freqs = np.arange(spec.shape[0]) * sr / n_fft
    band = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    i = band[np.argmax(spec[band])]
    a, b, c = np.log(spec[i - 1:i + 2] + 1e-30)
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * sr / n_fft


@pytest.fixture(scope="module")
def part() -> Notes:
    """A chord and a short melody: 8 notes in 3 s."""
    return notes((0.25, 1.2, 40, 100), (0.25, 1.2, 47, 90), (0.25, 1.2, 52, 80),
                 (1.3, 1.6, 64, 110), (1.6, 1.9, 67, 60), (1.9, 2.5, 71, 127),
                 (2.5, 2.6, 88, 30), (2.6, 2.9, 45, 1))


@pytest.mark.parametrize("kind", KINDS)
def test_length_dtype_finite_and_cut(kind, part):
    cls, render = KINDS[kind]
    for duration in (3.0, 1.234567, 0.0):     # 1.23 s cuts held notes and drops later ones
        y = render(part, 22050, cls.draw(np.random.default_rng(3)), duration, seed=5)
        assert y.dtype == np.float32 and y.shape == (round(duration * 22050),)
        assert np.isfinite(y).all()
    assert np.abs(y := render(part, SR, cls(), 3.0)).max() > 0 and np.isfinite(y).all()
    empty = render(Notes.empty(), SR, cls(), 1.0)
    assert empty.shape == (SR,) and not empty.any()


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_and_seeded(kind, part):
    cls, render = KINDS[kind]
    params = cls.draw(np.random.default_rng(11))
    a = render(part, 22050, params, 3.0, seed=7)
    assert np.array_equal(a, render(part, 22050, params, 3.0, seed=7))
    # the per-note noise (bursts, phases) follows the seed
    assert not np.array_equal(a, render(part, 22050, params, 3.0, seed=8))


@pytest.mark.parametrize("kind", KINDS)
def test_energy_at_the_notes_harmonics(kind):
    """A single A3 (pitch 57): the STFT's fundamental peak is at 220 Hz within 30 cents, its
    strongest peak is a harmonic of 220 Hz, and most energy lies within 30 cents of the
    harmonics (the score mask's tolerance).

    (Karplus-Strong's harmonic amplitudes are those of a random noise burst, so its fundamental
    is not always the strongest partial: the first check looks at 150-300 Hz.)
    """
    cls, render = KINDS[kind]
    y = render(notes((0.1, 1.6, 57, 100)), SR, cls(), 2.0).astype(np.float64)
    n_fft, hop = 16384, 4096                       # 2.7 Hz bins: 220 Hz +- 10 cents
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    band = np.flatnonzero((freqs > 150) & (freqs < 300))
    assert abs(cents(freqs[band[np.argmax(power[band])]], 220.0)) < 30
    top = freqs[np.argmax(power)]
    assert abs(cents(top, 220.0 * max(1, round(top / 220.0)))) < 30
    harmonic = np.zeros(freqs.shape, dtype=bool)
    for k in range(1, 41):
        # the default additive timbre's inharmonicity (1e-4) moves partial k by sqrt(1+Bk^2)
        fk = k * 220.0 * (np.sqrt(1 + 1e-4 * k * k) if kind == "additive" else 1.0)
        harmonic |= np.abs(1200 * np.log2(np.maximum(freqs, 1.0) / fk)) < 30
    assert power[harmonic].sum() / power[freqs > 50].sum() > 0.9


@pytest.mark.parametrize("pitch", [40, 52, 64, 76, 88])
def test_karplus_tuning_within_3_cents(pitch):
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    for damping in (0.5, 0.2):
        params = KarplusParams(t60_s=4.0, loop_damping=damping, body_mix=0.0)
        y = render_karplus(notes((0.0, 3.0, pitch, 100)), SR, params, 3.0).astype(np.float64)
        est = peak_hz(y[SR // 20:], SR, f0 * 2 ** (-0.5 / 12), f0 * 2 ** (0.5 / 12))
        assert abs(cents(est, f0)) < 3, (pitch, damping, cents(est, f0))


@pytest.mark.parametrize("kind", KINDS)
def test_silence_before_and_after_the_notes(kind):
    cls, render = KINDS[kind]
    rng = np.random.default_rng(0)
    for _ in range(3):
        params = cls.draw(rng)
        y = np.abs(render(notes((0.5, 1.0, 45, 127), (0.8, 1.5, 69, 90)), 22050, params, 3.0))
        peak = y.max()
        assert peak > 0
        assert y[:int(0.5 * 22050)].max() < 1e-6 * peak          # nothing before the onset
        quiet_from = 1.5 + params.release_ms / 1000 + 0.5
        assert y[int(quiet_from * 22050):].max() < 1e-3 * peak


@pytest.mark.parametrize("kind", KINDS)
def test_params_dict_round_trip_and_draw(kind):
    cls = KINDS[kind][0]
    drawn = [cls.draw(np.random.default_rng(s)) for s in range(6)]
    for p in drawn + [cls()]:
        assert params_from_dict(kind, asdict(p)) == p
        assert params_from_dict(kind, json.loads(json.dumps(asdict(p)))) == p
    assert len({json.dumps(asdict(p)) for p in drawn}) == len(drawn)
    assert cls.draw(np.random.default_rng(1)) == drawn[1]       # draw is a function of rng
    with pytest.raises(ValueError):
        params_from_dict("fluidsynth", asdict(drawn[0]))
    with pytest.raises(TypeError):
        params_from_dict(kind, {**asdict(drawn[0]), "bogus": 1})


def test_additive_draw_covers_fm_and_vibrato():
    drawn = [AdditiveParams.draw(np.random.default_rng(s)) for s in range(40)]
    assert any(p.fm_index > 0 for p in drawn) and any(p.fm_index == 0 for p in drawn)
    assert any(p.vib_cents > 0 for p in drawn) and any(p.vib_cents == 0 for p in drawn)
    assert all(10 <= p.n_partials <= 40 and 2 <= len(p.body_freqs_hz) <= 4 for p in drawn)
    # FM + vibrato timbre still renders the right pitch (vibrato <= 25 cents around it)
    p = AdditiveParams(vib_cents=25.0, fm_index=1.5, fm_ratio=2.0)
    y = render_additive(notes((0.0, 2.0, 57, 100)), SR, p, 2.0).astype(np.float64)
    assert abs(cents(peak_hz(y, SR, 200.0, 240.0), 220.0)) < 30
