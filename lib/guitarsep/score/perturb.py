"""Score perturbations: the score errors of the robustness study (``06_robustness.ipynb``).

A user's score is rarely the performance: notes are early or late, the whole score is offset
from the recording, notes are missing, extra or in the wrong octave, or end too early.
:func:`perturb_notes` corrupts a part's :class:`~guitarsep.score.notes.Notes` in these ways and
:func:`onset_error_ms` measures how far a score's onsets are from the true ones;
:func:`guitarsep.evaluation.robustness.run_robustness` (the study loop behind
``06_robustness.ipynb``) applies them to test clips and separates with the corrupted scores.

Perturbations (``level`` in seconds or as a fraction of the notes):

* ``onset_jitter``: every note moves by ``U(-level, level)`` seconds (onset and offset
  together, so durations are kept; onsets are clipped at 0).
* ``global_offset``: every note is ``level`` seconds late (the score starts after the audio).
* ``missing_notes``: ``round(level * n)`` notes are dropped.
* ``extra_notes``: ``round(level * n)`` notes are added, with pitches drawn uniformly from the
  part's own pitch range, durations drawn from its own notes, onsets uniform over the clip.
* ``wrong_octave``: ``round(level * n)`` notes move one octave up or down (random sign,
  reflected when the move would leave the MIDI range).
* ``early_offsets``: every note ends early, keeping the first ``1 - level`` of its duration
  (a tab that does not notate let-ring, a staccato transcription); onsets are kept.

Decisions where the paper is silent (it has no robustness study): jitter is uniform rather
than Gaussian so that ``level`` is the largest error; ``onset_error_ms`` is the median
distance from each onset of the given score to the nearest true onset of the same pitch (so
it is defined for added and octave-moved notes too, where no one-to-one match exists; NaN
when no pitch matches).
"""
from __future__ import annotations

import numpy as np

from guitarsep.score.notes import Notes

__all__ = ["PERTURBATION_KINDS", "perturb_notes", "onset_error_ms"]

PERTURBATION_KINDS = ("onset_jitter", "global_offset", "missing_notes", "extra_notes",
                      "wrong_octave", "early_offsets")


def perturb_notes(notes: Notes, kind: str, level: float, rng: np.random.Generator, *,
                  duration: float) -> Notes:
    """A corrupted copy of ``notes`` (see the module docstring for each ``kind``).

    Args:
        notes: one part, times in seconds from the clip start.
        kind: one of :data:`PERTURBATION_KINDS` (or ``"none"``: ``notes`` unchanged).
        level: seconds for ``onset_jitter``/``global_offset``, a fraction in [0, 1) of each
            note's duration for ``early_offsets``, in [0, 1] of the part's notes for the
            others. 0 returns ``notes`` unchanged.
        rng: the draws.
        duration: the clip's length in seconds (where extra notes may fall).

    Returns:
        A new, sorted :class:`~guitarsep.score.notes.Notes` (may be empty after ``missing_notes``
        at level 1).
    """
    if kind not in PERTURBATION_KINDS + ("none",):
        raise ValueError(f"unknown perturbation {kind!r}; valid: {', '.join(PERTURBATION_KINDS)}")
    level = float(level)
    if not np.isfinite(level) or level < 0:
        raise ValueError(f"perturbation level must be a finite number >= 0, got {level}")
    n = len(notes)
    if kind == "none" or level == 0 or n == 0:
        return notes
    on, off = notes.onset.copy(), notes.offset.copy()
    pitch, vel = notes.pitch.copy(), notes.velocity.copy()
    if kind in ("missing_notes", "extra_notes", "wrong_octave") and level > 1:
        raise ValueError(f"{kind} level is a fraction of the notes, got {level} > 1")
    if kind == "early_offsets" and level >= 1:
        raise ValueError(f"early_offsets level is the share of each note cut, got {level} >= 1")
    k = int(round(level * n))
    if kind == "onset_jitter":
        shift = rng.uniform(-level, level, size=n)
        shift = np.maximum(shift, -on)          # onsets stay >= 0
        on, off = on + shift, off + shift
    elif kind == "global_offset":
        on, off = on + level, off + level
    elif kind == "missing_notes":
        keep = np.sort(rng.choice(n, size=n - k, replace=False))
        on, off, pitch, vel = on[keep], off[keep], pitch[keep], vel[keep]
    elif kind == "extra_notes":
        dur = rng.choice(off - on, size=k)
        dur = np.minimum(dur, max(duration * 0.5, 0.05))
        new_on = rng.uniform(0.0, max(duration - dur.min(), 1e-3), size=k)
        new_pitch = rng.integers(int(pitch.min()), int(pitch.max()) + 1, size=k)
        new_vel = rng.choice(vel, size=k)
        on = np.concatenate([on, new_on])
        off = np.concatenate([off, new_on + dur])
        pitch = np.concatenate([pitch, new_pitch])
        vel = np.concatenate([vel, new_vel])
    elif kind == "wrong_octave":
        idx = rng.choice(n, size=k, replace=False)
        move = np.where(rng.random(k) < 0.5, -12, 12)
        moved = pitch[idx] + move
        moved = np.where((moved < 0) | (moved > 127), pitch[idx] - move, moved)
        pitch[idx] = moved
    elif kind == "early_offsets":
        off = on + (1.0 - level) * (off - on)
    return Notes.from_arrays(on, off, pitch, vel, source=f"<{kind} {level:g}>")


def onset_error_ms(given: Notes, true: Notes) -> float:
    """Median over the onsets of ``given`` of the distance (ms) to the nearest onset of the
    same pitch in ``true``; NaN when no note of ``given`` has a pitch found in ``true``."""
    errs = []
    for p in np.unique(given.pitch):
        t = np.sort(true.onset[true.pitch == p])
        if t.size == 0:
            continue
        g = given.onset[given.pitch == p]
        i = np.searchsorted(t, g)                       # t[i - 1] <= g < t[i]
        lo = t[np.clip(i - 1, 0, t.size - 1)]
        hi = t[np.clip(i, 0, t.size - 1)]
        errs.append(np.minimum(np.abs(g - lo), np.abs(g - hi)))
    if not errs:
        return float("nan")
    return float(np.median(np.concatenate(errs)) * 1000.0)
