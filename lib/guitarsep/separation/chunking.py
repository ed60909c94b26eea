"""Chunked processing of long signals: where the chunks go, and how they are cross-faded back.

Used by :mod:`guitarsep.separation.separate` (in-memory separation of a clip, 03_evaluate /
05_listen / 06_robustness) and :mod:`guitarsep.separation.stream` (a recording of any length,
``guitarsep separate``): both cut the input into chunks with context on each side, process
each chunk alone, and join the chunks' cores with a raised-cosine cross-fade, so memory
depends on the chunk length only.

A chunk ``i`` has its core ``[s0, s1)``, is processed over ``[a, b) = [s0 - context,
s1 + context]`` (clipped to the signal) and contributes ``[s0 - fade/2, s1 + fade/2)``; the
ramps of neighbouring chunks sum to one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["ChunkPlan", "plan_chunks", "overlap_add"]


@dataclass(frozen=True)
class ChunkPlan:
    """Chunk starts (samples) of a signal of ``n`` samples; ``core``, ``fade`` and
    ``context`` in samples. One chunk ``(0,)`` when the signal fits in one."""

    n: int
    starts: tuple[int, ...]
    core: int
    fade: int
    context: int

    def __len__(self) -> int:
        return len(self.starts)

    def span(self, i: int) -> tuple[int, int, int, int]:
        """``(a, b, lo, hi)`` of chunk ``i``: processed ``[a, b)``, contributes ``[lo, hi)``."""
        s0, last = self.starts[i], i == len(self.starts) - 1
        s1 = self.n if last else s0 + self.core
        half = self.fade // 2
        return (max(0, s0 - self.context), min(self.n, s1 + self.context),
                0 if i == 0 else s0 - half, self.n if last else s1 + half)


def plan_chunks(n: int, *, core: int | None, fade: int, context: int) -> ChunkPlan:
    """Cores of ``core`` samples (None: one chunk); a last chunk shorter than half the
    cross-fade is merged into the one before (no sliver chunk)."""
    if core is None or n <= core + fade:
        return ChunkPlan(n, (0,), n, fade, 0)
    starts = list(range(0, n, core))
    if len(starts) > 1 and n - starts[-1] <= fade // 2:
        starts.pop()
    return ChunkPlan(n, tuple(starts), core, fade, context)


def _ramp_in(fade: int) -> np.ndarray:
    k = (np.arange(fade) + 0.5) / fade
    return (0.5 - 0.5 * np.cos(np.pi * k)).astype(np.float64)      # + ramp_out == 1


def overlap_add(plan: ChunkPlan, process: Callable[[int, int], np.ndarray],
                on_chunk: Callable[[int, int], None] | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, finished samples)`` in order, covering ``[0, plan.n)`` once.

    ``process(a, b)`` returns the processed chunk ``[a, b)`` (samples on the first axis, any
    trailing channel axes). Finished pieces are float64 (cross-faded), except a single chunk,
    which is returned as processed. Only one chunk and one cross-fade are held at a time.
    """
    if len(plan) == 1:
        y = process(0, plan.n)
        if on_chunk is not None:
            on_chunk(1, 1)
        yield 0, y
        return
    ramp, fade, tail = _ramp_in(plan.fade), plan.fade, None
    for i in range(len(plan)):
        a, b, lo, hi = plan.span(i)
        last = i == len(plan) - 1
        seg = process(a, b)
        w = np.ones(hi - lo, dtype=np.float64)
        if i > 0:
            w[:fade] = ramp
        if not last:
            w[-fade:] = 1.0 - ramp
        piece = w.reshape(-1, *([1] * (seg.ndim - 1))) * seg[lo - a:hi - a]
        if tail is not None:
            piece[:fade] = tail + piece[:fade]
        if on_chunk is not None:
            on_chunk(i + 1, len(plan))
        if last:
            yield lo, piece
        else:
            tail = piece[-fade:]
            yield lo, piece[:-fade]
