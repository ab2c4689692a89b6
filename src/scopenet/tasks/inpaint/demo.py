"""Demo-report section: scan path, partial scan, completion and truth side by side."""
from __future__ import annotations

import numpy as np

from ...image.scaling import unit_scale


def _x_axis(img) -> tuple[float, str] | None:
    """(pixel size, unit) of a calibrated Micrograph's x axis, else None."""
    axes = getattr(img, "axes", None)
    if not axes or not axes[-1].calibrated:
        return None
    return float(axes[-1].scale), axes[-1].unit


def _calibrated(image, xaxis):
    """``image`` as a Micrograph with square pixels of ``xaxis`` = (size, unit), or uncalibrated."""
    from ...image.micrograph import Axis, Micrograph

    data = np.asarray(image, np.float32)
    if xaxis is None:
        return Micrograph(data)
    scale, unit = xaxis
    return Micrograph(data, axes=[Axis(n, k, scale, unit=unit) for n, k in zip(("y", "x"), data.shape)])


def section(report, workdir, samples) -> None:
    """Add an "Sparse-scan completion" section to ``report``.

    ``samples``: the demo's ``{name: path}`` of bundled samples (electron micrographs among them are used),
    or a sequence of 2-D images (or Micrographs) in any intensity units; the first two are used
    (a simulated STEM image when empty). Each is scanned with Ede's 1/17.9 spiral and a 1/50 random
    segment path and completed with the default model (NN infill if no model is installed).
    """
    from ...metrics.image import rms
    from ...simulate import scans
    from .baselines import linear, nearest
    from .model import Inpainter

    if isinstance(samples, dict):  # the demo passes {name: path} of the bundled samples: use the EM ones
        from ...io import read

        items = [read(p) for p in samples.values()]
        samples = [m for m in items if (m.modality or "").upper() not in ("STM", "AFM")]
    items = [(np.asarray(getattr(s, "data", s), np.float32), _x_axis(s)) for s in list(samples or [])[:2]]
    items = [(im, ax) for im, ax in items if im.ndim == 2 and min(im.shape) >= 64]
    if not items:
        from ...simulate.em.api import simulate_batch

        b = simulate_batch(1, 256, seed=3, kind="stem")
        px = float(b["pixel_size_m"][0])
        items = [(b["images"][0], (px * 1e9, "nm") if np.isfinite(px) and px > 0 else None)]
    try:
        model = Inpainter.pretrained("default")
        note = f"model {model.name}"
    except Exception as exc:  # noqa: BLE001 - no model installed: show the untrained (NN infill) network
        model = Inpainter()
        note = f"no pretrained model ({exc}); showing NN infill"
    sec = report.section("Sparse-scan completion", "Partial scans completed by the network from [NN infill, mask], "
                         "then refined by Fourier sparsity where a check on the scan's own withheld samples says "
                         "that helps (crystal lattices); truth = the full scan.")
    rows = []
    for i, (im, xaxis) in enumerate(items):
        im = im[:256, :256]
        im = unit_scale(im)[0]
        n = min(im.shape)
        im = im[:n, :n]
        for label, m in (("spiral 1/17.9", scans.spiral_mask(n, 1 / 16)),
                         ("segments 1/50", scans.make_mask("segments", n, 1 / 50, np.random.default_rng(i)))):
            partial = im * m
            out = model.predict(partial, m)
            lin = linear(partial, m)
            panels = [m.astype(np.float32), partial, nearest(partial, m), lin, out, im]
            sec.images([_calibrated(p, xaxis) for p in panels],
                       ["scan path", "partial scan", "nearest", "linear", "completion", "truth"],
                       caption=f"sample {i}, {label}, {note}"
                               + (", Fourier-refined" if model.last_fourier_ else ", network only"))
            rows.append({"sample": i, "path": label, "nearest RMS": rms(im, nearest(partial, m)),
                         "linear RMS": rms(im, lin), "model RMS": rms(im, out),
                         "Fourier-refined": bool(model.last_fourier_)})
    sec.table(rows, caption="RMS error, intensities scaled to [0, 1]")
