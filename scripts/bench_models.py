"""Parameter counts and training-step times of every network (``guitarsep.models``).

For each model in both STFT settings: one training step (forward + MSE backward + Adam) on a
random batch of ``--batch`` (16) chunks of ``--seconds`` (1.5 s: 65 frames modern, 17 low_res),
Open-Unmix at hidden 256 and 512, U-Net at 16 channels, the CNN at its defaults. Prints a
table (median of ``--repeats`` steps after one warm-up step).

    python scripts/bench_models.py                     # CPU, all threads torch picks
    python scripts/bench_models.py --threads 2 --device cuda
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from guitarsep.config import SETTINGS
from guitarsep.models import MODEL_NAMES, build_model, count_parameters, model_family
from guitarsep.models.frontend import score_pair


def configs(name: str) -> list[dict]:
    fam = model_family(name)
    if fam == "umx":
        return [dict(hidden_size=256), dict(hidden_size=512)]
    if fam == "unet":
        return [dict(channels=16)]
    return [dict()]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_time(model, batch, device, repeats: int) -> float:
    mix, score, accomp, target = (None if t is None else t.to(device) for t in batch)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    times = []
    for i in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(mix, score, accomp) - target) ** 2)
        loss.backward()
        opt.step()
        sync(device)
        if i:                                      # first step is warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    ap.add_argument("--models", nargs="+", default=list(MODEL_NAMES))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} "
          f"chunk={args.seconds}s torch={torch.__version__}")
    header = f"{'setting':8s} {'model':15s} {'hparams':17s} {'frames':>6s} {'bins':>9s} " \
             f"{'params':>11s} {'step (s)':>9s}"
    print(header)
    print("-" * len(header))
    for sname in args.settings:
        st = SETTINGS[sname]
        T = st.frames_for(args.seconds)
        shape = (args.batch, T, st.n_bins)
        mix = torch.rand(shape)
        m_t, m_a = torch.rand(shape) < 0.1, torch.rand(shape) < 0.1
        target = mix * torch.rand(shape)
        for name in args.models:
            for hp in configs(name):
                model = build_model(name, st, **hp)
                score, accomp = score_pair(model.score_kind, m_t, m_a)
                dt = step_time(model, (mix, score, accomp, target), device, args.repeats)
                hps = ",".join(f"{k}={v}" for k, v in hp.items()) or "default"
                print(f"{sname:8s} {name:15s} {hps:17s} {T:6d} {st.max_bin:4d}/{st.n_bins:<4d} "
                      f"{count_parameters(model):11,d} {dt:9.3f}", flush=True)


if __name__ == "__main__":
    main()
