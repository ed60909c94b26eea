"""Speed and memory of ``guitarsep separate`` on a long recording.

Makes a ``--minutes`` (10) long stereo ``--sr`` (48 kHz) recording by tiling a rendered
two-part piece (30 s, seen timbres; written block by block, so this process stays small), a
MIDI score of both parts (tiled the same way), and a model: by default one of the default
network size (si_umx_soft, modern, hidden_size 256, untrained: the cost does not depend on
the weights), or ``--model`` (a file, or a model name such as ``score_nmf``, the default of
``guitarsep separate``), then runs the command line path in a child process::

    guitarsep separate MIX --score SCORE.mid --part Lead --model M -o OUT.wav

and reports its wall time (-> x real time), its peak resident memory (``ru_maxrss`` of the
child, whole process: Python, torch, audio buffers) and the output's format. Targets: >= 20x
real time on 2 CPU cores, peak <= 1.5 GB for any length (issue: 60 min stereo 48 kHz).

    python scripts/bench_separate.py                       # 10 min, 48 kHz stereo
    python scripts/bench_separate.py --minutes 2 --align   # also time --align
    python scripts/bench_separate.py --model score_nmf --no-accomp   # the target's part alone
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def make_inputs(d: Path, minutes: float, sr: int, seed: int = 7, piece_s: float = 30.0,
                accomp: bool = True):
    import pretty_midi
    import soundfile as sf

    from guitarsep.corpus import generate_idiom_piece
    from guitarsep.corpus import render_part
    from guitarsep.score import Notes, notes_to_pretty_midi
    from guitarsep.corpus import load_timbres

    a, b, _ = generate_idiom_piece(seed, piece_s)
    t = load_timbres()
    seen = t[t["pool"] == "seen"].reset_index(drop=True)
    ya = render_part(a, seen.iloc[0], sr=sr, duration=piece_s)
    yb = render_part(b, seen.iloc[len(seen) - 1], sr=sr, duration=piece_s)
    block = np.stack([ya + 0.7 * yb, 0.7 * ya + yb], axis=1).astype(np.float32) * 0.5
    n_total = int(round(minutes * 60 * sr))
    with sf.SoundFile(str(d / "mix.wav"), "w", sr, 2, subtype="PCM_24") as f:
        done = 0
        while done < n_total:
            k = min(block.shape[0], n_total - done)
            f.write(block[:k])
            done += k
    reps = int(np.ceil(n_total / sr / piece_s))

    def tiled(n: Notes) -> Notes:
        out = Notes.empty()
        for r in range(reps):
            out = out.concat(n.shift(r * piece_s))
        return out.window(0.0, n_total / sr)

    pm = pretty_midi.PrettyMIDI()
    pm.instruments += [notes_to_pretty_midi(tiled(a), 25, name="Lead")]
    if accomp:          # else the score holds the target alone: no accompaniment score
        pm.instruments += [notes_to_pretty_midi(tiled(b), 27, name="Rhythm")]
    pm.write(str(d / "score.mid"))
    return n_total / sr


def make_model(d: Path, hidden_size: int) -> Path:
    import torch

    from guitarsep.config import MaskParams
    from guitarsep.models import build_model
    from guitarsep.models.checkpoint import export_model, save_checkpoint

    torch.manual_seed(0)
    m = build_model("si_umx_soft", "modern", hidden_size=hidden_size)
    save_checkpoint(d / "untrained.pt", m, "modern", MaskParams())
    side = export_model(d / "untrained.pt", d / "model.pt", {"purpose": "benchmark"})
    print(f"model: si_umx_soft hidden {hidden_size}, {side['parameters']} parameters, "
          f"{side['size_bytes'] / 1e6:.1f} MB (float32)", file=sys.stderr)
    return d / "model.pt"


def _rss_sampler(pid: int, out: dict, stop: threading.Event) -> None:
    """Peak RSS of the child by sampling /proc (cross-check of ru_maxrss)."""
    peak = 0
    status = Path(f"/proc/{pid}/status")
    while not stop.is_set():
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            break
        time.sleep(0.05)
    out["sampled_peak_bytes"] = peak


def run(args) -> dict:
    import soundfile as sf

    d = Path(args.dir or tempfile.mkdtemp(prefix="bench_separate_"))
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seconds = make_inputs(d, args.minutes, args.sr, accomp=not args.no_accomp)
    model = Path(args.model) if args.model else make_model(d, args.hidden_size)
    print(f"inputs: {seconds:.0f} s at {args.sr} Hz stereo in {time.perf_counter() - t0:.0f} s"
          f" ({(d / 'mix.wav').stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    cmd = [sys.executable, "-m", "guitarsep", "separate", str(d / "mix.wav"), "--score",
           str(d / "score.mid"), "--part", "Lead", "--model", str(model), "-o",
           str(d / "out.wav"), "--chunk-s", str(args.chunk_s)]
    if args.align:
        cmd.append("--align")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ)
    t1 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    sampled, stop = {}, threading.Event()
    th = threading.Thread(target=_rss_sampler, args=(proc.pid, sampled, stop), daemon=True)
    th.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t1
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"separate failed ({proc.returncode}):\n{err}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024   # kB on Linux
    info = sf.info(str(d / "out.wav"))
    res = dict(audio_s=seconds, sr=args.sr, channels_in=2, wall_s=wall,
               x_real_time=seconds / wall, peak_rss_bytes=peak,
               peak_rss_sampled_bytes=sampled.get("sampled_peak_bytes"),
               out_sr=info.samplerate, out_frames=info.frames, out_channels=info.channels,
               in_frames=int(round(seconds * args.sr)), chunk_s=args.chunk_s,
               align=args.align, accomp=not args.no_accomp, cpu_count=os.cpu_count(),
               torch_threads=args.threads or "CLI default (1)",
               model=str(model), log=[ln for ln in err.splitlines() if "\r" not in ln][-8:])
    if not args.keep and not args.dir:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=48000)
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--model", default=None, help="model file (default: untrained, exported)")
    ap.add_argument("--chunk-s", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=None,
                    help="--threads for the CLI (default: its default, 1)")
    ap.add_argument("--align", action="store_true", help="also run --align")
    ap.add_argument("--no-accomp", action="store_true",
                    help="the score holds the target's part alone (no accompaniment score)")
    ap.add_argument("--dir", default=None, help="work folder (kept)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    res = run(args)
    print(json.dumps(res, indent=2))
    print(f"{res['audio_s'] / 60:.1f} min at {res['sr']} Hz stereo: {res['wall_s']:.1f} s wall "
          f"= {res['x_real_time']:.1f}x real time (target >= 20x); peak RSS "
          f"{res['peak_rss_bytes'] / 2**30:.2f} GiB (target <= 1.5 GB)", file=sys.stderr)


if __name__ == "__main__":
    main()
