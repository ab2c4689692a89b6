"""Network architectures (pure ``torch.nn`` modules, no I/O, no training loops).

Architectures are registered by name so that a saved model can be rebuilt from the
``{"name": ..., "config": {...}}`` entry of its model card::

    >>> from scopenet.nn import build_architecture
    >>> net = build_architecture("unet", {"depth": 2, "base_channels": 8})

Tasks add their own networks with :func:`register_architecture`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from ..errors import InputError

_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register_architecture(name: str, factory: Callable[..., nn.Module] | None = None, *,
                          replace: bool = False):
    """Register ``factory(**config) -> nn.Module`` under ``name`` (usable as a decorator).

    Parameters
    ----------
    name : str
        Registry key written to model cards (``card["architecture"]["name"]``).
    factory : callable, optional
        Class or function building the network from keyword arguments. When omitted, a
        decorator is returned.
    replace : bool
        Allow re-registering an existing name (otherwise a clash raises ``InputError``).
    """
    def _add(f: Callable[..., nn.Module]):
        if name in _ARCHITECTURES and _ARCHITECTURES[name] is not f and not replace:
            raise InputError(f"architecture {name!r} is already registered")
        _ARCHITECTURES[name] = f
        return f

    return _add if factory is None else _add(factory)


def architecture_names() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(_ARCHITECTURES)


def build_architecture(name: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build the registered architecture ``name`` with keyword arguments ``config``."""
    if name not in _ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; registered: {', '.join(architecture_names()) or 'none'}")
    try:
        return _ARCHITECTURES[name](**(config or {}))
    except TypeError as exc:
        raise InputError(f"cannot build architecture {name!r} from config {config!r}: {exc}") from exc


def architecture_of(model: nn.Module) -> dict[str, Any]:
    """The ``{"name", "config"}`` needed to rebuild ``model`` (it must expose ``arch_name`` and ``config``)."""
    name = getattr(model, "arch_name", None)
    config = getattr(model, "config", None)
    if name is None or not isinstance(config, dict):
        raise InputError(f"{type(model).__name__} does not expose `arch_name` and a `config` dict; "
                         "pass the architecture explicitly in the model card")
    return {"name": name, "config": dict(config)}


from .unet import UNet  # noqa: E402

register_architecture("unet", UNet)

from . import cnn  # noqa: E402,F401  (registers tipnet/tipresnet)
from . import xception  # noqa: E402,F401  (registers atrous-xception)
from . import partial_stem  # noqa: E402,F401  (registers inpaint-unet, partial-stem generator)
from . import ensemble  # noqa: E402,F401  (registers ensemble)
from . import vdsr  # noqa: E402,F401  (registers superres-vdsr)
from . import denoise_compact  # noqa: E402,F401  (registers denoise-compact)
from . import seg_unet  # noqa: E402,F401  (registers seg-unet)
from . import vae  # noqa: E402,F401  (registers embed-vae)
from . import exitwave  # noqa: E402,F401  (registers exitwave-net, exitwave-discriminator)
from . import recurrent  # noqa: E402,F401  (registers adaptive-scan-net)
from . import qnet  # noqa: E402,F401  (registers q-mlp)

__all__ = ["UNet", "architecture_names", "architecture_of", "build_architecture", "register_architecture"]
from . import fusion  # noqa: E402,F401  (registers denoise-fusion)
