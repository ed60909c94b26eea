"""Training data: deterministic remix, chunk/mask alignment, caches, validation clips."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from guitarsep.config import SETTINGS
from guitarsep.training.data import (RemixDataset, StepBatchSampler, TrainingSource, ValidClips,
                            cache_dir, make_loader)


@pytest.fixture(scope="module", params=["modern", "low_res"])
def setting(request):
    return SETTINGS[request.param]


@pytest.fixture(scope="module")
def source(smoke_corpus, smoke_profile, setting):
    return TrainingSource(smoke_corpus, setting, smoke_profile.mask)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_source_loads_train_split(source, smoke_corpus, setting):
    r = smoke_corpus.renders
    assert len(source.audio) == int((r["split"] == "train").sum())
    assert set(source.pieces) == set(r.loc[r["split"] == "train", "piece_id"].astype(str))
    for (pi, part), m in source.masks.items():
        assert m.dtype == bool and m.shape == (source.lengths[pi] // setting.hop + 1,
                                               setting.n_bins)
    for x in source.audio.values():
        assert x.dtype == np.float32
    assert any(m.any() for m in source.masks.values())
    # caches were written and a second load reads them (same arrays)
    cdir = cache_dir(smoke_corpus.root, setting)
    assert list((cdir / "audio").glob("*.npy")) and list((cdir / "masks").glob("*.npy"))
    again = TrainingSource(smoke_corpus, setting, source.mask_params)
    k = next(iter(source.audio))
    assert np.array_equal(again.audio[k], source.audio[k])
    assert all(np.array_equal(again.masks[k], m) for k, m in source.masks.items())


def test_dataset_is_deterministic(source, smoke_profile, setting):
    cfg = smoke_profile.train
    a = RemixDataset(source, setting, cfg, seed=3)
    b = RemixDataset(source, setting, cfg, seed=3)
    c = RemixDataset(source, setting, cfg, seed=4)
    assert _equal(a.batch(0, 0), b.batch(0, 0))
    assert _equal(a.batch(2, 5), b.batch(2, 5))
    assert not torch.equal(a.batch(0, 0)["mix"], a.batch(0, 1)["mix"])
    assert not torch.equal(a.batch(0, 0)["mix"], a.batch(1, 0)["mix"])
    assert not torch.equal(a.batch(0, 0)["mix"], c.batch(0, 0)["mix"])
    # DDP sharding: the ranks' shares make up the single-process batch
    full = a.batch(1, 2)
    shares = [a.batch(1, 2, rank=r, world=2) for r in range(2)]
    order = np.argsort(list(range(0, cfg.batch_size, 2)) + list(range(1, cfg.batch_size, 2)))
    merged = {k: torch.cat([shares[0][k], shares[1][k]])[torch.from_numpy(order)] for k in full}
    assert _equal(merged, full)


def test_loader_matches_direct_batches(source, smoke_profile, setting):
    cfg = smoke_profile.train
    ds = RemixDataset(source, setting, cfg)
    sampler = StepBatchSampler(cfg.batch_size, 3, 2, start_epoch=0, start_step=1)
    got = list(make_loader(ds, sampler, num_workers=0))
    want = [ds.batch(e, s) for e in range(2) for s in range(3)][1:]
    assert len(got) == len(sampler) == 5
    assert all(_equal(g, w) for g, w in zip(got, want))
    if setting.name == "low_res":   # one worker process gives the same batches in order
        got1 = list(make_loader(ds, sampler, num_workers=1))
        assert all(_equal(g, w) for g, w in zip(got1, want))


def test_sample_shapes_and_remix(source, smoke_profile, setting):
    cfg = smoke_profile.train
    ds = RemixDataset(source, setting, cfg)
    N = (cfg.seq_frames - 1) * setting.hop
    T = N // setting.hop + 1
    for i in range(8):
        d = ds.draw(0, i)
        s = ds.sample(0, i)
        assert s["mix"].shape == s["target"].shape == (N,)
        assert s["m_target"].shape == s["m_accomp"].shape == (T, setting.n_bins)
        assert s["m_target"].dtype == bool
        # target = gain * rendering chunk; mix - target = gain * other rendering chunk
        tp = d["target_part"]
        a0 = d["start"]
        assert a0 % setting.hop == 0 and a0 + N <= source.lengths[d["piece"]]
        t_src = source.audio[(d["piece"], tp, d["timbres"][tp])][a0:a0 + N]
        o_src = source.audio[(d["piece"], 1 - tp, d["timbres"][1 - tp])][a0:a0 + N]
        np.testing.assert_allclose(s["target"], d["gain_target"] * t_src, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(s["mix"] - s["target"], d["gain_accomp"] * o_src,
                                   rtol=1e-5, atol=1e-6)
        lim = 10 ** (cfg.gain_db / 20)
        assert 1 / lim <= d["gain_target"] <= lim and 1 / lim <= d["gain_accomp"] <= lim


def test_masks_align_with_audio_chunk(source, smoke_corpus, smoke_profile, setting):
    """The cached mask rows of a chunk equal the mask computed from the chunk's own notes on
    the chunk's own STFT frame grid (frame t of the chunk <-> sample start + t * hop)."""
    from guitarsep import score
    from guitarsep.models.frontend import Spectrogram
    cfg = smoke_profile.train
    ds = RemixDataset(source, setting, cfg)
    spec = Spectrogram(setting)
    checked = 0
    for i in range(12):
        d = ds.draw(1, i)
        s = ds.sample(1, i)
        assert spec(torch.from_numpy(s["mix"])).shape[0] == s["m_target"].shape[0]
        tp = d["target_part"]
        notes = smoke_corpus.notes(source.pieces[d["piece"]], tp)
        t0 = d["start"] / setting.sr
        local = score.Notes(notes.onset - t0, notes.offset - t0, notes.pitch, notes.velocity)
        m = score.binary_score_mask(local, s["m_target"].shape[0], sr=setting.sr,
                                    n_fft=setting.n_fft, hop=setting.hop,
                                    params=smoke_profile.mask)
        rows_differ = int((m != s["m_target"]).any(axis=1).sum())
        assert rows_differ <= 1, rows_differ   # (float rounding at a span edge at most)
        checked += int(m.any())
    assert checked > 0


def test_same_timbre_probability(source, smoke_profile, setting):
    cfg = smoke_profile.train
    same = RemixDataset(source, setting, dataclasses.replace(cfg, p_same_timbre=1.0))
    diff = RemixDataset(source, setting, dataclasses.replace(cfg, p_same_timbre=0.0))
    for i in range(20):
        d = same.draw(0, i)
        pools = [source.timbres[(d["piece"], p)] for p in (0, 1)]
        if set(pools[0]) & set(pools[1]):
            assert d["timbres"][0] == d["timbres"][1]
        d = diff.draw(0, i)
        pools = [source.timbres[(d["piece"], p)] for p in (0, 1)]
        if len(set(pools[0]) | set(pools[1])) > 1:
            assert d["timbres"][0] != d["timbres"][1]


def test_blind_sides_convention(source, smoke_corpus, smoke_profile, setting):
    """The blind model's remixes: target from the target side, the other guitar from the other
    side, every draw; the score-informed draws are untouched by the option."""
    from guitarsep.corpus.timbres import timbre_sides
    sides = timbre_sides(smoke_corpus.timbres)
    cfg = smoke_profile.train
    blind = RemixDataset(source, setting, cfg, sides=sides)
    free = RemixDataset(source, setting, cfg)
    seen_sides = set()
    for i in range(40):
        d = blind.draw(0, i)
        tp = d["target_part"]
        assert sides[d["timbres"][tp]] == "target" and sides[d["timbres"][1 - tp]] == "other"
        seen_sides.add(tp)
    assert seen_sides == {0, 1}
    assert free.draw(0, 5) == RemixDataset(source, setting, cfg).draw(0, 5)
    with pytest.raises(ValueError, match="target-side"):
        RemixDataset(source, setting, cfg, sides={})


def test_valid_clips(smoke_corpus, smoke_profile, setting):
    v = ValidClips(smoke_corpus, setting, smoke_profile.mask)
    man = smoke_corpus.manifest
    assert len(v) == int((man["scenario"] == "valid").sum()) > 0
    C, N = v.mix.shape
    assert v.target.shape == (C, N)
    assert v.m_target.shape == v.m_accomp.shape == (C, N // setting.hop + 1, setting.n_bins)
    assert v.m_target.dtype == torch.bool and v.m_target.any()
    # the mixture holds more than the target
    assert float((v.mix - v.target).abs().max()) > 0
    batches = list(v.batches(1))
    assert [sel for sel, _ in batches] == [[i] for i in range(C)]
    again = ValidClips(smoke_corpus, setting, smoke_profile.mask)   # from the cache
    assert torch.equal(again.mix, v.mix) and torch.equal(again.m_accomp, v.m_accomp)
