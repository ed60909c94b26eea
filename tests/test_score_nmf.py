"""Tests for guitarsep.separation.score_nmf: the score's constraints hold, the scale does not
matter, and the factorisation adapts where the fixed comb of the score mask cannot."""
from __future__ import annotations

import numpy as np
import pytest

from guitarsep.config import SETTINGS
from guitarsep.evaluation.metrics import si_sdr
from guitarsep.models.checkpoint import SCORE_NMF, load_model
from guitarsep.score import Notes
from guitarsep.score.masks import pitch_activity
from guitarsep.separation.score_nmf import (NmfParams, _initial_envelopes, _templates,
                                          ScoreNmf, fit_factors, initial_factors,
                                          score_nmf_mask, target_share)
from guitarsep.separation.separate import score_only, separate_clip

from test_separate import melody, tone

ST = SETTINGS["modern"]
KW = dict(sr=ST.sr, n_fft=ST.n_fft, hop=ST.hop)


def _mag(y: np.ndarray) -> np.ndarray:
    from guitarsep.models.frontend import Spectrogram
    import torch
    return Spectrogram(ST)(torch.from_numpy(y)[None])[0].abs().numpy()        # (T, F)


def _staggered():
    """Target C4 for 0-1 s, other E4 for 0.5-2 s."""
    tgt = np.concatenate([tone(60, 1.0), np.zeros(44100, np.float32)])
    oth = np.concatenate([np.zeros(22050, np.float32), tone(64, 1.5)])
    return (tgt + oth, tgt, Notes.from_arrays([0.0], [1.0], [60]),
            Notes.from_arrays([0.5], [2.0], [64]))


def test_mask_is_zero_off_the_score_constraints():
    mix, _, tn, an = _staggered()
    mag = _mag(mix)
    m = score_nmf_mask(mag, tn, an, **KW)
    assert m.shape == mag.shape and m.dtype == np.float32
    assert np.all((m >= 0) & (m <= 1 + 1e-6))
    p = NmfParams()
    # the target's support: the harmonics of a pitch in the frames the score gives it
    pitches, active = pitch_activity(tn, mag.shape[0], sr=ST.sr, hop=ST.hop)
    harmonics = _templates(ST.sr, ST.n_fft, p)[pitches] > 0                   # (P, F)
    comb = (active.astype(float) @ harmonics) > 0
    frames = np.arange(mag.shape[0]) * ST.hop / ST.sr
    near_onset = (frames >= -p.attack_before) & (frames <= p.attack_after)
    # without spare components and pitch slack, where no target pitch is allowed and no
    # target onset is near, the target's model has nothing
    off = ~comb & ~near_onset[:, None]
    strict = score_nmf_mask(mag, tn, an, **KW,
                            params=NmfParams(spare_components=0, slack_start=0.0))
    assert off.any() and np.all(strict[off] == 0)
    # with them: off its pitches' harmonics (in any frame) the target has only half of what
    # the spare components model, which belongs to neither part
    off_pitches = ~harmonics.any(0)[None, :] & ~near_onset[:, None]
    assert off_pitches.any() and np.all(m[off_pitches] <= 0.5 + 1e-6)
    # in the target's comb, away from the other part's notes, the target takes the bin
    alone = comb & (frames < 0.3)[:, None] & ~near_onset[:, None] & (mag > 1e-3 * mag.max())
    assert alone.any() and np.median(m[alone]) > 0.95      # spare components: 0.98
    assert np.median(strict[alone]) > 0.99


def test_mask_does_not_depend_on_scale():
    mix, _, tn, an = _staggered()
    mag = _mag(mix)
    m1 = score_nmf_mask(mag, tn, an, **KW)
    for g in (1e-3, 30.0):
        np.testing.assert_allclose(score_nmf_mask(mag * g, tn, an, **KW), m1, atol=1e-4)


def test_nmf_beats_the_score_mask_on_shared_harmonics():
    """Two melodies whose harmonics collide: the fixed comb splits shared bins by a rule,
    the factorisation by the amplitudes it learns from the recording."""
    mix, tgt, _, tn, an = melody(6.0, seed=3)
    nmf = load_model(SCORE_NMF)
    est = separate_clip(nmf.model, mix, tn, an, nmf.setting, mask_params=nmf.mask)
    s_nmf = si_sdr(tgt, est)
    s_mask = si_sdr(tgt, score_only(mix, tn, an, ST))
    assert s_nmf > s_mask + 1.5, (s_nmf, s_mask)          # measured: 8.0 vs 6.0 dB


def test_without_accompaniment_the_other_guitar_gets_free_components():
    mix, tgt, _, tn, _an = melody(4.0, seed=1)
    nmf = load_model(SCORE_NMF)
    est = separate_clip(nmf.model, mix, tn, Notes.empty(), nmf.setting, mask_params=nmf.mask)
    assert est.shape == mix.shape and np.all(np.isfinite(est))
    assert si_sdr(tgt, est) > si_sdr(tgt, mix) + 3.0


def test_without_accompaniment_a_part_of_unknown_notes_beats_free_components():
    """With only the target's notes, the other guitar modelled as harmonic components of
    every pitch (sounding anywhere from a tiny start) separates better than broadband free
    components: the other guitar is a guitar."""
    mix, tgt, _, tn, _an = melody(6.0, seed=3)
    mask = load_model(SCORE_NMF).mask

    def sdr(params):
        return si_sdr(tgt, separate_clip(ScoreNmf(ST, mask, params), mix, tn, Notes.empty(),
                                         ST, mask_params=mask))
    free = NmfParams(unknown_pitches=(0, -1), free_components=8)
    gain = sdr(NmfParams()) - sdr(free)
    assert gain > 1.0, gain                              # measured: 5.2 -> 9.5 dB


def test_the_module_has_no_forward():
    with pytest.raises(TypeError, match="notes"):
        load_model(SCORE_NMF).model(None)


def test_initial_envelopes_decay_after_onsets_and_release_after_offsets():
    """One pitch, notes 0-1 s and 2-2.5 s: the start decays from each onset while a note is
    held, and falls with ``release_s`` once it is released (before the next onset's
    tolerance); ``release_s = 0`` keeps the decay alone."""
    notes = Notes.from_arrays([0.0, 2.0], [1.0, 2.5], [60, 60])
    p = NmfParams(decay_s=0.5, decay_floor=0.05, release_s=0.05)
    kw = dict(sr=100, hop=10, onset_tol=0.1)                       # frames every 0.1 s
    env = _initial_envelopes(notes, np.array([60]), 30, params=p, **kw)[0]
    decay = 0.05 + 0.95 * np.exp(-np.arange(30) * 0.1 / 0.5)
    np.testing.assert_allclose(env[:11], decay[:11])                # held: decay only
    np.testing.assert_allclose(env[13], decay[13] * np.exp(-0.3 / 0.05))   # released
    np.testing.assert_allclose(env[19:21], [1.0, 1.0])              # next onset (tolerance)
    no_release = _initial_envelopes(notes, np.array([60]), 30,
                                    params=NmfParams(decay_s=0.5, release_s=0.0), **kw)[0]
    np.testing.assert_allclose(no_release[13], decay[13])


def _kl(V, f):
    WH = f.W @ f.H + 1e-12
    return float(np.sum(V * np.log((V + 1e-12) / WH) - V + WH))


def _penalised(V, f):
    """KL plus the factorisation's own penalties on its spare and slack energy."""
    spare = slice(f.W.shape[1] - f.n_spare, None)
    slack = 0.0 if f.slack is None else float((f.W.sum(0)[:, None] * f.H * f.slack).sum())
    return (_kl(V, f) + f.spare_penalty * float(f.W[:, spare].sum(0) @ f.H[spare].sum(1))
            + f.slack_penalty * slack)


def test_fit_factors_descends_and_holds_what_it_is_told_to():
    """The KL multiplicative updates never raise the divergence (Lee & Seung; here with the
    spare components' and the slack's penalties), keep the score's zeros, and leave a held
    factor as it was."""
    mix, _, tn, an = _staggered()
    V = np.ascontiguousarray(_mag(mix).T.astype(np.float32))
    kw = dict(**KW, mask=load_model(SCORE_NMF).mask, params=NmfParams())
    f = initial_factors(V, tn, an, **kw)
    zeros_w, zeros_h = f.W == 0, f.H == 0
    kl = [_penalised(V, f)]
    for _ in range(5):
        kl.append(_penalised(V, fit_factors(V, f, 1)))
    assert all(b <= a * (1 + 1e-5) for a, b in zip(kl, kl[1:])) and kl[-1] < 0.5 * kl[0], kl
    assert np.all(f.W[zeros_w] == 0) and np.all(f.H[zeros_h] == 0)
    held = initial_factors(V, tn, an, **kw)
    W0 = held.W.copy()
    fit_factors(V, held, 3, update_w=False)
    np.testing.assert_array_equal(held.W, W0)
    V_t, V_o = held.part_models()
    share = target_share(V_t, V_o, 0.5)
    assert share.shape == V.shape and np.all((share >= 0) & (share <= 1))


def test_damped_activation_steps_descend_and_spare_free_components():
    """``h_step`` < 1 still never raises the divergence (a part-way step in log H on the
    update's convex auxiliary function), moves the score's activations, in log, ``h_step``
    of a full step, and leaves the unconstrained components (no accompaniment score) and
    the pitch slack at full steps."""
    mix, _, tn, an = _staggered()
    V = np.ascontiguousarray(_mag(mix).T.astype(np.float32))
    kw = dict(**KW, mask=load_model(SCORE_NMF).mask, params=NmfParams())
    f = initial_factors(V, tn, an, **kw)
    kl = [_penalised(V, f)]
    for _ in range(5):
        kl.append(_penalised(V, fit_factors(V, f, 1, h_step=0.3)))
    assert all(b <= a * (1 + 1e-5) for a, b in zip(kl, kl[1:])) and kl[-1] < 0.7 * kl[0], kl
    for accomp in (an, Notes.empty()):
        start, full, damped = (initial_factors(V, tn, accomp, **kw) for _ in range(3))
        fit_factors(V, full, 1, h_step=1.0, update_w=False)
        fit_factors(V, damped, 1, h_step=0.3, update_w=False)
        k = start.H.shape[0] - start.n_unconstrained
        slack = (np.zeros_like(start.H, dtype=bool) if start.slack is None
                 else start.slack)[:k]
        on = (start.H[:k] > 0) & ~slack
        np.testing.assert_allclose(np.log(damped.H[:k][on] / start.H[:k][on]),
                                   0.3 * np.log(full.H[:k][on] / start.H[:k][on]),
                                   rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(damped.H[:k][slack], full.H[:k][slack], rtol=1e-6)
        np.testing.assert_allclose(damped.H[k:], full.H[k:], rtol=1e-6)
    # no accompaniment score: no pitch slack for the target (it would take the other guitar's
    # energy at the target's pitches); the other guitar is a part of unknown notes, one
    # harmonic component per pitch of its range, sounding anywhere (all slack)
    lo, hi = NmfParams().unknown_pitches
    assert start.n_free == NmfParams().free_components == 0 and start.n_spare == 0
    assert not start.slack[:start.n_target].any()
    assert start.slack[start.n_target:].all() and start.H.shape[0] - start.n_target == hi - lo + 1




def test_spare_components_descend_their_penalised_divergence():
    """With both parts' notes the factorisation ends in ``spare_components`` unconstrained
    components; the updates with ``spare_penalty`` c never raise KL + c x their energy."""
    mix, _, tn, an = _staggered()
    V = np.ascontiguousarray(_mag(mix).T.astype(np.float32))
    p = NmfParams()
    f = initial_factors(V, tn, an, **KW, mask=load_model(SCORE_NMF).mask, params=p)
    assert f.n_spare == p.spare_components > 0 and f.n_free == 0
    assert f.spare_penalty == p.spare_penalty > 0
    obj = [_penalised(V, f)]
    for _ in range(5):
        fit_factors(V, f, 1, h_step=p.h_step)
        obj.append(_penalised(V, f))
    assert all(b <= a * (1 + 1e-5) for a, b in zip(obj, obj[1:])), obj


def test_spare_components_give_a_note_the_score_misses_half_to_each_part():
    """The target plays C4 then G4, the score has only the C4; the other guitar plays E4.
    Without spare components G4's energy has no component but a wrong pitch's or nothing;
    with them half of it goes to the target, which is nearer the truth than none."""
    sr = ST.sr
    tgt = np.concatenate([tone(60, 1.0), tone(67, 1.0)])
    oth = np.concatenate([np.zeros(sr // 2, np.float32), tone(64, 1.5)])
    mix = tgt + oth
    tn, an = Notes.from_arrays([0.0], [1.0], [60]), Notes.from_arrays([0.5], [2.0], [64])
    nmf = load_model(SCORE_NMF)
    est = {n: separate_clip(ScoreNmf(ST, nmf.mask, NmfParams(spare_components=n)), mix, tn,
                            an, ST, mask_params=nmf.mask) for n in (0, 4)}
    gain = si_sdr(tgt, est[4]) - si_sdr(tgt, est[0])
    assert gain > 3.0, gain                              # measured: 0.8 -> 8.8 dB


def test_pitch_slack_descends_its_penalised_divergence():
    """Each part's pitch components may sound outside their notes (``f.slack``), from a tiny
    start; the updates never raise KL + the spare and slack penalties x their energy."""
    mix, _, tn, an = _staggered()
    V = np.ascontiguousarray(_mag(mix).T.astype(np.float32))
    p = NmfParams()
    f = initial_factors(V, tn, an, **KW, mask=load_model(SCORE_NMF).mask, params=p)
    assert f.slack is not None and f.slack.shape == f.H.shape
    # slack only on the two pitch components (C4, E4), where their notes are not
    pitch_rows = [0, f.n_target]
    assert set(np.flatnonzero(f.slack.any(1))) == set(pitch_rows)
    np.testing.assert_allclose(f.H[f.slack], p.slack_start * V.mean(), rtol=1e-5)
    none = initial_factors(V, tn, an, **KW, mask=load_model(SCORE_NMF).mask,
                           params=NmfParams(slack_start=0.0))
    assert none.slack is None and np.all(none.H[f.slack] == 0)
    assert f.slack_penalty == p.slack_penalty > 0
    obj = [_penalised(V, f)]
    for _ in range(5):
        fit_factors(V, f, 1, h_step=p.h_step)
        obj.append(_penalised(V, f))
    assert all(b <= a * (1 + 1e-5) for a, b in zip(obj, obj[1:])), obj


def test_pitch_slack_gives_a_missed_note_of_a_scored_pitch_to_its_part():
    """The target plays C4, G4, C4; the score misses the second C4; the other guitar plays
    E4. The missed note's pitch has the target's own template, so with the slack its energy
    goes to the target, not half to each part; with the full score the slack changes
    nothing."""
    sr = ST.sr
    tgt = np.concatenate([tone(60, 1.0), tone(67, 1.0), tone(60, 1.0)])
    oth = np.concatenate([np.zeros(sr // 2, np.float32), tone(64, 2.5)])
    mix = tgt + oth
    an = Notes.from_arrays([0.5], [3.0], [64])
    full = Notes.from_arrays([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [60, 67, 60])
    nmf = load_model(SCORE_NMF)

    def sdr(tn, slack_start):
        model = ScoreNmf(ST, nmf.mask, NmfParams(slack_start=slack_start))
        return si_sdr(tgt, separate_clip(model, mix, tn, an, ST, mask_params=nmf.mask))
    missed = Notes.from_arrays([0.0, 1.0], [1.0, 2.0], [60, 67])
    gain = sdr(missed, NmfParams().slack_start) - sdr(missed, 0.0)
    assert gain > 5.0, gain                              # measured: 10.7 -> 21.0 dB
    assert abs(sdr(full, NmfParams().slack_start) - sdr(full, 0.0)) < 0.1    # 22.90 both
