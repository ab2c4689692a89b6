"""Model files: ``<stem>.safetensors`` (weights) beside ``<stem>.json`` (the :class:`ModelCard`).

:func:`save_model` writes both atomically; :func:`load_model` rebuilds the network from the card's
architecture through :func:`scopenet.nn.build_architecture` and loads the weights strictly; cards of
the older flat layout are migrated on reading (:func:`scopenet.weights.card.migrate_card`).
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._fileutil import atomic_output
from .._version import __version__
from ..errors import InputError, ReadError, WriteError
from .card import ModelCard

__all__ = ["load_model", "model_files", "read_card", "save_model"]


def _stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def model_files(path_stem: str | Path) -> tuple[Path, Path]:
    """``(<stem>.safetensors, <stem>.json)`` for a stem or either file's path."""
    s = _stem(path_stem)
    return s.parent / (s.name + ".safetensors"), s.parent / (s.name + ".json")


def save_model(path_stem: str | Path, model: nn.Module, card: ModelCard | dict[str, Any] | None = None,
               overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``model``'s weights (safetensors) and its model card (JSON) beside each other.

    Parameters
    ----------
    path_stem : str or Path
        ``out/em-poisson`` writes ``out/em-poisson.safetensors`` and ``out/em-poisson.json``.
    model : nn.Module
        Must expose ``arch_name`` and ``config`` unless the card gives the architecture.
    card : ModelCard or dict
        A dict may use the schema's keys or the older flat ones (migrated, see
        :func:`~scopenet.weights.card.migrate_card`). ``name`` (default: the file stem),
        ``architecture``, ``scopenet_version``, ``created`` and ``n_parameters`` are filled in.
    overwrite : bool
        Replace existing files.

    Returns
    -------
    (weights_path, card_path)

    Raises
    ------
    WriteError
        When a file exists and ``overwrite`` is False, or cannot be written.
    InputError
        When the card does not fit the schema.
    """
    from pydantic import ValidationError
    from pydantic_core import PydanticSerializationError
    from safetensors.torch import save_file

    from ..nn import architecture_of

    weights_path, card_path = model_files(path_stem)
    if not overwrite:
        for p in (weights_path, card_path):
            if p.exists():
                raise WriteError(p, "file exists (pass overwrite=True to replace it)")
    raw = card.to_dict() if isinstance(card, ModelCard) else dict(card or {})
    raw.setdefault("name", weights_path.stem)
    if "architecture" not in raw:
        raw["architecture"] = architecture_of(model)
    try:
        c = ModelCard.from_dict(raw)
    except ValidationError as exc:
        raise InputError(f"model card does not fit the ModelCard schema: {exc}") from exc
    c = c.model_copy(update={
        "scopenet_version": c.scopenet_version or __version__,
        "created": c.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "n_parameters": int(sum(p.numel() for p in model.parameters()))})
    try:
        text = json.dumps(c.to_dict(), indent=2, sort_keys=False, allow_nan=True)
    except (TypeError, ValueError, PydanticSerializationError) as exc:
        raise InputError(f"model card is not JSON-serialisable: {exc}") from exc

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_output(weights_path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "scopenet_card": "see .json"})
    with atomic_output(card_path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n")
    return weights_path, card_path


def read_card(path_stem: str | Path) -> ModelCard:
    """The model card of a saved model (``ReadError`` when missing, not JSON or not a card)."""
    from pydantic import ValidationError

    _, card_path = model_files(path_stem)
    if not card_path.is_file():
        raise ReadError(card_path, "model card not found (a saved model is <stem>.safetensors + <stem>.json)")
    try:
        raw = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReadError(card_path, f"model card is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("architecture"), dict) \
            or "name" not in raw["architecture"]:
        raise ReadError(card_path, "model card has no 'architecture': {'name': ..., 'config': ...}")
    raw.setdefault("name", card_path.stem)
    try:
        return ModelCard.from_dict(raw)
    except ValidationError as exc:
        first = str(exc).splitlines()
        raise ReadError(card_path, f"not a scopenet model card ({' '.join(first[:3])})") from exc


def _resolve(path_or_name: str | Path) -> Path:
    p = _stem(path_or_name)
    weights_path, card_path = model_files(p)
    if weights_path.exists() or card_path.exists():
        return p
    if isinstance(path_or_name, str) and "/" not in path_or_name and "\\" not in path_or_name:
        from . import find_model

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
        In eval mode, with its :class:`ModelCard` attached as ``model.scopenet_card``.
    """
    from safetensors.torch import load_file

    from ..nn import build_architecture

    stem = _resolve(path_or_name)
    weights_path, card_path = model_files(stem)
    card = read_card(stem)
    if not weights_path.is_file():
        raise ReadError(weights_path, "weights file missing beside its model card")
    try:
        model = build_architecture(card.architecture.name, card.architecture.config)
    except InputError as exc:
        raise ReadError(card_path, str(exc)) from exc
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except Exception as exc:  # safetensors raises SafetensorError, OSError or others on corrupt files
        raise ReadError(weights_path, f"not a readable safetensors file ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ReadError(weights_path, f"weights do not fit architecture {card.architecture.name!r}: "
                                      f"{str(exc).splitlines()[0]}") from exc
    model.to(map_location).eval()
    model.scopenet_card = card
    return model


