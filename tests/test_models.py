"""Tests for guitarsep.models.frontend and guitarsep.models (small sizes: CPU, seconds)."""
from __future__ import annotations

import pytest
import torch

from guitarsep.config import SETTINGS, MaskParams
from guitarsep.models import MODEL_NAMES, build_model, count_parameters, hparams_for, model_family
from guitarsep.models.base import crop_to, pad_to_multiple
from guitarsep.models.checkpoint import load_model, save_checkpoint
from guitarsep.models.frontend import Spectrogram, istft, magnitude, score_input, score_pair

SMALL = {"umx": dict(hidden_size=16), "unet": dict(channels=4), "cnn": dict()}
SETTING_NAMES = tuple(SETTINGS)


def small_model(name, setting, **extra):
    return build_model(name, setting, **{**SMALL[model_family(name)], **extra})


def comb_masks(B, T, F, g, n_notes=4, n_harm=20):
    """Harmonic-comb-like bool masks ``(B, T, F)``: a few random notes, 3 bins per harmonic."""
    m = torch.zeros(B, T, F, dtype=torch.bool)
    for b in range(B):
        for _ in range(n_notes):
            f0 = float(torch.empty(1).uniform_(F / 100, F / 10, generator=g))
            on = int(torch.randint(0, T, (1,), generator=g))
            off = on + 1 + int(torch.randint(0, T, (1,), generator=g))
            for h in range(1, n_harm + 1):
                k = round(h * f0)
                if k + 1 < F:
                    m[b, on:off, max(k - 1, 0):k + 2] = True
    return m


def batch(setting, B, T, seed=0):
    """Random mixture magnitude ``(B, T, F)`` and harmonic-comb score masks ``m_t, m_a``."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, T, setting.n_bins)
    mix = torch.rand(shape, generator=g)
    m_t = comb_masks(*shape, g)
    m_a = comb_masks(*shape, g)
    return mix, m_t, m_a


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("sname", SETTING_NAMES)
@pytest.mark.parametrize("n", [1000, 12345])
def test_stft_shape_and_round_trip(sname, n):
    st = SETTINGS[sname]
    spec = Spectrogram(st)
    wav = torch.randn(2, n) * 0.3
    X = spec(wav)
    assert X.shape == (2, n // st.hop + 1, st.n_bins) and X.is_complex()
    assert spec.n_frames(n) == X.shape[1]
    y = spec.istft(X, n)
    assert y.shape == wav.shape
    assert (y - wav).abs().max() < 1e-4
    assert torch.equal(istft(X, st, n), y)
    assert torch.allclose(magnitude(X), X.abs())


def test_stft_is_linear_and_unbatched():
    st = SETTINGS["low_res"]
    spec = Spectrogram(st)
    a, b = torch.randn(5000), torch.randn(5000)
    assert spec(a).shape == (5000 // st.hop + 1, st.n_bins)
    assert torch.allclose(spec(a + b), spec(a) + spec(b), atol=1e-4)


def test_score_input():
    m_t = torch.tensor([[[True, True, False, False]]])
    m_a = torch.tensor([[[True, False, True, False]]])
    assert score_input(None, m_t, m_a) is None
    assert torch.equal(score_input("binary", m_t, m_a), torch.tensor([[[1.0, 1.0, 0.0, 0.0]]]))
    soft = score_input("soft", m_t, m_a)
    assert soft.dtype == torch.float32
    assert torch.equal(soft, torch.tensor([[[0.5, 1.0, 0.0, 0.0]]]))
    s, sa = score_pair("soft", m_t, m_a)
    assert torch.equal(sa, torch.tensor([[[0.5, 0.0, 1.0, 0.0]]]))
    assert score_pair(None, m_t, m_a) == (None, None)
    with pytest.raises(ValueError):
        score_input("fuzzy", m_t, m_a)


def test_pad_crop_helpers():
    x = torch.randn(2, 3, 7, 65)
    y, sizes = pad_to_multiple(x, dims=(2, 3), multiple=64)
    assert y.shape == (2, 3, 64, 128) and sizes == (7, 65)
    assert torch.equal(crop_to(y, (2, 3), sizes), x)


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("sname", SETTING_NAMES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shapes(name, sname):
    st = SETTINGS[sname]
    model = small_model(name, st)
    assert model.setting == st and model.name == name
    assert model.score_kind in ("soft", "binary", None)
    model.eval()
    with torch.no_grad():
        for T in (1, 7, 33, 130):
            mix, m_t, m_a = batch(st, 2, T, seed=T)
            out = model(mix, *score_pair(model.score_kind, m_t, m_a))
            assert out.shape == (2, T, st.n_bins)
            assert torch.isfinite(out).all() and (out >= 0).all()
            assert (out[..., st.max_bin:] == 0).all()
    model.train()   # training mode, odd length, B * T > 1
    mix, m_t, m_a = batch(st, 2, 7)
    assert model(mix, *score_pair(model.score_kind, m_t, m_a)).shape == (2, 7, st.n_bins)


def smooth_mask(B, T, F, g):
    """Random mask in [0, 1] ``(B, T, F)``, smooth: bilinear from a 4-frame x 16-bin grid."""
    coarse = torch.rand(B, 1, T // 4 + 2, F // 16 + 2, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(T, F), mode="bilinear",
                                           align_corners=True)[:, 0]


@pytest.mark.parametrize("name", ["si_umx_soft", "si_unet_soft", "si_cnn"])
def test_one_batch_overfit(name):
    """MSE to a fixed target made by masking the mixture falls >= 10x within 300 Adam steps.

    The mask is smooth: the CNN's 128-unit bottleneck needs ~150-400 steps to memorise sharp
    comb-shaped targets (it plateaus near 8x on some seeds), but ~60-75 for smooth ones;
    UMX / U-Net need 20-60 steps here.
    """
    st = SETTINGS["low_res"]
    fam = model_family(name)
    model = small_model(name, st, **({} if fam == "cnn" else {"dropout": 0.0}))
    mix, m_t, m_a = batch(st, 4, 17)
    score, accomp = score_pair(model.score_kind, m_t, m_a)
    target = mix * smooth_mask(*mix.shape, torch.Generator().manual_seed(1))
    target[..., st.max_bin:] = 0
    opt = torch.optim.Adam(model.parameters(), lr={"umx": 1e-2, "unet": 3e-3, "cnn": 1e-3}[fam])
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = torch.mean((model(mix, score, accomp) - target) ** 2)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
        if loss.item() * 10 <= first:
            break
    assert loss.item() * 10 <= first, (first, loss.item())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_score_matters(name):
    st = SETTINGS["low_res"]
    model = small_model(name, st).eval()
    mix, m_t, m_a = batch(st, 2, 9)
    _, m_t2, m_a2 = batch(st, 2, 9, seed=99)
    with torch.no_grad():
        a = model(mix, *score_pair(model.score_kind, m_t, m_a))
        b = model(mix, *score_pair(model.score_kind, m_t2, m_a2))
        if model.score_kind is None:
            assert torch.equal(a, b)
            # the blind model also accepts (and ignores) an explicit score
            assert torch.equal(model(mix, score_input("soft", m_t2, m_a2)), a)
        else:
            assert (a - b).abs().max() > 1e-6
            if model.uses_accomp:   # si_cnn: the accompaniment mask alone also matters
                s, _ = score_pair(model.score_kind, m_t, m_a)
                c = model(mix, s, score_input(model.score_kind, m_a2, m_t))
                assert (a - c).abs().max() > 1e-6


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_state_dict_round_trip(name, tmp_path):
    st = SETTINGS["low_res"]
    model = small_model(name, st)
    mix, m_t, m_a = batch(st, 2, 11)
    inputs = (mix, *score_pair(model.score_kind, m_t, m_a))
    model.train()
    model(*inputs)                       # move batch-norm running stats away from init
    model.eval()
    path = tmp_path / "m.pt"
    mask = MaskParams(n_harmonics=7, cents=25.0)
    save_checkpoint(path, model, st, mask, meta={"epoch": 3})
    loaded = load_model(path)            # the one loader of every model file
    assert (loaded.name, loaded.setting, loaded.mask) == (model.name, st, mask)
    assert loaded.info["epoch"] == 3 and loaded.hparams == model.hparams
    clone = loaded.model
    assert not clone.training
    with torch.no_grad():
        assert torch.equal(model(*inputs), clone(*inputs))


def test_input_checks():
    st = SETTINGS["low_res"]
    mix, m_t, m_a = batch(st, 1, 5)
    with pytest.raises(ValueError):
        small_model("si_umx_soft", st)(mix)                       # missing score
    with pytest.raises(ValueError):
        small_model("si_cnn", st)(mix, score_input("soft", m_t, m_a))   # missing accomp
    with pytest.raises(ValueError):
        small_model("umx_blind", st)(mix[..., :-1])                # wrong bins
    with pytest.raises(ValueError):
        build_model("nope", st)


def test_umx_input_stats_and_sizes():
    st = SETTINGS["modern"]
    model = build_model("si_umx_soft", st, hidden_size=16)
    assert model.fc1.in_features == 2 * st.max_bin
    assert build_model("umx_blind", st, hidden_size=16).fc1.in_features == st.max_bin
    mix, m_t, m_a = batch(st, 2, 5)
    assert model.fit_input_stats(mix, score_input("soft", m_t, m_a))
    nb = st.max_bin
    assert torch.allclose(model.input_mean[:nb], -mix[..., :nb].reshape(-1, nb).mean(0))
    assert not build_model("si_unet_soft", st, channels=4).fit_input_stats(mix)


def test_registry_helpers():
    from guitarsep.config import TrainConfig
    tc = TrainConfig()
    assert hparams_for("si_umx_binary", tc) == {"hidden_size": tc.hidden_size}
    assert hparams_for("si_unet_soft", tc) == {"channels": tc.unet_channels}
    assert hparams_for("si_cnn", tc) == {}
    assert count_parameters(build_model("umx_blind", "low_res", hidden_size=16)) > 0
