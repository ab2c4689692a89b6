"""The lazy Micrograph: calibration in memory, pixels in a dask array read chunk by chunk on demand.

:func:`scopenet.read` with ``lazy=True`` returns a :class:`LazyMicrograph`. Its ``data`` is a
``dask.array.Array`` of float32 backed by the file itself (a memory map for ``.npy``, MRC and
uncompressed TIFF, a zarr store for tiled/compressed TIFF and zarr, an open h5py dataset for HDF5),
so slicing it and calling ``.compute()`` reads only the chunks that hold the slice. Everything else
(axes, signal, unit, metadata, provenance, source) is the same as an eager read.

>>> import numpy as np
>>> from scopenet.io._lazyimage import LazyMicrograph
>>> img = LazyMicrograph(np.zeros((4, 6)))
>>> img.shape, type(img.data).__name__, img.crop(0, 2, 0, 3).data.shape
((4, 6), 'Array', (2, 3))
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import InputError
from ..image.micrograph import Micrograph, _default_axes

__all__ = ["LazyMicrograph", "CHUNK", "is_dask", "lazy_array", "make_micrograph"]

#: chunk side (px) of the dask arrays made from sources without chunks of their own (memory maps)
CHUNK = 1024


def is_dask(data: Any) -> bool:
    """Whether ``data`` is a dask array (without importing dask when it is not)."""
    return type(data).__module__.split(".")[0] == "dask"


def lazy_array(source: Any, chunks: Any = None):
    """A dask array over ``source`` (memory map, h5py dataset, zarr array or ndarray), not reading it.

    ``chunks`` default: the source's own chunks where it has them (zarr, chunked HDF5), else
    :data:`CHUNK` px squares per frame.
    """
    import dask.array as da

    if is_dask(source):
        return source
    if chunks is None:
        own = getattr(source, "chunks", None)
        nd = len(source.shape)
        if isinstance(own, tuple) and len(own) == nd and all(isinstance(c, int) for c in own):
            # whole multiples of the source's chunks, about CHUNK px a side (HDF5 chunks are often tiny)
            chunks = tuple(c if i < nd - 2 else min(int(n), c * max(1, CHUNK // c))
                           for i, (c, n) in enumerate(zip(own, source.shape)))
        else:
            chunks = tuple(1 if i < nd - 2 else CHUNK for i in range(nd))
    ident = _identity(source)
    if isinstance(source, np.memmap):  # dask would hash (read) every page of a memory map to name it
        source = MappedArray(source.filename, source.offset, source.dtype, source.shape,
                             bool(source.flags.f_contiguous and not source.flags.c_contiguous))
    if type(source).__module__.split(".")[0] == "zarr":
        return da.from_zarr(source, chunks=chunks, name=ident)
    return da.from_array(source, chunks=chunks, name=ident, asarray=True, lock=False, fancy=False,
                         meta=np.empty((0,) * len(source.shape), source.dtype))


def _identity(source: Any) -> str | None:
    """A dask name from what identifies ``source`` on disk (file, place in it, size, modification time),
    so that dask never hashes the pixels to name the array; None for in-memory arrays."""
    import os

    from dask.base import tokenize

    if isinstance(source, np.memmap):
        where = (source.filename, source.offset)
    elif type(source).__module__.split(".")[0] == "h5py":
        where = (source.file.filename, source.name)
    elif type(source).__module__.split(".")[0] == "zarr":
        where = (str(source.store), source.path)
    else:
        return None
    try:
        st = os.stat(where[0])
        stamp: tuple = (st.st_mtime_ns, st.st_size)
    except (OSError, TypeError):
        stamp = ()
    return "lazy-read-" + tokenize(*where, stamp, str(source.dtype), tuple(source.shape))


class MappedArray:
    """A read-only memory map of part of a file, mapped afresh for each read and unmapped after it, so the
    pages read do not stay in the process (its resident memory stays that of the chunks in use) and it
    pickles as its parameters, not its pixels. What :func:`lazy_array` gives dask for ``numpy.memmap``."""

    def __init__(self, filename, offset: int, dtype, shape, fortran: bool = False):
        self.filename, self.offset = str(filename), int(offset)
        self.dtype, self.shape, self.fortran = np.dtype(dtype), tuple(int(n) for n in shape), fortran
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        m = np.memmap(self.filename, self.dtype, "r", self.offset, self.shape, "F" if self.fortran else "C")
        return np.array(m[key])  # a copy; the map goes with the last reference to ``m``


@dataclass(eq=False)
class LazyMicrograph(Micrograph):
    """A :class:`~scopenet.image.Micrograph` whose ``data`` is a float32 dask array (see the module).

    Reading a slice reads only the chunks under it: ``img.data[:512, :512].compute()`` or
    ``img.crop(0, 512, 0, 512)`` (an eager Micrograph of the crop, offsets kept). ``np.asarray(img)``
    and :meth:`compute` load everything. Operations that derive a new image (``with_data``, ``crop``,
    ``frames``) return ordinary in-memory Micrographs.

    Attributes
    ----------
    in_memory : bool
        True when the file's format cannot be read lazily and the pixels were read into memory (the
        dask array then wraps an ndarray); see the table in the batch documentation.
    """

    in_memory: bool = False

    def __post_init__(self):
        import dask.array as da

        d = self.data if is_dask(self.data) else da.from_array(np.asarray(self.data))
        if not (np.issubdtype(d.dtype, np.number) or d.dtype == bool) or np.issubdtype(d.dtype, np.complexfloating):
            raise InputError(f"Micrograph data must be real numbers, got dtype {d.dtype}")
        if d.ndim not in (2, 3) or 0 in d.shape:
            raise InputError(f"Micrograph data must be a non-empty 2-D (y, x) or 3-D (n, y, x) array, got "
                             f"shape {d.shape}")
        self.data = d if d.dtype == np.float32 else d.astype(np.float32)
        if not self.axes:
            self.axes = _default_axes(self.data.shape)
        self.axes = list(self.axes)
        if len(self.axes) != self.data.ndim:
            raise InputError(f"{len(self.axes)} axes given for data of shape {self.data.shape}")
        self.axes = [ax if ax.size == n else replace(ax, size=int(n)) for ax, n in zip(self.axes, self.data.shape)]
        if self.source is not None:
            from pathlib import Path

            self.source = Path(self.source)

    @property
    def lazy(self) -> bool:
        return True

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self.data.compute())
        return a if dtype is None else a.astype(dtype)

    def compute(self) -> Micrograph:
        """The same image with its pixels read into memory (an ordinary :class:`Micrograph`)."""
        return Micrograph(self.data.compute(), axes=list(self.axes), signal=self.signal,
                          signal_unit=self.signal_unit, scan_direction=self.scan_direction,
                          modality=self.modality, metadata=self.metadata, source=self.source,
                          provenance=list(self.provenance))

    def summary(self) -> dict[str, Any]:
        return self.compute().summary()

    def __repr__(self) -> str:
        return "Lazy" + super().__repr__() + f" chunks={self.data.chunksize}"


def make_micrograph(data: Any, **kw: Any) -> Micrograph:
    """A :class:`LazyMicrograph` when ``data`` is a dask array, else an ordinary :class:`Micrograph`."""
    return LazyMicrograph(data, **kw) if is_dask(data) else Micrograph(data, **kw)
