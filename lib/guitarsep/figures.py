"""The paper's three result figures, drawn only from the tidy results table.

Used by 04_figures.ipynb and ``guitarsep figures``. Input: the per-clip table of
:func:`guitarsep.metrics.evaluate_clips` (columns model, setting, scenario, combination,
clip_id, target_timbre, other_timbre, si_sdr, sdr, sir, sar). Nothing here reads audio,
models or the corpus.

- :func:`plot_low_res`  -> ``figures/low_res.png``: SI-Open-unmix, SI-U-Net, baseline CNN
  (setting ``low_res``, scenario ``seen``).
- :func:`plot_modern`   -> ``figures/modern.png``: Open-unmix / UNet, soft / binary score
  (setting ``modern``, scenario ``seen``).
- :func:`plot_unseen`   -> ``figures/unseen.png``: 2 x 2 panels, scenarios a-d, Soft / Binary /
  Blind Open-unmix (setting ``modern``); panel d has ag+ag and eg+eg only.
- :func:`plot_robustness` -> ``figures/robustness.png`` (06_robustness.ipynb): median SI-SDR
  against score errors, from the table of ``guitarsep.robustness.run_robustness``.
- :func:`save_figure`   PNG (150 dpi) + sidecar JSON with provenance and per-box counts.
- :func:`summary_markdown` our medians beside the paper's, and the paper's orderings checked
  on our data.

Design follows the paper's figures (``seed/*.png``): seaborn boxplots of per-clip target
SI-SDR, x = combination (ag+ag, ag+eg, eg+eg), hue = model, seaborn's default colours in a
fixed order, whiskers at 1.5 IQR and outliers not drawn (the paper's figures show none), title
"Target SI-SDR". Models or cells missing from the table are skipped (an empty slot stays in its
place on the x axis); a figure with no data at all says so in its axes.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = [
    "plot_low_res", "plot_modern", "plot_unseen", "save_figure", "summary_markdown",
    "PAPER_MEDIANS", "COMBINATIONS", "LOW_RES_MODELS", "MODERN_MODELS", "UNSEEN_MODELS",
    "SCENARIO_TITLES", "plot_robustness", "ROBUSTNESS_PANELS", "ROBUSTNESS_MODELS",
]

COMBINATIONS: tuple[str, ...] = ("ag+ag", "ag+eg", "eg+eg")
#: (model name in the results table, legend label), in legend order.
LOW_RES_MODELS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "SI-Open-unmix"), ("si_unet_soft", "SI-U-Net"), ("si_cnn", "baseline CNN"))
MODERN_MODELS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "Open-unmix-Soft"), ("si_umx_binary", "Open-unmix-Binary"),
    ("si_unet_soft", "UNet-Soft"), ("si_unet_binary", "UNet-Binary"))
UNSEEN_MODELS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "Soft"), ("si_umx_binary", "Binary"), ("umx_blind", "Blind"))
UNSEEN_SCENARIOS: tuple[str, ...] = ("a", "b", "c", "d")
SCENARIO_TITLES: dict[str, str] = {
    "seen": "both timbres seen",
    "a": "(a) target seen, other unseen",
    "b": "(b) target unseen, other seen",
    "c": "(c) both unseen, different",
    "d": "(d) both unseen, same timbre",
}
SCENARIO_COMBINATIONS: dict[str, tuple[str, ...]] = {
    "seen": COMBINATIONS, "a": COMBINATIONS, "b": COMBINATIONS, "c": COMBINATIONS,
    "d": ("ag+ag", "eg+eg"),
}

#: Medians read off the paper's figures (METHOD.md), dB:
#: ``PAPER_MEDIANS[setting][scenario][model][combination]``. Unseen: only the examples the
#: paper's text quotes.
PAPER_MEDIANS: dict = {
    "low_res": {"seen": {
        "si_umx_soft": {"ag+ag": 3.1, "ag+eg": 8.2, "eg+eg": 3.5},
        "si_unet_soft": {"ag+ag": -2.5, "ag+eg": 1.0, "eg+eg": -1.1},
        "si_cnn": {"ag+ag": 1.2, "ag+eg": 3.9, "eg+eg": 1.5},
    }},
    "modern": {
        "seen": {
            "si_umx_soft": {"ag+ag": 6.2, "ag+eg": 11.0, "eg+eg": 5.8},
            "si_umx_binary": {"ag+ag": 5.3, "ag+eg": 10.5, "eg+eg": 5.8},
            "si_unet_soft": {"ag+ag": 5.7, "ag+eg": 9.2, "eg+eg": 5.1},
            "si_unet_binary": {"ag+ag": 2.2, "ag+eg": 5.1, "eg+eg": 2.1},
        },
        "a": {
            "si_umx_soft": {"ag+ag": 3.7, "ag+eg": 9.0},
            "si_umx_binary": {"ag+ag": -1.5, "ag+eg": 8.3},
            "umx_blind": {"ag+ag": 2.0, "ag+eg": 10.8},
        },
        "c": {
            "si_umx_soft": {"ag+eg": 5.8},
            "si_umx_binary": {"ag+eg": 1.3},
            "umx_blind": {"ag+eg": -4.3},
        },
        "d": {
            "si_umx_soft": {"ag+ag": 1.5},
            "si_umx_binary": {"ag+ag": -1.0},
            "umx_blind": {"ag+ag": -2.8},
        },
    },
}

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


#: Robustness panels: perturbation kind -> (panel title, x label, factor from level to x).
ROBUSTNESS_PANELS: dict[str, tuple[str, str, float]] = {
    "onset_jitter": ("Onset jitter", "max. shift per note (ms)", 1000.0),
    "global_offset": ("Global offset", "score late by (ms)", 1000.0),
    "missing_notes": ("Missing notes", "notes removed (%)", 100.0),
    "extra_notes": ("Extra notes", "notes added (%)", 100.0),
    "wrong_octave": ("Wrong octave", "notes moved ±12 (%)", 100.0),
}
ROBUSTNESS_MODELS: tuple[tuple[str, str], ...] = (
    ("si_umx_soft", "Open-unmix-Soft"), ("si_umx_binary", "Open-unmix-Binary"))


def plot_robustness(df: pd.DataFrame) -> plt.Figure:
    """``figures/robustness.png`` (06_robustness.ipynb): median target SI-SDR against the size
    of each score error, one panel per kind; colour = model, solid = score as given, dashed =
    after DTW alignment. Level 0 of every panel is the clean score. Input: the table of
    :func:`guitarsep.robustness.run_robustness`."""
    need = {"kind", "level", "align", "model", "si_sdr", "clip_id"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"robustness table lacks columns {sorted(missing)}")
    palette = _palette(ROBUSTNESS_MODELS)
    labels = dict(ROBUSTNESS_MODELS)
    clean = df[df["kind"] == "none"]
    counts = {}
    with plt.rc_context({**_RC, "axes.titlesize": 13, "axes.labelsize": 11,
                         "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10}):
        fig, axes = plt.subplots(1, len(ROBUSTNESS_PANELS), figsize=(17, 4.2), sharey=True,
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
                for aligned, ls in ((False, "-"), (True, "--")):
                    m = sub[(sub["model"] == model) & (sub["align"] == aligned)]
                    if m.empty:
                        continue
                    med = m.groupby("level")["si_sdr"].median().sort_index()
                    ax.plot(med.index.to_numpy() * factor, med.to_numpy(), ls, marker="o",
                            color=palette[label], ms=4,
                            label=f"{label}{', aligned' if aligned else ''}")
                    counts[f"{kind}/{model}/{'aligned' if aligned else 'as given'}"] = int(
                        m.groupby("level").size().min())
        axes[0].set_ylabel("median SI-SDR (dB)")
        handles, names = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, names, loc="outside lower center", ncol=4, frameon=False)
        fig.suptitle("Target SI-SDR with an imperfect score")
    fig.guitarsep_meta = {"figure": "robustness", "models": labels,
                          "n_clips_per_point": counts}
    return fig


def save_figure(fig: plt.Figure, path: str | Path, provenance: Mapping | None = None) -> Path:
    """Write ``fig`` to ``path`` (PNG, 150 dpi) and ``<path without suffix>.json`` with
    ``provenance`` plus what the figure drew (setting, scenarios, model labels, clips per box).
    Returns the PNG path."""
    from guitarsep.provenance import write_json_atomic

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
# Markdown summary
# --------------------------------------------------------------------------------------------
def _fmt(x, ci=None) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    s = f"{x:.1f}"
    if ci is not None and all(np.isfinite(ci)):
        s += f" [{ci[0]:.1f}, {ci[1]:.1f}]"
    return s


def _ours(med: pd.DataFrame) -> dict:
    return {(r.setting, r.scenario, r.model, r.combination): r.si_sdr
            for r in med.itertuples()}


def _paper_lookup(paper: Mapping) -> dict:
    out = {}
    for setting, scs in paper.items():
        for sc, models in scs.items():
            for m, combos in models.items():
                for c, v in combos.items():
                    out[(setting, sc, m, c)] = float(v)
    return out


def _chain(lookup: dict, setting: str, scenario: str, combo: str, models: list[str],
           strict: bool) -> tuple[str, str]:
    """Check ``models[0] > models[1] > ...`` (``>=`` unless strict). Returns (verdict, values)."""
    vals = [lookup.get((setting, scenario, m, combo)) for m in models]
    if any(v is None or not np.isfinite(v) for v in vals):
        return "n/a", ""
    ok = all((a > b) if strict else (a >= b) for a, b in zip(vals, vals[1:]))
    return ("holds" if ok else "fails"), " vs ".join(f"{v:.1f}" for v in vals)


def summary_markdown(df: pd.DataFrame, paper_medians: Mapping | None = None, *,
                     n_boot: int = 1000, seed: int = 0) -> str:
    """Markdown: our median SI-SDR per box (with bootstrap 95 % interval and n) beside the
    paper's, the paper's orderings checked on our medians (and on the paper's own numbers where
    it quotes them), and the gap of SI-Open-unmix-Soft to the oracle IRM. Everything is
    computed from ``df``; nothing is typed in except the paper's medians."""
    from guitarsep.metrics import medians_table

    paper = PAPER_MEDIANS if paper_medians is None else paper_medians
    med = medians_table(df, n_boot=n_boot, seed=seed)
    ours = _ours(med)
    ci = {(r.setting, r.scenario, r.model, r.combination): (r.si_sdr_lo, r.si_sdr_hi, r.n)
          for r in med.itertuples()}
    pap = _paper_lookup(paper)
    lines = ["## Median target SI-SDR (dB): ours vs the paper", "",
             "Ours: median over clips [bootstrap 95 % interval] (n clips); paper: read off its "
             "figures (METHOD.md). – = not available.", ""]

    groups = [("low_res.png", "low_res", ["seen"], LOW_RES_MODELS),
              ("modern.png", "modern", ["seen"], MODERN_MODELS),
              ("unseen.png", "modern", list(UNSEEN_SCENARIOS), UNSEEN_MODELS)]
    header = "| figure | scenario | model | " + " | ".join(
        f"{c} ours | {c} paper" for c in COMBINATIONS) + " |"
    lines += [header, "|" + "---|" * (3 + 2 * len(COMBINATIONS))]
    for fig_name, setting, scenarios, models in groups:
        for sc in scenarios:
            for m, label in models:
                cells = []
                any_data = False
                for c in COMBINATIONS:
                    k = (setting, sc, m, c)
                    if c not in SCENARIO_COMBINATIONS[sc]:
                        cells += ["", ""]
                        continue
                    if k in ours:
                        lo, hi, n = ci[k]
                        cells.append(f"{_fmt(ours[k], (lo, hi))} ({n})")
                        any_data = True
                    else:
                        cells.append("–")
                    cells.append(_fmt(pap.get(k)))
                if any_data or any((setting, sc, m, c) in pap for c in COMBINATIONS):
                    lines.append(f"| {fig_name} | {sc} | {label} | " + " | ".join(cells) + " |")

    # references, when present
    refs = [r for r in ("oracle_irm", "score_only", "mixture") if r in set(df["model"])] \
        if not df.empty else []
    if refs:
        lines += ["", "References (same Wiener/iSTFT path; no paper values):", "",
                  "| setting | scenario | reference | " + " | ".join(COMBINATIONS) + " |",
                  "|" + "---|" * (3 + len(COMBINATIONS))]
        for (setting, sc), _ in med[med["model"].isin(refs)].groupby(
                ["setting", "scenario"], sort=True):
            for r in refs:
                vals = [ours.get((setting, sc, r, c)) for c in COMBINATIONS]
                if all(v is None for v in vals):
                    continue
                lines.append(f"| {setting} | {sc} | {r} | "
                             + " | ".join(_fmt(v) if v is not None else "–" for v in vals)
                             + " |")

    # orderings
    lines += ["", "## The paper's orderings, checked on our medians", "",
              "Each line: ours (values) / paper (values where it quotes them). "
              "'n/a' = a box is missing.", ""]

    def overlap(setting, sc, c, models):
        ivs = [ci.get((setting, sc, m, c)) for m in models]
        if any(iv is None or not np.all(np.isfinite(iv[:2])) for iv in ivs):
            return False
        return any(max(a[0], b[0]) <= min(a[1], b[1]) for a, b in zip(ivs, ivs[1:]))

    def check(desc, setting, sc, combos, models, strict):
        out = []
        for c in combos:
            v_ours, s_ours = _chain(ours, setting, sc, c, models, strict)
            v_pap, s_pap = _chain(pap, setting, sc, c, models, strict)
            paper_part = f"; paper: {v_pap} ({s_pap})" if v_pap != "n/a" else ""
            ov = ", 95 % intervals overlap" if v_ours != "n/a" and overlap(
                setting, sc, c, models) else ""
            out.append(f"- {desc}, {sc}, {c}: ours **{v_ours}**"
                       + (f" ({s_ours}{ov})" if s_ours else "") + paper_part)
        return out

    for sc in ["seen"]:
        lines += check("low_res: SI-UMX > CNN > SI-U-Net", "low_res", sc, COMBINATIONS,
                       ["si_umx_soft", "si_cnn", "si_unet_soft"], True)
        lines += check("modern: Open-unmix soft >= binary", "modern", sc, COMBINATIONS,
                       ["si_umx_soft", "si_umx_binary"], False)
        lines += check("modern: UNet soft >= binary", "modern", sc, COMBINATIONS,
                       ["si_unet_soft", "si_unet_binary"], False)
    for sc in UNSEEN_SCENARIOS:
        lines += check("unseen: soft >= binary", "modern", sc, SCENARIO_COMBINATIONS[sc],
                       ["si_umx_soft", "si_umx_binary"], False)
    for sc in ("c", "d"):
        lines += check("unseen: soft > blind", "modern", sc, SCENARIO_COMBINATIONS[sc],
                       ["si_umx_soft", "umx_blind"], True)

    # tally
    verdicts = [ln for ln in lines if ln.startswith("- ")]
    n_hold = sum("ours **holds**" in ln for ln in verdicts)
    n_fail = sum("ours **fails**" in ln for ln in verdicts)
    n_weak = sum("intervals overlap" in ln for ln in verdicts)
    lines += ["", f"Orderings: {n_hold} hold, {n_fail} fail, "
              f"{len(verdicts) - n_hold - n_fail} not evaluable; in {n_weak} of the evaluable "
              "comparisons the bootstrap intervals of adjacent boxes overlap."]

    # oracle gap
    lines += ["", "## Gap of SI-Open-unmix-Soft to the oracle IRM", ""]
    gap_lines = []
    if not df.empty:
        for setting in sorted(set(df["setting"])):
            a = df[(df["setting"] == setting) & (df["model"] == "si_umx_soft")]
            b = df[(df["setting"] == setting) & (df["model"] == "oracle_irm")]
            if a.empty or b.empty:
                continue
            paired = a.merge(b, on=["clip_id", "scenario", "combination"],
                             suffixes=("_m", "_o"))
            if paired.empty:
                continue
            d = paired["si_sdr_o"] - paired["si_sdr_m"]
            gap_lines.append(f"- {setting}, all scenarios: median per-clip gap oracle − soft "
                             f"= {np.median(d):.1f} dB over {len(d)} clips "
                             f"(oracle median {paired['si_sdr_o'].median():.1f}, "
                             f"soft median {paired['si_sdr_m'].median():.1f})")
            for (sc, c), g in paired.groupby(["scenario", "combination"], sort=True):
                dd = g["si_sdr_o"] - g["si_sdr_m"]
                gap_lines.append(f"  - {sc}, {c}: {np.median(dd):.1f} dB (n={len(dd)})")
    lines += gap_lines or ["- n/a (si_umx_soft and oracle_irm are not both in the table)"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The figures stage (04_figures.ipynb, `guitarsep figures`, `make figures`)
# --------------------------------------------------------------------------------------------
FIGURE_FUNCTIONS = {"low_res": plot_low_res, "modern": plot_modern, "unseen": plot_unseen}


def write_figures(df: pd.DataFrame, out_dir: str | Path, provenance: Mapping, *,
                  n_boot: int = 1000, seed: int = 0) -> dict[str, Path]:
    """Draw the three figures from the results table ``df`` into ``out_dir`` (PNG + JSON
    sidecar each), plus ``provenance.json`` and ``summary.md``. Returns name -> path."""
    from guitarsep.provenance import write_json_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, plot in FIGURE_FUNCTIONS.items():
        fig = plot(df)
        paths[name] = save_figure(fig, out_dir / f"{name}.png", provenance)
        plt.close(fig)
    write_json_atomic(out_dir / "provenance.json", dict(provenance))
    summary = summary_markdown(df, n_boot=n_boot, seed=seed)
    header = (f"# Results summary (profile `{provenance.get('profile', '?')}`)\n\n"
              f"Generated from `scores.csv` by `guitarsep.figures.write_figures`; commit "
              f"`{provenance.get('commit', '?')}`, device: {provenance.get('device', '?')}.\n\n")
    (out_dir / "summary.md").write_text(header + summary)
    paths["summary"] = out_dir / "summary.md"
    return paths
