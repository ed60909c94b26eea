"""Building the synthetic two-guitar corpus: compose, split, plan, render, cut evaluation clips,
cache (built and explored in 01_data.ipynb; ``guitarsep build-corpus`` calls
:func:`build_corpus`). No torch import here. The files it writes are described in
:mod:`guitarsep.corpus.layout`; :class:`guitarsep.corpus.Corpus` reads them.

The build, in order (:func:`build_corpus`): return a complete corpus with the current key at
once; otherwise prepare the folder (wipe another key's files, drop temporaries, stamp the key),
compose the pieces and write their notes, plan the train/valid renders and the valid/test clips
(every random choice is made here, in the main process), render them in worker processes, then
write the tables and ``corpus.json`` last.

Decisions (documented here and in 01_data.ipynb):

- **Splits are by piece.** Generated pieces draw per-split seeds; music21 works are dealt
  to one split each (``compose.compose_pieces``).
- **Training renders.** Every part of a train/valid piece is rendered in
  ``renders_per_part`` *seen* timbres, half acoustic and half electric (both families always
  appear). Part 1 shares one of part 0's timbres and draws the others anew, so a training
  remix can pair the two parts in the same timbre (``TrainConfig.p_same_timbre``) or in two
  different ones.
- **Training variety** (``CorpusConfig.train_timbres = "variety"``, the ``ship`` profile):
  every training rendering draws its own timbre (``corpus.variety``: any guitar program of
  the two training soundfonts or our additive synthesis, with drawn effects), listed in
  ``drawn_timbres.json``; validation and test clips keep the table's timbres.
- **Test clips** (``clips_per_cell`` per scenario x combination): scenario ``seen`` = two
  different seen timbres, the target's from the target side of the seen pool and the other's
  from the other side (``timbres.timbre_sides``, the blind model's fixed roles; ``a`` and ``b``
  follow it too); ``a`` = target seen, other unseen; ``b`` = target unseen, other
  seen; ``c`` = two different unseen timbres; ``d`` = one unseen timbre for both (ag+ag and
  eg+eg only). The combination gives the two timbres' families; in ``ag+eg`` the target is
  acoustic in even-numbered clips and electric in odd ones. **Valid clips** (scenario
  ``valid``) are like ``seen`` clips cut from valid pieces, cycling through the three
  combinations; odd-numbered ``ag+ag``/``eg+eg`` ones (8 of 24 in ``default``) use one seen
  timbre for both parts, so the validation set has same-timbre pairs.
- **A clip** is a ``clip_seconds`` window of a test (valid) piece, starting on a 10 ms grid
  (an integer number of samples), chosen so both parts play at least 4 notes in it. Only the
  window is rendered (cost proportional to the clip), with up to 2 s of pre-roll that is
  rendered and dropped, so notes ringing into the window and reverb tails are right.
  ``target.txt``/``other.txt`` hold ``Notes.window(start, start + clip_seconds)``; a note held
  across the start appears with onset 0.
- **Cache.** The key is ``config_hash(profile.corpus)`` + the timbre table hash +
  :data:`CORPUS_VERSION`. A complete corpus with the same key is returned at once; a build
  with another key wipes the corpus folder first. Every file is written under a temporary name
  and ``os.replace``d, so an interrupted build leaves only complete files, which a rerun keeps.
- **Determinism.** Every random choice comes from ``numpy.random.SeedSequence`` built from
  ``CorpusConfig.seed`` and the item's indices, renders do not depend on process history
  (``render.py``), so the same config gives byte-identical CSVs, notes and FLAC files.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from guitarsep.config import Profile, config_hash
from guitarsep.corpus.clips import Corpus, load_corpus
from guitarsep.corpus.compose import Piece, compose_pieces
from guitarsep.corpus.layout import (MANIFEST_COLUMNS, PIECES_COLUMNS, RENDERS_COLUMNS,
                                     clip_files, notes_file, stem_file)
from guitarsep.corpus.render import render_part
from guitarsep.corpus.timbres import load_timbres, timbre_sides, timbre_table_hash
from guitarsep.corpus.variety import draw_training_timbre, timbre_family
from guitarsep.io import remove_stale_temporaries, write_audio, write_text_atomic
from guitarsep.parallel import run_tasks, worker_count
from guitarsep.score import Notes, save_notes
from guitarsep.vocabulary import COMBINATIONS, SCENARIO_COMBINATIONS, SCENARIOS

__all__ = ["CORPUS_VERSION", "PREROLL_S", "MIN_CLIP_NOTES", "build_corpus", "corpus_key"]

CORPUS_VERSION = 3          # bump when composing/rendering code changes the output
PREROLL_S = 2.0
MIN_CLIP_NOTES = 4
# what a rebuild with a new key deletes; "cache" holds data.py's arrays derived from the corpus
_OWNED = ("pieces.csv", "renders.csv", "manifest.csv", "corpus.json", "build.json", "notes",
          "stems", "clips", "cache", "drawn_timbres.json")


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    write_text_atomic(path, df.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


# ---------------------------------------------------------------------------------------------
# The cache key
# ---------------------------------------------------------------------------------------------

def corpus_key(profile: Profile) -> dict:
    """What a corpus depends on: ``{"key", "config_hash", "timbres_hash", "version"}``.
    The cache key of :func:`build_corpus` (01_data.ipynb, ``guitarsep build-corpus``)."""
    ch, th = config_hash(profile.corpus), timbre_table_hash()
    return {"key": f"{ch}-{th}-v{CORPUS_VERSION}", "config_hash": ch, "timbres_hash": th,
            "version": CORPUS_VERSION}


# ---------------------------------------------------------------------------------------------
# Planning (main process, all random choices)
# ---------------------------------------------------------------------------------------------

def _ss(cfg, *ints) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(cfg.seed), *[int(i) for i in ints]])


def _plan_renders(cfg, pieces: list[Piece], timbres: pd.DataFrame
                  ) -> tuple[list[dict], dict[str, dict]]:
    """The train/valid renderings and the timbre specs drawn for them (``{}`` unless
    ``cfg.train_timbres == "variety"``). A step of :func:`build_corpus` (01_data.ipynb)."""
    seen = timbres[timbres.pool == "seen"]
    fam_ids = {f: sorted(seen[seen.family == f].timbre_id) for f in ("ag", "eg")}
    n = int(cfg.renders_per_part)
    rows, drawn = [], {}
    for pi, piece in enumerate(pieces):
        if piece.split not in ("train", "valid"):
            continue
        rng = np.random.default_rng(_ss(cfg, 2, pi))
        if piece.split == "train" and cfg.train_timbres == "variety":
            chosen = _draw_variety(rng, piece, n, drawn)
        else:
            chosen = _pick_table_timbres(rng, n, fam_ids)
        for part in (0, 1):
            for tid in chosen[part]:
                rows.append(dict(piece_id=piece.piece_id, part=part, timbre_id=tid,
                                 split=piece.split,
                                 path=stem_file(piece.piece_id, part, tid)))
    df = pd.DataFrame(rows, columns=["piece_id", "part", "timbre_id", "split", "path"])
    meta = timbres.set_index("timbre_id")
    df["family"] = df.timbre_id.map(lambda t: timbre_family(drawn[t]) if t in drawn
                                    else meta.family[t])
    df["pool"] = df.timbre_id.map(lambda t: "seen" if t in drawn else meta.pool[t])
    return df[RENDERS_COLUMNS].to_dict("records"), drawn


def _pick_table_timbres(rng, n: int, fam_ids: dict) -> list[list[str]]:
    """``n`` seen table timbres per part, families alternating; part 1 shares one."""
    first = ["ag", "eg"][int(rng.integers(2))]
    fams = [(["ag", "eg"] if first == "ag" else ["eg", "ag"])[k % 2] for k in range(n)]
    chosen = []
    for part in (0, 1):
        picks = []
        keep = int(rng.integers(n)) if part == 1 else -1     # part 1 shares one timbre
        for k, fam in enumerate(fams):
            if k == keep:
                picks.append(chosen[0][k])
                continue
            pool = [t for t in fam_ids[fam] if t not in picks]
            picks.append(pool[int(rng.integers(len(pool)))])
        chosen.append(picks)
    return chosen


def _draw_variety(rng, piece: Piece, n: int, drawn: dict) -> list[list[str]]:
    """``n`` drawn timbres (``corpus.variety``) per part; part 1 shares one of part 0's, so
    a remix can pair the parts in one timbre."""
    chosen = []
    for part in (0, 1):
        keep = int(rng.integers(n)) if part == 1 else -1
        picks = []
        for k in range(n):
            if k == keep:
                picks.append(chosen[0][k])
                continue
            tid = f"v{piece.piece_id}p{part}r{k}"
            drawn[tid] = draw_training_timbre(rng, tid)
            picks.append(tid)
        chosen.append(picks)
    return chosen


def _pick_timbres(rng, scenario: str, fam_t: str, fam_o: str, timbres: pd.DataFrame):
    """(target timbre, other timbre) following the scenario rules. In the test scenarios a
    seen target comes from the target side and a seen other guitar from the other side
    (``timbres.timbre_sides``: the blind model's convention); validation clips draw from the
    whole seen pool. A step of :func:`build_corpus` (01_data.ipynb)."""
    sides = timbre_sides(timbres)

    def draw(pool, fam, side=None, exclude=()):
        c = sorted(t for t in timbres[(timbres.pool == pool) & (timbres.family == fam)].timbre_id
                   if t not in exclude and (side is None or sides.get(t) == side))
        return c[int(rng.integers(len(c)))]

    if scenario == "valid":
        t = draw("seen", fam_t)
        return t, draw("seen", fam_o, exclude=(t,))
    if scenario == "seen":
        return draw("seen", fam_t, "target"), draw("seen", fam_o, "other")
    if scenario == "a":
        return draw("seen", fam_t, "target"), draw("unseen", fam_o)
    if scenario == "b":
        return draw("unseen", fam_t), draw("seen", fam_o, "other")
    if scenario == "c":
        t = draw("unseen", fam_t)
        return t, draw("unseen", fam_o, exclude=(t,))
    if scenario == "d":
        t = draw("unseen", fam_t)
        return t, t
    raise ValueError(f"unknown scenario {scenario!r}")


def _pick_window(rng, piece: Piece, seconds: float):
    """Clip start (10 ms grid) where both parts have >= MIN_CLIP_NOTES onsets.
    A step of :func:`build_corpus` (01_data.ipynb)."""
    dur = piece.duration
    hi = max(dur - seconds, 0.0)
    for _ in range(100):
        start = round(float(rng.uniform(0.0, hi)), 2) if hi > 0 else 0.0
        ok = all(np.sum((p.onset >= start) & (p.onset < start + seconds)) >= MIN_CLIP_NOTES
                 for p in piece.parts)
        if ok:
            return start
    return None


def _window_in(rng, pieces: list[Piece], order: int, seconds: float):
    """``(piece, start)``: the first piece from ``order`` on (round robin) with a window
    where both parts play (:func:`_pick_window`); ``(None, None)`` when none has one.
    A step of :func:`build_corpus` and of ``out_of_family.build_out_of_family``."""
    for j in range(len(pieces)):
        piece = pieces[(order + j) % len(pieces)]
        start = _pick_window(rng, piece, seconds)
        if start is not None:
            return piece, start
    return None, None


def _plan_clips(cfg, pieces: list[Piece], timbres: pd.DataFrame) -> list[dict]:
    by_split = {s: [p for p in pieces if p.split == s] for s in ("valid", "test")}
    cells = [("valid", "valid", COMBINATIONS[k % 3], k) for k in range(int(cfg.valid_clips))]
    for si, scen in enumerate(SCENARIOS):
        for comb in SCENARIO_COMBINATIONS[scen]:
            cells += [("test", scen, comb, k) for k in range(int(cfg.clips_per_cell))]
    rows = []
    for split, scen, comb, k in cells:
        cand = by_split[split]
        if not cand:
            raise ValueError(f"no {split} pieces to cut {scen} clips from; raise n_generated "
                             f"or n_music21 for '{split}'")
        sc_i = (("valid",) + SCENARIOS).index(scen)
        ss = _ss(cfg, 3, sc_i, COMBINATIONS.index(comb), k)
        seed = int(ss.generate_state(1)[0])
        rng = np.random.default_rng(ss)
        fam_a, fam_b = comb.split("+")
        fam_t, fam_o = (fam_a, fam_b) if (fam_a == fam_b or k % 2 == 0) else (fam_b, fam_a)
        tt, ot = _pick_timbres(rng, scen, fam_t, fam_o, timbres)
        if scen == "valid" and fam_a == fam_b and k % 2 == 1:
            # a third of the validation clips pair a part with itself in one timbre, as the
            # training remix does (p_same_timbre), so validation covers the same-timbre case
            ot = tt
        # spread clips over pieces: a drawn offset, then round robin over the split's pieces
        order = (k + int(rng.integers(len(cand)))) % len(cand)
        target_part = int(rng.integers(2))
        piece, start = _window_in(rng, cand, order, cfg.clip_seconds)
        if start is None:
            raise ValueError(f"no {split} piece has a {cfg.clip_seconds} s window where both "
                             f"parts play >= {MIN_CLIP_NOTES} notes")
        clip_id = (f"valid_{k:03d}" if scen == "valid"
                   else f"{scen}_{comb.replace('+', '')}_{k:03d}")
        rows.append(dict(clip_id=clip_id, split=split, scenario=scen, combination=comb,
                         piece_id=piece.piece_id, target_part=target_part,
                         target_timbre=tt, other_timbre=ot, **clip_files(clip_id),
                         seed=seed, start_s=start, duration_s=float(cfg.clip_seconds)))
    return rows


# ---------------------------------------------------------------------------------------------
# Workers (run in joblib processes; no shared state but the per-process synth cache)
# ---------------------------------------------------------------------------------------------

def _worker_setup() -> None:
    """loky restarts a worker whose memory grew by > 300 MB since its first task, taking it
    for a leak; our workers grow on purpose (each caches up to three loaded soundfonts, a few
    hundred MB), and a restart would reload them. Raise that bound in this worker.
    A step of :func:`build_corpus` (01_data.ipynb)."""
    try:
        from joblib.externals.loky import process_executor
        process_executor._MAX_MEMORY_LEAK_SIZE = max(process_executor._MAX_MEMORY_LEAK_SIZE,
                                                     int(8e9))
    except Exception:        # another joblib layout: a restart only costs time
        pass


def _task_stem(root: str, rel: str, notes: Notes, timbre: dict, sr: int, duration: float,
               lufs: float) -> dict:
    _worker_setup()
    path = Path(root) / rel
    if path.exists():
        return dict(path=rel, skipped=True)
    audio, info = render_part(notes, timbre, sr, duration=duration, target_lufs=lufs,
                              return_info=True)
    write_audio(path, audio, sr, subtype="PCM_16")
    return dict(path=rel, skipped=False, peak_scaled=int(info["peak_scale"] < 1.0))


def _render_window(notes: Notes, timbre: dict, sr: int, start: float, seconds: float,
                   lufs: float) -> np.ndarray:
    pre = min(PREROLL_S, start)
    t0 = start - pre
    audio, info = render_part(notes.window(t0, start + seconds), timbre, sr,
                              duration=pre + seconds, skip=pre, target_lufs=lufs,
                              return_info=True)
    n = int(round(seconds * sr))
    if len(audio) != n:           # rounding of pre-roll and clip length in samples
        audio = np.pad(audio, (0, max(0, n - len(audio))))[:n]
    return audio, int(info["peak_scale"] < 1.0)


def _task_clip(root: str, row: dict, parts: tuple, timbres: dict, sr: int, lufs: float) -> dict:
    _worker_setup()
    base = Path(root)
    files = [base / row[k] for k in ("target_audio", "other_audio", "target_notes",
                                     "other_notes")]
    if all(f.exists() for f in files):
        return dict(clip_id=row["clip_id"], skipped=True)
    tp = int(row["target_part"])
    start, secs = float(row["start_s"]), float(row["duration_s"])
    t_notes, o_notes = parts[tp], parts[1 - tp]
    t_audio, t_ps = _render_window(t_notes, timbres[row["target_timbre"]], sr, start, secs, lufs)
    o_audio, o_ps = _render_window(o_notes, timbres[row["other_timbre"]], sr, start, secs, lufs)
    save_notes(files[2], t_notes.window(start, start + secs))
    save_notes(files[3], o_notes.window(start, start + secs))
    write_audio(files[0], t_audio, sr, subtype="PCM_16")
    write_audio(files[1], o_audio, sr, subtype="PCM_16")
    return dict(clip_id=row["clip_id"], skipped=False, peak_scaled=t_ps + o_ps)


# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------

def build_corpus(profile: Profile, progress: bool = True, n_jobs: int | None = None) -> Corpus:
    """Build (or reuse) the corpus of ``profile`` under ``profile.corpus_dir``; return it.

    Used by 01_data.ipynb and ``guitarsep build-corpus``. ``n_jobs``: worker processes
    (default ``profile.corpus.n_jobs``; -1 = all cores). Returns immediately when
    ``corpus.json`` holds the current key; resumes an interrupted build with the same key
    (existing files are complete by construction and are kept); wipes and rebuilds when the
    key differs. Raises ``RenderError`` (from the workers) naming a timbre that cannot render.
    """
    cfg = profile.corpus
    root = Path(profile.corpus_dir)
    key = corpus_key(profile)
    if _stored_key(root / "corpus.json") == key["key"]:
        return load_corpus(profile)
    t_start = time.time()
    _prepare_root(root, key)
    timbres = load_timbres()
    pieces = compose_pieces(cfg)                              # 1. scores
    pieces_df = _write_scores(cfg, root, pieces)
    renders, drawn = _plan_renders(cfg, pieces, timbres)      # 2. plans
    clips = _plan_clips(cfg, pieces, timbres)
    if drawn:
        write_text_atomic(root / "drawn_timbres.json", json.dumps(drawn, indent=0) + "\n")
    tasks = _render_tasks(cfg, root, pieces, renders, clips, timbres, drawn)   # 3. render
    workers = worker_count(cfg.n_jobs if n_jobs is None else n_jobs)
    results = run_tasks(tasks, workers, progress=progress, unit="render",
                        desc=f"corpus {profile.name}")
    renders_df, manifest = _write_tables(root, pieces_df, renders, clips)  # 4. tables
    _write_info(root, profile, key, (pieces_df, renders_df, manifest), results, t_start)
    return load_corpus(profile)


def _stored_key(path: Path) -> str | None:
    """The ``key`` of a ``corpus.json`` / ``build.json``; None if missing or unreadable.
    A step of :func:`build_corpus` (01_data.ipynb)."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("key")
    except json.JSONDecodeError:
        return None


def _prepare_root(root: Path, key: dict) -> None:
    """Wipe what another key's build left, drop temporaries, stamp ``build.json``.
    A step of :func:`build_corpus` (01_data.ipynb)."""
    old = _stored_key(root / "build.json")
    if root.exists() and old != key["key"]:
        # another config (or an unknown state) built here: its files must not be trusted
        for name in _OWNED:
            p = root / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)          # leftovers of an interrupted run
    write_text_atomic(root / "build.json", json.dumps(key, indent=1) + "\n")


def _write_scores(cfg, root: Path, pieces: list[Piece]) -> pd.DataFrame:
    """Write each part's notes (unless present); the ``pieces.csv`` table.
    A step of :func:`build_corpus` (01_data.ipynb)."""
    prow = []
    for pc in pieces:
        for part, notes in enumerate(pc.parts):
            path = root / notes_file(pc.piece_id, part)
            if not path.exists():
                save_notes(path, notes)
        prow.append(dict(piece_id=pc.piece_id, source=pc.source, style=pc.style, split=pc.split,
                         duration=float(cfg.piece_seconds), tempo=float(pc.tempo),
                         n_notes_p0=len(pc.parts[0]), n_notes_p1=len(pc.parts[1])))
    return pd.DataFrame(prow, columns=PIECES_COLUMNS)


def _render_tasks(cfg, root: Path, pieces: list[Piece], renders: list[dict], clips: list[dict],
                  timbres: pd.DataFrame, drawn: dict | None = None) -> list:
    """``(func, args)`` worker tasks: stems first (longest tasks first keeps both cores busy to
    the end), then clips. A step of :func:`build_corpus` (01_data.ipynb)."""
    tdict = {r.timbre_id: r._asdict() for r in timbres.itertuples(index=False)}
    tdict.update(drawn or {})
    by_id = {pc.piece_id: pc for pc in pieces}
    sr, lufs = int(cfg.sr), float(cfg.target_lufs)
    tasks = [(_task_stem, (str(root), r["path"], by_id[r["piece_id"]].parts[r["part"]],
                           tdict[r["timbre_id"]], sr, float(cfg.piece_seconds), lufs))
             for r in renders]
    for c in clips:
        pc = by_id[c["piece_id"]]
        # send the workers only what the clip needs: pre-roll + window, in piece time
        t0 = max(0.0, c["start_s"] - PREROLL_S)
        t1 = c["start_s"] + c["duration_s"]
        parts = tuple(p.window(t0, t1).shift(t0) for p in pc.parts)
        tasks.append((_task_clip, (str(root), c, parts, tdict, sr, lufs)))
    return tasks


def _write_tables(root: Path, pieces_df: pd.DataFrame, renders: list[dict],
                  clips: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``pieces.csv``, ``renders.csv``, ``manifest.csv``; return (renders, manifest).
    A step of :func:`build_corpus` (01_data.ipynb)."""
    renders_df = pd.DataFrame(renders, columns=RENDERS_COLUMNS)
    manifest = pd.DataFrame(clips, columns=MANIFEST_COLUMNS)
    _write_csv(root / "pieces.csv", pieces_df)
    _write_csv(root / "renders.csv", renders_df)
    _write_csv(root / "manifest.csv", manifest)
    return renders_df, manifest


def _write_info(root: Path, profile: Profile, key: dict, tables: tuple, results: list,
                t_start: float) -> None:
    """Write ``corpus.json`` (last: it marks the corpus complete).
    A step of :func:`build_corpus` (01_data.ipynb)."""
    cfg = profile.corpus
    pieces_df, renders_df, manifest = tables
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    hours = _hours(pieces_df, renders_df, manifest, cfg)
    info = dict(key, profile=profile.name, built_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                build_seconds=round(time.time() - t_start, 1),
                rendered=sum(1 for r in results if r and not r["skipped"]),
                # renders scaled below the target loudness to keep the peak <= 0.999
                peak_scaled=sum(r.get("peak_scaled", 0) for r in results if r),
                n_pieces=len(pieces_df), n_renders=len(renders_df), n_clips=len(manifest),
                disk_bytes=int(size), hours=hours, sr=int(cfg.sr), config=_cfg_dict(cfg))
    write_text_atomic(root / "corpus.json", json.dumps(info, indent=1) + "\n")


def _cfg_dict(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _hours(pieces_df, renders_df, manifest, cfg) -> dict:
    """Hours of audio per split: training/validation stems and two-stem clips.
    A step of :func:`build_corpus` (01_data.ipynb)."""
    out = {}
    for split in ("train", "valid", "test"):
        stems = float(len(renders_df[renders_df.split == split]) * cfg.piece_seconds / 3600)
        clips = float(manifest[manifest.split == split].duration_s.sum() * 2 / 3600)
        out[split] = dict(stems_h=round(stems, 4), clips_h=round(clips, 4),
                          pieces=int((pieces_df.split == split).sum()))
    return out
