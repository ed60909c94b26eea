"""The synthetic corpus: layout, scenario rules, splits, determinism, cache, errors, voicings.

Uses the session's smoke corpus (``conftest.smoke_corpus``, built once) plus a second smoke
build in another temporary root for the determinism check.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from guitarsep.vocabulary import COMBINATIONS, SCENARIO_COMBINATIONS, SCENARIOS
import guitarsep.corpus as C
from guitarsep.corpus import build as K
from guitarsep.corpus import compose, render
from guitarsep.corpus import timbres as T
from guitarsep.corpus.timbres import timbre_sides
from guitarsep.corpus.layout import MANIFEST_COLUMNS, PIECES_COLUMNS, RENDERS_COLUMNS
from guitarsep.config import load_profile
from guitarsep.score import Notes

OWN_FILES = ("pieces.csv", "renders.csv", "manifest.csv")


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every file the corpus build owns (tables, notes, stems, clips)."""
    files = [root / f for f in OWN_FILES]
    for d in ("notes", "stems", "clips"):
        files += sorted(p for p in (root / d).rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def second_build(tmp_path_factory):
    """The smoke corpus built again into another root (for determinism and resume tests)."""
    prof = load_profile("smoke", root=tmp_path_factory.mktemp("smoke_again"))
    return prof, C.build_corpus(prof, progress=False)


def test_corpus_modules_do_not_import_torch():
    code = ("import sys, guitarsep.corpus, guitarsep.corpus.build, guitarsep.corpus.clips, "
            "guitarsep.corpus.compose, guitarsep.corpus.layout, guitarsep.corpus.render, "
            "guitarsep.corpus.stats, guitarsep.corpus.timbres; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_timbre_table():
    tt = T.load_timbres()
    assert list(tt.columns) == ["timbre_id", "family", "soundfont", "program", "chain", "pool"]
    seen, unseen = tt[tt.pool == "seen"], tt[tt.pool == "unseen"]
    assert len(seen) >= 12 and len(unseen) >= 6
    for pool in (seen, unseen):
        assert set(pool.family) == {"ag", "eg"}
    assert set(tt[tt.family == "ag"].program) <= {24, 25}
    assert set(tt[tt.family == "eg"].program) <= {26, 27, 28, 29, 30}
    assert not set(seen.chain) & set(T.UNSEEN_CHAINS)          # unseen chains never train
    assert set(seen.soundfont) == {"TimGM6mb.sf2", "FluidR3_GM.sf2"}
    for sf in tt.soundfont.unique():
        assert Path(T.soundfont_path(sf)).is_file()


def test_layout_and_manifest_schema(smoke_corpus, smoke_profile):
    c, cfg = smoke_corpus, smoke_profile.corpus
    assert list(c.pieces.columns) == PIECES_COLUMNS
    assert list(c.renders.columns) == RENDERS_COLUMNS
    assert list(c.manifest.columns) == MANIFEST_COLUMNS
    n_cells = sum(len(v) for v in SCENARIO_COMBINATIONS.values())
    assert len(c.manifest) == cfg.valid_clips + n_cells * cfg.clips_per_cell
    assert c.manifest.clip_id.is_unique
    assert set(c.manifest.scenario) == {"valid", *SCENARIOS}
    assert set(c.manifest.split) == {"valid", "test"}
    assert (c.manifest[c.manifest.scenario == "valid"].split == "valid").all()
    assert set(c.manifest.combination) <= set(COMBINATIONS)
    for col in ("target_audio", "other_audio", "target_notes", "other_notes"):
        assert all((c.root / p).is_file() for p in c.manifest[col])
    assert all((c.root / p).is_file() for p in c.renders.path)
    for pid in c.pieces.piece_id:
        for part in (0, 1):
            assert c.notes_path(pid, part).is_file()
    assert (c.root / "corpus.json").is_file()
    assert c.info["key"] == C.corpus_key(smoke_profile)["key"]


def test_clip_object(smoke_corpus, smoke_profile):
    cfg = smoke_profile.corpus
    for cid in smoke_corpus.manifest.clip_id[:4]:
        clip = smoke_corpus.clip(cid)
        n = int(round(cfg.clip_seconds * cfg.sr))
        assert clip.mix.dtype == np.float32 and clip.mix.shape == (n,)
        assert clip.target.shape == clip.other.shape == (n,)
        assert np.allclose(clip.mix, clip.target + clip.other)
        assert clip.sr == cfg.sr
        assert len(clip.target_notes) >= K.MIN_CLIP_NOTES
        assert len(clip.accomp_notes) >= K.MIN_CLIP_NOTES
        assert clip.target_notes.offset.max() <= cfg.clip_seconds + 1e-6
        assert 0.0 < np.abs(clip.target).max() < 1.0
        row = smoke_corpus.manifest.set_index("clip_id").loc[cid]
        assert isinstance(clip, C.Clip) and clip.clip_id == cid
        for col in ("scenario", "combination", "target_timbre", "other_timbre"):
            assert getattr(clip, col) == row[col] == clip.row[col]


def test_scenario_rules(smoke_corpus):
    m = smoke_corpus.manifest
    pool = smoke_corpus.timbres.set_index("timbre_id").pool
    fam = smoke_corpus.timbres.set_index("timbre_id").family
    for r in m.itertuples(index=False):
        pt, po = pool[r.target_timbre], pool[r.other_timbre]
        if r.scenario in ("seen", "valid"):
            assert pt == po == "seen" and r.target_timbre != r.other_timbre
        elif r.scenario == "a":
            assert (pt, po) == ("seen", "unseen")
        elif r.scenario == "b":
            assert (pt, po) == ("unseen", "seen")
        elif r.scenario == "c":
            assert pt == po == "unseen" and r.target_timbre != r.other_timbre
        elif r.scenario == "d":
            assert pt == "unseen" and r.target_timbre == r.other_timbre
            assert r.combination in ("ag+ag", "eg+eg")
        families = sorted([fam[r.target_timbre], fam[r.other_timbre]])
        assert "+".join(families) == r.combination
    # the blind model's fixed roles: a seen target is from the target side, a seen other
    # guitar from the other side, in every test scenario (validation clips draw from all)
    sides = timbre_sides(smoke_corpus.timbres)
    test = m[m.split == "test"]
    for r in test.itertuples(index=False):
        assert sides.get(r.target_timbre, "target") == "target", r.clip_id
        assert sides.get(r.other_timbre, "other") == "other", r.clip_id
    # ag+eg: the target is acoustic in some clips and electric in others
    mixed = m[(m.combination == "ag+eg") & (m.scenario != "valid")]
    assert set(mixed.target_timbre.map(fam)) == {"ag", "eg"}


def test_splits_are_disjoint(smoke_corpus):
    c = smoke_corpus
    assert c.pieces.piece_id.is_unique
    split = c.pieces.set_index("piece_id").split
    assert (c.renders.piece_id.map(split) == c.renders.split).all()
    assert set(c.renders.split) <= {"train", "valid"}
    assert (c.renders.pool == "seen").all()
    assert (c.manifest.piece_id.map(split) == c.manifest.split).all()
    # music21 works: one split per work
    m21 = c.pieces[c.pieces.source == "music21"]
    works = m21.piece_id.str.split("_", n=3).str[3]
    assert works.is_unique
    # each training part is rendered in both families
    for (_, _), g in c.renders.groupby(["piece_id", "part"]):
        assert set(g.family) == {"ag", "eg"} and g.timbre_id.is_unique


def test_compose_splits_never_share_music21_works():
    cfg = load_profile("default", root="/tmp").corpus
    import dataclasses
    cfg = dataclasses.replace(cfg, n_generated=(("train", 0), ("valid", 0), ("test", 0)),
                              n_music21=(("train", 6), ("valid", 3), ("test", 3)),
                              piece_seconds=10.0)
    pieces = compose.compose_pieces(cfg)
    works = [p.meta["work"] for p in pieces]
    assert len(works) == len(set(works)) == 12
    for p in pieces:
        for part in p.parts:
            assert len(part) and part.pitch.min() >= 40 and part.pitch.max() <= 88


def test_build_is_deterministic(smoke_corpus, second_build):
    _, again = second_build
    a, b = _digest(smoke_corpus.root), _digest(again.root)
    assert a.keys() == b.keys() and len(a) > 20
    diff = [k for k in a if a[k] != b[k]]
    assert not diff, f"files differ between two builds: {diff[:5]}"


def test_rebuild_reuses_cache(smoke_corpus, smoke_profile):
    t = time.time()
    again = C.build_corpus(smoke_profile, progress=False)
    assert time.time() - t < 2.0
    assert again.info["built_at"] == smoke_corpus.info["built_at"]


def test_interrupted_build_resumes(second_build):
    prof, c = second_build
    victim = c.root / c.renders.path.iloc[0]
    before = _digest(c.root)
    (c.root / "corpus.json").unlink()           # as if the build stopped before the end
    victim.unlink()
    (c.root / "stems" / ".half_written.flac.tmp123").write_bytes(b"junk")
    c2 = C.build_corpus(prof, progress=False)
    assert c2.info["rendered"] == 1              # only the missing file was rendered
    assert _digest(c2.root) == before
    assert not list(c2.root.rglob(".*.tmp*"))


def test_render_errors_name_the_timbre():
    notes = Notes.from_arrays([0.1, 0.5], [0.4, 0.9], [60, 64], [90, 90])
    bad_prog = dict(timbre_id="x99", soundfont="TimGM6mb.sf2", program=200, chain="clean")
    with pytest.raises(render.RenderError, match=r"x99.*program 200|program 200.*x99"):
        render.render_part(notes, bad_prog, duration=1.0)
    bad_sf = dict(timbre_id="x98", soundfont="NoSuchFont.sf2", program=24, chain="clean")
    with pytest.raises(render.RenderError, match="x98.*NoSuchFont"):
        render.render_part(notes, bad_sf, duration=1.0)
    ok = dict(timbre_id="x97", soundfont="TimGM6mb.sf2", program=24, chain="clean")
    with pytest.raises(render.RenderError, match="x97.*silent"):
        render.render_part(Notes.empty(), ok, duration=1.0)
    with pytest.raises(ValueError, match="unknown effects chain"):
        T.apply_chain(np.zeros(100, np.float32), 44100, "wah_wah_9000")


def test_render_does_not_depend_on_history():
    tt = T.load_timbres().set_index("timbre_id")
    p0, p1, _ = compose.generate_idiom_piece(5, 4.0, roles=("strum", "melody"))
    row = dict(tt.loc["s04"], timbre_id="s04")
    a = render.render_part(p0, row, duration=4.0)
    render.render_part(p1, dict(tt.loc["s12"], timbre_id="s12"), duration=3.3)
    b = render.render_part(p0, row, duration=4.0)
    assert np.array_equal(a, b)
    assert abs(render.loudness_db(a, 44100) - (-20.0)) < 0.01
    assert np.abs(a).max() <= render.PEAK_MAX


def test_voicings_are_playable():
    for root in range(12):
        for q in compose.QUALITIES:
            vs = compose.chord_voicings(root, q)
            assert vs, (root, q)
            for v in vs:
                assert compose.is_playable(v)
                fretted = [f for f in v if f is not None and f > 0]
                assert sum(f is not None for f in v) <= 6
                assert not fretted or max(fretted) - min(fretted) <= compose.MAX_SPAN
                assert all(0 <= f <= compose.MAX_FRET for f in v if f is not None)
                assert compose.voicing_pitches(v)[0] % 12 == root
    assert not compose.is_playable((1, 6, None, None, None, None))      # span 5
    assert not compose.is_playable((0, None, 2, None, None, None))      # gap
    # every shape the generator used
    for seed in range(20):
        for role in ("strum", "arpeggio", "bass_chords", "power"):
            _, _, meta = compose.generate_idiom_piece(seed, 8.0, roles=(role, "melody"))
            assert meta["voicings"][0]
            assert all(compose.is_playable(v) for v in meta["voicings"][0])


def test_generated_pieces_follow_the_rules():
    for seed in range(15):
        p0, p1, meta = compose.generate_idiom_piece(seed, 20.0)
        assert meta["meter"] in ("3/4", "4/4", "6/8") and 60 <= meta["tempo"] <= 180
        for p in (p0, p1):
            assert len(p) > 0
            assert p.pitch.min() >= compose.PITCH_MIN and p.pitch.max() <= compose.PITCH_MAX
            assert p.onset.min() >= 0 and p.offset.max() <= 20.0 + 1e-9
            for pitch in np.unique(p.pitch):     # no overlapping notes of one pitch
                sel = p.pitch == pitch
                assert np.all(p.offset[sel][:-1] <= p.onset[sel][1:] + 1e-9)
    a = compose.generate_idiom_piece(3, 10.0)
    b = compose.generate_idiom_piece(3, 10.0)
    assert a[0] == b[0] and a[1] == b[1]


def test_onset_agreement(smoke_corpus):
    res = C.onset_agreement(smoke_corpus, n_clips=6, seed=0)
    assert res["n_onsets"] > 20
    assert res["median_ms"] < 25.0


def test_corpus_stats(smoke_corpus):
    s = C.corpus_stats(smoke_corpus)
    assert s["hours"].loc["train", "stems_h"] > 0
    assert s["pitch_hist"].values.sum() > 0
    assert set(s["pitch_hist"].columns) == {"ag", "eg"}
    assert len(s["notes_per_second"]) == 2 * len(smoke_corpus.pieces)
