"""Where the networks run.

Every estimator (``Denoiser``, ``Inpainter``, ``SuperResolver``, ``Classifier``) has a ``device``
attribute: ``None`` (the default) reads the ``SCOPENET_DEVICE`` environment variable, else ``"auto"``;
``"auto"`` takes a CUDA GPU when torch sees one and the CPU otherwise; any torch device string
(``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) names one. Inputs and outputs stay NumPy arrays on the
host either way.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import InputError

ENV = "SCOPENET_DEVICE"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device for ``device`` (see the module docstring); a clear error for one that is absent."""
    if isinstance(device, torch.device):
        spec = str(device)
    else:
        spec = (device if device is not None else os.environ.get(ENV) or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"unknown device {spec!r} (use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps')") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {spec!r} asked for, but this torch sees no CUDA GPU (a CPU-only build, "
                             "or no driver); use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {spec!r} asked for, but MPS is not available here; use 'cpu' or 'auto'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {spec!r} is not supported (use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps')")
    return dev


def place(net: torch.nn.Module, device: str | torch.device | None = None) -> torch.device:
    """Move ``net`` (in place) to ``device`` if it is not there already; returns the device."""
    dev = resolve_device(device)
    p = next(net.parameters(), None)
    if p is not None and p.device != dev:
        net.to(dev)
    return dev


def run_numpy(net: torch.nn.Module, x: np.ndarray, device: str | torch.device | None = None) -> np.ndarray:
    """``net(x)`` for a float32 NumPy batch, on ``device``, returned as a float32 NumPy array (no gradients)."""
    dev = place(net, device)
    with torch.inference_mode():
        y = net(torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(dev))
    return y.float().cpu().numpy()
