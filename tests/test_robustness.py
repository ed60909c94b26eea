"""Score-error perturbations (guitarsep.score.perturb), the robustness study loop
(guitarsep.evaluation.robustness) and its figure."""
import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

matplotlib.use("Agg")

from guitarsep.config import RobustnessConfig, load_profile  # noqa: E402
from guitarsep.evaluation.figures import plot_robustness  # noqa: E402
from guitarsep.evaluation.robustness import (  # noqa: E402
    RECORDING_KINDS, robustness_clips, robustness_conditions, run_robustness)
from guitarsep.score import Notes  # noqa: E402
from guitarsep.score.perturb import PERTURBATION_KINDS, onset_error_ms, perturb_notes  # noqa: E402


def _notes(n=40, seed=0):
    rng = np.random.default_rng(seed)
    on = np.sort(rng.uniform(0.5, 9.0, n))
    return Notes.from_arrays(on, on + rng.uniform(0.1, 0.8, n), rng.integers(45, 80, n))


def test_level_zero_and_none_return_the_score_unchanged():
    notes = _notes()
    for kind in PERTURBATION_KINDS + ("none",):
        assert perturb_notes(notes, kind, 0.0, np.random.default_rng(0), duration=10) == notes
    assert perturb_notes(notes, "none", 0.3, None, duration=10) == notes


def test_onset_jitter_is_bounded_and_keeps_durations():
    notes = _notes()
    out = perturb_notes(notes, "onset_jitter", 0.1, np.random.default_rng(1), duration=10)
    assert len(out) == len(notes)
    assert np.allclose(np.sort(out.offset - out.onset), np.sort(notes.offset - notes.onset))
    # every jittered onset lies within 100 ms of a true onset of the same pitch
    assert onset_error_ms(out, notes) <= 100.0 + 1e-9
    assert onset_error_ms(out, notes) > 5.0          # and they did move
    assert (out.onset >= 0).all()


def test_early_offsets_cut_each_note_and_keep_onsets():
    notes = _notes()
    out = perturb_notes(notes, "early_offsets", 0.75, None, duration=10)
    assert np.array_equal(out.onset, notes.onset) and np.array_equal(out.pitch, notes.pitch)
    np.testing.assert_allclose(out.offset - out.onset, 0.25 * (notes.offset - notes.onset))
    with pytest.raises(ValueError, match="early_offsets"):
        perturb_notes(notes, "early_offsets", 1.0, None, duration=10)


def test_global_offset_shifts_every_note():
    notes = _notes()
    out = perturb_notes(notes, "global_offset", 0.25, None, duration=10)
    assert np.allclose(out.onset, notes.onset + 0.25)
    assert np.array_equal(out.pitch, notes.pitch)


def test_missing_extra_and_octave_counts():
    notes = _notes(40)
    rng = np.random.default_rng(2)
    assert len(perturb_notes(notes, "missing_notes", 0.25, rng, duration=10)) == 30
    extra = perturb_notes(notes, "extra_notes", 0.5, rng, duration=10)
    assert len(extra) == 60
    assert extra.pitch.min() >= notes.pitch.min() and extra.pitch.max() <= notes.pitch.max()
    assert extra.onset.min() >= 0 and extra.onset.max() <= 10
    octave = perturb_notes(notes, "wrong_octave", 0.5, rng, duration=10)
    assert len(octave) == 40
    # onsets are distinct, so the order is kept: exactly 20 pitches moved by one octave
    assert np.array_equal(octave.onset, notes.onset)
    diff = octave.pitch - notes.pitch
    assert (diff != 0).sum() == 20 and set(np.abs(diff[diff != 0])) == {12}


def test_perturbations_are_reproducible_and_validated():
    notes = _notes()
    a = perturb_notes(notes, "extra_notes", 0.3, np.random.default_rng(5), duration=10)
    b = perturb_notes(notes, "extra_notes", 0.3, np.random.default_rng(5), duration=10)
    assert a == b
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb_notes(notes, "tempo", 0.1, None, duration=10)
    with pytest.raises(ValueError, match=">= 0"):
        perturb_notes(notes, "onset_jitter", -0.1, None, duration=10)
    with pytest.raises(ValueError, match="fraction"):
        perturb_notes(notes, "missing_notes", 1.5, np.random.default_rng(0), duration=10)


def test_onset_error_nan_without_shared_pitch():
    a = Notes.from_arrays([0.0], [1.0], [60])
    b = Notes.from_arrays([0.0], [1.0], [61])
    assert np.isnan(onset_error_ms(a, b))
    assert onset_error_ms(a, a) == 0.0


def test_conditions_list_clean_first():
    cfg = RobustnessConfig()
    cond = robustness_conditions(cfg)
    assert cond[0] == ("none", 0.0)
    assert len(cond) == 1 + sum(len(v) for _, v in cfg.levels)
    with pytest.raises(ValueError, match="unknown perturbation"):
        robustness_conditions(RobustnessConfig(levels=(("tempo", (0.1,)),)))


class _ScoreMask(torch.nn.Module):
    """No-learning stand-in: the soft score mask times the mixture magnitude."""
    score_kind = "soft"

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, mix_mag, score, score_accomp=None):
        return mix_mag * score


def test_run_robustness_offset_hurts_and_alignment_recovers(smoke_profile, smoke_corpus):
    """A 0.5 s late score costs the score mask SI-SDR; DTW alignment wins most of it back."""
    cfg = RobustnessConfig(levels=(("global_offset", (0.5,)),), models=("mask",),
                           n_clips=2, align=(False, True))
    profile = dataclasses.replace(smoke_profile, robustness=cfg)
    clips = robustness_clips(smoke_corpus, cfg)
    assert len(clips) == 2 and all(c.scenario == "seen" for c in clips)
    table, timing = run_robustness(profile, smoke_corpus, progress=False,
                                   models={"mask": _ScoreMask()})
    assert len(table) == 2 * 2 * 2 and timing["rows"] == 8
    assert (profile.results_dir / "robustness.csv").is_file()
    med = table.groupby(["kind", "align"]).si_sdr.median()
    clean, late, late_aligned = (med[("none", False)], med[("global_offset", False)],
                                 med[("global_offset", True)])
    assert clean - late > 1.0, med
    assert late_aligned - late > 0.5 * (clean - late), med
    err = table.groupby(["kind", "align"]).onset_error_ms.median()
    assert err[("global_offset", True)] < 100.0 < err[("global_offset", False)]


def test_plot_robustness_draws_a_panel_per_kind():
    rows = []
    kinds = PERTURBATION_KINDS + RECORDING_KINDS
    for kind, levels in [("none", [0.0])] + [(k, [0.1, 0.5]) for k in kinds]:
        for lv in levels:
            for model in ("si_umx_soft", "si_umx_binary"):
                for al in (False, True):
                    rows.append(dict(clip_id="c0", kind=kind, level=lv, align=al, model=model,
                                     si_sdr=5.0 - 3 * lv))
    fig = plot_robustness(pd.DataFrame(rows))        # a table from before the refine column
    assert len(fig.axes) == len(kinds) == 7
    assert all(len(ax.lines) == 4 for ax in fig.axes)
    refined = [dict(r, refine=True) for r in rows if r["model"] == "si_umx_soft"
               and not r["align"]]
    fig = plot_robustness(pd.DataFrame([dict(r, refine=False) for r in rows] + refined))
    assert all(len(ax.lines) == 5 for ax in fig.axes)
    assert sum(ln.get_linestyle() == ":" for ln in fig.axes[0].lines) == 1
    with pytest.raises(ValueError, match="lacks columns"):
        plot_robustness(pd.DataFrame({"kind": ["none"]}))


def test_run_robustness_in_two_processes_writes_the_same_bytes(smoke_profile, smoke_corpus,
                                                               tmp_path):
    """One clip per worker process (guitarsep.parallel): the table is that of one process."""
    cfg = RobustnessConfig(levels=(("onset_jitter", (0.1,)),), models=("mask",), n_clips=2,
                           align=(False,))
    tables = []
    for workers in (1, 2):
        profile = dataclasses.replace(smoke_profile, robustness=cfg,
                                      root=tmp_path / f"w{workers}")
        _, timing = run_robustness(profile, smoke_corpus, progress=False, workers=workers,
                                   models={"mask": _ScoreMask()})
        assert timing["processes"] == workers and timing["rows"] == 2 * 2
        tables.append((profile.results_dir / "robustness.csv").read_bytes())
    assert tables[0] == tables[1]


def test_run_robustness_detuned_recording_keeps_the_nmfs_clean_result(smoke_profile,
                                                                      smoke_corpus):
    """The recording played 40 cents sharp, its notes scaled to its tempo: the score still
    fits it in time (onset error 0), and the score NMF, which reads the tuning
    (tests/test_tuning.py), keeps its clean SI-SDR against the detuned target."""
    from guitarsep.models.checkpoint import SCORE_NMF, load_model

    cfg = RobustnessConfig(levels=(("detune_cents", (40.0,)),), models=("nmf",), n_clips=2,
                           align=(False,))
    profile = dataclasses.replace(smoke_profile, robustness=cfg)
    table, _ = run_robustness(profile, smoke_corpus, progress=False,
                              models={"nmf": load_model(SCORE_NMF).model})
    by_clip = table.pivot_table(index="clip_id", columns="kind", values="si_sdr")
    assert len(by_clip) == 2
    np.testing.assert_allclose(by_clip.detune_cents, by_clip["none"], atol=0.5)
    assert table[table.kind == "detune_cents"].onset_error_ms.max() < 1.0


def test_run_robustness_refined_onsets_rows_for_the_refine_models(smoke_profile, smoke_corpus):
    """``refine_models`` also separate with the onsets refined (`separate --refine-onsets`):
    extra rows with ``refine`` True, only for them, and a jittered score's onsets move back
    towards the true ones."""
    from guitarsep.config import SETTINGS
    from guitarsep.separation.score_nmf import ScoreNmf

    cfg = RobustnessConfig(levels=(("onset_jitter", (0.2,)),), models=("nmf", "mask"),
                           n_clips=2, align=(False,), refine_models=("nmf",))
    profile = dataclasses.replace(smoke_profile, robustness=cfg)
    nmf = ScoreNmf(SETTINGS["modern"], profile.mask)
    table, _ = run_robustness(profile, smoke_corpus, progress=False,
                              models={"nmf": nmf, "mask": _ScoreMask()})
    refined = table[table.refine]
    assert len(table) == 2 * 2 * 3 and set(refined.model) == {"nmf"} and len(refined) == 4
    assert not (table["refine"] & table["align"]).any()
    err = table[table.model == "nmf"].groupby(["kind", "refine"]).onset_error_ms.median()
    assert err[("onset_jitter", True)] < 0.5 * err[("onset_jitter", False)], err
