"""Demo section "Reading and flattening instrument files" (see :mod:`scopenet.demo`).

Reads every bundled sample with ``sn.read``, tabulates what came through (shape, pixel size,
signal), shows scanning probe images raw and flattened four ways side by side with scale bars,
previews electron micrographs, and writes the flattened images as calibrated TIFF to the work folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SPM_MODALITIES = {"STM", "AFM", "SPM", "NC-AFM", "KPFM", "MFM"}
SPM_SIGNALS = {"height", "z", "topography", "current", "frequency_shift", "df", "amplitude", "phase"}


def is_spm(img, name: str = "") -> bool:
    """Whether an image is a scanning probe scan (by modality, scan direction, signal or name)."""
    if img.modality and img.modality.upper() in SPM_MODALITIES:
        return True
    if img.scan_direction:
        return True
    if img.signal.lower() in SPM_SIGNALS:
        return True
    return any(k in name.lower() for k in ("stm", "afm", "spm", "sxm", "mtrx"))


def _fmt_pixel(img) -> str:
    from ..image.units import pixel_size_text

    return pixel_size_text(img)


def section(report, workdir: Path, samples: dict[str, Path]) -> None:
    """Add the reading/flattening section to ``report``; write flattened TIFFs into ``workdir``."""
    from ..image.spm import flatten, flatten_lines, repair_scars, subtract_plane
    from ..image.units import value_format
    from . import read, write

    sec = report.section(
        "Reading and flattening instrument files",
        "Every bundled sample is read with sn.read. Scanning probe images are shown raw, after "
        "line-by-line flattening (per-line linear fit, as capture software does), after plane "
        "subtraction, and after row alignment (median of differences) with a RANSAC plane, which "
        "ignores atomic steps and adsorbates; scars are then repaired. Colour scales are robust "
        "(0.5-99.5 percentile); scanning-probe panels carry a height bar in pm or nm and every "
        "panel a scale bar.")
    workdir = Path(workdir)
    rows = []
    for name, path in samples.items():
        img = read(path)
        rows.append({"file": Path(path).name, "shape": "x".join(map(str, img.shape)),
                     "pixel size": _fmt_pixel(img), "signal": f"{img.signal} [{img.signal_unit or 'no unit'}]",
                     "modality": img.modality or "", "scan": img.scan_direction or ""})
        if is_spm(img, name):
            lines = flatten_lines(img, method="linear")
            plane = subtract_plane(img)
            robust = repair_scars(flatten(img, method="auto"))
            sec.images([img, lines, plane, robust],
                       ["raw", "lines (linear fit)", "plane", "align rows + RANSAC + scars"],
                       caption=f"{Path(path).name}: raw and flattened", size=3.0)
            out = workdir / f"{name}-flattened.tif"
            write(robust, out, overwrite=True)
            rows[-1]["output"] = out.name
            rng = lambda m: float(np.nanstd(np.asarray(m)))  # noqa: E731
            _, fmt = value_format(0.0, rng(img), img.signal_unit, digits=3)
            rows[-1]["rms raw → flat"] = f"{fmt(rng(img))} → {fmt(rng(robust))}"
        else:
            sec.images([img], [f"{name} ({img.signal})"], caption=f"{Path(path).name}: preview", size=3.0)
    sec.table(rows, caption="Bundled samples as read by scopenet")
