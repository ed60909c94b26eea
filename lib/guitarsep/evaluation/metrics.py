"""Separation metrics (used by 03_evaluate.ipynb, ``guitarsep evaluate`` and figures.py).

- :func:`si_sdr`: scale-invariant SDR (Le Roux, Wisdom, Erdogan & Hershey, ICASSP 2019) of an
  estimated target against the true target stem, in dB; vectorised over leading dims.
- :func:`bss_eval`: BSS Eval v4 (``museval``) SDR / SIR / SAR of the target, the field's
  companion table; slow, so it runs on a subset of clips (see :func:`select_museval_clips`).
- :func:`evaluate_clips`: (metadata, estimate, true target, true other) items -> the tidy
  per-clip results table that every figure draws from.
- :func:`medians_table`: per-cell medians with bootstrap 95 % intervals.

Decisions (documented here and in the notebooks):

* SI-SDR is computed on the signals as given, **without mean removal**. Le Roux et al. define
  SI-SDR for zero-mean signals; our stems are rendered audio whose DC offset is negligible
  (< 1e-4 of the RMS), so removing the mean changes nothing measurable. ``zero_mean=True``
  is available for other inputs.
* Computation is in float64. The result is capped to ``[-cap, +cap]`` dB with
  ``cap = 10 log10(1 / eps)`` (100 dB for the default ``eps=1e-10``): an exact (scaled) copy of
  the reference gives ``+cap`` instead of ``inf``; a silent or reference-orthogonal estimate
  gives ``-cap`` instead of ``-inf`` / NaN. The cap is scale invariant.
* A silent reference (mean square below ``silence_threshold``) makes SI-SDR undefined:
  :class:`ValueError` is raised, never NaN.
* BSS Eval v4 is museval's ``bss_eval`` with the two true stems as references and
  (estimate, mixture - estimate) as estimates, 1 s windows with 1 s hop (SiSEC 2018), the
  target's framewise values are summarised by their median over non-silent (non-NaN) frames.
  Only the target source is evaluated (same numbers as the public function, half the cost)
  and BLAS runs single-threaded: about 0.2-0.4 s per 15 s clip at 44.1 kHz on one core
  (``scripts/bench_metrics.py``), i.e. far slower than SI-SDR (~2 ms), hence
  ``EvalConfig.museval_clips_per_cell``.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from guitarsep.vocabulary import METRICS

__all__ = [
    "si_sdr", "bss_eval", "select_museval_clips", "evaluate_clips", "evaluate", "medians_table",
    "RESULT_COLUMNS", "CELL_KEYS",
]

#: Column order of the tidy results table (figures.py reads only these).
RESULT_COLUMNS: tuple[str, ...] = (
    "model", "setting", "scenario", "combination", "clip_id", "target_timbre", "other_timbre",
    "si_sdr", "sdr", "sir", "sar",
)
#: Metadata keys every item passed to :func:`evaluate_clips` must carry.
META_KEYS: tuple[str, ...] = RESULT_COLUMNS[:7]
#: A cell of the results table: one box of a figure.
CELL_KEYS: tuple[str, ...] = ("model", "setting", "scenario", "combination")


# --------------------------------------------------------------------------------------------
# SI-SDR
# --------------------------------------------------------------------------------------------
def si_sdr(est, ref, eps: float = 1e-10, *, zero_mean: bool = False,
           silence_threshold: float = 1e-12):
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019).

    ``SI-SDR = 10 log10(||a s||^2 / ||a s - s_hat||^2)`` with ``a = <s_hat, s> / ||s||^2``,
    ``s`` the reference and ``s_hat`` the estimate.

    Args:
        est, ref: arrays of the same shape ``(..., n_samples)`` (numpy or anything
            ``np.asarray`` accepts, e.g. CPU torch tensors). Leading dims are batch dims.
        eps: sets the cap: results are clipped to ``[-10 log10(1/eps), +10 log10(1/eps)]`` dB.
        zero_mean: subtract each signal's mean first (off by default, see module docstring).
        silence_threshold: a reference whose mean square is at or below this is "silent".

    Returns:
        ``float`` for 1-D input, else a float64 array of shape ``est.shape[:-1]``.

    Raises:
        ValueError: shape mismatch, empty signals, or a silent reference (the message lists
            which batch items are silent).
    """
    est = np.asarray(est, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if est.shape != ref.shape:
        raise ValueError(f"si_sdr: est and ref shapes differ: {est.shape} vs {ref.shape}")
    if est.ndim == 0 or est.shape[-1] == 0:
        raise ValueError(f"si_sdr: need signals of shape (..., n_samples>0), got {est.shape}")
    if not (0 < eps < 1):
        raise ValueError(f"si_sdr: eps must be in (0, 1), got {eps}")
    if zero_mean:
        est = est - est.mean(axis=-1, keepdims=True)
        ref = ref - ref.mean(axis=-1, keepdims=True)

    ref_energy = np.sum(ref * ref, axis=-1)
    silent = ref_energy <= silence_threshold * ref.shape[-1]
    if np.any(silent):
        where = "" if ref.ndim == 1 else f" at batch index {np.argwhere(silent).tolist()[:10]}"
        raise ValueError(
            "si_sdr: the reference is silent (mean square <= "
            f"{silence_threshold:g}){where}; SI-SDR is undefined for a silent target. "
            "Drop such clips before evaluating.")
    alpha = np.sum(est * ref, axis=-1) / ref_energy
    target = alpha[..., None] * ref
    num = np.sum(target * target, axis=-1)
    den = np.sum((target - est) ** 2, axis=-1)
    tiny = np.finfo(np.float64).tiny
    ratio = num / np.maximum(np.maximum(den, eps * num), tiny)
    out = 10.0 * np.log10(np.clip(ratio, eps, 1.0 / eps))
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------------------------
# BSS Eval v4
# --------------------------------------------------------------------------------------------
def _blas_single_thread():
    """Context limiting BLAS to one thread (museval's least-squares solves run 4-30x slower
    with OpenBLAS threads competing for busy cores); a no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover
        import contextlib
        return contextlib.nullcontext()


def _museval_target_only(refs: np.ndarray, ests: np.ndarray, win: int):
    """museval's ``bss_eval`` (v4: time-invariant filters, images version, no permutation)
    restricted to source 0: the target's metrics do not depend on the other estimate except
    through museval's silent-frame test, which is kept. Uses museval's own helpers; half the
    least-squares work of the public function. Returns framewise (sdr, sir, sar) arrays."""
    from museval import metrics as mm

    filters_len = 512
    G, sf = mm._compute_reference_correlations(refs, filters_len)
    est0 = ests[0]
    C = mm._compute_projection_filters(G, sf, est0)
    Cj = mm._compute_projection_filters(G[0, 0], sf[0], est0)
    framer = mm.Framing(win, win, refs.shape[1])
    out = np.full((3, framer.nwin), np.nan)
    for t, w in enumerate(framer):
        if mm._any_source_silent(refs[:, w]) or mm._any_source_silent(ests[:, w]):
            continue
        s_true, e_spat, e_interf, e_artif = mm._bss_decomp_mtifilt(refs[:, w], est0[w], 0, C, Cj)
        sdr, _isr, sir, sar = mm._bss_crit(s_true, e_spat, e_interf, e_artif, False)
        out[:, t] = (sdr, sir, sar)
    return out[0], out[1], out[2]


def bss_eval(est, ref, other, sr: int, window_s: float = 1.0, *, mix=None,
             target_only: bool = True) -> dict[str, float]:
    """BSS Eval v4 SDR / SIR / SAR (dB) of the target estimate, via ``museval``.

    References are (``ref``, ``other``); estimates are (``est``, ``mix - est``) where
    ``mix = ref + other`` unless given. Metrics are computed on ``window_s`` windows with hop
    ``window_s`` (museval's time-invariant distortion filters, "images" version, as in
    SiSEC 2018) and summarised by the median over frames, ignoring NaN (silent) frames; a clip
    whose frames are all silent gets NaN.

    ``target_only=True`` (default) evaluates only the target source with museval's own
    internal helpers (identical numbers, half the work; tests/test_metrics.py checks it
    against ``museval.metrics.bss_eval``); ``False`` calls the public function. BLAS is
    limited to one thread during the call.

    Returns ``{"sdr": .., "sir": .., "sar": ..}`` (floats).
    """
    import museval  # slow import; keep it local

    est = np.asarray(est, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if not (est.ndim == ref.ndim == other.ndim == 1) or not (
            est.shape == ref.shape == other.shape):
        raise ValueError("bss_eval: est, ref and other must be 1-D arrays of equal length, got "
                         f"{est.shape}, {ref.shape}, {other.shape}")
    mix = ref + other if mix is None else np.asarray(mix, dtype=np.float64)
    if mix.shape != est.shape:
        raise ValueError(f"bss_eval: mix shape {mix.shape} != est shape {est.shape}")
    win = int(round(window_s * sr))
    refs = np.stack([ref, other])[..., None]          # (nsrc, nsampl, nchan)
    ests = np.stack([est, mix - est])[..., None]
    with _blas_single_thread():
        frames = None
        if target_only:
            try:
                frames = _museval_target_only(refs, ests, win)
            except (ImportError, AttributeError):   # museval internals changed: public API
                frames = None
        if frames is None:
            sdr, _isr, sir, sar, _perm = museval.metrics.bss_eval(
                refs, ests, window=win, hop=win, compute_permutation=False,
                framewise_filters=False, bsseval_sources_version=False)
            frames = (sdr[0], sir[0], sar[0])

    def _med(a):      # NaN = silent frame (skipped); +inf (exact estimate) is kept
        a = np.asarray(a, dtype=np.float64)
        a = a[~np.isnan(a)]
        return float(np.median(a)) if a.size else float("nan")

    return {"sdr": _med(frames[0]), "sir": _med(frames[1]), "sar": _med(frames[2])}


# --------------------------------------------------------------------------------------------
# Evaluation -> tidy table
# --------------------------------------------------------------------------------------------
def select_museval_clips(table: pd.DataFrame, n_per_cell: int,
                         by: tuple[str, ...] = ("scenario", "combination")) -> set[str]:
    """The clip ids that get BSS Eval: the first ``n_per_cell`` clip ids (sorted as strings)
    of every ``by`` group of ``table`` (a manifest, or a results table).

    Every model is evaluated on the same clips, so selecting per (scenario, combination) from
    the manifest equals selecting per (model, setting, scenario, combination) cell; pass the
    result as ``museval_ids`` to :func:`evaluate_clips` to stream estimates without buffering.
    """
    if n_per_cell <= 0 or table.empty:
        return set()
    by = [b for b in by if b in table.columns]
    ids = table[[*by, "clip_id"]].drop_duplicates().astype({"clip_id": str})
    ids = ids.sort_values([*by, "clip_id"], kind="mergesort")
    if by:
        ids = ids.groupby(by, sort=False, dropna=False).head(n_per_cell)
    else:
        ids = ids.head(n_per_cell)
    return set(ids["clip_id"])


def _bss_task(est, ref, other, sr, window_s):
    return bss_eval(est, ref, other, sr, window_s)


def _nan_task():
    return {"sdr": float("nan"), "sir": float("nan"), "sar": float("nan")}


def _check_meta(meta: Mapping[str, Any]) -> None:
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise KeyError(f"evaluate_clips: item metadata lacks {missing}: {dict(meta)}")


def _museval_selection(items, n_per_cell: int, museval_ids: set[str] | None,
                       total: int | None):
    """Which items get BSS Eval: ``(items, wanted(meta) -> bool, total)`` for :func:`evaluate_clips`.

    Without ``museval_ids`` the items are collected into a list (and their metadata checked)
    so that the first ``n_per_cell`` clip ids of each cell (sorted) can be chosen.
    """
    if museval_ids is not None:
        ids = {str(c) for c in museval_ids}
        if total is None and hasattr(items, "__len__"):
            total = len(items)
        return items, (lambda meta: str(meta["clip_id"]) in ids), total
    items = list(items)
    for m, *_ in items:
        _check_meta(m)
    keys = [*CELL_KEYS, "clip_id"]
    metas = pd.DataFrame([{k: str(m[k]) for k in keys} for m, *_ in items], columns=keys)
    chosen: set[tuple] = set()
    if n_per_cell > 0 and len(metas):
        sel = metas.drop_duplicates().sort_values(keys, kind="mergesort")
        sel = sel.groupby(list(CELL_KEYS), sort=False).head(n_per_cell)
        chosen = set(map(tuple, sel.to_numpy().tolist()))
    return items, (lambda meta: tuple(str(meta[k]) for k in keys) in chosen), (
        len(items) if total is None else total)


def _si_sdr_row(meta: Mapping[str, Any], est, ref, other):
    """One item's result row with its SI-SDR, and its three waveforms as flat float32.

    Raises ValueError naming the clip when the lengths differ or the reference is silent.
    """
    _check_meta(meta)
    est, ref, other = (np.asarray(x, dtype=np.float32).reshape(-1) for x in (est, ref, other))
    if not (est.shape == ref.shape == other.shape):
        raise ValueError(f"evaluate_clips: clip {meta['clip_id']} ({meta['model']}): "
                         f"lengths differ: est {est.size}, target {ref.size}, "
                         f"other {other.size}")
    try:
        value = si_sdr(est, ref)
    except ValueError as e:
        raise ValueError(f"clip {meta['clip_id']} (model {meta['model']}): {e}") from e
    row = {k: meta[k] for k in META_KEYS}
    row["si_sdr"] = value
    row.update({k: v for k, v in meta.items() if k not in row})
    return row, est, ref, other


def evaluate_clips(items: Iterable[tuple[Mapping[str, Any], Any, Any, Any]], eval_cfg=None, *,
                   sr: int = 44100, museval_ids: set[str] | None = None,
                   museval_clips_per_cell: int | None = None, n_jobs: int | None = None,
                   window_s: float | None = None, progress: bool = True,
                   total: int | None = None) -> pd.DataFrame:
    """Score separated clips; return the tidy per-clip table (:data:`RESULT_COLUMNS`).

    Args:
        items: iterable of ``(meta, est, ref_target, ref_other)``: ``meta`` a mapping with at
            least ``model, setting, scenario, combination, clip_id, target_timbre,
            other_timbre`` (extra keys become extra columns after the standard ones);
            waveforms 1-D, equal length, at ``sr``.
        eval_cfg: a ``config.EvalConfig``; supplies ``museval_clips_per_cell``, ``n_jobs``
            and ``museval_window_s`` unless overridden by the keyword arguments.
        museval_ids: clip ids that get BSS Eval (see :func:`select_museval_clips`). When it is
            None, the items are first collected into a list and the first
            ``museval_clips_per_cell`` clip ids of each (model, setting, scenario,
            combination) cell are chosen; pass ``museval_ids`` to stream large evaluations.
        n_jobs: joblib workers for BSS Eval (SI-SDR is computed in this process, it is fast).

    SI-SDR is computed for every item; ``sdr/sir/sar`` are NaN for clips without BSS Eval.
    A silent reference raises ValueError naming the clip.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    n_per_cell = museval_clips_per_cell if museval_clips_per_cell is not None else (
        eval_cfg.museval_clips_per_cell if eval_cfg is not None else 0)
    n_jobs = n_jobs if n_jobs is not None else (eval_cfg.n_jobs if eval_cfg is not None else 1)
    window_s = window_s if window_s is not None else (
        eval_cfg.museval_window_s if eval_cfg is not None else 1.0)

    items, wanted, total = _museval_selection(items, n_per_cell, museval_ids, total)
    rows: list[dict] = []

    def tasks():
        for meta, est, ref, other in items:
            row, est, ref, other = _si_sdr_row(meta, est, ref, other)
            rows.append(row)
            if wanted(meta):
                yield delayed(_bss_task)(est, ref, other, sr, window_s)
            else:
                yield delayed(_nan_task)()

    results = Parallel(n_jobs=n_jobs, return_as="generator", pre_dispatch="2*n_jobs")(tasks())
    bss = []
    for r in tqdm(results, total=total, desc="metrics", disable=not progress):
        bss.append(r)
    for row, r in zip(rows, bss, strict=True):
        row.update(r)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    df = df[[*RESULT_COLUMNS, *extra]]
    for c in METRICS:
        df[c] = df[c].astype(np.float64)
    return df


#: Name used in docs/design.md.
evaluate = evaluate_clips


# --------------------------------------------------------------------------------------------
# Medians with bootstrap intervals
# --------------------------------------------------------------------------------------------
def _boot_median_ci(x: np.ndarray, n_boot: int, rng: np.random.Generator,
                    alpha: float = 0.05) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if n_boot <= 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float(x[0])
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    meds = np.median(x[idx], axis=1)
    lo, hi = np.quantile(meds, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def medians_table(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                  by: tuple[str, ...] = CELL_KEYS) -> pd.DataFrame:
    """Per-cell medians of every metric with percentile-bootstrap 95 % intervals.

    Columns: ``by`` keys, ``n`` (clips), ``n_bss`` (clips with BSS Eval), then for each metric
    ``m`` in si_sdr, sdr, sir, sar: ``m`` (median over non-NaN values), ``m_lo``, ``m_hi``.
    The resampling of each cell is seeded from ``seed`` and the cell's key (CRC32), so a
    cell's interval does not change when other cells are added.
    """
    cols = [*by, "n", "n_bss"] + [f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi")]
    if df.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for key, g in df.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cell_seed = zlib.crc32("|".join(map(str, key)).encode())
        rng = np.random.default_rng([int(seed), cell_seed])
        row = dict(zip(by, key))
        row["n"] = int(len(g))
        row["n_bss"] = int((~np.isnan(g["sdr"].to_numpy(dtype=float))).sum()) \
            if "sdr" in g else 0
        for m in METRICS:
            x = g[m].to_numpy(dtype=np.float64) if m in g else np.array([])
            fin = x[~np.isnan(x)]
            row[m] = float(np.median(fin)) if fin.size else float("nan")
            row[f"{m}_lo"], row[f"{m}_hi"] = _boot_median_ci(x, n_boot, rng)
        out.append(row)
    return pd.DataFrame(out, columns=cols)
