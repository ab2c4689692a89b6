"""The :class:`Micrograph`: one calibrated image (or stack) type for every instrument.

A Micrograph holds float32 data (complex64 for complex data such as exit waves) of shape ``(y, x)``
or ``(n, y, x)`` (time series, focal series, channels), one :class:`Axis` per dimension with its
calibration, the recorded signal's name and unit,
the scan direction for SPM, the untouched original metadata, the source path and a provenance list
that every operation appends to.
"""
from __future__ import annotations

import copy as _copy
import datetime as _dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._jsonsafe import jsonable as _jsonable
from ..errors import InputError

#: SI prefixes understood by :func:`to_metres`.
_LENGTH_UNITS = {
    "m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "nm": 1e-9, "a": 1e-10, "å": 1e-10,
    "angstrom": 1e-10, "pm": 1e-12,
}


def to_metres(value: float, unit: str | None) -> float | None:
    """Convert a length ``value`` in ``unit`` (m, mm, um, µm, nm, Å, pm) to metres; None if unknown."""
    if unit is None:
        return None
    u = unit.strip().lower()
    if u in _LENGTH_UNITS:
        return float(value) * _LENGTH_UNITS[u]
    try:  # fall back to pint for anything unusual ("nanometer", "1/nm" is not a length)
        import pint

        q = pint.UnitRegistry().Quantity(float(value), unit)
        return float(q.to("m").magnitude)
    except Exception:
        return None


@dataclass(frozen=True)
class Axis:
    """Calibration of one array dimension: physical coordinate = offset + index * scale.

    Attributes
    ----------
    name : str
        ``"y"``, ``"x"``, ``"frame"``, ``"defocus"``, ``"channel"``...
    size : int
        Number of samples along the axis.
    scale : float
        Step per pixel in ``unit`` (1.0 and unit ``"px"`` when uncalibrated).
    offset : float
        Coordinate of index 0 in ``unit``.
    unit : str
        Unit of ``scale`` and ``offset`` (``"nm"``, ``"m"``, ``"s"``, ``"px"``...).
    """

    name: str
    size: int
    scale: float = 1.0
    offset: float = 0.0
    unit: str = "px"

    @property
    def calibrated(self) -> bool:
        return self.unit not in ("px", "", None)

    def scale_in_metres(self) -> float | None:
        """The pixel size in metres, or None when the axis is not a length."""
        return to_metres(self.scale, self.unit) if self.calibrated else None

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "scale": self.scale, "offset": self.offset,
                "unit": self.unit}


def check_image_array(data, name: str = "the image", allow_complex: bool = False) -> np.ndarray:
    """``data`` as an array if it is a real (or, with ``allow_complex``, complex), numeric, non-empty 2-D
    (y, x) or 3-D (n, y, x) image.

    Raises
    ------
    InputError
        Naming ``name`` and what is wrong (dtype, complex values, dimensions, emptiness).
    """
    arr = np.asarray(data)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr) and not allow_complex:
        raise InputError(f"{name} must be real; pass np.abs() or np.angle() of complex data")
    if arr.ndim not in (2, 3):
        raise InputError(f"{name} must be 2-D (y, x) or 3-D (n, y, x), got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    return arr


def _default_axes(shape: Sequence[int]) -> list[Axis]:
    names = ["y", "x"] if len(shape) == 2 else ["frame", "y", "x"]
    return [Axis(n, int(s)) for n, s in zip(names, shape)]


@dataclass
class Micrograph:
    """A calibrated 2-D image or stack of images from any microscope.

    Parameters
    ----------
    data : array_like
        Image data, shape ``(y, x)`` or ``(n, y, x)``; stored as float32, or complex64 when complex
        (exit waves: ``A exp(i theta)``; see :attr:`is_complex`).
    axes : list of Axis, optional
        One per dimension of ``data``; defaults to uncalibrated pixel axes.
    signal : str
        What was recorded: ``"height"``, ``"current"``, ``"HAADF"``, ``"frequency_shift"``...
    signal_unit : str
        Unit of the data values (``"m"``, ``"A"``, ``"counts"``, ``""``).
    scan_direction : str, optional
        For SPM: ``"forward/up"``, ``"backward/down"``... (horizontal/vertical), else None.
    modality : str, optional
        ``"STM"``, ``"AFM"``, ``"TEM"``, ``"STEM"``, ``"SEM"``... when known.
    metadata : dict
        The original metadata of the file, untouched.
    source : Path, optional
        File the image was read from.
    provenance : list of dict
        One entry per operation that produced this image, oldest first.

    Examples
    --------
    >>> import numpy as np, scopenet as sn
    >>> img = sn.Micrograph(np.zeros((4, 5)), axes=[sn.Axis("y", 4, 0.1, unit="nm"),
    ...                                              sn.Axis("x", 5, 0.1, unit="nm")])
    >>> img.shape, img.pixel_size
    ((4, 5), (0.1, 0.1))
    """

    data: np.ndarray
    axes: list[Axis] = field(default_factory=list)
    signal: str = "intensity"
    signal_unit: str = ""
    scan_direction: str | None = None
    modality: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self):
        arr = check_image_array(self.data, "Micrograph data", allow_complex=True)
        self.data = np.ascontiguousarray(arr, dtype=np.complex64 if np.iscomplexobj(arr) else np.float32)
        if not self.axes:
            self.axes = _default_axes(self.data.shape)
        self.axes = list(self.axes)
        if len(self.axes) != self.data.ndim:
            raise InputError(f"{len(self.axes)} axes given for data of shape {self.data.shape}")
        fixed = []
        for ax, n in zip(self.axes, self.data.shape):
            fixed.append(ax if ax.size == n else replace(ax, size=int(n)))
        self.axes = fixed
        if self.source is not None:
            self.source = Path(self.source)

    # ------------------------------------------------------------------ array protocol
    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.data
        return self.data.astype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_complex(self) -> bool:
        """True for complex data (an exit wave); ``np.abs``/``np.angle`` of ``data`` give amplitude and phase."""
        return np.iscomplexobj(self.data)

    @property
    def is_stack(self) -> bool:
        return self.data.ndim == 3

    def __len__(self) -> int:
        return self.data.shape[0] if self.is_stack else 1

    def __getitem__(self, i: int) -> "Micrograph":
        """The i-th frame of a stack as a 2-D Micrograph (calibration and metadata kept)."""
        if not self.is_stack:
            raise InputError("indexing a Micrograph selects a frame of a stack; this image is 2-D")
        return self.with_data(self.data[i], axes=self.axes[1:], operation="select_frame", index=int(i))

    def frames(self):
        """Iterate over 2-D frames (a 2-D image yields itself)."""
        if not self.is_stack:
            yield self
        else:
            for i in range(len(self)):
                yield self[i]

    # ------------------------------------------------------------------ calibration
    @property
    def pixel_size(self) -> tuple[float, float]:
        """(y, x) step per pixel in the axes' own units."""
        return (self.axes[-2].scale, self.axes[-1].scale)

    @property
    def pixel_unit(self) -> str:
        return self.axes[-1].unit

    def pixel_size_m(self) -> tuple[float | None, float | None]:
        """(y, x) pixel size in metres, None for an uncalibrated axis."""
        return (self.axes[-2].scale_in_metres(), self.axes[-1].scale_in_metres())

    @property
    def field_of_view(self) -> tuple[float, float]:
        """(height, width) of the image in the axes' units."""
        return (self.axes[-2].scale * self.shape[-2], self.axes[-1].scale * self.shape[-1])

    # ------------------------------------------------------------------ derivation
    def with_data(self, data, *, axes: list[Axis] | None = None, operation: str | None = None,
                  **params) -> "Micrograph":
        """A new Micrograph with ``data`` replaced and (optionally) one provenance entry appended.

        When the image shape changes and ``axes`` is not given, the pixel size is rescaled so that
        the field of view is kept (a resize) — pass ``axes`` explicitly for a crop.
        """
        data = np.asarray(data)
        if axes is None:
            if data.shape == self.shape:
                axes = self.axes
            elif data.ndim == self.ndim:
                axes = [replace(a, size=int(n), scale=a.scale * a.size / n) for a, n in zip(self.axes, data.shape)]
            else:
                axes = _default_axes(data.shape)
        prov = list(self.provenance)
        if operation:
            prov.append(provenance_entry(operation, **params))
        return Micrograph(data, axes=axes, signal=self.signal, signal_unit=self.signal_unit,
                          scan_direction=self.scan_direction, modality=self.modality,
                          metadata=self.metadata, source=self.source, provenance=prov)

    def copy(self) -> "Micrograph":
        return Micrograph(self.data.copy(), axes=list(self.axes), signal=self.signal,
                          signal_unit=self.signal_unit, scan_direction=self.scan_direction,
                          modality=self.modality, metadata=_copy.deepcopy(self.metadata),
                          source=self.source, provenance=[dict(p) for p in self.provenance])

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> "Micrograph":
        """Crop rows ``y0:y1`` and columns ``x0:x1`` (offsets follow, pixel size kept)."""
        h, w = self.shape[-2:]
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise InputError(f"crop [{y0}:{y1}, {x0}:{x1}] is outside the image of size {h}x{w}")
        ay, ax = self.axes[-2], self.axes[-1]
        axes = self.axes[:-2] + [
            replace(ay, size=y1 - y0, offset=ay.offset + y0 * ay.scale),
            replace(ax, size=x1 - x0, offset=ax.offset + x0 * ax.scale),
        ]
        return self.with_data(self.data[..., y0:y1, x0:x1], axes=axes, operation="crop",
                              y0=y0, y1=y1, x0=x0, x1=x1)

    # ------------------------------------------------------------------ summaries
    def summary(self) -> dict[str, Any]:
        finite = np.isfinite(self.data)
        vals = np.abs(self.data[finite]) if self.is_complex else self.data[finite]  # complex: amplitude
        return {
            "source": str(self.source) if self.source else None,
            "shape": list(self.shape),
            "signal": self.signal,
            "signal_unit": self.signal_unit,
            "modality": self.modality,
            "scan_direction": self.scan_direction,
            "axes": [a.to_dict() for a in self.axes],
            "min": float(vals.min()) if vals.size else None,
            "max": float(vals.max()) if vals.size else None,
            "mean": float(vals.mean()) if vals.size else None,
            "nan_fraction": float(1 - finite.mean()),
            "provenance": self.provenance,
        }

    def __repr__(self) -> str:
        ps = self.pixel_size
        src = f", source='{self.source.name}'" if self.source else ""
        sd = f", scan='{self.scan_direction}'" if self.scan_direction else ""
        return (f"Micrograph(shape={self.shape}, signal='{self.signal}' [{self.signal_unit}], "
                f"pixel=({ps[0]:.4g}, {ps[1]:.4g}) {self.pixel_unit}{sd}{src})")

    # ------------------------------------------------------------------ hyperspy bridge
    def to_hyperspy(self):
        """Convert to a ``hyperspy.signals.Signal2D`` (needs the ``hyperspy`` extra)."""
        from ..errors import require

        hs = require("hyperspy.api", "hyperspy", "to_hyperspy()")
        s = hs.signals.Signal2D(self.data.copy())
        # hyperspy orders navigation axes first, then signal axes x, y
        nav = self.axes[:-2]
        ordered = list(nav) + [self.axes[-1], self.axes[-2]]
        am = s.axes_manager
        hs_axes = list(am.navigation_axes)[::-1] + list(am.signal_axes)
        for hax, ax in zip(hs_axes, ordered):
            hax.name, hax.scale, hax.offset, hax.units = ax.name, ax.scale, ax.offset, ax.unit
        s.metadata.General.title = self.signal
        if self.source:
            s.metadata.General.original_filename = str(self.source)
        s.original_metadata.add_dictionary({"scopenet_original": _jsonable(self.metadata)})
        return s

    @classmethod
    def from_hyperspy(cls, signal) -> "Micrograph":
        """Build from a hyperspy Signal2D (navigation dimension at most 1)."""
        data = np.asarray(signal.data)
        am = signal.axes_manager
        sig = list(am.signal_axes)
        nav = list(am.navigation_axes)
        if len(sig) != 2 or len(nav) > 1:
            raise InputError(f"from_hyperspy needs a Signal2D with at most one navigation axis, got {am}")
        axes = [Axis(a.name or "frame", a.size, float(a.scale), float(a.offset), str(a.units or "px"))
                for a in nav[::-1]]
        axes += [Axis(a.name or n, a.size, float(a.scale), float(a.offset), str(a.units or "px"))
                 for a, n in zip(sig[::-1], ("y", "x"))]
        return cls(data, axes=axes, signal=str(signal.metadata.General.title or "intensity"),
                   metadata=signal.original_metadata.as_dictionary())


def provenance_entry(operation: str, **params) -> dict[str, Any]:
    """A provenance record: operation name, parameters, scopenet version and UTC time."""
    from .._version import __version__

    return {"operation": operation, "params": _jsonable(params), "scopenet": __version__,
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def as_micrograph(obj) -> Micrograph:
    """Accept a Micrograph, an array or anything array-like; always return a Micrograph."""
    if isinstance(obj, Micrograph):
        return obj
    return Micrograph(np.asarray(obj))
