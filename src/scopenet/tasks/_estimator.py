"""The estimator contract: one shape for every task's model (``tasks/<task>/model.py``).

An estimator holds one pydantic ``config`` (its settings, YAML-able) and a ``device``; fitted state ends
in ``_``: ``net_`` (the network), ``card_`` (its :class:`~scopenet.weights.ModelCard`) and ``history_``
(losses of the last :meth:`fit`). Every estimator has

- ``Est.pretrained(name)``: a shipped or cached model by card name or short alias;
- ``Est.load(path)`` / ``est.save(path, overwrite=False)``: ``<stem>.safetensors`` + ``<stem>.json``;
- ``est.fit(data, **overrides) -> est``: training on the shared engine, ``history_`` recorded;
- ``est.predict(x, *, tta=1)``: ``x`` a 2-D array, an ``(n, y, x)`` stack, a Micrograph or a list of
  them; image-to-image tasks return the same kind (a Micrograph keeps its calibration, with one
  provenance entry added); ``tta`` is a number of views (:mod:`scopenet.image.tta`).

Tasks register their estimator with :func:`register`; :func:`estimators` lists them (the contract
test runs over that list), and :func:`cached` is the one cache behind the one-call helpers
(``sn.denoise``, ``sn.inpaint``, ``sn.super_resolve``, ``sn.classify``).

>>> from scopenet.tasks import estimators
>>> sorted(estimators())                                  # doctest: +SKIP
['classify', 'denoise', 'inpaint', 'superres']
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from ..errors import InputError, ReadError
from ..image.micrograph import Micrograph

__all__ = ["Estimator", "Router", "cached", "clear_cache", "estimator_class", "estimators", "map_images",
           "register"]

E = TypeVar("E", bound="Estimator")

_REGISTRY: dict[str, type["Estimator"]] = {}
_CACHE: dict[tuple[str, str], Any] = {}


def register(cls: type[E]) -> type[E]:
    """Class decorator: register an estimator under its ``task`` (one estimator per task)."""
    task = getattr(cls, "task", None)
    if not task:
        raise InputError(f"{cls.__name__} has no 'task'")
    _REGISTRY[task] = cls
    return cls


def _import_tasks() -> None:
    import importlib

    for task in ("denoise", "inpaint", "superres", "classify", "embed", "exitwave", "adaptive_scan", "segment", "atoms"):
        importlib.import_module(f"scopenet.tasks.{task}.model")


def estimators() -> dict[str, type["Estimator"]]:
    """``{task: estimator class}`` for every registered task."""
    _import_tasks()
    return dict(_REGISTRY)


def estimator_class(task: str) -> type["Estimator"]:
    """The estimator class of ``task`` (``InputError`` naming the known tasks otherwise)."""
    reg = estimators()
    if task not in reg:
        raise InputError(f"unknown task {task!r}; tasks: {', '.join(sorted(reg))}")
    return reg[task]


def cached(key: tuple[str, str], make: Callable[[], Any]) -> Any:
    """The object cached under ``key``, made by ``make()`` the first time (the one-call helpers' cache)."""
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every cached pretrained model (e.g. after installing new weights)."""
    _CACHE.clear()


# ------------------------------------------------------------------------------- input handling
def _frames_of(x: Any, what: str) -> tuple[list[np.ndarray], str]:
    """The 2-D frames of one image-like input, and its kind: "2d" or "stack"."""
    a = np.asarray(x.data if isinstance(x, Micrograph) else x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise InputError(f"{what} must be a real numeric image, got dtype {a.dtype}")
    if a.ndim == 2:
        return [a], "2d"
    if a.ndim == 3:
        return list(a), "stack"
    raise InputError(f"{what} must be a 2-D image or an (n, y, x) stack, got shape {a.shape}")


def map_images(fn: Callable[..., np.ndarray], x: Any, *others: Any, operation: str | None = None,
               provenance: Callable[[], dict[str, Any]] | None = None, what: str = "image") -> Any:
    """Apply ``fn(frame, *other_frames) -> ndarray`` to every 2-D frame of ``x`` and return the input's kind.

    ``x`` is a 2-D array, an ``(n, y, x)`` stack, a Micrograph (of either) or a list/tuple of these; each
    of ``others`` (e.g. the mask of a sparse scan) has the same structure and is split alongside. A
    Micrograph result keeps the calibration (the pixel size follows a change of shape, the field of
    view kept) and gets one provenance entry ``operation`` with ``provenance()``'s parameters.
    """
    if isinstance(x, (list, tuple)):
        if not x:
            raise InputError(f"{what}: empty list")
        for o in others:
            if not isinstance(o, (list, tuple)) or len(o) != len(x):
                raise InputError(f"{what}: a list input needs a list of the same length for every companion input")
        return [map_images(fn, xi, *(o[i] for o in others), operation=operation, provenance=provenance, what=what)
                for i, xi in enumerate(x)]
    if x is None:
        raise InputError(f"{what} is None")
    frames, kind = _frames_of(x, what)
    other_frames = []
    for o in others:
        of, _ = _frames_of(o, what + " companion")
        if len(of) != len(frames) or any(a.shape != b.shape for a, b in zip(of, frames)):
            raise InputError(f"{what}: companion input of shape {np.shape(getattr(o, 'data', o))} does not match "
                             f"shape {np.shape(getattr(x, 'data', x))}")
        other_frames.append(of)
    outs = [np.asarray(fn(f, *(of[i] for of in other_frames))) for i, f in enumerate(frames)]
    if kind == "2d":
        out = outs[0]
    else:
        shapes = {o.shape for o in outs}
        out = np.stack(outs) if len(shapes) == 1 else outs
    if not isinstance(x, Micrograph):
        return out
    params = provenance() if provenance is not None else {}
    return x.with_data(out, operation=operation, **params)


# ------------------------------------------------------------------------------------- the base
class Estimator:
    """Base of every task estimator (see the module docstring for the contract).

    Subclasses set ``task``, ``config_class``, ``aliases`` and ``default_model``, build their network in
    :meth:`build_net` and implement :meth:`predict` and :meth:`fit`.

    Parameters
    ----------
    config : pydantic model, dict or None
        The task's settings (``config_class``); keyword ``overrides`` update single fields.
    device : str, optional
        Where the network runs: ``"cpu"``, ``"cuda:1"``, ``"mps"`` or ``"auto"`` (a GPU when torch
        sees one); ``None`` means ``$SCOPENET_DEVICE``, else ``"auto"`` (:mod:`scopenet.nn.device`).
    """

    #: show a progress bar over the tiles of large images (the CLI turns it on at a terminal)
    progress: bool = False
    task: ClassVar[str] = ""
    config_class: ClassVar[type[BaseModel]]
    #: short names accepted by :meth:`pretrained` (``"default"`` included) -> installed model names
    aliases: ClassVar[dict[str, str]] = {}
    #: whether :meth:`predict` maps images to images of the same kind (False: to labels or scores)
    image_to_image: ClassVar[bool] = True

    def __init__(self, config: BaseModel | dict | None = None, *, device: str | None = None, **overrides: Any):
        self.config = self._make_config(config, overrides)
        self.device = device
        self.net_ = self.build_net()
        if self.net_ is not None and "arch_config" in type(self.config).model_fields:
            from ..nn import architecture_of

            self.config.arch_config = dict(architecture_of(self.net_)["config"])  # every argument, defaults too
        self.card_ = self._blank_card()
        self.history_: list[float] = []

    # ---------------------------------------------------------------- settings
    @classmethod
    def _make_config(cls, config: BaseModel | dict | None, overrides: dict[str, Any]) -> BaseModel:
        try:
            if config is None:
                cfg = cls.config_class(**overrides)
            elif isinstance(config, cls.config_class):
                cfg = config.model_copy(update=overrides) if overrides else config
                cfg = cls.config_class.model_validate(cfg.model_dump())
            elif isinstance(config, dict):
                cfg = cls.config_class.model_validate({**config, **overrides})
            else:
                raise InputError(f"{cls.__name__} takes a {cls.config_class.__name__} or a dict, "
                                 f"got {type(config).__name__}")
        except ValidationError as exc:
            raise InputError(f"invalid {cls.config_class.__name__}: {exc}") from exc
        return cfg

    def build_net(self):
        """The (untrained) network for ``self.config``; ``None`` when the task trains it in :meth:`fit`."""
        return None

    def _blank_card(self):
        from ..nn import architecture_of
        from ..weights.card import ModelCard

        arch = architecture_of(self.net_) if self.net_ is not None else {"name": "none"}
        return ModelCard(name="untrained", task=self.task, architecture=arch)

    # ---------------------------------------------------------------- names and files
    @classmethod
    def resolve(cls, name: str | Path | None = None) -> str | Path:
        """The installed model name (or the path) that ``name`` stands for."""
        if name is None:
            name = "default"
        if isinstance(name, Path):
            return name
        if name in cls.aliases:
            return cls.aliases[name]
        if "/" in name or "\\" in name or Path(name + ".json").exists() or Path(name).suffix == ".json":
            return Path(name)
        prefix = f"{cls.task}-"
        if not name.startswith(prefix):
            from ..weights import list_models

            if prefix + name in {m.name for m in list_models()}:
                return prefix + name
        return name

    @classmethod
    def pretrained(cls: type[E], name: str | None = None, **kw: Any) -> E:
        """A shipped or installed model by card name, short alias (``"default"``) or path."""
        return cls.load(cls.resolve(name), **kw)

    @classmethod
    def load(cls: type[E], path: str | Path, *, device: str | None = None, **overrides: Any) -> E:
        """A saved model (``<stem>.safetensors`` + ``<stem>.json``, or an installed name); ``overrides``
        change settings of the saved config (e.g. ``tile=256``)."""
        from ..weights.files import load_model

        net = load_model(path)
        card = net.scopenet_card
        if card.task != cls.task:
            raise ReadError(Path(str(path)), f"a {card.task!r} model, not a {cls.task!r} model "
                                             f"(load it with the {card.task} task's estimator)")
        obj = cls.__new__(cls)
        obj.config = cls._make_config(cls.config_from_card(card), overrides)
        obj.device = device
        obj.net_ = net.eval()
        obj.card_ = card
        obj.history_ = []
        obj._after_load()
        return obj

    @classmethod
    def config_from_card(cls, card) -> dict[str, Any]:
        """The estimator settings stored in a card (its ``config``, the architecture filled in)."""
        fields = cls.config_class.model_fields
        cfg = {k: v for k, v in card.config.items() if k in fields}
        if "arch" in fields and "arch" not in card.config:
            cfg["arch"] = card.architecture.name
        if "arch_config" in fields:
            cfg["arch_config"] = dict(card.architecture.config)
        return cfg

    def _after_load(self) -> None:
        """Hook: set derived state after :meth:`load`."""

    def save(self, path: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` and ``<stem>.json`` (never overwrites without ``overwrite``)."""
        from ..nn import architecture_of
        from ..weights.files import model_files, save_model

        net = self._check_fitted()
        card = self.card_.model_dump(mode="json")
        card.update(task=self.task, config=self.config.model_dump(mode="json"), architecture=architecture_of(net),
                    name=model_files(path)[0].stem, created=None, scopenet_version=None)
        return save_model(path, net, card, overwrite=overwrite)

    def update_card(self, **fields: Any) -> None:
        """Set model-card fields: schema sections (``metrics={...}``, ``training={...}``, merged into what
        is there) or the older flat keys (``training_data=...``, ``training_time_s=...``), mapped as
        :func:`~scopenet.weights.card.migrate_card` maps old cards."""
        from ..weights.card import ModelCard, migrate_card

        d = self.card_.model_dump(mode="json")
        schema = set(ModelCard.model_fields)
        legacy = {k: v for k, v in fields.items() if k not in schema}
        for k, v in fields.items():
            if k == "metrics" and isinstance(v, dict) and not set(v) <= {"headline", "command", "values"}:
                d["metrics"]["values"].update(v)  # a plain mapping of figures
            elif k in schema:
                d[k] = {**d[k], **v} if isinstance(d.get(k), dict) and isinstance(v, dict) else v
        if legacy:
            m = migrate_card({"name": d["name"], "architecture": d["architecture"], "task": d["task"], **legacy})
            for sec in ("training", "predict", "preprocessing", "notes"):
                d[sec].update({k: v for k, v in (m.get(sec) or {}).items() if v not in (None, [], {})})
            d["metrics"]["values"].update(m["metrics"]["values"])
            d["metrics"]["command"] = m["metrics"]["command"] or d["metrics"]["command"]
            d["previous_versions"] = list(m.get("previous_versions", [])) + d["previous_versions"]
            if "version" in legacy:
                d["version"] = m["version"]
        self.card_ = ModelCard.model_validate(d)

    def _check_fitted(self):
        if self.net_ is None:
            raise InputError(f"this {type(self).__name__} is not trained: call fit() or load a pretrained model")
        return self.net_

    # ---------------------------------------------------------------- contract methods
    def fit(self: E, data: Any, **overrides: Any) -> E:  # pragma: no cover - every task overrides
        raise NotImplementedError

    def predict(self, x: Any, *, tta: int = 1, **kw: Any) -> Any:  # pragma: no cover - every task overrides
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The model card's name (``"untrained"`` for a new estimator)."""
        return self.card_.name

    def __repr__(self) -> str:
        state = "untrained" if self.card_.name == "untrained" else self.card_.name
        return f"{type(self).__name__}({state}, device={self.device!r})"


class Router:
    """Base of the ``auto`` routers (:class:`~scopenet.tasks.denoise.AutoDenoiser`,
    :class:`~scopenet.tasks.inpaint.AutoInpainter`): several estimators of one task behind one ``predict``.

    Subclasses set ``card_`` (a ModelCard naming the rule) and implement :meth:`members` and ``predict``;
    ``device`` and ``progress`` read the first member and set them all. A router is not trained.
    """

    card_: Any

    def members(self) -> list[Estimator]:  # pragma: no cover - every router overrides
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.card_.name

    @property
    def device(self) -> str | None:
        """Where the networks run (:mod:`scopenet.nn.device`); setting it sets every member's."""
        return self.members()[0].device

    @device.setter
    def device(self, value: str | None) -> None:
        for m in self.members():
            m.device = value

    @property
    def progress(self) -> bool:
        """Show a progress bar over tiles; setting it sets every member's."""
        return self.members()[0].progress

    @progress.setter
    def progress(self, value: bool) -> None:
        for m in self.members():
            m.progress = bool(value)

    def fit(self, *args: Any, **kwargs: Any):
        est = type(self.members()[0]).__name__
        raise InputError(f"{self.name} routes several models and cannot be fitted; fine-tune one of them, "
                         f"e.g. {est}.pretrained('default').fit(...)")


def as_list(x: Any) -> Sequence[Any]:
    """``x`` as a list of images for ``fit`` (an ``(n, y, x)`` array is n images)."""
    if isinstance(x, Micrograph):
        return [x]
    if isinstance(x, np.ndarray):
        return [x] if x.ndim == 2 else list(x)
    if isinstance(x, (list, tuple)):
        return list(x)
    raise InputError(f"expected images (an array, a Micrograph or a list of them), got {type(x).__name__}")
