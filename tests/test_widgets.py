"""guitarsep.app.listening: the pure listening helpers, and the panel driven through its callbacks
(as the widgets' observers call them) on the session's smoke corpus with tiny untrained models
and a small fake scores table (nothing here needs a finished run)."""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from guitarsep.config import ModelSpec
from listening_fakes import fake_scores, tiny_models
from guitarsep.app.listening import (
    PLAYBACK_SR, EstimateCache, clip_metrics, clip_options, concat_ab, encode_ogg,
    listening_panel, model_key, pick_clips, signal_names, to_playback, view_signals,
)



def _table(values: dict[str, float], scenario="seen", model="si_umx_soft") -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "setting": "modern", "scenario": scenario,
                          "combination": "ag+ag", "clip_id": cid, "target_timbre": "s00",
                          "other_timbre": "s01", "si_sdr": v, "sdr": v, "sir": np.nan,
                          "sar": 1.0} for cid, v in values.items()])


# --------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------
def test_pick_clips_ranks():
    t = _table({"c1": 1.0, "c2": 5.0, "c3": np.nan, "c4": 3.0, "c5": -2.0})
    got = pick_clips(t, "seen")
    assert list(got["rank"]) == ["best", "median", "worst"]
    # descending 5, 3, 1, -2, NaN: best c2, median index 2 -> c1, worst (NaN last) c3
    assert list(got.clip_id) == ["c2", "c1", "c3"]
    two = pick_clips(_table({"c1": 1.0, "c2": 2.0}), "seen")
    assert list(two.clip_id) == ["c2", "c1"] and list(two["rank"]) == ["best", "median"]
    assert pick_clips(t, "d").empty
    # no row of the reference model: ranked by the median over the models present
    other = _table({"c1": 1.0, "c2": 5.0}, model="umx_blind")
    assert list(pick_clips(other, "seen", ranks=("best",)).clip_id) == ["c2"]
    with pytest.raises(ValueError):
        pick_clips(t, "seen", ranks=("middle",))


def test_clip_options_and_metrics():
    t = pd.concat([_table({"c1": 1.0, "c2": 5.0}),
                   _table({"c1": -1.0, "c2": 0.5}, model="umx_blind")])
    opts = clip_options(t, "seen")
    assert [v for _, v in opts] == ["c2", "c1"] and "5.0 dB" in opts[0][0]
    m = clip_metrics(t, "c1", {"soft": ModelSpec("si_umx_soft", "modern"),
                               "blind": "umx_blind", "cnn": ModelSpec("si_cnn", "low_res")})
    assert list(m.label) == ["soft", "blind", "cnn"]
    assert m.si_sdr.iloc[0] == 1.0 and m.si_sdr.iloc[1] == -1.0
    assert np.isnan(m.sir.iloc[0]) and m.si_sdr.isna().iloc[2]      # no row for si_cnn


def test_model_key():
    from guitarsep.models import build_model
    assert model_key(build_model("umx_blind", "low_res", hidden_size=8)) == ("umx_blind",
                                                                           "low_res")
    assert model_key(ModelSpec("si_cnn", "low_res")) == ("si_cnn", "low_res")
    assert model_key("oracle_irm") == ("oracle_irm", "modern")


def test_concat_ab():
    sr = 1000
    a, b = np.ones(300, np.float32), -np.ones(200, np.float32)
    y = concat_ab(a, b, sr, gap_s=0.5, fade_s=0.01)
    assert y.dtype == np.float32 and y.shape == (300 + 500 + 200,)
    assert np.all(y[300:800] == 0)                              # the silence
    assert y[0] == 0 and y[150] == 1 and y[299] < 1             # faded in and out
    assert y[900] == -1 and y[800] == 0
    assert np.array_equal(concat_ab(a, b, sr, gap_s=0, fade_s=0), np.r_[a, b])


def test_signals_and_audio():
    assert signal_names(["soft", "blind"]) == ["mixture", "target", "soft", "blind",
                                               "soft residual", "blind residual"]
    mix = np.linspace(-1, 1, 4410, dtype=np.float32)
    est = 0.25 * mix
    sig = view_signals(mix, 0.5 * mix, {"soft": est})
    assert list(sig) == ["mixture", "target", "soft", "soft residual"]
    np.testing.assert_allclose(sig["soft residual"], mix - est)
    y = to_playback(2 * mix, 44100)
    assert y.shape == (2205,) and y.max() <= 1 and y.min() >= -1
    x = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype(np.float32) * 0.5
    data = encode_ogg(x, 44100)
    back, sr = sf.read(io.BytesIO(data))
    assert data[:4] == b"OggS" and sr == PLAYBACK_SR and abs(len(back) / sr - 1.0) < 1e-3
    assert len(data) < 20_000                                  # ~60 kbit/s


# --------------------------------------------------------------------------------------------
# the panel
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scores(smoke_corpus):
    return fake_scores(smoke_corpus)


@pytest.fixture()
def panel(smoke_profile, smoke_corpus, scores):
    pytest.importorskip("ipywidgets")
    return listening_panel(smoke_profile, smoke_corpus, scores, tiny_models())


def _audio_values(panel) -> list[bytes]:
    return [row.children[1].value for row in panel.players.children]


def _names(panel) -> list[str]:
    return [row.children[0].value for row in panel.players.children]


def test_panel_initial_view(panel, scores):
    s = panel.state
    median = pick_clips(scores, s.scenario, ranks=("median",)).clip_id.iloc[0]
    assert (s.scenario, s.combination, s.clip_id) == ("seen", "all", median)
    assert s.models == ("soft", "binary", "blind") and s.signal == "mixture" and not s.ab
    assert _names(panel) == signal_names(s.models)
    assert all(v[:4] == b"OggS" for v in _audio_values(panel))
    assert panel.spectrogram.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert panel.clip_dd.value == median and panel.scenario_dd.value == "seen"
    row = scores[(scores.clip_id == median) & (scores.model == "si_umx_binary")]
    assert f"{row.si_sdr.iloc[0]:.1f} dB" in panel.metrics.value
    assert panel.ab_box.children == ()
    assert len(panel.cache) == 3 and panel.cache.calls == 3


def test_clip_change_updates_players_plot_and_metrics(panel, scores):
    before = panel.state.clip_id
    audio, png, mix = _audio_values(panel), panel.spectrogram.value, panel.view.signals["mixture"]
    other = next(v for _, v in panel.clip_dd.options if v != before)
    panel.on_clip_change({"new": other, "old": before, "name": "value"})
    assert panel.state.clip_id == other and panel.clip_dd.value == other
    assert panel.view.clip_id == other and other in panel.header.value
    assert not np.array_equal(panel.view.signals["mixture"], mix)
    assert all(a != b for a, b in zip(_audio_values(panel), audio))
    assert panel.spectrogram.value != png
    row = scores[(scores.clip_id == other) & (scores.model == "si_umx_soft")]
    assert f"{row.si_sdr.iloc[0]:.1f} dB" in panel.metrics.value
    # estimates are cached per (clip, model): going back separates nothing
    calls = panel.cache.calls
    panel.on_clip_change(before)
    assert panel.cache.calls == calls == 6 and panel.state.clip_id == before


def test_model_change(panel):
    soft_est = panel.view.signals["soft"]
    panel.on_signal_change("blind residual")
    panel.on_models_change({"new": ("soft",)})
    assert panel.state.models == ("soft",) and panel.models_sel.value == ("soft",)
    assert _names(panel) == ["mixture", "target", "soft", "soft residual"]
    assert panel.state.signal == "mixture"                 # the blind signal went away
    assert list(panel.signal_dd.options) == signal_names(("soft",))
    np.testing.assert_array_equal(panel.view.signals["soft"], soft_est)
    assert "blind" not in panel.metrics.value
    assert set(panel._players) == set(signal_names(("soft",)))     # players are reused
    panel.on_models_change(("blind", "soft"))               # kept in the dict's order
    assert panel.state.models == ("soft", "blind")
    assert not np.array_equal(panel.view.signals["blind"], panel.view.signals["soft"])
    with pytest.raises(KeyError):
        panel.on_models_change(("nope",))


def test_signal_change_redraws(panel):
    png = panel.spectrogram.value
    panel.on_signal_change("soft residual")
    assert panel.state.signal == "soft residual" and panel.signal_dd.value == "soft residual"
    assert panel.spectrogram.value != png
    with pytest.raises(KeyError):
        panel.on_signal_change("bogus")


def test_ab_back_to_back(panel):
    panel.on_ab_pair_change(("soft", "blind"))
    panel.on_ab_change({"new": True})
    assert panel.state.ab and panel.ab_toggle.value
    assert len(panel.ab_box.children) == 1
    v = panel.view
    a = to_playback(v.signals["soft"], v.sr)
    b = to_playback(v.signals["blind"], v.sr)
    gap = int(round(panel.gap_s * PLAYBACK_SR))
    assert v.ab_audio.shape == (len(a) + gap + len(b),)
    np.testing.assert_array_equal(v.ab_audio[len(a):len(a) + gap], 0)
    np.testing.assert_allclose(v.ab_audio[1000:len(a) - 1000], a[1000:-1000])
    np.testing.assert_allclose(v.ab_audio[len(a) + gap + 1000:-1000], b[1000:-1000])
    assert "soft → blind" in panel.ab_box.children[0].children[0].value
    panel.on_ab_pair_change(("mixture", "soft"))
    assert "mixture → soft" in panel.ab_box.children[0].children[0].value
    assert len(panel.view.ab_audio) == len(a) + gap + len(a)
    panel.on_ab_change(False)
    assert panel.ab_box.children == () and panel.view.ab_audio is None


def test_scenario_and_combination_change(panel, smoke_corpus):
    panel.on_scenario_change("d")
    assert panel.state.scenario == "d" and panel.scenario_dd.value == "d"
    assert "ag+eg" not in panel.combination_dd.options
    assert panel.clip_dd.value.startswith("d_") and panel.view.clip_id.startswith("d_")
    panel.on_combination_change("eg+eg")
    manifest = smoke_corpus.manifest.set_index("clip_id")
    assert manifest.combination[panel.state.clip_id] == "eg+eg"
    assert all(manifest.combination[v] == "eg+eg" for _, v in panel.clip_dd.options)


def test_widget_observers_call_the_callbacks(panel):
    """Changing a control's value (what the frontend does) runs the same callbacks."""
    other = next(v for _, v in panel.clip_dd.options if v != panel.state.clip_id)
    png = panel.spectrogram.value
    panel.clip_dd.value = other
    assert panel.state.clip_id == other and panel.view.clip_id == other
    assert panel.spectrogram.value != png
    panel.models_sel.value = ("binary",)
    assert _names(panel) == ["mixture", "target", "binary", "binary residual"]
    panel.scenario_dd.value = "a"
    assert panel.state.clip_id.startswith("a_")


def test_static_html(panel):
    panel.on_ab_change(True)
    text = panel.static_html()
    n = 2 + len(panel.state.models) + 1           # mixture, target, estimates + the A/B player
    assert len(re.findall(r"<audio ", text)) == n
    assert len(re.findall(r'src="data:audio/ogg;base64,', text)) == n
    assert "data:image/png;base64," in text and panel.state.clip_id in text
    assert len(text) < 3_000_000
    assert len(re.findall(r"<audio ", panel.static_html(signals=["mixture"]))) == 2
    every = panel.static_html(signals=signal_names(panel.state.models))
    assert len(re.findall(r"<audio ", every)) == len(signal_names(panel.state.models)) + 1


def test_estimate_cache_reference(smoke_corpus):
    clip_id = smoke_corpus.clips(split="test").clip_id.iloc[0]
    cache = EstimateCache(smoke_corpus, {"mix": "mixture", "score": "score_only"})
    np.testing.assert_array_equal(cache.estimate(clip_id, "mix"), cache.clip(clip_id).mix)
    est = cache.estimate(clip_id, "score")
    assert est.shape == cache.clip(clip_id).mix.shape and cache.calls == 2
    cache.estimate(clip_id, "score")
    assert cache.calls == 2
    cache.forget(clip_id)
    assert len(cache) == 0
