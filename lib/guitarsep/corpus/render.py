"""Render a part's notes with a timbre (soundfont + program + effects chain) to mono audio
(used by ``guitarsep.corpus.build``; 01_data.ipynb renders a part in every timbre).

Pipeline of :func:`render_part`:

1. **Synthesis** with FluidSynth through ``pyfluidsynth`` directly (not
   ``pretty_midi.fluidsynth``, which loads the soundfont again on every call). One
   ``fluidsynth.Synth`` per (process, soundfont, sample rate) is kept in a module cache and the
   soundfont is loaded once. FluidSynth's own reverb and chorus are off: effects belong to the
   timbre's chain, and their delay lines would carry sound from one render into the next.
   A small event loop sends note-on/off at their sample positions and pulls float samples in
   between (``fluid_synth_write_float``: no 16-bit dithering, whose noise generator keeps state
   across calls). Timing resolution is FluidSynth's 64-sample block (1.45 ms at 44.1 kHz).
2. **Determinism** (a render depends only on its notes and timbre, never on what the
   process rendered before; tests/test_corpus.py checks it). Before each render: All Sound Off
   on every channel (a system reset alone only *releases* voices, and FluidR3's nylon guitar
   rings on for seconds), pull until the output is exactly zero, system reset (controllers,
   programs), then every voice slot plays the render's program for 4 blocks and is killed
   again. The last step matters: FluidSynth reuses voice objects and a note inherits a little
   state (~1e-4) from the note its slot played before; overwriting every slot with the same
   notes makes that state a function of the program only. The synth's block phase is kept
   aligned (every pull between renders is a multiple of 64 samples). Cost: a few ms/render.
3. Within a part, a note is cut where the next note of the same pitch starts: a MIDI channel
   has one key per pitch, and a late note-off would otherwise silence the new note.
4. **Effects**: the dry signal is first brought to the target loudness (so the distortions see
   the same drive whatever the soundfont's level), then goes through the chain
   (``timbres.apply_chain``).
5. **Loudness**: gated RMS in the style of ITU-R BS.1770 *without* K-weighting (400 ms blocks,
   100 ms hop, absolute gate -70 dBFS, relative gate -10 dB), set to ``target_lufs`` (dBFS RMS;
   we call it LUFS-ish). The gating keeps sparse parts (a melody with rests) as loud as dense
   ones while they play.
6. **Checks**: a dry render with RMS < 1e-4 (before any gain) is rejected with
   :class:`RenderError` naming the timbre and program (typical cause: a program missing from the
   soundfont, or a window with no notes). Clipping: if the normalised peak exceeds 0.999 the
   whole render is scaled down to peak 0.999 (decision: keep every render, slightly quieter than
   target, rather than fail the build or distort it with a limiter; 16-bit FLAC stores
   [-1, 1)). The scale applied is reported by :func:`render_part` with ``return_info=True``.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

from guitarsep.corpus.timbres import apply_chain, soundfont_path
from guitarsep.corpus.variety import perform

__all__ = ["RenderError", "render_part", "synthesize", "loudness_db", "normalise_loudness",
           "BLOCK", "SILENCE_RMS", "PEAK_MAX"]

BLOCK = 64              # FluidSynth's internal block size (samples)
SILENCE_RMS = 1e-4      # dry renders quieter than this are an error
PEAK_MAX = 0.999
_POLYPHONY = 256
_DYNAMIC = 0            # load all samples at sfload (once per process); 1 would decode per preset
_CHANNELS = 3           # channels the warm-up touches (renders use channel 0)
_SYNTH_GAIN = 0.2       # FluidSynth master gain: headroom for ~6-note strums in float output


class RenderError(RuntimeError):
    """A render that cannot be used (missing soundfont/program, silent output)."""


# ---------------------------------------------------------------------------------------------
# FluidSynth, one synth per (process, soundfont, sr)
# ---------------------------------------------------------------------------------------------

class _CachedSynth:
    def __init__(self, sf_name: str, sr: int):
        import fluidsynth
        self._fl = fluidsynth._fl
        f = self._fl.fluid_synth_write_float
        f.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                      ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        f.restype = ctypes.c_int
        self.synth = fluidsynth.Synth(gain=_SYNTH_GAIN, samplerate=float(sr), **{
            "synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1,
            "synth.polyphony": _POLYPHONY, "synth.dynamic-sample-loading": _DYNAMIC})
        self.path = soundfont_path(sf_name)
        self.sfid = self.synth.sfload(self.path)
        if self.sfid < 0:
            raise RenderError(f"FluidSynth could not load soundfont {self.path}")
        self.sr = sr
        self.pulled = 0          # samples pulled since creation (mod 64 tells the block phase)

    def _warm_up(self, program: int = 24, blocks: int = 64) -> None:
        """Play the program on (almost) every voice slot, then kill the voices.

        Why: FluidSynth reuses voice objects and a new note inherits a little state from the
        note its slot played last (differences ~1e-4 at its start). Playing the same notes on
        every slot just before each render overwrites that state with one that depends only
        on the program, so a render never depends on the renders before it.
        """
        for ch in range(_CHANNELS):
            self.synth.program_select(ch, self.sfid, 0, int(program))
        for key in range(_CHANNELS * 128):
            # stop short of the polyphony limit (FluidSynth warns when it has to steal)
            if self.synth.get_active_voice_count() >= _POLYPHONY - 8:
                break
            self.synth.noteon(key // 128, key % 128, 100)
        self.pull(BLOCK * blocks)
        for ch in range(_CHANNELS):
            self.synth.all_sounds_off(ch)
        self._drain("warm-up")

    def pull(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """``n`` float samples (left channel; the GM guitar presets are centred, so the
        right channel is the same signal)."""
        if out is None:
            out = np.zeros(n, np.float32)
        if n > 0:
            right = np.zeros(n, np.float32)
            rc = self._fl.fluid_synth_write_float(self.synth.synth, n, out.ctypes.data, 0, 1,
                                                  right.ctypes.data, 0, 1)
            if rc != 0:
                raise RenderError("fluid_synth_write_float failed")
            self.pulled += n
        return out

    def reset(self, what: str) -> None:
        # All Sound Off kills the voices at once (a system reset alone only *releases* them,
        # and FluidR3's nylon guitar rings on for seconds); then reset controllers/programs
        for ch in range(_CHANNELS):
            self.synth.all_sounds_off(ch)
        self.pull((-self.pulled) % BLOCK)        # realign to a block boundary
        self._drain(what)
        self.synth.system_reset()
        self._drain(what)

    def _drain(self, what: str) -> None:
        """Pull until a whole chunk is exactly silent with no active voice, so nothing of the
        previous render leaks into the next (killed voices fade for a few ms)."""
        for _ in range(256):
            if not np.any(self.pull(BLOCK * 64)) and self.synth.get_active_voice_count() == 0:
                return
        raise RenderError(f"{what}: FluidSynth did not fall silent after a reset")

    def select(self, program: int, what: str) -> None:
        if self.synth.program_select(0, self.sfid, 0, int(program)) != 0:
            raise RenderError(f"{what}: GM program {program} (bank 0) is missing from soundfont "
                              f"{os.path.basename(self.path)}")
        self._warm_up(program, blocks=4)
        self.synth.system_reset()
        self._drain(what)
        self.synth.program_select(0, self.sfid, 0, int(program))


_SYNTHS: dict[tuple, _CachedSynth] = {}


def _get_synth(sf_name: str, sr: int) -> _CachedSynth:
    key = (os.getpid(), sf_name, int(sr))
    if key not in _SYNTHS:
        _SYNTHS[key] = _CachedSynth(sf_name, sr)
    return _SYNTHS[key]


def synthesize(notes, soundfont: str, program: int, sr: int = 44100,
               n_samples: int | None = None, *, what: str = "render") -> np.ndarray:
    """Dry FluidSynth render of ``notes`` (``score.Notes``), float32 mono ``(n_samples,)``.

    ``n_samples`` defaults to the last offset + 1 s. Raises :class:`RenderError` for a missing
    soundfont or program (``what`` names the timbre in the message).
    """
    try:
        syn = _get_synth(soundfont, sr)
    except FileNotFoundError as e:
        raise RenderError(f"{what}: {e}") from e
    if n_samples is None:
        n_samples = int(np.ceil((notes.duration + 1.0) * sr))
    syn.reset(what)
    syn.select(program, what)
    on = np.round(np.asarray(notes.onset) * sr).astype(np.int64)
    off = np.round(np.asarray(notes.offset) * sr).astype(np.int64)
    pitch = np.asarray(notes.pitch, np.int64)
    vel = np.asarray(notes.velocity, np.int64)
    # a note ends where the next note of its pitch starts (one key per pitch per channel)
    order = np.lexsort((on, pitch))
    for a, b in zip(order[:-1], order[1:]):
        if pitch[a] == pitch[b] and off[a] > on[b]:
            off[a] = on[b]
    off = np.maximum(off, on + 1)
    # events sorted by time, note-offs before note-ons at the same sample
    times = np.concatenate([off, on])
    kinds = np.concatenate([np.zeros(len(off), np.int64), np.ones(len(on), np.int64)])
    keys = np.concatenate([pitch, pitch])
    vels = np.concatenate([np.zeros(len(off), np.int64), vel])
    ev = np.lexsort((keys, kinds, times))
    out = np.zeros(n_samples, np.float32)
    pos = 0
    for i in ev:
        t = int(min(max(times[i], 0), n_samples))
        if t > pos:
            syn.pull(t - pos, out[pos:t])
            pos = t
        if t >= n_samples:
            break
        if kinds[i]:
            syn.synth.noteon(0, int(keys[i]), int(vels[i]))
        else:
            syn.synth.noteoff(0, int(keys[i]))
    if pos < n_samples:
        syn.pull(n_samples - pos, out[pos:])
    return out


# ---------------------------------------------------------------------------------------------
# Loudness
# ---------------------------------------------------------------------------------------------

def loudness_db(audio: np.ndarray, sr: int) -> float:
    """Gated RMS level in dBFS (BS.1770 gating, no K-weighting); -inf for silence."""
    x = np.asarray(audio, np.float64)
    blk, hop = int(0.4 * sr), int(0.1 * sr)
    if len(x) < blk:
        p = np.array([np.mean(x ** 2)]) if len(x) else np.array([0.0])
    else:
        c = np.concatenate([[0.0], np.cumsum(x ** 2)])
        starts = np.arange(0, len(x) - blk + 1, hop)
        p = (c[starts + blk] - c[starts]) / blk
    p = p[p > 10 ** (-70 / 10)]                        # absolute gate
    if not len(p):
        return float("-inf")
    rel = 10 * np.log10(np.mean(p)) - 10.0             # relative gate
    p = p[10 * np.log10(p) > rel]
    return float(10 * np.log10(np.mean(p)))


def normalise_loudness(audio: np.ndarray, sr: int, target_db: float) -> tuple[np.ndarray, float]:
    """``audio`` scaled to ``target_db`` gated RMS; returns (audio, gain)."""
    level = loudness_db(audio, sr)
    if not np.isfinite(level):
        return audio.astype(np.float32), 1.0
    g = 10 ** ((target_db - level) / 20)
    return (audio * g).astype(np.float32), float(g)


# ---------------------------------------------------------------------------------------------
# The public render
# ---------------------------------------------------------------------------------------------

def _row_get(row, key):
    return row[key] if not hasattr(row, "get") else row.get(key)


def _synthesize_procedural(notes, spec, source: str, sr: int, n_total: int) -> np.ndarray:
    """Dry audio of a procedural timbre spec (``corpus.variety``: additive or karplus)."""
    from guitarsep.corpus.synth import params_from_dict, render_additive, render_karplus

    fn = {"additive": render_additive, "karplus": render_karplus}.get(source)
    if fn is None:
        raise RenderError(f"timbre {_row_get(spec, 'timbre_id')}: unknown source {source!r}")
    params = params_from_dict(source, _row_get(spec, "synth"))
    out = fn(notes, sr, params, n_total / sr, seed=int(_row_get(spec, "seed") or 0))
    return np.ascontiguousarray(out[:n_total], dtype=np.float32)


def render_part(notes, timbre_row, sr: int = 44100, *, duration: float | None = None,
                skip: float = 0.0, target_lufs: float = -20.0, return_info: bool = False):
    """Render ``notes`` in a timbre: FluidSynth, effects chain, loudness, checks.

    ``timbre_row``: a row of ``timbres.load_timbres()`` (Series or dict with soundfont,
    program, chain, timbre_id) or a drawn timbre spec of ``corpus.variety`` (``source``
    soundfont/additive/karplus, ``effects`` instead of a chain name). ``duration``: output length in seconds measured from time 0
    (default: last offset + 1 s). ``skip``: seconds dropped at the start after the effects, so a
    clip can be rendered with a pre-roll (notes sounding into the clip and the reverb tail are
    right) and only the clip kept. Returns float32 mono ``(round((duration - skip) * sr),)``
    at ``target_lufs`` gated RMS (see module docstring), and with ``return_info`` also a dict
    (dry_rms, gain, peak_scale). Raises :class:`RenderError` naming timbre and program.
    """
    tid = _row_get(timbre_row, "timbre_id") or "?"
    source = _row_get(timbre_row, "source") or "soundfont"
    sf, prog, chain = (_row_get(timbre_row, k) for k in ("soundfont", "program", "chain"))
    chain = _row_get(timbre_row, "effects") if chain is None else chain
    what = (f"timbre {tid} ({sf}, program {prog}, chain {chain if isinstance(chain, str) else 'drawn'})"
            if source == "soundfont" else f"timbre {tid} ({source} synthesis)")
    if duration is None:
        duration = notes.duration + 1.0
    notes = perform(notes, _row_get(timbre_row, "performance"))    # None: as written
    n_total = int(round(duration * sr))
    n_skip = int(round(skip * sr))
    if source == "soundfont":
        dry = synthesize(notes, sf, int(prog), sr, n_total, what=what)
    else:
        dry = _synthesize_procedural(notes, timbre_row, source, sr, n_total)
    dry_rms = float(np.sqrt(np.mean(dry.astype(np.float64) ** 2))) if n_total else 0.0
    if dry_rms < SILENCE_RMS:
        raise RenderError(f"{what}: silent render (RMS {dry_rms:.2e} < {SILENCE_RMS:g}; "
                          f"{len(notes)} notes) - program missing from the soundfont or no notes")
    dry, _ = normalise_loudness(dry, sr, target_lufs)
    wet = apply_chain(dry, sr, chain)[n_skip:]
    if not np.isfinite(wet).all():
        raise RenderError(f"{what}: effects chain produced non-finite samples")
    out, gain = normalise_loudness(wet, sr, target_lufs)
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    scale = 1.0
    if peak > PEAK_MAX:
        scale = PEAK_MAX / peak
        out = (out * scale).astype(np.float32)
    if return_info:
        return out, dict(dry_rms=dry_rms, gain=gain, peak_scale=scale)
    return out
