"""Benchmark the training data path and the share of step time spent waiting for data.

    python scripts/bench_data.py                       # synthetic source, default-profile sizes
    python scripts/bench_data.py --corpus --profile default [--root R]   # a built corpus

Model: si_umx_soft, modern setting, hidden 256, batch 16, 1.5 s chunks (the ``default``
profile). Reports (1) samples/s of ``RemixDataset`` alone and through the DataLoader, and
(2) for ``--steps`` training steps (STFT + forward + backward + Adam, as in ``training/loop.py``)
the time per step and the share of it spent in ``next(loader)``.

The synthetic source has the shape of the default corpus' training split (48 pieces x 45 s,
2 parts x 2 renderings, noise audio and random sparse masks): the data path's cost depends only
on array sizes, not on their content.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from guitarsep.config import SETTINGS, load_profile
from guitarsep.training.data import RemixDataset, StepBatchSampler, make_loader


class SyntheticSource:
    """Same attributes as ``data.TrainingSource``, random content."""

    def __init__(self, setting, n_pieces=48, seconds=45.0, renders=2, seed=0):
        rng = np.random.default_rng(seed)
        n = int(seconds * setting.sr)
        self.setting = setting
        self.pieces = [f"p{i:03d}" for i in range(n_pieces)]
        self.lengths = np.full(n_pieces, n, dtype=np.int64)
        self.audio, self.masks, self.timbres = {}, {}, {}
        frames = n // setting.hop + 1
        for i in range(n_pieces):
            for part in (0, 1):
                tids = [f"t{k}" for k in range(renders)]
                self.timbres[(i, part)] = tids
                for t in tids:
                    self.audio[(i, part, t)] = (0.1 * rng.standard_normal(n)).astype(np.float32)
                self.masks[(i, part)] = rng.random((frames, setting.n_bins), dtype=np.float32) < 0.05
        self.weights = self.lengths / self.lengths.sum()

    @property
    def n_pieces(self):
        return len(self.pieces)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", action="store_true", help="use the profile's built corpus")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--root", default=None)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--workers", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)

    from guitarsep.models import build_model
    from guitarsep.training.loop import _forward
    from guitarsep.models.frontend import Spectrogram

    profile = load_profile(args.profile, root=args.root)
    cfg = profile.train
    setting = SETTINGS["modern"]
    assert cfg.batch_size == 16 and cfg.seq_frames == 64 and cfg.hidden_size == 256 or \
        args.profile != "default"
    t0 = time.perf_counter()
    if args.corpus:
        from guitarsep.corpus import load_corpus
        from guitarsep.training.data import TrainingSource
        source = TrainingSource(load_corpus(profile), setting, profile.mask, progress=True)
        kind = "corpus"
    else:
        source = SyntheticSource(setting)
        kind = "synthetic"
    t_load = time.perf_counter() - t0
    ds = RemixDataset(source, setting, cfg, seed=cfg.seed)
    res = {"source": kind, "load_s": round(t_load, 2), "n_pieces": source.n_pieces,
           "batch": cfg.batch_size, "seq_frames": cfg.seq_frames,
           "threads": torch.get_num_threads()}

    # (1) data path alone
    t0 = time.perf_counter()
    for i in range(args.samples):
        ds.sample(0, i)
    res["dataset_samples_per_s"] = round(args.samples / (time.perf_counter() - t0), 1)
    n_batches = max(1, args.samples // cfg.batch_size)
    for w in args.workers:
        loader = make_loader(ds, StepBatchSampler(cfg.batch_size, n_batches, 1), num_workers=w)
        t0 = time.perf_counter()
        n = 0
        for b in loader:
            n += b["mix"].shape[0]
        res[f"loader_w{w}_samples_per_s"] = round(n / (time.perf_counter() - t0), 1)

    # (2) training steps: share of step time waiting for data
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = build_model("si_umx_soft", setting, hidden_size=256).to(device).train()
    spec_tf = Spectrogram(setting).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for w in args.workers:
        loader = make_loader(ds, StepBatchSampler(cfg.batch_size, args.steps + 2, 1),
                             num_workers=w, pin_memory=device.type == "cuda")
        it = iter(loader)
        data_s = step_s = 0.0
        for s in range(args.steps + 2):
            t0 = time.perf_counter()
            batch = next(it)
            t1 = time.perf_counter()
            est, tmag, _ = _forward(model, spec_tf, model.score_kind, batch, device)
            loss = F.mse_loss(est, tmag)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            float(loss.detach())
            t2 = time.perf_counter()
            if s >= 2:                          # skip warm-up steps
                data_s += t1 - t0
                step_s += t2 - t0
        res[f"train_w{w}_step_s"] = round(step_s / args.steps, 4)
        res[f"train_w{w}_data_wait_frac"] = round(data_s / step_s, 4)
        del it, loader
    res["device"] = str(device)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
