"""One contract for every model file: training's ``best.pt`` / ``last.pt`` and exported models.

Used by the training loop (``training.loop``: writes ``best.pt`` and ``last.pt``), by
evaluation, the listening panel and the demo page (:func:`load_model` of a run folder), by
``guitarsep separate`` (a shipped model, a run folder or any file) and by ``guitarsep export``
(:func:`export_model`). Notebooks 02, 03, 05 and 06 reach it through those.

A model file is a ``torch.save``d dict::

    {"format": "guitarsep-model", "version": 2,
     "name": registry name (guitarsep.models.MODEL_NAMES), "setting": StftSetting name,
     "hparams": build_model keyword arguments, "mask": MaskParams as a dict,
     "state_dict": weights,
     "meta": {"epoch", "valid_loss", "valid_si_sdr", "config_hash", "provenance", ...},
     "training": {...}   # last.pt only: optimizer, scheduler, RNG and loop state}

The mask parameters travel with the weights, because a network only works with the score
masks it was trained on: :func:`load_model` returns them and every caller separates with them.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from guitarsep import RESOURCES
from guitarsep.config import SETTINGS, MaskParams, StftSetting
from guitarsep.io import atomic_path, one_line, save_torch_atomic, sha256_hex, write_json_atomic

__all__ = ["ModelFileError", "LoadedModel", "save_checkpoint", "read_checkpoint", "load_model",
           "export_model", "resolve_model_path", "shipped_model_path", "weights_checksum",
           "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "DEFAULT_MODEL", "SCORE_NMF"]

MODEL_FORMAT = "guitarsep-model"
MODEL_FORMAT_VERSION = 2
#: The score-informed NMF separator: a model name that loads no file (separation.score_nmf).
SCORE_NMF = "score_nmf"
DEFAULT_MODEL = SCORE_NMF
RUN_FILES = ("best.pt", "last.pt")      # a training run folder: the best epoch, else the last
_MODEL_SUFFIXES = (".pt", ".pth", ".ckpt")


class ModelFileError(ValueError):
    """A model file that cannot be used (one line, naming the file and the problem)."""


@dataclass
class LoadedModel:
    """A network in eval mode with everything needed to separate with it."""

    model: torch.nn.Module             # guitarsep.models.SeparationModel
    name: str
    setting: StftSetting
    hparams: dict
    mask: MaskParams                   # the score-mask parameters it was trained with
    path: Path | None = None
    info: dict = field(default_factory=dict)   # metadata + provenance sidecar

    @property
    def score_kind(self) -> str | None:
        return self.model.score_kind


def shipped_model_path(name: str) -> Path:
    """Where the shipped model ``name`` lives: ``lib/guitarsep/resources/<name>.pt``."""
    return RESOURCES / f"{name}.pt"


def weights_checksum(model: torch.nn.Module) -> str:
    """sha256 (16 hex) of every parameter and buffer of ``model`` (bitwise)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def checkpoint_payload(model: torch.nn.Module, setting: StftSetting | str, mask: MaskParams,
                       *, meta: dict | None = None, training: dict | None = None) -> dict:
    """The dict :func:`save_checkpoint` writes, for a network built by ``build_model``."""
    payload = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "name": model.name,
               "setting": setting if isinstance(setting, str) else setting.name,
               "hparams": dict(model.hparams), "mask": asdict(mask),
               "state_dict": model.state_dict(), "meta": dict(meta or {})}
    if training is not None:
        payload["training"] = training
    return payload


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    setting: StftSetting | str, mask: MaskParams, *, meta: dict | None = None,
                    training: dict | None = None) -> Path:
    """Write ``model`` (and, for ``last.pt``, the ``training`` state) atomically."""
    return save_torch_atomic(checkpoint_payload(model, setting, mask, meta=meta,
                                                training=training), path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checked dict of a model file (see the module docstring); raises
    :class:`ModelFileError` for an unreadable file or one of another format."""
    path = Path(path)
    try:
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # last.pt holds RNG states (numpy arrays), which the safe loader refuses
            ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelFileError(f"{path}: not a readable model file ({type(e).__name__}: "
                             f"{one_line(e)})") from None
    if not isinstance(ck, dict) or ck.get("format") != MODEL_FORMAT:
        what = sorted(map(str, ck))[:8] if isinstance(ck, dict) else type(ck).__name__
        raise ModelFileError(f"{path}: not a guitarsep model file (holds {what}; expected "
                             f"format {MODEL_FORMAT!r})")
    if ck.get("version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(f"{path}: model file version {ck.get('version')!r}; this "
                             f"guitarsep reads version {MODEL_FORMAT_VERSION} (re-export it "
                             f"with `guitarsep export`)")
    return ck


def _build(ck: dict, path: Path) -> tuple[torch.nn.Module, StftSetting, MaskParams]:
    from guitarsep.models import MODEL_NAMES, build_model

    name, setting = ck.get("name"), ck.get("setting")
    if name not in MODEL_NAMES:
        raise ModelFileError(f"{path}: unknown model name {name!r} in the file")
    if setting not in SETTINGS:
        raise ModelFileError(f"{path}: unknown STFT setting {setting!r} in the file")
    try:
        mask = MaskParams(**ck["mask"])
        model = build_model(name, setting, **ck["hparams"])
        ref = model.state_dict()
        state = {k: (v.to(ref[k].dtype) if k in ref and v.is_floating_point() else v)
                 for k, v in ck["state_dict"].items()}
        model.load_state_dict(state)
    except Exception as e:
        raise ModelFileError(f"{path}: weights do not fit {name} {ck.get('hparams')} "
                             f"({type(e).__name__}: {one_line(e)})") from None
    return model.eval(), SETTINGS[setting], mask


def resolve_model_path(name_or_path: str | os.PathLike | None) -> Path:
    """The file behind a model argument: a registered network name (its shipped file), a run
    folder (``best.pt``, else ``last.pt``) or a file (``score_nmf``, the default, has none:
    :func:`load_model` builds it)."""
    from guitarsep.models import MODEL_NAMES

    spec = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    path = Path(spec).expanduser()
    if path.is_dir():
        found = [path / f for f in RUN_FILES if (path / f).is_file()]
        if not found:
            raise ModelFileError(f"{path}: folder holds no best.pt or last.pt checkpoint")
        return found[0]
    if path.is_file():
        return path
    if os.sep in spec or "/" in spec or path.suffix.lower() in _MODEL_SUFFIXES:
        raise ModelFileError(f"{path}: model file not found")
    if spec not in MODEL_NAMES:
        raise ModelFileError(f"unknown model {spec!r}: not a file, and not one of "
                             f"{', '.join((SCORE_NMF,) + MODEL_NAMES)}")
    path = shipped_model_path(spec)
    if not path.is_file():
        raise ModelFileError(
            f"{path}: model {spec!r} is not shipped with this copy; train it (`guitarsep "
            f"train --profile default --model {spec} --setting modern`, or `make reproduce`),"
            f" export it (`guitarsep export data/default/models/modern-{spec} {path}`), or "
            f"pass a checkpoint with --model PATH")
    return path


def load_model(name_or_path: str | os.PathLike | None = None, device: str = "cpu"
               ) -> LoadedModel:
    """Load any model file (see :func:`resolve_model_path`) into a :class:`LoadedModel`.

    ``info`` holds the file's metadata, overlaid on its JSON sidecar when there is one.
    Raises :class:`ModelFileError` (one line) for a missing or unusable file.
    """
    if (DEFAULT_MODEL if name_or_path is None else name_or_path) == SCORE_NMF:
        return _score_nmf(device)
    path = resolve_model_path(name_or_path)
    ck = read_checkpoint(path)
    model, setting, mask = _build(ck, path)
    info = {}
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            info = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            pass
    info.update(ck["meta"])
    return LoadedModel(model.to(device), ck["name"], setting, dict(ck["hparams"]), mask, path,
                       info)


def _score_nmf(device: str) -> LoadedModel:
    """The score-informed NMF separator (no weights, no file): modern STFT, default comb
    tolerances for its activation constraints."""
    from guitarsep.separation.score_nmf import NmfParams, ScoreNmf

    params, mask = NmfParams(), MaskParams()
    return LoadedModel(ScoreNmf(SETTINGS["modern"], mask, params).to(device), SCORE_NMF,
                       SETTINGS["modern"], asdict(params), mask, None,
                       {"kind": "score-informed NMF, no learned parameters"})


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def export_model(source: str | os.PathLike, out_path: str | os.PathLike,
                 provenance: dict | None = None, *, dtype: str = "float32") -> dict:
    """Write a slim, shippable model file from a checkpoint, a run folder or another export.

    The file holds the weights only (no optimizer, no RNG), floating tensors in ``dtype``
    ("float32", or "float16" to halve the size; :func:`load_model` converts back), with the
    source's metadata and ``provenance`` under ``meta``. The sidecar
    ``out_path.with_suffix(".json")`` records the provenance plus the model's name, setting,
    hparams, mask parameters, parameter count, the source's epoch / validation loss, the
    file's size and sha256. Both are written atomically. Returns the sidecar dict.
    """
    from guitarsep.models import count_parameters

    lm = load_model(source)
    out = Path(out_path)
    tdtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    provenance = dict(provenance or {})
    meta = {k: _plain(v) for k, v in lm.info.items()
            if k in ("epoch", "valid_loss", "valid_si_sdr", "config_hash")}
    payload = checkpoint_payload(lm.model, lm.setting, lm.mask,
                                 meta={**meta, "provenance": provenance})
    payload["state_dict"] = {k: (v.detach().to(tdtype) if v.is_floating_point()
                                 else v.detach()).contiguous()
                             for k, v in payload["state_dict"].items()}
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    side = {**provenance, "model": lm.name, "setting": lm.setting.name, "hparams": lm.hparams,
            "mask": asdict(lm.mask), "parameters": int(count_parameters(lm.model)),
            "dtype": dtype, "file": out.name, "size_bytes": out.stat().st_size,
            "sha256": sha256_hex(out), "source_checkpoint": str(lm.path), **meta}
    write_json_atomic(out.with_suffix(".json"), side)
    return side
