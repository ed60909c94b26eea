"""Training and validation data (torch side of the corpus; used by ``training/loop.py`` / ``02_train``).

Three pieces:

- :class:`TrainingSource`: every rendering of a split (``renders.csv``) loaded once as float32
  at the setting's sample rate, plus one boolean harmonic-comb score mask per (piece, part) on
  the setting's STFT frame grid (``score.binary_score_mask`` with the profile's
  :class:`~guitarsep.config.MaskParams`). Resampled audio and masks are cached as ``.npy``
  under ``<corpus_dir>/cache/<setting>/`` (written atomically; the file name carries a hash of
  the source file's size/mtime and of the parameters, so a stale cache is never read).
- :class:`RemixDataset`: the on-the-fly remix. Map-style: item ``(epoch, index)`` is a pure
  function of ``(seed, epoch, index)``, so a run is deterministic, resumable at any step and
  shardable over DDP ranks (see :class:`StepBatchSampler`). Only numpy slicing and a weighted
  sum happen per sample; the STFT of a whole batch is done in the training loop.
- :class:`ValidClips`: the fixed validation clips (manifest rows with scenario ``"valid"``)
  as stacked tensors, for validation loss and SI-SDR.

Decisions (documented here and in ``02_train``):

* A piece is drawn with probability proportional to its length, so every second of training
  audio is equally likely (a uniform draw over pieces would over-sample short pieces).
* Timbres: with probability ``p_same_timbre`` both parts use the same rendering timbre (when
  the piece has one rendering per part in a shared timbre), otherwise two different timbres
  (falling back to any rendering only when the pool has no pair of distinct timbres).
* Target part: 0 or 1 with equal probability. Gains: each stem independently times
  ``10 ** (u / 20)``, ``u ~ U(-gain_db, +gain_db)``, and both by ``10 ** (v / 20)``,
  ``v ~ U(-level_db, +level_db)`` (absolute level; only drawn when ``level_db > 0``); the
  mixture is the sum of the scaled stems and the target is the scaled target stem.
* Chunks start on the hop grid (``start = k * hop``), so frame ``t`` of the chunk's
  ``center=True`` STFT is frame ``k + t`` of the piece, and the cached mask rows
  ``k : k + T`` (``T = N // hop + 1``) are exactly the chunk's score mask.
* A piece's length is the shortest of its renderings (at ``setting.sr``); renderings of one
  piece are sample-aligned (all start at t = 0 of the score).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from guitarsep.io import json_hash, load_audio, resample, save_npy_atomic
from guitarsep.config import MaskParams, StftSetting, TrainConfig

__all__ = ["TrainingSource", "RemixDataset", "StepBatchSampler", "ValidClips",
           "collate", "make_loader", "chunk_samples", "cache_dir"]

CORPUS_SR = 44100
_STREAMS = {"train": 0, "stats": 1}


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _stat_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def cache_dir(corpus_root: Path, setting: StftSetting) -> Path:
    """``<corpus_dir>/cache/<setting.name>/``."""
    return Path(corpus_root) / "cache" / setting.name


def chunk_samples(setting: StftSetting, frames: int) -> int:
    """Samples of a training chunk whose ``center=True`` STFT has exactly ``frames`` frames."""
    return (int(frames) - 1) * setting.hop


def _mask_kwargs(setting: StftSetting) -> dict:
    return dict(sr=setting.sr, n_fft=setting.n_fft, hop=setting.hop)


# --------------------------------------------------------------------------------------------
# training source
# --------------------------------------------------------------------------------------------
class TrainingSource:
    """All renderings of one split in memory, with per-(piece, part) binary score masks.

    Args:
        corpus: a :class:`guitarsep.corpus.Corpus` (its ``renders`` table, stems and
            ``notes`` / ``notes_path`` per part).
        setting: the STFT setting (sample rate and frame grid).
        mask_params: the profile's :class:`MaskParams`.
        split: the ``renders.csv`` split to load (``"train"``).
        mmap: memory-map the cached ``.npy`` arrays instead of reading them into RAM. ``None``
            (default) memory-maps when the split's audio + masks exceed 4 GiB (the ``paper``
            profile); the page cache then keeps them in memory and DataLoader workers share it.
        cache: write/read the ``.npy`` cache (``False`` recomputes in memory only).

    Attributes:
        pieces: list of piece ids (index = piece index).
        lengths: ``int64 (n_pieces,)`` samples per piece at ``setting.sr``.
        audio: ``{(piece_idx, part, timbre_id): float32 (n,)}``.
        masks: ``{(piece_idx, part): bool (frames, n_bins)}`` with ``frames = length // hop + 1``.
        timbres: ``{(piece_idx, part): [timbre_id, ...]}`` (sorted).
    """

    def __init__(self, corpus, setting: StftSetting, mask_params: MaskParams = MaskParams(), *,
                 split: str = "train", mmap: bool | None = None, cache: bool = True,
                 progress: bool = False):
        self.setting = setting
        self.mask_params = mask_params
        self.split = split
        root = Path(corpus.root)
        renders = corpus.renders
        renders = renders[renders["split"] == split].sort_values(
            ["piece_id", "part", "timbre_id"], kind="mergesort")
        if renders.empty:
            raise ValueError(f"no renderings with split {split!r} in {root / 'renders.csv'}")
        cdir = cache_dir(root, setting)
        if mmap is None:
            est = 0
            for p in renders["path"]:
                try:   # FLAC ~ 1/2 of 16-bit PCM; float32 at sr ~ 4x that, x sr ratio
                    est += os.path.getsize(root / p) * 4 * setting.sr / CORPUS_SR
                except OSError:
                    pass
            mmap = est > 4 * 2**30
        self.mmap = bool(mmap)
        self.pieces: list[str] = sorted(renders["piece_id"].astype(str).unique())
        pidx = {p: i for i, p in enumerate(self.pieces)}
        self.audio: dict[tuple[int, int, str], np.ndarray] = {}
        self.timbres: dict[tuple[int, int], list[str]] = {}
        rows = list(renders.itertuples(index=False))
        from tqdm.auto import tqdm
        for r in tqdm(rows, desc=f"load {split} audio ({setting.name})", disable=not progress,
                      leave=False):
            src = root / r.path
            key = (pidx[str(r.piece_id)], int(r.part), str(r.timbre_id))
            if cache:
                size, mtime = _stat_key(src)
                cpath = cdir / "audio" / f"{Path(r.path).stem}-{json_hash([size, mtime, setting.sr], 10)}.npy"
                if not cpath.is_file():
                    save_npy_atomic(cpath, load_audio(src, setting.sr)[0])
                x = np.load(cpath, mmap_mode="r" if self.mmap else None)
            else:
                x = load_audio(src, setting.sr)[0]
            self.audio[key] = x
            self.timbres.setdefault(key[:2], []).append(key[2])
        for k in self.timbres:
            self.timbres[k] = sorted(set(self.timbres[k]))
        missing = [(self.pieces[i], part) for i in range(len(self.pieces)) for part in (0, 1)
                   if (i, part) not in self.timbres]
        if missing:
            raise ValueError(f"pieces without a rendering of both parts: {missing[:5]}")
        self.lengths = np.array([min(len(x) for (i, _, _), x in self.audio.items() if i == pi)
                                 for pi in range(len(self.pieces))], dtype=np.int64)
        # score masks
        self.masks: dict[tuple[int, int], np.ndarray] = {}
        mp = asdict(mask_params)
        for pi, pid in enumerate(tqdm(self.pieces, desc="score masks", disable=not progress,
                                      leave=False)):
            n_frames = int(self.lengths[pi]) // setting.hop + 1
            for part in (0, 1):
                notes_path = corpus.notes_path(pid, part)
                m = None
                if cache and notes_path.is_file():
                    size, mtime = _stat_key(notes_path)
                    cpath = cdir / "masks" / (f"{pid}_p{part}-"
                                              f"{json_hash([size, mtime, mp, _mask_kwargs(setting), n_frames], 10)}.npy")
                    if not cpath.is_file():
                        save_npy_atomic(cpath, self._compute_mask(corpus, pid, part, n_frames))
                    m = np.load(cpath, mmap_mode="r" if self.mmap else None)
                if m is None:
                    m = self._compute_mask(corpus, pid, part, n_frames)
                self.masks[(pi, part)] = m
        # piece draw probabilities: proportional to length
        self.weights = self.lengths / self.lengths.sum()

    def _compute_mask(self, corpus, piece_id: str, part: int, n_frames: int) -> np.ndarray:
        from guitarsep import score
        notes = corpus.notes(piece_id, part)
        m = score.binary_score_mask(notes, n_frames, params=self.mask_params,
                                    **_mask_kwargs(self.setting))
        return np.ascontiguousarray(np.asarray(m, dtype=bool))

    @property
    def n_pieces(self) -> int:
        return len(self.pieces)

    @property
    def seconds(self) -> float:
        """Total piece duration (each piece counted once)."""
        return float(self.lengths.sum() / self.setting.sr)

    def nbytes(self) -> int:
        return int(sum(x.nbytes for x in self.audio.values())
                   + sum(m.nbytes for m in self.masks.values()))


# --------------------------------------------------------------------------------------------
# remix dataset
# --------------------------------------------------------------------------------------------
def _slice(x: np.ndarray, start: int, n: int) -> np.ndarray:
    """``x[start:start+n]`` zero-padded at the end when ``x`` is too short (copy)."""
    out = np.asarray(x[start:start + n])
    if out.shape[0] < n:
        pad = np.zeros((n - out.shape[0], *out.shape[1:]), dtype=out.dtype)
        out = np.concatenate([out, pad], axis=0)
    return np.array(out, copy=True)


class RemixDataset(torch.utils.data.Dataset):
    """On-the-fly remix of training renderings: item ``(epoch, index)`` -> dict of arrays.

    ``ds[(epoch, i)]`` (or :meth:`sample`) draws everything from
    ``np.random.default_rng([seed, stream, epoch, i])``: the same key gives the same sample in
    any process, worker or rank. Returns numpy arrays (the :func:`collate` of a DataLoader
    turns a batch into tensors):

    - ``mix``, ``target``: float32 ``(N,)`` with ``N = (seq_frames - 1) * hop`` (so ``T = seq_frames``);
    - ``m_target``, ``m_accomp``: bool ``(T, F)``, ``T = N // hop + 1``, ``F = n_bins``.
    """

    def __init__(self, source: TrainingSource, setting: StftSetting, train_cfg: TrainConfig,
                 seed: int | None = None, *, stream: str = "train",
                 sides: dict[str, str] | None = None):
        self.source = source
        # the blind model's fixed roles (corpus.timbres.timbre_sides): target rendered from
        # the target side, the other guitar from the other side; None = any pairing
        self.sides = sides
        self._pairs = self._side_pieces() if sides is not None else []
        if sides is not None and not self._pairs:
            raise ValueError("no training piece has one part rendered in a target-side timbre "
                             "and the other in an other-side timbre (corpus.timbres.timbre_sides)")
        self.setting = setting
        self.cfg = train_cfg
        self.seed = int(train_cfg.seed if seed is None else seed)
        self.stream = _STREAMS[stream] if isinstance(stream, str) else int(stream)
        self.n_samples = chunk_samples(setting, train_cfg.seq_frames)
        self.n_frames = self.n_samples // setting.hop + 1
        self._cum = np.cumsum(source.weights)

    def __len__(self) -> int:   # nominal: one epoch of samples (keys are (epoch, i) tuples)
        return int(self.cfg.steps_per_epoch * self.cfg.batch_size)

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stream, int(epoch), int(index)])

    def _side_pool(self, pi: int, part: int, side: str) -> list[str]:
        return [t for t in self.source.timbres[(pi, part)] if self.sides.get(t) == side]

    def _side_pieces(self) -> list[tuple[int, int]]:
        """(piece, target part) pairs that can follow the side convention."""
        return [(pi, tp) for pi in range(self.source.n_pieces) for tp in (0, 1)
                if self._side_pool(pi, tp, "target") and self._side_pool(pi, 1 - tp, "other")]

    def _draw_sides(self, rng) -> tuple[int, int, tuple[str, str]]:
        """(piece, target part, (timbre of part 0, timbre of part 1)) under the convention:
        the piece is drawn by length among those that allow it."""
        pairs = self._pairs
        w = np.array([self.source.weights[pi] for pi, _ in pairs])
        pi, tp = pairs[int(min(np.searchsorted(np.cumsum(w), rng.random() * w.sum(),
                                               side="right"), len(pairs) - 1))]
        tt = self._side_pool(pi, tp, "target")
        ot = self._side_pool(pi, 1 - tp, "other")
        t_target, t_other = tt[rng.integers(len(tt))], ot[rng.integers(len(ot))]
        return pi, tp, ((t_target, t_other) if tp == 0 else (t_other, t_target))

    def _draw_any(self, rng) -> tuple[int, int, tuple[str, str]]:
        """(piece, target part, (timbre of part 0, timbre of part 1)): piece by length, the
        two parts in one timbre with ``p_same_timbre``, else in two."""
        src = self.source
        pi = int(min(np.searchsorted(self._cum, rng.random() * self._cum[-1], side="right"),
                     src.n_pieces - 1))
        pool0, pool1 = src.timbres[(pi, 0)], src.timbres[(pi, 1)]
        same = rng.random() < self.cfg.p_same_timbre
        common = sorted(set(pool0) & set(pool1))
        if same and common:
            t0 = t1 = common[rng.integers(len(common))]
        else:
            t0 = pool0[rng.integers(len(pool0))]
            rest = [t for t in pool1 if t != t0] or pool1
            t1 = rest[rng.integers(len(rest))]
        return pi, int(rng.integers(2)), (t0, t1)

    def draw(self, epoch: int, index: int) -> dict:
        """The random choices of one sample (piece, timbres, target part, gains, start frame)."""
        rng = self.rng(epoch, index)
        src, hop = self.source, self.setting.hop
        if self.sides is not None:
            pi, target, (t0, t1) = self._draw_sides(rng)
        else:
            pi, target, (t0, t1) = self._draw_any(rng)
        gains = 10.0 ** (rng.uniform(-self.cfg.gain_db, self.cfg.gain_db, size=2) / 20.0)
        max_k = max(0, (int(src.lengths[pi]) - self.n_samples) // hop)
        k = int(rng.integers(max_k + 1))
        # drawn last and only when asked for, so profiles without it keep their samples
        level = (10.0 ** (rng.uniform(-self.cfg.level_db, self.cfg.level_db) / 20.0)
                 if self.cfg.level_db > 0 else 1.0)
        return {"piece": pi, "timbres": (t0, t1), "target_part": target,
                "gain_target": float(gains[0] * level), "gain_accomp": float(gains[1] * level),
                "start_frame": k, "start": k * hop}

    def sample(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        d = self.draw(epoch, index)
        src, n, T = self.source, self.n_samples, self.n_frames
        pi, tp = d["piece"], d["target_part"]
        ap = 1 - tp
        t_audio = _slice(src.audio[(pi, tp, d["timbres"][tp])], d["start"], n)
        a_audio = _slice(src.audio[(pi, ap, d["timbres"][ap])], d["start"], n)
        t_audio *= np.float32(d["gain_target"])
        a_audio *= np.float32(d["gain_accomp"])
        return {
            "mix": t_audio + a_audio,
            "target": t_audio,
            "m_target": _slice(src.masks[(pi, tp)], d["start_frame"], T),
            "m_accomp": _slice(src.masks[(pi, ap)], d["start_frame"], T),
        }

    def __getitem__(self, key) -> dict[str, np.ndarray]:
        epoch, index = key
        return self.sample(epoch, index)

    def batch(self, epoch: int, step: int, *, rank: int = 0, world: int = 1) -> dict:
        """The (rank's share of the) batch of global step ``step`` of ``epoch``, as tensors."""
        keys = StepBatchSampler.keys(epoch, step, self.cfg.batch_size, rank, world)
        return collate([self[k] for k in keys])


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack a list of samples into a dict of tensors (numpy stack, no per-item tensors)."""
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, step by step, the sample keys ``(epoch, i)`` of each batch, from a start position.

    Global step ``s`` of epoch ``e`` uses sample indices ``s * B .. s * B + B - 1``; with DDP
    rank ``r`` of ``W`` takes ``r::W`` of them (so ``B`` must be a multiple of ``W``): the
    union over ranks is exactly the single-process batch. Iterates epochs
    ``start_epoch .. epochs - 1``, starting at ``start_step`` in the first one.
    """

    def __init__(self, batch_size: int, steps_per_epoch: int, epochs: int, *,
                 start_epoch: int = 0, start_step: int = 0, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not a multiple of world size {world}")
        self.batch_size, self.steps_per_epoch, self.epochs = batch_size, steps_per_epoch, epochs
        self.start_epoch, self.start_step = start_epoch, start_step
        self.rank, self.world = rank, world

    @staticmethod
    def keys(epoch: int, step: int, batch_size: int, rank: int = 0, world: int = 1):
        return [(epoch, step * batch_size + j) for j in range(rank, batch_size, world)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for e in range(self.start_epoch, self.epochs):
            s0 = self.start_step if e == self.start_epoch else 0
            for s in range(s0, self.steps_per_epoch):
                yield self.keys(e, s, self.batch_size, self.rank, self.world)

    def __len__(self) -> int:
        return max(0, (self.epochs - self.start_epoch) * self.steps_per_epoch - self.start_step)


def make_loader(dataset: RemixDataset, sampler: StepBatchSampler, *, num_workers: int = 0,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over ``sampler`` (batches arrive in step order, also with workers)."""
    kw = {}
    if num_workers > 0:
        kw = dict(prefetch_factor=4, persistent_workers=False)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                       num_workers=num_workers, pin_memory=pin_memory, **kw)


# --------------------------------------------------------------------------------------------
# validation clips
# --------------------------------------------------------------------------------------------
class ValidClips:
    """The fixed validation clips of the corpus as stacked tensors at ``setting.sr``.

    Rows of ``corpus.manifest`` with ``split == split`` and scenario ``"valid"`` (for
    ``split="valid"``; for another split every row of that split). All clips have the same
    length (``clip_seconds``); shorter ones are zero-padded to the longest.

    Attributes: ``clip_ids`` (list), ``mix``, ``target`` float32 ``(C, N)``, ``m_target``,
    ``m_accomp`` bool ``(C, T, F)``, ``lengths`` (true samples per clip).

    Validation SI-SDR in training is Wiener-free: the estimated magnitude with the mixture's
    phase, inverse STFT, SI-SDR against the true target at ``setting.sr`` (8192 Hz for
    ``low_res``). It tracks training only; reported results come from ``separate.py``.
    """

    def __init__(self, corpus, setting: StftSetting, mask_params: MaskParams = MaskParams(), *,
                 split: str = "valid", max_clips: int | None = None, cache: bool = True):
        from guitarsep import score
        self.setting = setting
        man = corpus.manifest
        rows = man[man["split"] == split]
        if split == "valid" and "scenario" in rows:
            rows = rows[rows["scenario"] == "valid"]
        rows = rows.sort_values("clip_id", kind="mergesort")
        if max_clips is not None:
            rows = rows.head(max_clips)
        if rows.empty:
            raise ValueError(f"no {split} clips in the manifest of {corpus.root}")
        self.clip_ids = [str(c) for c in rows["clip_id"]]
        root = Path(corpus.root)
        cpath = None
        if cache:
            stamp = []
            for cid in self.clip_ids:
                d = root / "clips" / cid
                stamp.append([cid] + ([_stat_key(p) for p in sorted(d.iterdir())]
                                      if d.is_dir() else []))
            cpath = cache_dir(root, setting) / (
                f"valid-{split}-{json_hash([stamp, asdict(mask_params), _mask_kwargs(setting)], 10)}.npz")
        if cpath is not None and cpath.is_file():
            z = np.load(cpath)
            mix, target, mt, ma, lengths = (z[k] for k in
                                            ("mix", "target", "m_target", "m_accomp", "lengths"))
        else:
            mixes, targets, mts, mas = [], [], [], []
            for cid in self.clip_ids:
                clip = corpus.clip(cid)
                tgt = resample(clip.target, clip.sr, setting.sr)
                mx = tgt + resample(clip.other, clip.sr, setting.sr)
                n_frames = len(mx) // setting.hop + 1
                mts.append(np.asarray(score.binary_score_mask(
                    clip.target_notes, n_frames, params=mask_params,
                    **_mask_kwargs(setting)), bool))
                mas.append(np.asarray(score.binary_score_mask(
                    clip.accomp_notes, n_frames, params=mask_params,
                    **_mask_kwargs(setting)), bool))
                mixes.append(mx)
                targets.append(tgt)
            lengths = np.array([len(x) for x in mixes], dtype=np.int64)
            n = int(lengths.max())
            T = n // setting.hop + 1
            mix = np.stack([_slice(x, 0, n) for x in mixes])
            target = np.stack([_slice(x, 0, n) for x in targets])
            mt = np.stack([_slice(m, 0, T) for m in mts])
            ma = np.stack([_slice(m, 0, T) for m in mas])
            if cpath is not None:
                save_npy_atomic(cpath, mix=mix, target=target, m_target=mt, m_accomp=ma,
                                lengths=lengths)
        self.mix = torch.from_numpy(np.ascontiguousarray(mix, dtype=np.float32))
        self.target = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
        self.m_target = torch.from_numpy(np.ascontiguousarray(mt, dtype=bool))
        self.m_accomp = torch.from_numpy(np.ascontiguousarray(ma, dtype=bool))
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def n_samples(self) -> int:
        return int(self.mix.shape[1])

    def batches(self, batch_size: int, *, indices=None) -> Iterator[tuple[list[int], dict]]:
        """``(clip indices, {mix, target, m_target, m_accomp})`` batches of ``batch_size``."""
        idx = list(range(len(self))) if indices is None else list(indices)
        for i in range(0, len(idx), batch_size):
            sel = idx[i:i + batch_size]
            t = torch.as_tensor(sel)
            yield sel, {"mix": self.mix[t], "target": self.target[t],
                        "m_target": self.m_target[t], "m_accomp": self.m_accomp[t]}
