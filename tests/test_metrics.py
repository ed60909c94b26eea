"""Tests for guitarsep.evaluation.metrics: SI-SDR closed forms, BSS Eval wrapper, tidy table, medians."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from guitarsep.config import EvalConfig
from guitarsep.evaluation.metrics import (
    RESULT_COLUMNS, bss_eval, evaluate_clips, medians_table, select_museval_clips, si_sdr,
)


def _orthogonal_noise(s: np.ndarray, snr_db: float, rng) -> np.ndarray:
    """Noise exactly orthogonal to ``s`` with ``||s||^2 / ||n||^2 = 10^(snr/10)``."""
    s = s.astype(np.float64)
    n = rng.standard_normal(s.shape[-1])
    n -= (n @ s) / (s @ s) * s
    return n * np.sqrt((s @ s) / (n @ n) * 10 ** (-snr_db / 10))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- SI-SDR ----------------------------------------------------------------------------------

def test_si_sdr_scaled_copy_hits_the_cap(rng):
    s = rng.standard_normal(44100)
    for scale in (1.0, 0.01, 7.5, -2.0):
        v = si_sdr(scale * s, s)
        assert np.isfinite(v) and v >= 99.9          # cap = 10 log10(1 / 1e-10) = 100 dB
    assert si_sdr(s, s, eps=1e-6) == pytest.approx(60.0)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 25.0])
def test_si_sdr_orthogonal_noise_known_ratio(rng, snr):
    s = rng.standard_normal(16000)
    n = _orthogonal_noise(s, snr, rng)
    assert si_sdr(s + n, s) == pytest.approx(snr, abs=0.01)
    # scale invariance in both arguments
    assert si_sdr(3.0 * (s + n), s) == pytest.approx(snr, abs=0.01)
    assert si_sdr(s + n, 0.2 * s) == pytest.approx(snr, abs=0.01)


def test_si_sdr_float32_input(rng):
    s = rng.standard_normal(22050).astype(np.float32)
    n = _orthogonal_noise(s, 10.0, rng).astype(np.float32)
    assert si_sdr(s + n, s) == pytest.approx(10.0, abs=0.01)


def test_si_sdr_silent_reference_raises(rng):
    est = rng.standard_normal(1000)
    with pytest.raises(ValueError, match="silent"):
        si_sdr(est, np.zeros(1000))
    with pytest.raises(ValueError, match="silent"):
        si_sdr(est, np.full(1000, 1e-9))
    batch = rng.standard_normal((3, 1000))
    ref = batch.copy()
    ref[1] = 0.0
    with pytest.raises(ValueError, match=r"batch index \[\[1\]\]"):
        si_sdr(batch, ref)


def test_si_sdr_silent_estimate_is_floor(rng):
    s = rng.standard_normal(1000)
    assert si_sdr(np.zeros(1000), s) == pytest.approx(-100.0)


def test_si_sdr_batch_shapes(rng):
    s = rng.standard_normal((2, 3, 4000))
    snrs = np.array([[0.0, 5.0, 10.0], [15.0, -3.0, 20.0]])
    est = np.stack([np.stack([s[i, j] + _orthogonal_noise(s[i, j], snrs[i, j], rng)
                              for j in range(3)]) for i in range(2)])
    out = si_sdr(est, s)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, snrs, atol=0.01)
    assert isinstance(si_sdr(est[0, 0], s[0, 0]), float)
    # each item equals its 1-D computation
    assert out[1, 2] == pytest.approx(si_sdr(est[1, 2], s[1, 2]))


def test_si_sdr_bad_shapes(rng):
    with pytest.raises(ValueError, match="shapes differ"):
        si_sdr(np.ones(10), np.ones(11))
    with pytest.raises(ValueError):
        si_sdr(np.ones(0), np.ones(0))


def test_si_sdr_zero_mean_option(rng):
    s = rng.standard_normal(8000)
    n = _orthogonal_noise(s - s.mean(), 10.0, rng)
    n -= n.mean()
    est = s + n + 0.5                                 # DC offset on the estimate
    assert si_sdr(est, s) < 9.0                       # the offset counts as distortion...
    assert si_sdr(est, s, zero_mean=True) == pytest.approx(10.0, abs=0.05)   # ...unless removed


# --- BSS Eval --------------------------------------------------------------------------------

def _tones(sr=8000, seconds=3.0, seed=1):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    ref = sum(np.sin(2 * np.pi * 220 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    other = sum(np.sin(2 * np.pi * 330 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    return 0.1 * ref, 0.1 * other, rng


def test_bss_eval_perfect_estimate():
    ref, other, _ = _tones()
    r = bss_eval(ref, ref, other, sr=8000)
    assert set(r) == {"sdr", "sir", "sar"}
    assert r["sdr"] > 40 and r["sir"] > 40 and r["sar"] > 40


def test_bss_eval_interference_gives_sir():
    ref, other, rng = _tones()
    est = ref + 0.1 * other + 1e-3 * rng.standard_normal(ref.size)
    r = bss_eval(est, ref, other, sr=8000)
    assert 15 < r["sir"] < 25                        # 20 dB of interference
    assert r["sdr"] <= min(r["sir"], r["sar"]) + 0.5


def test_bss_eval_target_only_matches_museval():
    ref, other, rng = _tones(seconds=4.0)
    other[8000:16000] = 0.0                          # frames where one source is silent
    ref[24000:] = 0.0
    est = ref + 0.2 * other + 0.01 * rng.standard_normal(ref.size)
    fast = bss_eval(est, ref, other, sr=8000, target_only=True)
    full = bss_eval(est, ref, other, sr=8000, target_only=False)
    for k in fast:
        assert fast[k] == pytest.approx(full[k], abs=1e-6)


def test_bss_eval_all_silent_frames_is_nan():
    ref, other, _ = _tones(seconds=2.0)
    r = bss_eval(ref, ref, np.zeros_like(other), sr=8000)   # museval: every frame "silent"
    assert all(np.isnan(v) for v in r.values())


# --- evaluate_clips --------------------------------------------------------------------------

def _items(n_per_cell=3, models=("m1", "m2"), seed=0):
    ref, other, rng = _tones(seconds=1.5, seed=seed)
    items = []
    for model in models:
        for comb in ("ag+ag", "eg+eg"):
            for i in range(n_per_cell):
                meta = dict(model=model, setting="modern", scenario="seen", combination=comb,
                            clip_id=f"seen-{comb}-{i:02d}", target_timbre="0", other_timbre="1",
                            piece_id="p1")
                est = ref + (0.05 * (i + 1)) * other
                items.append((meta, est, ref, other))
    rng.shuffle(items)                                # selection must not depend on order
    return items


def test_evaluate_clips_table_and_museval_selection():
    items = _items()
    df = evaluate_clips(items, museval_clips_per_cell=2, n_jobs=1, sr=8000, progress=False)
    assert list(df.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert "piece_id" in df.columns                   # extra metadata kept after
    assert len(df) == len(items)
    has = df[np.isfinite(df["sdr"])]
    assert len(has) == 2 * 2 * 2                      # 2 models x 2 cells x first 2 clips
    assert set(has["clip_id"].str[-2:]) == {"00", "01"}
    assert df[~np.isfinite(df["sdr"])]["clip_id"].str[-2:].eq("02").all()
    # SI-SDR is in every row and matches si_sdr()
    ref, other, _ = _tones(seconds=1.5, seed=0)
    row = df[(df.model == "m1") & (df.clip_id == "seen-ag+ag-02")].iloc[0]
    assert row["si_sdr"] == pytest.approx(si_sdr((ref + 0.15 * other).astype(np.float32),
                                                 ref.astype(np.float32)), abs=1e-9)


def test_evaluate_clips_from_eval_config_and_ids_parallel():
    items = _items(n_per_cell=2, models=("m1",))
    cfg = EvalConfig(museval_clips_per_cell=1, n_jobs=2)
    df = evaluate_clips(items, cfg, sr=8000, progress=False)
    assert int(np.isfinite(df["sdr"]).sum()) == 2
    manifest = pd.DataFrame([m for m, *_ in items])
    ids = select_museval_clips(manifest, 1)
    assert ids == {"seen-ag+ag-00", "seen-eg+eg-00"}
    df2 = evaluate_clips(iter(items), museval_ids=ids, n_jobs=2, sr=8000, progress=False)
    pd.testing.assert_frame_equal(df.sort_values("clip_id").reset_index(drop=True),
                                  df2.sort_values("clip_id").reset_index(drop=True))


def test_evaluate_clips_errors():
    (meta, est, ref, other), *_ = _items(n_per_cell=1, models=("m1",))
    with pytest.raises(ValueError, match=r"clip seen-.*silent"):
        evaluate_clips([(meta, est, np.zeros_like(ref), other)], n_jobs=1, progress=False)
    with pytest.raises(KeyError, match="lacks"):
        evaluate_clips([({"model": "x"}, est, ref, other)], n_jobs=1, progress=False)
    with pytest.raises(ValueError, match="lengths differ"):
        evaluate_clips([(meta, est[:-1], ref, other)], n_jobs=1, progress=False)
    empty = evaluate_clips([], n_jobs=1, progress=False)
    assert list(empty.columns) == list(RESULT_COLUMNS) and empty.empty


# --- medians_table ---------------------------------------------------------------------------

def _table(rng):
    rows = []
    for model, loc in (("a", 5.0), ("b", 1.0)):
        for comb in ("ag+ag", "ag+eg"):
            for i in range(25):
                rows.append(dict(model=model, setting="modern", scenario="seen",
                                 combination=comb, clip_id=f"{comb}-{i}", target_timbre="0",
                                 other_timbre="1", si_sdr=rng.normal(loc, 2.0),
                                 sdr=rng.normal(loc, 2.0) if i < 5 else np.nan,
                                 sir=np.nan, sar=np.nan))
    return pd.DataFrame(rows)


def test_medians_table(rng):
    df = _table(rng)
    med = medians_table(df, n_boot=500, seed=3)
    assert len(med) == 4
    for r in med.itertuples():
        g = df[(df.model == r.model) & (df.combination == r.combination)]
        assert r.si_sdr == pytest.approx(g["si_sdr"].median())
        assert r.si_sdr_lo <= r.si_sdr <= r.si_sdr_hi
        assert r.n == 25 and r.n_bss == 5
        assert r.sdr == pytest.approx(g["sdr"].dropna().median())
        assert np.isnan(r.sir) and np.isnan(r.sir_lo)
    again = medians_table(df, n_boot=500, seed=3)
    pd.testing.assert_frame_equal(med, again)
    # a cell's interval does not change when another cell is dropped
    sub = medians_table(df[df.model == "a"], n_boot=500, seed=3)
    pd.testing.assert_frame_equal(sub.reset_index(drop=True),
                                  med[med.model == "a"].reset_index(drop=True))
    assert medians_table(df.iloc[:0]).empty
