"""The tasks a batch can run: one :class:`BatchTask` entry each in :data:`BATCH_TASKS`.

A task is shipped to the Dask workers by name: each worker looks the entry up here, loads the estimator
once (:func:`scopenet.tasks.cached`, by model name, never a pickled network) and calls the entry's
``apply`` on every file it is given. Two kinds of output:

``"image"``
    ``apply(est, img, src, **kw)`` returns a Micrograph, written as ``OUT/<path>/<stem><tag>.tif``.
``"table"``
    ``apply(est, img, src, **kw)`` returns a dict of JSON-able values (one row: verdicts, counts); the
    rows are kept in the manifest and written as ``OUT/<task>.csv`` and ``OUT/<task>.json``.

Adding a task (atoms, exitwave, embed...) is one entry at the end of this module::

    def _atoms(est, img, src, **kw):
        found = est.predict(img, **kw)
        return {"n_atoms": len(found)}

    register_batch_task(BatchTask("atoms", default_model="default", output="table", apply=_atoms))

``apply`` must be a module-level function (workers import it by name). Give ``tiled`` a function that
returns a :class:`~scopenet.scale.tiled.TilePlan` subclass to process images larger than memory block by
block.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError

__all__ = ["BatchTask", "BATCH_TASKS", "register_batch_task", "batch_task"]


def _predict(est, img, src: Path, **kw):
    return est.predict(img, **kw)


def _load_default(task: str, model: str):
    from ..tasks import estimator_class

    return estimator_class(task).pretrained(model)


@dataclass(frozen=True)
class BatchTask:
    """One task a batch can run.

    Attributes
    ----------
    name : str
        The task (``scopenet batch NAME``); also the estimator registry's task name unless ``load`` is given.
    default_model : str
        Model used when the run names none.
    tag : str
        Output file name tag of an image task (``img.tif`` -> ``img-denoised.tif``).
    output : {"image", "table"}
        One image file per input, or one row per input in ``OUT/<name>.csv`` / ``.json``.
    apply : callable
        ``apply(est, img, src, **kw)`` on a worker: the estimator, the input Micrograph, its path and the
        run's task options; returns a Micrograph (image tasks) or a dict (table tasks).
    load : callable, optional
        ``load(model_name) -> estimator``; default ``estimator_class(name).pretrained(model_name)``.
    tiled : callable, optional
        ``tiled()`` returns a :class:`~scopenet.scale.tiled.TilePlan` subclass (imported when needed): how
        to run the task block by block on images larger than memory (``--tile``). None: the task needs
        whole images.
    is_input : callable, optional
        ``is_input(path) -> bool`` to leave out companion files (an inpainting scan's mask).
    description : str
    """

    name: str
    default_model: str
    tag: str = ""
    output: str = "image"
    apply: Callable[..., Any] = _predict
    load: Callable[[str], Any] | None = None
    tiled: Callable[[], type] | None = None
    is_input: Callable[[Path], bool] | None = None
    description: str = ""

    def load_estimator(self, model: str):
        return self.load(model) if self.load is not None else _load_default(self.name, model)


#: every task a batch can run, by name
BATCH_TASKS: dict[str, BatchTask] = {}


def register_batch_task(task: BatchTask) -> BatchTask:
    """Add (or replace) a batch task."""
    if task.output not in ("image", "table"):
        raise InputError(f"batch task {task.name!r}: output must be 'image' or 'table', got {task.output!r}")
    BATCH_TASKS[task.name] = task
    return task


def batch_task(name: str) -> BatchTask:
    """The entry of ``name`` (InputError naming the tasks otherwise)."""
    if name not in BATCH_TASKS:
        raise InputError(f"batch runs the tasks {', '.join(BATCH_TASKS)}; got {name!r}")
    return BATCH_TASKS[name]


# ------------------------------------------------------------------------------------------ inpaint
MASK_TAGS = ("-mask", ".mask", "_mask")


def _is_scan(path: Path) -> bool:
    """An inpainting input is any file but a mask (``<stem>-mask.<ext>``, ``.mask`` or ``_mask``)."""
    return not any(path.stem.endswith(t) for t in MASK_TAGS)


def _mask_of(src: Path, img, mask: str | None) -> np.ndarray:
    """The scan's mask: the run's ``mask`` file, a ``<stem>-mask.*`` file beside the scan, or the finite pixels."""
    import scopenet as sn

    if mask is not None:
        m = sn.read(mask).data
    else:
        beside = [p for t in MASK_TAGS for p in sorted(src.parent.glob(f"{src.stem}{t}.*"))]
        if beside:
            m = sn.read(beside[0]).data
        else:
            m = np.isfinite(img.data)
            if m.all():
                raise InputError(f"{src.name}: no mask: give --mask, put {src.stem}-mask.tif beside it, or mark "
                                 "the pixels that were not scanned as NaN")
    if m.shape != img.shape:
        raise InputError(f"{src.name}: the mask has shape {m.shape}, the scan {img.shape}")
    return m != 0


def _inpaint(est, img, src: Path, mask: str | None = None, **kw):
    m = _mask_of(Path(src), img, mask)
    data = np.where(m, np.nan_to_num(img.data), 0.0)
    return est.predict(img.with_data(data), m, **kw)


# ------------------------------------------------------------------------------------------ classify
def _classify(est, img, src: Path, **kw) -> dict[str, Any]:
    from ..tasks.classify.model import classify

    df = classify(img, model=est, **kw)
    row = df.iloc[0].to_dict()
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def _load_classifier(model: str):
    from ..tasks.classify.model import TipClassifier

    return TipClassifier.pretrained(model)


# ------------------------------------------------------------------------------------------ entries
def _denoise_plan():
    from .tiled import DenoisePlan

    return DenoisePlan


register_batch_task(BatchTask("denoise", "auto", "-denoised", tiled=_denoise_plan,
                              description="denoise each image (default: the dose-routed pair)"))
register_batch_task(BatchTask("superres", "spm-x4", "-superres", description="super-resolve each scan"))
register_batch_task(BatchTask("inpaint", "auto", "-inpainted", apply=_inpaint, is_input=_is_scan,
                              description="complete sparse scans (mask: --mask, <stem>-mask.* beside, or NaN)"))
register_batch_task(BatchTask("classify", "hsi-six", output="table", apply=_classify, load=_load_classifier,
                              description="tip-state verdicts, one row per image in OUT/classify.csv"))


# ------------------------------------------------------------------------------ atoms, exitwave, embed
def _atoms(est, img, src: Path, **kw) -> dict[str, Any]:
    """One row per image: how many columns, their classes, spacing and uncertainty (the positions
    themselves: ``scopenet atoms IMAGE -o positions.csv``)."""
    df = est.predict(img, **kw)
    row: dict[str, Any] = {"n_atoms": int(len(df))}
    if len(df):
        for c, n in df["class"].value_counts().sort_index().items():
            row[f"n_class_{c}"] = int(n)
        if "nn_px" in df:
            row["nn_median_px"] = float(np.nanmedian(df["nn_px"]))
        row["sigma_median_px"] = float(np.nanmedian(df["sigma_px"]))
        row["confidence_mean"] = float(df["confidence"].mean())
    row["out_of_distribution"] = bool(df.attrs.get("ood", False))
    return row


def _exitwave_phase(est, img, src: Path, **kw):
    """The exit-wave phase in radians ([-pi, pi)); the amplitude is the input."""
    return est.predict_phase(img, **kw)


def _embed(est, img, src: Path, **kw) -> dict[str, Any]:
    """One row per image: its code, as columns ``z00`` ... (feed them to :class:`scopenet.tasks.embed.Index`
    or any clustering)."""
    code = np.asarray(est.predict(img, **kw), np.float64).reshape(-1)
    return {f"z{i:02d}": round(float(v), 6) for i, v in enumerate(code)}


register_batch_task(BatchTask("atoms", "default", output="table", apply=_atoms,
                              description="atom-column counts, classes, spacing and uncertainty per image"))
register_batch_task(BatchTask("exitwave", "restricted", "-phase", apply=_exitwave_phase,
                              description="exit-wave phase (radians) from each amplitude image"))
register_batch_task(BatchTask("embed", "default", output="table", apply=_embed,
                              description="64-number VAE codes per image in OUT/embed.csv"))
