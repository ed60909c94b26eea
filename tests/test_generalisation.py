"""The pieces of the separator that generalises: drawn training timbres, held-out test
families, the score-prior network, the SI-SDR loss and the out-of-family scoring."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from guitarsep.config import SETTINGS, load_profile
from guitarsep.corpus.variety import (DEV_FAMILIES, HELD_OUT, TRAINING_SOUNDFONTS,
                                      draw_held_out_timbre, draw_training_timbre)
from guitarsep.models import build_model
from guitarsep.models.frontend import Spectrogram, score_pair
from guitarsep.training.loop import training_loss
from guitarsep.vocabulary import OOF_FAMILIES


def test_held_out_families_are_never_drawn_for_training():
    assert tuple(HELD_OUT) == OOF_FAMILIES
    held_fonts = {sf for _, sf in HELD_OUT.values() if sf}
    assert not held_fonts & set(TRAINING_SOUNDFONTS)
    rng = np.random.default_rng(0)
    specs = [draw_training_timbre(rng, f"t{i}") for i in range(400)]
    sources = {s["source"] for s in specs}
    assert sources == {"soundfont", "additive"}            # never karplus
    assert {s["soundfont"] for s in specs if s["source"] == "soundfont"} == set(TRAINING_SOUNDFONTS)
    assert {s["program"] for s in specs if s["source"] == "soundfont"} == set(range(24, 32))
    plugins = {fx[0] for s in specs for fx in s["effects"]}
    # the corpus's unseen-only chains stay unheard in training
    assert not plugins & {"Phaser", "Delay", "LadderFilter", "Clipping"}
    for fam in OOF_FAMILIES:
        s = draw_held_out_timbre(rng, fam, "x")
        assert s["source"] == HELD_OUT[fam][0]
    with pytest.raises(ValueError, match="unknown test family"):
        draw_held_out_timbre(rng, "nope", "x")


def test_dev_families_are_no_test_family():
    """The score NMF's dev clips (scripts/nmf_dev.py) share no sound source with a test family."""
    assert not set(DEV_FAMILIES) & set(HELD_OUT)
    assert not {v for v in DEV_FAMILIES.values()} & {v for v in HELD_OUT.values()}
    rng = np.random.default_rng(0)
    for fam, (source, _) in DEV_FAMILIES.items():
        spec = draw_held_out_timbre(rng, fam, "x")
        assert spec["source"] == source and "synth" in spec


def test_chord_on_chord_dev_set_draws_only_chord_roles():
    """NMF_DEV_CHORDS' pieces (the NMF's unison-heavy dev set) pair two chord parts, in both
    orders; without role_pairs the pieces are those the generator draws itself."""
    from dataclasses import replace

    from guitarsep.corpus.compose import CHORD_PAIRS, generate_idiom_piece
    from guitarsep.corpus.out_of_family import NMF_DEV, NMF_DEV_CHORDS, _pieces

    assert CHORD_PAIRS and all(not {"melody", "riff"} & set(p) for p in CHORD_PAIRS)
    cfg = replace(NMF_DEV_CHORDS, n_pieces=8, piece_seconds=12.0)
    roles = [tuple(pc.meta["roles"]) for pc in _pieces(cfg)]
    assert all(r in CHORD_PAIRS or r[::-1] in CHORD_PAIRS for r in roles)
    assert len(set(roles)) > 1
    first = _pieces(replace(NMF_DEV, n_pieces=1, piece_seconds=12.0))[0]
    own = generate_idiom_piece(np.random.SeedSequence([NMF_DEV.seed, 7, 0]), 12.0)
    assert first.parts[0] == own[0] and first.meta["roles"] == own[2]["roles"]


def _inputs(T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, T, 2049, generator=g)
    mt = torch.rand(2, T, 2049, generator=g) > 0.7
    ma = torch.rand(2, T, 2049, generator=g) > 0.7
    return x, mt, ma


def test_score_prior_network_starts_at_the_score_mask():
    """Untrained, si_umx_prior returns sigmoid(4 (S_t - S_a)) |X|: the score mask as prior."""
    torch.manual_seed(0)
    model = build_model("si_umx_prior", SETTINGS["modern"], hidden_size=16).eval()
    assert model.uses_accomp and model.score_kind == "soft"
    x, mt, ma = _inputs()
    s, sa = score_pair("soft", mt, ma)
    y = model(x, s, sa)
    nb = SETTINGS["modern"].max_bin
    want = torch.sigmoid(4 * (s - sa))[..., :nb] * x[..., :nb]
    assert torch.allclose(y[..., :nb], want, atol=1e-6)
    assert (y[..., nb:] == 0).all()
    # and it learns: one step moves the output
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    loss = ((model(x, s, sa) - x * mt) ** 2).mean()
    loss.backward()
    opt.step()
    model.eval()
    assert not torch.allclose(model(x, s, sa), y)


def test_score_prior_network_is_level_free_in_its_frame_features():
    model = build_model("si_umx_prior", SETTINGS["modern"], hidden_size=16).eval()
    x, mt, ma = _inputs()
    s, sa = score_pair("soft", mt, ma)
    nb = model.max_bin
    x = x + 0.5            # magnitudes well above the log floor (1e-5)
    f1 = model.features(x[..., :nb], s[..., :nb], sa[..., :nb])
    f2 = model.features(10 * x[..., :nb], s[..., :nb], sa[..., :nb])
    assert torch.allclose(f1[..., :nb], f2[..., :nb], atol=1e-3)     # per-frame normalised


def test_sisdr_loss_is_minus_si_sdr_and_scale_free():
    from guitarsep.evaluation.metrics import si_sdr

    st = SETTINGS["modern"]
    spec = Spectrogram(st)
    g = torch.Generator().manual_seed(1)
    target = torch.randn(2, 16 * st.hop, generator=g)
    mix = target + 0.5 * torch.randn(2, 16 * st.hop, generator=g)
    X, T = spec(mix), spec(target)
    est = (T.abs() * 0.9).requires_grad_()
    loss = training_loss("sisdr", est, T.abs(), X, target, spec)
    wav = spec.istft(torch.polar(est.detach(), X.angle()), length=target.shape[-1])
    want = -np.mean([si_sdr(wav[i].numpy(), target[i].numpy()) for i in range(2)])
    assert float(loss.detach()) == pytest.approx(want, abs=1e-2)
    loss.backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
    loss2 = training_loss("sisdr", 3 * est.detach(), T.abs(), X, target, spec)
    assert float(loss2.detach()) == pytest.approx(float(loss.detach()), abs=1e-3)
    with pytest.raises(ValueError, match="unknown loss"):
        training_loss("l1", est, T.abs(), X, target, spec)


def test_ship_profile_uses_the_default_test_clips_and_variety():
    d, s = load_profile("default"), load_profile("ship")
    assert s.corpus.seed == d.corpus.seed and s.corpus.counts("n_generated")["test"] == \
        d.corpus.counts("n_generated")["test"]
    assert s.corpus.clips_per_cell == d.corpus.clips_per_cell
    assert s.corpus.n_music21 == d.corpus.n_music21
    assert s.corpus.train_timbres == "variety" and d.corpus.train_timbres == "table"
    assert [m.name for m in s.models] == ["si_umx_prior"]


def test_out_of_family_set_builds_and_scores_on_smoke(smoke_profile):
    from guitarsep.corpus.out_of_family import build_out_of_family
    from guitarsep.evaluation.out_of_family import against_score_only, score_models

    oof = build_out_of_family(smoke_profile, progress=False)
    rows = oof.clips(split="test")
    cells = set(zip(rows.scenario, rows.combination))
    assert cells == {(f, p) for f in OOF_FAMILIES for p in ("diff", "same")}
    same = rows[rows.combination == "same"]
    assert (same.target_timbre == same.other_timbre).all()
    diff = rows[rows.combination == "diff"]
    assert (diff.target_timbre != diff.other_timbre).all()
    clip = oof.clip(rows.clip_id.iloc[0])
    assert clip.target.std() > 1e-4 and clip.other.std() > 1e-4
    assert build_out_of_family(smoke_profile, progress=False).root == oof.root   # cached
    refs = {"oracle_irm": "oracle_irm", "score_only": "score_only"}
    scores = score_models(oof, refs, mask=smoke_profile.mask, progress=False, workers=2)
    in_one = score_models(oof, refs, mask=smoke_profile.mask, progress=False, workers=1)
    pd.testing.assert_frame_equal(in_one, scores)          # processes change the wall time only
    verdict = against_score_only(scores, "oracle_irm")
    assert len(verdict) == 6
    assert (verdict.gain_db > 0).all()       # the oracle beats the score mask in every cell


def test_performance_departs_from_the_score_but_keeps_its_notes():
    from guitarsep.corpus.variety import draw_performance, perform
    from guitarsep.score.notes import Notes

    chord = Notes.from_arrays([1.0, 1.0, 1.0, 2.0], [1.5, 1.5, 1.5, 2.5], [40, 45, 50, 60])
    perf = dict(draw_performance(np.random.default_rng(3)), jitter_s=0.0, strum_s=0.01)
    played = perform(chord, perf)
    assert len(played) == 4 and sorted(played.pitch) == sorted(chord.pitch)
    strum = np.sort(played.onset[played.pitch < 60])
    assert np.allclose(np.diff(strum), 0.01)                 # one string after another
    assert perform(chord, perf) == played                    # seeded
    assert perform(chord, None) is chord


def test_shipped_model_is_the_score_prior_network_with_its_card():
    """The ship profile's score-prior network is shipped (``--model si_umx_prior``), under
    20 MB, with the model card scripts/ship_model.py wrote from its test scores. It is not
    the default: it did not beat si_umx_soft on the corpus's test clips (its card)."""
    from guitarsep import RESOURCES
    from guitarsep.models.checkpoint import DEFAULT_MODEL, load_model

    lm = load_model("si_umx_prior")
    assert lm.name == "si_umx_prior" and DEFAULT_MODEL != "si_umx_prior"
    assert (RESOURCES / "si_umx_prior.pt").stat().st_size < 20e6
    side = json.loads((RESOURCES / "si_umx_prior.json").read_text())
    assert side["profile"] == "ship" and side["training_run"]["steps"] > 0
    card = (RESOURCES / "si_umx_prior.md").read_text()
    for needle in ("## Data", "## Training", "oof_sample", "oof_fm", "oof_karplus",
                   "score_only", "oracle_irm", "corpus test"):
        assert needle in card, needle


def test_default_model_is_the_score_nmf_with_its_card():
    """``guitarsep separate`` defaults to the score-informed NMF (no file, no weights); its
    card (scripts/card_score_nmf.py) has a median for every test cell and the verdict."""
    from guitarsep import RESOURCES
    from guitarsep.models.checkpoint import DEFAULT_MODEL, SCORE_NMF, load_model

    lm = load_model(None)
    assert DEFAULT_MODEL == SCORE_NMF and lm.name == SCORE_NMF and lm.path is None
    assert lm.model.score_kind == "notes"
    card = (RESOURCES / "score_nmf.md").read_text()
    for needle in ("oof_sample", "oof_fm", "oof_karplus", "score_only", "oracle_irm",
                   "corpus test", "| d | ag+ag |", "## Against the score-only mask"):
        assert needle in card, needle


def test_generated_tables_replace_only_their_markers(tmp_path):
    """scripts/ablations.py and scripts/nmf_dev.py rewrite their table in docs/ablations.md
    and leave the hand-written text around it as it was."""
    from guitarsep.io import write_between_markers

    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- t:begin -->\nold\n<!-- t:end -->\nafter\n")
    write_between_markers(doc, ("<!-- t:begin -->", "<!-- t:end -->"), "| new |")
    assert doc.read_text() == "intro\n<!-- t:begin -->\n| new |\n<!-- t:end -->\nafter\n"
    with pytest.raises(ValueError):
        write_between_markers(doc, ("<!-- u:begin -->", "<!-- u:end -->"), "x")


def test_dev_script_command_line_writes_csv_and_table(tmp_path, capsys):
    """run_doc_table (the body of scripts/nmf_dev.py, nmf_diagnose.py, oof_unison.py): the
    per-clip CSV, the table between the markers of --doc, both printed lines."""
    import pandas as pd

    from guitarsep.io import run_doc_table

    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- t:begin -->\nold\n<!-- t:end -->\n")
    scores = pd.DataFrame({"clip_id": ["a", "b"], "si_sdr": [1.23456, -2.0]})
    out = run_doc_table(["--doc", str(doc)], "Title line.\nmore", lambda: scores,
                        lambda s: [f"| median | {s.si_sdr.median():.2f} |"],
                        tmp_path / "per_clip.csv", ("<!-- t:begin -->", "<!-- t:end -->"))
    assert out is scores
    assert (tmp_path / "per_clip.csv").read_text() == "clip_id,si_sdr\na,1.2346\nb,-2.0000\n"
    assert doc.read_text() == "intro\n<!-- t:begin -->\n| median | -0.38 |\n<!-- t:end -->\n"
    assert "| median | -0.38 |" in capsys.readouterr().out


def test_unison_share_counts_time_on_one_pitch_once():
    """corpus.stats.unison_share (scripts/oof_unison.py): the target's time on a pitch while
    the other part holds it, over the target's time per pitch; a part's own overlapping notes
    count once, other pitches not at all."""
    from guitarsep.corpus.stats import unison_share
    from guitarsep.score import Notes

    target = Notes.from_arrays([0.0, 1.0, 0.5, 1.5], [1.0, 2.0, 1.5, 3.0], [60, 60, 60, 64])
    other = Notes.from_arrays([0.5, 2.5, 0.0], [1.5, 4.0, 9.0], [60, 64, 62])
    # pitch 60: held 0-2 s (three notes merged), other 0.5-1.5 -> 1 s; pitch 64: 1.5 of 0.5 s
    assert unison_share(target, other) == pytest.approx((1.0 + 0.5) / (2.0 + 1.5))
    assert unison_share(target, target) == pytest.approx(1.0)
    empty = Notes.from_arrays([], [], [])
    assert unison_share(target, empty) == 0.0 and unison_share(empty, other) == 0.0


def test_unison_table_joins_the_committed_scores():
    """data/results/default/oof_unison.csv (scripts/oof_unison.py) holds, for every
    out-of-family clip, the SI-SDR of generalization_scores.csv, not numbers of its own."""
    import pandas as pd

    results = load_profile("default").results_dir
    unison = pd.read_csv(results / "oof_unison.csv")
    oof = unison[unison.clip_set == "out of family"].set_index("clip_id")
    scores = pd.read_csv(results / "generalization_scores.csv")
    nmf = scores[scores.model == "shipped-score_nmf"].set_index("clip_id").si_sdr
    assert len(oof) == 144 and oof.unison.between(0, 1).all()
    np.testing.assert_allclose(oof.nmf, nmf.loc[oof.index], atol=1e-9)


def test_nmf_card_is_current_with_the_code_and_the_committed_tables():
    """lib/guitarsep/resources/score_nmf.md (scripts/card_score_nmf.py) shows the parameters the
    code runs with and the medians of the committed result tables: a card left behind by a
    change of NmfParams or by a new reproduce fails here."""
    import importlib.util
    from pathlib import Path

    from guitarsep import RESOURCES
    from guitarsep.evaluation.model_card import cell_table, verdict_table
    from guitarsep.models.checkpoint import SCORE_NMF, load_model

    path = Path(__file__).parents[1] / "scripts" / "card_score_nmf.py"
    spec = importlib.util.spec_from_file_location("card_score_nmf", path)
    card_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(card_script)
    scores = card_script.card_scores(load_profile("default"))
    card = (RESOURCES / f"{SCORE_NMF}.md").read_text()
    assert f"`{json.dumps(load_model(SCORE_NMF).hparams)}`" in card
    assert "\n".join(cell_table(scores, card_script.COLUMNS)) in card
    assert "\n".join(verdict_table(scores, card_script.SHIPPED)) in card
