"""Models as files: safetensors weights plus a JSON model card; ONNX and TorchScript export.

A saved model is a pair ``<stem>.safetensors`` + ``<stem>.json``. The card holds everything needed
to rebuild and judge the network::

    {"name": "em-poisson", "task": "denoise",
     "architecture": {"name": "unet", "config": {"depth": 3, ...}},
     "training_data": "...", "metrics": {"val_psnr": 31.2}, "training_time_s": 5400.0,
     "scopenet_version": "0.1.0", "created": "2025-01-01T00:00:00+00:00", "n_parameters": 123456}

:func:`load_model` rebuilds the network through :func:`scopenet.nn.build_architecture` and loads
the weights strictly.
"""
from __future__ import annotations

import datetime as _dt
import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._fileutil import atomic_output
from .._version import __version__
from ..errors import InputError, ReadError, WriteError, require

CARD_FORMAT = 1


def _stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def model_files(path_stem: str | Path) -> tuple[Path, Path]:
    """``(<stem>.safetensors, <stem>.json)`` for a stem or either file's path."""
    s = _stem(path_stem)
    return s.parent / (s.name + ".safetensors"), s.parent / (s.name + ".json")


def save_model(path_stem: str | Path, model: nn.Module, card: dict[str, Any] | None = None,
               overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``model``'s weights (safetensors) and its model card (JSON) beside each other.

    Parameters
    ----------
    path_stem : str or Path
        ``out/em-poisson`` writes ``out/em-poisson.safetensors`` and ``out/em-poisson.json``.
    model : nn.Module
        Must expose ``arch_name`` and ``config`` unless ``card["architecture"]`` is given.
    card : dict
        Model-card fields (``task``, ``training_data``, ``metrics``, ``training_time_s``,
        ``input_shape``, ...); ``architecture``, ``name``, ``scopenet_version``, ``created`` and
        ``n_parameters`` are filled in when absent.
    overwrite : bool
        Replace existing files.

    Returns
    -------
    (weights_path, card_path)
    """
    from safetensors.torch import save_file

    from ..nn import architecture_of

    weights_path, card_path = model_files(path_stem)
    if not overwrite:
        for p in (weights_path, card_path):
            if p.exists():
                raise WriteError(p, "file exists (pass overwrite=True / --overwrite to replace it)")
    card = dict(card or {})
    card.setdefault("name", weights_path.stem)
    card.setdefault("task", None)
    if "architecture" not in card:
        card["architecture"] = architecture_of(model)
    arch = card["architecture"]
    if not isinstance(arch, dict) or "name" not in arch:
        raise InputError("card['architecture'] must be a dict with 'name' and 'config'")
    arch.setdefault("config", {})
    card.setdefault("scopenet_version", __version__)
    card.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    card["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
    card["card_format"] = CARD_FORMAT
    try:
        text = json.dumps(card, indent=2, sort_keys=False, allow_nan=True)
    except TypeError as exc:
        raise InputError(f"model card is not JSON-serialisable: {exc}") from exc

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_output(weights_path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "scopenet_card": "see .json"})
    with atomic_output(card_path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n")
    return weights_path, card_path


def read_card(path_stem: str | Path) -> dict[str, Any]:
    """The model card of a saved model (``ReadError`` when missing or not JSON)."""
    _, card_path = model_files(path_stem)
    if not card_path.is_file():
        raise ReadError(card_path, "model card not found (a saved model is <stem>.safetensors + <stem>.json)")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise ReadError(card_path, f"model card is not valid JSON ({exc})") from exc
    if not isinstance(card, dict) or not isinstance(card.get("architecture"), dict) \
            or "name" not in card["architecture"]:
        raise ReadError(card_path, "model card has no 'architecture': {'name': ..., 'config': ...}")
    return card


def _resolve(path_or_name: str | Path) -> Path:
    p = _stem(path_or_name)
    weights_path, card_path = model_files(p)
    if weights_path.exists() or card_path.exists():
        return p
    if isinstance(path_or_name, str) and "/" not in path_or_name and "\\" not in path_or_name:
        from ..weights import find_model

        return find_model(path_or_name)
    raise ReadError(weights_path, "no saved model here (expected <stem>.safetensors and <stem>.json)")


def load_model(path_or_name: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved model from its card and load its weights.

    Parameters
    ----------
    path_or_name : str or Path
        A stem or either file of a saved model, or the name of an installed model
        (see :func:`scopenet.weights.list_models`).
    map_location : str or torch.device

    Returns
    -------
    nn.Module
        In eval mode, with the card attached as ``model.scopenet_card``.
    """
    from safetensors.torch import load_file

    from ..nn import build_architecture

    stem = _resolve(path_or_name)
    weights_path, card_path = model_files(stem)
    card = read_card(stem)
    if not weights_path.is_file():
        raise ReadError(weights_path, "weights file missing beside its model card")
    try:
        model = build_architecture(card["architecture"]["name"], card["architecture"].get("config", {}))
    except InputError as exc:
        raise ReadError(card_path, str(exc)) from exc
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except Exception as exc:  # safetensors raises SafetensorError, OSError or others on corrupt files
        raise ReadError(weights_path, f"not a readable safetensors file ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ReadError(weights_path, f"weights do not fit architecture {card['architecture']['name']!r}: "
                                      f"{str(exc).splitlines()[0]}") from exc
    model.to(map_location).eval()
    model.scopenet_card = card
    return model


def example_input(model_or_card: nn.Module | dict[str, Any], size: int = 64) -> torch.Tensor:
    """A ``(1, C, size, size)`` input (or the card's ``input_shape``) for export and parity checks."""
    card = model_or_card if isinstance(model_or_card, dict) else getattr(model_or_card, "scopenet_card", {})
    if card.get("input_shape"):
        shape = tuple(int(s) for s in card["input_shape"])
    else:
        cfg = card.get("architecture", {}).get("config", {}) if card else getattr(model_or_card, "config", {})
        shape = (1, int(cfg.get("in_channels", 1)), size, size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor, overwrite: bool = False,
                opset: int = 17) -> Path:
    """Export ``model`` to ONNX (batch axis dynamic; other sizes fixed by ``example``).

    Uses the TorchScript-based exporter (no ``onnxscript`` needed).
    """
    path = Path(path)
    model = model.eval()
    with atomic_output(path, overwrite=overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return path


def export_torchscript(model: nn.Module, path: str | Path, example: torch.Tensor, overwrite: bool = False) -> Path:
    """Trace ``model`` with ``example`` and save the TorchScript module."""
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model.eval(), example)
    with atomic_output(path, overwrite=overwrite) as tmp:
        traced.save(str(tmp))
    return path


def export_parity(model: nn.Module, path: str | Path, example: torch.Tensor) -> float:
    """Largest absolute difference between ``model(example)`` and the exported file's output."""
    path = Path(path)
    with torch.no_grad():
        ref = model.eval()(example).cpu().numpy()
    if path.suffix == ".onnx":
        ort = require("onnxruntime", "onnx", "ONNX export")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {"input": example.cpu().numpy()})[0]
    else:
        out = torch.jit.load(str(path)).eval()(example).detach().cpu().numpy()
    import numpy as np

    return float(np.max(np.abs(out - ref)))
