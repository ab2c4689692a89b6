"""Parallel, deterministic generation of simulated SPM batches.

Image ``i`` of a dataset depends only on ``(seed, i)`` and the config (its generator is
``default_rng(SeedSequence([seed, i]))``), so splitting the indices over processes changes nothing
in the output: ``simulate_batch(n, workers=2)`` equals ``simulate_batch(n, workers=1)`` exactly,
and :func:`stream_batches` yields the same batches whatever the number of workers.

Workers are started with the ``spawn`` method (safe beside torch, threads and macOS/Windows); as
with any ``spawn`` pool, a script that uses ``workers > 1`` must guard its entry point with
``if __name__ == "__main__":``. Each worker limits BLAS/OpenMP pools to one thread so that N
workers use N cores.

>>> from scopenet.simulate.spm import stream_batches
>>> for b in stream_batches(64, size=128, seed=0, workers=2, n_batches=2):   # doctest: +SKIP
...     b["images"].shape, b["index"][:2]
((64, 128, 128), array([0, 1]))
((64, 128, 128), array([64, 65]))
"""
from __future__ import annotations

import multiprocessing as mp
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator

import numpy as np

from ...errors import InputError
from .core import SPMSimConfig, render_batch, resolve_config


def _init_worker() -> None:
    """Pool initializer: one BLAS/OpenMP thread per worker (the parallelism is the processes)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # threadpoolctl missing: keep the defaults
        pass


def _job(args: tuple) -> dict:
    n, seed, start, cfg_json, with_params = args
    cfg = SPMSimConfig.model_validate(cfg_json)
    b = render_batch(n, cfg.size, seed, cfg, start=start)
    if not with_params:
        b["params"] = None
    return b


def _executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker)


def _check_workers(workers: int) -> int:
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InputError(f"workers must be an integer >= 1, got {workers!r}")
    return int(workers)


def _chunks(n: int, start: int, chunk: int) -> list[tuple[int, int]]:
    return [(s, min(chunk, start + n - s)) for s in range(start, start + n, chunk)]


def simulate_batch_parallel(n: int, size: int = 128, seed: int = 0, config: SPMSimConfig | dict | None = None,
                            start: int = 0, workers: int = 2, chunk: int | None = None,
                            with_params: bool = True, **overrides) -> dict:
    """:func:`~scopenet.simulate.spm.simulate_batch` over ``workers`` processes (identical output).

    Parameters
    ----------
    n, size, seed, config, start, **overrides
        As :func:`~scopenet.simulate.spm.simulate_batch`.
    workers : int
        Number of processes; 1 runs in this process.
    chunk : int, optional
        Images per task (default: ``n`` split into about 4 tasks per worker, at most 64).
    with_params : bool
        Return the per-image parameter dicts (``params`` is ``None`` otherwise: less pickling).

    Returns
    -------
    dict
        ``images`` float32 [n, size, size], ``labels6`` float32 [n, 6], ``good`` bool [n],
        ``params`` list of n dicts (or None).
    """
    workers = _check_workers(workers)
    if n < 0:
        raise InputError(f"number of images must be >= 0, got {n}")
    cfg = resolve_config(config, {**overrides, "size": size})
    if workers == 1 or n <= 1:
        b = render_batch(n, cfg.size, seed, cfg, start=start)
        if not with_params:
            b["params"] = None
        return b
    chunk = chunk or max(1, min(64, -(-n // (4 * workers))))
    cfg_json = cfg.model_dump(mode="json")
    jobs = [(m, seed, s, cfg_json, with_params) for s, m in _chunks(n, start, chunk)]
    with _executor(min(workers, len(jobs))) as ex:
        parts = list(ex.map(_job, jobs))
    return _concat(parts, with_params)


def _concat(parts: list[dict], with_params: bool) -> dict:
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("images", "labels6", "good")}
    out["params"] = [q for p in parts for q in p["params"]] if with_params else None
    return out


def stream_batches(batch_size: int, size: int = 128, seed: int = 0, workers: int = 2,
                   config: SPMSimConfig | dict | None = None, start: int = 0, n_batches: int | None = None,
                   prefetch: int = 2, with_params: bool = False, **overrides) -> Iterator[dict]:
    """Yield consecutive batches of simulated images, generated ahead by ``workers`` processes.

    Batch ``k`` holds images ``start + k * batch_size ... start + (k + 1) * batch_size - 1``; the
    batches are identical for any ``workers`` (and to :func:`simulate_batch` over the same indices).

    Parameters
    ----------
    batch_size : int
        Images per batch.
    size, seed, config, **overrides
        As :func:`~scopenet.simulate.spm.simulate_batch`.
    workers : int
        Processes (1: generate in this process, lazily).
    start : int
        Index of the first image.
    n_batches : int, optional
        Stop after this many batches; ``None`` streams forever (close the generator to stop the
        workers).
    prefetch : int
        Batches queued per worker.
    with_params : bool
        Include the per-image parameter dicts.

    Yields
    ------
    dict
        ``images`` float32 [B, size, size], ``labels6`` float32 [B, 6], ``good`` bool [B],
        ``index`` int64 [B], ``params`` (list or None).
    """
    workers = _check_workers(workers)
    if batch_size < 1 or (n_batches is not None and n_batches < 0) or prefetch < 1:
        raise InputError(f"need batch_size >= 1, n_batches >= 0 and prefetch >= 1, got "
                         f"{batch_size}, {n_batches}, {prefetch}")
    cfg = resolve_config(config, {**overrides, "size": size})

    def starts():
        k = 0
        while n_batches is None or k < n_batches:
            yield start + k * batch_size
            k += 1

    def finish(b: dict, s: int) -> dict:
        b["index"] = np.arange(s, s + batch_size, dtype=np.int64)
        if not with_params:
            b["params"] = None
        return b

    if workers == 1:
        for s in starts():
            yield finish(render_batch(batch_size, cfg.size, seed, cfg, start=s), s)
        return
    cfg_json = cfg.model_dump(mode="json")
    ex = _executor(workers)
    pending: deque = deque()
    it = starts()
    try:
        for s in it:
            pending.append((s, ex.submit(_job, (batch_size, seed, s, cfg_json, with_params))))
            if len(pending) >= workers * prefetch:
                break
        while pending:
            s, fut = pending.popleft()
            b = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, ex.submit(_job, (batch_size, seed, nxt, cfg_json, with_params))))
            yield finish(b, s)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
