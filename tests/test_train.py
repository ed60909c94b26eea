"""Training loop: runs, logs, skips finished runs, resumes exactly after SIGKILL, checkpoint
round trip, DDP (two CPU ranks with gloo). Smoke profile, tiny models (a few seconds each)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from guitarsep.config import ModelSpec, load_profile
from guitarsep.app.cli import main as cli_main
from guitarsep.models.checkpoint import read_checkpoint, weights_checksum
from guitarsep.training.loop import (load_trained, read_log, run_config_hash, run_dir,
                                     train_all, train_model)

SPEC = ModelSpec("si_umx_soft", "low_res")     # has dropout: exercises the RNG handling


def _profile_copy(smoke_corpus, tmp_path, name="run") -> "Profile":  # noqa: F821
    """A smoke profile under a fresh root whose corpus is the session's (symlinked)."""
    root = tmp_path / name
    p = load_profile("smoke", root=root)
    p.corpus_dir.parent.mkdir(parents=True, exist_ok=True)
    p.corpus_dir.symlink_to(Path(smoke_corpus.root), target_is_directory=True)
    return p


def _cli(profile, spec, *extra) -> list[str]:
    return [sys.executable, "-m", "guitarsep", "train", "--profile", profile.name, "--model",
            spec.name, "--setting", spec.setting, "--root", str(profile.root), "--no-progress",
            "--device", "cpu", *extra]


def _env():
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "lib")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def trained(smoke_corpus, tmp_path_factory):
    """One uninterrupted in-process run of SPEC (shared by several tests)."""
    p = _profile_copy(smoke_corpus, tmp_path_factory.mktemp("trained"))
    rec = train_model(p, SPEC, smoke_corpus, device="cpu", progress=False)
    return p, rec


def test_run_record_log_and_files(trained):
    p, rec = trained
    cfg = p.train
    out = run_dir(p, SPEC)
    assert {"last.pt", "best.pt", "log.csv", "run.json"} <= {f.name for f in out.iterdir()}
    assert rec["complete"] and rec["steps"] == cfg.epochs * cfg.steps_per_epoch
    assert rec["config_hash"] == run_config_hash(p, SPEC)
    assert rec["params"] > 0 and rec["best_epoch"] in range(1, cfg.epochs + 1)
    for k in ("profile", "setting", "model", "hparams", "git_commit", "device",
              "torch_version", "wall_s"):
        assert k in rec
    assert json.loads((out / "run.json").read_text())["steps"] == rec["steps"]
    log = read_log(p, SPEC)
    assert list(log["epoch"]) == list(range(1, cfg.epochs + 1))
    assert list(log["step"]) == [cfg.steps_per_epoch * (e + 1) for e in range(cfg.epochs)]
    assert log[["train_loss", "valid_loss", "valid_si_sdr", "lr"]].notna().all().all()
    assert (log["data_frac"] < 0.5).all()


def test_finished_run_is_skipped(trained, smoke_corpus):
    p, rec = trained
    t0 = time.perf_counter()
    again = train_model(p, SPEC, smoke_corpus, device="cpu", progress=False)
    assert again == rec and time.perf_counter() - t0 < 2.0
    df = train_all(p, smoke_corpus, specs=[SPEC], progress=False)
    assert list(df["model"]) == [SPEC.name] and int(df["steps"][0]) == rec["steps"]
    assert {"params", "wall_s", "best_epoch", "best_valid_si_sdr"} <= set(df.columns)


def test_checkpoint_round_trip(trained):
    p, rec = trained
    out = run_dir(p, SPEC)
    loaded = load_trained(p, SPEC)
    best = loaded.model
    assert not best.training and loaded.mask == p.mask and loaded.setting.name == SPEC.setting
    ck = read_checkpoint(out / "best.pt")
    assert ck["meta"]["config_hash"] == rec["config_hash"]
    assert ck["meta"]["epoch"] == rec["best_epoch"]
    assert all(torch.equal(v, ck["state_dict"][k]) for k, v in best.state_dict().items())
    # identical outputs from two loads
    g = torch.Generator().manual_seed(0)
    F = best.setting.n_bins
    x = torch.rand(2, 20, F, generator=g)
    s = (torch.rand(2, 20, F, generator=g) > 0.7).float()
    with torch.no_grad():
        assert torch.equal(best(x, s), load_trained(p, SPEC).model(x, s))
    # without best.pt: last.pt, i.e. the final weights, bit for bit
    moved = out / "best.pt.bak"
    shutil.move(out / "best.pt", moved)
    try:
        final = load_trained(p, SPEC)
        assert final.path.name == "last.pt"
        assert weights_checksum(final.model) == rec["rank_checksums"][0]
    finally:
        shutil.move(moved, out / "best.pt")


def test_config_change_starts_afresh(trained, smoke_corpus, tmp_path):
    p0, _ = trained
    p = _profile_copy(smoke_corpus, tmp_path)
    shutil.copytree(run_dir(p0, SPEC), run_dir(p, SPEC))
    p2 = dataclasses.replace(p, train=dataclasses.replace(p.train, lr=3e-4))
    rec = train_model(p2, SPEC, smoke_corpus, device="cpu", progress=False, max_steps=1)
    assert rec["steps"] == 1 and not rec["complete"]
    old = list(p.models_dir.glob(f"{SPEC.key}.old-*"))
    assert len(old) == 1 and (old[0] / "run.json").is_file()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_exact(trained, smoke_corpus, tmp_path):
    """Kill the CLI with SIGKILL right after its first mid-epoch checkpoint; rerunning the
    same command resumes there and ends at the same step with the same weights as the
    uninterrupted run."""
    p_ref, rec_ref = trained
    p = _profile_copy(smoke_corpus, tmp_path)
    last = run_dir(p, SPEC) / "last.pt"
    proc = subprocess.Popen(_cli(p, SPEC, "--ckpt-every", "1", "--step-sleep", "1.5"),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if last.is_file():
                state = read_checkpoint(last)["training"]["state"]
                if state["step_in_epoch"] > 0:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert state is not None and 0 < state["global_step"] < rec_ref["steps"]
    assert not (run_dir(p, SPEC) / "run.json").exists()
    killed_at = read_checkpoint(last)["training"]["state"]["global_step"]
    assert killed_at < rec_ref["steps"]
    done = subprocess.run(_cli(p, SPEC, "--ckpt-every", "1"), env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rec = json.loads((run_dir(p, SPEC) / "run.json").read_text())
    assert rec["steps"] == rec_ref["steps"] and rec["complete"]
    assert rec["rank_checksums"] == rec_ref["rank_checksums"]          # same final weights
    log, log_ref = read_log(p, SPEC), read_log(p_ref, SPEC)
    assert list(log["step"]) == list(log_ref["step"])
    assert list(log["valid_loss"]) == pytest.approx(list(log_ref["valid_loss"]), rel=1e-6)


@pytest.mark.slow
def test_ddp_two_ranks_end_identical(smoke_corpus, tmp_path):
    """torchrun, 2 CPU processes (gloo): both ranks end with bitwise identical weights
    (checksums gathered into run.json) after the full number of steps."""
    p = _profile_copy(smoke_corpus, tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "guitarsep", *_cli(p, SPEC)[3:]]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    rec = json.loads((run_dir(p, SPEC) / "run.json").read_text())
    assert rec["world_size"] == 2 and rec["complete"]
    assert rec["steps"] == p.train.epochs * p.train.steps_per_epoch
    assert len(rec["rank_checksums"]) == 2 and rec["ranks_identical"]


def test_cli_steps_scale_keeps_the_profile_spec(smoke_corpus, tmp_path, monkeypatch):
    """``guitarsep train --steps-scale`` replaces only steps_scale: the spec's epochs (and so
    the config hash of the run) stay those of the profile."""
    import guitarsep.training.loop as loop

    p = _profile_copy(smoke_corpus, tmp_path)
    spec = ModelSpec("si_umx_soft", "low_res", steps_scale=1.0, epochs=1)
    p = dataclasses.replace(p, models=(spec,))
    seen = []
    monkeypatch.setattr(loop, "train_model", lambda profile, s, **kw: seen.append(s) or
                        {"key": s.key, "steps": 0, "epochs": 0, "best_epoch": None,
                         "best_valid_si_sdr": None, "wall_s": 0.0, "complete": True})
    monkeypatch.setattr("guitarsep.app.cli.load_profile", lambda name, root=None: p)
    assert cli_main(["train", "--model", "si_umx_soft", "--setting", "low_res",
                     "--steps-scale", "2", "--quiet"]) == 0
    assert seen == [dataclasses.replace(spec, steps_scale=2.0)]


def test_runs_in_two_processes_equal_runs_in_turn(trained, smoke_corpus, tmp_path, capsys):
    """train_all's worker processes (guitarsep.parallel) change the wall time only: each run
    computes with the profile's cpu_threads, so its weights are those of a run in this
    process. SPEC's in-process run is the module's; a second, different spec shares the pool."""
    p_seq, rec = trained
    other = ModelSpec("si_cnn", "low_res")
    p_par = _profile_copy(smoke_corpus, tmp_path, "parallel")
    df = train_all(p_par, smoke_corpus, specs=[SPEC, other], progress=True, jobs=2)
    assert list(df["model"]) == [SPEC.name, other.name]         # in the specs' order
    shown = capsys.readouterr()
    assert f"trained {other.key}:" in shown.out + shown.err     # the steps bar's lines
    seq_other = train_model(p_seq, other, smoke_corpus, device="cpu", progress=False)
    for spec, want in ((SPEC, rec), (other, seq_other)):
        got = json.loads((run_dir(p_par, spec) / "run.json").read_text())
        assert got["rank_checksums"] == want["rank_checksums"], spec.key
        assert got["best_valid_loss"] == want["best_valid_loss"], spec.key


def test_train_all_hands_out_longest_first(monkeypatch, smoke_corpus, tmp_path):
    """The worker processes take the runs longest first (a long run started last would keep
    one process busy while the others idle); the table comes back in the specs' order."""
    import guitarsep.training.loop as loop

    p = _profile_copy(smoke_corpus, tmp_path)
    specs = [ModelSpec("si_umx_soft", "low_res"), ModelSpec("si_unet_soft", "modern"),
             ModelSpec("si_cnn", "low_res", steps_scale=3.0)]
    order = loop.longest_first(p, specs)
    assert [specs[i].key for i in order] == ["modern-si_unet_soft", "low_res-si_cnn",
                                             "low_res-si_umx_soft"]
    handed = []

    def fake_run_tasks(tasks, n_jobs, **kw):
        handed.extend(args[1].key for _f, args in tasks)
        return [{"model": args[1].name, "setting": args[1].setting} for _f, args in tasks]

    monkeypatch.setattr(loop, "run_tasks", fake_run_tasks)
    df = loop.train_all(p, smoke_corpus, specs=specs, device="cpu", progress=False, jobs=2)
    assert handed == [specs[i].key for i in order]
    assert list(df["model"] + "/" + df["setting"]) == [f"{s.name}/{s.setting}" for s in specs]


def test_train_all_under_torchrun_runs_in_turn(monkeypatch, smoke_corpus, tmp_path):
    """Under torchrun every rank must train each run together with the others (DDP), so
    train_all starts no worker processes there, whatever the cores."""
    import guitarsep.training.loop as loop

    p = _profile_copy(smoke_corpus, tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(loop, "run_tasks", lambda *a, **k: pytest.fail("workers under DDP"))
    ran = []
    monkeypatch.setattr(loop, "train_model",
                        lambda profile, spec, corpus, **kw: ran.append(spec.key) or {})
    loop.train_all(p, smoke_corpus, device="cpu", progress=False, jobs=2)
    assert ran == [s.key for s in p.models]
