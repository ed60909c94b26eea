"""Evaluation: from separated estimates to the paper's figures and our report.

- :mod:`~guitarsep.evaluation.metrics`: SI-SDR and BSS Eval v4 of an estimate; the tidy
  per-clip results table and its per-box medians.
- :mod:`~guitarsep.evaluation.evaluate`: the evaluation stage that writes the results table
  (03_evaluate.ipynb, ``guitarsep evaluate``).
- :mod:`~guitarsep.evaluation.robustness`: the score-error study (06_robustness.ipynb).
- :mod:`~guitarsep.evaluation.figures`: the paper's figures drawn from the results table
  (04_figures.ipynb, ``guitarsep figures``).
- :mod:`~guitarsep.evaluation.summary`: the markdown report beside the figures
  (``summary.md``): our medians beside the paper's, the paper's orderings checked, the gap to
  the oracle.
- :mod:`~guitarsep.evaluation.paper`: the paper's numbers and claims.

Importing this package loads pandas and matplotlib, never torch.
"""
from guitarsep.evaluation.figures import (plot_low_res, plot_modern, plot_robustness,
                                          plot_unseen, save_figure, write_figures)
from guitarsep.evaluation.paper import PAPER_MEDIANS, PAPER_ORDERINGS
from guitarsep.evaluation.summary import compute_summary, render_summary, summary_markdown

__all__ = [
    "plot_low_res", "plot_modern", "plot_unseen", "plot_robustness", "save_figure",
    "write_figures", "PAPER_MEDIANS", "PAPER_ORDERINGS", "compute_summary", "render_summary",
    "summary_markdown",
]
