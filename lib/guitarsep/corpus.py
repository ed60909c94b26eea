"""The synthetic two-guitar corpus: compose, split, render, cut evaluation clips, cache
(built and explored in 01_data.ipynb; ``guitarsep build-corpus`` calls :func:`build_corpus`;
``guitarsep.data`` reads the :class:`Corpus`). No torch import here.

Layout under ``profile.corpus_dir`` (docs/design.md, "corpus.py"):

- ``pieces.csv``: piece_id, source (idiom|music21), style, split, duration, tempo,
  n_notes_p0, n_notes_p1
- ``notes/<piece_id>_p<part>.txt``: the full piece's notes per part (``score.save_notes``)
- ``stems/<piece_id>_p<part>_<timbre_id>.flac``: train/valid renderings, 44.1 kHz mono,
  16-bit FLAC
- ``renders.csv``: piece_id, part, timbre_id, family, pool, split, path (relative)
- ``clips/<clip_id>/{target.flac, other.flac, target.txt, other.txt}``: evaluation clips
- ``manifest.csv``: one row per clip (valid + test): clip_id, split, scenario, combination,
  piece_id, target_part, target_timbre, other_timbre, target_audio, other_audio,
  target_notes, other_notes, seed, start_s, duration_s
- ``corpus.json``: cache key, build time, sizes, hours per split; written last, only when
  the build is complete. ``build.json`` (the key of the build in progress) is written first.

Decisions (documented here and in 01_data.ipynb):

- **Splits are by piece.** Generated pieces draw per-split seeds; music21 works are dealt
  to one split each (``compose.compose_pieces``).
- **Training renders.** Every part of a train/valid piece is rendered in
  ``renders_per_part`` *seen* timbres, half acoustic and half electric (both families always
  appear). Part 1 shares one of part 0's timbres and draws the others anew, so a training
  remix can pair the two parts in the same timbre (``TrainConfig.p_same_timbre``) or in two
  different ones.
- **Test clips** (``clips_per_cell`` per scenario x combination): scenario ``seen`` = two
  different seen timbres; ``a`` = target seen, other unseen; ``b`` = target unseen, other
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

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from guitarsep.compose import Piece, compose_pieces
from guitarsep.config import Profile, config_hash
from guitarsep.render import RenderError, render_part
from guitarsep.score import Notes, load_notes, save_notes
from guitarsep.timbres import load_timbres, timbre_table_hash

__all__ = [
    "CORPUS_VERSION", "SCENARIOS", "COMBINATIONS", "SCENARIO_COMBINATIONS", "MANIFEST_COLUMNS",
    "PIECES_COLUMNS", "RENDERS_COLUMNS", "Corpus", "Clip", "build_corpus", "load_corpus",
    "corpus_key", "corpus_stats", "timbre_distances", "distance_summary", "onset_agreement",
    "RenderError",
]

CORPUS_VERSION = 2          # bump when composing/rendering code changes the output
SCENARIOS = ("seen", "a", "b", "c", "d")
COMBINATIONS = ("ag+ag", "ag+eg", "eg+eg")
SCENARIO_COMBINATIONS = {s: (("ag+ag", "eg+eg") if s == "d" else COMBINATIONS)
                         for s in SCENARIOS}
PIECES_COLUMNS = ["piece_id", "source", "style", "split", "duration", "tempo", "n_notes_p0",
                  "n_notes_p1"]
RENDERS_COLUMNS = ["piece_id", "part", "timbre_id", "family", "pool", "split", "path"]
MANIFEST_COLUMNS = ["clip_id", "split", "scenario", "combination", "piece_id", "target_part",
                    "target_timbre", "other_timbre", "target_audio", "other_audio",
                    "target_notes", "other_notes", "seed", "start_s", "duration_s"]
PREROLL_S = 2.0
MIN_CLIP_NOTES = 4
# what a rebuild with a new key deletes; "cache" holds data.py's arrays derived from the corpus
_OWNED = ("pieces.csv", "renders.csv", "manifest.csv", "corpus.json", "build.json", "notes",
          "stems", "clips", "cache")


# ---------------------------------------------------------------------------------------------
# Small file helpers: atomic writes
# ---------------------------------------------------------------------------------------------

def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_flac(path: Path, audio: np.ndarray, sr: int) -> None:
    import soundfile as sf
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    sf.write(str(tmp), audio, sr, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)


def _write_notes(path: Path, notes: Notes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    save_notes(tmp, notes)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    _write_text(path, df.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


def _read_audio(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf
    x, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return x, sr


# ---------------------------------------------------------------------------------------------
# The cache key
# ---------------------------------------------------------------------------------------------

def corpus_key(profile: Profile) -> dict:
    """What a corpus depends on: ``{"key", "config_hash", "timbres_hash", "version"}``."""
    ch, th = config_hash(profile.corpus), timbre_table_hash()
    return {"key": f"{ch}-{th}-v{CORPUS_VERSION}", "config_hash": ch, "timbres_hash": th,
            "version": CORPUS_VERSION}


# ---------------------------------------------------------------------------------------------
# Planning (main process, all random choices)
# ---------------------------------------------------------------------------------------------

def _ss(cfg, *ints) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(cfg.seed), *[int(i) for i in ints]])


def _plan_renders(cfg, pieces: list[Piece], timbres: pd.DataFrame) -> list[dict]:
    seen = timbres[timbres.pool == "seen"]
    fam_ids = {f: sorted(seen[seen.family == f].timbre_id) for f in ("ag", "eg")}
    n = int(cfg.renders_per_part)
    rows = []
    for pi, piece in enumerate(pieces):
        if piece.split not in ("train", "valid"):
            continue
        rng = np.random.default_rng(_ss(cfg, 2, pi))
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
            for tid in picks:
                rows.append(dict(piece_id=piece.piece_id, part=part, timbre_id=tid,
                                 split=piece.split,
                                 path=f"stems/{piece.piece_id}_p{part}_{tid}.flac"))
    df = pd.DataFrame(rows, columns=["piece_id", "part", "timbre_id", "split", "path"])
    meta = timbres.set_index("timbre_id")
    df["family"] = df.timbre_id.map(meta.family)
    df["pool"] = df.timbre_id.map(meta.pool)
    return df[RENDERS_COLUMNS].to_dict("records")


def _pick_timbres(rng, scenario: str, fam_t: str, fam_o: str, timbres: pd.DataFrame):
    """(target timbre, other timbre) following the scenario rules."""
    def ids(pool, fam):
        return sorted(timbres[(timbres.pool == pool) & (timbres.family == fam)].timbre_id)

    def draw(pool, fam, exclude=()):
        c = [t for t in ids(pool, fam) if t not in exclude]
        return c[int(rng.integers(len(c)))]

    if scenario in ("seen", "valid"):
        t = draw("seen", fam_t)
        return t, draw("seen", fam_o, exclude=(t,))
    if scenario == "a":
        return draw("seen", fam_t), draw("unseen", fam_o)
    if scenario == "b":
        return draw("unseen", fam_t), draw("seen", fam_o)
    if scenario == "c":
        t = draw("unseen", fam_t)
        return t, draw("unseen", fam_o, exclude=(t,))
    if scenario == "d":
        t = draw("unseen", fam_t)
        return t, t
    raise ValueError(f"unknown scenario {scenario!r}")


def _pick_window(rng, piece: Piece, seconds: float):
    """Clip start (10 ms grid) where both parts have >= MIN_CLIP_NOTES onsets."""
    dur = piece.duration
    hi = max(dur - seconds, 0.0)
    for _ in range(100):
        start = round(float(rng.uniform(0.0, hi)), 2) if hi > 0 else 0.0
        ok = all(np.sum((p.onset >= start) & (p.onset < start + seconds)) >= MIN_CLIP_NOTES
                 for p in piece.parts)
        if ok:
            return start
    return None


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
        start = None
        for j in range(len(cand)):
            piece = cand[(order + j) % len(cand)]
            start = _pick_window(rng, piece, cfg.clip_seconds)
            if start is not None:
                break
        if start is None:
            raise ValueError(f"no {split} piece has a {cfg.clip_seconds} s window where both "
                             f"parts play >= {MIN_CLIP_NOTES} notes")
        clip_id = (f"valid_{k:03d}" if scen == "valid"
                   else f"{scen}_{comb.replace('+', '')}_{k:03d}")
        base = f"clips/{clip_id}"
        rows.append(dict(clip_id=clip_id, split=split, scenario=scen, combination=comb,
                         piece_id=piece.piece_id, target_part=target_part,
                         target_timbre=tt, other_timbre=ot,
                         target_audio=f"{base}/target.flac", other_audio=f"{base}/other.flac",
                         target_notes=f"{base}/target.txt", other_notes=f"{base}/other.txt",
                         seed=seed, start_s=start, duration_s=float(cfg.clip_seconds)))
    return rows


# ---------------------------------------------------------------------------------------------
# Workers (run in joblib processes; no shared state but the per-process synth cache)
# ---------------------------------------------------------------------------------------------

def _worker_setup() -> None:
    """loky restarts a worker whose memory grew by > 300 MB since its first task, taking it
    for a leak; our workers grow on purpose (each caches up to three loaded soundfonts, a few
    hundred MB), and a restart would reload them. Raise that bound in this worker."""
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
    _write_flac(path, audio, sr)
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
    _write_notes(files[2], t_notes.window(start, start + secs))
    _write_notes(files[3], o_notes.window(start, start + secs))
    _write_flac(files[0], t_audio, sr)
    _write_flac(files[1], o_audio, sr)
    return dict(clip_id=row["clip_id"], skipped=False, peak_scaled=t_ps + o_ps)


def _run_tasks(tasks: list, n_jobs: int, progress: bool, desc: str) -> list:
    """Run ``(func, args)`` tasks over ``n_jobs`` processes with a tqdm bar; results in order."""
    from tqdm.auto import tqdm
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit="render")
    out = [None] * len(tasks)
    if n_jobs == 1 or len(tasks) <= 1:
        for i, (f, args) in enumerate(tasks):
            out[i] = f(*args)
            bar.update(1)
    else:
        from joblib import Parallel, delayed

        def indexed(i, f, args):
            return i, f(*args)

        par = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered",
                       batch_size=1)
        for i, res in par(delayed(indexed)(i, f, a) for i, (f, a) in enumerate(tasks)):
            out[i] = res
            bar.update(1)
    bar.close()
    return out


# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------

def build_corpus(profile: Profile, progress: bool = True, n_jobs: int | None = None) -> "Corpus":
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
    info_path = root / "corpus.json"
    if info_path.exists():
        try:
            if json.loads(info_path.read_text()).get("key") == key["key"]:
                return load_corpus(profile)
        except json.JSONDecodeError:
            pass
    t_start = time.time()
    stamp = root / "build.json"
    old = None
    if stamp.exists():
        try:
            old = json.loads(stamp.read_text()).get("key")
        except json.JSONDecodeError:
            old = None
    if root.exists() and old != key["key"]:
        # another config (or an unknown state) built here: its files must not be trusted
        for name in _OWNED:
            p = root / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    root.mkdir(parents=True, exist_ok=True)
    for p in root.rglob(".*.tmp"):          # leftovers of an interrupted run
        p.unlink()
    _write_text(stamp, json.dumps(key, indent=1) + "\n")

    timbres = load_timbres()
    tdict = {r.timbre_id: r._asdict() for r in timbres.itertuples(index=False)}
    sr = int(cfg.sr)

    # 1. scores
    pieces = compose_pieces(cfg)
    prow = []
    for pc in pieces:
        for part, notes in enumerate(pc.parts):
            path = root / "notes" / f"{pc.piece_id}_p{part}.txt"
            if not path.exists():
                _write_notes(path, notes)
        prow.append(dict(piece_id=pc.piece_id, source=pc.source, style=pc.style, split=pc.split,
                         duration=float(cfg.piece_seconds), tempo=float(pc.tempo),
                         n_notes_p0=len(pc.parts[0]), n_notes_p1=len(pc.parts[1])))
    pieces_df = pd.DataFrame(prow, columns=PIECES_COLUMNS)
    by_id = {pc.piece_id: pc for pc in pieces}

    # 2. plans
    renders = _plan_renders(cfg, pieces, timbres)
    clips = _plan_clips(cfg, pieces, timbres)

    # 3. render (stems first: longest tasks first keeps both cores busy to the end)
    tasks = [(_task_stem, (str(root), r["path"], by_id[r["piece_id"]].parts[r["part"]],
                           tdict[r["timbre_id"]], sr, float(cfg.piece_seconds),
                           float(cfg.target_lufs))) for r in renders]
    for c in clips:
        pc = by_id[c["piece_id"]]
        # send the workers only what the clip needs: pre-roll + window, in piece time
        t0 = max(0.0, c["start_s"] - PREROLL_S)
        t1 = c["start_s"] + c["duration_s"]
        parts = tuple(p.window(t0, t1).shift(t0) for p in pc.parts)
        tasks.append((_task_clip, (str(root), c, parts, tdict, sr, float(cfg.target_lufs))))
    jobs = int(cfg.n_jobs if n_jobs is None else n_jobs)
    if jobs < 0:
        jobs = os.cpu_count() or 1
    results = _run_tasks(tasks, jobs, progress, desc=f"corpus {profile.name}")

    # 4. tables, then corpus.json last
    renders_df = pd.DataFrame(renders, columns=RENDERS_COLUMNS)
    manifest = pd.DataFrame(clips, columns=MANIFEST_COLUMNS)
    _write_csv(root / "pieces.csv", pieces_df)
    _write_csv(root / "renders.csv", renders_df)
    _write_csv(root / "manifest.csv", manifest)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    hours = _hours(pieces_df, renders_df, manifest, cfg)
    info = dict(key, profile=profile.name, built_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                build_seconds=round(time.time() - t_start, 1),
                rendered=sum(1 for r in results if r and not r["skipped"]),
                # renders scaled below the target loudness to keep the peak <= 0.999
                peak_scaled=sum(r.get("peak_scaled", 0) for r in results if r),
                n_pieces=len(pieces_df), n_renders=len(renders_df), n_clips=len(manifest),
                disk_bytes=int(size), hours=hours, sr=sr, config=_cfg_dict(cfg))
    _write_text(info_path, json.dumps(info, indent=1) + "\n")
    return load_corpus(profile)


def _cfg_dict(cfg) -> dict:
    import dataclasses
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _hours(pieces_df, renders_df, manifest, cfg) -> dict:
    """Hours of audio per split: training/validation stems and two-stem clips."""
    out = {}
    for split in ("train", "valid", "test"):
        stems = float(len(renders_df[renders_df.split == split]) * cfg.piece_seconds / 3600)
        clips = float(manifest[manifest.split == split].duration_s.sum() * 2 / 3600)
        out[split] = dict(stems_h=round(stems, 4), clips_h=round(clips, 4),
                          pieces=int((pieces_df.split == split).sum()))
    return out


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclass
class Clip:
    """One evaluation clip: ``mix = target + other`` (float32, same length), the notes of
    both parts (times relative to the clip start), ``sr`` and the manifest ``row``."""
    clip_id: str
    mix: np.ndarray
    target: np.ndarray
    other: np.ndarray
    target_notes: Notes
    accomp_notes: Notes
    sr: int
    row: dict = field(default_factory=dict)

    @property
    def scenario(self) -> str:
        return self.row["scenario"]

    @property
    def combination(self) -> str:
        return self.row["combination"]


class Corpus:
    """A built corpus (see module docstring for the files). Used by 01_data.ipynb, data.py
    (training remixes and fixed clips) and the evaluation.

    Attributes: ``root`` (Path), ``pieces``, ``renders``, ``manifest``, ``timbres``
    (DataFrames), ``info`` (corpus.json), ``sr``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info = self.root / "corpus.json"
        if not info.exists():
            raise FileNotFoundError(f"no complete corpus at {self.root} (corpus.json missing); "
                                    "run guitarsep.corpus.build_corpus(profile) or "
                                    "`guitarsep build-corpus`")
        self.info = json.loads(info.read_text())
        self.sr = int(self.info["sr"])
        self.pieces = pd.read_csv(self.root / "pieces.csv", dtype={"piece_id": str})
        self.renders = pd.read_csv(self.root / "renders.csv",
                                   dtype={"piece_id": str, "timbre_id": str})
        self.manifest = pd.read_csv(self.root / "manifest.csv",
                                    dtype={"clip_id": str, "piece_id": str,
                                           "target_timbre": str, "other_timbre": str})
        self.timbres = load_timbres()
        self._notes: dict = {}

    def __repr__(self) -> str:
        return (f"Corpus({self.root}, {len(self.pieces)} pieces, {len(self.renders)} renders, "
                f"{len(self.manifest)} clips)")

    def path(self, rel: str) -> Path:
        """Absolute path of a path stored in the tables."""
        return self.root / rel

    def audio(self, rel: str) -> np.ndarray:
        """float32 mono audio of a stored (relative) path."""
        x, sr = _read_audio(self.root / rel)
        if sr != self.sr:
            raise ValueError(f"{rel}: sample rate {sr}, corpus says {self.sr}")
        return x

    def notes(self, piece_id: str, part: int) -> Notes:
        """Full-piece notes of a part (cached)."""
        k = (piece_id, int(part))
        if k not in self._notes:
            self._notes[k] = load_notes(self.root / "notes" / f"{piece_id}_p{int(part)}.txt")
        return self._notes[k]

    def stem(self, piece_id: str, part: int, timbre_id: str) -> np.ndarray:
        """A train/valid rendering."""
        return self.audio(f"stems/{piece_id}_p{int(part)}_{timbre_id}.flac")

    def clips(self, split: str | None = None, scenario: str | None = None,
              combination: str | None = None) -> pd.DataFrame:
        """Manifest rows filtered by split / scenario / combination."""
        m = self.manifest
        for col, v in (("split", split), ("scenario", scenario), ("combination", combination)):
            if v is not None:
                m = m[m[col] == v]
        return m

    def clip(self, clip_id: str) -> Clip:
        """The clip's audio (mix = target + other) and notes."""
        rows = self.manifest[self.manifest.clip_id == clip_id]
        if not len(rows):
            raise KeyError(f"unknown clip_id {clip_id!r}")
        row = rows.iloc[0].to_dict()
        target = self.audio(row["target_audio"])
        other = self.audio(row["other_audio"])
        return Clip(clip_id, (target + other).astype(np.float32), target, other,
                    _read_notes(self.root / row["target_notes"]),
                    _read_notes(self.root / row["other_notes"]), self.sr, row)


def _has_notes(path: Path) -> bool:
    return any(ln.strip() and not ln.lstrip().startswith("#")
               for ln in path.read_text().splitlines())


def _read_notes(path: Path) -> Notes:
    """Notes of a text file; an empty part (possible in a clip window) is ``Notes.empty()``
    rather than the error ``load_notes`` raises for user files."""
    return load_notes(path) if _has_notes(path) else Notes.empty()


def load_corpus(profile: Profile) -> Corpus:
    """The complete corpus of ``profile`` (raises ``FileNotFoundError`` if not built)."""
    return Corpus(profile.corpus_dir)


# ---------------------------------------------------------------------------------------------
# Statistics for 01_data.ipynb
# ---------------------------------------------------------------------------------------------

def corpus_stats(corpus: Corpus) -> dict:
    """Tables for 01_data.ipynb: ``{"hours", "notes_per_second", "pitch_hist", "timbre_use"}``.

    - hours: per split, hours of stems (train/valid renderings) and of clips (two stems each),
      and pieces.
    - notes_per_second: per piece and part (with source and style).
    - pitch_hist: note counts per MIDI pitch (rows 40..88) and family (columns ag, eg), over
      every rendering and clip stem, so it shows what each family plays.
    - timbre_use: how often each timbre appears in renders and as clip target / other.
    """
    cfg_secs = float(corpus.info["config"]["piece_seconds"])
    hours = pd.DataFrame(corpus.info["hours"]).T
    nps = []
    for r in corpus.pieces.itertuples(index=False):
        for part in (0, 1):
            nps.append(dict(piece_id=r.piece_id, split=r.split, source=r.source, style=r.style,
                            part=part, notes_per_second=getattr(r, f"n_notes_p{part}") / cfg_secs))
    hist = pd.DataFrame(0, index=pd.RangeIndex(40, 89, name="pitch"), columns=["ag", "eg"])
    fam = corpus.timbres.set_index("timbre_id").family
    for r in corpus.renders.itertuples(index=False):
        p = corpus.notes(r.piece_id, r.part).pitch
        hist[r.family] += np.bincount(np.clip(p, 40, 88) - 40, minlength=49)
    for r in corpus.manifest.itertuples(index=False):
        for which, tid in (("target_notes", r.target_timbre), ("other_notes", r.other_timbre)):
            p = _read_notes(corpus.root / getattr(r, which)).pitch
            hist[fam[tid]] += np.bincount(np.clip(p, 40, 88) - 40, minlength=49)
    use = pd.DataFrame({
        "renders": corpus.renders.timbre_id.value_counts(),
        "clip_target": corpus.manifest.target_timbre.value_counts(),
        "clip_other": corpus.manifest.other_timbre.value_counts(),
    }).reindex(corpus.timbres.timbre_id).fillna(0).astype(int)
    use.insert(0, "pool", corpus.timbres.set_index("timbre_id").pool)
    return {"hours": hours, "notes_per_second": pd.DataFrame(nps), "pitch_hist": hist,
            "timbre_use": use}


def timbre_distances(notes: Notes | None = None, timbres: pd.DataFrame | None = None, *,
                     seconds: float = 10.0, sr: int = 44100, n_mels: int = 64,
                     seed: int = 0) -> pd.DataFrame:
    """Pairwise timbre distance: mean absolute difference (dB) of the log-mel spectrograms of
    the same notes rendered in each timbre (librosa; 2048/512 STFT, ``n_mels`` bands, levels
    floored at -80 dB). Renders are loudness-normalised, so this measures colour, not level.

    ``notes``: default a generated arpeggio + melody piece (both parts merged, seed ``seed``)
    cut to ``seconds``. Returns a square DataFrame indexed by timbre_id. 01_data.ipynb shows it
    to argue that unseen timbres are not near copies of seen ones (see :func:`distance_summary`).
    """
    import librosa
    from guitarsep.compose import generate_idiom_piece

    if notes is None:
        a, b, _ = generate_idiom_piece(seed, seconds, roles=("arpeggio", "melody"))
        notes = a.concat(b)
    timbres = load_timbres() if timbres is None else timbres
    specs = {}
    for r in timbres.itertuples(index=False):
        y = render_part(notes, r._asdict(), sr, duration=seconds)
        m = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512,
                                           n_mels=n_mels)
        specs[r.timbre_id] = librosa.power_to_db(m, ref=1.0, top_db=None).clip(min=-80.0)
    ids = list(specs)
    d = np.zeros((len(ids), len(ids)))
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            d[i, j] = float(np.mean(np.abs(specs[a] - specs[b])))
    return pd.DataFrame(d, index=pd.Index(ids, name="timbre_id"), columns=ids)


def distance_summary(dist: pd.DataFrame, timbres: pd.DataFrame | None = None) -> dict:
    """Medians of :func:`timbre_distances` over seen-seen, unseen-seen and unseen-unseen pairs
    (distinct timbres), each unseen timbre's nearest seen timbre and distance, and the median
    nearest-neighbour distance of unseen-to-seen vs seen-to-other-seen (01_data.ipynb)."""
    timbres = load_timbres() if timbres is None else timbres
    pool = timbres.set_index("timbre_id").pool.reindex(dist.index)
    seen = list(pool[pool == "seen"].index)
    unseen = list(pool[pool == "unseen"].index)

    def med(rows, cols):
        v = [dist.loc[a, b] for a in rows for b in cols if a != b]
        return float(np.median(v)) if v else float("nan")

    nearest = {u: (dist.loc[u, seen].idxmin(), float(dist.loc[u, seen].min())) for u in unseen}
    # for scale: how close seen timbres come to each other
    seen_nn = [float(dist.loc[a, [b for b in seen if b != a]].min()) for a in seen]
    return {"seen_vs_seen": med(seen, seen), "unseen_vs_seen": med(unseen, seen),
            "unseen_vs_unseen": med(unseen, unseen), "nearest_seen": nearest,
            "unseen_nearest_seen_median": float(np.median([d for _, d in nearest.values()])),
            "seen_nearest_seen_median": float(np.median(seen_nn))}


def onset_agreement(corpus: Corpus, n_clips: int = 20, seed: int = 0,
                    split: str = "test") -> dict:
    """Score/audio agreement: for ``n_clips`` random clips of ``split``, the distance from each
    score onset to the nearest onset librosa detects in the rendered stem (target and other).

    librosa ``onset_detect`` on a 256-sample hop (5.8 ms), no backtracking. Onsets clipped to
    the clip start (notes held across it) and those in the last 50 ms are skipped. Returns
    ``{"median_ms", "mean_ms", "p90_ms", "n_onsets", "per_clip": DataFrame}``; 01_data.ipynb
    reports the median (our acceptance bar: < 25 ms).
    """
    import librosa

    m = corpus.clips(split=split)
    rng = np.random.default_rng(seed)
    pick = m.iloc[np.sort(rng.choice(len(m), size=min(n_clips, len(m)), replace=False))]
    dists, rows = [], []
    for r in pick.itertuples(index=False):
        for which in ("target", "other"):
            y = corpus.audio(getattr(r, f"{which}_audio"))
            notes = _read_notes(corpus.root / getattr(r, f"{which}_notes"))
            det = librosa.onset.onset_detect(y=y, sr=corpus.sr, hop_length=256, units="time",
                                             backtrack=False)
            on = np.unique(notes.onset[(notes.onset > 1e-3) &
                                       (notes.onset < len(y) / corpus.sr - 0.05)])
            if not len(on) or not len(det):
                continue
            d = np.min(np.abs(on[:, None] - det[None, :]), axis=1)
            dists.append(d)
            rows.append(dict(clip_id=r.clip_id, stem=which,
                             timbre=getattr(r, f"{which}_timbre"),
                             n_onsets=len(on), n_detected=len(det),
                             median_ms=float(np.median(d) * 1000)))
    alld = np.concatenate(dists) if dists else np.array([np.nan])
    return {"median_ms": float(np.median(alld) * 1000), "mean_ms": float(np.mean(alld) * 1000),
            "p90_ms": float(np.percentile(alld, 90) * 1000), "n_onsets": int(len(alld)),
            "per_clip": pd.DataFrame(rows)}
