"""Every notebook in notebooks/ runs end to end through papermill on the smoke profile.

The notebooks run in order (each consumes what the previous one built) in a temporary project
root (``GUITARSEP_ROOT``), so a test run never touches the repository's data/ or figures/.
A notebook added later is picked up automatically.
"""
import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_are_committed_without_outputs():
    names = [p.name for p in NOTEBOOKS]
    assert names[:6] == ["01_data.ipynb", "02_train.ipynb", "03_evaluate.ipynb",
                         "04_figures.ipynb", "05_listen.ipynb", "06_robustness.ipynb"], names
    for nb_path in NOTEBOOKS:
        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{nb_path.name} is committed with outputs"
                assert cell.execution_count is None, f"{nb_path.name}: execution counts"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "profile" in tagged[0].source, nb_path.name
        # the first cell says what the notebook does, which profile, how long on 2 cores
        first = nb.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), nb_path.name
        for what in ("What it does", "Profile", "Time on 2 CPU cores"):
            assert f"**{what}:**" in first.source, (nb_path.name, what)


@pytest.mark.slow
def test_all_notebooks_run_on_smoke(tmp_path, monkeypatch):
    assert NOTEBOOKS, "no notebooks found"
    monkeypatch.setenv("GUITARSEP_ROOT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out_dir = tmp_path / "build" / "notebooks"
    out_dir.mkdir(parents=True)
    for nb_path in NOTEBOOKS:
        pm.execute_notebook(str(nb_path), str(out_dir / nb_path.name),
                            parameters={"profile": "smoke"}, kernel_name="python3",
                            cwd=str(ROOT / "notebooks"), progress_bar=False)
    figures = tmp_path / "build" / "figures" / "smoke"
    for name in ("low_res.png", "modern.png", "unseen.png", "generalization.png",
                 "robustness.png"):
        assert (figures / name).stat().st_size > 10_000, name
    # 03's out-of-family table: the figure's models and the shipped one, on every family
    general = pd.read_csv(tmp_path / "data" / "results" / "smoke" / "generalization_scores.csv")
    assert {"oof_sample", "oof_fm", "oof_karplus", "seen"} <= set(general["scenario"])
    assert general["model"].str.startswith("shipped-").any()
    assert {"si_umx_soft", "umx_blind", "score_only", "oracle_irm"} <= set(general["model"])
    robustness = pd.read_csv(tmp_path / "data" / "results" / "smoke" / "robustness.csv")
    assert set(robustness["kind"]) >= {"none", "global_offset", "missing_notes"}
    assert robustness["si_sdr"].notna().all()
    # `guitarsep figures` redraws every figure, robustness.png included, from the tables
    from guitarsep.app import cli
    assert cli.main(["figures", "--profile", "smoke", "--root", str(tmp_path), "--quiet"]) == 0
    for name in ("robustness", "generalization"):
        side = json.loads((figures / f"{name}.json").read_text())
        assert side["provenance"]["redrawn_by"] == "guitarsep figures"
    scores = pd.read_csv(tmp_path / "data" / "results" / "smoke" / "scores.csv")
    assert len(scores) > 0 and scores["si_sdr"].notna().all()
    provenance = json.loads((figures / "provenance.json").read_text())
    assert provenance["profile"] == "smoke"
    assert {"data", "train", "evaluate"} <= set(provenance["stages"])
    stages = json.loads((tmp_path / "data" / "smoke" / "stages.json").read_text())
    assert "robustness" in stages
