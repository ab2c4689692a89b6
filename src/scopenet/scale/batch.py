"""Batch processing of many files on a Dask cluster: ``run_batch("denoise", "in/", "out/")``.

Every file of the input (a folder tree, a file, or a list of them) is processed by one image task on
Dask's distributed scheduler: an existing cluster (``scheduler="tcp://host:8786"``) or a
``LocalCluster`` started for the run (``n_workers`` processes, one thread each). The task's estimator is
shipped to the workers by model name, not pickled, and loaded once per worker process (the one cache of
:func:`scopenet.tasks.cached`).

The run is resumable and idempotent. ``OUT/manifest.json`` records each input's state (``done`` with its
output, or ``failed`` with the reason) and is rewritten atomically after every file. A second run
processes only the inputs that are not done (or whose output has gone). Outputs are written under a
temporary name and put in place when complete (:func:`scopenet.write`). A file that cannot be read or
processed is recorded as failed and the run goes on.

>>> report = run_batch("denoise", "raw/", "clean/", n_workers=2)      # doctest: +SKIP
>>> report.done, report.failed, report.images_per_s                     # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError

__all__ = ["BATCH_TASKS", "BatchReport", "find_inputs", "run_batch"]

#: image-to-image tasks a batch can run: the default model and the output name tag of each
BATCH_TASKS = {"denoise": ("auto", "-denoised"), "superres": ("spm-x4", "-superres")}
MANIFEST = "manifest.json"


@dataclass
class BatchReport:
    """What a batch run did: counts, failures with their reasons, throughput."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        s = (f"{self.done} done, {self.skipped} skipped (done before), {self.failed} failed of {self.total} "
             f"in {self.seconds:.1f} s ({self.images_per_s:.2f} images/s)")
        return s + "".join(f"\n  failed: {k}: {v}" for k, v in self.failures.items())


def find_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """``(file, path relative to its input root)`` for every readable file under the inputs, sorted.

    A folder contributes every file below it whose extension scopenet reads (hidden files and folders
    skipped); a file contributes itself.
    """
    from ..io.registry import supported_extensions

    exts = {e.lower() for e in supported_extensions()}
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if f.is_file() and f.suffix.lower() in exts and not any(part.startswith(".") for part in rel.parts):
                    out.append((f, rel))
        elif p.is_file():
            out.append((p, Path(p.name)))
        else:
            raise InputError(f"{p}: no such file or folder")
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


def _process(task: str, model: str, src: str, dst: str, kwargs: dict[str, Any]) -> str:
    """On a worker: read ``src``, run the task's (cached) estimator, write ``dst``. Returns ``dst``."""
    import torch

    import scopenet as sn

    from ..tasks import cached, estimator_class

    torch.set_num_threads(1)
    est = cached((task, model), lambda: estimator_class(task).pretrained(model))
    out = est.predict(sn.read(src), **kwargs)
    sn.write(out, dst, overwrite=True)
    return dst


def run_batch(task: str, inputs, out_dir: str | os.PathLike, *, model: str | None = None,
              scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int = 1,
              progress: bool = False, **predict_kw: Any) -> BatchReport:
    """Run an image task over every file of ``inputs`` on a Dask cluster; outputs go to ``out_dir``.

    Parameters
    ----------
    task : {"denoise", "superres"}
    inputs : folder, file, or a list of them
        Folders are searched recursively; the output keeps each file's path below its folder, with the
        task's tag and ``.tif`` (``a/b.dm4`` -> ``OUT/a/b-denoised.tif``).
    out_dir : folder
        Created if needed; holds the outputs and ``manifest.json``.
    model : str, optional
        Installed model name or saved-model path (default: the task's default, e.g. ``"auto"``).
    scheduler : str, optional
        Address of a running Dask scheduler; default a ``LocalCluster`` for this run.
    n_workers, threads_per_worker : int
        The LocalCluster's worker processes (default: the machine's cores, at most 4) and their threads.
    progress : bool
        A progress bar over files.
    **predict_kw
        Passed to the estimator's ``predict`` (``tta=2``, ``factor=2``).

    Returns
    -------
    BatchReport

    Raises
    ------
    InputError
        An unknown task, missing inputs, or an unreadable manifest. Files that fail do not raise: they
        are in the report and the manifest.
    """
    if task not in BATCH_TASKS:
        raise InputError(f"batch runs the image tasks {', '.join(BATCH_TASKS)}; got {task!r}")
    default_model, tag = BATCH_TASKS[task]
    model = str(model or default_model)
    files = find_inputs(inputs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / MANIFEST
    manifest = _load_manifest(mpath)
    report = BatchReport(total=len(files))
    todo = []
    for src, rel in files:
        key = rel.as_posix()
        dst = out / rel.parent / f"{rel.stem}{tag}.tif"
        entry = manifest.get(key)
        if entry and entry.get("state") == "done" and (out / entry.get("output", "")).is_file():
            report.skipped += 1
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():  # an output of a run killed before its manifest entry was written: redo it
            dst.unlink()
        todo.append((key, str(src), str(dst)))
    t0 = time.perf_counter()
    if todo:
        from distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            n = n_workers or max(1, min(4, os.cpu_count() or 1))
            cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   silence_logs=logging.CRITICAL)  # failures are in the report
        client = Client(scheduler or cluster)
        bar = None
        try:
            futures = {client.submit(_process, task, model, s, d, predict_kw, key=f"{task}-{k}-{time.time_ns()}",
                                     pure=False): (k, d) for k, s, d in todo}
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(futures), desc=f"batch {task}", unit="file")
            for fut in as_completed(futures):
                key, dst = futures[fut]
                try:
                    fut.result()
                    manifest[key] = {"state": "done", "output": Path(dst).relative_to(out).as_posix()}
                    report.done += 1
                except Exception as exc:  # noqa: BLE001 - recorded; the other files go on
                    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    manifest[key] = {"state": "failed", "error": msg}
                    report.failed += 1
                    report.failures[key] = msg
                _save_manifest(mpath, task, model, manifest)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            client.close()
            if cluster is not None:
                cluster.close()
    report.seconds = time.perf_counter() - t0
    return report
