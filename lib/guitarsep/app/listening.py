"""Listening: the interactive panel of ``05_listen.ipynb`` and the audio helpers it shares with
:mod:`guitarsep.app.demo_page`.

People judge separation by ear. :func:`listening_panel` builds an ipywidgets panel to pick a
scenario, a combination, a test clip and the models to hear; it plays the mixture, the true
target, each model's estimate and its residual (mixture - estimate), draws the spectrogram of
one chosen signal with the target (cyan) and accompaniment (orange) score masks over it, lists
the clip's SI-SDR / SDR / SIR / SAR per model from ``scores.csv`` and can play two signals back
to back (A, a short silence, B).

Layout of this module:

- pure functions (no widgets, unit-tested): :func:`pick_clips` (best / median / worst clip of a
  scenario by one model's SI-SDR), :func:`clip_options`, :func:`clip_metrics`,
  :func:`signal_names`, :func:`view_signals`, :func:`concat_ab`, :func:`to_playback`,
  :func:`encode_ogg`, :func:`audio_tag`, :func:`spectrogram_png`;
- :class:`ViewState` (what is selected) and :class:`EstimateCache` (one separation per
  (clip, model), via :func:`guitarsep.separation.separate.separate_clip`);
- :class:`ListeningPanel`: the widgets. Each control calls one callback (``on_scenario_change``,
  ``on_combination_change``, ``on_clip_change``, ``on_models_change``, ``on_signal_change``,
  ``on_ab_change``, ``on_ab_pair_change``); tests call them directly. The players are
  ``ipywidgets.Audio`` (Ogg Vorbis bytes), the spectrogram an ``ipywidgets.Image`` and the
  metrics an ``ipywidgets.HTML``, so the panel's state is plain widget values.

Headless runs (papermill): a widget shows nothing in an executed notebook, so
:meth:`ListeningPanel.show_static` displays the current view as one self-contained HTML output
(``<audio>`` players with Ogg data URIs, the spectrogram as a PNG data URI, the metrics table).
Playback audio is resampled to :data:`PLAYBACK_SR` (22.05 kHz) and Vorbis-encoded, about
60 kbit/s, to keep executed notebooks small.
"""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from guitarsep.config import SETTINGS, ModelSpec
from guitarsep.io import resample
from guitarsep.vocabulary import METRICS, RANKING_MODEL, SCENARIOS, UNSEEN_MODELS

__all__ = [
    "LISTEN_MODELS", "PLAYBACK_SR", "OGG_QUALITY", "RANKS",
    "load_listen_models", "model_key", "pick_clips", "clip_options", "clip_metrics",
    "signal_names", "view_signals", "concat_ab", "to_playback", "encode_ogg", "audio_tag",
    "spectrogram_png", "notes_picture_png", "metrics_html", "ViewState", "EstimateCache", "ListeningPanel",
    "listening_panel",
]

#: The models of ``figures/unseen.png``, by the labels the panel and the demo page show.
LISTEN_MODELS: dict[str, ModelSpec] = {label.lower(): ModelSpec(name, "modern")
                                       for name, label in UNSEEN_MODELS}
PLAYBACK_SR = 22050
#: libsndfile's Vorbis ``compression_level`` (0 = best quality, 1 = smallest); 0.5 is about
#: 60 kbit/s for a 22.05 kHz mono guitar mix.
OGG_QUALITY = 0.5
RANKS: tuple[str, ...] = ("best", "median", "worst")
_ALL = "all"


# --------------------------------------------------------------------------------------------
# models and scores
# --------------------------------------------------------------------------------------------
def load_listen_models(profile, specs: Mapping[str, ModelSpec] | None = None,
                       device: str = "cpu") -> dict:
    """``{label: trained network}`` for ``specs`` (default :data:`LISTEN_MODELS`), via
    :func:`guitarsep.training.loop.load_trained` (raises ``FileNotFoundError`` for an untrained one)."""
    from guitarsep.training.loop import load_trained

    return {label: load_trained(profile, spec, device=device).model
            for label, spec in (specs or LISTEN_MODELS).items()}


def model_key(model) -> tuple[str, str]:
    """``(model, setting)`` as in ``scores.csv`` for a network (``model.name``,
    ``model.setting.name``), a :class:`~guitarsep.config.ModelSpec` or a reference name
    (``"oracle_irm"``, ``"score_only"``, ``"mixture"``: setting ``modern``)."""
    if isinstance(model, str):
        return model, "modern"
    if isinstance(model, ModelSpec):
        return model.name, model.setting
    setting = getattr(model, "setting", None)
    setting = getattr(setting, "name", setting) or "modern"
    return str(getattr(model, "name", type(model).__name__)), str(setting)


def _setting_of(model):
    if isinstance(model, str):
        return SETTINGS["modern"]
    s = getattr(model, "setting", None)
    if s is None:
        return SETTINGS["modern"]
    return SETTINGS[s] if isinstance(s, str) else s


def _rows(scores: pd.DataFrame, key: tuple[str, str]) -> pd.DataFrame:
    return scores[(scores["model"] == key[0]) & (scores["setting"] == key[1])]


def _ranking_table(scores: pd.DataFrame, reference: tuple[str, str]) -> pd.DataFrame:
    """One row per clip with the reference model's SI-SDR; when the reference model is not in
    the table, the median SI-SDR over the models that are."""
    ref = _rows(scores, reference)
    if ref.empty:
        ref = (scores.groupby("clip_id", as_index=False)
               .agg(scenario=("scenario", "first"), combination=("combination", "first"),
                    target_timbre=("target_timbre", "first"),
                    other_timbre=("other_timbre", "first"), si_sdr=("si_sdr", "median")))
    return ref.drop_duplicates("clip_id")


def pick_clips(scores: pd.DataFrame, scenario: str, *, reference: tuple[str, str] = RANKING_MODEL,
               ranks: Sequence[str] = RANKS, combination: str | None = None) -> pd.DataFrame:
    """The best, median and worst clip of ``scenario`` (optionally one ``combination``) by the
    ``reference`` model's SI-SDR (NaN counts as worst).

    Returns the chosen ``scores`` rows of the reference model (columns clip_id, scenario,
    combination, target_timbre, other_timbre, si_sdr, ...) plus ``rank`` (``best`` |
    ``median`` | ``worst``), best first, without repeats (a scenario with two clips gives two).
    The median of an even count is the upper middle clip (index ``n // 2`` in descending
    order).
    """
    ref = _ranking_table(scores, reference)
    ref = ref[ref["scenario"] == scenario]
    if combination not in (None, _ALL):
        ref = ref[ref["combination"] == combination]
    if ref.empty:
        return ref.assign(rank=pd.Series(dtype=str))
    ordered = ref.sort_values(["si_sdr", "clip_id"], ascending=[False, True],
                              na_position="last").reset_index(drop=True)
    n = len(ordered)
    index = {"best": 0, "median": n // 2, "worst": n - 1}
    out, seen = [], set()
    for r in ranks:
        if r not in index:
            raise ValueError(f"unknown rank {r!r}; expected one of {RANKS}")
        i = index[r]
        if i in seen:
            continue
        seen.add(i)
        out.append(ordered.iloc[[i]].assign(rank=r))
    return pd.concat(out, ignore_index=True)


def clip_options(scores: pd.DataFrame, scenario: str, combination: str | None = None, *,
                 reference: tuple[str, str] = RANKING_MODEL, ref_label: str = "soft"
                 ) -> list[tuple[str, str]]:
    """Dropdown options ``(text, clip_id)`` for the clips of a scenario (and combination),
    best first by the reference model's SI-SDR; the text shows the combination, the two
    timbres and that SI-SDR."""
    ref = _ranking_table(scores, reference)
    ref = ref[ref["scenario"] == scenario]
    if combination not in (None, _ALL):
        ref = ref[ref["combination"] == combination]
    ref = ref.sort_values(["si_sdr", "clip_id"], ascending=[False, True], na_position="last")
    return [(f"{r.clip_id} · {r.combination} · {r.target_timbre}/{r.other_timbre} · "
             f"{ref_label} {_fmt_db(r.si_sdr)}", r.clip_id) for r in ref.itertuples()]


def clip_metrics(scores: pd.DataFrame, clip_id: str, models: Mapping) -> pd.DataFrame:
    """SI-SDR / SDR / SIR / SAR of one clip per model label (NaN where ``scores`` has no row:
    BSS Eval runs on a subset of clips). Columns: label, model, setting, si_sdr, sdr, sir, sar."""
    rows = scores[scores["clip_id"] == clip_id]
    out = []
    for label, m in models.items():
        key = model_key(m)
        r = _rows(rows, key)
        vals = {c: (float(r[c].iloc[0]) if len(r) and c in r and pd.notna(r[c].iloc[0])
                    else float("nan")) for c in METRICS}
        out.append({"label": label, "model": key[0], "setting": key[1], **vals})
    return pd.DataFrame(out, columns=["label", "model", "setting", *METRICS])


def _fmt_db(x) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.1f} dB"


def metrics_html(table: pd.DataFrame) -> str:
    """A small HTML table of :func:`clip_metrics` (dB, one decimal; "—" for missing)."""
    pad = "padding:0.1em 0.7em"
    head = "".join(f"<th style='{pad}'>{h}</th>" for h in ("model", "SI-SDR", "SDR", "SIR", "SAR"))
    body = []
    for r in table.itertuples():
        cells = "".join(f"<td style='text-align:right;{pad}'>{_fmt_db(getattr(r, c))}</td>"
                        for c in METRICS)
        body.append(f"<tr><td style='{pad}'>{html.escape(str(r.label))} "
                    f"<small>({html.escape(r.model)}, {html.escape(r.setting)})</small></td>"
                    f"{cells}</tr>")
    return (f"<table class='guitarsep-metrics'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


# --------------------------------------------------------------------------------------------
# signals and audio
# --------------------------------------------------------------------------------------------
def signal_names(labels: Sequence[str]) -> list[str]:
    """``mixture``, ``target``, then each label (its estimate), then ``<label> residual``."""
    return ["mixture", "target", *labels, *(f"{lb} residual" for lb in labels)]


def view_signals(mix: np.ndarray, target: np.ndarray, estimates: Mapping[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """The waveforms of :func:`signal_names` (residual = mixture - estimate), same length."""
    out = {"mixture": np.asarray(mix, np.float32), "target": np.asarray(target, np.float32)}
    for lb, est in estimates.items():
        out[lb] = np.asarray(est, np.float32)
    for lb, est in estimates.items():
        out[f"{lb} residual"] = (out["mixture"] - out[lb]).astype(np.float32)
    return out


def concat_ab(a: np.ndarray, b: np.ndarray, sr: int, gap_s: float = 0.5,
              fade_s: float = 0.01) -> np.ndarray:
    """``a``, ``gap_s`` seconds of silence, ``b``: one float32 signal to hear two versions back
    to back. Each part gets a ``fade_s`` linear fade in and out so the switch does not click."""
    def faded(x):
        x = np.asarray(x, np.float32).reshape(-1).copy()
        k = min(int(round(fade_s * sr)), x.size // 2)
        if k > 0:
            ramp = np.linspace(0.0, 1.0, k, endpoint=False, dtype=np.float32)
            x[:k] *= ramp
            x[-k:] *= ramp[::-1]
        return x

    gap = np.zeros(int(round(gap_s * sr)), np.float32)
    return np.concatenate([faded(a), gap, faded(b)])


def to_playback(x: np.ndarray, sr: int, rate: int = PLAYBACK_SR) -> np.ndarray:
    """``x`` resampled to ``rate`` (soxr HQ) and clipped to [-1, 1], float32."""
    return np.clip(resample(np.asarray(x, np.float32).reshape(-1), sr, rate), -1.0, 1.0)


def encode_ogg(x: np.ndarray, sr: int, *, rate: int = PLAYBACK_SR,
               quality: float = OGG_QUALITY) -> bytes:
    """Mono Ogg Vorbis bytes of ``x`` (at ``sr``) resampled to ``rate``; ``quality`` is
    libsndfile's compression level (0 best .. 1 smallest)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, to_playback(x, sr, rate), rate, format="OGG", subtype="VORBIS",
             compression_level=float(quality))
    return buf.getvalue()


def audio_tag(data: bytes | None = None, *, src: str | None = None, mime: str = "audio/ogg",
              duration: float | None = None, title: str = "") -> str:
    """An HTML ``<audio controls>`` element: inline ``data`` (data URI) or a relative ``src``.
    ``duration`` (s) goes to ``data-duration`` so a test can check what the browser loads."""
    if (data is None) == (src is None):
        raise ValueError("audio_tag: give exactly one of data and src")
    url = src if src is not None else f"data:{mime};base64,{base64.b64encode(data).decode()}"
    attrs = [f'src="{html.escape(url, quote=True)}"', "controls", 'preload="metadata"']
    if duration is not None:
        attrs.append(f'data-duration="{duration:.3f}"')
    if title:
        attrs.append(f'title="{html.escape(title, quote=True)}"')
    return f"<audio {' '.join(attrs)}></audio>"


def spectrogram_png(x: np.ndarray, target_notes, accomp_notes, *, sr: int, mask_params=None,
                    title: str = "", fmax: float = 2000.0, dpi: int = 72) -> bytes:
    """PNG of ``x``'s spectrogram (modern STFT) with the target and accompaniment score masks
    (:func:`guitarsep.score.binary_score_mask`) drawn over it by
    :func:`guitarsep.notebook_plots.plot_spectrogram_with_masks`."""
    import matplotlib
    import matplotlib.pyplot as plt
    import torch

    from guitarsep.config import MaskParams
    from guitarsep.notebook_plots import plot_spectrogram_with_masks
    from guitarsep.score import binary_score_mask
    from guitarsep.models.frontend import Spectrogram

    setting = SETTINGS["modern"]
    x = to_playback(x, sr, setting.sr) if sr != setting.sr else np.asarray(x, np.float32)
    with torch.no_grad():
        mag = Spectrogram(setting)(torch.from_numpy(np.ascontiguousarray(x))[None])[0].abs()
    mag = mag.numpy()
    kw = dict(sr=setting.sr, n_fft=setting.n_fft, hop=setting.hop,
              params=mask_params or MaskParams())
    m_t = binary_score_mask(target_notes, mag.shape[0], **kw)
    m_a = binary_score_mask(accomp_notes, mag.shape[0], **kw)
    with matplotlib.rc_context({"figure.max_open_warning": 0}):
        fig = plot_spectrogram_with_masks(mag, m_t, m_a, sr=setting.sr, n_fft=setting.n_fft,
                                          hop=setting.hop, fmax=fmax, title=title)
        fig.set_size_inches(11, 4)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
    return buf.getvalue()


def notes_picture_png(signals: Sequence[tuple[str, np.ndarray]], target_notes, *, sr: int,
                      fmax: float = 2000.0, dpi: int = 64) -> bytes:
    """PNG of stacked spectrograms, one per ``(title, audio)`` of ``signals`` (the listening
    page: mixture, an estimate, the true target), each with the target's notes drawn over it
    as a piano roll (:func:`guitarsep.notebook_plots.plot_spectrogram_with_notes`). Screen
    resolution (``dpi`` 64: 640 px wide), so a page of two dozen clips stays small."""
    import matplotlib.pyplot as plt
    import torch

    from guitarsep.models.frontend import Spectrogram
    from guitarsep.notebook_plots import plot_spectrogram_with_notes

    setting = SETTINGS["modern"]
    spec = Spectrogram(setting)
    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 1.9 * len(signals)), sharex=True,
                             constrained_layout=True, squeeze=False)
    for ax, (title, x) in zip(axes[:, 0], signals):
        x = to_playback(x, sr, setting.sr) if sr != setting.sr else np.asarray(x, np.float32)
        with torch.no_grad():
            mag = spec(torch.from_numpy(np.ascontiguousarray(x))[None])[0].abs().numpy()
        plot_spectrogram_with_notes(mag, target_notes, sr=setting.sr, n_fft=setting.n_fft,
                                    hop=setting.hop, fmax=fmax, title=title, ax=ax)
    axes[-1, 0].set_xlabel("time (s); red: the target's notes")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    # a 64-colour palette: a grey spectrogram and red lines need no more, at a third the size
    from PIL import Image
    out = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors=64).save(out, format="PNG", optimize=True)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# state and separation cache
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewState:
    """What the panel shows: a clip of a scenario / combination (``"all"`` = any), the model
    labels to hear, the signal whose spectrogram is drawn, and the A/B comparison."""

    scenario: str
    combination: str
    clip_id: str
    models: tuple[str, ...]
    signal: str = "mixture"
    ab: bool = False
    ab_pair: tuple[str, str] = ("mixture", "target")


class EstimateCache:
    """Clips and estimates, computed once: ``clip(clip_id)`` reads the corpus,
    ``estimate(clip_id, label)`` runs :func:`guitarsep.separation.separate.separate_clip` (or a reference
    through :func:`guitarsep.separation.separate.separate_batch`). ``calls`` counts separations."""

    def __init__(self, corpus, models: Mapping, *, mask_params=None, device: str = "cpu"):
        self.corpus, self.models = corpus, dict(models)
        self.mask_params, self.device = mask_params, device
        self._clips: dict[str, object] = {}
        self._est: dict[tuple[str, str], np.ndarray] = {}
        self.calls = 0

    def clip(self, clip_id: str):
        if clip_id not in self._clips:
            self._clips[clip_id] = self.corpus.clip(clip_id)
        return self._clips[clip_id]

    def estimate(self, clip_id: str, label: str) -> np.ndarray:
        key = (clip_id, label)
        if key not in self._est:
            from guitarsep.separation.separate import separate_batch, separate_clip

            clip, model = self.clip(clip_id), self.models[label]
            if isinstance(model, str):
                est = next(separate_batch(model, [clip], SETTINGS["modern"], sr=clip.sr,
                                          mask_params=self.mask_params, progress=False))[1]
            else:
                est = separate_clip(model, clip.mix, clip.target_notes, clip.accomp_notes,
                                    _setting_of(model), sr=clip.sr, mask_params=self.mask_params,
                                    device=self.device)
            self._est[key] = np.asarray(est, np.float32)
            self.calls += 1
        return self._est[key]

    def forget(self, clip_id: str) -> None:
        """Drop a clip and its estimates."""
        self._clips.pop(clip_id, None)
        self._est = {k: v for k, v in self._est.items() if k[0] != clip_id}

    def __len__(self) -> int:
        return len(self._est)


# --------------------------------------------------------------------------------------------
# the panel
# --------------------------------------------------------------------------------------------
def _new(change):
    """The new value of an ipywidgets ``observe`` change, or ``change`` itself."""
    if isinstance(change, Mapping) and "new" in change:
        return change["new"]
    return getattr(change, "new", change)


@dataclass
class _View:
    """What :meth:`ListeningPanel.refresh` computed (also drives :meth:`show_static`)."""

    clip_id: str
    title: str
    sr: int
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    png: bytes = b""
    ab_audio: np.ndarray | None = None


class ListeningPanel:
    """ipywidgets listening panel (see the module docstring). Display it as the last
    expression of a cell (or ``display(panel)``); :meth:`show_static` renders the current view
    without widgets. The current selection is :attr:`state`, the computed view :attr:`view`."""

    def __init__(self, profile, corpus, scores: pd.DataFrame, models: Mapping, *,
                 scenario: str | None = None, combination: str = _ALL,
                 clip_id: str | None = None, selected: Sequence[str] | None = None,
                 signal: str = "mixture", reference: tuple[str, str] = RANKING_MODEL,
                 playback_sr: int = PLAYBACK_SR, gap_s: float = 0.5, device: str = "cpu"):
        import ipywidgets as w

        if not models:
            raise ValueError("listening_panel: no models to listen to")
        self.profile, self.corpus, self.models = profile, corpus, dict(models)
        self.labels = tuple(self.models)
        test_ids = set(corpus.clips(split="test").clip_id)
        self.scores = scores[scores["clip_id"].isin(test_ids)].copy()
        if self.scores.empty:
            raise ValueError("listening_panel: scores has no rows for this corpus' test clips")
        self.reference = reference
        self.ref_label = next((lb for lb, m in self.models.items()
                               if model_key(m) == reference), reference[0])
        self.playback_sr, self.gap_s = playback_sr, gap_s
        self.cache = EstimateCache(corpus, self.models, mask_params=profile.mask, device=device)
        self.scenarios = [s for s in SCENARIOS if s in set(self.scores["scenario"])]
        self.scenarios += sorted(set(self.scores["scenario"]) - set(self.scenarios))
        scenario = scenario or self.scenarios[0]
        sel = tuple(selected) if selected is not None else self.labels
        if set(sel) - set(self.labels) or signal not in signal_names(sel):
            raise ValueError(f"listening_panel: selected={sel}, signal={signal!r} not among "
                             f"the models {self.labels}")
        combos = self._combinations(scenario)
        combination = combination if combination in combos else _ALL
        clip_id = clip_id or self._default_clip(scenario, combination)
        ab_pair = (self.labels[0], self.labels[1] if len(self.labels) > 1 else "target")
        self.state = ViewState(scenario, combination, clip_id, sel, signal, False, ab_pair)
        self.view: _View | None = None
        self._syncing = False
        self._players: dict = {}                  # signal name -> HBox(Label, Audio)
        self._ab_row = None
        self._png: dict[tuple[str, str], bytes] = {}   # (clip_id, signal) -> spectrogram

        lay = w.Layout(width="auto")
        self.scenario_dd = w.Dropdown(description="scenario", options=self.scenarios, layout=lay)
        wide = {"description_width": "initial"}          # long labels are not cut off
        self.combination_dd = w.Dropdown(description="combination", layout=lay, style=wide)
        self.clip_dd = w.Dropdown(description="clip", layout=w.Layout(width="34em"))
        self.models_sel = w.SelectMultiple(description="models", options=self.labels,
                                           rows=min(4, len(self.labels)))
        self.signal_dd = w.Dropdown(description="spectrogram", layout=lay, style=wide)
        self.ab_toggle = w.ToggleButton(description="A/B back to back", value=False)
        self.ab_a = w.Dropdown(description="A", layout=lay)
        self.ab_b = w.Dropdown(description="B", layout=lay)
        self.header = w.HTML()
        self.players = w.VBox()
        self.ab_box = w.VBox()
        self.metrics = w.HTML()
        self.spectrogram = w.Image(format="png")
        self.widget = w.VBox([
            w.HBox([self.scenario_dd, self.combination_dd, self.clip_dd]),
            w.HBox([self.models_sel, w.VBox([self.signal_dd,
                                             w.HBox([self.ab_toggle, self.ab_a, self.ab_b])])]),
            self.header, self.metrics, self.players, self.ab_box, self.spectrogram,
        ])
        for widget, cb in ((self.scenario_dd, self.on_scenario_change),
                           (self.combination_dd, self.on_combination_change),
                           (self.clip_dd, self.on_clip_change),
                           (self.models_sel, self.on_models_change),
                           (self.signal_dd, self.on_signal_change),
                           (self.ab_toggle, self.on_ab_change),
                           (self.ab_a, self.on_ab_pair_change),
                           (self.ab_b, self.on_ab_pair_change)):
            widget.observe(cb, names="value")
        self._sync_widgets()
        self.refresh()

    # ---- choices ---------------------------------------------------------------------------
    def _combinations(self, scenario: str) -> list[str]:
        combos = set(self.scores.loc[self.scores["scenario"] == scenario, "combination"])
        from guitarsep.vocabulary import COMBINATIONS
        return [_ALL, *[c for c in COMBINATIONS if c in combos],
                *sorted(combos - set(COMBINATIONS))]

    def _clip_options(self, scenario: str, combination: str) -> list[tuple[str, str]]:
        return clip_options(self.scores, scenario, combination, reference=self.reference,
                            ref_label=self.ref_label)

    def _default_clip(self, scenario: str, combination: str) -> str:
        """The median clip (by the reference model) of the scenario / combination."""
        picked = pick_clips(self.scores, scenario, reference=self.reference, ranks=("median",),
                            combination=combination)
        if picked.empty:
            raise ValueError(f"no scored test clip in scenario {scenario!r} / {combination!r}")
        return str(picked.clip_id.iloc[0])

    # ---- callbacks ---------------------------------------------------------------------------
    def on_scenario_change(self, change) -> None:
        if self._syncing:
            return
        scenario = _new(change)
        combo = self.state.combination
        if combo not in self._combinations(scenario):
            combo = _ALL
        self._set(scenario=scenario, combination=combo,
                  clip_id=self._default_clip(scenario, combo))

    def on_combination_change(self, change) -> None:
        if self._syncing:
            return
        combo = _new(change)
        self._set(combination=combo, clip_id=self._default_clip(self.state.scenario, combo))

    def on_clip_change(self, change) -> None:
        if self._syncing:
            return
        clip_id = _new(change)
        row = self.scores[self.scores["clip_id"] == clip_id]
        if row.empty:
            raise KeyError(f"clip {clip_id!r} has no scores")
        updates = {"clip_id": clip_id}
        if row.scenario.iloc[0] != self.state.scenario:
            updates.update(scenario=row.scenario.iloc[0], combination=_ALL)
        elif self.state.combination not in (_ALL, row.combination.iloc[0]):
            updates["combination"] = _ALL
        self._set(**updates)

    def on_models_change(self, change) -> None:
        if self._syncing:
            return
        new = _new(change)
        sel = (new,) if isinstance(new, str) else tuple(new)
        unknown = set(sel) - set(self.labels)
        if unknown:
            raise KeyError(f"unknown model labels {sorted(unknown)}; have {self.labels}")
        sel = tuple(lb for lb in self.labels if lb in sel)          # keep the dict's order
        names = signal_names(sel)
        signal = self.state.signal if self.state.signal in names else "mixture"
        a, b = (x if x in names else d for x, d in zip(self.state.ab_pair, ("mixture", "target")))
        self._set(models=sel, signal=signal, ab_pair=(a, b))

    def on_signal_change(self, change) -> None:
        if self._syncing:
            return
        signal = _new(change)
        if signal not in signal_names(self.state.models):
            raise KeyError(f"unknown signal {signal!r}")
        self._set(signal=signal)

    def on_ab_change(self, change) -> None:
        if self._syncing:
            return
        self._set(ab=bool(_new(change)))

    def on_ab_pair_change(self, change=None) -> None:
        """``change``: an observe change (reads both A/B dropdowns) or a pair ``(a, b)``."""
        if self._syncing:
            return
        new = _new(change)
        pair = (tuple(new) if isinstance(new, (tuple, list)) and len(new) == 2
                else (self.ab_a.value, self.ab_b.value))
        names = signal_names(self.state.models)
        if not set(pair) <= set(names):
            raise KeyError(f"A/B signals must be among {names}, got {pair}")
        self._set(ab_pair=pair)

    # ---- state -> widgets -------------------------------------------------------------------
    def _set(self, **changes) -> None:
        self.state = replace(self.state, **changes)
        self._sync_widgets()
        self.refresh()

    def _sync_widgets(self) -> None:
        """Make every control show :attr:`state` without firing the callbacks."""
        st = self._syncing
        self._syncing = True
        try:
            s = self.state
            self.scenario_dd.value = s.scenario
            self.combination_dd.options = self._combinations(s.scenario)
            self.combination_dd.value = s.combination
            self.clip_dd.options = self._clip_options(s.scenario, s.combination)
            self.clip_dd.value = s.clip_id
            self.models_sel.value = s.models
            names = signal_names(s.models)
            self.signal_dd.options = names
            self.signal_dd.value = s.signal
            self.ab_a.options = names
            self.ab_b.options = names
            self.ab_a.value, self.ab_b.value = s.ab_pair
            self.ab_toggle.value = s.ab
        finally:
            self._syncing = st

    def compute_view(self) -> _View:
        """Separate (cached), then gather the signals, metrics, spectrogram and A/B audio of
        :attr:`state`."""
        s = self.state
        clip = self.cache.clip(s.clip_id)
        est = {lb: self.cache.estimate(s.clip_id, lb) for lb in s.models}
        signals = view_signals(clip.mix, clip.target, est)
        row = clip.row
        title = (f"{s.clip_id}: scenario {row.get('scenario')}, {row.get('combination')}, "
                 f"target {row.get('target_timbre')}, other {row.get('other_timbre')}")
        key = (s.clip_id, s.signal)
        if key not in self._png:
            if len(self._png) >= 32:
                self._png.pop(next(iter(self._png)))
            self._png[key] = spectrogram_png(signals[s.signal], clip.target_notes,
                                             clip.accomp_notes, sr=clip.sr,
                                             mask_params=self.profile.mask,
                                             title=f"{s.signal} — {s.clip_id}")
        png = self._png[key]
        ab = None
        if s.ab:
            a, b = (to_playback(signals[x], clip.sr, self.playback_sr) for x in s.ab_pair)
            ab = concat_ab(a, b, self.playback_sr, self.gap_s)
        metrics = clip_metrics(self.scores, s.clip_id, {lb: self.models[lb] for lb in s.models})
        return _View(s.clip_id, title, clip.sr, signals, metrics, png, ab)

    def refresh(self) -> None:
        """Recompute the view and update the players, metrics, spectrogram and A/B player.

        Player widgets are kept per signal name and only their ``value`` changes, so a long
        session (or an executed notebook's saved widget state) holds one player per signal."""
        import ipywidgets as w

        v = self.view = self.compute_view()
        self.header.value = f"<b>{html.escape(v.title)}</b>"
        self.metrics.value = metrics_html(v.metrics)
        rows = []
        for name, x in v.signals.items():
            if name not in self._players:
                self._players[name] = w.HBox([w.Label(name, layout=w.Layout(width="12em")),
                                           w.Audio(format="ogg", autoplay=False, loop=False)])
            self._players[name].children[1].value = encode_ogg(x, v.sr, rate=self.playback_sr)
            rows.append(self._players[name])
        for name in [n for n in self._players if n not in v.signals]:
            for child in (*self._players[name].children, self._players[name]):
                child.close()
            del self._players[name]
        self.players.children = rows
        self.spectrogram.value = v.png
        if v.ab_audio is not None:
            if self._ab_row is None:
                self._ab_row = w.HBox([w.Label(layout=w.Layout(width="12em")),
                                       w.Audio(format="ogg", autoplay=False, loop=False)])
            a, b = self.state.ab_pair
            self._ab_row.children[0].value = f"A/B: {a} → {b}"
            self._ab_row.children[1].value = encode_ogg(v.ab_audio, self.playback_sr,
                                                        rate=self.playback_sr)
            self.ab_box.children = [self._ab_row]
        else:
            self.ab_box.children = []

    # ---- display -------------------------------------------------------------------------------
    def static_html(self, *, signals: Sequence[str] | None = None) -> str:
        """The current view as one self-contained HTML fragment: title, metrics table, an
        ``<audio>`` player per signal (Ogg data URIs at the playback rate; default: mixture,
        target and the estimates, without the residuals, to keep executed notebooks small),
        the A/B player when on, and the spectrogram (PNG data URI)."""
        v = self.view or self.compute_view()
        names = (["mixture", "target", *self.state.models] if signals is None
                 else list(signals))
        rate = self.playback_sr

        def player(x, sr, title=""):
            return audio_tag(encode_ogg(x, sr, rate=rate), duration=len(x) / sr, title=title)

        rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{player(v.signals[n], v.sr, n)}"
                       f"</td></tr>" for n in names)
        ab = ""
        if v.ab_audio is not None:
            a, b = self.state.ab_pair
            ab = (f"<p>A/B: <b>{html.escape(a)}</b>, {self.gap_s:g} s silence, "
                  f"<b>{html.escape(b)}</b></p>"
                  + player(v.ab_audio, rate, f"A/B: {a} then {b}"))
        img = base64.b64encode(v.png).decode()
        return (f"<div class='guitarsep-listen'><h4>{html.escape(v.title)}</h4>"
                f"{metrics_html(v.metrics)}<table>{rows}</table>{ab}"
                f"<img alt='spectrogram of {html.escape(self.state.signal)}' "
                f"src='data:image/png;base64,{img}' style='max-width:100%'/></div>")

    def show_static(self, **kw) -> None:
        """``display`` :meth:`static_html` (for executed notebooks, papermill)."""
        from IPython.display import HTML, display
        display(HTML(self.static_html(**kw)))

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def listening_panel(profile, corpus, scores: pd.DataFrame, models: Mapping,
                    **kwargs) -> ListeningPanel:
    """Build a :class:`ListeningPanel` for ``models`` (``{label: network | reference name}``,
    e.g. :func:`load_listen_models`) on the test clips of ``corpus`` scored in ``scores``
    (the per-clip table ``data/results/<profile>/scores.csv``). Keyword arguments go to
    :class:`ListeningPanel` (``scenario``, ``combination``, ``clip_id``, ``selected``,
    ``signal``, ``playback_sr``, ``gap_s``, ``device``)."""
    return ListeningPanel(profile, corpus, scores, models, **kwargs)
