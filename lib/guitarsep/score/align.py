"""Score-to-audio alignment: move a score's notes onto the times they are played in a recording.

Used by ``guitarsep separate --align`` (:mod:`guitarsep.app.separate_file`) and by the
robustness study (``06_robustness.ipynb``, :mod:`guitarsep.evaluation.robustness`). A user's
score (a tab or a MIDI file) rarely lines up with their recording: the recording starts at
another time, is played at another tempo, speeds up and slows down. The score mask needs note
times within about 0.1 s (``MaskParams.onset_tol``), so the notes are aligned first:

1. **Render** the score (every part given, summed) with seen timbres of the corpus
   (:func:`guitarsep.corpus.render.render_part`, clean chains) at 22050 Hz.
2. **Features** of the rendering and of the mixture, 22050 Hz, hop 512 (23 ms): chroma
   (``librosa.feature.chroma_stft`` on a 4096-point power STFT), L2-normalised, plus a
   *silence* dimension (0 above -40 dB of the signal's loudest frame, 1 below -50 dB)
   so that silences match silences and cosine distances exist for silent frames; the vector is
   normalised to unit length again. Chroma ignores timbre and octave errors of the rendering.
3. **DTW** (``librosa.sequence.dtw``, cosine cost ``1 - f.g``, steps (1,1), (1,0), (0,1),
   path from the first to the last frame of both: the score is assumed to cover the
   recording, with silence or extra material allowed at either end). Long inputs would need
   a cost matrix of ``N x M`` cells (10 minutes: 26k x 26k); above ``max_cells`` we align
   **coarse-to-fine**: DTW on features averaged over ``k`` frames, then fine DTW in
   overlapping windows of ``window_s`` seconds between points of the coarse path, keeping
   the middle of each window, so memory stays bounded for any length.
4. **Warp**: the path gives, for every score frame, the mean mixture frame it is matched
   with; onsets and offsets are mapped through this curve by linear interpolation
   (``numpy.interp``; times outside the rendering are clamped). A warped note keeps at least
   10 ms of duration.
5. **Report** (returned, printed by the CLI): ``mean_cost`` (mean cosine distance along the
   path; about 0.1-0.2 for a correct alignment of a different timbre, 0.4+ when score and
   recording do not match), ``tempo_ratio`` (median local slope: recording seconds per score
   second), ``slope_dev`` (median absolute deviation of log2 of the local slope: 0 for a
   constant tempo), ``diagonal_fraction`` (share of diagonal DTW steps), ``offset_s`` (shift
   of the first onset), and ``quality`` = "good" / "doubtful" with ``warnings``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from guitarsep.io import resample
from guitarsep.score.notes import Notes

__all__ = ["align_notes", "AlignConfig", "format_report", "score_features", "dtw_path",
           "warp_times"]


PAD_FRAMES = 16


@dataclass(frozen=True)
class AlignConfig:
    """Alignment parameters (see the module docstring)."""

    sr: int = 22050
    n_fft: int = 4096
    hop: int = 512
    silence_db: float = -40.0
    onset_norm_s: float = 2.0         # onset strength divided by its running max over this
    step_penalty: float = 0.1         # DTW cost added to each non-diagonal step
    max_cells: float = 1.2e7          # largest DTW cost matrix computed at once
    window_s: float = 40.0            # coarse-to-fine: fine DTW window (each side +25 %)
    slope_window_s: float = 3.0       # local tempo ratio measured over this much score time
    cost_warn: float = 0.35           # mean path cost above this: "doubtful"
    slope_dev_warn: float = 0.25      # tempo wobble above this (log2 units): "doubtful"
    max_score_ratio: float = 4.0      # a score longer than this x the recording (+ 60 s): error

    @property
    def hop_s(self) -> float:
        return self.hop / self.sr


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------

def score_features(audio: np.ndarray, sr: int, cfg: AlignConfig = AlignConfig()) -> np.ndarray:
    """Feature frames ``(T, 14)`` at ``cfg.hop``: columns 0-12 a unit vector (12 chroma + 1
    silence), column 13 the locally normalised onset strength in [0, 1]."""
    import librosa
    from scipy.ndimage import maximum_filter1d

    y = np.asarray(audio, dtype=np.float32).reshape(-1)
    y = resample(y, sr, cfg.sr)
    # PAD_FRAMES of silence first, so that a note at t = 0 has an onset (flux needs a frame
    # before it); removed again at the end
    y = np.concatenate([np.zeros(PAD_FRAMES * cfg.hop, np.float32), y])
    S = np.abs(librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop, center=True)) ** 2
    chroma = librosa.feature.chroma_stft(S=S, sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop,
                                         norm=None, tuning=0.0)          # (12, T)
    chroma = chroma / np.maximum(np.linalg.norm(chroma, axis=0, keepdims=True), 1e-12)
    energy = S.sum(axis=0)
    db = 10 * np.log10(np.maximum(energy, 1e-20) / max(float(energy.max()), 1e-20))
    silence = np.clip((cfg.silence_db - db) / 10.0, 0.0, 1.0)   # 0 above -40 dB, 1 below -50
    f = np.vstack([chroma * (1.0 - silence), silence[None]]).T          # (T, 13)
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    # onsets: spectral flux of the log-mel spectrogram, divided by its running maximum over
    # onset_norm_s (loudness and timbre independent), widened by a short decay
    mel = librosa.feature.melspectrogram(S=S, sr=cfg.sr, n_mels=64)
    o = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=cfg.sr,
                                     hop_length=cfg.hop, center=False)
    o = np.pad(o, (0, max(0, f.shape[0] - o.shape[0])))[:f.shape[0]]
    o[silence >= 1.0] = 0.0
    size = max(3, int(round(cfg.onset_norm_s / cfg.hop_s)) | 1)
    o = o / np.maximum(maximum_filter1d(o, size=size), max(float(o.max()), 1e-12) * 0.05)
    decay = np.array([1.0, 0.75, 0.5, 0.25])
    o = np.clip(np.convolve(o, decay)[:o.shape[0]], 0.0, 1.0)
    return np.hstack([f, o[:, None]])[PAD_FRAMES:].astype(np.float64)


# --------------------------------------------------------------------------------------------
# DTW
# --------------------------------------------------------------------------------------------

def _cost(A: np.ndarray, B: np.ndarray, onset_weight: float = 0.5) -> np.ndarray:
    """Cost matrix: cosine distance of the chroma/silence vectors + weighted onset difference."""
    C = A[:, :13] @ B[:, :13].T
    np.subtract(1.0, C, out=C)
    np.clip(C, 0.0, 2.0, out=C)
    C += onset_weight * np.abs(A[:, 13][:, None] - B[:, 13][None, :])
    return C


def _dtw(A: np.ndarray, B: np.ndarray, subseq: bool = False, step_penalty: float = 0.0
         ) -> tuple[np.ndarray, np.ndarray]:
    """DTW between unit-vector sequences: ``(path (L, 2) ascending, cost along path)``.
    ``subseq``: ``A`` is matched to any stretch of ``B`` (free start and end in ``B``)."""
    import librosa

    C = _cost(A, B)
    # steps (1,1), (0,1), (1,0); a constant cost on the two straight steps makes the path
    # keep a steady tempo through repetitive passages (arpeggios, repeated chords) instead of
    # slipping by a beat where the cost matrix is periodic
    _, wp = librosa.sequence.dtw(C=C, backtrack=True, subseq=subseq,
                                 step_sizes_sigma=np.array([[1, 1], [0, 1], [1, 0]]),
                                 weights_add=np.array([0.0, step_penalty, step_penalty]),
                                 weights_mul=np.array([1.0, 1.0, 1.0]))
    if subseq and C.shape[0] > C.shape[1]:
        # librosa (0.10/0.11) swaps the columns of a subsequence path computed from a tall C
        # as if it had transposed C itself, which it only does for X/Y input
        wp = wp[:, ::-1]
    wp = wp[::-1].astype(np.int64)
    return wp, C[wp[:, 0], wp[:, 1]]


def _pool(F: np.ndarray, k: int) -> np.ndarray:
    n = F.shape[0] // k * k
    P = F[:n].reshape(-1, k, F.shape[1]).mean(axis=1)
    if n < F.shape[0]:
        P = np.vstack([P, F[n:].mean(axis=0, keepdims=True)])
    P[:, :13] /= np.maximum(np.linalg.norm(P[:, :13], axis=1, keepdims=True), 1e-12)
    return P


def dtw_path(A: np.ndarray, B: np.ndarray, cfg: AlignConfig = AlignConfig(), *,
             subseq: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """DTW path between feature sequences ``A (N, d)`` (score) and ``B (M, d)`` (mixture).

    Returns ``(path (L, 2), cost (L,), method)``: the path runs from score frame 0 to
    ``N - 1`` with non-decreasing indices (mixture frames from 0 to ``M - 1`` unless
    ``subseq``, which lets the score start and end anywhere in the mixture); ``method`` is
    "full" or "coarse-to-fine (k=...)".
    """
    N, M = A.shape[0], B.shape[0]
    if N * M <= cfg.max_cells:
        wp, cost = _dtw(A, B, subseq, cfg.step_penalty)
        return wp, cost, "full"
    k = max(2, math.ceil(math.sqrt(N * M / cfg.max_cells)))
    cwp, _ = _dtw(_pool(A, k), _pool(B, k), subseq, cfg.step_penalty)
    # coarse path in fine frames (centre of each pooled block), monotone
    ci = np.minimum(cwp[:, 0] * k + k // 2, N - 1)
    cj = np.maximum.accumulate(np.minimum(cwp[:, 1] * k + k // 2, M - 1))
    j_first, j_last = int(cwp[0, 1] * k), min(M, int(cwp[-1, 1] * k + k))
    if not subseq:
        j_first, j_last = 0, M
    ci = np.concatenate([[0], ci, [N - 1]])
    cj = np.concatenate([[j_first], cj, [j_last - 1]])
    keep = np.concatenate([[True], np.diff(ci) > 0])

    def coarse_j(i):       # mixture frame matched to score frame i on the coarse path
        return int(np.rint(np.interp(i, ci[keep], cj[keep])))

    # window of score frames (+ pad on each side): small enough that a window and its
    # mixture span (at up to 2x the score's tempo) stay within max_cells
    win = max(8, min(int(round(cfg.window_s / cfg.hop_s)), int(math.sqrt(cfg.max_cells) / 3)))
    pad = win // 4
    pieces = []
    for s0 in range(0, N, win):
        s1 = min(N, s0 + win)
        a0, a1 = max(0, s0 - pad), min(N, s1 + pad)
        # the first and last windows keep the free (subsequence) ends, with k frames of slack
        b0 = max(0, j_first - k) if a0 == 0 else coarse_j(a0)
        b1 = min(M, j_last + k) if a1 == N else coarse_j(a1) + 1
        b1 = max(b1, b0 + 1)
        if (a1 - a0) * (b1 - b0) > 4 * cfg.max_cells:    # pathological slope: cap the span
            b1 = b0 + int(4 * cfg.max_cells // (a1 - a0))
        wp, _ = _dtw(A[a0:a1], B[b0:b1], subseq and (a0 == 0 or a1 == N), cfg.step_penalty)
        wp = wp + [a0, b0]
        pieces.append(wp[(wp[:, 0] >= s0) & (wp[:, 0] < s1)])
    path = np.vstack(pieces)
    path[:, 1] = np.maximum.accumulate(path[:, 1])        # stitched pieces stay monotone
    cost = np.clip(1.0 - np.einsum("ij,ij->i", A[path[:, 0], :13], B[path[:, 1], :13]),
                   0.0, 2.0) + 0.5 * np.abs(A[path[:, 0], 13] - B[path[:, 1], 13])
    return path, cost, f"coarse-to-fine (k={k})"


def warp_times(times: np.ndarray, path: np.ndarray, hop_s: float) -> np.ndarray:
    """Map score times (s) to mixture times (s) through a DTW path of frame pairs."""
    i, j = path[:, 0], path[:, 1].astype(np.float64)
    ui, inv = np.unique(i, return_inverse=True)
    jm = np.bincount(inv, weights=j) / np.bincount(inv)
    jm = np.maximum.accumulate(jm)
    return np.interp(np.asarray(times, dtype=np.float64) / hop_s, ui, jm) * hop_s


def _warp_notes(notes: Notes, path: np.ndarray, hop_s: float, min_dur: float = 0.01) -> Notes:
    if len(notes) == 0:
        return notes
    on = warp_times(notes.onset, path, hop_s)
    off = np.maximum(warp_times(notes.offset, path, hop_s), on + min_dur)
    return Notes(on, off, notes.pitch, notes.velocity)._sorted()


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

def _report(path, cost, method, notes_list, aligned, cfg: AlignConfig) -> dict:
    hop_s = cfg.hop_s
    steps = np.diff(path, axis=0)
    diagonal = float(np.mean((steps[:, 0] == 1) & (steps[:, 1] == 1))) if len(steps) else 1.0
    # local slope over windows of slope_window_s of score time, inside the notes' span
    all_on = np.concatenate([n.onset for n in notes_list if len(n)])
    all_off = np.concatenate([n.offset for n in notes_list if len(n)])
    t0, t1 = float(all_on.min()), float(all_off.max())
    w = cfg.slope_window_s
    grid = np.arange(t0, max(t0 + w, t1 - w) + 1e-9, w / 2)
    a = warp_times(grid, path, hop_s)
    b = warp_times(grid + w, path, hop_s)
    slopes = np.maximum((b - a) / w, 1e-3)
    log_s = np.log2(slopes)
    first_on = min(float(n.onset.min()) for n in notes_list if len(n))
    first_al = min(float(n.onset.min()) for n in aligned if len(n))
    rep = dict(method=method, hop_s=hop_s, n_score_frames=int(path[-1, 0]) + 1,
               n_mix_frames=int(path[-1, 1]) + 1, mean_cost=float(np.mean(cost)),
               tempo_ratio=float(2 ** np.median(log_s)),
               slope_dev=float(np.median(np.abs(log_s - np.median(log_s)))),
               diagonal_fraction=diagonal, offset_s=first_al - first_on,
               score_span_s=(t0, t1),
               aligned_span_s=(first_al, max(float(n.offset.max()) for n in aligned if len(n))))
    warnings = []
    if rep["mean_cost"] > cfg.cost_warn:
        warnings.append(f"mean path cost {rep['mean_cost']:.2f} > {cfg.cost_warn} (score and "
                        f"recording may not match)")
    if rep["slope_dev"] > cfg.slope_dev_warn:
        warnings.append(f"tempo varies a lot along the path (slope deviation "
                        f"{rep['slope_dev']:.2f} > {cfg.slope_dev_warn})")
    if not 0.5 <= rep["tempo_ratio"] <= 2.0:
        warnings.append(f"tempo ratio {rep['tempo_ratio']:.2f} is outside 0.5..2")
    rep["quality"] = "doubtful" if warnings else "good"
    rep["warnings"] = warnings
    return rep


def format_report(rep: dict) -> str:
    """One line summarising :func:`align_notes`'s report."""
    s = (f"alignment ({rep['method']}, {rep['hop_s'] * 1000:.0f} ms frames): "
         f"{rep['quality']}; mean cost {rep['mean_cost']:.3f}, tempo ratio "
         f"{rep['tempo_ratio']:.3f}, slope deviation {rep['slope_dev']:.3f}, "
         f"diagonal steps {100 * rep['diagonal_fraction']:.0f} %, first onset moved "
         f"{rep['offset_s']:+.2f} s")
    if rep["warnings"]:
        s += " [" + "; ".join(rep["warnings"]) + "]"
    return s


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------

def _timbre_rows(n: int):
    """Seen timbres with the clean chain, acoustic first, one per part (cycled)."""
    from guitarsep.corpus import load_timbres

    t = load_timbres()
    seen = t[(t["pool"] == "seen")]
    clean = seen[seen["chain"] == "clean"]
    rows = clean if len(clean) else seen
    rows = rows.sort_values(["family", "timbre_id"])
    ag = rows[rows["family"] == "ag"]
    eg = rows[rows["family"] == "eg"]
    ordered = [r for _, r in ag.iterrows()][:1] + [r for _, r in eg.iterrows()][:1]
    ordered += [r for _, r in rows.iterrows()]
    return [ordered[k % len(ordered)] for k in range(n)]


def render_score(notes_list: list[Notes], cfg: AlignConfig = AlignConfig()) -> np.ndarray:
    """The parts of ``notes_list`` rendered with seen clean timbres and summed, at ``cfg.sr``."""
    from guitarsep.corpus import render_part

    parts = [n for n in notes_list if n is not None and len(n)]
    if not parts:
        raise ValueError("alignment needs at least one note")
    end = max(n.duration for n in parts) + 1.0
    out = np.zeros(int(round(end * cfg.sr)), dtype=np.float32)
    for notes, row in zip(parts, _timbre_rows(len(parts))):
        y = render_part(notes, row, sr=cfg.sr, duration=end)
        out[:len(y)] += y[:len(out)]
    return out


def align_notes(notes_list: list[Notes], mix: np.ndarray, sr: int, *,
                cfg: AlignConfig = AlignConfig(), subseq: bool = False
                ) -> tuple[list[Notes], dict]:
    """Align the parts of a score to a recording.

    Args:
        notes_list: the score's parts (``score.Notes``; None or empty parts are passed
            through). All parts share one time warp (they are rendered together).
        mix: the recording, mono float ``(n,)`` at ``sr``.
        cfg: :class:`AlignConfig`.
        subseq: False (default): the score's first and last notes are pinned to the first
            and last sound of the recording. True: the score may start and end anywhere in
            the recording (subsequence DTW; for a recording that holds more than the score,
            less robust at the ends when the music repeats itself there).

    Returns:
        ``(aligned, report)``: the parts with warped onsets/offsets (same order, same pitches
        and velocities) and the report dict described in the module docstring
        (:func:`format_report` prints it).

    Raises ``ValueError`` (one line) for a score more than ``cfg.max_score_ratio`` times
    as long as the recording (+ 60 s): its rendering would not fit in memory (a note at
    1e12 s), and no tempo ratio the report accepts could align it.
    """
    used = [n for n in notes_list if n is not None and len(n)]
    mix_s = np.asarray(mix).size / sr
    end = max((n.duration for n in used), default=0.0)
    if end > cfg.max_score_ratio * mix_s + 60.0:
        raise ValueError(f"the score lasts {end:.4g} s, the recording {mix_s:.2f} s: more than "
                         f"{cfg.max_score_ratio:g} times as long, too long to align")
    rendering = render_score(notes_list, cfg)
    A = score_features(rendering, cfg.sr, cfg)
    B = score_features(np.asarray(mix, dtype=np.float32).reshape(-1), sr, cfg)
    # Only the sounding spans are aligned: the score from its first onset to its last offset
    # (+ 0.3 s of release), the recording from its first to its last non-silent frame. The
    # silence around them says nothing about the tempo, and in subsequence mode skipping
    # recording frames is free, which lets the DTW drop repeated chords at the ends.
    i0 = int(min(float(n.onset.min()) for n in used) / cfg.hop_s)
    i1 = min(A.shape[0], int(math.ceil((max(n.duration for n in used) + 0.3) / cfg.hop_s)) + 1)
    j0, j1 = 0, B.shape[0]
    if not subseq:
        sounding = np.flatnonzero(B[:, 12] < 0.5)
        if sounding.size == 0:
            raise ValueError("the recording is silent: nothing to align to")
        j0, j1 = int(sounding[0]), int(sounding[-1]) + 1
    path, cost, method = dtw_path(A[i0:i1], B[j0:j1], cfg, subseq=subseq)
    path = path + [i0, j0]
    aligned = [n if n is None else _warp_notes(n, path, cfg.hop_s) for n in notes_list]
    used_al = [a for n, a in zip(notes_list, aligned) if n is not None and len(n)]
    return aligned, _report(path, cost, method, used, used_al, cfg)
