"""Batch processing of many files on a Dask cluster: ``run_batch("denoise", "in/", "out/")``.

Every file of the input (a folder tree, a file, or a list of them) is processed by one task of
:data:`~scopenet.scale.tasks.BATCH_TASKS` on Dask's distributed scheduler: an existing cluster
(``scheduler="tcp://host:8786"``) or a ``LocalCluster`` started for the run (``n_workers`` processes, one
thread each). The task's estimator is shipped to the workers by model name, not pickled, and loaded once
per worker process (the one cache of :func:`scopenet.tasks.cached`); torch uses the worker's threads.

Images larger than memory (``tile=True``, or files of at least ``tile_above`` bytes) are processed block by
block on the workers and written to a zarr store (:mod:`scopenet.scale.tiled`).

The run is resumable and idempotent. ``OUT/manifest.json`` records each input's state (``done`` with its
output or its table row, or ``failed`` with the reason) and is rewritten atomically as files finish. A
second run processes only the inputs that are not done (or whose output has gone). Outputs are written
under a temporary name and put in place when complete; each input has one output name, so a file redone
after a killed worker or a killed run replaces, never duplicates. A file that cannot be read or processed
is recorded as failed and the run goes on.

>>> report = run_batch("denoise", "raw/", "clean/", n_workers=2)      # doctest: +SKIP
>>> print(report.summary())                                             # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InputError
from .tasks import BATCH_TASKS, batch_task

__all__ = ["BATCH_TASKS", "BatchReport", "find_inputs", "run_batch", "MANIFEST"]

MANIFEST = "manifest.json"
#: files at least this large (bytes) are processed block by block (when the task allows it)
TILE_ABOVE = 1 << 30


@dataclass
class BatchReport:
    """What a batch run did: counts, failures with their reasons, throughput."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    tiled: int = 0

    @property
    def images_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        s = (f"{self.done} done, {self.skipped} skipped (done before), {self.failed} failed of {self.total} "
             f"in {self.seconds:.1f} s ({self.images_per_s:.2f} images/s)")
        if self.tiled:
            s += f"; {self.tiled} processed block by block"
        return s + "".join(f"\n  failed: {k}: {v}" for k, v in self.failures.items())


def find_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike],
                keep: Callable[[Path], bool] | None = None) -> list[tuple[Path, Path]]:
    """``(file, path relative to its input root)`` for every readable file under the inputs, sorted.

    A folder contributes every file below it whose extension scopenet reads (hidden files and folders
    skipped) and every zarr store (a ``.zarr`` folder); a file or store contributes itself. ``keep`` may
    leave out companion files (an inpainting scan's mask).
    """
    from ..io.registry import supported_extensions
    from ..io.zarr_io import is_zarr_store

    exts = {e.lower() for e in supported_extensions()}
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item)
        if p.is_dir() and not is_zarr_store(p):
            stores = [d for d in sorted(p.rglob("*.zarr")) if is_zarr_store(d)]
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or any(s in f.parents for s in stores):
                    continue
                if (f.is_file() and f.suffix.lower() in exts) or f in stores:
                    out.append((f, rel))
        elif p.exists():
            out.append((p, Path(p.name)))
        else:
            raise InputError(f"{p}: no such file or folder")
    if keep is not None:
        out = [(f, r) for f, r in out if keep(f)]
    rels = [r for _, r in out]
    if len(set(rels)) != len(rels):
        raise InputError("two inputs map to the same output name; give one folder or files with distinct names")
    return out


def _load_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable batch manifest ({exc}); move it away to start afresh") from exc
    return data.get("files", {}) if isinstance(data, dict) else {}


def _save_manifest(path: Path, task: str, model: str, files: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"task": task, "model": model, "files": files}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _write_table(out: Path, task: str, manifest: dict[str, Any]) -> None:
    """``OUT/<task>.csv`` and ``.json``: one row per done input (``file`` first), sorted by file."""
    import csv
    import io

    rows = [{"file": k, **v["row"]} for k, v in sorted(manifest.items()) if v.get("state") == "done" and "row" in v]
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols or ["file"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    for name, text in ((f"{task}.csv", buf.getvalue()), (f"{task}.json", json.dumps(rows, indent=1))):
        tmp = out / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)


# ------------------------------------------------------------------------------------ on the workers
def _estimator(task: str, model: str, threads: int | None):
    import torch

    from ..tasks import cached

    if threads:
        torch.set_num_threads(threads)
    return cached(("batch", task, model), lambda: batch_task(task).load_estimator(model))


def _worker_threads() -> int | None:
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return None


def _process(task: str, model: str, src: str, dst: str | None, kwargs: dict[str, Any]) -> Any:
    """On a worker: read ``src``, run the task, write ``dst`` (image tasks) or return the row (table tasks)."""
    import scopenet as sn

    entry = batch_task(task)
    est = _estimator(task, model, _worker_threads())
    out = entry.apply(est, sn.read(src), Path(src), **kwargs)
    if entry.output == "table":
        return out
    sn.write(out, dst, overwrite=True)
    return dst


def _tiled_stats(task: str, model: str, src: str, b):
    from .tiled import block_stats

    return block_stats(src, b)


def _tiled_context(task: str, model: str, src: str, frame_stats: list, kwargs: dict[str, Any]):
    """On a worker: the plan's context from the per-frame statistics (combined on the client)."""
    est = _estimator(task, model, _worker_threads())
    plan = batch_task(task).tiled()(est)
    plan.check(**kwargs)
    ctx = plan.context(src, frame_stats)
    ctx["prov"] = plan.provenance(ctx)
    return ctx


def _tiled_block(task: str, model: str, src: str, store: str, b, ctx: dict, ndim: int) -> int:
    from .tiled import process_block, write_block

    est = _estimator(task, model, _worker_threads())
    plan = batch_task(task).tiled()(est)
    write_block(store, b, process_block(plan, ctx, src, b), ndim)
    return 1


# ------------------------------------------------------------------------------------ on the client
@dataclass
class _TiledFile:
    """The state of one file processed block by block."""

    key: str
    src: str
    dst: Path
    tmp: Path
    shape: tuple[int, ...]
    blocks: list
    pending: int = 0
    stats: list = field(default_factory=list)
    ctx: dict | None = None
    state: dict | None = None


def run_batch(task: str, inputs, out_dir: str | os.PathLike, *, model: str | None = None,
              scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int = 1,
              client=None, progress: bool = False, tile: bool | None = None, tile_above: int = TILE_ABOVE,
              block: int = 2048, tiff: bool = False, on_result: Callable[[str, str], None] | None = None,
              **task_kw: Any) -> BatchReport:
    """Run a task over every file of ``inputs`` on a Dask cluster; outputs go to ``out_dir``.

    Parameters
    ----------
    task : str
        A key of :data:`BATCH_TASKS` (``denoise``, ``superres``, ``inpaint``, ``classify``...).
    inputs : folder, file, or a list of them
        Folders are searched recursively; an image output keeps each file's path below its folder, with the
        task's tag and ``.tif`` (``a/b.dm4`` -> ``OUT/a/b-denoised.tif``); a table task writes one row per
        file to ``OUT/<task>.csv`` and ``OUT/<task>.json``.
    out_dir : folder
        Created if needed; holds the outputs and ``manifest.json``.
    model : str, optional
        Installed model name or saved-model path (default: the task's default, e.g. ``"auto"``).
    scheduler : str, optional
        Address of a running Dask scheduler; default a ``LocalCluster`` for this run.
    n_workers, threads_per_worker : int
        The LocalCluster's worker processes (default: the machine's cores, at most 4) and their threads
        (torch uses as many).
    client : distributed.Client, optional
        Use this client (and its cluster) instead of ``scheduler``/``n_workers``; it is left open.
    progress : bool
        A progress bar over files.
    tile : bool, optional
        True: every image block by block into ``OUT/<stem><tag>.zarr``; False: never; default: files of at
        least ``tile_above`` bytes (image tasks with a tiled plan only).
    block : int
        Block side (px) of block-wise processing: the zarr chunks of the output.
    tiff : bool
        Also copy each 2-D block-wise output to a tiled BigTIFF beside its zarr store (``<stem><tag>.tif``,
        256 px tiles, written band by band on the client).
    on_result : callable, optional
        ``on_result(key, state)`` after each file settles (``"done"`` or ``"failed"``), on the client.
    **task_kw
        The task's options, given to its ``apply`` (``tta=2``, ``factor=2``, ``mask="mask.tif"``).

    Returns
    -------
    BatchReport

    Raises
    ------
    InputError
        An unknown task, missing inputs, an unreadable manifest, or ``tile=True`` for a task that cannot
        run block by block. Files that fail do not raise: they are in the report and the manifest.
    """
    entry = batch_task(task)
    if tile and entry.tiled is None:
        tiled_tasks = [k for k, v in BATCH_TASKS.items() if v.tiled is not None]
        raise InputError(f"{task} cannot run block by block (--tile); tasks that can: {', '.join(tiled_tasks)}")
    model = str(model or entry.default_model)
    files = find_inputs(inputs, entry.is_input)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / MANIFEST
    manifest = _load_manifest(mpath)
    report = BatchReport(total=len(files))
    todo: list[tuple[str, str, Path | None, bool]] = []
    for src, rel in files:
        key = rel.as_posix()
        entry_m = manifest.get(key)
        if entry_m and entry_m.get("state") == "done" and (
                "row" in entry_m or (out / entry_m.get("output", "\0")).exists()):
            report.skipped += 1
            continue
        big = entry.tiled is not None and tile is not False and (
            tile is True or (src.is_file() and src.stat().st_size >= tile_above))
        dst = None
        if entry.output == "image":
            dst = out / rel.parent / f"{rel.stem}{entry.tag}{'.zarr' if big else '.tif'}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            from ..io.zarr_io import remove_store

            if dst.is_dir():  # an output of a run killed before its manifest entry was written: redo it
                remove_store(dst)
            elif dst.exists():
                dst.unlink()
            for old in dst.parent.glob(f".{dst.name}.scopenet-*.partial"):  # a killed run's unfinished store
                remove_store(old)
        todo.append((key, str(src), dst, big))
    t0 = time.perf_counter()
    if todo:
        _run(entry, model, todo, out, mpath, manifest, report, scheduler=scheduler, n_workers=n_workers,
             threads_per_worker=threads_per_worker, client=client, progress=progress, block=block,
             on_result=on_result, task_kw=task_kw, tiff=tiff)
    if entry.output == "table":
        _write_table(out, task, manifest)
    report.seconds = time.perf_counter() - t0
    return report


def _run(entry, model, todo, out, mpath, manifest, report, *, scheduler, n_workers, threads_per_worker, client,
         progress, block, on_result, task_kw, tiff=False) -> None:
    from distributed import Client, LocalCluster, as_completed

    from ..io.zarr_io import remove_store, temporary_store

    task = entry.name
    cluster = own_client = None
    if client is None:
        if scheduler is None:
            n = n_workers or max(1, min(4, os.cpu_count() or 1))
            cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   silence_logs=logging.CRITICAL)  # failures are in the report
        client = own_client = Client(scheduler or cluster)
    bar = None
    last_save = [0.0]
    stamp = time.time_ns()

    def save(force: bool = False):
        if force or time.monotonic() - last_save[0] >= 0.5:
            _save_manifest(mpath, task, model, manifest)
            last_save[0] = time.monotonic()

    def settle(key: str, ok: bool, value: Any = None, dst: Path | None = None, exc: BaseException | None = None):
        if ok:
            manifest[key] = ({"state": "done", "row": value} if entry.output == "table" else
                             {"state": "done", "output": dst.relative_to(out).as_posix()})
            report.done += 1
        else:
            msg = str(exc).splitlines()[0] if exc is not None and str(exc) else type(exc).__name__
            manifest[key] = {"state": "failed", "error": msg}
            report.failed += 1
            report.failures[key] = msg
        save()
        if bar is not None:
            bar.update(1)
        if on_result is not None:
            on_result(key, "done" if ok else "failed")

    tiled: dict[str, _TiledFile] = {}
    try:
        ac = as_completed()
        meta: dict[str, tuple] = {}

        def submit(fn, *args, what: tuple, name: str):
            fut = client.submit(fn, *args, key=f"{task}-{name}-{stamp}", pure=False)
            meta[fut.key] = what
            ac.add(fut)

        for key, src, dst, big in todo:
            if not big:
                submit(_process, task, model, src, None if dst is None else str(dst), task_kw,
                       what=("file", key, dst), name=key)
                continue
            try:
                import scopenet as sn

                from .tiled import blocks_of

                shape = tuple(sn.read(src, lazy=True).shape)  # the header only
                blocks = blocks_of(shape, block)
            except Exception as exc:  # noqa: BLE001 - recorded
                settle(key, False, exc=exc)
                continue
            tf = _TiledFile(key, src, dst, temporary_store(dst), shape, blocks, pending=len(blocks))
            tiled[key] = tf
            report.tiled += 1
            for i, b in enumerate(blocks):
                submit(_tiled_stats, task, model, src, b, what=("stats", key), name=f"{key}-stats{i}")
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=f"batch {task}", unit="file")
        for fut in ac:
            what = meta.pop(fut.key)
            kind, key = what[0], what[1]
            if kind == "file":
                try:
                    value = fut.result()
                    settle(key, True, value, what[2])
                except Exception as exc:  # noqa: BLE001 - recorded; the other files go on
                    settle(key, False, exc=exc)
                continue
            tf = tiled.get(key)
            if tf is None:  # this file already failed: its other tasks are dropped
                continue
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001
                del tiled[key]
                remove_store(tf.tmp)
                settle(key, False, exc=exc)
                continue
            if kind == "stats":
                tf.stats.append(res)
                tf.pending -= 1
                if tf.pending == 0:
                    from .tiled import combine_stats

                    try:  # combined here: the sampled pixels stay on the client
                        frame_stats = combine_stats(tf.stats, tf.shape[0] if len(tf.shape) == 3 else 1)
                    except Exception as exc:  # noqa: BLE001 - an all-NaN frame
                        del tiled[key]
                        settle(key, False, exc=exc)
                        continue
                    tf.stats = []
                    submit(_tiled_context, task, model, tf.src, frame_stats, task_kw, what=("context", key),
                           name=f"{key}-context")
            elif kind == "context":
                tf.ctx = res
                _start_store(tf, entry, block, res, task_kw)
                tf.pending = len(tf.blocks)
                for i, b in enumerate(tf.blocks):
                    submit(_tiled_block, task, model, tf.src, str(tf.tmp), b, res, len(tf.shape),
                           what=("block", key), name=f"{key}-block{i}")
            elif kind == "block":
                tf.pending -= 1
                if bar is not None:  # a huge file is one file on the bar: its blocks go in the postfix
                    bar.set_postfix_str(f"{key}: block {len(tf.blocks) - tf.pending}/{len(tf.blocks)}")
                if tf.pending == 0:
                    from ..io.zarr_io import put_store_in_place

                    del tiled[key]
                    try:
                        put_store_in_place(tf.tmp, tf.dst, overwrite=True)
                        if tiff:
                            from ..io.zarr_io import store_to_tiled_tiff

                            store_to_tiled_tiff(tf.dst, tf.dst.with_suffix(".tif"), overwrite=True)
                        settle(key, True, None, tf.dst)
                    except Exception as exc:  # noqa: BLE001
                        settle(key, False, exc=exc)
    finally:
        save(force=True)
        for tf in tiled.values():  # an interrupted run: its unfinished stores go
            remove_store(tf.tmp)
        if bar is not None:
            bar.close()
        if own_client is not None:
            own_client.close()
        if cluster is not None:
            cluster.close()
        _clean_partials(out)


def _start_store(tf: _TiledFile, entry, block: int, ctx: dict, task_kw: dict) -> None:
    """Create the temporary zarr store of a block-wise output, with the input's state and provenance."""
    import scopenet as sn

    from ..image.micrograph import provenance_entry
    from ..io._state import micrograph_state
    from ..io.zarr_io import create_array

    img = sn.read(tf.src, lazy=True)
    state = micrograph_state(img)
    state["provenance"].append(provenance_entry(entry.tiled().operation, tiled=True, block=block, **ctx["prov"]))
    chunks = (1, block, block) if len(tf.shape) == 3 else (block, block)
    create_array(tf.tmp, tf.shape, chunks, state)


def _clean_partials(out: Path) -> None:
    """Remove temporary outputs of writers killed during the run (a killed worker's half-written file)."""
    from .._fileutil import clean_stale_partials

    folders = {out} | {p.parent for p in out.rglob("*.partial*")}
    for folder in folders:
        clean_stale_partials(folder)
