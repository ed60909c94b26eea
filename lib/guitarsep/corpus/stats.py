"""Statistics of a built corpus that 01_data.ipynb shows: sizes, note densities, pitch
ranges and timbre use (:func:`corpus_stats`), how far apart the timbres sound
(:func:`timbre_distances`, :func:`distance_summary`) and how well score onsets agree with the
rendered audio (:func:`onset_agreement`). ``scripts/bench_corpus.py`` reports them too.
:func:`unison_share` (how much of a clip the two parts play the same pitch at once) is for
``scripts/oof_unison.py``.
No torch import here; librosa is imported only by the functions that need it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from guitarsep.corpus.clips import Corpus
from guitarsep.corpus.render import render_part
from guitarsep.corpus.timbres import load_timbres
from guitarsep.score import Notes

__all__ = ["corpus_stats", "timbre_distances", "distance_summary", "onset_agreement",
           "unison_share"]


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
            p = corpus.clip_notes(getattr(r, which)).pitch
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
    from guitarsep.corpus.compose import generate_idiom_piece

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
            notes = corpus.clip_notes(getattr(r, f"{which}_notes"))
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


def _merged_spans(onset: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``(k, 2)``: the union of the spans ``[onset, offset]`` as disjoint sorted spans."""
    order = np.argsort(onset, kind="stable")
    out: list[list[float]] = []
    for start, end in zip(onset[order], offset[order]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([float(start), float(end)])
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def unison_share(target: Notes, other: Notes) -> float:
    """The share of the target's sounding time, summed over its pitches, during which the
    other part holds a note of the same pitch (0 when the target has no notes).

    Two parts on one pitch put their harmonics in the same bins throughout, so a ratio mask,
    even the oracle's, can only share those bins; with one timbre nothing else tells the parts
    apart there (scripts/oof_unison.py: in the median clip of each cell, 54 % for the
    out-of-family clips, 4-36 % for the NMF's dev clips).
    """
    held = overlap = 0.0
    for pitch in np.unique(target.pitch):
        on_t, on_o = target.pitch == pitch, other.pitch == pitch
        mine = _merged_spans(target.onset[on_t], target.offset[on_t])
        held += float((mine[:, 1] - mine[:, 0]).sum())
        theirs = _merged_spans(other.onset[on_o], other.offset[on_o])
        if len(theirs):
            lo = np.maximum(mine[:, None, 0], theirs[None, :, 0])
            hi = np.minimum(mine[:, None, 1], theirs[None, :, 1])
            overlap += float(np.clip(hi - lo, 0.0, None).sum())
    return overlap / held if held > 0 else 0.0
