"""Fakes shared by the listening tests (test_widgets.py, test_demo_page.py): the three
listening models, a scores.csv-like table and tiny untrained networks."""
import numpy as np
import pandas as pd

from guitarsep.config import ModelSpec

MODELS = {"soft": ModelSpec("si_umx_soft", "modern"),
          "binary": ModelSpec("si_umx_binary", "modern"),
          "blind": ModelSpec("umx_blind", "modern")}


def fake_scores(corpus, seed: int = 0) -> pd.DataFrame:
    """A scores.csv-like table for the corpus' test clips and the three listening models."""
    rng = np.random.default_rng(seed)
    test = corpus.clips(split="test")
    rows = []
    for spec in MODELS.values():
        for i, r in enumerate(test.itertuples()):
            museval = i % 2 == 0
            rows.append({"model": spec.name, "setting": spec.setting, "scenario": r.scenario,
                         "combination": r.combination, "clip_id": r.clip_id,
                         "target_timbre": r.target_timbre, "other_timbre": r.other_timbre,
                         "si_sdr": round(float(rng.normal(2, 4)), 4),
                         **{m: (round(float(rng.normal(3, 3)), 4) if museval else np.nan)
                            for m in ("sdr", "sir", "sar")}})
    return pd.DataFrame(rows)


def tiny_models(seed: int = 0) -> dict:
    import torch

    from guitarsep.models import build_model

    torch.manual_seed(seed)
    return {lb: build_model(s.name, s.setting, hidden_size=8).eval() for lb, s in MODELS.items()}
