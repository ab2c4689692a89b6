"""Training pairs for segmentation: arrays, Micrographs or folders of files paired by name."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError

__all__ = ["load_pairs", "as_label_mask", "image_files", "normalise"]


def image_files(folder: Path) -> list[Path]:
    """The files in ``folder`` that scopenet reads (by extension), sorted by name."""
    from ...io import supported_extensions

    exts = set(supported_extensions())
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in exts)


def as_label_mask(m: Any, n_classes: int, what: str = "mask") -> np.ndarray:
    """A label image as int64 class indices ``0 .. n_classes - 1``.

    With two classes any non-zero value is the foreground (masks saved as 0/1, 0/255 or booleans); with
    more, values must be class indices already.
    """
    a = np.asarray(getattr(m, "data", m))
    if a.ndim == 3 and a.shape[-1] in (3, 4):  # an RGB(A) picture of a mask: any channel set
        a = a[..., :3].max(-1)
    if a.ndim != 2:
        raise InputError(f"{what} must be a 2-D label image, got shape {a.shape}")
    if not np.isfinite(a.astype(np.float64)).all():
        raise InputError(f"{what} has non-finite values")
    if n_classes == 2:
        return (a != 0).astype(np.int64)
    ai = a.astype(np.int64)
    if (ai != a).any() or ai.min() < 0 or ai.max() >= n_classes:
        raise InputError(f"{what} must hold class indices 0..{n_classes - 1}, got values from {a.min()} to {a.max()}")
    return ai


def normalise(a: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Scale an image so its ``percentiles`` map to 0 and 1 (float32; non-finite pixels to the median)."""
    from ...image.scaling import unit_scale

    return unit_scale(np.asarray(a, np.float32), percentiles=percentiles)[0].astype(np.float32)


def _image(x: Any, what: str) -> np.ndarray:
    a = np.asarray(getattr(x, "data", x))
    if a.ndim != 2 or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(f"{what} must be a 2-D numeric image, got shape {a.shape} and dtype {a.dtype}")
    return a.astype(np.float32)


def _read_folder(images: Path, masks: Path) -> tuple[list, list, list[str]]:
    from ...io import read

    images, masks = Path(images), Path(masks)
    for f in (images, masks):
        if not f.is_dir():
            raise InputError(f"{f} is not a folder")
    ims = image_files(images)
    if not ims:
        raise InputError(f"no image files that scopenet reads in {images}")
    by_stem = {p.stem: p for p in image_files(masks)}
    missing = [p.name for p in ims if p.stem not in by_stem]
    if missing:
        raise InputError(f"no mask in {masks} for {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
                         + " (masks are paired with images by file name, any extension)")
    xs, ms, names = [], [], []
    for p in ims:
        q = by_stem[p.stem]
        x, m = read(p), read(q)
        if np.shape(m.data)[:2] != np.shape(x.data)[-2:]:
            raise InputError(f"image {p} has shape {np.shape(x.data)} but its mask {q} has shape {np.shape(m.data)}")
        xs.append(x)
        ms.append(m)
        names.append(f"{p} / {q}")
    return xs, ms, names


def load_pairs(images: Any, masks: Any, n_classes: int = 2) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Training pairs ``(images float32, masks int64, names)`` from arrays, lists or folders.

    Parameters
    ----------
    images, masks : ndarray (N, H, W) / (H, W), Micrograph, list of them, or folder paths
        Folders are paired by file name (``a.tif`` with ``a.png``); every format scopenet reads.
    n_classes : int
        Number of classes (masks: class indices; with 2, any non-zero value is foreground).

    Raises
    ------
    InputError
        Different numbers of images and masks, an image and its mask of different shapes (naming the
        files or the list index), masks outside the class range.
    """
    if isinstance(images, (str, Path)) or isinstance(masks, (str, Path)):
        if not (isinstance(images, (str, Path)) and isinstance(masks, (str, Path))):
            raise InputError("give images and masks both as folders, or both as arrays")
        xs, ms, names = _read_folder(Path(images), Path(masks))
    else:
        from .._estimator import as_list

        xs, ms = as_list(images), as_list(masks)
        names = [f"image {i}" for i in range(len(xs))]
    if len(xs) != len(ms):
        raise InputError(f"{len(xs)} images but {len(ms)} masks")
    if not xs:
        raise InputError("no training images")
    out_x, out_m = [], []
    for x, m, name in zip(xs, ms, names):
        a = _image(x, name)
        lm = as_label_mask(m, n_classes, f"mask of {name}")
        if lm.shape != a.shape:
            raise InputError(f"{name}: image shape {a.shape} differs from mask shape {lm.shape}")
        out_x.append(a)
        out_m.append(lm)
    return out_x, out_m, names
