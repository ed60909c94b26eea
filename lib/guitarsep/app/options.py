"""Checks of the run options of ``guitarsep separate`` (device, threads, chunk length).

Each check returns the value to use, or raises :class:`OptionError` with one line naming the
option and the problem; the CLI prints it and exits with status 2 (argparse's convention for
bad options), so a bad value never ends in a traceback half-way through a run. Warnings (a
value that works but is probably not what the user wants) go to ``warn``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable

__all__ = ["OptionError", "check_device", "check_threads", "check_chunk_s", "max_threads",
           "MIN_CHUNK_S", "MAX_CHUNK_S", "CHUNK_MB_PER_S"]

MIN_CHUNK_S = 2.0        # chunks overlap by 1 s (cross-fade) and carry 2 s of context
MAX_CHUNK_S = 600.0      # a chunk and its spectrograms are held in memory
CHUNK_MB_PER_S = 14.0    # measured: peak memory grows ~13.5 MB per second of chunk (mono, 48 kHz)

_DEVICES = "cpu, cuda, cuda:N or mps"


class OptionError(ValueError):
    """A bad option value (one line, naming the option)."""


def check_device(name: str) -> str:
    """``name`` if torch can run there: a valid device string whose backend is available."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise OptionError(f"--device {name}: not a torch device (use {_DEVICES})") from None
    if dev.type == "cpu":
        return name
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "no CUDA GPU is visible")
            raise OptionError(f"--device {name}: CUDA is not available ({why}); use --device "
                              f"cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise OptionError(f"--device {name}: there {'is' if count == 1 else 'are'} only "
                              f"{count} CUDA device{'' if count == 1 else 's'} (cuda:0"
                              f"{f'..cuda:{count - 1}' if count > 1 else ''})")
        return name
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise OptionError(f"--device {name}: Apple MPS is not available on this machine; "
                              f"use --device cpu")
        return name
    raise OptionError(f"--device {name}: device type {dev.type!r} is not supported (use "
                      f"{_DEVICES})")


def check_threads(n: int | None, warn: Callable[[str], None] | None = None) -> int | None:
    """``n`` torch threads: an error below 0 and above :func:`max_threads`; a warning for 0
    (torch's own default) and for more threads than CPU cores."""
    if n is None:
        return None
    if n < 0:
        raise OptionError(f"--threads {n}: must be a positive number of threads (or 0 for "
                          f"torch's default)")
    cores = os.cpu_count() or 1
    limit = max_threads()
    if n > limit:
        raise OptionError(f"--threads {n}: at most {limit} on this machine ({cores} CPU "
                          f"cores); more only add overhead, and thousands make torch hang "
                          f"or crash")
    if warn is not None:
        if n == 0:
            import torch

            k = torch.get_num_threads()
            warn(f"--threads 0: torch's default is used ({k} thread{'s' if k != 1 else ''});"
                 f" 1 is usually fastest for this model")
        elif n > cores:
            warn(f"--threads {n}: more threads than the {cores} CPU cores of this machine "
                 f"(slower, not faster)")
    return n


def max_threads() -> int:
    """The most ``--threads`` accepted: 4 per CPU core, at least 64."""
    return max(64, 4 * (os.cpu_count() or 1))


def check_chunk_s(x: float | None) -> float | None:
    """Seconds per chunk, finite, in [MIN_CHUNK_S, MAX_CHUNK_S] (None: one pass, API only)."""
    if x is None:
        return None
    if not math.isfinite(x):
        raise OptionError(f"--chunk-s {x}: must be a finite number of seconds between "
                          f"{MIN_CHUNK_S:g} and {MAX_CHUNK_S:g}")
    if x < MIN_CHUNK_S:
        raise OptionError(f"--chunk-s {x:g}: at least {MIN_CHUNK_S:g} s (chunks overlap by "
                          f"1 s and carry 2 s of context on each side)")
    if x > MAX_CHUNK_S:
        raise OptionError(f"--chunk-s {x:g}: at most {MAX_CHUNK_S:g} s (a chunk is held in "
                          f"memory with its spectrograms, about {CHUNK_MB_PER_S:g} MB per "
                          f"second and channel: {x:g} s would need "
                          f"{_size(x * CHUNK_MB_PER_S * 1e6)} or more)")
    return float(x)


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.3g} PB"
