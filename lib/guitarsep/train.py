"""One training loop for every separation model (used by ``02_train.ipynb`` and the CLI).

    >>> rec = train_model(profile, ModelSpec("si_umx_soft", "modern"), corpus)
    >>> model = load_trained(profile, ModelSpec("si_umx_soft", "modern"))

``python -m guitarsep.train --profile P --model NAME --setting S [--root R]`` runs the same
function; under ``torchrun --nproc_per_node N`` it trains data-parallel (DDP).

What a run does (``TrainConfig`` of the profile):

* Loss: MSE between the estimated and the true target magnitude (all models, blind or not).
  Batches come from :class:`guitarsep.data.RemixDataset`; the STFT of the batch is computed
  here (``transforms.Spectrogram``), on the training device.
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
``last.pt`` (full training state; every epoch and every ``ckpt_every`` steps, atomically),
``best.pt`` (weights + name + hparams + config hash), ``log.csv`` (one row per epoch),
``run.json`` (the run record, written when training ends).

Exact resume: every random draw of step ``s`` of epoch ``e`` is a pure function of
``(seed, e, s)``: the batch (``RemixDataset`` keys) and the torch generator, which is reseeded
from ``(seed, rank, e, s)`` before each step (LSTM / U-Net dropout). ``last.pt`` holds model,
optimizer, scheduler, early-stopping state and the running sums of the epoch in progress, so
a run killed anywhere resumes at the step after its last checkpoint and, on the same machine
and thread count, reaches the same weights as an uninterrupted run. A finished run (``done``
in ``last.pt`` and ``run.json`` with the same config hash) is skipped. A checkpoint with a
different config hash is moved aside to ``<key>.old-<hash>/`` and training starts afresh.

DDP (``WORLD_SIZE > 1``): gloo on CPU, nccl on CUDA (one GPU per process, ``LOCAL_RANK``).
The global batch stays ``batch_size`` (rank ``r`` takes samples ``r::W`` of each step's
batch, so the data are those of a single-process run; gradients are averaged by DDP). Batch
norm: on CUDA the model is converted to ``SyncBatchNorm`` so the statistics are those of the
global batch (as in a single process); on CPU (gloo) SyncBatchNorm is unsupported by torch,
and plain per-rank batch norm is used (each rank normalises over its ``B/W x T`` frames,
which for Open-Unmix is still hundreds of rows). Buffers (running statistics) follow rank 0
(DDP broadcasts them every forward, and again before each validation). Validation runs on
shards of clips per rank and the results are gathered, so every rank takes the same
scheduler / early-stopping decisions. Checkpoint and log writes are rank 0's; all ranks meet at
a barrier at the end, and the run record holds a checksum of each rank's final weights.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from guitarsep.config import SETTINGS, ModelSpec, Profile, config_hash, load_profile

__all__ = ["train_model", "load_trained", "train_all", "main", "model_hparams",
           "run_config_hash", "steps_per_epoch", "run_dir", "read_log", "weights_checksum"]

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


def run_config_hash(profile: Profile, spec: ModelSpec) -> str:
    """Hash of everything that determines a training run (not paths, not the profile name)."""
    return config_hash({
        "spec": asdict(spec), "setting": asdict(SETTINGS[spec.setting]),
        "train": asdict(profile.train), "mask": asdict(profile.mask),
        "corpus": asdict(profile.corpus), "hparams": model_hparams(spec, profile.train),
    })


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
def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_log(path: Path, rows: list[dict]) -> None:
    lines = [",".join(LOG_COLUMNS)]
    for r in rows:
        lines.append(",".join("" if r.get(c) is None else
                              (f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]))
                              for c in LOG_COLUMNS))
    _atomic_write_text(path, "\n".join(lines) + "\n")


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


def weights_checksum(model: torch.nn.Module) -> str:
    """sha256 (16 hex) of every parameter and buffer of ``model`` (bitwise)."""
    import hashlib
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _git_commit(root: Path) -> str:
    try:
        from guitarsep.provenance import git_commit
        return git_commit(root)
    except Exception:   # noqa: BLE001 - provenance is best effort
        return "unknown"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    try:
        from guitarsep.provenance import device_description
        return f"cpu: {device_description()}"
    except Exception:   # noqa: BLE001
        return "cpu"


class _Dist:
    """Rank/world of this process; initialises the process group under torchrun."""

    def __init__(self, device: str | torch.device | None):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank if self.world > 1 else 0)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.device = device
        if self.world > 1:
            import torch.distributed as dist
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
                self.owns_group = True
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            if device.type == "cpu":   # share the cores between the local processes
                local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def gather(self, obj):
        if self.world == 1:
            return [obj]
        import torch.distributed as dist
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        if self.world == 1:
            return obj
        import torch.distributed as dist
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist
            dist.destroy_process_group()
            self.owns_group = False


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _broadcast_buffers(model, dist_: _Dist) -> None:
    if dist_.world == 1:
        return
    import torch.distributed as dist
    for b in _unwrap(model).buffers():
        dist.broadcast(b, src=0)


# --------------------------------------------------------------------------------------------
# one batch through a model
# --------------------------------------------------------------------------------------------
def _forward(model, spec_tf, kind, batch: dict, device: torch.device):
    """Returns (est_mag, target_mag, mixture STFT)."""
    from guitarsep.transforms import score_pair
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


@torch.no_grad()
def validate(model, valid, spec_tf, kind, device, batch_size: int, *, rank: int = 0,
             world: int = 1) -> list[tuple[int, float, float]]:
    """Per clip of this rank's shard: ``(clip index, magnitude MSE, SI-SDR dB)``.

    SI-SDR is Wiener-free: estimated magnitude with the mixture phase, inverse STFT.
    """
    from guitarsep.metrics import si_sdr
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
# training
# --------------------------------------------------------------------------------------------
def _fresh_state() -> dict:
    return {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_valid_loss": math.inf,
            "best_valid_si_sdr": None, "best_epoch": None, "bad_epochs": 0,
            "epoch_loss_sum": 0.0, "epoch_loss_n": 0, "epoch_data_s": 0.0, "epoch_step_s": 0.0,
            "wall_s": 0.0, "history": [], "done": False, "stopped_early": False}


def _load_ckpt(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _existing_record(out: Path, chash: str) -> dict | None:
    rj = out / "run.json"
    if rj.is_file():
        try:
            rec = json.loads(rj.read_text())
        except json.JSONDecodeError:
            return None
        if rec.get("config_hash") == chash and rec.get("complete"):
            return rec
    return None


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
    from tqdm.auto import tqdm

    from guitarsep import models as gmodels
    from guitarsep.data import RemixDataset, StepBatchSampler, TrainingSource, ValidClips, make_loader
    from guitarsep.transforms import Spectrogram

    t_start = time.perf_counter()
    cfg = profile.train
    setting = SETTINGS[spec.setting]
    out = run_dir(profile, spec)
    chash = run_config_hash(profile, spec)
    rec = _existing_record(out, chash)
    if rec is not None:
        return rec

    dist_ = _Dist(device)
    device = dist_.device
    main_ = dist_.is_main
    spe = steps_per_epoch(profile, spec)
    ckpt_every = max(1, int(ckpt_every or max(1, spe // 4)))
    show = progress and main_

    # ---- previous state (rank 0 decides, the others follow) ---------------------------
    ck = None
    last = out / "last.pt"
    resume = False
    if main_ and last.is_file():
        ck = _load_ckpt(last)
        if ck.get("config_hash") == chash:
            resume = True
        else:
            old = out.with_name(f"{out.name}.old-{ck.get('config_hash', 'unknown')}")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
            print(f"[train] {spec.key}: config changed; previous run moved to {old}",
                  file=sys.stderr)
            ck = None
    resume = dist_.broadcast(resume)
    if resume and ck is None:
        ck = _load_ckpt(last)
    state = _fresh_state() if ck is None else ck["state"]
    if main_:
        out.mkdir(parents=True, exist_ok=True)

    # ---- data (rank 0 fills the caches first) --------------------------------------------
    if corpus is None:
        from guitarsep.corpus import load_corpus
        corpus = load_corpus(profile)
    source = valid = None
    for turn in (0, 1):
        if (turn == 0) == main_:
            source = TrainingSource(corpus, setting, profile.mask, progress=show)
            valid = ValidClips(corpus, setting, profile.mask)
        dist_.barrier()
    dataset = RemixDataset(source, setting, cfg, seed=cfg.seed)

    # ---- model -----------------------------------------------------------------------------
    _seed_everything(cfg.seed)
    hp = model_hparams(spec, cfg)
    model = gmodels.build_model(spec.name, setting, **hp)
    kind = model.score_kind
    n_params = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    spec_tf = Spectrogram(setting).to(device)
    if ck is not None:
        model.load_state_dict(ck["model"])
        model.to(device)
    else:
        model.to(device)
        stats = RemixDataset(source, setting, cfg, seed=cfg.seed, stream="stats")
        mags, scores = [], []
        with torch.no_grad():
            for s in range(STATS_BATCHES):
                b = stats.batch(0, s)
                mags.append(spec_tf(b["mix"].to(device)).abs())
                if kind is not None:
                    from guitarsep.transforms import score_input
                    scores.append(score_input(kind, b["m_target"].to(device),
                                              b["m_accomp"].to(device)))
        if hasattr(model, "fit_input_stats"):
            model.fit_input_stats(torch.cat(mags), torch.cat(scores) if scores else None)
        elif hasattr(model, "set_input_stats"):
            m = torch.cat(mags).flatten(0, 1)
            model.set_input_stats(m.mean(0), m.std(0))
        del mags, scores
    base = model
    if dist_.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DDP(model, device_ids=[device.index])
        else:
            model = DDP(model)
        base = model.module
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    epochs = epochs_for(profile, spec)
    if cfg.lr_schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.lr_decay_gamma, patience=cfg.lr_decay_patience)
    elif cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, epochs * spe), eta_min=cfg.lr * cfg.lr_min_factor)
    else:
        raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; use 'plateau' or 'cosine'")
    per_step_sched = cfg.lr_schedule != "plateau"
    if ck is not None:
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        _set_rng_states(ck["rng"])

    def checkpoint():
        if main_:
            _atomic_torch_save({
                "model": base.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": _rng_states(), "state": state,
                "config_hash": chash, "name": spec.name, "setting": spec.setting,
                "hparams": dict(getattr(base, "hparams", hp) or hp),
            }, last)

    # ---- loop --------------------------------------------------------------------------------
    sampler = StepBatchSampler(cfg.batch_size, spe, epochs, start_epoch=state["epoch"],
                               start_step=state["step_in_epoch"], rank=dist_.rank,
                               world=dist_.world)
    loader = make_loader(dataset, sampler, num_workers=cfg.num_workers,
                         pin_memory=device.type == "cuda")
    model.train()
    t_seg = t_start                   # wall time (setup included) not yet in state["wall_s"]

    def flush_wall():
        nonlocal t_seg
        now = time.perf_counter()
        state["wall_s"] += now - t_seg
        t_seg = now

    ebar = tqdm(total=epochs, initial=state["epoch"], desc=spec.key, disable=not show,
                leave=True, dynamic_ncols=True)
    sbar = None
    it = iter(loader)
    stop = state["done"]
    while not stop and state["epoch"] < epochs:
        e = state["epoch"]
        if sbar is None:
            sbar = tqdm(total=spe, desc=f"epoch {e + 1}", disable=not show, leave=False,
                        dynamic_ncols=True)
        sbar.n = state["step_in_epoch"]
        sbar.refresh()
        while state["step_in_epoch"] < spe:
            if max_steps is not None and state["global_step"] >= max_steps:
                stop = True
                break
            s = state["step_in_epoch"]
            t0 = time.perf_counter()
            batch = next(it)
            if device.type == "cuda":
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            t1 = time.perf_counter()
            torch.manual_seed(_step_seed(cfg.seed, dist_.rank, e, s))
            est, tmag, _ = _forward(model, spec_tf, kind, batch, device)
            loss = F.mse_loss(est, tmag)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip and cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if per_step_sched:
                sched.step()
            ld = loss.detach()
            if dist_.world > 1:   # log the global-batch loss (same value on every rank)
                import torch.distributed as dist
                dist.all_reduce(ld)
                ld = ld / dist_.world
            lv = float(ld)
            t2 = time.perf_counter()
            state["epoch_loss_sum"] += lv
            state["epoch_loss_n"] += 1
            state["epoch_data_s"] += t1 - t0
            state["epoch_step_s"] += t2 - t0
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            sbar.update(1)
            sbar.set_postfix(loss=f"{lv:.3g}", refresh=False)
            if step_sleep:
                time.sleep(step_sleep)
            if state["step_in_epoch"] < spe and state["step_in_epoch"] % ckpt_every == 0:
                flush_wall()
                checkpoint()
        if stop:
            break
        # ---- end of epoch: validation, scheduler, best, log, checkpoint ----------------
        _broadcast_buffers(model, dist_)
        parts = dist_.gather(validate(base, valid, spec_tf, kind, device,
                                      cfg.valid_batch_clips, rank=dist_.rank,
                                      world=dist_.world))
        res = sorted(r for p in parts for r in p)
        vloss = float(np.mean([r[1] for r in res]))
        sis = np.array([r[2] for r in res], dtype=float)
        vsdr = float(np.nanmedian(sis)) if np.isfinite(sis).any() else float("nan")
        if not per_step_sched:
            sched.step(vloss)
        improved = vloss < state["best_valid_loss"]
        if improved:
            state["best_valid_loss"] = vloss
            state["best_valid_si_sdr"] = vsdr
            state["best_epoch"] = e + 1
            state["bad_epochs"] = 0
            if main_:
                _atomic_torch_save({"model": base.state_dict(), "name": spec.name,
                                    "setting": spec.setting,
                                    "hparams": dict(getattr(base, "hparams", hp) or hp),
                                    "config_hash": chash, "epoch": e + 1,
                                    "valid_loss": vloss, "valid_si_sdr": vsdr},
                                   out / "best.pt")
        else:
            state["bad_epochs"] += 1
        flush_wall()
        row = {"epoch": e + 1, "step": state["global_step"],
               "train_loss": state["epoch_loss_sum"] / max(1, state["epoch_loss_n"]),
               "valid_loss": vloss, "valid_si_sdr": vsdr, "lr": float(opt.param_groups[0]["lr"]),
               "wall_s": round(state["wall_s"], 3),
               "data_frac": state["epoch_data_s"] / max(1e-9, state["epoch_step_s"])}
        state["history"].append(row)
        state.update(epoch=e + 1, step_in_epoch=0, epoch_loss_sum=0.0, epoch_loss_n=0,
                     epoch_data_s=0.0, epoch_step_s=0.0)
        if state["bad_epochs"] >= cfg.patience:
            state["stopped_early"] = True
        if state["epoch"] >= epochs or state["stopped_early"]:
            state["done"] = True
        if main_:
            _write_log(out / "log.csv", state["history"])
        checkpoint()
        ebar.update(1)
        ebar.set_postfix(valid_loss=f"{vloss:.4g}", si_sdr=f"{vsdr:.2f}", refresh=False)
        sbar.close()
        sbar = None
        if state["done"]:
            break
    if sbar is not None:
        sbar.close()
    ebar.close()
    del it, loader
    flush_wall()
    if not state["done"]:   # max_steps reached mid-run: keep the position
        checkpoint()

    # ---- record ---------------------------------------------------------------------------
    _broadcast_buffers(model, dist_)
    sums = dist_.gather(weights_checksum(base))
    hist = state["history"]
    data_s = [h["data_frac"] for h in hist if h.get("data_frac") is not None]
    rec = {
        "profile": profile.name, "setting": spec.setting, "model": spec.name, "key": spec.key,
        "hparams": dict(getattr(base, "hparams", hp) or hp), "config_hash": chash,
        "git_commit": _git_commit(profile.root), "device": _device_name(device),
        "torch_version": torch.__version__, "world_size": dist_.world,
        "wall_s": round(state["wall_s"], 3), "steps": state["global_step"],
        "epochs": state["epoch"], "steps_per_epoch": spe, "best_epoch": state["best_epoch"],
        "best_valid_loss": (None if not math.isfinite(state["best_valid_loss"])
                            else state["best_valid_loss"]),
        "best_valid_si_sdr": state["best_valid_si_sdr"], "params": n_params,
        "stopped_early": state["stopped_early"], "complete": bool(state["done"]),
        "data_frac": float(np.mean(data_s)) if data_s else None,
        "rank_checksums": sums, "ranks_identical": len(set(sums)) == 1,
        "call_wall_s": round(time.perf_counter() - t_start, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if main_ and state["done"]:
        from guitarsep.provenance import write_json_atomic
        write_json_atomic(out / "run.json", rec)
    dist_.barrier()
    dist_.close()
    return rec


# --------------------------------------------------------------------------------------------
# loading, several runs, CLI
# --------------------------------------------------------------------------------------------
def load_trained(profile: Profile, spec: ModelSpec, device="cpu"):
    """The trained network of ``spec`` in eval mode, from ``best.pt`` (else ``last.pt``)."""
    from guitarsep import models as gmodels
    out = run_dir(profile, spec)
    for name in ("best.pt", "last.pt"):
        p = out / name
        if p.is_file():
            ck = _load_ckpt(p)
            break
    else:
        raise FileNotFoundError(f"no checkpoint for {spec.key} in {out}; train it first "
                                f"(python -m guitarsep.train --profile {profile.name} "
                                f"--model {spec.name} --setting {spec.setting})")
    model = gmodels.build_model(ck.get("name", spec.name), SETTINGS[spec.setting],
                                **ck.get("hparams", model_hparams(spec, profile.train)))
    model.load_state_dict(ck["model"])
    return model.to(device).eval()


def train_all(profile: Profile, corpus=None, specs=None, *, device=None, progress: bool = True):
    """Train every spec (default ``profile.models``) in turn, skipping finished runs.

    Returns a DataFrame: model, setting, params, wall_s, steps, best_epoch,
    best_valid_si_sdr (plus best_valid_loss, device).
    """
    import pandas as pd
    specs = list(profile.models if specs is None else specs)
    if corpus is None:
        from guitarsep.corpus import load_corpus
        corpus = load_corpus(profile)
    rows = []
    for spec in specs:
        rec = train_model(profile, spec, corpus, device=device, progress=progress)
        rows.append({k: rec.get(k) for k in ("model", "setting", "params", "wall_s", "steps",
                                             "best_epoch", "best_valid_si_sdr",
                                             "best_valid_loss", "device")})
    return pd.DataFrame(rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m guitarsep.train", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="smoke", help="smoke | default | paper")
    p.add_argument("--model", required=True, help="network name (guitarsep.models.MODEL_NAMES)")
    p.add_argument("--setting", required=True, choices=sorted(SETTINGS))
    p.add_argument("--steps-scale", type=float, default=None,
                   help="override the spec's steps_scale (default: the profile's spec)")
    p.add_argument("--root", default=None, help="project root (default: found from cwd)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--ckpt-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--step-sleep", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    profile = load_profile(args.profile, root=args.root)
    spec = next((m for m in profile.models if m.name == args.model and m.setting == args.setting),
                ModelSpec(args.model, args.setting))
    if args.steps_scale is not None:
        spec = ModelSpec(spec.name, spec.setting, args.steps_scale)
    rec = train_model(profile, spec, device=args.device, progress=not args.no_progress,
                      ckpt_every=args.ckpt_every, max_steps=args.max_steps,
                      step_sleep=args.step_sleep)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: rec[k] for k in ("key", "steps", "epochs", "best_epoch",
                                              "best_valid_si_sdr", "wall_s", "complete")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
