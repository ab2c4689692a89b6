"""One registry of file formats; readers and writers register themselves here.

A format module declares itself with :func:`register_format`: its extensions, an optional magic-byte
test, a reader returning a list of :class:`~scopenet.image.Micrograph` (one per channel/trace/
signal in the file) and an optional writer. :func:`read` chooses by magic bytes first, then by
extension, and wraps every failure in :class:`~scopenet.errors.ReadError` naming the file.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..errors import ReadError, ScopenetError, WriteError
from ..image.micrograph import Micrograph

Reader = Callable[..., list[Micrograph]]
Writer = Callable[..., Optional[list[Path]]]


@dataclass
class Format:
    """A file format family: ``name``, lower-case ``extensions`` (with dot), ``magic`` test on the
    first 512 bytes, ``reader(path, **kw) -> list[Micrograph]`` and ``writer(img, path, **kw)``.

    A writer writes to the (temporary) ``path`` it is given. One that also writes companion files
    (a sidecar) names each ``path.name + extra`` and returns their paths; :func:`write` renames them to
    ``final.name + extra`` after the main file, and removes them if anything fails."""

    name: str
    extensions: tuple[str, ...]
    reader: Optional[Reader] = None
    writer: Optional[Writer] = None
    magic: Optional[Callable[[bytes], bool]] = None
    description: str = ""
    priority: int = 0  # higher wins when several formats claim the same extension
    kwargs_doc: dict = field(default_factory=dict)
    #: the reader accepts ``lazy=True`` and then returns Micrographs over dask arrays (no full read)
    lazy: bool = False
    #: a folder store (zarr): the writer gets the final path and ``overwrite`` and is atomic itself
    store: bool = False


FORMATS: list[Format] = []


def register_format(fmt: Format) -> Format:
    FORMATS[:] = [f for f in FORMATS if f.name != fmt.name]
    FORMATS.append(fmt)
    return fmt


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def find_format(path: Path, head: bytes | None = None, for_writing: bool = False) -> Format | None:
    """The format for ``path``: magic bytes first (reading only), then the extension."""
    _load_builtin_formats()
    cands = [f for f in FORMATS if (f.writer if for_writing else f.reader)]
    if head is not None and not for_writing:
        for f in sorted(cands, key=lambda f: -f.priority):
            if f.magic is not None:
                try:
                    if f.magic(head):
                        return f
                except Exception:
                    continue
    ext = _suffix(path)
    by_ext = [f for f in cands if ext in f.extensions]
    if by_ext:
        return sorted(by_ext, key=lambda f: -f.priority)[0]
    return None


def supported_extensions(for_writing: bool = False) -> list[str]:
    _load_builtin_formats()
    exts = set()
    for f in FORMATS:
        if (f.writer if for_writing else f.reader):
            exts.update(f.extensions)
    return sorted(exts)


def _check_path(path: Path) -> bytes:
    if not path.exists():
        raise ReadError(path, "no such file")
    if path.is_dir():
        raise ReadError(path, "is a directory, not a file")
    try:
        size = path.stat().st_size
        if size == 0:
            raise ReadError(path, "the file is empty (0 bytes)")
        with open(path, "rb") as fh:
            return fh.read(512)
    except PermissionError as exc:
        raise ReadError(path, f"permission denied ({exc})") from exc


#: folder stores (zarr): read from and written to folders, so kept apart from the file formats
STORES: list[Format] = []


def register_store(fmt: Format) -> Format:
    """Register a folder store format (``fmt.store`` is set; its reader takes the folder)."""
    STORES[:] = [f for f in STORES if f.name != fmt.name]
    STORES.append(fmt)
    return fmt


def _store_format(path: Path) -> Format | None:
    """The store format of ``path`` (a zarr folder to read, or a ``.zarr`` name to write), else None."""
    _load_builtin_formats()
    if path.is_dir() and not any((path / m).is_file() for m in ("zarr.json", ".zarray", ".zgroup")):
        return None
    return next((f for f in STORES if path.suffix.lower() in f.extensions or path.is_dir()), None)


def read_all(path: str | os.PathLike, *, lazy: bool = False, **kwargs) -> list[Micrograph]:
    """Read every image in a file: all channels, traces (forward/backward, up/down) and signals.

    Parameters
    ----------
    lazy : bool
        Return :class:`~scopenet.io._lazyimage.LazyMicrograph` objects whose pixels are dask arrays
        read chunk by chunk on demand (TIFF, HDF5, EMD, MRC, zarr, .npy). Formats that cannot be read
        lazily are read into memory and wrapped (``in_memory`` is then True).

    Raises
    ------
    ReadError
        If the file is missing, empty, truncated, corrupt or of an unsupported format.
    """
    path = Path(path)
    fmt = _store_format(path) if path.is_dir() else None
    if fmt is None:
        head = _check_path(path)
        fmt = find_format(path, head)
    if fmt is None:
        raise ReadError(path, f"unsupported format (extension '{path.suffix}'); scopenet reads "
                              f"{', '.join(supported_extensions())}")
    try:
        if lazy and fmt.lazy:
            images = fmt.reader(path, lazy=True, **kwargs)
        else:
            images = fmt.reader(path, **kwargs)
            if lazy:
                images = [_wrap_in_memory(m) for m in images]
    except ReadError:
        raise
    except ScopenetError as exc:
        raise ReadError(path, str(exc)) from exc
    except MemoryError as exc:
        raise ReadError(path, "too large to load into memory") from exc
    except Exception as exc:  # any library failure becomes a ReadError naming the file
        raise ReadError(path, f"not a valid {fmt.name} file or corrupt/truncated "
                              f"({type(exc).__name__}: {exc})") from exc
    if not images:
        raise ReadError(path, f"the {fmt.name} file holds no image data")
    for img in images:
        if img.source is None:
            img.source = path
    return images


def _wrap_in_memory(img: Micrograph) -> Micrograph:
    """An eagerly read image as a LazyMicrograph over its in-memory pixels (``in_memory=True``)."""
    from ._lazyimage import LazyMicrograph

    return LazyMicrograph(img.data, axes=img.axes, signal=img.signal, signal_unit=img.signal_unit,
                          scan_direction=img.scan_direction, modality=img.modality, metadata=img.metadata,
                          source=img.source, provenance=img.provenance, in_memory=True)


def read(path: str | os.PathLike, *, channel: str | None = None, direction: str | None = None,
         index: int | None = None, lazy: bool = False, **kwargs) -> Micrograph:
    """Read one image from an instrument file into a calibrated :class:`Micrograph`.

    Parameters
    ----------
    path : str or Path
        DM3/DM4, EMD, SER/EMI, MRC, TIFF, Nanonis .sxm, Omicron .Z_mtrx, Gwyddion .gwy, .ibw,
        Bruker, .npy, .png, .h5 ...
    channel : str, optional
        For multi-channel files (SPM): the channel/signal name, e.g. ``"Z"``, ``"Current"``.
        Matched case-insensitively; default the first (topography where present).
    direction : str, optional
        For SPM: ``"forward"``, ``"backward"``, or a full ``"forward/up"``; default the first.
    index : int, optional
        Pick the index-th image among those that match.
    lazy : bool
        Keep the pixels in the file: the Micrograph's ``data`` is a float32 dask array read chunk by
        chunk when computed (TIFF, HDF5/EMD, MRC, zarr, .npy); calibration and metadata as an eager
        read. Other formats are read into memory (``img.in_memory`` is True). See ``docs/tasks/batch.md``.

    Returns
    -------
    Micrograph

    Raises
    ------
    ReadError
        If the file cannot be read or nothing in it matches ``channel``/``direction``.
    """
    images = read_all(path, lazy=lazy, **kwargs)
    sel = images
    if channel is not None:
        c = channel.lower()
        sel = [m for m in sel if m.signal.lower() == c] or [m for m in sel if c in m.signal.lower()]
    if direction is not None:
        d = direction.lower()
        sel = [m for m in sel if m.scan_direction and (m.scan_direction.lower() == d
                                                        or m.scan_direction.lower().startswith(d))]
    if not sel:
        avail = sorted({f"{m.signal}" + (f" ({m.scan_direction})" if m.scan_direction else "") for m in images})
        raise ReadError(path, f"no image matches channel={channel!r} direction={direction!r}; "
                              f"available: {', '.join(avail)}")
    if index is not None:
        if not -len(sel) <= index < len(sel):
            raise ReadError(path, f"index {index} out of range: {len(sel)} matching images")
        return sel[index]
    return sel[0]


def check_has_data(img: Micrograph, path: str | os.PathLike) -> None:
    """Raise WriteError naming ``path`` when ``img`` holds no finite value (all NaN and/or inf).

    Such a file holds no information (e.g. ``flatten`` of an all-NaN image) and every reader or
    display would show nothing; refusing it makes the failing step visible (a non-zero exit).
    """
    import numpy as np

    data = np.asarray(img.data)
    if data.size and data.dtype.kind in "fc" and not np.isfinite(data).any():
        what = "NaN" if np.isnan(data).all() else "NaN or infinite" if np.isnan(data).any() else "infinite"
        raise WriteError(path, f"the image ({img.signal}, {'x'.join(map(str, data.shape))}) is all {what}: "
                               "there is no value to write (was it computed from an empty or all-NaN image?)")


def write(img: Micrograph, path: str | os.PathLike, *, overwrite: bool = False, **kwargs) -> Path:
    """Write a Micrograph; the format follows the extension (.tif, .h5, .png, .npy ...).

    The file is written under a temporary name and put in place when complete; an existing file is
    only replaced with ``overwrite=True``.

    Raises
    ------
    WriteError
        Unsupported extension, existing file without ``overwrite``, an image with no finite value
        (all NaN/inf), or any failure of the writer; the message names the file.
    """
    from .._fileutil import atomic_output
    from ..image.micrograph import as_micrograph

    path = Path(path)
    img = as_micrograph(img)
    fmt = _store_format(path) if path.suffix.lower() == ".zarr" else find_format(path, for_writing=True)
    if fmt is None:
        raise WriteError(path, f"no writer for extension '{path.suffix}'; scopenet writes "
                               f"{', '.join(supported_extensions(for_writing=True))}")
    if fmt.store:  # a folder (zarr): written atomically by its writer, lazily for a lazy image
        try:
            return fmt.writer(img, path, overwrite=overwrite, **kwargs)
        except ScopenetError:
            raise
        except Exception as exc:
            raise WriteError(path, f"{fmt.name} writer failed ({type(exc).__name__}: {exc})") from exc
    check_has_data(img, path)
    companions: list[Path] = []
    try:
        with atomic_output(path, overwrite=overwrite) as tmp:
            try:
                companions = [Path(c) for c in (fmt.writer(img, tmp, **kwargs) or [])]
            except ScopenetError:
                raise
            except Exception as exc:  # a library failure becomes a WriteError naming the file
                raise WriteError(path, f"{fmt.name} writer failed ({type(exc).__name__}: {exc})") from exc
            for c in companions:  # checked before the main file is put in place
                if not c.name.startswith(tmp.name):
                    raise WriteError(path, f"{fmt.name} writer returned a companion {c.name} not named after {tmp.name}")
            extras = [c.name[len(tmp.name):] for c in companions]
        for c, extra in zip(companions, extras):  # the main file is in place: its sidecars follow it
            os.replace(c, path.with_name(path.name + extra))
    finally:
        for c in companions:
            with contextlib.suppress(FileNotFoundError):
                c.unlink()
    return path


_LOADED = False


def _load_builtin_formats() -> None:
    """Import the built-in format modules (each registers itself)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib

    for mod in BUILTIN_MODULES:
        importlib.import_module(f"scopenet.io.{mod}")


#: format modules, one per family; each calls register_format() at import.
BUILTIN_MODULES = ["generic", "em", "tiff_io", "hdf5_io", "sxm", "matrix", "gwy", "ibw", "bruker", "zarr_io"]
