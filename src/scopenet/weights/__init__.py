"""Model files and pretrained models: shipped in this folder or installed in the user's cache.

A model is a pair ``<name>.safetensors`` + ``<name>.json``: the weights and the :class:`ModelCard`
(:mod:`.card`), written and read by :mod:`.files` (``save_model``, ``load_model``, ``read_card``).
Search order: the shipped folder (``scopenet/weights/``), then the user cache
(``platformdirs.user_cache_dir("scopenet")/weights``, or ``$SCOPENET_WEIGHTS_DIR`` when set).

>>> from scopenet.weights import list_models, pretrained
>>> [m.name for m in list_models()]              # doctest: +SKIP
>>> net = pretrained("em-poisson")               # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, ReadError
from .card import Headline, ModelCard
from .files import load_model, model_files, read_card, save_model

SHIPPED_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The user's weights folder: ``$SCOPENET_WEIGHTS_DIR`` or ``user_cache_dir("scopenet")/weights``."""
    env = os.environ.get("SCOPENET_WEIGHTS_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("scopenet")) / "weights"


def search_dirs() -> list[tuple[str, Path]]:
    """``[("shipped", path), ("cache", path)]`` in search order."""
    return [("shipped", SHIPPED_DIR), ("cache", cache_dir())]


@dataclass
class ModelInfo:
    """One installed model: its name, files, where it came from and what its card says."""

    name: str
    stem: Path
    source: str
    task: str | None
    architecture: str
    size_bytes: int
    card: ModelCard

    @property
    def headline(self) -> Headline | None:
        """The card's headline figure (``None`` when it has none)."""
        return self.card.metrics.headline


def list_models() -> list[ModelInfo]:
    """All installed models (shipped first, then cache; a cached name shadowed by a shipped one is skipped).

    Files with an unreadable card are ignored.
    """
    seen: set[str] = set()
    out: list[ModelInfo] = []
    for source, d in search_dirs():
        if not d.is_dir():
            continue
        for card_path in sorted(d.glob("*.json")):
            weights = card_path.with_suffix(".safetensors")
            name = card_path.stem
            if name in seen or not weights.is_file():
                continue
            try:
                card = read_card(card_path)
            except ReadError:
                continue
            seen.add(name)
            out.append(ModelInfo(name=name, stem=card_path.with_suffix(""), source=source, task=card.task,
                                 architecture=card.architecture.name, size_bytes=weights.stat().st_size,
                                 card=card))
    return out


def find_model(name: str) -> Path:
    """The file stem of the installed model ``name``; ``InputError`` naming the installed ones otherwise."""
    for m in list_models():
        if m.name == name:
            return m.stem
    names = ", ".join(m.name for m in list_models()) or "none"
    raise InputError(f"no installed model named {name!r} (installed: {names}); models are looked for in "
                     f"{SHIPPED_DIR} and {cache_dir()}")


def pretrained(name: str, map_location: str = "cpu"):
    """Load the installed model ``name`` (network in eval mode, card in ``.scopenet_card``)."""
    return load_model(find_model(name), map_location=map_location)


__all__ = ["Headline", "ModelCard", "ModelInfo", "SHIPPED_DIR", "cache_dir", "find_model", "list_models", "load_model",
           "model_files", "pretrained", "read_card", "save_model", "search_dirs"]
