"""Tests for guitarsep.evaluation.figures (each figure from a small synthetic results table),
guitarsep.evaluation.summary (the markdown report) and guitarsep.evaluation.paper."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from guitarsep.evaluation import figures as F  # noqa: E402
from guitarsep.evaluation import paper as P  # noqa: E402
from guitarsep.evaluation import summary as S  # noqa: E402
from guitarsep.evaluation.metrics import RESULT_COLUMNS, medians_table  # noqa: E402
from guitarsep.vocabulary import SCENARIO_COMBINATIONS  # noqa: E402


def results(models_by_setting: dict, scenarios=("seen", "a", "b", "c", "d"), n=6, seed=0,
            offset: dict | None = None) -> pd.DataFrame:
    """Synthetic tidy table; ``offset[model]`` shifts that model's SI-SDR."""
    rng = np.random.default_rng(seed)
    offset = offset or {}
    noise = {}
    rows = []
    for setting, models in models_by_setting.items():
        for sc in scenarios:
            for comb in SCENARIO_COMBINATIONS[sc]:
                for i in range(n):
                    cid = f"{sc}-{comb}-{i:03d}"
                    base = noise.setdefault((setting, cid), rng.normal(4.0, 3.0))
                    for m in models:
                        rows.append(dict(model=m, setting=setting, scenario=sc,
                                         combination=comb, clip_id=cid, target_timbre="0",
                                         other_timbre="1", si_sdr=base + offset.get(m, 0.0),
                                         sdr=np.nan, sir=np.nan, sar=np.nan))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


ALL = {"low_res": ["si_umx_soft", "si_unet_soft", "si_cnn"],
       "modern": ["si_umx_soft", "si_umx_binary", "umx_blind", "si_unet_soft",
                  "si_unet_binary", "oracle_irm", "score_only", "mixture"]}


@pytest.mark.parametrize("name", ["low_res", "modern", "unseen"])
def test_each_figure_saves_png_and_json(tmp_path, name):
    df = results(ALL)
    fig = getattr(F, f"plot_{name}")(df)
    png = F.save_figure(fig, tmp_path / f"{name}.png", {"profile": "test", "seed": 1})
    assert png.is_file() and png.stat().st_size > 10_000
    side = json.loads((tmp_path / f"{name}.json").read_text())
    assert side["provenance"] == {"profile": "test", "seed": 1}
    assert side["image"] == f"{name}.png"
    axes = fig.get_axes()
    assert len(axes) == (4 if name == "unseen" else 1)
    for ax in axes:
        assert ax.get_ylabel() == "SI-SDR (dB)"
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        expected = {"low_res": ["SI-Open-unmix", "SI-U-Net", "baseline CNN"],
                    "modern": ["Open-unmix-Soft", "Open-unmix-Binary", "UNet-Soft",
                               "UNet-Binary"],
                    "unseen": ["Soft", "Binary", "Blind"]}[name]
        assert labels == expected
    if name == "unseen":
        ticks = [[t.get_text() for t in ax.get_xticklabels()] for ax in axes]
        assert ticks[0] == ["ag+ag", "ag+eg", "eg+eg"] and ticks[3] == ["ag+ag", "eg+eg"]
        assert side["n_clips"]["d"]["Soft"] == {"ag+ag": 6, "eg+eg": 6}
    else:
        assert [t.get_text() for t in axes[0].get_xticklabels()] == ["ag+ag", "ag+eg", "eg+eg"]
    matplotlib.pyplot.close(fig)


def test_missing_models_and_empty_table(tmp_path):
    few = results({"modern": ["si_umx_soft"]}, scenarios=("seen", "c"), n=2)
    for fn in (F.plot_low_res, F.plot_modern, F.plot_unseen):
        fig = fn(few)
        F.save_figure(fig, tmp_path / f"{fn.__name__}.png", {})
        matplotlib.pyplot.close(fig)
    fig = F.plot_modern(few)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["Open-unmix-Soft"]
    matplotlib.pyplot.close(fig)
    empty = pd.DataFrame(columns=list(RESULT_COLUMNS))
    fig = F.plot_unseen(empty)
    assert "no results" in fig.axes[0].texts[0].get_text()
    matplotlib.pyplot.close(fig)
    assert "n/a" in S.summary_markdown(empty)


def test_summary_markdown_computes_from_data():
    df = results(ALL, offset={"si_umx_soft": 2.0, "si_umx_binary": 1.0, "umx_blind": -1.0,
                              "si_cnn": 0.5, "si_unet_soft": 0.0, "si_unet_binary": -1.0,
                              "oracle_irm": 5.0, "mixture": -6.0}, n=8)
    md = S.summary_markdown(df, n_boot=50)
    # paper values are shown beside ours
    assert "| low_res.png | seen | SI-Open-unmix |" in md and "| 3.1 |" in md
    assert "-4.3" in md
    # the orderings hold on this table (offsets chosen so), and are not typed in
    assert "ours **fails**" not in md
    assert md.count("ours **holds**") == 3 + 3 + 3 + 11 + 5
    # oracle gap = the offset difference, computed from the data
    assert "median per-clip gap oracle − soft = 3.0 dB" in md
    # flip an ordering: the check notices
    flipped = df.copy()
    flipped.loc[flipped.model == "umx_blind", "si_sdr"] += 10
    md2 = S.summary_markdown(flipped, n_boot=50)
    assert "unseen: soft > blind, c, ag+ag: ours **fails**" in md2


def test_paper_medians_table():
    p = P.PAPER_MEDIANS
    assert p["low_res"]["seen"]["si_umx_soft"] == {"ag+ag": 3.1, "ag+eg": 8.2, "eg+eg": 3.5}
    assert p["modern"]["seen"]["si_unet_binary"] == {"ag+ag": 2.2, "ag+eg": 5.1, "eg+eg": 2.1}
    assert p["modern"]["c"]["umx_blind"] == {"ag+eg": -4.3}
    assert p["modern"]["d"]["si_umx_binary"] == {"ag+ag": -1.0}


def test_verdict_counts_come_from_data():
    # one box per model (modern, seen, ag+ag): Open-unmix soft > binary, UNet soft < binary
    df = results({"modern": ["si_umx_soft", "si_umx_binary", "si_unet_soft", "si_unet_binary"]},
                 scenarios=("seen",), n=5,
                 offset={"si_umx_soft": 3.0, "si_unet_soft": -3.0})
    df = df[df.combination == "ag+ag"]
    med = medians_table(df, n_boot=20)
    checks = S.check_orderings(S.median_cells(med), S.paper_lookup(P.PAPER_MEDIANS))
    by_desc = {c.ordering.desc: c for c in checks if c.evaluable}
    assert set(by_desc) == {"modern: Open-unmix soft >= binary", "modern: UNet soft >= binary"}
    assert by_desc["modern: Open-unmix soft >= binary"].holds
    assert not by_desc["modern: UNet soft >= binary"].holds
    assert by_desc["modern: UNet soft >= binary"].paper_holds      # the paper: 5.7 vs 2.2
    n_all = sum(len(SCENARIO_COMBINATIONS[sc]) for o in P.PAPER_ORDERINGS for sc in o.scenarios)
    counts = S.count_verdicts(checks)
    assert (counts.holds, counts.fails, counts.not_evaluable) == (1, 1, n_all - 2)
    md = S.summary_markdown(df, n_boot=20)
    assert f"Orderings: 1 hold, 1 fail, {n_all - 2} not evaluable;" in md
    assert "modern: UNet soft >= binary, seen, ag+ag: ours **fails** (" in md
    # counts read the rows' fields, not text: hand-made rows
    o = P.PAPER_ORDERINGS[0]
    rows = [S.OrderingCheck(o, "seen", "ag+ag", (3.0, 2.0, 1.0), None, True, False, True),
            S.OrderingCheck(o, "seen", "ag+eg", (1.0, 2.0, 3.0), None, False, False, False),
            S.OrderingCheck(o, "seen", "eg+eg", None, (3.1, 1.2, -2.5), False, True, False)]
    assert S.count_verdicts(rows) == S.VerdictCounts(holds=1, fails=1, not_evaluable=1,
                                                     overlapping=1)
    assert [r.verdict for r in rows] == ["holds", "fails", "n/a"]


def test_summary_links_method_doc(tmp_path, monkeypatch):
    df = results({"modern": ["si_umx_soft", "oracle_irm"]}, scenarios=("seen",), n=2)
    md = S.summary_markdown(df, n_boot=10)
    assert "METHOD.md" not in md
    assert "([docs/method.md](docs/method.md#the-papers-figures-and-numbers))" in md
    # write_figures links docs/method.md relative to the folder it writes into
    monkeypatch.setenv("GUITARSEP_ROOT", str(tmp_path))
    paths = F.write_figures(df, tmp_path / "figures", {"profile": "test"}, n_boot=10)
    text = paths["summary"].read_text()
    assert "](../docs/method.md#the-papers-figures-and-numbers)" in text
    assert text.split("\n\n", 2)[2] == S.summary_markdown(
        df, n_boot=10, method_doc="../docs/method.md")


def test_generalization_figure_counts_every_family(tmp_path):
    """generalization.png: corpus rows from scores.csv, out-of-family rows and the shipped
    model's rows from the generalization table; counts per family come from the data."""
    scores = results(ALL)
    oof = results({"modern": ["si_umx_soft", "si_umx_binary", "umx_blind", "shipped-si_umx_prior",
                              "score_only", "oracle_irm", "mixture"]},
                  scenarios=("seen",), n=4, seed=1)
    general = pd.concat([oof.assign(scenario=fam, combination=pair)
                         for fam in ("oof_sample", "oof_fm", "oof_karplus")
                         for pair in ("diff",)], ignore_index=True)
    shipped_corpus = results({"modern": ["shipped-si_umx_prior"]}, n=3, seed=2)
    general = pd.concat([general, shipped_corpus], ignore_index=True)
    frame = F.generalization_frame(scores, general)
    assert "mixture" not in set(frame.model) and "si_unet_soft" not in set(frame.model)
    assert set(frame.family) == {"seen", "unseen soundfont", "csound samples", "OPL3 FM",
                                 "Karplus-Strong"}
    fig = F.plot_generalization(scores, general)
    F.save_figure(fig, tmp_path / "generalization.png", {"profile": "test"})
    meta = json.loads((tmp_path / "generalization.json").read_text())
    n = meta["n_clips"]
    # seen: 3 combinations x 6 clips from scores.csv; shipped: 3 x 3 from its corpus rows
    assert n["Soft"]["seen"] == 18 and n["Shipped (score NMF)"]["seen"] == 9
    # unseen soundfont = scenarios c (3 combinations) + d (2): 5 x 6 clips
    assert n["Blind"]["unseen soundfont"] == 30
    assert n["Oracle ratio mask"]["OPL3 FM"] == 3 * 4
    # write_figures draws it only when the table is given
    paths = F.write_figures(scores, tmp_path / "w", {"profile": "test"}, n_boot=50)
    assert "generalization" not in paths
    paths = F.write_figures(scores, tmp_path / "w", {"profile": "test"}, n_boot=50,
                            general=general)
    assert paths["generalization"].is_file()
