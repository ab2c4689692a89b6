"""Zarr stores (``.zarr`` folders): chunked images of any size, read lazily or eagerly, with calibration.

Layout written by :func:`write_zarr` and by the tiled batch runner (:mod:`scopenet.scale.tiled`)::

    out.zarr/            a zarr array (format 3), float32, (y, x) or (n, y, x), chunked
        attrs["scopenet_micrograph"]   the Micrograph state (axes, signal, unit, metadata, provenance)

Any zarr reader (zarr-python, napari, dask.array.from_zarr) sees the pixels; :func:`read_zarr` restores
the Micrograph. A zarr array without our state is read uncalibrated; a zarr group gives each 2-D/3-D
numeric array in it. A store is written under a temporary folder name beside the target and renamed
when complete, so a killed writer never leaves a half-written store under the final name.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadError, WriteError
from ..image.micrograph import Micrograph, provenance_entry
from ._lazyimage import CHUNK, lazy_array, make_micrograph
from ._state import STATE_KEY, micrograph_from_state, micrograph_state
from .registry import Format, register_store

__all__ = ["is_zarr_store", "read_zarr", "write_zarr", "create_array", "temporary_store", "put_store_in_place",
           "store_to_tiled_tiff"]

_MARKERS = ("zarr.json", ".zarray", ".zgroup")


def is_zarr_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a zarr array or group (format 2 or 3)."""
    p = Path(path)
    return p.is_dir() and any((p / m).is_file() for m in _MARKERS)


def read_zarr(path: Path, lazy: bool = False, **kwargs) -> list[Micrograph]:
    """A zarr array (calibrated when written by scopenet) or every 2-D/3-D numeric array of a group.

    With ``lazy`` the pixels stay in the store (a dask array over it, one dask chunk per zarr chunk).
    """
    import zarr

    path = Path(path)
    if not is_zarr_store(path):
        raise ReadError(path, "not a zarr store (no zarr.json, .zarray or .zgroup in the folder)")
    node = zarr.open(store=str(path), mode="r")
    arrays = [("", node)] if isinstance(node, zarr.Array) else sorted(
        (name, a) for name, a in node.arrays() if a.ndim in (2, 3) and a.dtype.kind in "iufb")
    if not arrays:
        raise ReadError(path, "the zarr group holds no 2-D/3-D numeric array")
    out = []
    for name, arr in arrays:
        data = lazy_array(arr) if lazy else arr[...]
        state = dict(arr.attrs).get(STATE_KEY)
        if isinstance(state, dict):
            out.append(micrograph_from_state(path, data, state, "zarr"))
        else:
            out.append(make_micrograph(data, signal=name or "intensity", source=path,
                                       metadata={"zarr_attrs": dict(arr.attrs)},
                                       provenance=[provenance_entry("read", format="zarr", path=str(path),
                                                                    **({"array": name} if name else {}))]))
    return out


def create_array(path: str | os.PathLike, shape: tuple[int, ...], chunks: tuple[int, ...] | None = None,
                 state: dict[str, Any] | None = None):
    """A new float32 zarr array at ``path`` (a folder, created) with the Micrograph ``state`` in its attrs.

    Different processes may then write disjoint chunk-aligned regions concurrently (each chunk is a file).
    """
    import zarr

    if chunks is None:
        chunks = tuple(1 if i < len(shape) - 2 else min(CHUNK, int(n)) for i, n in enumerate(shape))
    z = zarr.open_array(store=str(path), mode="w", shape=tuple(int(s) for s in shape), chunks=chunks,
                        dtype="float32", fill_value=np.nan, zarr_format=3)
    if state is not None:
        z.attrs[STATE_KEY] = json.loads(json.dumps(state))
    return z


def temporary_store(path: str | os.PathLike) -> Path:
    """A fresh temporary folder name beside ``path`` for a store that :func:`put_store_in_place` finishes."""
    path = Path(path)
    return path.with_name(f".{path.name}.scopenet-{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


def put_store_in_place(tmp: Path, path: Path, overwrite: bool = False) -> Path:
    """Rename the finished store ``tmp`` to ``path``; an existing ``path`` only goes with ``overwrite``."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise WriteError(path, "exists (pass overwrite=True to replace it)")
        old = temporary_store(path)
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        try:
            os.rename(tmp, path)
        except OSError as exc:  # somebody else put one there meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
            raise WriteError(path, f"could not put the store in place ({exc})") from exc
    return path


def write_zarr(img: Micrograph, path: Path, *, overwrite: bool = False, chunks: tuple[int, ...] | None = None,
               **kwargs) -> Path:
    """Write ``img`` (eager or lazy) as a float32 zarr store with its state; atomic (see the module).

    A lazy image is copied chunk by chunk (``dask.array.to_zarr``): it is never held in memory whole.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise WriteError(path, "exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_store(path)
    try:
        z = create_array(tmp, img.shape, chunks, micrograph_state(img))
        from ._lazyimage import is_dask

        if is_dask(img.data):
            img.data.rechunk(z.chunks).to_zarr(z)
        else:
            z[...] = np.asarray(img.data, np.float32)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return put_store_in_place(tmp, path, overwrite)


def store_to_tiled_tiff(store: str | os.PathLike, path: str | os.PathLike, *, tile: int = 256,
                        overwrite: bool = False) -> Path:
    """Copy a zarr store written by scopenet to a tiled BigTIFF, one band of tile rows at a time.

    The TIFF (float32, ``tile`` px tiles, uncompressed) carries the Micrograph state in its ImageDescription,
    so :func:`scopenet.read` restores calibration and provenance, and reads it lazily tile by tile. Memory:
    one band of ``tile`` rows of the image.
    """
    import tifffile
    import zarr

    from .._fileutil import atomic_output

    z = zarr.open_array(store=str(store), mode="r")
    if z.ndim != 2:
        raise WriteError(Path(path), f"a tiled TIFF copy takes a 2-D store, got shape {z.shape}")
    state = dict(z.attrs).get(STATE_KEY)
    h, w = z.shape

    def tiles():
        for y0 in range(0, h, tile):
            band = np.asarray(z[y0:y0 + tile, :], np.float32)
            for x0 in range(0, w, tile):
                t = np.zeros((tile, tile), np.float32)
                part = band[:, x0:x0 + tile]
                t[:part.shape[0], :part.shape[1]] = part
                yield t

    desc = json.dumps(state, ensure_ascii=True, separators=(",", ":")) if isinstance(state, dict) else None
    with atomic_output(Path(path), overwrite=overwrite) as tmp:
        tifffile.imwrite(tmp, tiles(), shape=(h, w), dtype=np.float32, tile=(tile, tile), bigtiff=True,
                         description=desc, metadata=None)
    return Path(path)


def remove_store(path: Path) -> None:
    """Remove a store folder (no error when it is gone)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


register_store(Format("zarr", (".zarr",), reader=read_zarr, writer=write_zarr, lazy=True, store=True,
                       description="zarr store (a folder; chunked, read lazily; scopenet state in its attributes)"))
