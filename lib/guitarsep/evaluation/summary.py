"""The markdown report beside the figures (``summary.md``): ours against the paper, as data.

Used by :func:`guitarsep.evaluation.figures.write_figures` (04_figures.ipynb, ``guitarsep
figures``). Input: the tidy per-clip results table (see :mod:`guitarsep.evaluation.figures`).
Three steps, each a small pure function:

- compute: :func:`median_rows` (our median per box with its bootstrap 95 % interval and n,
  beside the paper's), :func:`reference_rows` (oracle IRM, score-only mask, mixture),
  :func:`check_orderings` (each ordering the paper claims, on our medians and on the paper's
  own numbers: :class:`OrderingCheck` with ``holds``), :func:`oracle_gaps` (per-clip gap of
  SI-Open-unmix-Soft to the oracle IRM); :func:`compute_summary` gathers them in a
  :class:`Summary`.
- count: :func:`count_verdicts` tallies the ordering checks (:class:`VerdictCounts`).
- render: :func:`render_summary` writes the markdown; :func:`summary_markdown` does all three.

Nothing is typed in except the paper's numbers and claims (:mod:`guitarsep.evaluation.paper`;
where they come from: docs/method.md#the-papers-figures-and-numbers).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from guitarsep.evaluation.paper import PAPER_MEDIANS, PAPER_ORDERINGS, Ordering
from guitarsep.vocabulary import (COMBINATIONS, LOW_RES_MODELS, MODERN_MODELS, REFERENCES,
                                  SCENARIO_COMBINATIONS, UNSEEN_MODELS, UNSEEN_SCENARIOS)

__all__ = [
    "Box", "MedianRow", "ReferenceRow", "OrderingCheck", "VerdictCounts", "GapCell", "OracleGap",
    "Summary", "FIGURE_GROUPS", "PAPER_SECTION", "median_cells", "paper_lookup", "median_rows",
    "reference_rows", "check_orderings", "count_verdicts", "oracle_gaps", "compute_summary",
    "render_summary", "summary_markdown",
]

#: A box of a figure: (setting, scenario, model, combination).
Key = tuple[str, str, str, str]
#: (figure file, setting, scenarios, (model, label) pairs) of each row group of the medians table.
FIGURE_GROUPS = (("low_res.png", "low_res", ("seen",), LOW_RES_MODELS),
                 ("modern.png", "modern", ("seen",), MODERN_MODELS),
                 ("unseen.png", "modern", UNSEEN_SCENARIOS, UNSEEN_MODELS))
#: Section of the method document that gives the paper's numbers.
PAPER_SECTION = "the-papers-figures-and-numbers"


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """One combination of a row: our median (None: not in our table) with its bootstrap 95 %
    interval and clip count, beside the paper's median (None: not quoted)."""

    ours: float | None
    lo: float
    hi: float
    n: int
    paper: float | None


@dataclass(frozen=True)
class MedianRow:
    """One model in one scenario of one figure; ``boxes`` follow ``COMBINATIONS``, None where
    the scenario has no such combination."""

    figure: str
    scenario: str
    label: str
    boxes: tuple[Box | None, ...]


@dataclass(frozen=True)
class OrderingCheck:
    """One claimed ordering in one scenario and combination. ``ours`` / ``paper``: the medians
    in the claim's model order, None when a box is missing. ``holds`` is False when ours is
    missing (see ``evaluable``); ``overlap``: some adjacent 95 % intervals of ours overlap."""

    ordering: Ordering
    scenario: str
    combination: str
    ours: tuple[float, ...] | None
    paper: tuple[float, ...] | None
    holds: bool
    paper_holds: bool
    overlap: bool

    @property
    def evaluable(self) -> bool:
        return self.ours is not None

    @property
    def verdict(self) -> str:
        return "n/a" if not self.evaluable else ("holds" if self.holds else "fails")


@dataclass(frozen=True)
class VerdictCounts:
    holds: int
    fails: int
    not_evaluable: int
    overlapping: int


@dataclass(frozen=True)
class GapCell:
    scenario: str
    combination: str
    gap: float
    n: int


@dataclass(frozen=True)
class OracleGap:
    """Per-clip oracle IRM minus SI-Open-unmix-Soft SI-SDR in one setting: median over all
    paired clips, the two medians, and the median per (scenario, combination)."""

    setting: str
    gap: float
    n: int
    oracle_median: float
    soft_median: float
    cells: tuple[GapCell, ...]


@dataclass(frozen=True)
class Summary:
    medians: tuple[MedianRow, ...]
    references: tuple[str, ...]
    reference_rows: tuple[ReferenceRow, ...]
    orderings: tuple[OrderingCheck, ...]
    oracle_gaps: tuple[OracleGap, ...]


# --------------------------------------------------------------------------------------------
# Compute
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceRow:
    """Our medians of a reference (oracle_irm, score_only, mixture), one per combination."""

    setting: str
    scenario: str
    reference: str
    values: tuple[float | None, ...]


def median_cells(med: pd.DataFrame) -> dict[Key, tuple[float, float, float, int]]:
    """Box -> (median, lo, hi, n) from :func:`guitarsep.evaluation.metrics.medians_table`."""
    return {(r.setting, r.scenario, r.model, r.combination): (r.si_sdr, r.si_sdr_lo,
                                                              r.si_sdr_hi, r.n)
            for r in med.itertuples()}


def paper_lookup(paper: Mapping) -> dict[Key, float]:
    """Flatten ``PAPER_MEDIANS``-shaped nesting to box -> median."""
    return {(setting, sc, m, c): float(v)
            for setting, scs in paper.items() for sc, models in scs.items()
            for m, combos in models.items() for c, v in combos.items()}


def median_rows(cells: Mapping[Key, tuple], paper: Mapping[Key, float]) -> list[MedianRow]:
    """Rows of the ours-vs-paper table: every figure's models in every scenario it draws that
    have a median of ours or of the paper."""
    rows = []
    for fig_name, setting, scenarios, models in FIGURE_GROUPS:
        for sc in scenarios:
            for m, label in models:
                keys = [(setting, sc, m, c) for c in COMBINATIONS]
                boxes = tuple(
                    None if c not in SCENARIO_COMBINATIONS[sc]
                    else Box(*cells[k], paper=paper.get(k)) if k in cells
                    else Box(None, np.nan, np.nan, 0, paper=paper.get(k))
                    for c, k in zip(COMBINATIONS, keys))
                if any(b is not None and b.ours is not None for b in boxes) or any(
                        k in paper for k in keys):
                    rows.append(MedianRow(fig_name, sc, label, boxes))
    return rows


def reference_rows(med: pd.DataFrame, cells: Mapping[Key, tuple],
                   references: Sequence[str]) -> list[ReferenceRow]:
    """Our medians of the references, per (setting, scenario) in which any of them was run."""
    rows = []
    sub = med[med["model"].isin(list(references))]
    for (setting, sc), _ in sub.groupby(["setting", "scenario"], sort=True):
        for r in references:
            vals = tuple(cells[k][0] if (k := (setting, sc, r, c)) in cells else None
                         for c in COMBINATIONS)
            if any(v is not None for v in vals):
                rows.append(ReferenceRow(setting, sc, r, vals))
    return rows


def _chain(values: Mapping[Key, float], ordering: Ordering, sc: str, c: str):
    """The claim's medians in model order (None if one is missing) and whether they obey it."""
    vals = [values.get((ordering.setting, sc, m, c)) for m in ordering.models]
    if any(v is None or not np.isfinite(v) for v in vals):
        return None, False
    ok = all((a > b) if ordering.strict else (a >= b) for a, b in zip(vals, vals[1:]))
    return tuple(vals), ok


def _overlap(cells: Mapping[Key, tuple], ordering: Ordering, sc: str, c: str) -> bool:
    ivs = [cells.get((ordering.setting, sc, m, c)) for m in ordering.models]
    if any(iv is None or not np.all(np.isfinite(iv[1:3])) for iv in ivs):
        return False
    return any(max(a[1], b[1]) <= min(a[2], b[2]) for a, b in zip(ivs, ivs[1:]))


def check_orderings(cells: Mapping[Key, tuple], paper: Mapping[Key, float],
                    orderings: Sequence[Ordering] = PAPER_ORDERINGS) -> list[OrderingCheck]:
    """Each ordering in each of its scenarios and combinations, on our medians (``cells``, as
    from :func:`median_cells`) and on the paper's (``paper``, as from :func:`paper_lookup`)."""
    ours = {k: v[0] for k, v in cells.items()}
    checks = []
    for o in orderings:
        for sc in o.scenarios:
            for c in SCENARIO_COMBINATIONS[sc]:
                v_ours, ok = _chain(ours, o, sc, c)
                v_pap, ok_pap = _chain(paper, o, sc, c)
                overlap = v_ours is not None and _overlap(cells, o, sc, c)
                checks.append(OrderingCheck(o, sc, c, v_ours, v_pap, ok, ok_pap, overlap))
    return checks


def count_verdicts(checks: Sequence[OrderingCheck]) -> VerdictCounts:
    """How many orderings hold, fail or cannot be evaluated on our data, and in how many
    evaluable ones adjacent bootstrap intervals overlap."""
    holds = sum(c.evaluable and c.holds for c in checks)
    fails = sum(c.evaluable and not c.holds for c in checks)
    return VerdictCounts(holds, fails, len(checks) - holds - fails,
                         sum(c.evaluable and c.overlap for c in checks))


def oracle_gaps(df: pd.DataFrame) -> list[OracleGap]:
    """Per setting: clips paired on (clip_id, scenario, combination), oracle_irm − si_umx_soft."""
    gaps = []
    for setting in ([] if df.empty else sorted(set(df["setting"]))):
        a = df[(df["setting"] == setting) & (df["model"] == "si_umx_soft")]
        b = df[(df["setting"] == setting) & (df["model"] == "oracle_irm")]
        if a.empty or b.empty:
            continue
        paired = a.merge(b, on=["clip_id", "scenario", "combination"], suffixes=("_m", "_o"))
        if paired.empty:
            continue
        d = paired["si_sdr_o"] - paired["si_sdr_m"]
        cells = tuple(GapCell(sc, c, np.median(g["si_sdr_o"] - g["si_sdr_m"]), len(g))
                      for (sc, c), g in paired.groupby(["scenario", "combination"], sort=True))
        gaps.append(OracleGap(setting, np.median(d), len(d), paired["si_sdr_o"].median(),
                              paired["si_sdr_m"].median(), cells))
    return gaps


def compute_summary(df: pd.DataFrame, paper_medians: Mapping | None = None, *,
                    n_boot: int = 1000, seed: int = 0,
                    orderings: Sequence[Ordering] = PAPER_ORDERINGS) -> Summary:
    """Everything ``summary.md`` reports, from ``df`` and the paper's medians (default
    :data:`~guitarsep.evaluation.paper.PAPER_MEDIANS`)."""
    from guitarsep.evaluation.metrics import medians_table

    med = medians_table(df, n_boot=n_boot, seed=seed)
    cells = median_cells(med)
    paper = paper_lookup(PAPER_MEDIANS if paper_medians is None else paper_medians)
    refs = () if df.empty else tuple(r for r in REFERENCES if r in set(df["model"]))
    return Summary(tuple(median_rows(cells, paper)), refs,
                   tuple(reference_rows(med, cells, refs)),
                   tuple(check_orderings(cells, paper, orderings)), tuple(oracle_gaps(df)))


# --------------------------------------------------------------------------------------------
# Render
# --------------------------------------------------------------------------------------------
def _fmt(x, ci=None) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    s = f"{x:.1f}"
    if ci is not None and all(np.isfinite(ci)):
        s += f" [{ci[0]:.1f}, {ci[1]:.1f}]"
    return s


def _median_lines(rows: Sequence[MedianRow], method_doc: str) -> list[str]:
    link = f"[docs/method.md]({method_doc}#{PAPER_SECTION})"
    lines = ["## Median target SI-SDR (dB): ours vs the paper", "",
             "Ours: median over clips [bootstrap 95 % interval] (n clips); paper: read off its "
             f"figures ({link}). – = not available.", "",
             "| figure | scenario | model | " + " | ".join(
                 f"{c} ours | {c} paper" for c in COMBINATIONS) + " |",
             "|" + "---|" * (3 + 2 * len(COMBINATIONS))]
    for row in rows:
        cells = []
        for b in row.boxes:
            if b is None:
                cells += ["", ""]
                continue
            cells.append("–" if b.ours is None else f"{_fmt(b.ours, (b.lo, b.hi))} ({b.n})")
            cells.append(_fmt(b.paper))
        lines.append(f"| {row.figure} | {row.scenario} | {row.label} | "
                     + " | ".join(cells) + " |")
    return lines


def _reference_lines(rows: Sequence[ReferenceRow]) -> list[str]:
    lines = ["", "References (same Wiener/iSTFT path; no paper values):", "",
             "| setting | scenario | reference | " + " | ".join(COMBINATIONS) + " |",
             "|" + "---|" * (3 + len(COMBINATIONS))]
    return lines + [f"| {r.setting} | {r.scenario} | {r.reference} | "
                    + " | ".join(_fmt(v) for v in r.values) + " |" for r in rows]


def _ordering_line(c: OrderingCheck) -> str:
    line = f"- {c.ordering.desc}, {c.scenario}, {c.combination}: ours **{c.verdict}**"
    if c.ours is not None:
        ov = ", 95 % intervals overlap" if c.overlap else ""
        line += f" ({' vs '.join(f'{v:.1f}' for v in c.ours)}{ov})"
    if c.paper is not None:
        verdict = "holds" if c.paper_holds else "fails"
        line += f"; paper: {verdict} ({' vs '.join(f'{v:.1f}' for v in c.paper)})"
    return line


def _ordering_lines(checks: Sequence[OrderingCheck]) -> list[str]:
    n = count_verdicts(checks)
    return (["", "## The paper's orderings, checked on our medians", "",
             "Each line: ours (values) / paper (values where it quotes them). "
             "'n/a' = a box is missing.", ""]
            + [_ordering_line(c) for c in checks]
            + ["", f"Orderings: {n.holds} hold, {n.fails} fail, {n.not_evaluable} not "
               f"evaluable; in {n.overlapping} of the evaluable comparisons the bootstrap "
               "intervals of adjacent boxes overlap."])


def _gap_lines(gaps: Sequence[OracleGap]) -> list[str]:
    lines = []
    for g in gaps:
        lines.append(f"- {g.setting}, all scenarios: median per-clip gap oracle − soft "
                     f"= {g.gap:.1f} dB over {g.n} clips (oracle median {g.oracle_median:.1f}, "
                     f"soft median {g.soft_median:.1f})")
        lines += [f"  - {c.scenario}, {c.combination}: {c.gap:.1f} dB (n={c.n})"
                  for c in g.cells]
    return (["", "## Gap of SI-Open-unmix-Soft to the oracle IRM", ""]
            + (lines or ["- n/a (si_umx_soft and oracle_irm are not both in the table)"]))


def render_summary(summary: Summary, method_doc: str = "docs/method.md") -> str:
    """The markdown of ``summary``. ``method_doc``: the path of docs/method.md as seen from
    where the markdown will be read (``write_figures`` passes it relative to its folder)."""
    lines = _median_lines(summary.medians, method_doc)
    if summary.references:
        lines += _reference_lines(summary.reference_rows)
    lines += _ordering_lines(summary.orderings) + _gap_lines(summary.oracle_gaps)
    return "\n".join(lines) + "\n"


def summary_markdown(df: pd.DataFrame, paper_medians: Mapping | None = None, *,
                     n_boot: int = 1000, seed: int = 0,
                     method_doc: str = "docs/method.md") -> str:
    """Markdown: our median SI-SDR per box (with bootstrap 95 % interval and n) beside the
    paper's, the paper's orderings checked on our medians (and on the paper's own numbers where
    it quotes them), and the gap of SI-Open-unmix-Soft to the oracle IRM. Everything is
    computed from ``df``; nothing is typed in except the paper's medians and orderings."""
    return render_summary(compute_summary(df, paper_medians, n_boot=n_boot, seed=seed),
                          method_doc)
