"""Score-informed NMF: the score as constraints on a factorisation that adapts to the recording.

No learning, so nothing to overfit to a training timbre (Ewert & Müller 2012, "Using
score-informed constraints for NMF-based source separation"). The mixture magnitude ``V``
``(F, T)`` is modelled as ``W H``, one column of ``W`` (a spectral template) and one row of
``H`` (its activation) per (part, pitch) of the score, plus one broadband "attack" component
per part:

- **Templates** are zero outside the harmonics of their pitch (``±max(width_cents,
  min_half_bins)`` around ``k f0``) and start at ``1 / k``; the fit then learns each
  harmonic's actual amplitude in this recording, which the fixed comb of the score mask
  cannot.
- **Activations** are zero outside the frames the score gives the note (the score mask's
  tolerances); the fit learns the envelope within them, starting from a plucked string's
  decay (``exp(-t / decay_s)`` since the pitch's latest onset, floor ``decay_floor``), and
  once no note of the pitch is held, a release (``exp(-t / release_s)`` since the latest
  offset: the activity constraint lets a note ring up to ``fermata`` seconds past its
  offset, but a released string mostly stops). The start matters where both parts play one
  pitch in one timbre: their templates are then alike, and multiplicative updates keep the
  ratio of their activations where they start, so the part that plucked last, and is still
  held, should start the louder.
- **Attacks**: a flat template per part, active only around that part's onsets
  (``[onset - attack_before, onset + attack_after]``), for the pick noise the combs miss.
- **Note heads** (off by default, ``head_s`` 0; an ablation of ``scripts/nmf_dev.py``): a
  second harmonic template per (part, pitch), active only where the note cut to its first
  ``head_s`` seconds would be (with the score mask's tolerances): a plucked string is
  brighter at the pluck than in its decay, which one template per pitch has to average.

Multiplicative updates (KL divergence) keep every zero a zero, so the constraints hold. The
activations' updates are damped (``h_step``): each moves ``H`` only part of the way, so the
score's decay and release start keeps deciding which part's note sounds where the two parts'
harmonics meet, while the templates fit freely. With the two parts' models ``V_t = W_t H_t``
and ``V_o = W_o H_o``, the target's mask is ``V_t^p / (V_t^p + V_o^p)`` (``mask_power`` p):
the Wiener filter that follows turns a mask ``m`` into the gain ``m^2 / (m^2 + (1 - m)^2)``,
so p = 1/2 gives the model's own share of the bin, ``V_t / (V_t + V_o)``, and the chosen
0.6 that share a little sharpened. Without the other part's notes, the other guitar is a
part of unknown notes: one harmonic component per pitch of ``unknown_pitches`` (a guitar's
range), each free to sound in any frame from a tiny start (``unknown_start`` of the
mixture's mean, full steps), so that the target's scored notes explain what they can first
(and ``free_components`` unconstrained components, none by default).

- **Spare components** (with both parts' notes): ``spare_components`` unconstrained
  components for what no scored note explains (a note the score misses, a transcription's
  gap), which would otherwise be forced onto the wrong pitches. They start small
  (``spare_start`` of the mixture's mean) and pay ``spare_penalty`` per unit of the energy
  they model (KL plus an L1 penalty on their mass), so they only take bins that the score's
  model under-explains by more than ``1 + spare_penalty`` times. Nothing says whose that
  energy is: half of their model goes to each part. Chosen on the dev clips
  (scripts/nmf_dev.py) with 10 % and 25 % of the notes of both parts removed.
- **Pitch slack**: each part's pitch components may also sound outside its notes, from a
  tiny start (``slack_start`` of the mixture's mean, full steps) and at a price
  (``slack_penalty`` per unit of the energy modelled there, as the spare components pay). A
  note the score misses is most often a pitch the part plays elsewhere in the piece; its
  energy then goes to that part's own template of the pitch, not half to each part. Where
  the score is complete the price keeps the slack near zero.

:class:`ScoreNmf` wraps it as a model without learned parameters (``score_kind = "notes"``):
``checkpoint.load_model("score_nmf")`` returns it, and ``separation.separate`` (evaluation,
widgets, 03_evaluate.ipynb) and ``separation.stream`` (``guitarsep separate``, the API) run it
through the same chunking, Wiener filter and iSTFT as the networks.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from torch import nn

from guitarsep.config import MaskParams
from guitarsep.score.masks import frames_in_spans, pitch_activity
from guitarsep.score.notes import Notes

__all__ = ["NmfParams", "Factors", "ScoreNmf", "initial_factors", "fit_factors",
           "target_share", "score_nmf_mask"]

_EPS = 1e-12


@dataclass(frozen=True)
class NmfParams:
    """Score-informed NMF settings (decisions of ours; the paper has no NMF)."""

    # Chosen on dev clips only (scripts/nmf_dev.py: the corpus's validation clips and an
    # additive-synthesis dev family, never a test family; its table is in docs/ablations.md).
    # 10 iterations (fewer keep the fit closer to the score), the note heads, the decay start
    # and the mask power 1/2 together gain 2-3 dB on the same-timbre dev clips and cost the
    # different-timbre ones 0.2-0.6 dB. Later that day the release start was added, after
    # which the note heads cost 0.1-0.3 dB: they are off by default (head_s 0) and stay as
    # an ablation of scripts/nmf_dev.py. Its time constant is 0.2 s, not the 0.05 s that is
    # best with exact offsets: with offsets that come too early (every note halved) 0.05 s
    # loses about 1 dB on the validation clips against no release, 0.2 s about nothing.
    # Then the activations' steps were damped (h_step 0.3: the decay and release start is a
    # better model of who sounds than what ten full updates make of it, while the templates
    # still fit freely) and the mask sharpened a little (mask_power 0.6): +0.23 dB per clip,
    # better on 86 % of the dev clips, +0.2-0.7 dB in each of the four dev cells' medians
    # (each alone: +0.26 / +0.02 dB per clip).
    iterations: int = 10
    n_harmonics: int = 40
    width_cents: float = 40.0       # harmonic support: guitars are slightly inharmonic
    min_half_bins: float = 1.5      # ... and never narrower than the window's main lobe
    attack_before: float = 0.03     # s before an onset where the attack component may sound
    attack_after: float = 0.12      # s after it
    free_components: int = 0        # the other guitar's, when its notes are not given
    head_s: float = 0.0             # note-head templates: each note's first head_s (0: none)
    decay_s: float = 0.5            # time constant of the initial activations' decay after
    decay_floor: float = 0.05       # each onset, and the level it decays to (decay_s 0: flat)
    release_s: float = 0.2          # time constant after the latest offset (0: no release)
    mask_power: float = 0.6         # mask = V_t^p / (V_t^p + V_o^p)
    h_step: float = 0.3             # the score's activations: H *= (update's factor)^h_step
    # Added 2026-12-05 (scripts/nmf_dev.py, the spare and missing rows): with 10 % / 25 % of
    # the notes of both parts missing, every dev cell's median rises (up to +0.5 / +1.4 dB),
    # with the full score none falls by more than 0.02 dB (+0.02 dB per clip). Penalty 0.5
    # beats 1 and 3 with missing notes and ties with the full score; 0.25 gains a little
    # more with missing notes and costs 0.07 dB on the additive different-timbre clips.
    spare_components: int = 4       # unconstrained, for energy no scored note explains
    spare_start: float = 0.01       # their activations' start, times the mixture's mean
    spare_penalty: float = 0.5      # L1 weight on the energy they model
    # Added 2026-12-06 (scripts/nmf_dev.py, the slack and missing rows): with 10 % / 25 % of
    # the notes missing, +0.13 / +0.46 dB per clip (better on 85 %); with the full score a tie
    # (+0.00 dB per clip, no dev median down by more than 0.06 dB). Start 0.01 with full
    # steps, or damped steps, or penalty 1-2 gain less; penalty 0.25 / 0 gain more with
    # missing notes and cost 0.16 / 0.42 dB on the additive different-timbre median.
    slack_start: float = 0.001      # pitch slack outside the notes, times the mixture's mean
    slack_penalty: float = 0.5      # (slack_start 0: none) and its L1 weight
    # Without the other guitar's notes: its harmonic components for every pitch of this range
    # (MIDI, both ends included; (0, -1): none), sounding anywhere: their activations start
    # at unknown_start of the mixture's mean (full steps) and pay unknown_penalty per unit
    # of modelled energy (as the pitch slack), before its free components. Added 2026-12-06
    # in place of 8 free components (throwaway runs on the 104 dev clips of
    # scripts/nmf_dev.py, without the accompaniment's notes; its no_accompaniment rows):
    # +0.90 dB per clip, better on 88 %, every dev median up (validation 4.93 / 3.18 ->
    # 6.42 / 5.80 dB diff / same). The tiny start is what matters: the target's scored notes
    # then take what they can explain before the unknown part grows there (with the 8 free
    # components beside them, against those alone: start 0.1 -0.25 dB, start 1 -2.40 dB).
    # Against the chosen: penalty 0.1 -0.03 dB (0.25 / 0.5 beside the free components gain
    # only +0.29 / +0.09 dB over them), start 1e-4 -0.09 dB, range 28-96 -0.03 dB, one free
    # component beside them -0.05 dB, mask power 0.5 / 0.8 +0.00 / -0.03 dB.
    unknown_pitches: tuple[int, int] = (36, 88)
    unknown_start: float = 0.001
    unknown_penalty: float = 0.0


@functools.lru_cache(maxsize=8)
def _templates(sr: int, n_fft: int, params: NmfParams, a4_hz: float = 440.0) -> np.ndarray:
    """Initial templates ``(128, F)`` float64: ``1/k`` on the support of harmonic ``k`` of
    each MIDI pitch, tuned to ``a4_hz`` (the score mask's, :class:`MaskParams`)."""
    n_bins = n_fft // 2 + 1
    bins = np.arange(n_bins, dtype=np.float64)
    f0 = a4_hz * 2.0 ** ((np.arange(128) - 69) / 12.0)
    out = np.zeros((128, n_bins))
    for k in range(1, params.n_harmonics + 1):
        centre = k * f0 * n_fft / sr                                   # (128,) in bins
        half = np.maximum(centre * (2.0 ** (params.width_cents / 1200.0) - 1.0),
                          params.min_half_bins)
        near = np.abs(bins[None, :] - centre[:, None]) <= half[:, None]
        near &= (centre < n_bins - 1)[:, None]
        out = np.maximum(out, near / k)
    out.flags.writeable = False
    return out


def _attack_activity(notes: Notes, n_frames: int, *, sr: int, hop: int,
                     params: NmfParams) -> np.ndarray:
    """Bool ``(n_frames,)``: frames within the attack window of any onset of ``notes``."""
    return frames_in_spans(notes.onset - params.attack_before, notes.onset + params.attack_after,
                           np.zeros(len(notes), dtype=np.int64), 1, n_frames, sr=sr,
                           hop=hop)[:, 0]


def _part_factors(notes: Notes, n_frames: int, *, sr: int, n_fft: int, hop: int,
                  mask: MaskParams, params: NmfParams,
                  slack: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initial ``W (F, K)`` and ``H (K, T)`` of one part (its pitches, their note heads and
    its attack) and its pitch slack, bool ``(K, T)``: the pitch components' entries outside
    the pitch's notes (none unless ``slack`` and ``params.slack_start`` > 0)."""
    n_bins = n_fft // 2 + 1
    templates = _templates(sr, n_fft, params, mask.a4_hz)
    pitches, active = pitch_activity(notes, n_frames, sr=sr, hop=hop, params=mask)
    W = templates[pitches].T                                            # (F, P)
    H = active.T * _initial_envelopes(notes, pitches, n_frames, sr=sr, hop=hop,
                                      onset_tol=mask.onset_tol, params=params)  # (P, T)
    if params.head_s > 0 and len(notes):
        heads = Notes(notes.onset, np.minimum(notes.offset, notes.onset + params.head_s),
                      notes.pitch, notes.velocity)
        head_pitches, head_active = pitch_activity(heads, n_frames, sr=sr, hop=hop,
                                                   params=mask)
        W = np.concatenate([W, templates[head_pitches].T], axis=1)
        H = np.concatenate([H, head_active.T.astype(np.float64)], axis=0)
    attack = _attack_activity(notes, n_frames, sr=sr, hop=hop, params=params)
    W = np.concatenate([W, np.full((n_bins, 1), 1.0 / n_bins ** 0.5)], axis=1)
    H = np.concatenate([H, attack[None].astype(np.float64)], axis=0)
    outside = np.zeros(H.shape, dtype=bool)
    if slack and params.slack_start > 0:
        outside[:len(pitches)] = ~active.T
        H[outside] = params.slack_start
    return W, H, outside


def _initial_envelopes(notes: Notes, pitches: np.ndarray, n_frames: int, *, sr: int,
                       hop: int, onset_tol: float, params: NmfParams) -> np.ndarray:
    """``(P, n_frames)``: the initial activation of each pitch, a plucked decay since its
    latest onset (an onset within ``onset_tol`` ahead counts as now), times a release since
    its latest offset in frames where none of its notes is held (:class:`NmfParams`)."""
    out = np.ones((len(pitches), n_frames))
    centres = np.arange(n_frames) * hop / sr
    floor = params.decay_floor
    for i, pitch in enumerate(pitches):
        of_pitch = notes.pitch == pitch
        onsets = np.sort(notes.onset[of_pitch])
        if params.decay_s > 0:
            latest = np.searchsorted(onsets, centres + onset_tol, side="right") - 1
            dt = np.clip(centres - onsets[np.maximum(latest, 0)], 0.0, None)
            dt[latest < 0] = 0.0           # before the first onset: only its tolerance frames
            out[i] = floor + (1.0 - floor) * np.exp(-dt / params.decay_s)
        if params.release_s > 0:
            out[i] *= _release(notes.onset[of_pitch] - onset_tol, notes.offset[of_pitch],
                               centres, params.release_s)
    return out


def _release(starts: np.ndarray, offsets: np.ndarray, centres: np.ndarray,
             release_s: float) -> np.ndarray:
    """``(T,)``: 1 where a note ``[start, offset]`` is held or none has ended yet, else
    ``exp(-dt / release_s)`` with ``dt`` the time since the latest offset."""
    held = ((centres[None, :] >= starts[:, None]) & (centres[None, :] <= offsets[:, None])).any(0)
    ends = np.sort(offsets)
    latest = np.searchsorted(ends, centres, side="right") - 1
    dt = centres - ends[np.maximum(latest, 0)]
    return np.where(held | (latest < 0), 1.0, np.exp(-np.clip(dt, 0.0, None) / release_s))


def _ratio(V: np.ndarray, W: np.ndarray, H: np.ndarray, WH: np.ndarray, R: np.ndarray) -> None:
    """``R = V / (W H + eps)`` in place (``WH``: scratch of the same shape)."""
    np.matmul(W, H, out=WH)
    WH += _EPS
    np.divide(V, WH, out=R)


@dataclass
class Factors:
    """A two-part factorisation ``V ~ W H``: ``W (F, K)`` and ``H (K, T)`` float32, the
    target's components first (``n_target`` of them), then the other guitar's, whose last
    ``n_free`` are unconstrained (when its notes are not given), then ``n_spare``
    unconstrained components that belong to neither part (half of their model to each).
    ``slack``: bool ``(K, T)``, the entries of ``H`` outside the score's notes that may
    sound at a price (:class:`NmfParams` ``slack_*``), or None. ``spare_penalty`` /
    ``slack_penalty``: what a unit of energy modelled by the spare components / the slack
    entries costs on top of the divergence (:func:`fit_factors`)."""

    W: np.ndarray
    H: np.ndarray
    n_target: int
    n_free: int = 0
    n_spare: int = 0
    slack: np.ndarray | None = None
    spare_penalty: float = 0.0
    slack_penalty: float = 0.0

    @property
    def n_unconstrained(self) -> int:
        """The free and spare components: the last ones, their activations in full steps."""
        return self.n_free + self.n_spare

    def part_models(self) -> tuple[np.ndarray, np.ndarray]:
        """``(V_t, V_o)``, each ``(F, T)``: the target's and the other guitar's model."""
        k, end = self.n_target, self.W.shape[1] - self.n_spare
        V_t, V_o = self.W[:, :k] @ self.H[:k], self.W[:, k:end] @ self.H[k:end]
        if self.n_spare:
            half = 0.5 * (self.W[:, end:] @ self.H[end:])
            V_t += half
            V_o += half
        return V_t, V_o


def initial_factors(V: np.ndarray, target: Notes, accomp: Notes, *, sr: int, n_fft: int,
                    hop: int, mask: MaskParams, params: NmfParams) -> Factors:
    """The score's factors for a magnitude ``V (F, T)``, scaled to its mean; an empty
    ``accomp`` gets ``free_components`` unconstrained components instead, a given one
    ``spare_components`` spare ones after it (and the two parts' pitch slack). The penalties
    come with them: ``slack_penalty`` for the pitch slack, ``unknown_penalty`` for the part
    of unknown notes (the only slack without the accompaniment's notes)."""
    n_frames = V.shape[1]
    kw = dict(sr=sr, n_fft=n_fft, hop=hop, mask=mask, params=params)
    # the pitch slack, like the spare components, needs both parts' notes: beside free
    # components the target's slack takes the other guitar's energy at the target's pitches
    # (scripts/nmf_dev.py, no_accompaniment: -0.15 dB per clip, medians down up to 1.4 dB)
    W_t, H_t, slack_t = _part_factors(target, n_frames, **kw, slack=len(accomp) > 0)
    if len(accomp):
        W_a, H_a, slack_a = _part_factors(accomp, n_frames, **kw, slack=True)
        n_free, n_spare = 0, params.spare_components
        W_s = _unconstrained_templates(V.shape[0], n_spare)
        W_a = np.concatenate([W_a, W_s], axis=1)
        H_a = np.concatenate([H_a, np.full((n_spare, n_frames), params.spare_start)], axis=0)
    else:
        n_free, n_spare = params.free_components, 0
        W_a, H_a, slack_a = _unknown_part(n_frames, sr=sr, n_fft=n_fft, mask=mask,
                                          params=params)
        W_a = np.concatenate([W_a, _unconstrained_templates(V.shape[0], n_free)], axis=1)
        H_a = np.concatenate([H_a, np.ones((n_free, n_frames))], axis=0)
    slack = np.concatenate([slack_t, slack_a, np.zeros((W_a.shape[1] - len(slack_a), n_frames),
                                                       dtype=bool)], axis=0)
    W = np.concatenate([W_t, W_a], axis=1).astype(np.float32)
    H = (np.concatenate([H_t, H_a], axis=0) * (V.mean() + _EPS)).astype(np.float32)
    return Factors(W, H, W_t.shape[1], n_free, n_spare, slack if slack.any() else None,
                   spare_penalty=params.spare_penalty,
                   slack_penalty=params.slack_penalty if len(accomp) else params.unknown_penalty)


def _unknown_part(n_frames: int, *, sr: int, n_fft: int, mask: MaskParams,
                  params: NmfParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W (F, P)``, ``H (P, T)`` and its slack (all True) of a part whose notes are not
    given: one harmonic component per pitch of ``params.unknown_pitches``, sounding anywhere
    at the pitch slack's price (``P`` = 0 when the range is empty)."""
    lo, hi = params.unknown_pitches
    pitches = np.arange(lo, hi + 1)
    W = _templates(sr, n_fft, params, mask.a4_hz)[pitches].T
    return (W, np.full((len(pitches), n_frames), params.unknown_start),
            np.ones((len(pitches), n_frames), bool))


def _unconstrained_templates(n_bins: int, k: int) -> np.ndarray:
    """``(n_bins, k)``: broadband random starts (seeded: the same mixture, the same mask)."""
    return np.random.default_rng(0).uniform(0.5, 1.0, (n_bins, k))


def fit_factors(V: np.ndarray, f: Factors, iterations: int, *, h_step: float = 1.0,
                update_w: bool = True, update_h: bool = True) -> Factors:
    """``iterations`` KL multiplicative updates of ``f`` (in place) towards ``V (F, T)``
    float32; ``update_w`` / ``update_h`` False hold that factor (scripts/nmf_diagnose.py).

    ``h_step`` in (0, 1] damps the score's activations' update to ``H *= factor ** h_step``
    (the free and spare ones, and the slack entries, take full steps): a step part of the
    way, in log ``H``, to the minimum of the update's convex auxiliary function, so the
    divergence still never rises, and ``H`` stays nearer its start. ``f.spare_penalty`` ``c``
    adds ``c`` times the spare components' modelled energy to the divergence (``c`` on their
    update's denominators); ``f.slack_penalty`` does the same for the energy modelled by
    ``f.slack``'s entries."""
    W, H = f.W, f.H
    K = H.shape[0]
    step = np.full((K, 1), h_step, dtype=np.float32)
    step[K - f.n_unconstrained:] = 1.0
    cost = np.ones((K, 1), dtype=np.float32)        # the penalty: spare energy costs 1 + c
    cost[K - f.n_spare:] += f.spare_penalty
    if f.slack is not None:                          # ... per entry where there is slack
        step = np.where(f.slack, np.float32(1.0), step)
        cost = cost + np.float32(f.slack_penalty) * f.slack
    WH, R = np.empty_like(V), np.empty_like(V)     # reused: fresh (F, T) arrays every
    for _ in range(iterations):                      # update cost more in page faults
        if update_h:
            _ratio(V, W, H, WH, R)
            factor = (W.T @ R) / (cost * W.sum(axis=0)[:, None] + _EPS)
            H *= factor if h_step == 1.0 and f.slack is None else factor ** step
        if update_w:
            _ratio(V, W, H, WH, R)
            W *= (R @ H.T) / ((cost * H).sum(axis=1)[None, :] + _EPS)
            norm = W.max(axis=0) + _EPS             # scale into H: keeps the updates stable
            W /= norm
            H *= norm[:, None]
    return f


def target_share(V_t: np.ndarray, V_o: np.ndarray, power: float) -> np.ndarray:
    """``V_t^p / (V_t^p + V_o^p)`` (0 where neither part has energy), same shape."""
    V_t = V_t ** power
    V_all = V_t + V_o ** power
    return np.divide(V_t, V_all, out=np.zeros_like(V_t), where=V_all > _EPS)


def score_nmf_mask(mag: np.ndarray, target: Notes, accomp: Notes, *, sr: int, n_fft: int,
                   hop: int, mask: MaskParams = MaskParams(),
                   params: NmfParams = NmfParams()) -> np.ndarray:
    """Target mask ``(T, F)`` float32 in [0, 1] of the mixture magnitude ``mag (T, F)``.

    ``target`` and ``accomp``: the two parts' notes, times relative to frame 0 (frame ``t``
    centred at ``t * hop / sr``); an empty ``accomp`` means "not given" (a part of unknown
    notes: ``NmfParams.unknown_pitches``).
    Bins no component explains get 0 (as the score mask does). Scale-equivariant: a gain on
    ``mag`` leaves the mask unchanged (the KL updates scale ``H`` with it).
    """
    V = np.ascontiguousarray(np.asarray(mag, dtype=np.float32).T)     # (F, T); float32: 2x
    # faster than float64 on 2 cores, same medians on the validation clips
    f = initial_factors(V, target, accomp, sr=sr, n_fft=n_fft, hop=hop, mask=mask,
                        params=params)
    fit_factors(V, f, params.iterations, h_step=params.h_step)
    return target_share(*f.part_models(), params.mask_power).T.astype(np.float32)


class ScoreNmf(nn.Module):
    """Score-informed NMF as a separation model with no learned parameters.

    ``score_kind = "notes"``: it needs the parts' notes per segment (not the comb masks), which
    :func:`guitarsep.separation.separate.segment_magnitude` gives it. ``magnitude(mag (T, F),
    target, accomp)`` -> target magnitude ``(T, F)``.
    """

    score_kind = "notes"
    name = "score_nmf"             # models.checkpoint.SCORE_NMF

    def __init__(self, setting, mask: MaskParams = MaskParams(),
                 params: NmfParams = NmfParams()):
        super().__init__()
        self.setting, self.mask, self.params = setting, mask, params

    def magnitude(self, mag: np.ndarray, target: Notes, accomp: Notes,
                  mask: MaskParams | None = None) -> np.ndarray:
        """``mask``: the score's tolerances and tuning for this call (default: the model's)."""
        st = self.setting
        m = score_nmf_mask(mag, target, accomp, sr=st.sr, n_fft=st.n_fft, hop=st.hop,
                           mask=mask or self.mask, params=self.params)
        return m * mag

    def forward(self, *_args):
        raise TypeError("ScoreNmf needs the notes: use separation.separate.segment_magnitude")
