"""Images larger than memory: a task run block by block on the Dask workers, written to a zarr store.

The image is read lazily (:func:`scopenet.read` with ``lazy=True``) by each worker from its path; nothing
ever holds it whole. The output is cut into square blocks (``block`` px, the zarr chunks of the output);
one Dask task computes one block:

1. it finds the tiles of the *whole image's* tile grid (:func:`scopenet.image.tiling.tile_starts`, the
   same grid as the in-memory :func:`~scopenet.image.tiling.predict_tiled`) that touch the block;
2. reads the part of the image those tiles cover (reflected at the true image borders, as in memory);
3. runs the network on those tiles, blends them with the same window
   (:func:`~scopenet.image.tiling.blend_window`) and the same normalisation, and
4. writes the block into its own zarr chunk (blocks never share a chunk, so workers write concurrently).

Tiles on a block's edge are computed by both neighbouring blocks: about ``2 * tile / block`` more network
work (25 % for 512 px tiles in 4096 px blocks) for independent, idempotent block tasks: a block whose
worker dies is simply recomputed elsewhere. Per-image intensity statistics (the denoiser's min-max
scaling) come from a first pass of small per-block tasks. The result equals the in-memory result to
float32 rounding (tested to 1e-5), except that NaN/inf pixels are filled with the median of a strided
sample (every 8th pixel of each block in each direction) instead of the exact median.

A task supports this when its batch entry names a :class:`TilePlan` (``BatchTask.tiled``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["TilePlan", "DenoisePlan", "Block", "blocks_of", "block_stats", "combine_stats", "process_block",
           "SAMPLE_STRIDE"]

#: the NaN fill value is the median of every SAMPLE_STRIDE-th pixel (both directions) of each block
SAMPLE_STRIDE = 8


@dataclass(frozen=True)
class Block:
    """One output block: frame ``f`` (0 for a 2-D image), rows ``y0:y1``, columns ``x0:x1``."""

    f: int
    y0: int
    y1: int
    x0: int
    x1: int


def blocks_of(shape: tuple[int, ...], block: int) -> list[Block]:
    """The blocks (row-major, frame by frame) covering an image of ``shape`` ((y, x) or (n, y, x))."""
    if block < 16:
        raise InputError(f"block must be >= 16 px, got {block}")
    n = shape[0] if len(shape) == 3 else 1
    h, w = shape[-2:]
    return [Block(f, y, min(y + block, h), x, min(x + block, w))
            for f in range(n) for y in range(0, h, block) for x in range(0, w, block)]


def _frame(img, f: int):
    return img.data[f] if img.ndim == 3 else img.data


def open_lazy(src: str):
    """The lazily read image at ``src``, cached in this (worker) process while the file is unchanged."""
    import os

    import scopenet as sn

    from ..tasks import cached

    st = os.stat(src)
    return cached(("lazy-read", f"{src}:{st.st_mtime_ns}:{st.st_size}"), lambda: sn.read(src, lazy=True))


def block_stats(src: str, b: Block) -> dict[str, Any]:
    """On a worker: min and max of the finite pixels of block ``b``, its count of non-finite pixels and a
    strided sample of its finite pixels (for the NaN fill value)."""
    a = np.asarray(_frame(open_lazy(src), b.f)[b.y0:b.y1, b.x0:b.x1].compute(scheduler="synchronous"))
    fin = np.isfinite(a)
    vals = a[fin]
    s = a[::SAMPLE_STRIDE, ::SAMPLE_STRIDE]
    return {"f": b.f, "min": float(vals.min()) if vals.size else math.inf,
            "max": float(vals.max()) if vals.size else -math.inf,
            "nonfinite": int(a.size - vals.size), "sample": s[np.isfinite(s)].astype(np.float64)}


def combine_stats(parts: list[dict[str, Any]], n_frames: int) -> list[dict[str, float]]:
    """Per frame: ``lo``, ``hi`` (min/max of the finite pixels, NaN filled first as in memory) and ``fill``."""
    out = []
    for f in range(n_frames):
        ps = [p for p in parts if p["f"] == f]
        lo, hi = min(p["min"] for p in ps), max(p["max"] for p in ps)
        if not math.isfinite(lo):
            raise InputError(f"frame {f}: every pixel is NaN or infinite")
        fill = None
        if any(p["nonfinite"] for p in ps):
            fill = float(np.median(np.concatenate([p["sample"] for p in ps])))
        out.append({"lo": lo, "hi": hi, "fill": fill})
    return out


class TilePlan:
    """How a task runs on a huge image block by block (subclass per task; see :class:`DenoisePlan`).

    A plan works in the network's unit space: :meth:`to_unit` maps raw pixels to the network's input,
    :meth:`net` maps a batch of tiles ``(B, th, tw)`` to outputs of the same shape (blended by the tiling
    code), :meth:`from_unit` maps the blended block back. ``ctx`` is what :meth:`context` made on the
    client from the per-frame statistics: small and picklable.
    """

    pad_mode = "reflect"
    #: the provenance entry of the output
    operation = "process"

    def __init__(self, est):
        self.est = est

    def check(self, **kw) -> None:
        """Refuse options that block-wise processing cannot honour."""

    def tiling(self) -> tuple[int, int, int]:
        """``(tile, overlap, batch_size)`` of the network's tiles."""
        raise NotImplementedError

    def context(self, src: str, frame_stats: list[dict[str, float]]) -> dict[str, Any]:
        return {"frames": frame_stats}

    def to_unit(self, ctx: dict, f: int, region: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def net(self, ctx: dict, f: int, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def from_unit(self, ctx: dict, f: int, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def provenance(self, ctx: dict) -> dict[str, Any]:
        return {}


class DenoisePlan(TilePlan):
    """:class:`~scopenet.tasks.denoise.Denoiser` (or the dose-routed pair) block by block.

    Same arithmetic as ``Denoiser.denoise_frame``: min-max scaling of the whole frame, the network on
    ``config.tile`` tiles with ``config.overlap``, the scaling undone, NaN where the input was not finite.
    The routed pair decides its high-dose weight on the central 4096 x 4096 px of each frame (the whole
    frame when smaller, as in memory).
    """

    ROUTE_CROP = 4096
    operation = "denoise"

    def members(self) -> list:
        return list(self.est.members()) if hasattr(self.est, "members") else [self.est]

    def check(self, tta: int = 1, **kw) -> None:
        if tta not in (1, None, False):
            raise InputError("block-wise (--tile) denoising runs without test-time augmentation (tta=1)")
        if kw:
            raise InputError(f"block-wise denoising takes no option {', '.join(kw)}")
        tilings = {(m.config.tile, m.config.overlap) for m in self.members()}
        if len(tilings) != 1:
            raise InputError(f"the routed denoisers tile differently ({sorted(tilings)}); pick one model")

    def tiling(self) -> tuple[int, int, int]:
        c = self.members()[0].config
        return c.tile, c.overlap, c.batch_size

    def context(self, src: str, frame_stats: list[dict[str, float]]) -> dict[str, Any]:
        ctx: dict[str, Any] = {"frames": frame_stats}
        if hasattr(self.est, "route_frame"):
            img = open_lazy(src)
            weights = []
            for f in range(len(frame_stats)):
                fr = _frame(img, f)
                h, w = fr.shape
                c = self.ROUTE_CROP
                y0, x0 = max(0, (h - c) // 2), max(0, (w - c) // 2)
                crop = np.asarray(fr[y0:y0 + c, x0:x0 + c].compute(scheduler="synchronous"))
                weights.append(float(self.est.route_frame(crop)["weight"]))
            ctx["weights"] = weights
        return ctx

    def to_unit(self, ctx, f, region):
        st = ctx["frames"][f]
        a = np.array(region, dtype=np.float64)
        if st["fill"] is not None:
            a[~np.isfinite(a)] = st["fill"]
        span = st["hi"] - st["lo"] if st["hi"] > st["lo"] else 0.0
        if span <= 0:
            return np.zeros(a.shape, np.float32)
        return ((a - st["lo"]) / span).astype(np.float32)

    def net(self, ctx, f, batch):
        if "weights" not in ctx:
            return self.est._net_unit(batch)
        w = ctx["weights"][f]
        low, high = self.members()
        if w <= 0:
            return low._net_unit(batch)
        if w >= 1:
            return high._net_unit(batch)
        return ((1 - w) * low._net_unit(batch).astype(np.float64) + w * high._net_unit(batch)).astype(np.float32)

    def from_unit(self, ctx, f, y, raw):
        st = ctx["frames"][f]
        lo = st["lo"]
        span = st["hi"] - lo if st["hi"] > lo else 0.0
        hi = lo + span  # as Denoiser.denoise_frame: (lo, lo + span) from the UnitScale
        out = y.astype(np.float64) * (hi - lo) + lo
        out[~np.isfinite(raw)] = np.nan
        return out.astype(np.float32)

    def provenance(self, ctx):
        names = [m.card_.name if m.card_.name != "untrained" else m.config.arch for m in self.members()]
        p: dict[str, Any] = {"model": names[0] if len(names) == 1 else "denoise-auto", "tta": 1}
        if "weights" in ctx:
            p["high_dose_weight"] = [round(w, 4) for w in ctx["weights"]]
        return p


# ------------------------------------------------------------------------------- the block kernel
def _axis_weights(n: int, starts: np.ndarray, tile: int, win: np.ndarray) -> np.ndarray:
    """Summed blending weight along one axis of length ``n`` (as ``predict_tiled`` computes it)."""
    acc = np.zeros(n)
    for s in sorted({int(v) for v in starts}):
        lo, hi = max(s, 0), min(s + tile, n)
        acc[lo:hi] += win[max(-s, 0):][: hi - lo]
    return acc


def _reflect(idx: np.ndarray, n: int, mode: str) -> np.ndarray:
    from ..image.tiling import _reflect_index  # the in-memory tiler's border rule, so both agree

    return _reflect_index(idx, n, mode)


def process_block(plan: TilePlan, ctx: dict, src: str, b: Block, progress=None) -> np.ndarray:
    """The output of block ``b`` (float32, ``(y1 - y0, x1 - x0)``), computed as described in the module."""
    from ..image.tiling import blend_window, tile_starts

    img = open_lazy(src)
    fr = _frame(img, b.f)
    h, w = fr.shape
    tile, overlap, batch_size = plan.tiling()
    th = tw = min(tile, max(h, w))
    oy = ox = overlap
    ys_all, xs_all = tile_starts(h, th, oy), tile_starts(w, tw, ox)
    ys = [int(y) for y in ys_all if y < b.y1 and y + th > b.y0]
    xs = [int(x) for x in xs_all if x < b.x1 and x + tw > b.x0]
    rows = {y: _reflect(np.arange(y, y + th), h, plan.pad_mode) for y in ys}
    cols = {x: _reflect(np.arange(x, x + tw), w, plan.pad_mode) for x in xs}
    r0 = min(int(r.min()) for r in rows.values())
    r1 = max(int(r.max()) for r in rows.values()) + 1
    c0 = min(int(c.min()) for c in cols.values())
    c1 = max(int(c.max()) for c in cols.values()) + 1
    raw = np.asarray(fr[r0:r1, c0:c1].compute(scheduler="synchronous"))
    u = plan.to_unit(ctx, b.f, raw)
    win_y, win_x = blend_window(th, oy), blend_window(tw, ox)
    per_pixel = math.ceil(th / max(th - oy, 1)) * math.ceil(tw / max(tw - ox, 1))
    acc_dtype = np.float32 if per_pixel <= 4 else np.float64
    win2 = np.outer(win_y, win_x).astype(acc_dtype)
    acc = np.zeros((b.y1 - b.y0, b.x1 - b.x0), acc_dtype)
    specs = [(y, x) for y in ys for x in xs]
    for k in range(0, len(specs), max(1, batch_size)):
        chunk = specs[k:k + batch_size]
        batch = np.stack([u[np.ix_(rows[y] - r0, cols[x] - c0)] for y, x in chunk]).astype(np.float32)
        pred = np.asarray(plan.net(ctx, b.f, batch), np.float32)
        for (y, x), p in zip(chunk, pred):
            ya, yb = max(y, b.y0), min(y + th, b.y1)  # the tile's part inside the block (and the image)
            xa, xb = max(x, b.x0), min(x + tw, b.x1)
            acc[ya - b.y0:yb - b.y0, xa - b.x0:xb - b.x0] += (p[ya - y:yb - y, xa - x:xb - x]
                                                              * win2[ya - y:yb - y, xa - x:xb - x])
        if progress is not None:
            progress(len(chunk))
    inv_y = (1.0 / _axis_weights(h, ys_all, th, win_y)).astype(acc_dtype)[b.y0:b.y1]
    inv_x = (1.0 / _axis_weights(w, xs_all, tw, win_x)).astype(acc_dtype)[b.x0:b.x1]
    acc *= inv_y[:, None] * inv_x[None, :]
    raw_block = raw[b.y0 - r0:b.y1 - r0, b.x0 - c0:b.x1 - c0]
    return plan.from_unit(ctx, b.f, acc.astype(np.float32, copy=False), raw_block)


def write_block(store: str, b: Block, data: np.ndarray, ndim: int) -> None:
    """Write block ``b`` into the zarr array at ``store`` (chunk-aligned: safe beside other writers)."""
    import zarr

    z = zarr.open_array(store=store, mode="r+")
    if ndim == 3:
        z[b.f, b.y0:b.y1, b.x0:b.x1] = data
    else:
        z[b.y0:b.y1, b.x0:b.x1] = data


def run_tiled_local(est, plan_cls, src: str | Path, dst: str | Path, *, block: int = 2048, overwrite: bool = False,
                    **kw) -> Path:
    """Process one huge image block by block in this process (no cluster): the reference the tests use and
    what a worker-less run does. Returns the zarr store written."""
    from ..image.micrograph import provenance_entry
    from ..io._state import micrograph_state
    from ..io.zarr_io import create_array, put_store_in_place, temporary_store

    src = str(src)
    plan = plan_cls(est)
    plan.check(**kw)
    img = open_lazy(src)
    blocks = blocks_of(img.shape, block)
    n = img.shape[0] if img.ndim == 3 else 1
    ctx = plan.context(src, combine_stats([block_stats(src, b) for b in blocks], n))
    state = micrograph_state(img)
    state["provenance"].append(provenance_entry(plan.operation, tiled=True, block=block, **plan.provenance(ctx)))
    tmp = temporary_store(Path(dst))
    create_array(tmp, img.shape, (1, block, block) if img.ndim == 3 else (block, block), state)
    for b in blocks:
        write_block(str(tmp), b, process_block(plan, ctx, src, b), img.ndim)
    return put_store_in_place(tmp, Path(dst), overwrite)
