"""From a mixture (and the target's score) to the estimated target waveform.

Used by 03_evaluate.ipynb, 05_listen.ipynb, ``guitarsep evaluate`` and ``guitarsep separate``.
Every model, and every reference, goes through the same path::

    mix (44.1 kHz) -> resample to setting.sr -> STFT (models.frontend.Spectrogram)
        -> magnitude estimate of the target  (model, oracle IRM, or score mask x |X|)
        -> Wiener filter with the mixture (norbert)  -> inverse STFT -> resample back

Decisions:

* **Wiener filter.** ``norbert.wiener(v, X, iterations, use_softmask=False)`` with two
  sources: ``v[..., 0]`` = the target magnitude estimate and ``v[..., 1]`` = the residual
  ``max(|X| - est, 0)`` (our models estimate only the target, as Open-Unmix does with one
  target plus its residual). norbert's shape convention is ``(frames, bins, channels,
  sources)``; we are mono (1 channel) and compute in complex128 as norbert recommends. For one
  channel the EM's spatial covariance is 1, so one iteration is the frame-local power ratio
  mask ``est^2 / (est^2 + res^2)`` applied to the complex mixture, and ``iterations=0`` is the
  magnitude estimate with the mixture phase. One iteration is computed in that closed form
  (:func:`_one_channel_em_step`, equal to norbert to float64 rounding, tested against it);
  other counts call norbert. norbert's EM adds a fixed regulariser after its
  own per-call rescaling; we fix that rescaling once per input (:func:`wiener_target`'s
  ``scale``) so the result does not depend on chunk boundaries.
* **References** (same Wiener/iSTFT path): :func:`oracle_irm` (ideal ratio mask
  ``|T| / (|T| + |A|)`` from the true stems times ``|X|``: an upper bound for magnitude
  masking), :func:`score_only` (soft score mask times ``|X|``, no learning) and
  :func:`mixture` (the input itself: the floor).
* **Chunking.** Input longer than ``chunk_s`` (30 s) is processed in chunks of ``chunk_s``
  seconds, each with ``context_s`` seconds of extra context on both sides (cut off after
  separation) and joined with a raised-cosine cross-fade of ``overlap_s`` seconds. Chunk
  boundaries lie on the STFT hop grid and score masks are computed per chunk from the notes
  near it, so memory stays flat and, for a frame-local model, chunked and one-shot outputs
  agree to float precision (tests/test_separate.py).
* **Level.** A network's output is not proportional to its input's level (its input
  normalisation and non-linearities are fitted to the corpus), so every model hears its input
  at one level: :func:`separate_clip` (and the block-wise ``stream_separate``) measure the
  gated level of the whole mixture (``io.LevelMeter``), scale the network's input magnitude
  to :data:`MODEL_INPUT_DB` and scale its estimate back. The Wiener filter and the references
  are level-equivariant already. A gain applied to the input then changes the output by
  the same gain (tests/test_separate.py::test_output_follows_input_gain).
* **Resampling** (low_res works at 8192 Hz) uses soxr "HQ"; the output is trimmed/padded to
  exactly ``len(mix)``.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from guitarsep.config import MaskParams, StftSetting
from guitarsep.io import fix_length, gated_level_db, resample
from guitarsep.separation.chunking import ChunkPlan, overlap_add, plan_chunks
from guitarsep.score import Notes, binary_score_mask
from guitarsep.score.tuning import tuned
from guitarsep.vocabulary import REFERENCES
from guitarsep.models.frontend import Spectrogram, istft, score_pair

__all__ = [
    "MODEL_INPUT_DB", "input_gain", "segment_magnitude", "separate_clip", "separate_batch",
    "estimate_magnitude", "oracle_irm", "score_only", "mixture", "wiener_target",
]


CHUNK_S = 30.0
#: The gated level (dBFS) every network hears its input at: the level of the corpus's
#: mixtures (two stems rendered at -20 dBFS gated each, summed: about -17).
MODEL_INPUT_DB = -17.0
OVERLAP_S = 1.0
CONTEXT_S = 2.0


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _as_wave(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a mono waveform (n_samples,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: empty waveform")
    return x


@dataclass(frozen=True)
class Segment:
    """A chunk of the (resampled) input: samples ``[start, stop)`` at ``sr``."""

    start: int
    stop: int
    sr: int
    hop: int

    @property
    def n_frames(self) -> int:
        return (self.stop - self.start) // self.hop + 1


def wiener_target(X: np.ndarray, est_mag: np.ndarray, iterations: int = 1, *,
                  scale: float | None = None) -> np.ndarray:
    """Complex target STFT from the mixture STFT ``X (T, F)`` and a target magnitude
    estimate ``est_mag (T, F)``, via ``norbert.wiener`` with the residual
    ``max(|X| - est, 0)`` as the second source. Returns complex128 ``(T, F)``.

    ``scale``: ``X`` and the estimates are multiplied by it before norbert and the result is
    divided by it afterwards. norbert regularises its EM with a constant (``sqrt(eps)``) after
    dividing by ``max(1, max|X| / 10)``, which depends on the chunk; :func:`_run_chunked`
    passes one scale for the whole input (``10 / (peak * n_fft / 2)``, so ``max|X| <= 10``
    and norbert does not rescale), so chunked and one-shot results agree. Default:
    ``10 / max|X|``.
    """
    with warnings.catch_warnings():     # norbert.contrib imports a deprecated scipy path
        warnings.simplefilter("ignore", DeprecationWarning)
        import norbert

    X = np.asarray(X).astype(np.complex128)
    est = np.clip(np.asarray(est_mag, dtype=np.float64), 0.0, None)
    if est.shape != X.shape:
        raise ValueError(f"wiener_target: est {est.shape} vs mixture {X.shape}")
    if scale is None:
        peak = float(np.abs(X).max()) if X.size else 0.0
        scale = 10.0 / peak if peak > 0 else 1.0
    resid = np.clip(np.abs(X) - est, 0.0, None)
    if int(iterations) == 1:
        return _one_channel_em_step(X, est * scale, resid * scale)
    v = np.stack([est, resid], axis=-1)[:, :, None, :] * scale   # (T, F, 1 channel, 2 sources)
    x = X[:, :, None] * scale                                      # a copy: norbert works in place
    y = norbert.wiener(v, x, iterations=int(iterations), use_softmask=False)
    return y[:, :, 0, 0] / scale


def _one_channel_em_step(X: np.ndarray, est: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """What ``norbert.wiener(.., iterations=1, use_softmask=False)`` returns for one channel
    and the two sources ``est``, ``resid`` (scaled magnitudes ``(T, F)``), in closed form:
    norbert's spatial covariance of source j is the 1 x 1 ``R_j = S_j / (eps + S_j)``
    (``S_j`` its power summed over frames), the mixture model ``C = v_t R_t + v_o R_o +
    sqrt(eps)`` and the gain ``v_t R_t / (C + eps)`` (its ``_invert`` of a 1 x 1). Equal to
    norbert to float64 rounding (tests/test_separate.py) and about 35x faster on a 15-s clip:
    norbert loops over frames in Python, and that was most of the evaluation stage's time."""
    eps = np.finfo(np.float64).eps
    v_t, v_o = est * est, resid * resid
    s_t, s_o = v_t.sum(axis=0), v_o.sum(axis=0)
    v_t *= s_t / (eps + s_t)
    v_o *= s_o / (eps + s_o)
    return v_t / (v_t + v_o + (np.sqrt(eps) + eps)) * X


def _masks_for_segment(target_notes, accomp_notes, seg: Segment, setting: StftSetting,
                       params: MaskParams) -> tuple[np.ndarray, np.ndarray]:
    """Binary harmonic-comb masks ``(M_t, M_a)`` (T, F) on the segment's frame grid.

    Masks are computed on a grid that starts ``margin`` seconds (a whole number of hops)
    before the segment, from the notes of the window around it, then cropped, so they equal
    the full-clip masks at those frames.
    """
    hop, sr = setting.hop, setting.sr
    margin = math.ceil((max(params.onset_tol, params.offset_tol, params.fermata) + 0.5)
                       * sr / hop) * hop
    g0 = max(0, seg.start - margin)
    off = (seg.start - g0) // hop
    n_frames = off + seg.n_frames
    t0, t1 = g0 / sr, (seg.stop + margin) / sr

    def win(notes):
        return notes.window(t0, t1)

    kw = dict(sr=sr, n_fft=setting.n_fft, hop=hop, params=params)
    m_t = binary_score_mask(win(target_notes), n_frames, **kw)
    m_a = binary_score_mask(win(accomp_notes), n_frames, **kw)
    return m_t[off:off + seg.n_frames], m_a[off:off + seg.n_frames]


def _plan(n: int, setting: StftSetting, chunk_s: float | None, overlap_s: float,
          context_s: float) -> ChunkPlan:
    """Chunks at ``setting.sr``: core, cross-fade and context are whole numbers of hops, so
    every chunk starts on the global frame grid (chunked = one-shot for a frame-local model)."""
    hop = setting.hop
    fade = max(1, round(overlap_s * setting.sr / hop)) * hop
    core = None if chunk_s is None else max(1, round(chunk_s * setting.sr / hop)) * hop
    ctx = math.ceil((fade // 2 + context_s * setting.sr + setting.n_fft) / hop) * hop
    return plan_chunks(n, core=core, fade=fade, context=ctx)


def _run_chunked(mix: np.ndarray, sr: int, setting: StftSetting,
                 magnitude_fn: Callable[[torch.Tensor, Segment, dict], np.ndarray], *,
                 aux: dict[str, np.ndarray] | None = None, wiener_iterations: int = 1,
                 chunk_s: float | None = CHUNK_S, overlap_s: float = OVERLAP_S,
                 context_s: float = CONTEXT_S,
                 on_chunk: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Resample, split into segments, estimate + Wiener + iSTFT each, cross-fade, resample
    back. ``magnitude_fn(X (1, T, F) complex tensor, segment, aux_segments) -> (T, F)``;
    ``on_chunk(chunks done, chunks in all)`` is called after each chunk (progress bars)."""
    n_in = mix.shape[0]
    x = resample(mix, sr, setting.sr)
    n_work = x.shape[0]
    # Zero tail of n_fft samples: with center=True the last samples of a signal can lie
    # outside every analysis window but one edge (low_res: hop 768 > n_fft / 2 = 512 when
    # len % 768 > 512), where the iSTFT divides by a vanishing window sum. Padding puts every
    # real sample in the interior; the tail is cut off again below.
    pad = setting.n_fft
    x = np.pad(x, (0, pad))
    aux = {k: np.pad(resample(v, sr, setting.sr), (0, pad)) for k, v in (aux or {}).items()}
    n = x.shape[0]
    hop = setting.hop
    spec = Spectrogram(setting)
    peak = float(np.abs(x).max())
    # one Wiener scale for the whole input: |X| <= peak * sum(window) = peak * n_fft / 2
    scale = 10.0 / (peak * setting.n_fft / 2) if peak > 0 else 1.0

    def process(start: int, stop: int) -> np.ndarray:
        seg = Segment(start, stop, setting.sr, hop)
        wav = torch.from_numpy(np.ascontiguousarray(x[start:stop]))[None]
        X = spec(wav)                                                    # (1, T, F)
        aux_seg = {k: v[start:stop] for k, v in aux.items()}
        est = np.asarray(magnitude_fn(X, seg, aux_seg), dtype=np.float64)
        est = est.reshape(X.shape[-2:])
        Y = wiener_target(X[0].numpy(), est, wiener_iterations, scale=scale)
        # length=None: (T - 1) * hop samples, i.e. only where the windows overlap; the few
        # uncovered tail samples (zero-padded here) lie in the padding or the cut context.
        y = istft(torch.from_numpy(Y), setting, None).numpy()
        return fix_length(y, stop - start)

    plan = _plan(n, setting, chunk_s, overlap_s, context_s)
    pieces = [piece for _, piece in overlap_add(plan, process, on_chunk)]
    y = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    y = y[:n_work].astype(np.float32)
    if setting.sr != sr:
        y = resample(y, setting.sr, sr)
    return fix_length(y, n_in)


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def input_gain(level_db: float) -> float:
    """The factor that brings a mixture of gated level ``level_db`` (dBFS, from
    ``io.LevelMeter``) to :data:`MODEL_INPUT_DB`; 1 for silence."""
    if not np.isfinite(level_db):
        return 1.0
    return float(10.0 ** ((MODEL_INPUT_DB - level_db) / 20.0))


@torch.no_grad()
def estimate_magnitude(model: torch.nn.Module, X: torch.Tensor,
                       masks: tuple[torch.Tensor, torch.Tensor] | dict | None,
                       gain: float = 1.0) -> torch.Tensor:
    """The model's target magnitude for a complex mixture STFT ``X (B, T, F)``.

    ``masks`` = the binary harmonic-comb masks ``(M_t, M_a)`` (bool/float ``(B, T, F)``, or
    a dict with keys ``"target"``, ``"accomp"``), or None for a blind model. The score input
    is built from ``model.score_kind`` by :func:`guitarsep.models.frontend.score_pair` (soft:
    ``M_t / (M_t + M_a)``, binary: ``M_t``, None: no score); ``score_accomp`` (read only by
    si_cnn) is the same mask with the parts swapped. ``gain`` (:func:`input_gain`) scales the
    magnitude the network hears; the estimate is scaled back by ``1 / gain``. Runs on the
    model's device, without gradients; returns a float tensor ``(B, T, F)`` on the model's
    device.
    """
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = X.device
    mix_mag = X.abs().to(device=device, dtype=torch.float32)
    kind = getattr(model, "score_kind", None)
    if kind is None:
        score = score_accomp = None
    else:
        if masks is None:
            raise ValueError(f"model with score_kind={kind!r} needs the score masks")
        if isinstance(masks, dict):
            m_t, m_a = masks["target"], masks["accomp"]
        else:
            m_t, m_a = masks
        m_t = torch.as_tensor(m_t).to(device)
        m_a = torch.as_tensor(m_a).to(device)
        score, score_accomp = score_pair(kind, m_t, m_a)
    out = model(mix_mag * gain, score, score_accomp)
    if out.shape != mix_mag.shape:
        raise ValueError(f"model returned {tuple(out.shape)}, expected {tuple(mix_mag.shape)}")
    return out.float() / gain


def _segment_notes(notes: Notes, seg: Segment, margin_s: float = 2.0) -> Notes:
    """The notes sounding within ``margin_s`` of ``seg``, times relative to its first sample,
    unclipped (:meth:`Notes.around`)."""
    return notes.around(seg.start / seg.sr, seg.stop / seg.sr, margin_s)


def segment_magnitude(model: torch.nn.Module, X: torch.Tensor, target_notes, accomp_notes,
                      seg: Segment, setting: StftSetting, params: MaskParams, *,
                      gain: float = 1.0, device: str | torch.device = "cpu") -> np.ndarray:
    """Target magnitude ``(T, F)`` of one segment's complex STFT ``X (1, T, F)``: the one
    place where a model meets its score. A network (``score_kind`` soft / binary / None)
    gets the segment's comb masks (:func:`estimate_magnitude`); the score-informed NMF
    (``score_kind == "notes"``, :class:`~guitarsep.separation.score_nmf.ScoreNmf`) gets the
    notes themselves, relative to the segment."""
    kind = getattr(model, "score_kind", None)
    if kind == "notes":
        return model.magnitude(X[0].abs().numpy(), _segment_notes(target_notes, seg),
                               _segment_notes(accomp_notes, seg), mask=params)
    masks = None
    if kind is not None:
        m_t, m_a = _masks_for_segment(target_notes, accomp_notes, seg, setting, params)
        masks = (torch.from_numpy(np.asarray(m_t))[None], torch.from_numpy(np.asarray(m_a))[None])
    return estimate_magnitude(model, X.to(device), masks, gain)[0].cpu().numpy()


def separate_clip(model: torch.nn.Module, mix, target_notes, accomp_notes,
                  setting: StftSetting, *, sr: int = 44100, mask_params: MaskParams | None = None,
                  wiener_iterations: int = 1, device: str | torch.device = "cpu",
                  chunk_s: float | None = CHUNK_S, overlap_s: float = OVERLAP_S,
                  context_s: float = CONTEXT_S,
                  on_chunk: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Estimate the target guitar in ``mix`` given its notes (and the other part's notes).

    Args:
        model: a network from ``guitarsep.models`` (``forward(mix_mag, score, score_accomp)``;
            ``model.score_kind`` in {"soft", "binary", None}). Put in eval mode for the call
            and moved to ``device``; its previous train/eval mode is restored.
        mix: mono waveform ``(n,)`` at ``sr``; the network hears it at :data:`MODEL_INPUT_DB`.
            The score NMF's templates and combs follow its tuning
            (:func:`guitarsep.score.tuning.tuned`: A4 as read from ``mix``); a network's
            combs stay where it was trained (A4 = 440 Hz).
        target_notes, accomp_notes: ``score.Notes`` of the target and the accompaniment,
            times relative to the start of ``mix``.
        setting: the model's :class:`~guitarsep.config.StftSetting`.
        chunk_s: chunk length for long input (None: one shot).
        on_chunk: called as ``on_chunk(chunks done, chunks in all)`` after each chunk.

    Returns:
        float32 ``(n,)``: the target estimate at ``sr``, same length as ``mix``.
    """
    mix = _as_wave(mix, "separate_clip: mix")
    params = mask_params or MaskParams()
    if getattr(model, "score_kind", None) == "notes":     # the NMF; networks: see score.tuning
        params = tuned(params, mix, sr, target_notes, accomp_notes)
    model = model.to(device)
    was_training = model.training
    model.eval()
    gain = input_gain(gated_level_db(mix, sr))

    def fn(X, seg, _aux):
        return segment_magnitude(model, X, target_notes, accomp_notes, seg, setting, params,
                                 gain=gain, device=device)

    try:
        return _run_chunked(mix, sr, setting, fn, wiener_iterations=wiener_iterations,
                            chunk_s=chunk_s, overlap_s=overlap_s, context_s=context_s,
                            on_chunk=on_chunk)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------------------------
def oracle_irm(mix, target, setting: StftSetting, *, sr: int = 44100, wiener_iterations: int = 1,
               chunk_s: float | None = CHUNK_S, overlap_s: float = OVERLAP_S,
               context_s: float = CONTEXT_S) -> np.ndarray:
    """Oracle ideal ratio mask ``|T| / (|T| + |A|)`` (``A = mix - target``) times ``|X|``,
    through the same Wiener/iSTFT path: an upper bound for magnitude-masking models in
    ``setting``. Needs the true target stem. Returns float32 ``(n,)`` at ``sr``."""
    mix = _as_wave(mix, "oracle_irm: mix")
    target = _as_wave(target, "oracle_irm: target")
    if target.shape != mix.shape:
        raise ValueError(f"oracle_irm: target {target.shape} vs mix {mix.shape}")
    spec = Spectrogram(setting)

    def fn(X, seg, aux):
        T = spec(torch.from_numpy(np.ascontiguousarray(aux["target"]))[None])[0].numpy()
        Xn = X[0].numpy()
        t_mag, a_mag = np.abs(T), np.abs(Xn - T)
        den = t_mag + a_mag
        irm = np.divide(t_mag, den, out=np.zeros_like(t_mag), where=den > 0)
        return irm * np.abs(Xn)

    return _run_chunked(mix, sr, setting, fn, aux={"target": target},
                        wiener_iterations=wiener_iterations, chunk_s=chunk_s,
                        overlap_s=overlap_s, context_s=context_s)


def score_only(mix, target_notes, accomp_notes, setting: StftSetting, *, sr: int = 44100,
               mask_params: MaskParams | None = None, wiener_iterations: int = 1,
               chunk_s: float | None = CHUNK_S, overlap_s: float = OVERLAP_S,
               context_s: float = CONTEXT_S) -> np.ndarray:
    """No learning: the soft score mask ``M_t / (M_t + M_a)`` times ``|X|`` (mixture phase),
    through the same Wiener/iSTFT path. Returns float32 ``(n,)`` at ``sr``."""
    mix = _as_wave(mix, "score_only: mix")
    params = tuned(mask_params or MaskParams(), mix, sr, target_notes, accomp_notes)

    def fn(X, seg, _aux):
        m_t, m_a = _masks_for_segment(target_notes, accomp_notes, seg, setting, params)
        soft = score_pair("soft", torch.from_numpy(np.asarray(m_t)),
                          torch.from_numpy(np.asarray(m_a)))[0].numpy()
        return soft * X[0].abs().numpy()

    return _run_chunked(mix, sr, setting, fn, wiener_iterations=wiener_iterations,
                        chunk_s=chunk_s, overlap_s=overlap_s, context_s=context_s)


def mixture(mix, *_args, **_kwargs) -> np.ndarray:
    """The mixture itself as the "estimate" (the floor of every table). Extra arguments are
    accepted and ignored so it can be called like the other references."""
    return _as_wave(mix, "mixture: mix").copy()


# --------------------------------------------------------------------------------------------
# many clips
# --------------------------------------------------------------------------------------------
def separate_batch(model: torch.nn.Module | str, clips: Iterable, setting: StftSetting, *,
                   sr: int = 44100, mask_params: MaskParams | None = None,
                   wiener_iterations: int = 1, device: str | torch.device = "cpu",
                   progress: bool = True, desc: str | None = None, total: int | None = None,
                   **kwargs) -> Iterator[tuple[object, np.ndarray]]:
    """Separate clips one by one, lazily: yields ``(clip, estimate)`` (tqdm bar).

    ``model`` is a network or one of :data:`~guitarsep.vocabulary.REFERENCES` ("oracle_irm",
    "score_only", "mixture"). A clip is a :class:`guitarsep.corpus.Clip` (``mix``, ``target``
    for the oracle, ``target_notes``, ``accomp_notes``). Extra keyword arguments go to
    :func:`separate_clip` (chunking). A generator, so only one estimate is alive at a time.
    """
    from tqdm.auto import tqdm

    if total is None and hasattr(clips, "__len__"):
        total = len(clips)
    name = model if isinstance(model, str) else getattr(model, "name", type(model).__name__)
    if isinstance(model, str) and model not in REFERENCES:
        raise ValueError(f"unknown reference {model!r}; expected a model or one of {REFERENCES}")
    for clip in tqdm(clips, total=total, desc=desc or f"separate {name}", disable=not progress):
        mix = clip.mix
        if isinstance(model, str) and model == "mixture":
            yield clip, mixture(mix)
            continue
        if isinstance(model, str) and model == "oracle_irm":
            yield clip, oracle_irm(mix, clip.target, setting, sr=sr,
                                   wiener_iterations=wiener_iterations, **kwargs)
            continue
        t_notes, a_notes = clip.target_notes, clip.accomp_notes
        if isinstance(model, str):                                  # "score_only"
            est = score_only(mix, t_notes, a_notes, setting, sr=sr, mask_params=mask_params,
                             wiener_iterations=wiener_iterations, **kwargs)
        else:
            est = separate_clip(model, mix, t_notes, a_notes, setting, sr=sr,
                                mask_params=mask_params, wiener_iterations=wiener_iterations,
                                device=device, **kwargs)
        yield clip, est
