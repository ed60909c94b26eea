"""Choose the score NMF's parameters on dev clips only, never on a test clip.

The NMF (``guitarsep.separation.score_nmf``) learns nothing, so its few parameters are the
only thing fitted, and this script is where they are fitted. Three dev sets:

- the default corpus's 24 validation clips (GM soundfonts; 8 of them with one timbre for both
  parts);
- 32 additive-synthesis duets (``corpus.variety.DEV_FAMILIES``: a sound source that no test
  family uses), 16 with two different timbres and 16 with one, from their own pieces
  (seed 9876), built under ``data/nmf_dev/out_of_family``;
- 48 more of them (24 + 24, seed 13579) from pieces where both parts play chords
  (``corpus.out_of_family.NMF_DEV_CHORDS``): as much unison as the test families, which the
  first set lacks (``scripts/oof_unison.py``).

Every variant of :data:`VARIANTS` changes the chosen ``NmfParams`` in one respect (or,
``before``, goes back to the parameters shipped before) and is scored beside the score-only
mask and the oracle. Writes ``data/results/default/nmf_dev.csv`` (per
clip) and the table of docs/ablations.md between its markers.

    python scripts/nmf_dev.py          # about 12 minutes on 2 cores
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import asdict

import numpy as np
import pandas as pd

from guitarsep.config import SETTINGS, MaskParams, load_profile
from guitarsep.corpus.out_of_family import nmf_dev_sets
from guitarsep.evaluation.out_of_family import score_models
from guitarsep.io import run_doc_table
from guitarsep.models.checkpoint import SCORE_NMF, LoadedModel
from guitarsep.score import Notes
from guitarsep.score.perturb import perturb_notes
from guitarsep.separation.score_nmf import NmfParams, ScoreNmf

#: name -> (changes to NmfParams(), what it tests)
VARIANTS: dict[str, tuple[dict, str]] = {
    "chosen": ({}, "the shipped parameters"),
    "before": (dict(iterations=20, head_s=0.0, decay_s=0.0, release_s=0.0, mask_power=1.0,
                    h_step=1.0),
               "as shipped before 2026-12-03 (20 iterations, no note heads, flat start, "
               "mask V_t / V)"),
    "iterations_20": (dict(iterations=20), "20 multiplicative updates instead of 10"),
    "iterations_5": (dict(iterations=5), "5 updates"),
    "heads_0.15": (dict(head_s=0.15), "note-head templates for each note's first 0.15 s"),
    "flat_start": (dict(decay_s=0.0), "activations start flat, not with a plucked decay"),
    "heads_no_release": (dict(head_s=0.15, release_s=0.0, h_step=1.0, mask_power=0.5),
                         "as shipped before the release start (note heads of 0.15 s, no "
                         "release)"),
    "full_steps": (dict(h_step=1.0, mask_power=0.5),
                   "as shipped before the damped steps (full activation steps, mask power 1/2)"),
    "h_step_1": (dict(h_step=1.0), "activations updated in full multiplicative steps"),
    "h_step_0.5": (dict(h_step=0.5), "activation steps damped less (h_step 0.5)"),
    "mask_power_0.5": (dict(mask_power=0.5), "mask V_t^0.5 / (V_t^0.5 + V_o^0.5): the model's "
                       "share after the Wiener filter"),
    "no_release": (dict(release_s=0.0), "no release after the score's offsets"),
    "release_0.05": (dict(release_s=0.05), "release time constant 0.05 s instead of 0.2 s"),
    "mask_power_1": (dict(mask_power=1.0), "mask V_t / (V_t + V_o)"),
    "width_60": (dict(width_cents=60.0), "harmonic support of 60 cents instead of 40"),
    "no_attack": (dict(attack_before=0.0, attack_after=0.0), "no attack components"),
    "no_spare": (dict(spare_components=0), "no spare components (as shipped before "
                 "2026-12-05)"),
    "spare_penalty_0.25": (dict(spare_penalty=0.25), "spare components' penalty 0.25 "
                           "instead of 0.5"),
    "spare_penalty_1": (dict(spare_penalty=1.0), "spare components' penalty 1"),
    "spare_penalty_3": (dict(spare_penalty=3.0), "spare components' penalty 3"),
    "spare_2": (dict(spare_components=2), "2 spare components instead of 4"),
    "no_slack": (dict(slack_start=0.0), "no pitch slack (as shipped before 2026-12-06)"),
    "slack_penalty_0.25": (dict(slack_penalty=0.25), "pitch slack's penalty 0.25 instead "
                           "of 0.5"),
    "slack_start_0.01": (dict(slack_start=0.01), "pitch slack starting at 0.01 of the mean "
                         "instead of 0.001"),
}
MARK = ("<!-- nmf-dev:begin -->", "<!-- nmf-dev:end -->")


class WithoutAccompaniment(ScoreNmf):
    """The NMF as `guitarsep separate` runs it when no accompaniment score is given."""

    def magnitude(self, mag, target, accomp, mask=None):
        return super().magnitude(mag, target, Notes.empty(), mask)


class HalvedOffsets(ScoreNmf):
    """The NMF given a score whose notes end halfway (both parts): offsets that come too
    early, as in a tab that does not notate let-ring or a staccato transcription."""

    def magnitude(self, mag, target, accomp, mask=None):
        def halve(n: Notes) -> Notes:
            return Notes(n.onset, n.onset + 0.5 * (n.offset - n.onset), n.pitch, n.velocity)
        return super().magnitude(mag, halve(target), halve(accomp), mask)


class MissingNotes(ScoreNmf):
    """The NMF given a score with a share ``level`` of each part's notes removed (both parts;
    ``score.perturb``, drawn from a seed of the notes themselves): an incomplete tab or a
    transcription that misses notes."""

    level = 0.1

    def magnitude(self, mag, target, accomp, mask=None):
        duration = mag.shape[0] * self.setting.hop / self.setting.sr

        def drop(n: Notes, part: int) -> Notes:
            key = hashlib.sha256(np.round(n.onset, 4).tobytes() + n.pitch.tobytes()
                                 + bytes([part])).digest()
            rng = np.random.default_rng(int.from_bytes(key[:4], "little"))
            return perturb_notes(n, "missing_notes", self.level, rng, duration=duration)
        return super().magnitude(mag, drop(target, 0), drop(accomp, 1), mask)


class MissingQuarter(MissingNotes):
    level = 0.25


#: the NMF under other conditions: name -> (changes to NmfParams(), kind, what it tests)
CONDITIONS: dict[str, tuple[dict, type[ScoreNmf], str]] = {
    "no_accompaniment": ({}, WithoutAccompaniment, "chosen, without the accompaniment's notes "
                         "(a part of unknown notes for the other guitar)"),
    "no_accompaniment_free": (dict(unknown_pitches=(0, -1), free_components=8),
                              WithoutAccompaniment, "8 free components for the other guitar "
                              "instead (as shipped before 2026-12-06), without its notes"),
    "no_accompaniment_unknown_penalty_0.25": (dict(unknown_penalty=0.25), WithoutAccompaniment,
                                              "the unknown part's activations pay 0.25 per "
                                              "unit of energy, without its notes"),
    "halved_offsets": ({}, HalvedOffsets, "chosen, every note of the score ending halfway"),
    "halved_offsets_release_0.05": (dict(release_s=0.05), HalvedOffsets,
                                    "release 0.05 s, every note ending halfway"),
    "halved_offsets_no_release": (dict(release_s=0.0), HalvedOffsets,
                                  "no release, every note ending halfway"),
    "halved_offsets_full_steps": (dict(h_step=1.0, mask_power=0.5), HalvedOffsets,
                                  "full activation steps and mask power 1/2, every note "
                                  "ending halfway"),
    "no_accompaniment_full_steps": (dict(h_step=1.0, mask_power=0.5), WithoutAccompaniment,
                                    "full activation steps and mask power 1/2, without the "
                                    "accompaniment's notes"),
}
# the spare components with a share of the notes missing: chosen, without them, other penalties
for _pct, _kind in ((10, MissingNotes), (25, MissingQuarter)):
    _missing = f"{_pct} % of the notes missing"
    CONDITIONS[f"missing_{_pct}"] = ({}, _kind, f"chosen, {_pct} % of both parts' notes missing")
    CONDITIONS[f"missing_{_pct}_no_spare"] = (dict(spare_components=0), _kind,
                                              f"no spare components, {_missing}")
    for _c in (0.25, 1):
        CONDITIONS[f"missing_{_pct}_spare_penalty_{_c}"] = (
            dict(spare_penalty=float(_c)), _kind, f"spare penalty {_c}, {_missing}")
    CONDITIONS[f"missing_{_pct}_no_slack"] = (dict(slack_start=0.0), _kind,
                                              f"no pitch slack, {_missing}")
    CONDITIONS[f"missing_{_pct}_slack_penalty_0.25"] = (
        dict(slack_penalty=0.25), _kind, f"pitch slack's penalty 0.25, {_missing}")


def nmf(params: NmfParams, kind: type[ScoreNmf] = ScoreNmf) -> LoadedModel:
    setting, mask = SETTINGS["modern"], MaskParams()
    return LoadedModel(kind(setting, mask, params), SCORE_NMF, setting, asdict(params), mask)


def dev_scores(profile) -> pd.DataFrame:
    """Per-clip SI-SDR of every variant and the two references on both dev sets."""
    models: dict = {name: nmf(dataclasses.replace(NmfParams(), **change))
                    for name, (change, _) in VARIANTS.items()}
    for name, (change, kind, _) in CONDITIONS.items():
        models[name] = nmf(dataclasses.replace(NmfParams(), **change), kind)
    models.update(score_only="score_only", oracle_irm="oracle_irm")
    frames = []
    for dev_set, corpus, split in nmf_dev_sets(profile):
        s = score_models(corpus, models, mask=profile.mask, split=split)
        frames.append(s.assign(dev_set=dev_set, cell=np.where(
            s.target_timbre == s.other_timbre, "same", "diff")))
    return pd.concat(frames, ignore_index=True)


def table(scores: pd.DataFrame) -> list[str]:
    """Markdown: medians per dev cell, and the per-clip gain over ``chosen``."""
    wide = scores.pivot_table(index=["dev_set", "cell", "clip_id"], columns="model",
                              values="si_sdr")
    cells = [(d, c) for d in ("additive", "chords", "validation") for c in ("diff", "same")]
    head = " | ".join(f"{d} {c}" for d, c in cells)
    out = [f"| variant | what | {head} | per-clip gain over chosen (share better) |",
           "|---|---|" + "---|" * (len(cells) + 1)]
    extra = {**{name: what for name, (_, _, what) in CONDITIONS.items()},
             "score_only": "reference: the soft score mask", "oracle_irm": "reference: oracle"}
    for name in [*VARIANTS, *extra]:
        what = VARIANTS[name][1] if name in VARIANTS else extra[name]
        meds = " | ".join(f"{wide.loc[c, name].median():.2f}" for c in cells)
        gain = wide[name] - wide["chosen"]
        out.append(f"| {name} | {what} | {meds} | {gain.median():+.2f} dB "
                   f"({(gain > 0).mean():.0%}) |")
    return out


def main(argv=None) -> None:
    profile = load_profile("default")
    run_doc_table(argv, __doc__, lambda: dev_scores(profile), table,
                  profile.results_dir / "nmf_dev.csv", MARK)


if __name__ == "__main__":
    main()
