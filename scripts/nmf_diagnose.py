"""Where the score NMF loses against the oracle, on its dev clips (never a test clip).

Each row replaces one part of the NMF's target gain by what the isolated sources give, and
scores the result (SI-SDR of the masked mixture, whole clip, the modern STFT):

- ``nmf``: the shipped NMF's gain ``V_t / (V_t + V_o)`` (what its mask gives after the
  Wiener filter);
- ``oracle``: ``|S_t|^2 / (|S_t|^2 + |S_o|^2)`` from the isolated parts;
- ``oracle_in_overlap`` / ``oracle_outside``: the oracle's gain only in the bins where both
  parts' models are within 10 dB of each other (``min / max > 0.1``), the NMF's elsewhere,
  and the reverse; ``overlap_energy``: the mixture's share of energy in those bins;
- ``templates_known`` / ``activations_known`` / ``both_known``: the NMF's factors fitted to
  each isolated part alone (its own components, the same constraints and iterations), then
  one factor held while the other is fitted to the mixture (``both_known``: none refitted:
  the ceiling of the NMF's model).

Writes ``data/results/default/nmf_diagnose.csv`` (per clip) and the table of
docs/ablations.md between its markers.

    python scripts/nmf_diagnose.py          # about 20 s on 2 cores (16 s on 2026-12-03)
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import torch

from guitarsep.config import SETTINGS, MaskParams, load_profile
from guitarsep.corpus.out_of_family import nmf_dev_sets
from guitarsep.evaluation.metrics import si_sdr
from guitarsep.io import run_doc_table
from guitarsep.models.frontend import Spectrogram, istft
from guitarsep.separation.score_nmf import (Factors, NmfParams, fit_factors, initial_factors,
                                            target_share)

ST = SETTINGS["modern"]
MARK = ("<!-- nmf-diagnose:begin -->", "<!-- nmf-diagnose:end -->")
ROWS = ["nmf", "oracle", "oracle_in_overlap", "oracle_outside", "templates_known",
        "activations_known", "both_known"]


def _stft(x: np.ndarray) -> np.ndarray:
    return Spectrogram(ST)(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0].numpy()


def _magnitude(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.abs(X).T.astype(np.float32))            # (F, T)


def _split(f: Factors) -> tuple[Factors, Factors]:
    """The target's and the other part's components as two factorisations."""
    k = f.n_target
    return (Factors(f.W[:, :k].copy(), f.H[:k].copy(), k),
            Factors(f.W[:, k:].copy(), f.H[k:].copy(), 0))


def _join(t: Factors, o: Factors) -> Factors:
    return Factors(np.concatenate([t.W, o.W], 1), np.concatenate([t.H, o.H]), t.W.shape[1])


def clip_gains(clip, params: NmfParams, mask: MaskParams) -> tuple[dict, float, np.ndarray]:
    """The target gains ``(F, T)`` of every row of :data:`ROWS` for one clip, the overlap
    bins' share of the mixture's energy, and the mixture STFT ``(T, F)``."""
    X, S_t, S_o = (_stft(x) for x in (clip.mix, clip.target, clip.other))
    # the diagnosis fits each part alone and swaps in the other's factors: spare components,
    # which belong to neither part, have no place in it, nor the pitch slack, which is for
    # notes the score misses (the dev clips' scores are complete)
    params = dataclasses.replace(params, spare_components=0, slack_start=0.0)
    kw = dict(sr=ST.sr, n_fft=ST.n_fft, hop=ST.hop, mask=mask, params=params)
    V = _magnitude(X)

    init = initial_factors(V, clip.target_notes, clip.accomp_notes, **kw)
    alone_t, alone_o = _split(init)                    # copies: every fit below is in place
    fit = functools.partial(fit_factors, iterations=params.iterations, h_step=params.h_step)
    fitted = fit(V, Factors(init.W.copy(), init.H.copy(), init.n_target))
    fit(_magnitude(S_t), alone_t)
    fit(_magnitude(S_o), alone_o)
    known = _join(alone_t, alone_o)
    w_known = fit(V, Factors(known.W.copy(), init.H.copy(), known.n_target), update_w=False)
    h_known = fit(V, Factors(init.W, known.H.copy(), known.n_target), update_h=False)
    V_t, V_o = fitted.part_models()
    nmf = target_share(V_t, V_o, 1.0)
    p_t, p_o = np.abs(S_t.T) ** 2, np.abs(S_o.T) ** 2
    oracle = np.divide(p_t, p_t + p_o, out=np.zeros_like(p_t), where=p_t + p_o > 0)
    overlap = np.minimum(V_t, V_o) > 0.1 * np.maximum(V_t, V_o)
    gains = {"nmf": nmf, "oracle": oracle,
             "oracle_in_overlap": np.where(overlap, oracle, nmf),
             "oracle_outside": np.where(overlap, nmf, oracle),
             "templates_known": target_share(*w_known.part_models(), 1.0),
             "activations_known": target_share(*h_known.part_models(), 1.0),
             "both_known": target_share(*known.part_models(), 1.0)}
    energy = np.abs(X.T) ** 2
    return gains, float((energy * overlap).sum() / energy.sum()), X


def clip_row(clip, params: NmfParams, mask: MaskParams) -> dict:
    """One clip's SI-SDR for every row of :data:`ROWS`, its ``overlap_energy`` and cell."""
    gains, overlap_energy, X = clip_gains(clip, params, mask)
    row = dict(overlap_energy=overlap_energy,
               cell="same" if clip.target_timbre == clip.other_timbre else "diff")
    for name, g in gains.items():
        y = istft(torch.from_numpy(g.T * X), ST, len(clip.mix)).numpy()
        row[name] = si_sdr(clip.target, y)
    return row


def diagnose(profile, params: NmfParams = NmfParams()) -> pd.DataFrame:
    """Per dev clip: SI-SDR of every row of :data:`ROWS` and ``overlap_energy``."""
    rows = []
    for dev_set, corpus, split in nmf_dev_sets(profile):
        for clip_id in corpus.clips(split=split).clip_id:
            rows.append(dict(dev_set=dev_set, clip_id=clip_id,
                             **clip_row(corpus.clip(clip_id), params, profile.mask)))
    return pd.DataFrame(rows)


def table(scores: pd.DataFrame) -> list[str]:
    """Markdown: the median of every row per dev cell."""
    med = scores.groupby(["dev_set", "cell"])[[*ROWS, "overlap_energy"]].median()
    cells = list(med.index)
    out = ["| row | " + " | ".join(f"{d} {c}" for d, c in cells) + " |",
           "|---|" + "---|" * len(cells)]
    for name in ROWS:
        out.append(f"| {name} | " + " | ".join(f"{med.loc[c, name]:.2f}" for c in cells) + " |")
    out.append("| overlap_energy | " + " | ".join(
        f"{med.loc[c, 'overlap_energy']:.0%}" for c in cells) + " |")
    return out


def main(argv=None) -> None:
    profile = load_profile("default")
    run_doc_table(argv, __doc__, lambda: diagnose(profile), table,
                  profile.results_dir / "nmf_diagnose.csv", MARK)


if __name__ == "__main__":
    main()
