"""Tiled prediction: run an image-to-image model on an image of any size, tile by tile.

The image is covered by overlapping square tiles. At the true image borders the tiles reach
beyond the image and are filled by reflection, so border pixels sit inside a tile, not on its edge.
Each prediction is weighted by a smooth window that falls to almost zero at the tile edges (where a
convolutional network is least reliable) and the weighted predictions are averaged. Tiles are
extracted, predicted in batches and accumulated one batch at a time: the only full-size buffer is
the output.

>>> import numpy as np
>>> out = predict_tiled(np.random.rand(300, 500), lambda b: b, tile=128, overlap=16)
>>> out.shape
(300, 500)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

import numpy as np

from ..errors import InputError
from .micrograph import Micrograph

__all__ = ["TileSpec", "iter_tiles", "tile_starts", "blend_window", "predict_tiled"]

PadMode = Literal["reflect", "symmetric", "edge", "wrap", "constant", "crop"]


@dataclass(frozen=True)
class TileSpec:
    """One tile: its top-left corner in image coordinates (may be negative: the tile reaches into
    the reflected border) and its size.

    Attributes
    ----------
    y0, x0 : int
        Image coordinates of the tile's first row / column.
    height, width : int
        Tile size in pixels.
    index : (int, int)
        Row and column of the tile in the grid.
    """

    y0: int
    x0: int
    height: int
    width: int
    index: tuple[int, int]

    def image_slices(self, shape: Sequence[int]) -> tuple[slice, slice]:
        """The part of an image of ``shape`` (y, x) that this tile covers."""
        h, w = shape[-2:]
        return (slice(max(self.y0, 0), min(self.y0 + self.height, h)),
                slice(max(self.x0, 0), min(self.x0 + self.width, w)))

    def tile_slices(self, shape: Sequence[int]) -> tuple[slice, slice]:
        """The part of the tile that lies inside an image of ``shape``, matching :meth:`image_slices`."""
        ys, xs = self.image_slices(shape)
        return (slice(ys.start - self.y0, ys.stop - self.y0), slice(xs.start - self.x0, xs.stop - self.x0))


def _as_pair(v, name: str) -> tuple[int, int]:
    if np.isscalar(v):
        v = (v, v)
    try:
        a, b = (int(t) for t in v)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an integer or a pair of integers, got {v!r}") from None
    return a, b


def tile_starts(n: int, tile: int, overlap: int) -> np.ndarray:
    """Start coordinates of the tiles along one axis of length ``n``.

    The padded range ``[-overlap // 2, n + overlap // 2)`` is covered with tiles spaced at most
    ``tile - overlap`` apart (spread evenly, first and last flush with the padded range). When the
    padded range is shorter than a tile, one tile is centred on the image.
    """
    if n < 1:
        raise InputError(f"image size must be >= 1, got {n}")
    m = overlap // 2
    length = n + 2 * m
    if length <= tile:
        return np.array([-((tile - n) // 2)])
    step = tile - overlap
    count = math.ceil((length - tile) / step) + 1
    return np.round(np.linspace(0, length - tile, count)).astype(int) - m


def iter_tiles(shape: Sequence[int], tile: int | tuple[int, int] = 256,
               overlap: int | tuple[int, int] = 32) -> Iterator[TileSpec]:
    """Stream the tiles covering an image of ``shape`` (..., y, x), row by row.

    Parameters
    ----------
    shape : sequence of int
        Image shape; only the last two entries are used.
    tile : int or (int, int)
        Tile size (rows, cols) in pixels.
    overlap : int or (int, int)
        Minimum overlap between neighbouring tiles, in pixels (``0 <= overlap < tile``). Half of it
        is also the reflected margin at the true image borders.

    Yields
    ------
    TileSpec
    """
    (th, tw), (oy, ox) = _as_pair(tile, "tile"), _as_pair(overlap, "overlap")
    _check(th, tw, oy, ox)
    h, w = (int(s) for s in shape[-2:])
    ys, xs = tile_starts(h, th, oy), tile_starts(w, tw, ox)
    for i, y0 in enumerate(ys):
        for j, x0 in enumerate(xs):
            yield TileSpec(int(y0), int(x0), th, tw, (i, j))


def _check(th, tw, oy, ox):
    if th < 1 or tw < 1:
        raise InputError(f"tile size must be >= 1, got {(th, tw)}")
    if not (0 <= oy < th and 0 <= ox < tw):
        raise InputError(f"overlap must satisfy 0 <= overlap < tile, got overlap {(oy, ox)} for tile {(th, tw)}")


def blend_window(n: int, overlap: int, floor: float = 1e-6) -> np.ndarray:
    """1-D blending weights of length ``n``.

    Over the ``overlap`` pixels at each end: a dead zone of ``overlap // 4`` pixels with weight
    ``floor`` (tile edges, where a network's output is worst, are effectively discarded), then a
    raised-cosine rise to 1. The 2-D window is the outer product. Neighbouring tiles overlap by at
    least ``overlap`` pixels, so every pixel of an image is also covered by a tile's interior.
    """
    w = np.ones(n, dtype=np.float64)
    if overlap <= 0:
        return w
    dead = overlap // 4
    rise = overlap - dead
    t = np.arange(n, dtype=np.float64)

    def ramp(s):
        r = np.sin(0.5 * np.pi * np.clip(s - dead + 0.5, 0, rise) / rise) ** 2
        return np.where(s < dead, floor, np.maximum(r, floor))

    return np.minimum(ramp(t), ramp(n - 1 - t))


def _reflect_index(idx: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map indices outside ``[0, n)`` back inside, like :func:`numpy.pad` with ``mode``."""
    if mode == "reflect" and n == 1:
        mode = "edge"  # reflection without edge repeat is undefined on one pixel
    if mode == "reflect":
        p = 2 * n - 2
        i = np.mod(idx, p)
        return np.where(i >= n, p - i, i)
    if mode == "symmetric":
        p = 2 * n
        i = np.mod(idx, p)
        return np.where(i >= n, p - 1 - i, i)
    if mode == "wrap":
        return np.mod(idx, n)
    if mode in ("edge", "constant"):
        return np.clip(idx, 0, n - 1)
    raise InputError(f"unknown pad_mode {mode!r}; use reflect, symmetric, edge, wrap or constant")


def _extract(frame: np.ndarray, spec: TileSpec, mode: str, out: np.ndarray) -> None:
    """Fill ``out`` (tile-shaped, float32) with the tile ``spec`` of a 2-D ``frame``, padded by ``mode``."""
    h, w = frame.shape
    ys, xs = spec.image_slices(frame.shape)
    inside = ys.start == spec.y0 and ys.stop == spec.y0 + spec.height and \
        xs.start == spec.x0 and xs.stop == spec.x0 + spec.width
    if inside:
        out[...] = frame[ys, xs]
        return
    if mode == "constant":
        out[...] = 0.0
        ty, tx = spec.tile_slices(frame.shape)
        out[ty, tx] = frame[ys, xs]
        return
    ri = _reflect_index(np.arange(spec.y0, spec.y0 + spec.height), h, mode)
    ci = _reflect_index(np.arange(spec.x0, spec.x0 + spec.width), w, mode)
    out[...] = frame[np.ix_(ri, ci)]


def predict_tiled(image, fn: Callable[[np.ndarray], np.ndarray], tile: int | tuple[int, int] = 256,
                  overlap: int | tuple[int, int] = 32, batch_size: int = 4, pad_mode: PadMode = "reflect",
                  progress: bool = False, batched: bool | None = None, operation: str | None = "predict_tiled",
                  channels: bool = False, skip: Callable[[np.ndarray], np.ndarray | None] | None = None):
    """Apply an image-to-image function to an image of any size through overlapping tiles.

    Parameters
    ----------
    image : array_like, shape (y, x) or (n, y, x), or Micrograph; with ``channels``: (c, y, x) or (n, c, y, x)
        Any size from 1x1 up; a stack is processed frame by frame. Non-finite pixels are passed to
        ``fn`` as they are (use :func:`~scopenet.image.scaling.fill_nonfinite` first).
    fn : callable
        With ``batched=True``: maps a float32 batch ``(B, th, tw)`` (``(B, c, th, tw)`` with
        ``channels``) to an array ``(B, th, tw)``. With ``batched=False``: maps one tile ``(th, tw)``
        (``(c, th, tw)``) to ``(th, tw)``. Outputs may be NumPy arrays or anything ``np.asarray``
        accepts (a CPU torch tensor).
    tile : int or (int, int)
        Tile size (rows, cols); every call to ``fn`` gets exactly this size (except with ``"crop"``).
    overlap : int or (int, int)
        Minimum overlap between tiles (``0 <= overlap < tile``); also the width of the blending ramp.
    batch_size : int
        Tiles per call when batched.
    pad_mode : {"reflect", "symmetric", "edge", "wrap", "constant", "crop"}
        How tiles are filled beyond the true image borders (``numpy.pad`` names; ``"reflect"`` on a
        one-pixel axis falls back to ``"edge"``). ``"crop"``: tiles are cut at the borders, so ``fn``
        gets smaller tiles there, each blended with a window of its own size.
    progress : bool
        Show a tqdm progress bar over tiles.
    batched : bool, optional
        Whether ``fn`` takes batches. Default: try a batch first, and fall back to single tiles if
        that raises or returns the wrong shape.
    operation : str, optional
        Provenance entry name for a Micrograph input (None: no entry).
    channels : bool
        The input has a channel axis (after the stack axis), given to ``fn`` whole; the output has none.
    skip : callable, optional
        ``skip(tile)`` is called on each extracted tile (``(th, tw)`` or ``(c, th, tw)``) first; when it
        returns an array, that is the tile's prediction and ``fn`` is not called for it (for example a
        sparse scan's tile without a scanned pixel keeps its infill).

    Returns
    -------
    ndarray (float32) or Micrograph
        Shape of the input (without the channel axis). With an identity ``fn`` the input is reproduced
        exactly (to float32 rounding).
    """
    img = image if isinstance(image, Micrograph) else None
    arr = img.data if img is not None else np.asarray(image)
    lo_nd = 3 if channels else 2
    if arr.ndim not in (lo_nd, lo_nd + 1) or arr.size == 0:
        what = "(c, y, x) image or (n, c, y, x) stack" if channels else "2-D image or 3-D stack"
        raise InputError(f"predict_tiled needs a non-empty {what}, got shape {arr.shape}")
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"predict_tiled needs real numeric data, got dtype {arr.dtype}")
    (th, tw), (oy, ox) = _as_pair(tile, "tile"), _as_pair(overlap, "overlap")
    _check(th, tw, oy, ox)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    single = arr.ndim == lo_nd
    frames = arr[None] if single else arr
    if not channels:
        frames = frames[:, None]
    n, c, h, w = frames.shape
    specs = list(iter_tiles((h, w), (th, tw), (oy, ox)))  # small: a few numbers per tile
    crop = pad_mode == "crop"
    if crop:
        acc_dtype = np.float64
        wsum = np.zeros((h, w), np.float64)
    else:
        win_y, win_x = blend_window(th, oy), blend_window(tw, ox)
        # The tiles form a grid with one window, so the accumulated weight is separable: outer(wy, wx).
        wsum_y, wsum_x = np.zeros(h), np.zeros(w)
        for y0 in sorted({s.y0 for s in specs}):
            sl, tl = TileSpec(y0, 0, th, 1, (0, 0)).image_slices((h, 1))[0], slice(max(-y0, 0), None)
            wsum_y[sl] += win_y[tl][: sl.stop - sl.start]
        for x0 in sorted({s.x0 for s in specs}):
            sl, tl = TileSpec(0, x0, 1, tw, (0, 0)).image_slices((1, w))[1], slice(max(-x0, 0), None)
            wsum_x[sl] += win_x[tl][: sl.stop - sl.start]
        # float32 accumulation is exact to ~1e-7 when a pixel gets few predictions (the usual case); with
        # heavy overlap (many tiles per pixel) accumulate in float64 to keep identity exact to 1e-6.
        per_pixel = math.ceil(th / max(th - oy, 1)) * math.ceil(tw / max(tw - ox, 1))
        acc_dtype = np.float32 if per_pixel <= 4 else np.float64
        win2 = np.outer(win_y, win_x).astype(acc_dtype)
    out = np.zeros((n, h, w), dtype=acc_dtype)
    jobs = [(f, s) for f in range(n) for s in specs]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="tiles", unit="tile")
    state = {"batched": batched}

    def tile_of(f: int, s: TileSpec) -> np.ndarray:
        if crop:
            ys, xs = s.image_slices((h, w))
            return np.ascontiguousarray(frames[f, :, ys, xs], dtype=np.float32)
        t = np.empty((c, th, tw), np.float32)
        for ch in range(c):
            _extract(frames[f, ch], s, pad_mode, t[ch])
        return t

    def run(tiles: list[np.ndarray]) -> list[np.ndarray]:
        preds: list[np.ndarray | None] = [None] * len(tiles)
        todo = []
        for k, t in enumerate(tiles):
            given = skip(t if channels else t[0]) if skip is not None else None
            if given is not None:
                preds[k] = np.asarray(given, np.float32)
            else:
                todo.append(k)
        # batch the tiles of one shape together (all of them except cropped border tiles)
        while todo:
            shape = tiles[todo[0]].shape
            group = [k for k in todo if tiles[k].shape == shape]
            todo = [k for k in todo if tiles[k].shape != shape]
            b = np.stack([tiles[k] for k in group])
            res = _call(fn, b if channels else b[:, 0], state)
            for k, r in zip(group, res):
                preds[k] = r
        return preds

    try:
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            preds = run([tile_of(f, s) for f, s in chunk])
            for (f, s), pred in zip(chunk, preds):
                ys, xs = s.image_slices((h, w))
                if crop:
                    sh, sw = pred.shape
                    win = np.outer(blend_window(sh, min(oy, sh - 1)), blend_window(sw, min(ox, sw - 1)))
                    out[f, ys, xs] += pred * win
                    wsum[ys, xs] += win
                else:
                    ty, tx = s.tile_slices((h, w))
                    out[f, ys, xs] += pred[ty, tx] * win2[ty, tx]
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if crop:
        out /= wsum
    else:
        inv_y = (1.0 / wsum_y).astype(acc_dtype)
        inv_x = (1.0 / wsum_x).astype(acc_dtype)
        for f in range(n):  # in-place normalisation, row block by row block: no second full-size array
            for r0 in range(0, h, 1024):
                out[f, r0:r0 + 1024] *= inv_y[r0:r0 + 1024, None] * inv_x[None, :]
    out = out.astype(np.float32, copy=False)
    result = out[0] if single else out
    if img is None:
        return result
    if operation:
        return img.with_data(result, operation=operation, tile=[th, tw], overlap=[oy, ox], pad_mode=pad_mode)
    return img.with_data(result)


def _call(fn, batch: np.ndarray, state: dict) -> np.ndarray:
    """Run ``fn`` on a batch (``(B, th, tw)`` or ``(B, c, th, tw)``), per tile if it is not batched; check
    the output shape ``(B, th, tw)``."""
    want = (batch.shape[0], *batch.shape[-2:])
    if state["batched"] is not False:
        try:
            res = np.asarray(fn(batch.copy()), dtype=np.float32)
            if res.shape == want:
                state["batched"] = True
                return res
            if state["batched"]:
                raise InputError(f"the model returned shape {res.shape} for a batch of shape {want}")
        except InputError:
            raise
        except Exception:
            if state["batched"]:
                raise
        state["batched"] = False  # undecided and the batch call failed: try single tiles
    res = np.empty(want, np.float32)
    for k, t in enumerate(batch):
        r = np.asarray(fn(t.copy()), dtype=np.float32)
        if r.shape != t.shape[-2:]:
            raise InputError(f"the model returned shape {r.shape} for a tile of shape {t.shape}")
        res[k] = r
    return res
