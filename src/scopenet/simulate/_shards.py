"""Write generated batches to disk as ``.npz`` shards plus a ``manifest.json``.

Shared by the EM and scan generators (and usable by any generator that yields dicts of arrays).
Every file is written under a temporary name and renamed when complete; a non-empty output folder is
refused unless ``overwrite`` is true, in which case only this writer's own files (``shard_*.npz`` and
``manifest.json``) are replaced.
"""
from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .._fileutil import atomic_output
from ..errors import InputError, WriteError

MANIFEST = "manifest.json"


def prepare_out_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Create ``out_dir``; refuse a non-empty one unless ``overwrite`` (then remove old shards)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WriteError(out, "exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise WriteError(out, "directory is not empty (pass overwrite=True to replace it)")
        for p in list(out.glob("shard_*.npz")) + [out / MANIFEST]:
            if p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_shards(out_dir: str | Path, n: int, make: Callable[[int, int], dict], *, shard_size: int = 1000,
                 progress: bool = True, overwrite: bool = False, meta: dict | None = None) -> Path:
    """Generate ``n`` samples in shards of ``shard_size`` and write them with a manifest.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    n : int
        Number of samples.
    make : callable ``(start, count) -> dict[str, ndarray]``
        Produces samples ``start .. start + count - 1`` (arrays with a leading sample axis, or any
        arrays ``numpy.savez`` accepts). If it takes a ``tick`` keyword, it is called with a function
        to advance the progress bar by one per sample.
    shard_size : int
        Samples per shard file.
    meta : dict
        Extra JSON-serialisable fields for the manifest (generator, seed, size...).

    Returns
    -------
    Path
        The manifest's path.
    """
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    if shard_size < 1:
        raise InputError(f"shard_size must be >= 1, got {shard_size}")
    out = prepare_out_dir(out_dir, overwrite)
    ticks = "tick" in inspect.signature(make).parameters
    shards = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"simulate -> {out.name}", unit="img")
    t0 = time.perf_counter()
    try:
        for start in range(0, n, shard_size):
            count = min(shard_size, n - start)
            if ticks and bar is not None:
                arrays = make(start, count, tick=bar.update)
            else:
                arrays = make(start, count)
            name = f"shard_{start // shard_size:05d}.npz"
            with atomic_output(out / name) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, **arrays)
            shards.append({"file": name, "start": start, "count": count,
                           "arrays": {k: [list(np.shape(v)), str(np.asarray(v).dtype)] for k, v in arrays.items()}})
            if bar is not None and not ticks:
                bar.update(count)
    finally:
        if bar is not None:
            bar.close()
    manifest = {"n": n, "shard_size": shard_size, "shards": shards,
                "seconds": round(time.perf_counter() - t0, 3), **(meta or {})}
    path = out / MANIFEST
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return path


def ragged_to_arrays(items: list[np.ndarray], width: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Pack a list of ``(k_i, width)`` arrays into one ``(sum k_i, width)`` array plus offsets ``(n+1,)``."""
    offsets = np.zeros(len(items) + 1, np.int64)
    offsets[1:] = np.cumsum([len(a) for a in items])
    flat = np.concatenate([np.asarray(a, np.float32).reshape(-1, width) for a in items]) if items else \
        np.zeros((0, width), np.float32)
    return flat, offsets
