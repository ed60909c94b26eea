"""Procedural guitar synthesis of our own: two deliberately different methods.

Used by ``guitarsep.corpus.build`` for the training variety (``additive``) and by the
out-of-family test family (``karplus``), see docs/method.md.

- ``additive``: :func:`render_additive` with an :class:`AdditiveParams` timbre: per note a sum
  of inharmonic, exponentially decaying partials (pluck-position and tilt shaped), an attack
  noise burst, optional FM and vibrato, then a "body" of 2-4 resonant peaking biquads and a
  gentle low-pass. :meth:`AdditiveParams.draw` makes up a random guitar.
- ``karplus``: :func:`render_karplus` with a :class:`KarplusParams` timbre: extended
  Karplus-Strong (Jaffe & Smith 1983) plucked string, a noise-burst excitation through a
  velocity low-pass and a pick-position comb, a delay loop with a two-point damping filter, a
  loss factor and an allpass for the fractional delay, a dynamic-level low-pass, a loop damped
  after the offset, then a stochastic body (see below). It shares no timbre code with
  ``additive``: only :func:`_midi_hz`, :func:`_velocity_gain` and :func:`_note_spans`.

Both renderers take a :class:`~guitarsep.score.Notes` part and return the dry mono signal,
float32 of shape ``(round(duration * sr),)``, not loudness-normalised (the caller normalises).
Output depends only on (notes, sr, params, duration, seed): the per-note randomness (noise
bursts, random start phases, small level jitter) comes from
``np.random.default_rng([seed, note_index])``. Notes past ``duration`` are cut.

How the two run fast (a 45 s part of 300 notes renders in well under 4 s on one core):

- additive: a note is ``Re(sum_k c_k exp(s_k tau(n)))``. Cut into blocks of 128 samples,
  block ``j`` is ``(c_k exp(s_k tau_j)) @ exp(s_k rate_j m)``: one complex64 matrix product
  per note instead of K x n complex exponentials. Vibrato warps time (``tau``, piecewise
  linear per block, continuous at block starts); each block's rate is quantised to steps of
  2.5e-4 (phase mismatch at a block end <= 0.016 samples) so a few bases serve all blocks.
- karplus: the string loop is linear and time-invariant while the note is held, so it is
  solved in closed form in the frequency domain, ``Y = X / (1 - rho H(z) A(z) z^-N)``, with an
  exponential window (``z = r e^{iw}``) that makes the infinite response decay by 1e-7 within
  the FFT, so circular wrap-around is negligible; the cost does not depend on the delay
  length. The release (a more lossy loop) starts from the loop's state at the offset.

The karplus body is a 20-60 ms exponentially decaying, low-passed noise impulse response
(seeded by ``KarplusParams.body_seed``) mixed with the direct sound: a diffuse box-like colour,
unlike the additive body's few sharp resonances.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.fft
from scipy import signal

from guitarsep.score.notes import Notes

__all__ = ["AdditiveParams", "KarplusParams", "render_additive", "render_karplus",
           "params_from_dict"]

_LN1000 = float(np.log(1000.0))  # exp(-_LN1000 * t / T60) is -60 dB at t = T60
_BLOCK = 128                     # additive block length (samples)
_RATE_STEP = 2.5e-4              # additive vibrato: rate quantum per block
_N_DEV = 48                      # additive: length of the per-partial deviation vector
_WINDOW_FLOOR = 1e-7             # karplus: exponential window decay over one FFT
_RHO_MAX = 0.99995               # karplus: loss factor < 1 keeps the loop stable at DC


# --------------------------------------------------------------------------------------------
# Trivial helpers shared by both methods
# --------------------------------------------------------------------------------------------

def _midi_hz(pitch: int, cents: float = 0.0) -> float:
    """Equal-tempered frequency of MIDI ``pitch`` (A4 = 440 Hz), moved by ``cents``."""
    return 440.0 * 2.0 ** ((int(pitch) - 69) / 12.0 + cents / 1200.0)


def _velocity_gain(velocity: int, db_range: float) -> float:
    """Linear gain: 0 dB at velocity 127, ``-db_range`` dB at velocity 1."""
    return 10.0 ** (db_range * (int(velocity) - 127) / 126.0 / 20.0)


def _note_spans(notes: Notes, sr: int, duration: float, release_s: float):
    """Yield ``(index, start, n_hold, n_rel)`` for every note starting before ``duration``.

    ``start`` is the onset sample, ``n_hold`` the held samples (>= 1), ``n_rel`` the release
    samples. A note held past the end is cut there (no release): rendering only what is kept
    is what makes very long notes cheap, and the kept samples do not change.
    """
    n_total = int(round(duration * sr))
    n_rel_full = max(0, int(round(release_s * sr)))
    for i in range(len(notes)):
        start = int(round(notes.onset[i] * sr))
        if start >= n_total:
            continue
        n_hold = max(1, int(round(notes.offset[i] * sr)) - start)
        if start + n_hold >= n_total:
            yield i, start, n_total - start, 0
        else:
            yield i, start, n_hold, min(n_rel_full, n_total - start - n_hold)


def _check_render_args(sr: int, duration: float) -> int:
    """The output length ``round(duration * sr)``; ``ValueError`` on a bad rate/duration."""
    if int(sr) != sr or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    if not np.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be finite and >= 0, got {duration!r}")
    return int(round(duration * sr))


def _as_float_tuple(value) -> tuple:
    return tuple(float(v) for v in value)


# --------------------------------------------------------------------------------------------
# Additive (+ FM) family
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdditiveParams:
    """One made-up guitar for :func:`render_additive`; ranges are those of :meth:`draw`.

    Partials: ``n_partials`` (10-40), ``tilt_db_oct`` (-15..-3 dB/octave),
    ``partial_dev_db`` (48 fixed per-partial deviations, normal with std 1-4 dB),
    ``inharmonicity`` B (0..4e-4, f_k = k f0 sqrt(1 + B k^2)), ``pluck_pos`` (0.05-0.35,
    factor |sin(pi k p)| floored at ``pluck_floor`` 0.03-0.15), ``detune_cents`` (-5..5).
    Decay: ``t60_s`` (fundamental T60 at 110 Hz, log-uniform 0.5-6 s), ``t60_pitch_exp``
    (0-0.5: T60 scales as (110/f0)^exp), ``decay_alpha`` (0.02-0.3: T60_k = T60_1 / (1 +
    alpha (k - 1))). Attack: ``attack_ms`` (1-15), noise burst ``noise_ms`` (5-40),
    ``noise_db`` (-30..-8 dB re the tone), ``noise_lp_hz`` (1500-10000), ``noise_hp_hz``
    (0 = none, half the time, else 100-1200). FM (30 %): ``fm_index`` (0 = off, else 0.2-3,
    decaying with ``fm_decay_s`` 0.05-1), ``fm_ratio`` (0.5, 1, 2 or 3 x f0). Vibrato (30 %):
    ``vib_cents`` (0 = off, else 3-25), ``vib_rate_hz`` (4-7), ``vib_onset_s`` (0.05-0.4 fade-in).
    ``release_ms`` (20-300). Velocity: ``vel_db_range`` (16-24 dB over 1..127),
    ``vel_bright_db_oct`` (0-6: extra tilt at velocity 1), ``note_jitter_db`` (0-1.5 dB per
    note). Body: ``body_freqs_hz`` (2-4 peaks, log-uniform 90-600), ``body_gains_db`` (3-12),
    ``body_qs`` (2-10), ``lowpass_hz`` (first-order, 3000-12000).
    """

    n_partials: int = 24
    tilt_db_oct: float = -8.0
    partial_dev_db: tuple = (0.0,) * _N_DEV
    inharmonicity: float = 1e-4
    pluck_pos: float = 0.15
    pluck_floor: float = 0.1
    detune_cents: float = 0.0
    t60_s: float = 2.5
    t60_pitch_exp: float = 0.25
    decay_alpha: float = 0.1
    attack_ms: float = 4.0
    noise_ms: float = 15.0
    noise_db: float = -20.0
    noise_lp_hz: float = 4000.0
    noise_hp_hz: float = 0.0
    fm_index: float = 0.0
    fm_ratio: float = 1.0
    fm_decay_s: float = 0.3
    vib_cents: float = 0.0
    vib_rate_hz: float = 5.0
    vib_onset_s: float = 0.2
    release_ms: float = 100.0
    vel_db_range: float = 20.0
    vel_bright_db_oct: float = 3.0
    note_jitter_db: float = 0.5
    body_freqs_hz: tuple = (110.0, 240.0)
    body_gains_db: tuple = (6.0, 4.0)
    body_qs: tuple = (4.0, 4.0)
    lowpass_hz: float = 8000.0

    def __post_init__(self) -> None:
        # tuples of plain floats: JSON-serialisable and comparable after a round trip
        for name in ("partial_dev_db", "body_freqs_hz", "body_gains_db", "body_qs"):
            object.__setattr__(self, name, _as_float_tuple(getattr(self, name)))
        if not 1 <= int(self.n_partials) <= len(self.partial_dev_db):
            raise ValueError(f"n_partials {self.n_partials} not in 1..{len(self.partial_dev_db)}")
        if not len(self.body_freqs_hz) == len(self.body_gains_db) == len(self.body_qs):
            raise ValueError("body_freqs_hz, body_gains_db and body_qs differ in length")

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "AdditiveParams":
        """A random timbre (ranges in the class docstring)."""
        u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
        n_body = int(rng.integers(2, 5))
        fm_on, vib_on, hp_on = (rng.random(3) < (0.3, 0.3, 0.5)).tolist()
        return cls(
            n_partials=int(rng.integers(10, 41)), tilt_db_oct=u(-15, -3),
            partial_dev_db=tuple(rng.normal(0.0, u(1, 4), _N_DEV)),
            inharmonicity=u(0, 4e-4), pluck_pos=u(0.05, 0.35), pluck_floor=u(0.03, 0.15),
            detune_cents=u(-5, 5),
            # log-uniform: short (muted) and long (ringing) strings equally likely
            t60_s=float(np.exp(u(np.log(0.5), np.log(6.0)))), t60_pitch_exp=u(0, 0.5),
            decay_alpha=u(0.02, 0.3), attack_ms=u(1, 15),
            noise_ms=u(5, 40), noise_db=u(-30, -8), noise_lp_hz=u(1500, 10000),
            noise_hp_hz=u(100, 1200) if hp_on else 0.0,
            fm_index=u(0.2, 3) if fm_on else 0.0,
            fm_ratio=float(rng.choice([0.5, 1.0, 2.0, 3.0])), fm_decay_s=u(0.05, 1.0),
            vib_cents=u(3, 25) if vib_on else 0.0, vib_rate_hz=u(4, 7), vib_onset_s=u(0.05, 0.4),
            release_ms=u(20, 300), vel_db_range=u(16, 24), vel_bright_db_oct=u(0, 6),
            note_jitter_db=u(0, 1.5),
            body_freqs_hz=tuple(np.exp(rng.uniform(np.log(90), np.log(600), n_body))),
            body_gains_db=tuple(rng.uniform(3, 12, n_body)),
            body_qs=tuple(rng.uniform(2, 10, n_body)), lowpass_hz=u(3000, 12000))


def render_additive(notes: Notes, sr: int, params: AdditiveParams, duration: float,
                    seed: int = 0) -> np.ndarray:
    """Render ``notes`` with the additive timbre ``params``: float32 of shape
    ``(round(duration * sr),)``, dry, not normalised, deterministic in its inputs."""
    n_total = _check_render_args(sr, duration)
    out = np.zeros(n_total, dtype=np.float64)
    noise_sos = _noise_sos(params, sr)
    for i, start, n_hold, n_rel in _note_spans(notes, sr, duration, params.release_ms / 1000):
        rng = np.random.default_rng([int(seed), i])
        tone = _additive_note(params, int(notes.pitch[i]), int(notes.velocity[i]),
                              n_hold, n_rel, sr, rng, noise_sos)
        out[start:start + tone.shape[0]] += tone
    if n_total:
        out = signal.sosfilt(_additive_body_sos(params, sr), out)
    return np.nan_to_num(out).astype(np.float32)


def _additive_note(params: AdditiveParams, pitch: int, velocity: int, n_hold: int, n_rel: int,
                   sr: int, rng: np.random.Generator, noise_sos: np.ndarray) -> np.ndarray:
    """One note, shape ``(n_hold + n_rel,)`` float64: partials x envelope + attack noise."""
    n = n_hold + n_rel
    # draw every per-note random number first, in a fixed order, so that the stream never
    # depends on which partials survive the Nyquist cut
    phases = rng.uniform(0.0, 2 * np.pi, params.n_partials)
    jitter_db = rng.normal(0.0, 1.0) * params.note_jitter_db
    vib_phase, fm_phase = rng.uniform(0.0, 2 * np.pi, 2)
    noise = _attack_noise(params, sr, rng, noise_sos)
    tone = np.zeros(n)
    f0 = _midi_hz(pitch, params.detune_cents)
    k = np.arange(1, params.n_partials + 1)
    freqs = k * f0 * np.sqrt(1.0 + params.inharmonicity * k ** 2.0)
    keep = freqs < 0.45 * sr                # no aliasing; a note above it is silent
    if keep.any():
        k, freqs = k[keep], freqs[keep]
        t60 = max(params.t60_s * (110.0 / f0) ** params.t60_pitch_exp, 0.05)
        t60_k = t60 / (1.0 + params.decay_alpha * (k - 1))
        rates = -_LN1000 / (t60_k * sr) + 2j * np.pi * freqs / sr   # per sample
        coef = _partial_amps(params, k, velocity) * np.exp(1j * phases[keep])
        tau, levels = _vibrato_warp(params, n, sr, vib_phase)
        analytic = _damped_partials(coef, rates, tau, levels)[:n]
        if params.fm_index > 0:
            tone = _fm_real(analytic, params, f0, tau, sr, fm_phase)
        else:
            tone = analytic.real.astype(np.float64)
        tone = tone * _additive_envelope(params, n_hold, n_rel, sr)
    m = min(n, noise.shape[0])
    tone[:m] += noise[:m]
    return tone * _velocity_gain(velocity, params.vel_db_range) * 10.0 ** (jitter_db / 20.0)


def _partial_amps(params: AdditiveParams, k: np.ndarray, velocity: int) -> np.ndarray:
    """Amplitudes of partials ``k`` (shape ``(K,)``), unit sum of squares so that every note
    starts at about the same RMS whatever its partial count (velocity is applied later)."""
    # softer notes are darker: the tilt steepens by up to vel_bright_db_oct at velocity 1
    tilt = params.tilt_db_oct - params.vel_bright_db_oct * (127 - velocity) / 126.0
    dev = np.asarray(params.partial_dev_db)[k - 1]
    amps = 10.0 ** ((tilt * np.log2(k) + dev) / 20.0)
    amps = amps * np.maximum(np.abs(np.sin(np.pi * k * params.pluck_pos)), params.pluck_floor)
    return amps / np.sqrt(np.sum(amps ** 2))


def _vibrato_warp(params: AdditiveParams, n: int, sr: int, phase: float):
    """Warped time at block boundaries ``tau`` (``(n_blocks + 1,)``, samples) and each block's
    quantised rate level (``(n_blocks,)`` int, rate = 1 + level * _RATE_STEP)."""
    n_blocks = -(-n // _BLOCK)
    t = np.arange(n_blocks + 1) * (_BLOCK / sr)
    if params.vib_cents <= 0:
        return t * sr, np.zeros(n_blocks, dtype=np.int64)
    # vibrato fades in: players start it after the pluck
    depth = params.vib_cents * np.clip(t / max(params.vib_onset_s, 1e-3), 0.0, 1.0)
    rate = 2.0 ** (depth * np.sin(2 * np.pi * params.vib_rate_hz * t + phase) / 1200.0)
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * _BLOCK)])
    levels = np.rint((np.diff(tau) / _BLOCK - 1.0) / _RATE_STEP).astype(np.int64)
    return tau, levels


def _damped_partials(coef: np.ndarray, rates: np.ndarray, tau: np.ndarray,
                     levels: np.ndarray) -> np.ndarray:
    """``sum_k coef_k exp(rates_k t)`` along warped time, complex64 ``(n_blocks * _BLOCK,)``.

    Block ``j`` starts exactly at ``tau[j]`` and advances at its quantised rate; the block
    start coefficients (n_blocks, K) times one (K, _BLOCK) basis per rate level is a matrix
    product, far cheaper than K x n complex exponentials.
    """
    starts = _block_starts(coef, rates, tau[:-1])
    order = np.argsort(levels, kind="stable")      # blocks of one level are contiguous
    uniq, first = np.unique(levels[order], return_index=True)
    bounds = np.append(first, levels.shape[0])
    m = np.arange(_BLOCK)
    basis = np.exp(np.outer(rates, (1.0 + uniq[0] * _RATE_STEP) * m))
    step = np.exp(np.outer(rates, _RATE_STEP * m))  # next rate level = basis * step
    out = np.empty((levels.shape[0], _BLOCK), dtype=np.complex64)
    at = uniq[0]
    for level, lo, hi in zip(uniq, bounds[:-1], bounds[1:]):
        for _ in range(level - at):                 # complex multiplies, not exponentials
            basis = basis * step
        at = level
        out[order[lo:hi]] = starts[order[lo:hi]] @ basis.astype(np.complex64)
    return out.reshape(-1)


def _block_starts(coef: np.ndarray, rates: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``coef_k exp(rates_k tau_j)``, complex64 ``(n_blocks, K)``. The phase is formed and
    wrapped in float64 (it reaches 1e5 rad), then cos/sin/exp run in float32 (much faster
    than complex128 exp; float32 precision is all the complex64 product keeps anyway)."""
    phase = np.outer(tau, rates.imag)
    phase -= (2 * np.pi) * np.rint(phase / (2 * np.pi))
    phase = phase.astype(np.float32)
    mag = np.exp(np.outer(tau, rates.real).astype(np.float32))
    starts = np.empty(phase.shape, dtype=np.complex64)
    starts.real = mag * np.cos(phase)
    starts.imag = mag * np.sin(phase)
    return starts * coef.astype(np.complex64)


def _fm_real(analytic: np.ndarray, params: AdditiveParams, f0: float, tau: np.ndarray,
             sr: int, phase: float) -> np.ndarray:
    """``Re(analytic * exp(i I(t) sin(w_m tau + phase)))``, float ``(n,)``.

    Multiplying the analytic note by a phase factor modulates every partial with the same
    index: FM sidebands at multiples of ``fm_ratio * f0`` around each partial (the FM applies
    to the whole note); the index decays, like a real FM pluck's brightness.
    """
    n = analytic.shape[0]
    t = np.arange(n)
    warped = np.interp(t, np.arange(tau.shape[0]) * _BLOCK, tau)
    carrier = 2 * np.pi * params.fm_ratio * f0 / sr * warped + phase
    carrier -= (2 * np.pi) * np.rint(carrier / (2 * np.pi))   # wrap in float64, then float32
    index = params.fm_index * np.exp(-t / (max(params.fm_decay_s, 1e-3) * sr))
    mod = index.astype(np.float32) * np.sin(carrier.astype(np.float32))
    return analytic.real * np.cos(mod) - analytic.imag * np.sin(mod)


def _additive_envelope(params: AdditiveParams, n_hold: int, n_rel: int, sr: int) -> np.ndarray:
    """Amplitude envelope ``(n_hold + n_rel,)``: raised-cosine attack (no click), then 1 (the
    partials carry their own decay), then a release falling 60 dB and tapered to exactly 0."""
    n = n_hold + n_rel
    env = np.ones(n)
    n_att = min(n, max(1, int(round(params.attack_ms * sr / 1000))))
    env[:n_att] = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_att) / n_att)
    if n_rel:
        x = np.arange(n_rel) / n_rel
        env[n_hold:] *= 10.0 ** (-3.0 * x) * (1.0 - x)
    return env


def _noise_sos(params: AdditiveParams, sr: int) -> np.ndarray:
    """The attack noise's colour: 2nd-order low-pass, or band-pass when ``noise_hp_hz > 0``."""
    lp = min(params.noise_lp_hz, 0.45 * sr)
    if 0 < params.noise_hp_hz < 0.9 * lp:
        return signal.butter(2, [params.noise_hp_hz, lp], btype="bandpass", fs=sr, output="sos")
    return signal.butter(2, lp, fs=sr, output="sos")


def _attack_noise(params: AdditiveParams, sr: int, rng: np.random.Generator,
                  sos: np.ndarray) -> np.ndarray:
    """The pick/finger noise burst ``(n_noise,)``: coloured noise decaying 40 dB over its
    length, its RMS ``noise_db`` below the tone's starting RMS (1/sqrt(2))."""
    n = max(1, int(round(params.noise_ms * sr / 1000)))
    burst = rng.standard_normal(n) * 10.0 ** (-2.0 * np.arange(n) / n)
    burst = signal.sosfilt(sos, burst)
    rms = np.sqrt(np.mean(burst ** 2))
    return burst * (10.0 ** (params.noise_db / 20.0) / np.sqrt(2.0) / max(rms, 1e-12))


def _peaking_sos(freq: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """RBJ-cookbook peaking biquad as one sos row ``(6,)``."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2 * np.pi * min(freq, 0.45 * sr) / sr
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1 + alpha * a_lin, -2 * np.cos(w0), 1 - alpha * a_lin])
    a = np.array([1 + alpha / a_lin, -2 * np.cos(w0), 1 - alpha / a_lin])
    return np.concatenate([b / a[0], a / a[0]])


def _additive_body_sos(params: AdditiveParams, sr: int) -> np.ndarray:
    """The additive "body": the resonant peaks plus a first-order low-pass, sos ``(S, 6)``."""
    rows = [_peaking_sos(f, g, q, sr) for f, g, q in
            zip(params.body_freqs_hz, params.body_gains_db, params.body_qs)]
    rows.append(signal.butter(1, min(params.lowpass_hz, 0.45 * sr), fs=sr, output="sos")[0])
    return np.array(rows)


# --------------------------------------------------------------------------------------------
# Karplus-Strong family (held out: never used in training)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KarplusParams:
    """One plucked string + body for :func:`render_karplus`; ranges are those of :meth:`draw`.

    Loop: ``t60_s`` (T60 of the fundamental, log-uniform 0.5-5 s; the loss factor is set from
    it, capped below 1, so high notes with strong damping ring shorter), ``loop_damping`` S
    (0.15-0.5: loop filter (1 - S) + S z^-1; 0.5 = the classic average, darkest).
    Excitation: ``pick_pos`` (0.05-0.4 of the delay, comb 1 - z^-round(p L)),
    ``exc_lp_lo_hz`` (600-2000, low-pass cutoff at velocity 1) and ``exc_lp_hi_hz``
    (3000-10000, at velocity 127; geometric in between). Dynamic level: one-pole low-pass at
    ``dyn_cut_mult`` (1-4) x f0, mixed with the dry loop output by ``dyn_min`` (0.2-0.6) at
    velocity 1 up to 1 at 127. ``release_ms`` (10-150: the loop loses 60 dB over it after the
    offset). ``vel_db_range`` (16-24), ``note_jitter_db`` (0-1.5). Body: ``body_ms``
    (20-60 ms noise impulse response), ``body_mix`` (0.2-0.7 wet), ``body_lp_hz``
    (1500-6000), ``body_seed`` (its noise).
    """

    t60_s: float = 2.5
    loop_damping: float = 0.5
    pick_pos: float = 0.2
    exc_lp_lo_hz: float = 1200.0
    exc_lp_hi_hz: float = 6000.0
    dyn_cut_mult: float = 2.0
    dyn_min: float = 0.4
    release_ms: float = 60.0
    vel_db_range: float = 20.0
    note_jitter_db: float = 0.5
    body_ms: float = 40.0
    body_mix: float = 0.4
    body_lp_hz: float = 3000.0
    body_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loop_damping <= 0.5:
            raise ValueError(f"loop_damping {self.loop_damping} not in [0, 0.5]")
        if not 0.0 < self.pick_pos < 1.0:
            raise ValueError(f"pick_pos {self.pick_pos} not in (0, 1)")

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "KarplusParams":
        """A random string and body (ranges in the class docstring)."""
        u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
        return cls(
            t60_s=float(np.exp(u(np.log(0.5), np.log(5.0)))), loop_damping=u(0.15, 0.5),
            pick_pos=u(0.05, 0.4), exc_lp_lo_hz=u(600, 2000), exc_lp_hi_hz=u(3000, 10000),
            dyn_cut_mult=u(1, 4), dyn_min=u(0.2, 0.6), release_ms=u(10, 150),
            vel_db_range=u(16, 24), note_jitter_db=u(0, 1.5), body_ms=u(20, 60),
            body_mix=u(0.2, 0.7), body_lp_hz=u(1500, 6000),
            body_seed=int(rng.integers(0, 2 ** 31 - 1)))


def render_karplus(notes: Notes, sr: int, params: KarplusParams, duration: float,
                   seed: int = 0) -> np.ndarray:
    """Render ``notes`` with the Karplus-Strong timbre ``params``: float32 of shape
    ``(round(duration * sr),)``, dry, not normalised, deterministic in its inputs."""
    n_total = _check_render_args(sr, duration)
    out = np.zeros(n_total, dtype=np.float64)
    for i, start, n_hold, n_rel in _note_spans(notes, sr, duration, params.release_ms / 1000):
        rng = np.random.default_rng([int(seed), i])
        string = _karplus_note(params, int(notes.pitch[i]), int(notes.velocity[i]),
                               n_hold, n_rel, sr, rng)
        out[start:start + string.shape[0]] += string
    if n_total:
        # 'full' then the first n_total samples: causal, nothing leaks before an onset
        out = signal.oaconvolve(out, _karplus_body_ir(params, sr))[:n_total]
    return np.nan_to_num(out).astype(np.float32)


def _karplus_note(params: KarplusParams, pitch: int, velocity: int, n_hold: int, n_rel: int,
                  sr: int, rng: np.random.Generator) -> np.ndarray:
    """One plucked note, float64 of shape ``(n_hold + n_rel,)``."""
    period = sr / _midi_hz(pitch)                  # loop delay in samples (fractional)
    burst = rng.uniform(-1.0, 1.0, max(2, int(round(period))))
    jitter_db = rng.normal(0.0, 1.0) * params.note_jitter_db
    if period < 4.0:                               # too short a loop to be a string: silent
        return np.zeros(n_hold + n_rel)
    damping = params.loop_damping
    n_delay, ap_c = _loop_tuning(period, damping)
    drive = _karplus_excitation(params, burst, velocity, sr)
    w0 = 2 * np.pi / period
    loop_gain = abs((1 - damping) + damping * np.exp(-1j * w0))
    # loss per period so the fundamental falls 60 dB in t60_s (capped: stable at DC)
    rho = min(10.0 ** (-3.0 * period / (params.t60_s * sr)) / loop_gain, _RHO_MAX)
    string = _loop_response(drive, n_hold, n_delay, ap_c, damping, rho)
    if n_rel:
        # the finger damps the string: a much lossier loop, -60 dB over the release
        rho_rel = min(10.0 ** (-3.0 * period / n_rel), rho)
        carry = _release_drive(string, drive, n_delay, ap_c, damping, rho_rel)
        tail = _loop_response(carry, n_rel, n_delay, ap_c, damping, rho_rel)
        taper = np.minimum(1.0, 5.0 * (1.0 - np.arange(n_rel) / n_rel))  # last 20 % -> 0
        string = np.concatenate([string, tail * taper])
    string = _dynamic_level(params, string, velocity, sr / period, sr)
    return string * _velocity_gain(velocity, params.vel_db_range) * 10.0 ** (jitter_db / 20.0)


def _loop_tuning(period: float, damping: float) -> tuple[int, float]:
    """Integer delay ``N`` and allpass coefficient ``C`` so that the loop (z^-N, the damping
    filter, the allpass (C + z^-1) / (1 + C z^-1)) has a phase delay of exactly ``period``
    samples at the fundamental: the tuning error is then only float error.

    The allpass takes a delay in [0.618, 1.618) (Jaffe & Smith's range: its phase delay stays
    nearly flat and its pole stays away from the unit circle); its exact coefficient for
    phase delay D at w0 is sin((1 - D) w0 / 2) / sin((1 + D) w0 / 2).
    """
    w0 = 2 * np.pi / period
    loop_delay = -np.angle((1 - damping) + damping * np.exp(-1j * w0)) / w0
    n_delay = max(1, int(np.floor(period - loop_delay - 0.618)))
    frac = period - loop_delay - n_delay
    return n_delay, float(np.sin((1 - frac) * w0 / 2) / np.sin((1 + frac) * w0 / 2))


def _karplus_excitation(params: KarplusParams, burst: np.ndarray, velocity: int,
                        sr: int) -> np.ndarray:
    """The loop's input ``(L + 64 + k,)``: the noise burst (length L = period), low-passed
    (2 one-poles) with a cutoff rising with velocity, then the pick comb 1 - z^-k."""
    burst = burst - burst.mean()
    v = (velocity - 1) / 126.0
    cut = min(params.exc_lp_lo_hz * (params.exc_lp_hi_hz / params.exc_lp_lo_hz) ** v, 0.45 * sr)
    pole = np.exp(-2 * np.pi * cut / sr)
    x = np.concatenate([burst, np.zeros(64)])       # room for the low-pass tail
    for _ in range(2):
        x = signal.lfilter([1.0 - pole], [1.0, -pole], x)
    k = max(1, int(round(params.pick_pos * burst.shape[0])))
    combed = np.concatenate([x, np.zeros(k)])
    combed[k:] -= x
    return combed


def _loop_response(drive: np.ndarray, n_out: int, n_delay: int, ap_c: float, damping: float,
                   rho: float) -> np.ndarray:
    """First ``n_out`` samples of ``y = drive + rho H(z) A(z) z^-N y``, float64 ``(n_out,)``.

    Closed form in the frequency domain, one FFT pair whatever N. Evaluating every transfer
    function at ``z = r e^{iw}`` is the FFT of the exponentially windowed signals (``x r^-n``);
    the windowed response has decayed by 1e-7 after ``n_fft`` samples, so the circular
    wrap-around is negligible, and multiplying by ``r^n`` restores ``y``.
    """
    n_fft = scipy.fft.next_fast_len(max(n_out, drive.shape[0]) + 1, real=True)
    log_r = -np.log(_WINDOW_FLOOR) / n_fft
    spec = scipy.fft.rfft(drive * np.exp(-log_r * np.arange(drive.shape[0])), n_fft)
    s = -log_r - 2j * np.pi * np.arange(n_fft // 2 + 1) / n_fft   # log z^-1
    z_inv = np.exp(s)
    loop = rho * ((1 - damping) + damping * z_inv) * (ap_c + z_inv) / (1 + ap_c * z_inv)
    y = scipy.fft.irfft(spec / (1.0 - loop * np.exp(n_delay * s)), n_fft)[:n_out]
    return y * np.exp(log_r * np.arange(n_out))


def _release_drive(held: np.ndarray, drive: np.ndarray, n_delay: int, ap_c: float,
                   damping: float, rho_rel: float) -> np.ndarray:
    """Input that makes the release loop continue the held string exactly, ``(N + 32,)``.

    After the offset, ``y = x + rho_rel G z^-N y`` over the whole history; the part of
    ``rho_rel G z^-N y`` coming from the held samples is the release loop's input (plus
    whatever excitation is still running). The allpass memory (|C| <= 0.24) is gone after 32
    samples, so only the last N + 32 held samples matter.
    """
    tail = 32
    need = n_delay + tail
    past = held[-need:]
    past = np.concatenate([np.zeros(need - past.shape[0]), past, np.zeros(tail)])
    g = signal.lfilter([1 - damping, damping], [1.0], past)
    g = signal.lfilter([ap_c, 1.0], [1.0, ap_c], g)
    carry = rho_rel * g[tail:]                     # absolute time offset + 0 onwards
    rest = drive[held.shape[0]:held.shape[0] + carry.shape[0]]
    carry[:rest.shape[0]] += rest
    if drive.shape[0] > held.shape[0] + carry.shape[0]:
        carry = np.concatenate([carry, drive[held.shape[0] + carry.shape[0]:]])
    return carry


def _dynamic_level(params: KarplusParams, y: np.ndarray, velocity: int, f0: float,
                   sr: int) -> np.ndarray:
    """Jaffe & Smith's dynamic-level filter: soft notes are mixed towards a one-pole low-pass
    of the string (cutoff ``dyn_cut_mult`` x f0), loud ones stay bright. Shape of ``y``."""
    mix = params.dyn_min + (1.0 - params.dyn_min) * (velocity - 1) / 126.0
    pole = np.exp(-2 * np.pi * min(params.dyn_cut_mult * f0, 0.45 * sr) / sr)
    dark = signal.lfilter([1.0 - pole], [1.0, -pole], y)
    return mix * y + (1.0 - mix) * dark


def _karplus_body_ir(params: KarplusParams, sr: int) -> np.ndarray:
    """The stochastic body's impulse response ``(n_body,)``: ``1 - body_mix`` direct sound
    plus ``body_mix`` x a unit-energy, low-passed noise decaying 60 dB over ``body_ms``."""
    n = max(2, int(round(params.body_ms * sr / 1000)))
    noise = np.random.default_rng(int(params.body_seed)).standard_normal(n)
    noise = noise * np.exp(-_LN1000 * np.arange(n) / n)
    noise = signal.sosfilt(signal.butter(2, min(params.body_lp_hz, 0.45 * sr), fs=sr,
                                         output="sos"), noise)
    ir = params.body_mix * noise / max(np.sqrt(np.sum(noise ** 2)), 1e-12)
    ir[0] += 1.0 - params.body_mix
    return ir


# --------------------------------------------------------------------------------------------
# Serialisation
# --------------------------------------------------------------------------------------------

def params_from_dict(kind: str, d: dict):
    """The params dataclass of ``kind`` (``"additive"`` or ``"karplus"``) from ``d``, e.g.
    ``dataclasses.asdict(p)`` after a JSON round trip (lists become tuples again).

    Raises ``ValueError`` for an unknown kind and ``TypeError`` for unknown keys.
    """
    classes = {"additive": AdditiveParams, "karplus": KarplusParams}
    if kind not in classes:
        raise ValueError(f"unknown synth kind {kind!r}; expected one of {sorted(classes)}")
    cls = classes[kind]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise TypeError(f"{kind} params got unknown keys {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
