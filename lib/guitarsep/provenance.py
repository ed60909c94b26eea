"""Provenance records: which profile, commit, seed, device and wall time made an artefact.

Every notebook stage records its wall time with :func:`record_stage` (01–05 notebooks);
``04_figures.ipynb`` gathers them into ``figures/provenance.json`` with :func:`collect`.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from guitarsep.io import write_json_atomic

__all__ = ["git_commit", "device_description", "record_stage", "stage_timer", "collect"]


def git_commit(root: Path) -> str:
    """``git rev-parse HEAD`` of ``root`` (``+dirty`` when the tree has changes), or "unknown"."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description() -> str:
    """CPU model and core count, plus the CUDA device when torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} cores"
    try:
        import torch
        if torch.cuda.is_available():
            desc += f"; GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return desc


def _stages_path(profile) -> Path:
    return profile.data_dir / "stages.json"


def record_stage(profile, stage: str, wall_s: float, **extra) -> dict:
    """Add/replace the record of one pipeline stage in ``<data_dir>/stages.json``."""
    path = _stages_path(profile)
    stages = json.loads(path.read_text()) if path.is_file() else {}
    stages[stage] = {
        "wall_s": round(float(wall_s), 2),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(profile.root),
        "device": device_description(),
        **extra,
    }
    write_json_atomic(path, stages)
    return stages[stage]


@contextmanager
def stage_timer(profile, stage: str, **extra):
    """``with stage_timer(profile, "train"): ...`` records the block's wall time."""
    t0 = time.perf_counter()
    yield
    record_stage(profile, stage, time.perf_counter() - t0, **extra)


def collect(profile, **extra) -> dict:
    """The provenance of a profile's figures: profile, commit, seeds, device, stage times."""
    path = _stages_path(profile)
    stages = json.loads(path.read_text()) if path.is_file() else {}
    return {
        "profile": profile.name,
        "commit": git_commit(profile.root),
        "seeds": {"profile": profile.seed, "corpus": profile.corpus.seed,
                  "train": profile.train.seed},
        "device": device_description(),
        "stages": stages,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
