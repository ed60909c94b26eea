"""The paper's three result figures, drawn only from the tidy results table.

Used by 04_figures.ipynb and ``guitarsep figures``. Input: the per-clip table of
:func:`guitarsep.evaluation.metrics.evaluate_clips` (columns model, setting, scenario,
combination, clip_id, target_timbre, other_timbre, si_sdr, sdr, sir, sar). Nothing here reads audio,
models or the corpus.

- :func:`plot_low_res`  -> ``figures/low_res.png``: SI-Open-unmix, SI-U-Net, baseline CNN
  (setting ``low_res``, scenario ``seen``).
- :func:`plot_modern`   -> ``figures/modern.png``: Open-unmix / UNet, soft / binary score
  (setting ``modern``, scenario ``seen``).
- :func:`plot_unseen`   -> ``figures/unseen.png``: 2 x 2 panels, scenarios a-d, Soft / Binary /
  Blind Open-unmix (setting ``modern``); panel d has ag+ag and eg+eg only.
- :func:`plot_generalization` -> ``figures/generalization.png``: x = test family (seen,
  unseen soundfont, each out-of-family family), hue = the shipped model, Soft / Binary / Blind
  Open-unmix, the score mask alone and the oracle; from ``scores.csv`` plus the table of
  ``evaluation.out_of_family.run_generalization`` (drawn when that table is given).
- :func:`plot_robustness` -> ``figures/robustness.png`` (06_robustness.ipynb): median SI-SDR
  against score errors, from the table of ``guitarsep.evaluation.robustness.run_robustness``.
- :func:`save_figure`   PNG (150 dpi) + sidecar JSON with provenance and per-box counts.
- :func:`write_figures` the figures stage: the three figures, ``provenance.json`` and
  ``summary.md`` (the markdown report of :mod:`guitarsep.evaluation.summary`: our medians
  beside the paper's, and the paper's orderings checked on our data).

Design follows the paper's figures (``docs/paper/*.png``): seaborn boxplots of per-clip target
SI-SDR, x = combination (ag+ag, ag+eg, eg+eg), hue = model, seaborn's default colours in a
fixed order, whiskers at 1.5 IQR and outliers not drawn (the paper's figures show none), title
"Target SI-SDR". Models or cells missing from the table are skipped (an empty slot stays in its
place on the x axis); a figure with no data at all says so in its axes.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from guitarsep.vocabulary import (COMBINATIONS, GENERALIZATION_FAMILIES,
                                  GENERALIZATION_MODELS, LOW_RES_MODELS, MODERN_MODELS,
                                  SCENARIO_COMBINATIONS, SCENARIO_TITLES, SHIPPED_LABEL,
                                  UNSEEN_MODELS, UNSEEN_SCENARIOS)

__all__ = [
    "plot_low_res", "plot_modern", "plot_unseen", "save_figure", "write_figures",
    "FIGURE_FUNCTIONS", "plot_robustness", "ROBUSTNESS_PANELS", "ROBUSTNESS_MODELS",
    "plot_generalization", "generalization_frame",
]

_RC = {"font.size": 13, "axes.titlesize": 15, "axes.labelsize": 15, "xtick.labelsize": 14,
       "ytick.labelsize": 13, "legend.fontsize": 12}


def _palette(models: tuple[tuple[str, str], ...]) -> dict[str, tuple]:
    import seaborn as sns
    colours = sns.color_palette(n_colors=max(len(models), 3))
    return {label: colours[i] for i, (_, label) in enumerate(models)}


def _select(df: pd.DataFrame, setting: str, scenario: str,
            models: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    labels = dict(models)
    need = {"model", "setting", "scenario", "combination", "si_sdr"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"results table lacks columns {sorted(missing)}")
    sub = df[(df["setting"] == setting) & (df["scenario"] == scenario)
             & df["model"].isin(list(labels))].copy()
    sub = sub[np.isfinite(sub["si_sdr"].to_numpy(dtype=float))]
    sub["label"] = sub["model"].map(labels)
    return sub


def _boxpanel(ax, df: pd.DataFrame, setting: str, scenario: str,
              models: tuple[tuple[str, str], ...], combos: tuple[str, ...],
              title: str, legend_loc: str = "best") -> dict:
    """Draw one boxplot panel; return the per-box counts ``{label: {combination: n}}``."""
    import seaborn as sns

    sub = _select(df, setting, scenario, models)
    sub = sub[sub["combination"].isin(combos)]
    hue_order = [label for _, label in models if label in set(sub["label"])]
    counts = {label: {c: int(((sub["label"] == label) & (sub["combination"] == c)).sum())
                      for c in combos} for label in hue_order}
    ax.set_title(title)
    if sub.empty:
        ax.text(0.5, 0.5, f"no results for {setting} / {scenario}", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
        ax.set_xticks(range(len(combos)), list(combos))
        ax.set_xlim(-0.5, len(combos) - 0.5)
    else:
        with warnings.catch_warnings():   # seaborn 0.13 passes matplotlib's deprecated `vert`
            warnings.simplefilter("ignore", category=matplotlib.MatplotlibDeprecationWarning)
            sns.boxplot(data=sub, x="combination", y="si_sdr", hue="label",
                        order=list(combos), hue_order=hue_order, palette=_palette(models),
                        showfliers=False, whis=1.5, linewidth=1.2, ax=ax)
        ax.legend(loc=legend_loc, title=None)
    ax.set_xlabel("")
    ax.set_ylabel("SI-SDR (dB)")
    return counts


def _single(df: pd.DataFrame, setting: str, models, name: str) -> plt.Figure:
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8.5, 6.5), constrained_layout=True)
        counts = _boxpanel(ax, df, setting, "seen", models, COMBINATIONS,
                           "Target SI-SDR", legend_loc="upper right")
    fig.guitarsep_meta = {"figure": name, "setting": setting, "scenario": "seen",
                          "models": dict(models), "n_clips": counts}
    return fig


def plot_low_res(df: pd.DataFrame) -> plt.Figure:
    """``low_res.png``: SI-Open-unmix vs SI-U-Net vs baseline CNN (setting low_res, seen)."""
    return _single(df, "low_res", LOW_RES_MODELS, "low_res")


def plot_modern(df: pd.DataFrame) -> plt.Figure:
    """``modern.png``: Open-unmix-Soft/-Binary, UNet-Soft/-Binary (setting modern, seen)."""
    return _single(df, "modern", MODERN_MODELS, "modern")


def plot_unseen(df: pd.DataFrame) -> plt.Figure:
    """``unseen.png``: 2 x 2 panels (scenarios a, b, c, d), Soft / Binary / Blind
    Open-unmix (setting modern); panel d shows ag+ag and eg+eg only."""
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(2, 2, figsize=(11.5, 8.6), constrained_layout=True)
        counts = {}
        for ax, sc in zip(axes.flat, UNSEEN_SCENARIOS):
            counts[sc] = _boxpanel(ax, df, "modern", sc, UNSEEN_MODELS,
                                   SCENARIO_COMBINATIONS[sc],
                                   f"Target SI-SDR: {SCENARIO_TITLES[sc]}")
            ax.title.set_fontsize(13)
    fig.guitarsep_meta = {"figure": "unseen", "setting": "modern",
                          "scenarios": list(UNSEEN_SCENARIOS), "models": dict(UNSEEN_MODELS),
                          "n_clips": counts}
    return fig


def generalization_frame(scores: pd.DataFrame, general: pd.DataFrame) -> pd.DataFrame:
    """Per-clip rows of ``generalization.png``: the modern models and references of
    ``scores`` plus every row of ``general`` (``run_generalization``), ``shipped-*`` models
    renamed :data:`SHIPPED_LABEL`, with a ``family`` column
    (:data:`GENERALIZATION_FAMILIES`); rows of no family are dropped."""
    fam = {sc: label for label, scs in GENERALIZATION_FAMILIES for sc in scs}
    keep = {m for m, _ in GENERALIZATION_MODELS}
    own = scores[(scores["setting"] == "modern") & scores["model"].isin(keep)]
    df = pd.concat([own, general], ignore_index=True)
    df["model"] = df["model"].where(~df["model"].str.startswith("shipped-"), SHIPPED_LABEL)
    df["family"] = df["scenario"].map(fam)
    df = df[df["family"].notna() & df["model"].isin(keep)]
    return df[np.isfinite(df["si_sdr"].to_numpy(dtype=float))].reset_index(drop=True)


def plot_generalization(scores: pd.DataFrame, general: pd.DataFrame) -> plt.Figure:
    """``generalization.png``: how much holds on sounds training never heard. x = test family
    (seen timbres; the unseen soundfont; the three out-of-family families), hue = model."""
    import seaborn as sns

    df = generalization_frame(scores, general)
    labels = dict(GENERALIZATION_MODELS)
    df["label"] = df["model"].map(labels)
    order = [f for f, _ in GENERALIZATION_FAMILIES if f in set(df["family"])]
    hue_order = [lab for m, lab in GENERALIZATION_MODELS if lab in set(df["label"])]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(13, 6.5), constrained_layout=True)
        if df.empty:
            ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=matplotlib.MatplotlibDeprecationWarning)
                sns.boxplot(data=df, x="family", y="si_sdr", hue="label", order=order,
                            hue_order=hue_order, palette=_palette(GENERALIZATION_MODELS),
                            showfliers=False, whis=1.5, linewidth=1.1, ax=ax)
            ax.legend(loc="upper right", title=None, ncols=2)
        ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0)
        ax.set_title("Target SI-SDR on sounds training never heard")
        ax.set_xlabel("")
        ax.set_ylabel("SI-SDR (dB)")
    counts = {lab: {f: int(((df["label"] == lab) & (df["family"] == f)).sum()) for f in order}
              for lab in hue_order}
    fig.guitarsep_meta = {"figure": "generalization", "setting": "modern",
                          "families": {f: list(s) for f, s in GENERALIZATION_FAMILIES},
                          "models": labels, "n_clips": counts}
    return fig


#: Robustness panels: perturbation kind -> (panel title, x label, factor from level to x).
ROBUSTNESS_PANELS: dict[str, tuple[str, str, float]] = {
    "onset_jitter": ("Onset jitter", "max. shift per note (ms)", 1000.0),
    "global_offset": ("Global offset", "score late by (ms)", 1000.0),
    "missing_notes": ("Missing notes", "notes removed (%)", 100.0),
    "extra_notes": ("Extra notes", "notes added (%)", 100.0),
    "wrong_octave": ("Wrong octave", "notes moved ±12 (%)", 100.0),
    "early_offsets": ("Notes end early", "of each note's length cut (%)", 100.0),
    "detune_cents": ("Recording off A4 = 440 Hz", "played sharp by (cents)", 1.0),
}
#: (align, refine, line style, label) of each score fit drawn by :func:`plot_robustness`
_ROBUSTNESS_FITS = ((False, False, "-", "as given"), (True, False, "--", "aligned"),
                    (False, True, ":", "onsets refined"))
ROBUSTNESS_MODELS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "Open-unmix-Soft"), ("si_umx_binary", "Open-unmix-Binary"),
    ("score_nmf", "Shipped (score NMF)"))


def plot_robustness(df: pd.DataFrame) -> plt.Figure:
    """``figures/robustness.png`` (06_robustness.ipynb): median target SI-SDR against the size
    of each score error, one panel per kind; colour = model, solid = score as given, dashed =
    after DTW alignment, dotted = onsets refined (where the table has such rows). Level 0 of
    every panel is the clean score. Input: the table of
    :func:`guitarsep.evaluation.robustness.run_robustness` (tables written before the
    ``refine`` column have no refined rows)."""
    need = {"kind", "level", "align", "model", "si_sdr", "clip_id"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"robustness table lacks columns {sorted(missing)}")
    palette = _palette(ROBUSTNESS_MODELS)
    labels = dict(ROBUSTNESS_MODELS)
    if "refine" not in df.columns:
        df = df.assign(refine=False)
    clean = df[df["kind"] == "none"]
    counts = {}
    with plt.rc_context({**_RC, "axes.titlesize": 13, "axes.labelsize": 11,
                         "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10}):
        fig, axes = plt.subplots(1, len(ROBUSTNESS_PANELS), figsize=(23, 4.2), sharey=True,
                                 constrained_layout=True)
        for ax, (kind, (title, xlabel, factor)) in zip(axes, ROBUSTNESS_PANELS.items()):
            sub = pd.concat([clean, df[df["kind"] == kind]])
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            if (df["kind"] == kind).sum() == 0:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes,
                        color="0.4")
                continue
            for model, label in ROBUSTNESS_MODELS:
                for aligned, refined, ls, fit in _ROBUSTNESS_FITS:
                    m = sub[(sub["model"] == model) & (sub["align"] == aligned)
                            & (sub["refine"] == refined)]
                    if m.empty:
                        continue
                    med = m.groupby("level")["si_sdr"].median().sort_index()
                    ax.plot(med.index.to_numpy() * factor, med.to_numpy(), ls, marker="o",
                            color=palette[label], ms=4,
                            label=label if fit == "as given" else f"{label}, {fit}")
                    counts[f"{kind}/{model}/{fit}"] = int(m.groupby("level").size().min())
        axes[0].set_ylabel("median SI-SDR (dB)")
        handles, names = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, names, loc="outside lower center", ncol=min(len(handles), 7),
                       frameon=False)
        fig.suptitle("Target SI-SDR with an imperfect score")
    fig.guitarsep_meta = {"figure": "robustness", "models": labels,
                          "n_clips_per_point": counts}
    return fig


def save_figure(fig: plt.Figure, path: str | Path, provenance: Mapping | None = None) -> Path:
    """Write ``fig`` to ``path`` (PNG, 150 dpi) and ``<path without suffix>.json`` with
    ``provenance`` plus what the figure drew (setting, scenarios, model labels, clips per box).
    Returns the PNG path."""
    from guitarsep.io import write_json_atomic

    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, metadata={"Software": f"matplotlib {matplotlib.__version__}"})
    record = {"image": path.name, **getattr(fig, "guitarsep_meta", {}),
              "provenance": dict(provenance or {})}
    write_json_atomic(path.with_suffix(".json"), record)
    return path


# --------------------------------------------------------------------------------------------
# The figures stage (04_figures.ipynb, `guitarsep figures`, `make figures`)
# --------------------------------------------------------------------------------------------
FIGURE_FUNCTIONS = {"low_res": plot_low_res, "modern": plot_modern, "unseen": plot_unseen}


def write_figures(df: pd.DataFrame, out_dir: str | Path, provenance: Mapping, *,
                  n_boot: int = 1000, seed: int = 0,
                  general: pd.DataFrame | None = None) -> dict[str, Path]:
    """Draw the three figures from the results table ``df`` into ``out_dir`` (PNG + JSON
    sidecar each), ``generalization.png`` when the table of ``run_generalization`` is given
    as ``general``, plus ``provenance.json`` and ``summary.md``
    (:func:`guitarsep.evaluation.summary.summary_markdown`, its link to docs/method.md relative
    to ``out_dir``). Returns name -> path."""
    from guitarsep.config import find_root
    from guitarsep.evaluation.summary import summary_markdown
    from guitarsep.io import write_json_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, plot in FIGURE_FUNCTIONS.items():
        fig = plot(df)
        paths[name] = save_figure(fig, out_dir / f"{name}.png", provenance)
        plt.close(fig)
    if general is not None:
        fig = plot_generalization(df, general)
        paths["generalization"] = save_figure(fig, out_dir / "generalization.png", provenance)
        plt.close(fig)
    write_json_atomic(out_dir / "provenance.json", dict(provenance))
    method_doc = Path(os.path.relpath(find_root(out_dir) / "docs" / "method.md", out_dir))
    summary = summary_markdown(df, n_boot=n_boot, seed=seed, method_doc=method_doc.as_posix())
    header = (f"# Results summary (profile `{provenance.get('profile', '?')}`)\n\n"
              "Generated from `scores.csv` by `guitarsep.evaluation.figures.write_figures`; "
              f"commit `{provenance.get('commit', '?')}`, "
              f"device: {provenance.get('device', '?')}.\n\n")
    (out_dir / "summary.md").write_text(header + summary)
    paths["summary"] = out_dir / "summary.md"
    return paths
