"""Profiles: one frozen configuration object per profile (``smoke``, ``default``, ``paper``).

Every size, seed and path that a notebook or the CLI uses lives here and is passed explicitly;
no function in the package looks a profile up from a global. Used by every notebook
(``profile`` is the papermill parameter) and by ``guitarsep.cli``.

    >>> from guitarsep.config import load_profile
    >>> p = load_profile("smoke")
    >>> p.corpus_dir            # absolute path under <root>/data/smoke/corpus
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "StftSetting", "SETTINGS", "MaskParams", "CorpusConfig", "TrainConfig", "EvalConfig",
    "ModelSpec", "Profile", "PROFILE_NAMES", "load_profile", "find_root", "config_hash",
]


@dataclass(frozen=True)
class StftSetting:
    """An STFT front end: sample rate, window, hop and the model's bandwidth.

    ``modern`` is the paper's (44.1 kHz, 4096/1024, 16 kHz bandwidth). ``low_res`` is ours: the
    paper does not state the parameters of its low-resolution comparison, so we take the
    resolution of the U-Net's original paper (Jansson et al. 2017: 8192 Hz, window 1024,
    hop 768), shared by the three models of ``figures/low_res.png``.
    """

    name: str
    sr: int
    n_fft: int
    hop: int
    bandwidth_hz: float

    @property
    def n_bins(self) -> int:
        """Number of STFT bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def max_bin(self) -> int:
        """Number of bins the networks see (bins with centre frequency <= bandwidth)."""
        return min(self.n_bins, int(self.bandwidth_hz * self.n_fft / self.sr) + 1)

    def frames_for(self, seconds: float) -> int:
        """Number of STFT frames (``center=True``) covering ``seconds`` of audio."""
        return int(round(seconds * self.sr)) // self.hop + 1


SETTINGS: dict[str, StftSetting] = {
    "modern": StftSetting("modern", sr=44100, n_fft=4096, hop=1024, bandwidth_hz=16000.0),
    "low_res": StftSetting("low_res", sr=8192, n_fft=1024, hop=768, bandwidth_hz=4096.0),
}


@dataclass(frozen=True)
class MaskParams:
    """Harmonic-comb score mask parameters (Miron et al. 2018; METHOD.md)."""

    n_harmonics: int = 20
    cents: float = 30.0
    a4_hz: float = 440.0
    onset_tol: float = 0.1
    offset_tol: float = 0.1
    fermata: float = 0.5


@dataclass(frozen=True)
class CorpusConfig:
    """What ``guitarsep.corpus.build_corpus`` generates (all counts per split).

    Pieces are two-part scores; each part of a training/validation piece is rendered in
    ``renders_per_part`` timbres of the split's pool so training can remix any rendering of
    part 0 with any rendering of part 1. Test clips (``clips_per_cell`` per scenario x
    combination) are rendered on demand for the timbres their scenario asks for.
    """

    seed: int = 1234
    sr: int = 44100
    # generated idiom pieces per split, and their length in seconds
    n_generated: tuple[tuple[str, int], ...] = (("train", 40), ("valid", 6), ("test", 12))
    # music21 corpus reductions per split (0 disables the source)
    n_music21: tuple[tuple[str, int], ...] = (("train", 8), ("valid", 2), ("test", 4))
    piece_seconds: float = 45.0
    renders_per_part: int = 2
    clip_seconds: float = 15.0
    clips_per_cell: int = 24
    valid_clips: int = 24
    target_lufs: float = -20.0
    n_jobs: int = 2

    def counts(self, which: str) -> dict[str, int]:
        """``{"train": n, ...}`` for ``which`` in {"n_generated", "n_music21"}."""
        return dict(getattr(self, which))


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters shared by every model (paper values in ``paper``)."""

    seed: int = 42
    hidden_size: int = 256          # Open-Unmix hidden size (paper: 1024)
    unet_channels: int = 16         # first U-Net layer's channels (Jansson: 16)
    # Training chunk length in STFT frames of the model's setting, so every setting sees the
    # same number of frames (64 = 1.46 s modern, 5.9 s low_res; the U-Net needs multiples of
    # 64 to avoid padding). The paper's 0.44 s at 44.1 kHz/1024 is 19 frames.
    seq_frames: int = 64
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lr_decay_patience: int = 80
    lr_decay_gamma: float = 0.3
    patience: int = 100             # early stopping, in epochs
    epochs: int = 20
    steps_per_epoch: int = 50
    grad_clip: float = 5.0
    gain_db: float = 6.0            # random gain range for on-the-fly remix
    p_same_timbre: float = 0.2      # chance that both parts of a training mix share a timbre
    num_workers: int = 0
    valid_batch_clips: int = 8


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation: which references to add and how much museval to run."""

    references: tuple[str, ...] = ("oracle_irm", "score_only", "mixture")
    museval_clips_per_cell: int = 24   # clips per cell that also get BSS Eval v4 (slow)
    museval_window_s: float = 1.0
    n_jobs: int = 2
    bootstrap: int = 1000


@dataclass(frozen=True)
class ModelSpec:
    """A model to train: network name (``guitarsep.models.MODEL_NAMES``) in a setting."""

    name: str
    setting: str
    steps_scale: float = 1.0        # multiplies TrainConfig.steps_per_epoch for this model

    @property
    def key(self) -> str:
        """Directory-safe id, e.g. ``modern-si_umx_soft``."""
        return f"{self.setting}-{self.name}"


# The models each figure needs (figures.py draws only what is in the results table).
FIGURE_MODEL_KEYS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "low_res"), ("si_unet_soft", "low_res"), ("si_cnn", "low_res"),
    ("si_umx_soft", "modern"), ("si_umx_binary", "modern"), ("umx_blind", "modern"),
    ("si_unet_soft", "modern"), ("si_unet_binary", "modern"),
)


def figure_models(steps_scale: dict[str, float] | None = None) -> tuple[ModelSpec, ...]:
    """The specs of :data:`FIGURE_MODEL_KEYS`; ``steps_scale`` maps ``setting-name`` keys to
    a training-length factor (default 1), used to fit a CPU budget."""
    scale = steps_scale or {}
    return tuple(ModelSpec(n, s, scale.get(f"{s}-{n}", 1.0)) for n, s in FIGURE_MODEL_KEYS)


FIGURE_MODELS: tuple[ModelSpec, ...] = figure_models()


@dataclass(frozen=True)
class Profile:
    """Everything one run of the pipeline needs. Paths are absolute, derived from ``root``."""

    name: str
    root: Path
    seed: int
    corpus: CorpusConfig
    train: TrainConfig
    eval: EvalConfig
    models: tuple[ModelSpec, ...] = FIGURE_MODELS
    mask: MaskParams = field(default_factory=MaskParams)

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / self.name

    @property
    def corpus_dir(self) -> Path:
        return self.data_dir / "corpus"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def results_dir(self) -> Path:
        """Committed per-clip result tables: ``data/results/<profile>/``."""
        return self.root / "data" / "results" / self.name

    @property
    def figures_dir(self) -> Path:
        """``figures/`` for ``default`` (the committed ones), ``build/figures/<profile>`` else."""
        if self.name == "default":
            return self.root / "figures"
        return self.root / "build" / "figures" / self.name

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    def setting(self, name: str) -> StftSetting:
        return SETTINGS[name]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["root"] = str(self.root)
        return d


def config_hash(obj) -> str:
    """Short stable hash of a (nested) dataclass; keys caches (corpus, checkpoints)."""
    d = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def find_root(start: Path | None = None) -> Path:
    """The project root: ``$GUITARSEP_ROOT``, else the first parent of ``start`` (default cwd)
    holding a ``pyproject.toml`` that names guitarsep, else ``start`` itself."""
    env = os.environ.get("GUITARSEP_ROOT")
    if env:
        return Path(env).resolve()
    start = Path(start or Path.cwd()).resolve()
    for p in (start, *start.parents):
        pp = p / "pyproject.toml"
        if pp.is_file() and 'name = "guitarsep"' in pp.read_text():
            return p
    return start


def _smoke(root: Path) -> Profile:
    return Profile(
        name="smoke", root=root, seed=7,
        corpus=CorpusConfig(
            seed=7, n_generated=(("train", 3), ("valid", 1), ("test", 2)),
            n_music21=(("train", 1), ("valid", 0), ("test", 0)),
            piece_seconds=12.0, renders_per_part=2, clip_seconds=6.0, clips_per_cell=2,
            valid_clips=2,
        ),
        train=TrainConfig(hidden_size=32, unet_channels=4, seq_frames=16, batch_size=4,
                          epochs=2, steps_per_epoch=3, patience=5, lr_decay_patience=3,
                          valid_batch_clips=2),
        eval=EvalConfig(museval_clips_per_cell=1, bootstrap=100),
    )


def _default(root: Path) -> Profile:
    return Profile(
        name="default", root=root, seed=1234,
        corpus=CorpusConfig(),
        # Budget (2 CPU cores, measured step times at batch 16 x 64 frames): UMX hidden 256
        # 0.09 s (modern) / 0.05 s (low_res); U-Net 0.44 s / 0.18 s; CNN 0.06 s (low_res).
        # 15 epochs x 180 steps for modern UMX, fewer steps for the slower U-Net, so the eight
        # models train in about 30 minutes.
        train=TrainConfig(epochs=15, steps_per_epoch=180, patience=6, lr_decay_patience=3),
        eval=EvalConfig(museval_clips_per_cell=5),
        models=figure_models({"modern-si_unet_soft": 0.17, "modern-si_unet_binary": 0.17,
                              "low_res-si_umx_soft": 0.5, "low_res-si_unet_soft": 0.2,
                              "low_res-si_cnn": 0.5}),
    )


def _paper(root: Path) -> Profile:
    # The paper's hyper-parameters (METHOD.md): meant for a GPU.
    return Profile(
        name="paper", root=root, seed=2021,
        corpus=CorpusConfig(seed=2021, n_generated=(("train", 300), ("valid", 30), ("test", 40)),
                            n_music21=(("train", 60), ("valid", 6), ("test", 10)),
                            piece_seconds=60.0, renders_per_part=4, clips_per_cell=50,
                            valid_clips=64),
        train=TrainConfig(hidden_size=1024, unet_channels=16, seq_frames=19,
                          batch_size=32, epochs=1000, steps_per_epoch=200, patience=100,
                          lr_decay_patience=80, num_workers=4),
        eval=EvalConfig(museval_clips_per_cell=50),
    )


_PROFILES = {"smoke": _smoke, "default": _default, "paper": _paper}
PROFILE_NAMES: tuple[str, ...] = tuple(_PROFILES)


def load_profile(name: str, root: str | Path | None = None) -> Profile:
    """Return the profile called ``name`` with paths under ``root`` (default: :func:`find_root`).

    Raises ``ValueError`` listing the valid names for an unknown name.
    """
    if name not in _PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    return _PROFILES[name](Path(root).resolve() if root else find_root())
