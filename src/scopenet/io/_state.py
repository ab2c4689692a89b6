"""The full state of a Micrograph (everything but the pixels) as JSON, for scopenet's own files.

The TIFF writer stores it in the ImageDescription, the NPY writer in a ``<name>.json`` sidecar and
the HDF5 writer as attributes/datasets. Reading it back restores axes, signal, unit, scan
direction, modality, metadata and provenance exactly (metadata as made JSON-able on writing:
see :mod:`scopenet.io._jsonsafe`: numpy scalars become numbers, bytes text, arrays of more than
64 values a short description), then appends a
``read`` provenance entry.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ReadError
from ..image.micrograph import Axis, Micrograph, provenance_entry
from .._jsonsafe import jsonable
from ._lazyimage import is_dask, make_micrograph

#: marker and version of the state dict.
STATE_KEY = "scopenet_micrograph"
STATE_VERSION = 1


def micrograph_state(img: Micrograph) -> dict[str, Any]:
    """A JSON-compatible dict with everything of ``img`` except its data (see :mod:`._jsonsafe`)."""
    return jsonable({
        STATE_KEY: STATE_VERSION,
        "scopenet": __version__,
        "shape": list(img.shape),
        "axes": [a.to_dict() for a in img.axes],
        "signal": img.signal,
        "signal_unit": img.signal_unit,
        "scan_direction": img.scan_direction,
        "modality": img.modality,
        "source": str(img.source) if img.source is not None else None,
        "provenance": img.provenance,
        "metadata": img.metadata,
    })


def state_to_json(img: Micrograph) -> str:
    """:func:`micrograph_state` as one line of 7-bit ASCII JSON (TIFF descriptions must be ASCII)."""
    return json.dumps(micrograph_state(img), ensure_ascii=True, allow_nan=True, separators=(",", ":"))


def parse_state(text: str | bytes | None) -> dict | None:
    """The state dict if ``text`` is one of ours, else None (never raises)."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    if not text.startswith("{") or STATE_KEY not in text[:200]:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and STATE_KEY in obj else None


def _axis(d: Any, n: int) -> Axis:
    if not isinstance(d, dict):
        raise TypeError(f"axis entry is {type(d).__name__}, not a dict")
    scale, offset = float(d.get("scale", 1.0)), float(d.get("offset", 0.0))
    if not (math.isfinite(scale) and math.isfinite(offset)):
        raise ValueError(f"non-finite axis calibration {d}")
    return Axis(str(d.get("name", "")), int(n), scale, offset, str(d.get("unit", "px")))


def micrograph_from_state(path: Path, data: np.ndarray, state: dict, fmt: str) -> Micrograph:
    """Rebuild a Micrograph from its pixels and a state dict; append a ``read`` provenance entry.

    Raises
    ------
    ReadError
        If the state does not match the data (shape) or is malformed.
    """
    data = data if is_dask(data) else np.asarray(data)  # a dask array stays lazy (read(lazy=True))
    try:
        shape = tuple(int(s) for s in state.get("shape", data.shape))
        if shape != tuple(data.shape):
            raise ValueError(f"the stored description is for shape {shape}, the data have {data.shape}")
        axes_d = state.get("axes") or []
        if len(axes_d) != data.ndim:
            raise ValueError(f"{len(axes_d)} axes described for {data.ndim}-D data")
        axes = [_axis(a, n) for a, n in zip(axes_d, data.shape)]
        prov = list(state.get("provenance") or [])
        if not all(isinstance(p, dict) for p in prov):
            raise ValueError("provenance entries must be dicts")
        meta = state.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ValueError("metadata must be a dict")
        prov.append(provenance_entry("read", format=fmt, path=str(path)))
        opt = lambda k: (None if state.get(k) is None else str(state.get(k)))  # noqa: E731
        return make_micrograph(data, axes=axes, signal=str(state.get("signal", "intensity")),
                               signal_unit=str(state.get("signal_unit", "")),
                               scan_direction=opt("scan_direction"), modality=opt("modality"),
                               metadata=meta, source=path, provenance=prov)
    except (TypeError, ValueError, KeyError) as exc:
        raise ReadError(path, f"corrupt scopenet description in the {fmt} file: {exc}") from exc
