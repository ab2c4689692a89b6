"""Render uploads outside the server process: worker subprocesses with a time and a memory limit,
and a pixel limit read from the image header before anything is decoded.

An uploaded file is untrusted input to many readers (Pillow, tifffile, the SPM readers of
:mod:`scopenet.io`). A crafted file can make a reader hang, allocate gigabytes (a "decompression
bomb": a small PNG declaring 12000 x 12000 pixels) or crash. So the web app never decodes uploads
itself: :class:`RenderPool` hands each file to a worker process (``spawn`` start method) whose
address space is capped with ``RLIMIT_AS``; a worker that runs past the time limit is killed and
replaced. Before decoding, :func:`check_pixels` reads the image size from the header and refuses
images over the pixel limit.

>>> pool = RenderPool(timeout=30, memory_limit=2 << 30, max_pixels=64_000_000)   # doctest: +SKIP
>>> png, width, height = pool.render("scan.sxm")    # raises UploadRefused with the reason  # doctest: +SKIP
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import queue
import threading
import weakref
from pathlib import Path
from typing import Callable

from ..errors import InputError, ReadError, ScopenetError

#: default pixel limit of one image (width x height), checked from the header before decoding
DEFAULT_MAX_PIXELS = 64_000_000
#: default time limit for reading and rendering one file, seconds
DEFAULT_RENDER_TIMEOUT = 30.0
#: default memory a worker may use beyond what it holds after start-up, bytes
DEFAULT_RENDER_MEMORY = 4 << 30

RenderFn = Callable[[Path], "tuple[bytes, int, int]"]


class UploadRefused(InputError):
    """An uploaded file is refused; the message is the reason (without the file name)."""


# ------------------------------------------------------------------------------- pixel limit


def _mpx(n: float) -> str:
    return f"{n / 1e6:.3g} Mpx"


def header_shapes(path: str | Path) -> list[tuple[int, int]]:
    """(height, width) of the images a file declares in its header, read without decoding pixels.

    Knows PNG, JPEG, BMP, GIF and the like (Pillow), TIFF (every page, tifffile), NumPy ``.npy`` and
    HDF5 (h5py, when installed). Other formats, and files whose header cannot be parsed, give
    ``[]`` (their reader then decides).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(8)
    try:
        if magic[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            import tifffile

            out = []
            with tifffile.TiffFile(path) as tf:
                for k, page in enumerate(tf.pages):
                    if k >= 10_000:
                        break
                    shape = tuple(int(d) for d in getattr(page, "shape", ()) if d)
                    if len(shape) >= 2:
                        # (y, x) or (y, x, samples) or (samples, y, x) for planar pages
                        hw = shape[-3:-1] if len(shape) == 3 and shape[-1] <= 8 else shape[-2:]
                        out.append((int(hw[0]), int(hw[1])))
            return out
        if magic[:6] == b"\x93NUMPY":
            import numpy as np

            fmt = np.lib.format
            with open(path, "rb") as fh:
                version = fmt.read_magic(fh)
                if version == (1, 0):
                    shape = fmt.read_array_header_1_0(fh)[0]
                elif version == (2, 0):
                    shape = fmt.read_array_header_2_0(fh)[0]
                else:
                    shape = fmt._read_array_header(fh, version)[0]
            return [(int(shape[-2]), int(shape[-1]))] if len(shape) >= 2 else []
        if magic == b"\x89HDF\r\n\x1a\n":
            try:
                import h5py
            except ImportError:
                return []
            shapes: list[tuple[int, int]] = []

            def visit(_name, obj):
                if isinstance(obj, h5py.Dataset) and len(obj.shape) >= 2:
                    shapes.append((int(obj.shape[-2]), int(obj.shape[-1])))

            with h5py.File(path, "r") as f:
                f.visititems(visit)
            return shapes
        import warnings

        from PIL import Image as PILImage

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            try:
                with PILImage.open(path) as im:  # lazy: reads the header only
                    return [(int(im.size[1]), int(im.size[0]))]
            except PILImage.DecompressionBombError:
                limit = 2 * (PILImage.MAX_IMAGE_PIXELS or 0)
                return [(limit + 1, 1)]  # Pillow's own bomb limit is far above ours
    except Exception:
        return []


def check_pixels(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Refuse an image larger than ``max_pixels`` (width x height of any page), from its header.

    Raises
    ------
    UploadRefused
        Naming the size and the limit.
    """
    if not max_pixels:
        return
    for h, w in header_shapes(path):
        if h * w > max_pixels:
            size = f"{w} x {h} pixels ({_mpx(h * w)})" if w > 1 else f"more than {_mpx(h - 1)}"
            raise UploadRefused(f"the image is {size}, over the pixel limit of {_mpx(max_pixels)}")


def render_checked(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                   render: RenderFn | None = None) -> tuple[bytes, int, int]:
    """:func:`~scopenet.label.render.render_file` after :func:`check_pixels`, in this process."""
    from .render import render_file

    check_pixels(path, max_pixels)
    return (render or render_file)(Path(path))


# ----------------------------------------------------------------------------------- workers


def _vm_size() -> int | None:
    """Bytes of address space this process holds (Linux), else None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _init_worker(memory_limit: int | None) -> None:
    """Worker start-up: import the readers, then cap the address space at what the worker holds
    now plus ``memory_limit`` bytes."""
    from ..io import read  # noqa: F401 - load every reader before the cap
    from . import render  # noqa: F401

    try:  # the line flattening render uses, imported on first use otherwise
        from ..image import spm  # noqa: F401
    except ImportError:  # pragma: no cover - the module is absent
        pass

    if not memory_limit:
        return
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    base = _vm_size()
    if base is None:  # pragma: no cover - not Linux
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = base + int(memory_limit)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _memory_message(memory_limit: int | None) -> str:
    return (f"reading it needs more memory than the limit of {memory_limit / 2**20:,.0f} MiB"
            if memory_limit else "reading it runs out of memory")


def _job(func: RenderFn | None, path: str, max_pixels: int | None, memory_limit: int | None):
    """What a worker runs: ("ok", png, width, height) or ("refused", reason)."""
    try:
        png, w, h = render_checked(path, max_pixels, func)
        return "ok", png, int(w), int(h)
    except MemoryError:
        return "refused", _memory_message(memory_limit)
    except ReadError as exc:
        return "refused", exc.reason
    except ScopenetError as exc:
        return "refused", str(exc)
    except Exception as exc:  # an unexpected library failure must not sink the batch
        return "refused", f"cannot be read ({type(exc).__name__})"


def _ready() -> bool:
    """A no-op task: its answer means the worker has started (imports done, limits set)."""
    return True


def _kill(ex: cf.ProcessPoolExecutor) -> None:
    """Stop an executor now, killing its worker (it may hang in a reader)."""
    kill = getattr(ex, "kill_workers", None)  # Python 3.14+
    if kill is not None:  # pragma: no cover - newer Pythons
        try:
            kill()
        except Exception:
            pass
    for p in list((getattr(ex, "_processes", None) or {}).values()):
        try:
            p.kill()
        except Exception:  # pragma: no cover - already gone
            pass
    ex.shutdown(wait=False, cancel_futures=True)


def _shutdown_all(slots: list) -> None:
    for ex in slots:
        if ex is not None:
            _kill(ex)


class RenderPool:
    """Render uploads in worker processes, each file under a time and a memory limit.

    There are ``workers`` slots, each a single-process executor (started on first use with the
    ``spawn`` method); a request takes a free slot (waiting for one if all are busy; the wait does
    not count against the time limit), so that a file that hangs only ever kills its own worker.

    Parameters
    ----------
    workers : int
        Files rendered at the same time.
    timeout : float
        Seconds one file may take to read and render; then its worker is killed and the file refused.
    memory_limit : int
        Bytes of address space a worker may add to what it holds after start-up (``RLIMIT_AS``;
        Linux); a reader that needs more is refused. 0 or None: no limit.
    max_pixels : int
        Pixel limit of one image, checked from the header before decoding (None: none).
    func : callable, optional
        The renderer, ``func(path) -> (png bytes, width, height)``; must be importable by the
        workers (a module-level function). Default :func:`~scopenet.label.render.render_file`.
    """

    def __init__(self, workers: int = 2, timeout: float = DEFAULT_RENDER_TIMEOUT,
                 memory_limit: int | None = DEFAULT_RENDER_MEMORY, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 func: RenderFn | None = None):
        if workers < 1 or timeout <= 0:
            raise ValueError("workers must be at least 1 and the timeout longer than 0 s")
        self.workers, self.timeout = int(workers), float(timeout)
        self.memory_limit, self.max_pixels, self.func = memory_limit, max_pixels, func
        #: seconds a new worker may take to start (spawn an interpreter, import the readers)
        self.startup_timeout = 120.0
        self._slots: list[cf.ProcessPoolExecutor | None] = [None] * self.workers
        self._free: queue.LifoQueue[int] = queue.LifoQueue()
        for i in range(self.workers):
            self._free.put(i)
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown_all, self._slots)

    def _start(self) -> cf.ProcessPoolExecutor:
        """A new worker, started (its start-up does not count against a file's time limit)."""
        ex = cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_init_worker, initargs=(self.memory_limit,))
        try:
            ex.submit(_ready).result(timeout=self.startup_timeout)
        except BaseException:
            _kill(ex)
            raise UploadRefused("the reader's worker process did not start") from None
        return ex

    def render(self, path: str | Path) -> tuple[bytes, int, int]:
        """Render one file in a worker: (png bytes, width, height).

        Raises
        ------
        UploadRefused
            With the reason: unreadable, over the pixel limit, over the time or memory limit.
        """
        if self._closed:
            raise RuntimeError("the render pool is closed")
        i = self._free.get()
        try:
            for attempt in range(2):
                ex = self._slots[i]
                if ex is None:
                    ex = self._slots[i] = self._start()
                try:
                    fut = ex.submit(_job, self.func, str(path), self.max_pixels, self.memory_limit)
                    out = fut.result(timeout=self.timeout)
                except cf.TimeoutError:
                    self._slots[i] = None
                    _kill(ex)
                    raise UploadRefused(f"reading it took longer than the time limit of {self.timeout:g} s") from None
                except cf.process.BrokenProcessPool:
                    # the worker died: out of memory in C code, a crashing reader, or a worker that
                    # failed to start; one fresh try, then the file is refused
                    self._slots[i] = None
                    _kill(ex)
                    if attempt == 0:
                        continue
                    limit = (f" (memory limit {self.memory_limit / 2**20:,.0f} MiB)" if self.memory_limit else "")
                    raise UploadRefused(f"the reader crashed or ran out of memory{limit}") from None
                if out[0] == "ok":
                    return out[1], out[2], out[3]
                raise UploadRefused(out[1])
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._free.put(i)

    def __call__(self, path: str | Path) -> tuple[bytes, int, int]:
        return self.render(path)

    def close(self) -> None:
        """Stop the workers (a later :meth:`render` refuses)."""
        self._closed = True
        with self._lock:
            slots = list(self._slots)
            self._slots[:] = [None] * self.workers
        for ex in slots:
            if ex is not None:
                ex.shutdown(wait=False, cancel_futures=True)
