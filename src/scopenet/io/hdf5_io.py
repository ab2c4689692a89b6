"""HDF5 (``.h5``/``.hdf5``) with h5py: scopenet's own layout, EMD hand-off, plain datasets.

Layout written by :func:`write_hdf5` (one group per image, so a file may hold several)::

    /                          attrs: scopenet_format = "scopenet-micrograph", scopenet_format_version = 1
    /scopenet/image_000/data   float32, (y, x) or (n, y, x), gzip-compressed
        attrs: signal, signal_unit, [scan_direction], [modality], [source],
               axis_names, axis_scales, axis_offsets, axis_units   (one entry per dimension)
    /scopenet/image_000/provenance   JSON text (list of operations)
    /scopenet/image_000/metadata     JSON text (original metadata, made JSON-able)

Any HDF5 tool sees the data and calibration; :func:`read_hdf5` restores the Micrograph exactly.

Every HDF5 file is claimed by the HDF5 signature, then dispatched on content:

* scopenet layout -> restored as above;
* an ``.emd`` file, or an HDF5 file with a Velox or Berkeley EMD layout ->
  :func:`scopenet.io.em.read_emd` (so EMD always wins over the generic path);
* a HyperSpy file (``.hspy``, ``.hdf5``, ``.h5``: the root attribute ``file_format =
  "HyperSpy"``) -> :func:`read_hspy`, which keeps each axis'
  calibration (scale, offset, units) as RosettaSciIO's hspy reader returns it. A non-uniform axis
  (an explicit coordinate vector or a function) cannot be one scale: it is read uncalibrated with a
  ``UserWarning`` naming the axis;
* any other HDF5 file -> each numeric 2-D/3-D dataset as an uncalibrated image named by its path,
  metadata = its attributes.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ..image.micrograph import Micrograph, provenance_entry
from .._jsonsafe import dumps as json_dumps
from .._jsonsafe import jsonable
from ._lazyimage import make_micrograph
from ._state import micrograph_from_state
from .registry import Format, register_format

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FORMAT_NAME = "scopenet-micrograph"
FORMAT_VERSION = 1
_MAX_GENERIC = 64  # at most this many datasets from a foreign HDF5 file


def is_hdf5(head: bytes) -> bool:
    return head.startswith(HDF5_SIGNATURE)


def _s(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


# ---------------------------------------------------------------------------------- writing
class _GuardedFile:
    """The file object behind h5py's ``fileobj`` driver while scopenet writes an HDF5 file.

    A disk error (a full disk, a file-size limit, a vanished network share) is never passed to
    HDF5: it is remembered in :attr:`error`, and from then on every write, truncation and flush is
    accepted and dropped (what was never written reads as zeros), so HDF5 finishes and closes the
    file normally and h5py releases every object id; :func:`write_hdf5` then raises the remembered
    error. When the error reached HDF5, HDF5 failed to close the objects of a file it could not flush, h5py kept their
    ids, retried at deallocation, and the interpreter died with a segmentation fault (rc 139) after
    the error message had been printed.
    """

    def __init__(self, fh):
        self._fh = fh
        self.error: OSError | None = None
        self._pos = 0
        self._size = 0

    def _ok(self) -> bool:
        return self.error is None and not self._fh.closed

    def _io(self, fn, *args):
        try:
            return fn(*args)
        except OSError as exc:
            self.error = exc
            return None

    def write(self, b) -> int:
        view = memoryview(b).cast("B")
        n = len(view)
        done = 0
        if self._ok():
            self._io(self._fh.seek, self._pos)
        while self._ok() and done < n:
            w = self._io(self._fh.write, view[done:])
            if w is not None and w <= 0:
                self.error = OSError(28, "No space left on device (nothing written)")
            done += w or 0
        self._pos += n
        self._size = max(self._size, self._pos)
        return n

    def truncate(self, size=None):
        size = self._pos if size is None else size
        if self._ok():
            self._io(self._fh.truncate, size)
        self._size = size
        return size

    def flush(self) -> None:
        if self._ok():
            self._io(self._fh.flush)

    def readinto(self, b) -> int:
        """Read at the current position; what cannot be read (never written) reads as zeros."""
        view = memoryview(b).cast("B")
        got = 0
        if not self._fh.closed:  # reading needs no room: what was written is read back as is
            try:
                self._fh.seek(self._pos)
                got = self._fh.readinto(view) or 0
            except OSError:
                got = 0
        if self.error is not None and got < len(view):
            view[got:] = bytes(len(view) - got)
            got = len(view)
        self._pos += got
        return got

    def read(self, n: int = -1) -> bytes:  # h5py recognises a file object by read() and seek()
        n = max(self._size - self._pos, 0) if n is None or n < 0 else n
        buf = bytearray(n)
        got = self.readinto(buf)
        return bytes(buf[:got])

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else self._pos + pos if whence == 1 else self._size + pos
        return self._pos

    def tell(self) -> int:
        return self._pos


def write_hdf5(images: Micrograph | list[Micrograph], path: Path, *, compression: str | None = "gzip",
               **kwargs) -> None:
    """Write one Micrograph (or several) with calibration, provenance and metadata.

    Parameters
    ----------
    images : Micrograph or list of Micrograph
    path : Path
        Output file (the registry passes a temporary name, renamed when complete).
    compression : str or None
        h5py filter for the data (``"gzip"``, ``"lzf"`` or None).

    Raises
    ------
    OSError
        The disk error that stopped the write (e.g. ``[Errno 28] No space left on device``), raised
        once every HDF5 object is closed (see :class:`_GuardedFile`); the incomplete file is left
        for the caller to remove.
    """
    import h5py

    if isinstance(images, Micrograph):
        images = [images]
    with open(path, "w+b", buffering=0) as fh:  # unbuffered: a seek never flushes a failed write again
        guard = _GuardedFile(fh)
        f = h5py.File(guard, "w")
        try:
            _fill_hdf5(f, images, compression)
        finally:
            f.close()  # with disk errors kept from HDF5, closing releases every object id
    if guard.error is not None:
        err = guard.error
        raise OSError(err.errno, f"{err.strerror or err} (the HDF5 file could not be written completely)")


def _fill_hdf5(f, images: list[Micrograph], compression: str | None) -> None:
    import h5py

    from .._version import __version__

    str_dt = h5py.string_dtype("utf-8")
    f.attrs["scopenet_format"] = FORMAT_NAME
    f.attrs["scopenet_format_version"] = FORMAT_VERSION
    f.attrs["scopenet_version"] = __version__
    root = f.create_group("scopenet")
    for i, img in enumerate(images):
        g = root.create_group(f"image_{i:03d}")
        data = np.ascontiguousarray(img.data, dtype=np.float32)
        ds = g.create_dataset("data", data=data, compression=compression,
                              chunks=True if compression else None)
        text = lambda v: jsonable(str(v))  # noqa: E731  (valid UTF-8 whatever the source)
        ds.attrs.create("signal", text(img.signal), dtype=str_dt)
        ds.attrs.create("signal_unit", text(img.signal_unit), dtype=str_dt)
        for key in ("scan_direction", "modality"):
            if getattr(img, key) is not None:
                ds.attrs.create(key, text(getattr(img, key)), dtype=str_dt)
        if img.source is not None:
            ds.attrs.create("source", text(img.source), dtype=str_dt)
        ds.attrs.create("axis_names", [text(a.name) for a in img.axes], dtype=str_dt)
        ds.attrs["axis_scales"] = np.array([a.scale for a in img.axes], dtype=np.float64)
        ds.attrs["axis_offsets"] = np.array([a.offset for a in img.axes], dtype=np.float64)
        ds.attrs.create("axis_units", [text(a.unit) for a in img.axes], dtype=str_dt)
        # JSON text goes in datasets: attributes are limited to 64 kB
        g.create_dataset("provenance", data=json_dumps(img.provenance), dtype=str_dt)
        g.create_dataset("metadata", data=json_dumps(img.metadata), dtype=str_dt)


# ---------------------------------------------------------------------------------- reading
def _pixels(ds, lazy: bool):
    """A dataset's pixels: read now, or (``lazy``) a dask array over the open dataset."""
    if not lazy:
        return ds[()]
    from ._lazyimage import lazy_array

    return lazy_array(ds)


def _read_ours(path: Path, f, lazy: bool = False) -> list[Micrograph]:
    root = f["scopenet"]
    out = []
    for name in sorted(root):
        g = root[name]
        if "data" not in g:
            raise ReadError(path, f"scopenet HDF5 group '{name}' has no 'data' dataset")
        ds = g["data"]
        a = ds.attrs
        try:
            names = [_s(x) for x in a["axis_names"]]
            units = [_s(x) for x in a["axis_units"]]
            scales = [float(x) for x in a["axis_scales"]]
            offsets = [float(x) for x in a["axis_offsets"]]
        except KeyError as exc:
            raise ReadError(path, f"scopenet HDF5 image '{name}' lacks the calibration attribute "
                                  f"{exc}") from exc
        try:
            prov = json.loads(_s(g["provenance"][()])) if "provenance" in g else []
            meta = json.loads(_s(g["metadata"][()])) if "metadata" in g else {}
        except ValueError as exc:
            raise ReadError(path, f"corrupt JSON in scopenet HDF5 image '{name}' ({exc})") from exc
        state = {
            "shape": list(ds.shape),
            "axes": [{"name": n, "scale": s, "offset": o, "unit": u}
                     for n, s, o, u in zip(names, scales, offsets, units)],
            "signal": _s(a.get("signal", "intensity")),
            "signal_unit": _s(a.get("signal_unit", "")),
            "scan_direction": _s(a["scan_direction"]) if "scan_direction" in a else None,
            "modality": _s(a["modality"]) if "modality" in a else None,
            "provenance": prov,
            "metadata": meta,
        }
        out.append(micrograph_from_state(path, _pixels(ds, lazy), state, "HDF5"))
    return out


def _is_emd(f) -> bool:
    return "version_major" in f.attrs or ("Data" in f and "Version" in f)


def _read_generic(path: Path, f, lazy: bool = False) -> list[Micrograph]:
    import h5py

    found: list[tuple[str, h5py.Dataset]] = []

    def visit(name, obj):
        if len(found) < _MAX_GENERIC and isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3) \
                and obj.size > 0 and obj.dtype.kind in "iufb":
            found.append((name, obj))

    f.visititems(visit)
    if not found:
        raise ReadError(path, "the HDF5 file is neither a scopenet nor an EMD file and holds no "
                              "2-D/3-D numeric dataset")
    out = []
    for name, ds in found:
        attrs = jsonable(dict(ds.attrs.items()))
        out.append(make_micrograph(_pixels(ds, lazy), signal=name.rsplit("/", 1)[-1], source=path,
                                   metadata={"hdf5_path": "/" + name, "attrs": attrs},
                                   provenance=[provenance_entry("read", format="HDF5", path=str(path),
                                                                dataset="/" + name)]))
    return out


def _is_hspy(f) -> bool:
    fmt = f.attrs.get("file_format")
    return fmt is not None and _s(fmt).strip().lower() == "hyperspy"


def _hspy_axes(path: Path, sig: dict) -> list[dict]:
    """rsciio axis dicts with non-uniform axes replaced by uncalibrated ones (and a warning)."""
    out = []
    for i, ax in enumerate(sig.get("axes") or []):
        ax = dict(ax)
        uniform = "scale" in ax and "axis" not in ax and "expression" not in ax
        try:
            uniform = uniform and np.isfinite(float(ax["scale"])) and float(ax["scale"]) != 0
        except (TypeError, ValueError):
            uniform = False
        if not uniform:
            name = ax.get("name") or f"axis {i}"
            if ax.get("units") not in (None, "", "<undefined>") or "axis" in ax or "expression" in ax:
                warnings.warn(f"{path.name}: HyperSpy axis '{name}' is not uniform "
                              f"({ax.get('_type', 'no scale')}); it is read without calibration",
                              UserWarning, stacklevel=4)
            ax = {"name": ax.get("name"), "size": ax.get("size"), "navigate": ax.get("navigate", False)}
        out.append(ax)
    return out


def read_hspy(path: Path, lazy: bool = False, **kwargs) -> list[Micrograph]:
    """A HyperSpy ``.hspy``/``.hdf5`` file with its axes calibration (RosettaSciIO's hspy reader).

    Every 2-D image and 3-D stack signal becomes a Micrograph (spectra are skipped, see
    :func:`scopenet.io.em.signals_to_micrographs`); the signal unit comes from the HyperSpy
    quantity (``"Intensity (counts)"`` -> ``"counts"``).
    """
    from rsciio.hspy import file_reader

    from .em import _quantity_unit, signals_to_micrographs

    path = Path(path)
    try:
        sigs = file_reader(str(path), lazy=lazy)
    except Exception as exc:  # any library failure -> a ReadError naming the file
        raise ReadError(path, f"not a readable HyperSpy file ({type(exc).__name__}: {exc})") from exc
    fixed = []
    for sig in sigs:
        sig = dict(sig)
        sig["axes"] = _hspy_axes(path, sig)
        fixed.append(sig)
    images = signals_to_micrographs(path, fixed, "HyperSpy")
    kept = [s for s in fixed if np.ndim(s["data"]) in (2, 3)]
    for img, sig in zip(images, kept):
        meta = sig.get("metadata") or {}
        if not img.signal_unit:
            img.signal_unit = _quantity_unit((meta.get("Signal") or {}).get("quantity"))
        if not img.metadata:
            img.metadata = {"hyperspy_metadata": meta}
    return images


def read_hdf5(path: Path, lazy: bool = False, **kwargs) -> list[Micrograph]:
    """Read an HDF5 file: scopenet layout, EMD (handed to :mod:`scopenet.io.em`) or plain datasets.

    With ``lazy`` the pixels are dask arrays over the datasets, which keep the file open for reading.
    """
    import h5py

    path = Path(path)
    if path.suffix.lower() == ".emd":
        from .em import read_emd

        return read_emd(path, lazy=lazy)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ReadError(path, f"corrupt or truncated HDF5 file ({exc})") from exc
    keep_open = False
    try:
        if f.attrs.get("scopenet_format") is not None and "scopenet" in f:
            version = int(f.attrs.get("scopenet_format_version", 1))
            if version > FORMAT_VERSION:
                raise ReadError(path, f"written by a newer scopenet (layout version {version}); "
                                      f"upgrade scopenet to read it")
            out = _read_ours(path, f, lazy)
            keep_open = lazy  # the dask arrays read from the open datasets
            return out
        hspy = _is_hspy(f)
        emd = not hspy and _is_emd(f)
        if not (emd or hspy):
            out = _read_generic(path, f, lazy)
            keep_open = lazy
            return out
    finally:
        if not keep_open:
            f.close()
    if hspy:
        return read_hspy(path, lazy=lazy)
    from .em import read_emd

    return read_emd(path, lazy=lazy)


register_format(Format("HDF5", (".h5", ".hdf5", ".hdf", ".he5"), reader=read_hdf5, writer=write_hdf5, lazy=True,
                       magic=is_hdf5, priority=0,
                       description="HDF5 (scopenet layout with calibration and provenance; EMD is "
                                   "handed to the EMD reader)",
                       kwargs_doc={"compression": "h5py filter: 'gzip' (default), 'lzf' or None"}))
# .hspy is read only (HDF5 content goes through read_hdf5, which dispatches HyperSpy files to read_hspy)
register_format(Format("HyperSpy", (".hspy",), reader=read_hdf5, priority=5, lazy=True,
                       description="HyperSpy .hspy (HDF5; axes calibration kept)"))
