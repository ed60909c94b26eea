"""A static listening page made from a run's own outputs (``guitarsep demo-page``, 05_listen).

:func:`write_demo_page` writes ``<profile.figures_dir>/demo/`` (``figures/demo/`` for the
default profile, ``build/figures/<profile>/demo/`` otherwise)::

    demo/
      index.html                 plain HTML + inline CSS; no script, no external resource
      demo.json                  what the page shows: clips, SI-SDRs, files, sizes, provenance
      audio/<clip_id>/<signal>.ogg   mixture, target and one estimate per model
      pictures/<clip_id>.png     spectrograms of mixture, estimate and target, target notes over
      figures/<name>.png         copies of the run's figures (those that exist)

Decisions:

- **Clips.** For every test scenario (seen, a, b, c, d) the best, median and worst clip by the
  per-clip SI-SDR of SI-Open-Unmix soft (modern) in ``scores.csv``
  (:func:`guitarsep.app.listening.pick_clips`): 15 clips for a full run; with
  ``out_of_family``, the same for every out-of-family family from the generalization table
  (9 more).
- **Models.** By default the three of ``figures/unseen.png`` (soft / binary / blind
  Open-Unmix, modern; :data:`guitarsep.app.listening.LISTEN_MODELS`), loaded with
  :func:`guitarsep.training.loop.load_trained`, and the shipped model (``score_nmf``, the
  default of ``guitarsep separate`` and the model of generalization.png); any ``{label:
  network | ModelSpec | LoadedModel | reference name}`` works. Estimates come from
  :func:`guitarsep.separation.separate.separate_clip`, the evaluation's path.
- **Pictures.** One PNG per clip at screen resolution (640 px wide, ~100 KB): the
  spectrograms of the mixture, the shipped model's estimate (else the first model's) and the
  true target, with the target's notes drawn over each as a piano roll
  (:func:`guitarsep.app.listening.notes_picture_png`).
- **Audio.** Ogg Vorbis via soundfile, 22.05 kHz mono, libsndfile compression level 0.5
  (about 60 kbit/s): 24 clips x 6 signals x 12-15 s and the pictures stay inside the 25 MB
  budget. Ogg Vorbis plays in Firefox, Chromium-based browsers and recent Safari. Players use
  ``preload="metadata"`` so opening the page reads only headers.
- The page is rebuilt in a temporary folder and swapped in, so a reader never sees half a
  page; an existing ``out_dir`` is replaced only if it holds a previous page (``demo.json``)
  or nothing.
"""
from __future__ import annotations

import html
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from guitarsep.config import ModelSpec, Profile
from guitarsep.vocabulary import OOF_TITLES, RANKING_MODEL, SCENARIO_TITLES, SCENARIOS
from guitarsep.app.listening import (
    LISTEN_MODELS, OGG_QUALITY, PLAYBACK_SR, RANKS, EstimateCache,
    audio_tag, encode_ogg, model_key, notes_picture_png, pick_clips,
)

__all__ = ["select_demo_clips", "write_demo_page", "FIGURE_NAMES", "page_size"]

FIGURE_NAMES: tuple[str, ...] = ("low_res", "modern", "unseen", "generalization")
#: The model whose estimate each clip's picture shows (when the page has it).
PICTURE_MODEL = "shipped"
_TITLES = {**SCENARIO_TITLES, **OOF_TITLES}
_FIGURE_CAPTIONS = {
    "low_res": "Low-resolution setting, seen timbres: SI-Open-unmix, SI-U-Net and the "
               "baseline CNN.",
    "modern": "Modern setting, seen timbres: Open-unmix and U-Net with a soft or a binary score.",
    "unseen": "Unseen timbres, scenarios (a)–(d): soft, binary and blind Open-unmix.",
    "generalization": "Per test family, from the seen timbres to sound sources no training "
                      "uses: the shipped model, soft / binary / blind Open-unmix, the score "
                      "mask alone and the oracle.",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:1em 1.5em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#666;font-size:.9em}
.clip{border:1px solid #ddd;border-radius:6px;padding:.6em .9em;margin:.8em 0;background:#fafafa}
.clip h3{margin:.1em 0 .5em;font-size:1.05em}
.clip img.notes{display:block;max-width:100%;height:auto;margin:.3em 0 .5em}
.rank{display:inline-block;min-width:4.5em;font-weight:600}
.players{display:grid;grid-template-columns:repeat(auto-fill,minmax(205px,1fr));gap:.4em 1em}
.player{display:flex;flex-direction:column}
.player .name{font-weight:600;font-size:.92em}
.player .score{color:#555;font-size:.85em}
audio{width:100%;height:36px}
figure{margin:1em 0}figure img{max-width:min(100%,860px);border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
table.legend td{padding:.1em .8em .1em 0;vertical-align:top}
"""


def page_size(out_dir: str | Path) -> int:
    """Total bytes of the files under ``out_dir``."""
    return sum(p.stat().st_size for p in Path(out_dir).rglob("*") if p.is_file())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def select_demo_clips(scores: pd.DataFrame, *, reference: tuple[str, str] = RANKING_MODEL,
                      ranks: Sequence[str] = RANKS,
                      scenarios: Sequence[str] | None = None) -> pd.DataFrame:
    """Best / median / worst clip of every scenario (in the order seen, a, b, c, d, then any
    other) by the ``reference`` model's SI-SDR. Columns: scenario, rank, clip_id, combination,
    target_timbre, other_timbre, si_sdr (the reference's)."""
    present = list(dict.fromkeys(scores["scenario"]))
    order = [s for s in SCENARIOS if s in present] + [s for s in present
                                                           if s not in SCENARIOS]
    frames = [pick_clips(scores, s, reference=reference, ranks=ranks)
              for s in (scenarios or order)]
    frames = [f for f in frames if not f.empty]
    cols = ["scenario", "rank", "clip_id", "combination", "target_timbre", "other_timbre",
            "si_sdr"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def _resolve_models(profile: Profile, models: Mapping | None, device: str
                    ) -> tuple[dict, dict]:
    """``({label: network | reference name}, {label: (model, setting) key of the results
    tables})``. A ``LoadedModel`` is a shipped model file: its rows are ``shipped-<name>``
    (``evaluation.out_of_family.run_generalization``). Default: :data:`LISTEN_MODELS` and
    the shipped model (``out_of_family.SHIPPED_MODEL``)."""
    from guitarsep.evaluation.out_of_family import SHIPPED_MODEL
    from guitarsep.models.checkpoint import LoadedModel, load_model
    from guitarsep.training.loop import load_trained

    if models is None:
        models = {**LISTEN_MODELS, "shipped": load_model(SHIPPED_MODEL)}
    nets, keys = {}, {}
    for label, m in models.items():
        if isinstance(m, LoadedModel):
            nets[label], keys[label] = m.model, (f"shipped-{m.name}", m.setting.name)
            continue
        nets[label] = (load_trained(profile, m, device=device).model
                       if isinstance(m, ModelSpec) else m)
        keys[label] = model_key(m)
    if not nets:
        raise ValueError("write_demo_page: no models")
    return nets, keys


def _si_sdr(scores: pd.DataFrame, clip_id: str, key: tuple[str, str]) -> float | None:
    r = scores[(scores["clip_id"] == clip_id) & (scores["model"] == key[0])
               & (scores["setting"] == key[1])]
    if r.empty or pd.isna(r["si_sdr"].iloc[0]):
        return None
    return float(r["si_sdr"].iloc[0])


def _fmt(x: float | None) -> str:
    return "SI-SDR —" if x is None else f"SI-SDR {x:+.1f} dB"


def _check_out_dir(out_dir: Path) -> None:
    """``out_dir`` must be absent, empty, or a previous demo page (holds ``demo.json``)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileExistsError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / "demo.json").is_file():
            raise FileExistsError(f"{out_dir} is not empty and holds no demo page "
                                  "(demo.json); refusing to replace it")


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    _check_out_dir(out_dir)
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def _sections(corpus, scores: pd.DataFrame, out_of_family, reference, ranks) -> list:
    """``[(corpus, chosen clips)]``: the corpus's test clips, then the out-of-family ones."""
    test_ids = set(corpus.clips(split="test").clip_id.astype(str))
    chosen = select_demo_clips(scores[scores["clip_id"].isin(test_ids)], reference=reference,
                               ranks=ranks)
    if chosen.empty:
        raise ValueError("write_demo_page: no scored test clip of this corpus in scores "
                         f"(reference model {reference})")
    sections = [(corpus, chosen)]
    if out_of_family is not None:
        oof_corpus, general = out_of_family
        ids = set(oof_corpus.clips(split="test").clip_id.astype(str))
        rows = general[general["clip_id"].isin(ids) & general["scenario"].str.startswith("oof_")]
        picked = select_demo_clips(rows, reference=reference, ranks=ranks)
        if not picked.empty:
            sections.append((oof_corpus, picked))
    return sections


def _write_clip(tmp: Path, cache: EstimateCache, row, keys: dict, slugs: dict,
                lookup: pd.DataFrame, rate: int, quality: float) -> dict:
    """Audio of one clip (mixture, target, every model) and its picture -> its record."""
    clip = cache.clip(row.clip_id)
    cslug = _slug(row.clip_id)
    (tmp / "audio" / cslug).mkdir(parents=True)
    signals = [("mixture", "mixture", clip.mix, None), ("target", "target", clip.target, None)]
    signals += [(lb, slugs[lb], cache.estimate(row.clip_id, lb),
                 _si_sdr(lookup, row.clip_id, keys[lb])) for lb in keys]
    files = []
    for name, slug, x, si in signals:
        rel = f"audio/{cslug}/{slug}.ogg"
        (tmp / rel).write_bytes(encode_ogg(x, clip.sr, rate=rate, quality=quality))
        files.append({"signal": name, "file": rel, "si_sdr": si,
                      "bytes": (tmp / rel).stat().st_size})
    shown = PICTURE_MODEL if PICTURE_MODEL in keys else next(iter(keys))
    png = notes_picture_png([("mixture", clip.mix),
                             (f"estimate ({shown})", cache.estimate(row.clip_id, shown)),
                             ("true target", clip.target)], clip.target_notes, sr=clip.sr)
    picture = f"pictures/{cslug}.png"
    (tmp / "pictures").mkdir(exist_ok=True)
    (tmp / picture).write_bytes(png)
    cache.forget(row.clip_id)                                         # keep memory flat
    return {**{k: (None if pd.isna(v) else v) for k, v in row._asdict().items()},
            "duration_s": round(len(clip.mix) / clip.sr, 3), "files": files,
            "picture": {"file": picture, "model": shown, "size": _png_size(png)}}


def _png_size(png: bytes) -> list[int]:
    """[width, height] from a PNG's IHDR chunk."""
    return [int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")]


def _copy_figures(figures_dir: Path, tmp: Path) -> list[str]:
    figs = []
    for name in FIGURE_NAMES:
        src = figures_dir / f"{name}.png"
        if src.is_file():
            (tmp / "figures").mkdir(exist_ok=True)
            shutil.copyfile(src, tmp / "figures" / f"{name}.png")
            figs.append(name)
    return figs


def write_demo_page(profile: Profile, corpus, scores: pd.DataFrame,
                    out_dir: str | Path | None = None, models: Mapping | None = None, *,
                    figures_dir: str | Path | None = None, out_of_family=None,
                    reference: tuple[str, str] = RANKING_MODEL, ranks: Sequence[str] = RANKS,
                    rate: int = PLAYBACK_SR, quality: float = OGG_QUALITY,
                    device: str = "cpu", progress: bool = False) -> Path:
    """Write the static listening page of a run; returns the path of its ``index.html``.

    Args:
        profile: the run's profile (mask parameters, figures folder, provenance).
        corpus: its :class:`guitarsep.corpus.Corpus` (test clips: mixture, target, notes).
        scores: its per-clip results table (``data/results/<profile>/scores.csv``).
        out_dir: default ``profile.figures_dir / "demo"``.
        models: ``{label: network | ModelSpec | LoadedModel | reference name}``; default
            :data:`guitarsep.app.listening.LISTEN_MODELS` (``load_trained``) and the shipped
            model.
        figures_dir: where the figures' PNGs are (default ``profile.figures_dir``); missing
            ones are left out of the page.
        out_of_family: ``(out-of-family corpus, generalization table)`` to add the
            out-of-family clips (``corpus.out_of_family``, ``run_generalization``), or None.
        reference: the (model, setting) whose SI-SDR ranks the clips.
        rate, quality: audio sample rate and Vorbis compression level (0 best .. 1 smallest).
    """
    from tqdm.auto import tqdm

    from guitarsep.io import write_json_atomic
    from guitarsep.provenance import git_commit

    out_dir = Path(out_dir) if out_dir is not None else profile.figures_dir / "demo"
    figures_dir = Path(figures_dir) if figures_dir is not None else profile.figures_dir
    _check_out_dir(out_dir)
    nets, keys = _resolve_models(profile, models, device)
    scores = scores.astype({"clip_id": str})
    sections = _sections(corpus, scores, out_of_family, reference, ranks)
    lookup = (scores if out_of_family is None
              else pd.concat([scores, out_of_family[1].astype({"clip_id": str})]))
    slugs = {lb: _slug(lb) for lb in nets}
    if len(set(slugs.values()) | {"mixture", "target"}) != len(nets) + 2:
        raise ValueError(f"model labels {list(nets)} clash as file names (or with "
                         "mixture/target)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    try:
        records = []
        for src, chosen in sections:
            cache = EstimateCache(src, nets, mask_params=profile.mask, device=device)
            for row in tqdm(list(chosen.itertuples(index=False)), desc="demo page",
                            disable=not progress):
                records.append(_write_clip(tmp, cache, row, keys, slugs, lookup, rate, quality))
        info = {"profile": profile.name, "commit": git_commit(profile.root),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "reference": list(reference), "models": {lb: list(k) for lb, k in keys.items()},
                "audio": {"format": "ogg/vorbis", "sr": rate, "channels": 1,
                          "compression_level": quality},
                "figures": [f"figures/{n}.png" for n in _copy_figures(figures_dir, tmp)],
                "clips": records}
        media_bytes = page_size(tmp)
        (tmp / "index.html").write_text(_render(info, list(nets), media_bytes, _TITLES),
                                        encoding="utf-8")
        info["total_bytes"] = page_size(tmp) + 1024      # + demo.json itself (approx.)
        write_json_atomic(tmp / "demo.json", info)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "index.html"


def _render(info: dict, labels: list[str], media_bytes: int, titles: Mapping[str, str]) -> str:
    e = html.escape
    models = info["models"]
    ref_model, ref_setting = info["reference"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>guitarsep — listening examples ({e(info['profile'])})</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>guitarsep: listening examples</h1>",
        "<p>Score-informed separation of two-guitar mixtures: given the mono mixture and the "
        "notes of one guitar (the <em>target</em>), each model estimates that guitar's audio. "
        "Every clip below comes from this run's own test set; the estimates are made by the "
        "run's trained models and the SI-SDR (scale-invariant signal-to-distortion ratio of "
        "the estimate against the true target, in dB; higher is better) is read from its "
        "<code>scores.csv</code>.</p>",
        "<p>For every scenario we show the <b>best</b>, <b>median</b> and <b>worst</b> clip "
        f"by the SI-SDR of <code>{e(ref_model)}</code> ({e(ref_setting)}).</p>",
        '<table class="legend"><tbody>'
        + "".join(f"<tr><td><b>{e(lb)}</b></td><td><code>{e(models[lb][0])}</code> "
                  f"({e(models[lb][1])})</td></tr>" for lb in labels)
        + "</tbody></table>",
        f'<p class="meta">Profile <code>{e(info["profile"])}</code> · commit '
        f'<code>{e(info["commit"])}</code> · generated {e(info["created"])} · audio: Ogg '
        f'Vorbis, {info["audio"]["sr"] / 1000:g} kHz mono · audio and figures '
        f'{media_bytes / 1e6:.1f} MB</p>',
    ]
    scenario = None
    for rec in info["clips"]:
        if rec["scenario"] != scenario:
            scenario = rec["scenario"]
            title = re.sub(r"^\(\w+\)\s*", "", titles.get(scenario, ""))
            parts.append(f'<h2 id="scenario-{e(str(scenario))}">Scenario {e(str(scenario))}'
                         + (f": {e(title)}" if title else "") + "</h2>")
        players = []
        for f in rec["files"]:
            name = f["signal"]
            score = ("" if name in ("mixture", "target")
                     else f'<span class="score">{e(_fmt(f["si_sdr"]))}</span>')
            label = {"mixture": "mixture (input)", "target": "true target"}.get(name, name)
            players.append(f'<div class="player"><span class="name">{e(label)}</span>'
                           f'{audio_tag(src=f["file"], duration=rec["duration_s"], title=name)}'
                           f"{score}</div>")
        pic = rec["picture"]
        img = (f'<img class="notes" src="{e(pic["file"])}" width="{pic["size"][0]}" '
               f'height="{pic["size"][1]}" alt="spectrograms of the mixture, the {e(pic["model"])} '
               'estimate and the true target with the target notes">')
        parts.append(
            f'<div class="clip" id="clip-{e(rec["clip_id"])}"><h3>'
            f'<span class="rank">{e(str(rec["rank"]))}</span> <code>{e(rec["clip_id"])}</code> · '
            f'{e(str(rec["combination"]))} · target timbre <code>{e(str(rec["target_timbre"]))}'
            f'</code>, other <code>{e(str(rec["other_timbre"]))}</code> · '
            f'{rec["duration_s"]:g} s</h3>{img}<div class="players">{"".join(players)}</div>'
            '</div>')
    if info["figures"]:
        parts.append("<h2 id=\"figures\">Figures of this run</h2>")
        for rel in info["figures"]:
            name = Path(rel).stem
            parts.append(f'<figure><img src="{e(rel)}" alt="{e(name)} figure">'
                         f"<figcaption><code>{e(name)}.png</code>: "
                         f"{e(_FIGURE_CAPTIONS.get(name, ''))} Per-clip target SI-SDR; "
                         "boxes show quartiles.</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
