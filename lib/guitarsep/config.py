"""Profiles: one frozen configuration object per profile (``smoke``, ``default``, ``paper``).

Every size, seed and path that a notebook or the CLI uses lives here and is passed explicitly;
no function in the package looks a profile up from a global. Used by every notebook
(``profile`` is the papermill parameter) and by ``guitarsep.app.cli``.

    >>> from guitarsep.config import load_profile
    >>> p = load_profile("smoke")
    >>> p.corpus_dir            # absolute path under <root>/data/smoke/corpus
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from guitarsep.io import json_hash
from guitarsep.vocabulary import FIGURE_MODEL_KEYS, OOF_FAMILIES

__all__ = [
    "StftSetting", "SETTINGS", "MaskParams", "CorpusConfig", "TrainConfig", "EvalConfig",
    "RobustnessConfig", "OutOfFamilyConfig", "ModelSpec", "Profile", "PROFILE_NAMES", "load_profile", "find_root",
    "config_hash",
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
    """Harmonic-comb score mask parameters (Miron et al. 2018; docs/method.md#score-mask)."""

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
    # "table": training renders use the seen timbres of resources/timbres.csv (the paper's
    # setup); "variety": every training rendering draws its own timbre (corpus.variety)
    train_timbres: str = "table"

    def counts(self, which: str) -> dict[str, int]:
        """``{"train": n, ...}`` for ``which`` in {"n_generated", "n_music21"}."""
        return dict(getattr(self, which))


@dataclass(frozen=True)
class OutOfFamilyConfig:
    """The out-of-family test clips (``guitarsep.corpus.out_of_family``): ``clips_per_cell``
    clips per family x pairing (diff, same), cut from ``n_pieces`` pieces composed with
    ``seed`` (never a training piece); ``role_pairs``: the parts' roles are drawn from these
    (``corpus.compose.CHORD_PAIRS`` for the NMF's chord-on-chord dev set) instead of every
    pair of ``corpus.compose.ROLE_PAIRS`` (empty, the default)."""

    seed: int = 4321
    families: tuple[str, ...] = OOF_FAMILIES
    n_pieces: int = 12
    piece_seconds: float = 45.0
    clip_seconds: float = 15.0
    clips_per_cell: int = 24
    sr: int = 44100
    target_lufs: float = -20.0
    n_jobs: int = 2
    role_pairs: tuple[tuple[str, str], ...] = ()


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
    # "plateau": ReduceLROnPlateau on the validation loss (Open-Unmix, the paper); "cosine":
    # cosine decay per step from lr to lr * lr_min_factor over all epochs x steps. With a fixed,
    # short CPU budget the validation loss is too noisy for a plateau rule to ever fire
    # (default runs ended at the initial lr), so the short profiles decay on a schedule.
    lr_schedule: str = "plateau"
    lr_min_factor: float = 0.05
    lr_decay_patience: int = 80
    lr_decay_gamma: float = 0.3
    patience: int = 100             # early stopping, in epochs
    epochs: int = 20
    steps_per_epoch: int = 50
    grad_clip: float = 5.0
    gain_db: float = 6.0            # random gain range for on-the-fly remix
    level_db: float = 0.0           # random gain of the whole remixed mixture (absolute level)
    # "mse": magnitude MSE (Open-Unmix, the paper); "sisdr": negative SI-SDR of the waveform
    # (estimate with the mixture's phase, inverse STFT) against the target
    loss: str = "mse"
    p_same_timbre: float = 0.2      # chance that both parts of a training mix share a timbre
    num_workers: int = 0
    # torch threads of one training run on the CPU. A run's bytes depend on it (the order of
    # floating-point sums), so it is fixed here rather than taken from the machine; train_all
    # runs cores // cpu_threads trainings at once (guitarsep.parallel: the default's eight
    # runs took 41.5 min as 2 processes x 1 thread, 45.5 min as 1 process x 2 threads).
    cpu_threads: int = 1
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
class RobustnessConfig:
    """The score-error study of ``06_robustness.ipynb`` (``guitarsep.evaluation.robustness``).

    ``levels``: per perturbation kind, the levels tried besides the clean score (seconds for
    ``onset_jitter``/``global_offset``, the share of each note's duration cut for
    ``early_offsets``, cents sharp for ``detune_cents``, a perturbation of the recording, and
    fractions of the notes for the others). Every
    condition is run with and without DTW alignment (``align``) for each of ``models``
    (trained ``setting`` models, and the shipped ``score_nmf``) on the first ``n_clips`` test
    clips of ``scenario``, and for those of ``refine_models`` among them with the onsets
    refined too.
    """

    levels: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("onset_jitter", (0.025, 0.05, 0.1, 0.2)),
        ("global_offset", (0.1, 0.25, 0.5, 1.0)),
        ("missing_notes", (0.1, 0.25, 0.5)),
        ("extra_notes", (0.1, 0.25, 0.5)),
        ("wrong_octave", (0.1, 0.25, 0.5)),
        ("early_offsets", (0.25, 0.5, 0.75)),
        ("detune_cents", (20.0, 35.0, 50.0)),
    )
    # trained models of the profile in ``setting``, and "score_nmf": the shipped default
    models: tuple[str, ...] = ("si_umx_soft", "si_umx_binary", "score_nmf")
    setting: str = "modern"
    scenario: str = "seen"
    n_clips: int = 6
    align: tuple[bool, ...] = (False, True)
    # these models also separate with the score's onsets refined to the recording (what
    # `guitarsep separate --refine-onsets` does; the score as given, not aligned)
    refine_models: tuple[str, ...] = ("score_nmf",)
    seed: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """A model to train: network name (``guitarsep.models.MODEL_NAMES``) in a setting."""

    name: str
    setting: str
    steps_scale: float = 1.0        # multiplies TrainConfig.steps_per_epoch for this model
    epochs: int | None = None       # overrides TrainConfig.epochs for this model

    @property
    def key(self) -> str:
        """Directory-safe id, e.g. ``modern-si_umx_soft``."""
        return f"{self.setting}-{self.name}"




def figure_models(steps_scale: dict[str, float] | None = None,
                  epochs: dict[str, int] | None = None) -> tuple[ModelSpec, ...]:
    """The specs of :data:`FIGURE_MODEL_KEYS`; ``steps_scale`` maps ``setting-name`` keys to
    a factor on the steps per epoch (default 1) and ``epochs`` to an epoch count (default the
    profile's), used to fit a CPU budget."""
    scale, ep = steps_scale or {}, epochs or {}
    return tuple(ModelSpec(n, s, scale.get(f"{s}-{n}", 1.0), ep.get(f"{s}-{n}"))
                 for n, s in FIGURE_MODEL_KEYS)


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
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    oof: OutOfFamilyConfig = field(default_factory=OutOfFamilyConfig)

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
    return json_hash(dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj, 12)


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
        oof=OutOfFamilyConfig(n_pieces=2, piece_seconds=12.0, clip_seconds=6.0,
                              clips_per_cell=1),
        robustness=RobustnessConfig(
            levels=(("onset_jitter", (0.1,)), ("global_offset", (0.25,)),
                    ("missing_notes", (0.25,)), ("extra_notes", (0.25,)),
                    ("wrong_octave", (0.25,)), ("early_offsets", (0.5,)),
                    ("detune_cents", (40.0,))),
            n_clips=2),
    )


def _default(root: Path) -> Profile:
    return Profile(
        name="default", root=root, seed=1234,
        corpus=CorpusConfig(),
        # Budget: 30 minutes of training on 2 CPU cores for the eight models. Measured step
        # times at batch 16 x 64 frames, input pipeline included: UMX hidden 256 0.11 s
        # (modern) / 0.05 s (low_res); U-Net 0.44 s / 0.18 s; CNN 0.06 s (low_res); a
        # validation pass over the 24 validation clips costs 2-5 s. Decisions, measured on
        # the validation clips: SI-UMX soft/binary get 1.5 x 2,700 steps (1.0 x: +2.0 dB over
        # the score mask alone, 1.5 x: +2.4 dB); blind UMX first 1.0 x (its only cue is the target
        # convention, corpus.timbres.timbre_sides; at 0.5 x, before the convention, its
        # validation loss was flat from epoch 4); the
        # slower models train in 5 longer epochs (fewer validation passes, same step count
        # for low_res, fewer steps for the modern U-Nets than the UMX models).
        # 2026-12-05, to fit the 45 minutes (the reproduce took 48 min 10 s, training 38 min
        # of it): the modern U-Nets 380 -> 250 steps (their validation SI-SDR rose 0.0-0.3 dB
        # over the last 150 steps), the low_res U-Net 450 -> 315, blind Open-Unmix 10 epochs
        # of 108 steps (it had stopped early at 1,620 steps, its validation loss lowest at 540).
        # 2026-12-06 late, again for the 45 minutes (46:01 on an Intel Xeon, training 35.1 min; up
        # to 50:07 on other machines): the modern SI-UMX soft/binary 1.5 x -> 1.25 x 2,700
        # steps (their runs are the two longest, 0.35 s a step there; 675 steps fewer each
        # save about 4 minutes of the two processes' wall time). That run took 46:07 on an
        # AMD EPYC whose one-thread steps were 12 % slower than the 44:26 machine's, so also:
        # the modern U-Nets 250 -> 155 steps (5 epochs of 31; their validation SI-SDR was
        # 3.20 / 2.24 dB at step 100 and 3.12 / 2.50 dB at 250, soft / binary, 1.6 s a step)
        # and blind Open-Unmix 10 -> 6 epochs (its validation loss lowest at epoch 6 of 10).
        train=TrainConfig(epochs=15, steps_per_epoch=180, patience=6, lr_schedule="cosine"),
        eval=EvalConfig(museval_clips_per_cell=5),
        models=figure_models(
            {"modern-si_umx_soft": 1.25, "modern-si_umx_binary": 1.25, "modern-umx_blind": 0.6,
             "modern-si_unet_soft": 0.17, "modern-si_unet_binary": 0.17,
             "low_res-si_umx_soft": 1.5, "low_res-si_unet_soft": 0.35, "low_res-si_cnn": 1.5},
            epochs={"modern-si_unet_soft": 5, "modern-si_unet_binary": 5,
                    "modern-umx_blind": 6,
                    "low_res-si_umx_soft": 5, "low_res-si_unet_soft": 5,
                    "low_res-si_cnn": 5}),
    )


def _paper(root: Path) -> Profile:
    # The paper's hyper-parameters (docs/method.md#models): meant for a GPU.
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


def _ship(root: Path) -> Profile:
    # The shipped model (its card: lib/guitarsep/resources/si_umx_prior.md): the default corpus's validation and test clips
    # (same seed, same counts: identical clips) and twice its training pieces, every training
    # rendering in its own drawn timbre (corpus.variety); the score-prior network. Budget: one
    # resumable run of about an hour on 2 CPU cores (or minutes on a GPU).
    return Profile(
        name="ship", root=root, seed=1234,
        corpus=CorpusConfig(n_generated=(("train", 88), ("valid", 6), ("test", 12)),
                            renders_per_part=3, train_timbres="variety"),
        train=TrainConfig(epochs=20, steps_per_epoch=500, patience=100, lr_schedule="cosine",
                          gain_db=5.0, level_db=20.0, p_same_timbre=0.3, loss="sisdr",
                          cpu_threads=2),     # one run: both cores to it
        eval=EvalConfig(museval_clips_per_cell=0),
        models=(ModelSpec("si_umx_prior", "modern"),),
    )


_PROFILES = {"smoke": _smoke, "default": _default, "paper": _paper, "ship": _ship}
PROFILE_NAMES: tuple[str, ...] = tuple(_PROFILES)


def load_profile(name: str, root: str | Path | None = None) -> Profile:
    """Return the profile called ``name`` with paths under ``root`` (default: :func:`find_root`).

    Raises ``ValueError`` listing the valid names for an unknown name.
    """
    if name not in _PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    return _PROFILES[name](Path(root).resolve() if root else find_root())
