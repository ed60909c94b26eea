"""One training loop for every separation model (used by ``02_train.ipynb`` and the CLI).

    >>> rec = train_model(profile, ModelSpec("si_umx_soft", "modern"), corpus)
    >>> model = load_trained(profile, ModelSpec("si_umx_soft", "modern"))

``guitarsep train --profile P --model NAME --setting S [--root R]`` runs the same function;
under ``torchrun --nproc_per_node N -m guitarsep train ...`` it trains data-parallel (DDP,
:mod:`guitarsep.training.distributed`).

What a run does (``TrainConfig`` of the profile):

* Loss: MSE between the estimated and the true target magnitude (all models, blind or not).
  Batches come from :class:`guitarsep.training.data.RemixDataset`; the STFT of the batch is
  computed here (``models.frontend.Spectrogram``), on the training device.
* Adam(lr, weight_decay); ReduceLROnPlateau(factor ``lr_decay_gamma``, patience
  ``lr_decay_patience``) on the validation loss (``lr_schedule="plateau"``, the paper's), or a
  per-step cosine decay to ``lr * lr_min_factor`` (``"cosine"``, the short CPU profiles);
  early stopping after ``patience`` epochs
  without a better validation loss; gradient clipping at ``grad_clip`` (global norm).
  An epoch is ``round(steps_per_epoch * spec.steps_scale)`` steps; a run is ``spec.epochs``
  epochs when the spec sets it (fewer, longer epochs: fewer validation passes), else
  ``epochs``.
* Model selection: ``best.pt`` holds the epoch with the lowest validation loss (as Open-Unmix
  does). The validation SI-SDR (median over the validation clips; mixture phase + inverse
  STFT, no Wiener filter) is logged alongside but does not select.
* Input normalisation: a model with input statistics (Open-Unmix) gets the per-bin mean/std
  of the mixture magnitude (and of the score-filtered magnitude) of 8 training batches drawn
  from a separate data stream, before the first step (``model.fit_input_stats``).

Files, under ``profile.models_dir / spec.key`` (only rank 0 writes):
``last.pt`` (the same plus the full training state; every epoch and every ``ckpt_every``
steps, atomically),
``best.pt`` (a model file of :mod:`guitarsep.models.checkpoint`: weights, name, hparams,
mask parameters, config hash), ``log.csv`` (one row per epoch),
``run.json`` (the run record, written when training ends).

Exact resume: every random draw of step ``s`` of epoch ``e`` is a pure function of
``(seed, e, s)``: the batch (``RemixDataset`` keys) and the torch generator, which is reseeded
from ``(seed, rank, e, s)`` before each step (LSTM / U-Net dropout). ``last.pt`` holds model,
optimizer, scheduler, early-stopping state and the running sums of the epoch in progress, so
a run killed anywhere resumes at the step after its last checkpoint and, on the same machine
and thread count, reaches the same weights as an uninterrupted run. A finished run (``done``
in ``last.pt`` and ``run.json`` with the same config hash) is skipped. A checkpoint with a
different config hash is moved aside to ``<key>.old-<hash>/`` and training starts afresh.

DDP: the global batch stays ``batch_size`` (rank ``r`` takes samples ``r::W`` of each step's
batch, so the data are those of a single-process run; gradients are averaged by DDP).
Validation runs on shards of clips per rank and the results are gathered, so every rank takes
the same scheduler / early-stopping decisions. Checkpoint and log writes are rank 0's; all
ranks meet at a barrier at the end, and the run record holds a checksum of each rank's final
weights.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from guitarsep.config import SETTINGS, ModelSpec, Profile, config_hash
from guitarsep.io import write_json_atomic, write_text_atomic
from guitarsep.parallel import run_tasks, torch_threads, worker_count
from guitarsep.models.checkpoint import (MODEL_FORMAT_VERSION, LoadedModel, ModelFileError,
                                         load_model, read_checkpoint, save_checkpoint,
                                         weights_checksum)
from guitarsep.training.distributed import Distributed, broadcast_buffers, wrap_ddp

__all__ = ["train_model", "load_trained", "train_all", "model_hparams", "run_config_hash",
           "training_sides", "steps_per_epoch", "epochs_for", "run_dir", "read_log", "TrainState"]

LOG_COLUMNS = ("epoch", "step", "train_loss", "valid_loss", "valid_si_sdr", "lr", "wall_s",
               "data_frac")
STATS_BATCHES = 8


# --------------------------------------------------------------------------------------------
# configuration helpers
# --------------------------------------------------------------------------------------------
def model_hparams(spec: ModelSpec, train_cfg) -> dict:
    """The ``build_model`` keyword arguments a profile gives the network of ``spec``
    (``models.hparams_for``: hidden size for Open-Unmix, channels for the U-Nets)."""
    from guitarsep.models import hparams_for
    return dict(hparams_for(spec.name, train_cfg))


def steps_per_epoch(profile: Profile, spec: ModelSpec) -> int:
    return max(1, int(round(profile.train.steps_per_epoch * spec.steps_scale)))


def epochs_for(profile: Profile, spec: ModelSpec) -> int:
    """``spec.epochs`` when set, else ``profile.train.epochs``."""
    return int(spec.epochs) if spec.epochs else int(profile.train.epochs)


def training_sides(spec: ModelSpec) -> dict[str, str] | None:
    """The fixed roles a blind model trains with (``corpus.timbres.timbre_sides``: target from
    the target side of the seen pool, the other guitar from the other side); ``None`` for a
    score-informed model, which trains on any pairing (it is told the target by the score)."""
    from guitarsep.corpus.timbres import load_timbres, timbre_sides
    from guitarsep.models import score_kind_of
    return timbre_sides(load_timbres()) if score_kind_of(spec.name) is None else None


def run_config_hash(profile: Profile, spec: ModelSpec) -> str:
    """Hash of everything that determines a training run (not paths, not the profile name).

    The checkpoint format version is part of it, so a run written in an older format is
    moved aside and retrained rather than loaded wrongly; so are a blind model's sides."""
    key = {
        "spec": asdict(spec), "setting": asdict(SETTINGS[spec.setting]),
        "train": asdict(profile.train), "mask": asdict(profile.mask),
        "corpus": asdict(profile.corpus), "hparams": model_hparams(spec, profile.train),
        "checkpoint_format": MODEL_FORMAT_VERSION,
    }
    sides = training_sides(spec)
    if sides is not None:     # only then, so the score-informed runs keep their hashes
        key["sides"] = sorted(sides.items())
    return config_hash(key)


def run_dir(profile: Profile, spec: ModelSpec) -> Path:
    return profile.models_dir / spec.key


def read_log(profile: Profile, spec: ModelSpec):
    """``log.csv`` of a run as a DataFrame (empty when absent)."""
    import pandas as pd
    p = run_dir(profile, spec) / "log.csv"
    return pd.read_csv(p) if p.is_file() else pd.DataFrame(columns=list(LOG_COLUMNS))


# --------------------------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------------------------
def _write_log(path: Path, rows: list[dict]) -> None:
    lines = [",".join(LOG_COLUMNS)]
    for r in rows:
        lines.append(",".join("" if r.get(c) is None else
                              (f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]))
                              for c in LOG_COLUMNS))
    write_text_atomic(path, "\n".join(lines) + "\n")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _step_seed(seed: int, rank: int, epoch: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, 2, rank, epoch, step]).generate_state(1)[0])


def _rng_states() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
          "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_states(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(st["cuda"])
        except (RuntimeError, IndexError):
            pass


def _git_commit(root: Path) -> str:
    from guitarsep.provenance import git_commit
    return git_commit(root)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    from guitarsep.provenance import device_description
    return f"cpu: {device_description()}"


# --------------------------------------------------------------------------------------------
# one batch through a model
# --------------------------------------------------------------------------------------------
def _forward(model, spec_tf, kind, batch: dict, device: torch.device):
    """Returns (est_mag, target_mag, mixture STFT)."""
    from guitarsep.models.frontend import score_pair
    nb = device.type == "cuda"
    mix = batch["mix"].to(device, non_blocking=nb)
    target = batch["target"].to(device, non_blocking=nb)
    X = spec_tf(mix)
    mag = X.abs()
    with torch.no_grad():
        tmag = spec_tf(target).abs()
    if kind is None:
        score, accomp = None, None
    else:
        score, accomp = score_pair(kind, batch["m_target"].to(device, non_blocking=nb),
                                   batch["m_accomp"].to(device, non_blocking=nb))
    return model(mag, score, accomp), tmag, X


def training_loss(kind: str, est: Tensor, tmag: Tensor, X: Tensor, target: Tensor,
                  spec_tf) -> Tensor:
    """The loss of a batch. ``"mse"``: magnitude MSE between ``est`` and ``tmag`` ``(B, T, F)``
    (Open-Unmix, the paper). ``"sisdr"``: minus the mean SI-SDR (dB) of the waveform that
    ``est`` gives with the mixture's phase (``X`` complex ``(B, T, F)``, inverse STFT),
    against ``target (B, N)``: the metric we report, insensitive to the estimate's scale;
    epsilons keep silent targets finite."""
    if kind == "mse":
        return F.mse_loss(est, tmag)
    if kind != "sisdr":
        raise ValueError(f"unknown loss {kind!r}; expected 'mse' or 'sisdr'")
    wav = spec_tf.istft(torch.polar(est, X.angle()), length=target.shape[-1])   # (B, N)
    eps = 1e-8
    alpha = (wav * target).sum(-1, keepdim=True) / ((target ** 2).sum(-1, keepdim=True) + eps)
    s = alpha * target
    ratio = ((s ** 2).sum(-1) + eps) / (((s - wav) ** 2).sum(-1) + eps)
    return -(10 * torch.log10(ratio)).mean()


@torch.no_grad()
def validate(model, valid, spec_tf, kind, device, batch_size: int, *, rank: int = 0,
             world: int = 1) -> list[tuple[int, float, float]]:
    """Per clip of this rank's shard: ``(clip index, magnitude MSE, SI-SDR dB)``.

    SI-SDR is Wiener-free: estimated magnitude with the mixture phase, inverse STFT.
    """
    from guitarsep.evaluation.metrics import si_sdr
    was = model.training
    model.eval()
    out = []
    idx = list(range(rank, len(valid), world))
    try:
        for sel, b in valid.batches(batch_size, indices=idx):
            est, tmag, X = _forward(model, spec_tf, kind, b, device)
            mse = ((est - tmag) ** 2).flatten(1).mean(1)
            wav = spec_tf.istft(torch.polar(est, X.angle()), length=b["mix"].shape[-1])
            ref = b["target"].numpy()
            est_w = wav.float().cpu().numpy()
            vals = []
            for i in range(len(sel)):
                try:
                    vals.append(float(si_sdr(est_w[i], ref[i])))
                except ValueError:        # silent reference: no SI-SDR for that clip
                    vals.append(float("nan"))
            out += [(c, float(m), v) for c, m, v in zip(sel, mse.cpu().tolist(), vals)]
    finally:
        model.train(was)
    return out


# --------------------------------------------------------------------------------------------
# the state of a run
# --------------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Where a run stands; saved in ``last.pt`` so a killed run resumes exactly."""

    epoch: int = 0                   # epochs finished
    step_in_epoch: int = 0
    global_step: int = 0
    best_valid_loss: float = math.inf
    best_valid_si_sdr: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0              # epochs since the last improvement (early stopping)
    epoch_loss_sum: float = 0.0      # running sums of the epoch in progress
    epoch_loss_n: int = 0
    epoch_data_s: float = 0.0
    epoch_step_s: float = 0.0
    wall_s: float = 0.0
    history: list[dict] = field(default_factory=list)     # one log row per epoch
    done: bool = False
    stopped_early: bool = False

    def start_epoch(self) -> None:
        self.step_in_epoch, self.epoch_loss_sum, self.epoch_loss_n = 0, 0.0, 0
        self.epoch_data_s = self.epoch_step_s = 0.0


@dataclass
class _Run:
    """What one training run is made of (built by :func:`_setup`)."""

    profile: Profile
    spec: ModelSpec
    out: Path
    chash: str
    dist: Distributed
    model: torch.nn.Module            # DDP-wrapped when world > 1
    base: torch.nn.Module             # the network itself
    spec_tf: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    per_step_sched: bool
    valid: object                     # training.data.ValidClips
    state: TrainState
    steps_per_epoch: int
    epochs: int
    t_seg: float                      # wall time (setup included) not yet in state.wall_s

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def kind(self) -> str | None:
        return self.base.score_kind

    def flush_wall(self) -> None:
        now = time.perf_counter()
        self.state.wall_s += now - self.t_seg
        self.t_seg = now

    def meta(self, **extra) -> dict:
        return {"config_hash": self.chash, **extra}

    def checkpoint(self) -> None:
        """``last.pt``: the weights and everything needed to resume (rank 0 writes)."""
        if self.dist.is_main:
            save_checkpoint(self.out / "last.pt", self.base, self.spec.setting,
                            self.profile.mask, meta=self.meta(),
                            training={"optimizer": self.opt.state_dict(),
                                      "scheduler": self.sched.state_dict(),
                                      "rng": _rng_states(), "state": asdict(self.state)})


# --------------------------------------------------------------------------------------------
# setting a run up
# --------------------------------------------------------------------------------------------
def _finished_record(out: Path, chash: str) -> dict | None:
    """The run record of a finished run with this config hash, else None."""
    rj = out / "run.json"
    if rj.is_file():
        try:
            rec = json.loads(rj.read_text())
        except json.JSONDecodeError:
            return None
        if rec.get("config_hash") == chash and rec.get("complete"):
            return rec
    return None


def _previous_checkpoint(out: Path, chash: str, dist_: Distributed) -> dict | None:
    """``last.pt`` of an interrupted run with this config (rank 0 decides, the others
    follow); a run of another config is moved aside to ``<key>.old-<hash>/``."""
    last = out / "last.pt"
    resume = False
    if dist_.is_main and last.is_file():
        try:
            old_hash = read_checkpoint(last)["meta"].get("config_hash", "unknown")
        except ModelFileError:          # a file of an older format: retrain
            old_hash = "unreadable"
        resume = old_hash == chash
        if not resume:
            old = out.with_name(f"{out.name}.old-{old_hash}")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
            print(f"[train] {out.name}: config changed; previous run moved to {old}",
                  file=sys.stderr)
    if dist_.is_main:
        out.mkdir(parents=True, exist_ok=True)
    return read_checkpoint(last) if dist_.broadcast(resume) else None


def _load_data(profile: Profile, corpus, dist_: Distributed, setting, show: bool):
    """``(TrainingSource, ValidClips)``; rank 0 fills the caches first, then the others."""
    from guitarsep.training.data import TrainingSource, ValidClips
    if corpus is None:
        from guitarsep.corpus import load_corpus
        corpus = load_corpus(profile)
    source = valid = None
    for turn in (0, 1):
        if (turn == 0) == dist_.is_main:
            source = TrainingSource(corpus, setting, profile.mask, progress=show)
            valid = ValidClips(corpus, setting, profile.mask)
        dist_.barrier()
    return source, valid


@torch.no_grad()
def _fit_input_stats(model, source, profile: Profile, setting, spec_tf, device,
                     sides: dict | None) -> None:
    """Input normalisation from ``STATS_BATCHES`` batches of a separate data stream."""
    from guitarsep.models.frontend import score_input
    from guitarsep.training.data import RemixDataset
    stats = RemixDataset(source, setting, profile.train, seed=profile.train.seed,
                         stream="stats", sides=sides)
    mags, scores = [], []
    for s in range(STATS_BATCHES):
        b = stats.batch(0, s)
        mags.append(spec_tf(b["mix"].to(device)).abs())
        if model.score_kind is not None:
            scores.append(score_input(model.score_kind, b["m_target"].to(device),
                                      b["m_accomp"].to(device)))
    model.fit_input_stats(torch.cat(mags), torch.cat(scores) if scores else None)


def _optimizer(model, cfg, n_steps: int):
    """``(Adam, scheduler, whether the scheduler steps per step)`` for ``cfg.lr_schedule``."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.lr_decay_gamma, patience=cfg.lr_decay_patience)
    elif cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, n_steps), eta_min=cfg.lr * cfg.lr_min_factor)
    else:
        raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; use 'plateau' or 'cosine'")
    return opt, sched, cfg.lr_schedule != "plateau"


def _setup(profile: Profile, spec: ModelSpec, corpus, dist_: Distributed, show: bool,
           t_start: float):
    """Build the run (resuming from ``last.pt`` when there is one) and its data set."""
    from guitarsep.models import build_model
    from guitarsep.models.frontend import Spectrogram
    from guitarsep.training.data import RemixDataset

    cfg, setting = profile.train, SETTINGS[spec.setting]
    out, chash = run_dir(profile, spec), run_config_hash(profile, spec)
    ck = _previous_checkpoint(out, chash, dist_)
    source, valid = _load_data(profile, corpus, dist_, setting, show)
    device = dist_.device
    _seed_everything(cfg.seed)
    base = build_model(spec.name, setting, **model_hparams(spec, cfg))
    spec_tf = Spectrogram(setting).to(device)
    if ck is not None:
        base.load_state_dict(ck["state_dict"])
    base.to(device)
    sides = training_sides(spec)
    if ck is None:
        _fit_input_stats(base, source, profile, setting, spec_tf, device, sides)
    model = wrap_ddp(base, dist_)
    spe, epochs = steps_per_epoch(profile, spec), epochs_for(profile, spec)
    opt, sched, per_step = _optimizer(model, cfg, epochs * spe)
    state = TrainState()
    if ck is not None:
        opt.load_state_dict(ck["training"]["optimizer"])
        sched.load_state_dict(ck["training"]["scheduler"])
        _set_rng_states(ck["training"]["rng"])
        state = TrainState(**ck["training"]["state"])
    run = _Run(profile, spec, out, chash, dist_, model, base, spec_tf, opt, sched, per_step,
               valid, state, spe, epochs, t_start)
    return run, RemixDataset(source, setting, cfg, seed=cfg.seed, sides=sides)


# --------------------------------------------------------------------------------------------
# steps and epochs
# --------------------------------------------------------------------------------------------
def _train_step(run: _Run, batch: dict, epoch: int, step: int) -> float:
    """One optimiser step on ``batch``; returns the global-batch loss."""
    cfg = run.profile.train
    torch.manual_seed(_step_seed(cfg.seed, run.dist.rank, epoch, step))
    est, tmag, X = _forward(run.model, run.spec_tf, run.kind, batch, run.device)
    loss = training_loss(cfg.loss, est, tmag, X, batch["target"].to(run.device), run.spec_tf)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip and cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.opt.step()
    if run.per_step_sched:
        run.sched.step()
    return float(run.dist.mean(loss.detach()))   # the same value on every rank


def _validate_epoch(run: _Run) -> tuple[float, float]:
    """``(validation loss, median validation SI-SDR)`` over every rank's clips. The loss is
    the training loss's own measure: magnitude MSE, or minus the mean SI-SDR for ``"sisdr"``."""
    broadcast_buffers(run.model, run.dist)
    parts = run.dist.gather(validate(run.base, run.valid, run.spec_tf, run.kind, run.device,
                                     run.profile.train.valid_batch_clips,
                                     rank=run.dist.rank, world=run.dist.world))
    res = sorted(r for p in parts for r in p)
    sis = np.array([r[2] for r in res], dtype=float)
    vloss = float(np.mean([r[1] for r in res]))
    if run.profile.train.loss == "sisdr":
        vloss = -float(np.nanmean(sis)) if np.isfinite(sis).any() else math.inf
    return vloss, float(np.nanmedian(sis)) if np.isfinite(sis).any() else float("nan")


def _end_epoch(run: _Run, epoch: int) -> tuple[float, float]:
    """Validation, scheduler, ``best.pt``, early stopping, log row and checkpoint."""
    st, cfg = run.state, run.profile.train
    vloss, vsdr = _validate_epoch(run)
    if not run.per_step_sched:
        run.sched.step(vloss)
    if vloss < st.best_valid_loss:
        st.best_valid_loss, st.best_valid_si_sdr, st.best_epoch = vloss, vsdr, epoch + 1
        st.bad_epochs = 0
        if run.dist.is_main:
            save_checkpoint(run.out / "best.pt", run.base, run.spec.setting, run.profile.mask,
                            meta=run.meta(epoch=epoch + 1, valid_loss=vloss,
                                          valid_si_sdr=vsdr))
    else:
        st.bad_epochs += 1
    run.flush_wall()
    st.history.append({"epoch": epoch + 1, "step": st.global_step,
                       "train_loss": st.epoch_loss_sum / max(1, st.epoch_loss_n),
                       "valid_loss": vloss, "valid_si_sdr": vsdr,
                       "lr": float(run.opt.param_groups[0]["lr"]),
                       "wall_s": round(st.wall_s, 3),
                       "data_frac": st.epoch_data_s / max(1e-9, st.epoch_step_s)})
    st.epoch = epoch + 1
    st.start_epoch()
    if st.bad_epochs >= cfg.patience:
        st.stopped_early = True
    st.done = st.epoch >= run.epochs or st.stopped_early
    if run.dist.is_main:
        _write_log(run.out / "log.csv", st.history)
    run.checkpoint()
    return vloss, vsdr


def _run_epoch(run: _Run, batches, sbar, ckpt_every: int, max_steps: int | None,
               step_sleep: float) -> bool:
    """The remaining steps of the current epoch; False when ``max_steps`` stopped it."""
    st = run.state
    while st.step_in_epoch < run.steps_per_epoch:
        if max_steps is not None and st.global_step >= max_steps:
            return False
        t0 = time.perf_counter()
        batch = next(batches)
        if run.device.type == "cuda":
            batch = {k: v.to(run.device, non_blocking=True) for k, v in batch.items()}
        t1 = time.perf_counter()
        loss = _train_step(run, batch, st.epoch, st.step_in_epoch)
        st.epoch_loss_sum += loss
        st.epoch_loss_n += 1
        st.epoch_data_s += t1 - t0
        st.epoch_step_s += time.perf_counter() - t0
        st.step_in_epoch += 1
        st.global_step += 1
        sbar.update(1)
        sbar.set_postfix(loss=f"{loss:.3g}", refresh=False)
        if step_sleep:
            time.sleep(step_sleep)
        if st.step_in_epoch < run.steps_per_epoch and st.step_in_epoch % ckpt_every == 0:
            run.flush_wall()
            run.checkpoint()
    return True


def _loop(run: _Run, dataset, *, show: bool, ckpt_every: int, max_steps: int | None,
          step_sleep: float) -> None:
    """Epochs until done, early stopping or ``max_steps``."""
    from tqdm.auto import tqdm

    from guitarsep.training.data import StepBatchSampler, make_loader

    st, cfg = run.state, run.profile.train
    sampler = StepBatchSampler(cfg.batch_size, run.steps_per_epoch, run.epochs,
                               start_epoch=st.epoch, start_step=st.step_in_epoch,
                               rank=run.dist.rank, world=run.dist.world)
    batches = iter(make_loader(dataset, sampler, num_workers=cfg.num_workers,
                               pin_memory=run.device.type == "cuda"))
    run.model.train()
    with tqdm(total=run.epochs, initial=st.epoch, desc=run.spec.key, disable=not show,
              leave=True, dynamic_ncols=True) as ebar:
        while not st.done and st.epoch < run.epochs:
            with tqdm(total=run.steps_per_epoch, initial=st.step_in_epoch,
                      desc=f"epoch {st.epoch + 1}", disable=not show, leave=False,
                      dynamic_ncols=True) as sbar:
                if not _run_epoch(run, batches, sbar, ckpt_every, max_steps, step_sleep):
                    break
                vloss, vsdr = _end_epoch(run, st.epoch)
            ebar.update(1)
            ebar.set_postfix(valid_loss=f"{vloss:.4g}", si_sdr=f"{vsdr:.2f}", refresh=False)
    run.flush_wall()
    if not st.done:   # max_steps reached mid-run: keep the position
        run.checkpoint()


def _record(run: _Run, t_start: float) -> dict:
    """The run record (``run.json``): what was trained, how long, how well."""
    broadcast_buffers(run.model, run.dist)
    sums = run.dist.gather(weights_checksum(run.base))
    st, spec = run.state, run.spec
    data_s = [h["data_frac"] for h in st.history if h.get("data_frac") is not None]
    return {
        "profile": run.profile.name, "setting": spec.setting, "model": spec.name,
        "key": spec.key, "hparams": dict(run.base.hparams), "config_hash": run.chash,
        "git_commit": _git_commit(run.profile.root), "device": _device_name(run.device),
        "torch_version": torch.__version__, "world_size": run.dist.world,
        "wall_s": round(st.wall_s, 3), "steps": st.global_step, "epochs": st.epoch,
        "steps_per_epoch": run.steps_per_epoch, "best_epoch": st.best_epoch,
        "best_valid_loss": st.best_valid_loss if math.isfinite(st.best_valid_loss) else None,
        "best_valid_si_sdr": st.best_valid_si_sdr,
        "params": int(sum(p.numel() for p in run.base.parameters() if p.requires_grad)),
        "stopped_early": st.stopped_early, "complete": bool(st.done),
        "data_frac": float(np.mean(data_s)) if data_s else None,
        "rank_checksums": sums, "ranks_identical": len(set(sums)) == 1,
        "call_wall_s": round(time.perf_counter() - t_start, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --------------------------------------------------------------------------------------------
# training, loading, several runs
# --------------------------------------------------------------------------------------------
def train_model(profile: Profile, spec: ModelSpec, corpus=None, *, device=None,
                progress: bool = True, ckpt_every: int | None = None,
                max_steps: int | None = None, step_sleep: float = 0.0) -> dict:
    """Train ``spec`` on ``corpus`` (default ``corpus.load_corpus(profile)``); return the run
    record (also in ``run.json``). Resumes from ``last.pt``; skips a finished run.

    Args:
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA when available.
        progress: tqdm bars (rank 0 only).
        ckpt_every: steps between mid-epoch checkpoints (default: a quarter epoch).
        max_steps: stop (without marking the run done) once the global step reaches this;
            for tests and quick looks.
        step_sleep: seconds to sleep after each step (tests use it to kill mid-epoch).
    """
    t_start = time.perf_counter()
    rec = _finished_record(run_dir(profile, spec), run_config_hash(profile, spec))
    if rec is not None:
        return rec
    dist_ = Distributed(device)
    show = progress and dist_.is_main
    # a single CPU process computes with the profile's thread count, wherever it runs (a
    # result depends on it); under torchrun, Distributed shares the cores between the ranks
    threads = profile.train.cpu_threads if (dist_.device.type == "cpu"
                                            and dist_.world == 1) else None
    with torch_threads(threads):
        run, dataset = _setup(profile, spec, corpus, dist_, show, t_start)
        ckpt_every = max(1, int(ckpt_every or max(1, run.steps_per_epoch // 4)))
        _loop(run, dataset, show=show, ckpt_every=ckpt_every, max_steps=max_steps,
              step_sleep=step_sleep)
        rec = _record(run, t_start)
    if dist_.is_main and run.state.done:
        write_json_atomic(run.out / "run.json", rec)
    dist_.barrier()
    dist_.close()
    return rec


def load_trained(profile: Profile, spec: ModelSpec, device="cpu") -> LoadedModel:
    """The trained network of ``spec`` (``best.pt``, else ``last.pt``) with its setting and
    mask parameters; ``FileNotFoundError`` with the command to train it when there is none."""
    out = run_dir(profile, spec)
    if not any((out / f).is_file() for f in ("best.pt", "last.pt")):
        raise FileNotFoundError(f"no checkpoint for {spec.key} in {out}; train it first "
                                f"(guitarsep train --profile {profile.name} "
                                f"--model {spec.name} --setting {spec.setting})")
    return load_model(out, device)


def train_all(profile: Profile, corpus=None, specs=None, *, device=None, progress: bool = True,
              jobs: int | None = None):
    """Train every spec (default ``profile.models``), skipping finished runs.

    On the CPU the runs go to ``jobs`` worker processes at once (default: the machine's cores
    // ``profile.train.cpu_threads``; :mod:`guitarsep.parallel` says why), longest first
    (:func:`longest_first`);
    each run's bytes are those of ``train_model`` alone. On a GPU, or under torchrun (DDP:
    the ranks train each run together), they run in turn here.
    ``progress``: with workers, one bar over the steps of all runs (it moves as each epoch
    ends) and a line as each run ends; without, a bar per run.

    Returns a DataFrame: model, setting, params, wall_s, steps, best_epoch,
    best_valid_si_sdr (plus best_valid_loss, device), in the specs' order.
    """
    import pandas as pd
    specs = list(profile.models if specs is None else specs)
    on_cpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cpu"
    under_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1    # every rank runs each spec
    workers = worker_count(jobs, profile.train.cpu_threads, tasks=len(specs),
                           on_cpu=on_cpu and not under_torchrun)
    if corpus is None:
        from guitarsep.corpus import load_corpus
        corpus = load_corpus(profile)
    if workers == 1:
        recs = [train_model(profile, spec, corpus, device=device, progress=progress)
                for spec in specs]
    else:        # a Corpus is paths and tables: cheap to send to the workers
        order = longest_first(profile, specs)
        tasks = [(_train_in_worker, (profile, specs[i], corpus, device)) for i in order]
        with _StepsBar(profile, [specs[i] for i in order], workers, enabled=progress) as bar:
            done = run_tasks(tasks, workers, progress=False, desc="training",
                             on_result=bar.finished)
        recs = [done[order.index(i)] for i in range(len(specs))]
    keys = ("model", "setting", "params", "wall_s", "steps", "best_epoch", "best_valid_si_sdr",
            "best_valid_loss", "device")
    return pd.DataFrame([{k: rec.get(k) for k in keys} for rec in recs])


# Relative cost of a training step per frequency bin of the model's setting, by network family:
# the per-step wall times of the default profile's runs (2026-12-04 reproduce, two one-thread
# processes, data/results/default/stages.json) divided by their bins: Open-Unmix 0.17 s
# (low_res, 513 bins) / 0.30 s (modern, 1487); CNN 0.20 s (low_res); U-Net 0.60 / 1.53 s.
# Only the order of the runs depends on it, never a result.
STEP_COST_PER_BIN = {"umx": 1.0, "cnn": 1.2, "unet": 5.0}


def expected_cost(profile: Profile, spec: ModelSpec) -> float:
    """A run's expected training time in arbitrary units: planned steps x bins x
    :data:`STEP_COST_PER_BIN` of its network."""
    from guitarsep.models import model_family
    steps = epochs_for(profile, spec) * steps_per_epoch(profile, spec)
    return steps * SETTINGS[spec.setting].max_bin * STEP_COST_PER_BIN[model_family(spec.name)]


def longest_first(profile: Profile, specs: list[ModelSpec]) -> list[int]:
    """Indices of ``specs`` by decreasing :func:`expected_cost` (ties in the given order):
    the worker processes take the runs in this order, so that no long run starts last while
    the other processes idle (the longest-processing-time rule)."""
    return sorted(range(len(specs)), key=lambda i: -expected_cost(profile, specs[i]))


class _StepsBar:
    """The progress of :func:`train_all`'s worker processes: one tqdm bar over the steps of
    every run, read every ``every_s`` seconds from the runs' ``log.csv`` (a row per epoch), so
    it moves at each epoch's end; a line as each run ends."""

    def __init__(self, profile: Profile, specs: list, workers: int, *, enabled: bool,
                 every_s: float = 5.0):
        import threading
        self.profile, self.specs, self.every_s = profile, specs, every_s
        self.planned = [epochs_for(profile, s) * steps_per_epoch(profile, s) for s in specs]
        self.done: set[int] = set()
        self.enabled, self.stop = enabled, threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.desc = f"training {profile.name} ({workers} processes)"

    def __enter__(self) -> "_StepsBar":
        if self.enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=sum(self.planned), desc=self.desc, unit="step")
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stop.set()
            self.thread.join()
            self._update()
            self.bar.close()

    def finished(self, i: int, rec: dict) -> None:
        """``run_tasks``' callback: run ``i`` ended (early stopping counts as all its steps)."""
        self.done.add(i)
        if self.enabled:
            self.bar.write(f"trained {self.specs[i].key}: {rec.get('steps')} steps in "
                           f"{rec.get('wall_s')} s")

    def _steps(self) -> int:
        """Steps done: a finished run's planned steps, else its log's last (written
        atomically, so never read half-written)."""
        logged = 0
        for i, spec in enumerate(self.specs):
            if i in self.done:
                logged += self.planned[i]
                continue
            log = read_log(self.profile, spec)
            logged += int(log["step"].iloc[-1]) if len(log) else 0
        return logged

    def _update(self) -> None:
        self.bar.n = min(self._steps(), self.bar.total)
        self.bar.refresh()

    def _poll(self) -> None:
        while not self.stop.wait(self.every_s):
            self._update()


def _train_in_worker(profile: Profile, spec: ModelSpec, corpus, device) -> dict:
    """A worker's task of :func:`train_all`: one run, without bars."""
    return train_model(profile, spec, corpus, device=device, progress=False)
