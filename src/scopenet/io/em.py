"""Electron-microscopy files through RosettaSciIO: DM3/DM4, EMD (Velox, Berkeley/NCEM), SER/EMI, MRC.

Each format is read with the ``file_reader`` of its rsciio plugin (``rsciio.digitalmicrograph``,
``rsciio.emd``, ``rsciio.tia``, ``rsciio.mrc``); the signal dicts it returns become
:class:`~scopenet.image.Micrograph` objects by :func:`signals_to_micrographs`:

* only image-like signals are kept: 2-D images and 3-D stacks (one navigation axis that is not a
  spectral axis). 1-D spectra, spectrum images (EELS/EDS, an energy axis) and 4-D data are skipped;
  a file with no image at all raises :class:`~scopenet.errors.ReadError` saying what it holds;
* data become float32 (complex data: the modulus, noted in the provenance entry);
* axes keep the file's calibration and unit (``"nm"``, ``"µm"``, ``"1/nm"``...); an axis without a
  unit is an uncalibrated pixel axis. The last two axes are always named ``y`` and ``x``;
* ``metadata`` is rsciio's ``original_metadata`` dict, untouched;
* ``modality`` ("TEM", "STEM", "SEM") comes from the file's acquisition mode when it records one
  (DM "Illumination Mode", TIA "Mode", Velox "IlluminationMode"), else None.

Two corrections to rsciio 0.15 are applied:

* Berkeley/NCEM EMD: rsciio transposes the stored ``(dim1=Y, dim2=X)`` array; it is transposed back
  so that rows are y, as stored (and as ncempy/h5py give it). The unit ``n_m`` (NCEM's encoding)
  becomes ``nm``.
* TIA SER: rsciio reports the image offset in metres next to a scale in nm; the offset is
  converted to the axis unit from the SER header (``CalibrationOffset / CalibrationDelta`` pixels).

EMD files are HDF5: :mod:`scopenet.io.hdf5_io` claims the HDF5 signature and hands every
``.emd`` file (and any HDF5 file with an EMD layout) to :func:`read_emd`.
"""
from __future__ import annotations

import logging
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadError
from ..image.micrograph import Axis, Micrograph, provenance_entry
from ._lazyimage import is_dask, make_micrograph
from .registry import Format, register_format

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SPECTRAL_UNITS = {"ev", "kev", "mev"}
_SPECTRAL_TYPES = {"EELS", "EDS_TEM", "EDS_SEM", "EDS", "CL_SEM", "CL_STEM"}
#: NCEM EMD writes units with an underscore between prefix and unit ("n_m" for nm).
_UNIT_FIXES = {"n_m": "nm", "u_m": "µm", "p_m": "pm", "m_m": "mm", "1/n_m": "1/nm", "n_m^-1": "1/nm"}


# ---------------------------------------------------------------------------------- magic tests
def is_dm(head: bytes) -> bool:
    """DM3/DM4: a big-endian int32 version 3 or 4, then the root length, then byte order 0 or 1."""
    if len(head) < 16:
        return False
    version = struct.unpack(">i", head[:4])[0]
    if version == 3:
        order = struct.unpack(">i", head[8:12])[0]
    elif version == 4:
        order = struct.unpack(">i", head[12:16])[0]
    else:
        return False
    return order in (0, 1)


def is_mrc(head: bytes) -> bool:
    """MRC2014 (and most MRC2000): the map identifier ``"MAP "`` at byte 208."""
    return len(head) >= 212 and head[208:212] == b"MAP "


def is_ser(head: bytes) -> bool:
    """TIA SER: byte order ``II`` (0x4949) then the series id 0x0197, little-endian."""
    return len(head) >= 6 and head[:4] == b"II\x97\x01" and head[4:6] in (b"\x10\x02", b"\x20\x02")


# ---------------------------------------------------------------------------------- conversion
def _get_path(d: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(d, dict) or key not in d:
            raise KeyError(dotted)
        d = d[key]
    return d


def mapped_metadata(sig: dict) -> dict[str, Any]:
    """rsciio's ``mapping`` applied to the original metadata: ``{"Acquisition_instrument.TEM...": v}``.

    Only used to infer modality and signal unit; the Micrograph keeps the original metadata.
    """
    out: dict[str, Any] = {}
    om = sig.get("original_metadata") or {}
    for src, target in (sig.get("mapping") or {}).items():
        dst, fn = (target if isinstance(target, tuple) else (target, None))
        try:
            val = _get_path(om, src)
            out[dst] = fn(val) if fn is not None else val
        except Exception:
            continue
    return out


def _modality(sig: dict) -> str | None:
    """TEM / STEM / SEM from the recorded acquisition mode, else None (never guessed)."""
    mapped = mapped_metadata(sig)
    for key, val in mapped.items():
        if key.endswith("acquisition_mode") and isinstance(val, str):
            v = val.strip().upper()
            for m in ("STEM", "SEM", "TEM"):
                if v.startswith(m):
                    return m
    if any(k.startswith("Acquisition_instrument.SEM") for k in mapped):
        return "SEM"
    om = sig.get("original_metadata") or {}
    try:  # Velox: Optics.IlluminationMode = "Probe" (STEM) or "Parallel" (TEM)
        mode = str(_get_path(om, "Optics.IlluminationMode")).strip().lower()
        return {"probe": "STEM", "parallel": "TEM"}.get(mode)
    except KeyError:
        return None


def _unit(u: Any) -> str:
    if u is None or isinstance(u, (list, tuple)) or str(u).strip() in ("", "<undefined>"):
        return "px"
    u = str(u).strip()
    return _UNIT_FIXES.get(u, u)


def _is_spectral(ax: dict) -> bool:
    name = str(ax.get("name") or "").lower()
    return (_unit(ax.get("units")).lower() in _SPECTRAL_UNITS or "energy" in name
            or "wavelength" in name)


def _make_axis(ax: dict, name: str) -> Axis:
    scale = float(ax.get("scale", 1.0) or 1.0)
    offset = float(ax.get("offset", 0.0) or 0.0)
    return Axis(name, int(ax.get("size", 1)), scale, offset, _unit(ax.get("units")))


def _to_float32(data: np.ndarray) -> tuple[np.ndarray, dict]:
    """float32 data; complex -> modulus and RGB (structured) -> luminance, with a note."""
    note: dict = {}
    if is_dask(data) and not data.dtype.names:  # read(lazy=True): stays a dask array
        if np.issubdtype(data.dtype, np.complexfloating):
            data = abs(data)
            note["complex"] = "modulus taken"
        return data.astype(np.float32), note
    data = np.asarray(data)
    if data.dtype.names:  # rsciio gives RGB(A) images as a structured dtype
        from .generic import rgb_to_gray

        chans = np.stack([data[n] for n in data.dtype.names[:3]], axis=-1)
        data, how = rgb_to_gray(chans)
        note["colour"] = how
    if np.iscomplexobj(data):
        data = np.abs(data)
        note["complex"] = "modulus taken"
    return np.asarray(data, dtype=np.float32), note


def _quantity_unit(quantity: Any) -> str:
    """The unit of a HyperSpy-style quantity ``"Intensity (counts)"`` -> ``"counts"``; else ``""``."""
    if not isinstance(quantity, str) or "(" not in quantity or not quantity.rstrip().endswith(")"):
        return ""
    return quantity[quantity.rfind("(") + 1:quantity.rstrip().rfind(")")].strip()


def _tia_offsets(sig: dict, axes: list[Axis]) -> list[Axis]:
    """Convert rsciio's SER image offsets (metres) to the axis unit: offset_px * scale."""
    hdr = (sig.get("original_metadata") or {}).get("ser_header_parameters") or {}
    out = list(axes)
    for i, letter in ((-1, "X"), (-2, "Y")):
        off, delta = hdr.get(f"CalibrationOffset{letter}"), hdr.get(f"CalibrationDelta{letter}")
        if off is None or not delta or not out[i].calibrated:
            continue
        a = out[i]
        out[i] = Axis(a.name, a.size, a.scale, float(off) / float(delta) * a.scale, a.unit)
    return out


def signals_to_micrographs(path: Path, signals: list[dict], fmt: str) -> list[Micrograph]:
    """Convert rsciio signal dicts to Micrographs, keeping only 2-D images and 3-D stacks.

    Parameters
    ----------
    path : Path
        The file read (for the source, provenance and error messages).
    signals : list of dict
        rsciio ``file_reader`` output (``data``, ``axes``, ``metadata``, ``original_metadata``...).
    fmt : str
        Format name for the provenance entry, e.g. ``"DM"``.

    Raises
    ------
    ReadError
        When no signal is an image.
    """
    images: list[Micrograph] = []
    skipped: list[str] = []
    for sig in signals:
        data = sig["data"]
        axes = list(sig.get("axes") or [])
        title = ((sig.get("metadata") or {}).get("General") or {}).get("title") or ""
        stype = ((sig.get("metadata") or {}).get("Signal") or {}).get("signal_type") or ""
        shape = tuple(np.shape(data))
        if len(axes) != len(shape):
            axes = [{"name": None, "size": n} for n in shape]
        sig_axes = [a for a in axes if not a.get("navigate", False)]
        kind = None
        if len(shape) == 2:
            kind = "image"
        elif len(shape) == 3 and len(sig_axes) >= 2 and not any(_is_spectral(a) for a in axes) \
                and stype not in _SPECTRAL_TYPES:
            kind = "stack"
        if kind is None:
            what = ("spectrum" if len(shape) == 1 else
                    "spectrum image" if any(_is_spectral(a) for a in axes) or stype in _SPECTRAL_TYPES
                    else f"{len(shape)}-D data")
            skipped.append(f"{title or 'untitled'} ({what}, shape {shape})")
            continue
        # array order of rsciio axes follows the data; NCEM gives (X, Y): transpose back to (y, x)
        names = [str(a.get("name") or "").lower() for a in axes]
        if names[-2:] == ["x", "y"]:
            data = np.swapaxes(data, -1, -2)
            axes = axes[:-2] + [axes[-1], axes[-2]]
        arr, note = _to_float32(data)
        ax_objs = [_make_axis(a, n) for a, n in zip(axes[-2:], ("y", "x"))]
        if kind == "stack":
            a0 = axes[0]
            ax_objs.insert(0, _make_axis(a0, str(a0.get("name") or "frame")))
        if fmt == "TIA":
            ax_objs = _tia_offsets(sig, ax_objs)
        mapped = mapped_metadata(sig)
        signal_unit = _quantity_unit(mapped.get("Signal.quantity"))
        prov = provenance_entry("read", format=fmt, path=str(path), **({"note": note} if note else {}))
        images.append(make_micrograph(arr, axes=ax_objs, signal=str(title) or "intensity",
                                      signal_unit=signal_unit, modality=_modality(sig),
                                      metadata=sig.get("original_metadata") or {}, source=path,
                                      provenance=[prov]))
    if not images:
        if not signals:
            raise ReadError(path, f"the {fmt} file holds no data")
        raise ReadError(path, f"the {fmt} file holds no image signal (scopenet reads 2-D images and "
                              f"3-D stacks); it holds: {', '.join(skipped)}")
    return images


# ---------------------------------------------------------------------------------- readers
def read_dm(path: Path, **kwargs) -> list[Micrograph]:
    """Gatan DigitalMicrograph DM3/DM4 (every image object; spectra and spectrum images skipped)."""
    from rsciio.digitalmicrograph import file_reader

    with open(path, "rb") as fh:
        head = fh.read(16)
    if not is_dm(head):
        raise ReadError(path, "not a DigitalMicrograph file (the header does not start with "
                              "version 3 or 4)")
    return signals_to_micrographs(path, file_reader(str(path), lazy=False), "DM")


def _emd_kind(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as f:
        if "version_major" in f.attrs:
            return "NCEM"
        if "Version" in f or "Data" in f:
            return "Velox"
    return "unknown"


def read_emd(path: Path, lazy: bool = False, **kwargs) -> list[Micrograph]:
    """EMD files: Thermo Fisher Velox and Berkeley/NCEM (image signals only); ``lazy``: dask arrays
    over the HDF5 datasets (RosettaSciIO's lazy mode)."""
    from rsciio.emd import file_reader

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != HDF5_SIGNATURE:
        raise ReadError(path, "not an EMD file (EMD files are HDF5; the HDF5 signature is missing)")
    try:
        kind = _emd_kind(path)
    except (OSError, ValueError) as exc:
        raise ReadError(path, f"corrupt or truncated HDF5/EMD file ({exc})") from exc
    if kind == "unknown":
        raise ReadError(path, "an HDF5 file without an EMD layout (no Velox 'Version'/'Data' or "
                              "Berkeley 'version_major' found)")
    logger = logging.getLogger("rsciio")  # it warns about pruned Velox spectrum streams
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        sigs = file_reader(str(path), lazy=lazy)
    except ImportError as exc:  # Velox spectrum streams need the optional 'sparse' package
        name = getattr(exc, "name", None) or "sparse"
        raise ReadError(path, f"reading this {kind} EMD file needs the package '{name}' "
                              f"(pip install {name})") from exc
    except Exception as exc:  # any library failure -> a ReadError naming the EMD flavour
        raise ReadError(path, f"not a readable {kind} EMD file ({type(exc).__name__}: {exc})") from exc
    finally:
        logger.setLevel(old)
    return signals_to_micrographs(path, sigs, f"EMD-{kind}")


def read_tia(path: Path, **kwargs) -> list[Micrograph]:
    """FEI TIA: a ``.ser`` data file, or an ``.emi`` metadata file with its ``_N.ser`` beside it."""
    from rsciio.tia import file_reader

    path = Path(path)
    if path.suffix.lower() == ".ser":
        with open(path, "rb") as fh:
            if not is_ser(fh.read(6)):
                raise ReadError(path, "not a TIA .ser file (wrong header signature)")
    sigs = file_reader(str(path), lazy=False)
    if not sigs and path.suffix.lower() == ".emi":
        raise ReadError(path, f"the .emi file holds only metadata and no data file "
                              f"'{path.stem}_1.ser' was found beside it")
    return signals_to_micrographs(path, sigs, "TIA")


def _check_mrc_size(path: Path) -> None:
    """Raise a clear ReadError when the MRC header declares more data than the file holds."""
    import mrcfile.utils
    from mrcfile.mrcinterpreter import MrcInterpreter

    with open(path, "rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # permissive mode warns; we raise below
        try:
            mi = MrcInterpreter(iostream=fh, permissive=True, header_only=True)
        except (ValueError, EOFError) as exc:
            raise ReadError(path, f"not a valid MRC file ({exc})") from exc
        header = mi.header
        if header is None:
            raise ReadError(path, "not a valid MRC file (header shorter than 1024 bytes)")
        try:
            dtype = mrcfile.utils.data_dtype_from_header(header)
            shape = mrcfile.utils.data_shape_from_header(header)
        except (ValueError, KeyError) as exc:
            raise ReadError(path, f"corrupt MRC header ({exc})") from exc
    n = int(np.prod(shape, dtype=np.int64))
    if min(shape) <= 0:
        raise ReadError(path, f"the MRC header declares an empty data block (shape {shape})")
    need = 1024 + int(header.nsymbt) + n * np.dtype(dtype).itemsize
    have = path.stat().st_size
    if have < need:
        raise ReadError(path, f"truncated MRC file: the header declares {need} bytes "
                              f"(shape {tuple(shape)}, {np.dtype(dtype)}), the file holds {have}")


def _mrc_memmap(path: Path) -> np.ndarray:
    """The data block of an MRC file as a read-only ``numpy.memmap`` (dtype and shape from the header,
    read with mrcfile as :func:`mrcfile.mmap` does; the map lives as long as the array)."""
    import mrcfile.utils
    from mrcfile.mrcinterpreter import MrcInterpreter

    with open(path, "rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        header = MrcInterpreter(iostream=fh, permissive=True, header_only=True).header
    dtype = mrcfile.utils.data_dtype_from_header(header)
    shape = tuple(int(n) for n in mrcfile.utils.data_shape_from_header(header))
    return np.memmap(path, dtype=dtype, mode="r", offset=1024 + int(header.nsymbt), shape=shape)


def read_mrc(path: Path, lazy: bool = False, **kwargs) -> list[Micrograph]:
    """MRC/MRC2014 images and stacks (pixel size from the header cell, Å -> nm by rsciio).

    A 3-D MRC is an image stack (``ISPG = 0``: axis ``frame``, uncalibrated) or a volume (axis
    ``z`` with the voxel depth in nm). With ``lazy`` the pixels are an ``mrcfile.mmap`` memory map
    in a dask array (nothing read until computed).
    """
    from rsciio.mrc import file_reader

    path = Path(path)
    _check_mrc_size(path)
    sigs = file_reader(str(path), lazy=lazy)
    images = signals_to_micrographs(path, sigs, "MRC")
    if lazy and len(images) == 1:  # rsciio's dask array is one chunk: a chunked memory map instead
        from ._lazyimage import lazy_array

        data = _mrc_memmap(path)
        if tuple(data.shape) == tuple(images[0].shape) and data.dtype.kind in "iuf":
            images[0].data = lazy_array(data).astype(np.float32)
    for img, sig in zip(images, sigs):
        if img.is_stack:
            hdr = (sig.get("original_metadata") or {}).get("std_header") or {}
            ispg = int(np.asarray(hdr.get("ISPG", 0)).ravel()[0]) if "ISPG" in hdr else 0
            a0 = img.axes[0]
            ax = (Axis("frame", a0.size) if ispg == 0 else
                  Axis("z", a0.size, a0.scale, a0.offset, img.axes[-1].unit))
            img.axes = [ax] + img.axes[1:]
    return images


register_format(Format("DM", (".dm3", ".dm4"), reader=read_dm, magic=is_dm,
                       description="Gatan DigitalMicrograph DM3/DM4 (rsciio)", priority=5))
register_format(Format("EMD", (".emd",), reader=read_emd, lazy=True,
                       description="EMD: Thermo Fisher Velox and Berkeley/NCEM (rsciio)", priority=10))
register_format(Format("TIA", (".ser", ".emi"), reader=read_tia, magic=is_ser,
                       description="FEI TIA SER/EMI (rsciio)", priority=5))
register_format(Format("MRC", (".mrc", ".mrcs", ".rec"), reader=read_mrc, magic=is_mrc, lazy=True,
                       description="MRC / MRC2014 (rsciio, header checked with mrcfile)", priority=5))
