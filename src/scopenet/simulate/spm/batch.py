"""Batches and shards: :func:`simulate_batch` (serial or over processes) and :func:`write_dataset`.

This module sits above :mod:`.core` (one image, serial batches) and :mod:`.stream` (process pools),
so that neither of those imports the other.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import InputError
from . import labels as L
from .core import SPMSimConfig, render_batch, resolve_config
from .stream import simulate_batch_parallel


def simulate_batch(n: int, size: int = 128, seed: int = 0, config: SPMSimConfig | dict | None = None,
                   start: int = 0, workers: int = 1, **overrides) -> dict:
    """Simulate ``n`` images.

    Image ``i`` depends only on ``(seed, start + i)`` and the config, so batches and shards agree,
    and ``workers > 1`` (``spawn`` processes, see :mod:`scopenet.simulate.spm.stream`) returns
    exactly the same arrays as ``workers=1``.

    Returns
    -------
    dict
        ``images`` float32 [n, size, size], ``labels6`` float32 [n, 6], ``good`` bool [n],
        ``params`` list of n dicts.
    """
    if n < 0:
        raise InputError(f"number of images must be >= 0, got {n}")
    if workers != 1:
        return simulate_batch_parallel(n, size, seed, config, start=start, workers=workers, **overrides)
    return render_batch(n, size, seed, config, start=start, **overrides)


def write_dataset(out_dir: str | Path, n: int, seed: int = 0, size: int = 128, shard_size: int = 1000,
                  progress: bool = True, config: SPMSimConfig | dict | None = None,
                  overwrite: bool = False, workers: int = 1) -> list[Path]:
    """Write ``n`` simulated images as ``.npz`` shards plus ``manifest.json``.

    Each shard ``spm-00000.npz`` holds ``images`` float32 [m, size, size], ``labels6`` float32
    [m, 6], ``good`` bool [m], ``index`` int64 [m] and ``params_json`` (one JSON string per image).
    The manifest records the config, seed, categories and shard list; every file is written under
    a temporary name and renamed when complete, and existing files are kept unless ``overwrite``.
    ``workers > 1`` renders each shard over that many processes (identical files).

    Returns
    -------
    list of Path
        The shard files (the manifest is ``out_dir / "manifest.json"``).
    """
    from tqdm.auto import tqdm

    from ..._fileutil import atomic_output

    if n < 0 or shard_size < 1:
        raise InputError(f"need n >= 0 and shard_size >= 1, got n={n}, shard_size={shard_size}")
    cfg = resolve_config(config, {"size": size})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    bar = tqdm(total=n, desc="simulate spm", unit="img", disable=not progress)
    for k, start in enumerate(range(0, n, shard_size)):
        m = min(shard_size, n - start)
        b = simulate_batch(m, cfg.size, seed, cfg, start=start, workers=workers)
        path = out / f"spm-{k:05d}.npz"
        with atomic_output(path, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, images=b["images"], labels6=b["labels6"], good=b["good"],
                                    index=np.arange(start, start + m, dtype=np.int64),
                                    params_json=np.array([json.dumps(q) for q in b["params"]]))
        paths.append(path)
        bar.update(m)
    bar.close()
    manifest = {"generator": "scopenet.simulate.spm", "n": n, "seed": seed, "shard_size": shard_size,
                "categories": list(L.CATEGORIES), "config": cfg.model_dump(mode="json"),
                "shards": [p.name for p in paths]}
    with atomic_output(out / "manifest.json", overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return paths
