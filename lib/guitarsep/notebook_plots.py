"""Plots that narrate the notebooks (masks, spectrograms, corpus statistics, training curves).

The paper's result figures live in :mod:`guitarsep.evaluation.figures`; this module holds the
explanatory plots of ``01_data.ipynb`` (score masks over the frequency axis, spectrograms with
masks), ``02_train.ipynb`` (loss and validation curves) and ``05_listen.ipynb`` (spectrograms
with masks, via :mod:`guitarsep.app.listening`). Every function takes arrays or tables and
returns a matplotlib Figure; none reads files.
"""
from __future__ import annotations

import librosa
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["note_ticks", "plot_score_masks", "plot_spectrogram_with_masks", "plot_training_curves"]


def note_ticks(ax, fmin: float, fmax: float, *, axis: str = "y") -> None:
    """Label a frequency axis (Hz) with the note names of every C and of the open E strings."""
    midi = np.arange(int(np.ceil(librosa.hz_to_midi(max(fmin, 20.0)))),
                     int(np.floor(librosa.hz_to_midi(fmax))) + 1)
    keep = midi[(midi % 12 == 0) | np.isin(midi, [40, 52, 64, 76])]
    hz = librosa.midi_to_hz(keep)
    names = [librosa.midi_to_note(int(m), unicode=False) for m in keep]
    (ax.set_yticks if axis == "y" else ax.set_xticks)(hz, names)


def _extent(n_frames: int, n_bins: int, sr: int, hop: int, n_fft: int):
    return (0.0, n_frames * hop / sr, 0.0, (n_bins - 1) * sr / n_fft)


def plot_score_masks(soft: np.ndarray, binary: np.ndarray, *, sr: int, n_fft: int, hop: int,
                     fmax: float = 2500.0, title: str = ""):
    """Binary and soft score masks side by side, frequency axis labelled with note names.

    ``soft``, ``binary``: (frames, bins) arrays from :func:`guitarsep.score.score_masks`.
    Used by 01_data.ipynb.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True, constrained_layout=True)
    ext = _extent(soft.shape[0], soft.shape[1], sr, hop, n_fft)
    for ax, m, name in zip(axes, (binary, soft), ("binary mask $M_t$",
                                                  "soft mask $M_t / (M_t + M_a)$")):
        im = ax.imshow(m.T, origin="lower", aspect="auto", extent=ext, cmap="magma",
                       vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylim(30, fmax)
        ax.set_xlabel("time (s)")
        ax.set_title(name)
    axes[0].set_ylabel("frequency")
    note_ticks(axes[0], 30, fmax)
    fig.colorbar(im, ax=axes, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_spectrogram_with_masks(mag: np.ndarray, m_target: np.ndarray, m_accomp: np.ndarray, *,
                                sr: int, n_fft: int, hop: int, fmax: float = 4000.0,
                                title: str = "", ax=None):
    """Log-magnitude spectrogram with target (cyan) and accompaniment (orange) masks as contours.

    ``mag``, ``m_target``, ``m_accomp``: (frames, bins). Used by 01_data and 05_listen.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 4.5), constrained_layout=True)
    else:
        fig = ax.figure
    ext = _extent(mag.shape[0], mag.shape[1], sr, hop, n_fft)
    db = librosa.amplitude_to_db(np.asarray(mag).T, ref=np.max, top_db=80)
    ax.imshow(db, origin="lower", aspect="auto", extent=ext, cmap="gray_r",
              interpolation="nearest")
    times = (np.arange(mag.shape[0]) * hop / sr)
    freqs = np.arange(mag.shape[1]) * sr / n_fft
    for m, colour in ((m_target, "tab:cyan"), (m_accomp, "tab:orange")):
        ax.contour(times, freqs, np.asarray(m, dtype=float).T, levels=[0.5], colors=colour,
                   linewidths=0.6)
    ax.plot([], [], color="tab:cyan", label="target score")
    ax.plot([], [], color="tab:orange", label="accompaniment score")
    ax.legend(loc="upper right")
    ax.set_ylim(30, fmax)
    note_ticks(ax, 30, fmax)
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    return fig


def plot_spectrogram_with_notes(mag: np.ndarray, notes, *, sr: int, n_fft: int, hop: int,
                                fmax: float = 2000.0, title: str = "", ax=None):
    """Log-magnitude spectrogram with ``notes`` (a ``score.Notes``) drawn as a piano roll on
    the frequency axis: one line per note at its fundamental, from onset to offset.

    ``mag``: (frames, bins). Used by the listening page (``app.demo_page``) and 05_listen.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 3), constrained_layout=True)
    else:
        fig = ax.figure
    fmin = 60.0
    freqs = np.arange(mag.shape[1]) * sr / n_fft
    keep = (freqs >= fmin * 0.9) & (freqs <= fmax * 1.1)
    times = np.arange(mag.shape[0]) * hop / sr
    db = librosa.amplitude_to_db(np.asarray(mag)[:, keep].T, ref=np.max, top_db=70)
    # a log-frequency axis, so every octave of the guitar gets the same height
    ax.pcolormesh(times, freqs[keep], db, cmap="gray_r", shading="nearest", rasterized=True)
    ax.set_yscale("log")
    f0 = librosa.midi_to_hz(np.asarray(notes.pitch, dtype=float))
    ax.hlines(f0, notes.onset, notes.offset, colors="tab:red", linewidths=2.0, alpha=0.6)
    ax.set_ylim(fmin, fmax)
    ax.set_xlim(times[0], times[-1])
    octaves = [f for f in librosa.midi_to_hz(np.arange(28, 100, 12)) if fmin <= f <= fmax]
    ax.set_yticks(octaves, [librosa.hz_to_note(f) for f in octaves])
    ax.minorticks_off()
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    return fig


def plot_training_curves(logs):
    """Training loss, validation loss and validation SI-SDR per epoch, one line per model.

    ``logs``: tidy DataFrame with columns model (e.g. ``modern-si_umx_soft``), epoch,
    train_loss, valid_loss, valid_si_sdr. Used by 02_train.ipynb.
    """
    import seaborn as sns

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for ax, col, label in zip(axes, ("train_loss", "valid_loss", "valid_si_sdr"),
                              ("training loss (MSE)", "validation loss (MSE)",
                               "validation SI-SDR (dB, median)")):
        sns.lineplot(data=logs, x="epoch", y=col, hue="model", ax=ax, legend=ax is axes[-1],
                     marker="o", markersize=3)
        ax.set_ylabel(label)
        if "loss" in col:
            ax.set_yscale("log")
    if axes[-1].get_legend():
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1, 1), fontsize=8)
    return fig
