"""Model export (ONNX, TorchScript) and parity checks.

The model files themselves (``<stem>.safetensors`` + ``<stem>.json``) are written and read by
:mod:`scopenet.weights.files`; its ``save_model``, ``load_model``, ``read_card`` and ``model_files`` are
re-exported here for the training runs.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn

from .._fileutil import atomic_output
from ..errors import require
from ..weights.card import ModelCard
from ..weights.files import load_model, model_files, read_card, save_model

__all__ = ["example_input", "export_onnx", "export_parity", "export_torchscript", "load_model", "model_files",
           "read_card", "save_model"]


def example_input(model_or_card: nn.Module | ModelCard, size: int = 64) -> torch.Tensor:
    """A ``(1, C, size, size)`` input (the card's ``preprocessing.input_shape`` when it has one) for export
    and parity checks."""
    card = model_or_card if isinstance(model_or_card, ModelCard) else getattr(model_or_card, "scopenet_card", None)
    if card is not None and card.preprocessing.get("input_shape"):
        shape = tuple(int(s) for s in card.preprocessing["input_shape"])
    else:
        cfg = card.architecture.config if card is not None else getattr(model_or_card, "config", {})
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
