"""A small self-contained HTML report: sections of text, tables and figures (PNG embedded inline).

Used by ``make demo`` and by the benchmarks. Every image panel carries a scale bar (or says "uncalibrated");
scanning-probe panels also get a colour (height) bar in pm/nm, pA/nA ... (:mod:`scopenet.image.units`).

>>> rep = Report("scopenet demo")
>>> sec = rep.section("Reading files", "Every bundled sample, flattened.")
>>> sec.table([{"file": "a.tif", "shape": "64x64"}])
>>> rep.write("demo-output/report.html")          # doctest: +SKIP
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._fileutil import atomic_output


SPM_MODALITIES = {"STM", "AFM", "SPM", "NC-AFM", "KPFM", "MFM", "PFM"}
#: size of scale-bar text as a fraction of the shorter side of the image panel
TEXT_FRACTION = 0.055


def is_spm_image(img) -> bool:
    """Whether a Micrograph is a scanning-probe image (SPM modality or a scan direction)."""
    return (getattr(img, "modality", None) or "").upper() in SPM_MODALITIES \
        or getattr(img, "scan_direction", None) is not None


def wants_colorbar(img) -> bool:
    """Whether a panel gets a colour bar by default: scanning-probe images, and any image whose
    values carry a physical unit (heights in m, currents in A, voltages, frequency shifts)."""
    from .image.units import split_unit

    return is_spm_image(img) or split_unit(getattr(img, "signal_unit", None)) is not None


def outline(width: float, color: str = "black"):
    """Matplotlib path effects drawing a ``width``-point outline under text or lines."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=width, foreground=color)]


def panel_points(ax) -> float:
    """Shorter side, in points, of the box the image occupies on ``ax`` (after its aspect is applied)."""
    ax.apply_aspect()
    fig = ax.figure
    pos = ax.get_position(original=False)
    w_in, h_in = fig.get_size_inches()
    return max(1.0, min(pos.width * w_in, pos.height * h_in) * 72.0)


def add_scale_bar(ax, img, color: str = "white", fraction: float = 0.2, text_fraction: float = TEXT_FRACTION):
    """Draw a scale bar on a matplotlib axis showing ``img`` (a Micrograph) in pixel coordinates.

    The bar is about ``fraction`` of the width (1, 2 or 5 x 10^k, see
    :func:`scopenet.image.units.scale_bar`) and labelled in pm/nm/µm; bar and text are white with a
    black outline so that they read on dark and bright areas alike, and their size follows the size
    of the panel (``text_fraction`` of its shorter side). An image without a calibrated x axis gets
    the word "uncalibrated" instead of a bar.

    Returns
    -------
    ScaleBar or None
        What was drawn (None for an uncalibrated image).
    """
    from matplotlib.patches import Rectangle

    from .image.units import scale_bar

    spec = scale_bar(img, fraction)
    side = panel_points(ax)
    fs = max(5.0, text_fraction * side)
    stroke = max(1.5, fs / 4)
    h_px, w_px = img.shape[-2], img.shape[-1]
    x0 = 0.05 * w_px - 0.5
    if spec is None:
        ax.text(x0, h_px - 0.5 - 0.04 * h_px, "uncalibrated", color=color, ha="left", va="bottom",
                fontsize=0.85 * fs, path_effects=outline(stroke), zorder=5)
        return None
    thick = max(0.018 * h_px, 1.0)
    y_bottom = h_px - 0.5 - 0.05 * h_px   # y grows downwards in image coordinates
    bar = Rectangle((x0, y_bottom - thick), spec.length_px, thick, facecolor=color, edgecolor="none",
                    zorder=5, path_effects=outline(stroke), gid="scale-bar")
    ax.add_patch(bar)
    ax.text(x0, y_bottom - thick - 0.015 * h_px, spec.label, color=color,
            ha="left", va="bottom", fontsize=fs, fontweight="bold", path_effects=outline(stroke),
            zorder=6, gid="scale-bar-label")
    return spec


def display_data(img, robust: bool = True) -> tuple[np.ndarray, float, float, str, float]:
    """The 2-D data to draw of a Micrograph (first frame), its display limits, the unit the values are
    shown in and the factor applied: heights in m become pm or nm, currents pA or nA (by the largest
    magnitude shown)."""
    from .image.units import display_unit

    d = np.asarray(img.data if img.data.ndim == 2 else img.data[0], dtype=np.float64)
    finite = d[np.isfinite(d)]
    if finite.size == 0:
        vmin, vmax = 0.0, 1.0
    elif robust:
        vmin, vmax = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    else:
        vmin, vmax = float(finite.min()), float(finite.max())
    if not vmax > vmin and finite.size:
        vmin, vmax = float(finite.min()), float(finite.max())
    if not vmax > vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    unit, factor = display_unit(max(abs(vmin), abs(vmax)), getattr(img, "signal_unit", ""))
    return d * factor, vmin * factor, vmax * factor, unit, factor


def add_colorbar(ax, mappable, img, unit: str, text_fraction: float = TEXT_FRACTION):
    """A colour (height) bar beside ``ax`` labelled with the signal and its display ``unit``."""
    from .image.units import signal_label

    fig = ax.figure
    side = panel_points(ax)
    fs = max(5.0, 0.8 * text_fraction * side)
    cax = ax.inset_axes((1.03, 0.0, 0.05, 1.0))
    cb = fig.colorbar(mappable, cax=cax)
    cb.set_label(signal_label(getattr(img, "signal", "") or "signal", unit), fontsize=fs)
    cb.ax.tick_params(labelsize=0.9 * fs)
    cb.ax.yaxis.get_offset_text().set_fontsize(0.9 * fs)
    return cb


def fig_to_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def image_grid(images: Sequence[Any], titles: Sequence[str] | None = None, cmap: str | None = None,
               ncols: int | None = None, size: float = 2.6, robust: bool = True,
               colorbar: bool | None = None) -> bytes:
    """A row/grid of images (Micrographs or arrays) with titles and scale bars, as PNG bytes.

    Every panel gets a scale bar (or "uncalibrated" when its x axis has no calibration; plain arrays
    are uncalibrated). ``cmap`` None: ``afmhot`` for scanning-probe images, ``gray`` otherwise.
    ``colorbar`` None: a colour (height) bar with the signal's unit on scanning-probe panels and
    panels whose values have a physical unit (:func:`wants_colorbar`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .image.micrograph import as_micrograph

    mics = [as_micrograph(im) for im in images]
    n = len(mics)
    ncols = ncols or min(n, 5)
    nrows = int(np.ceil(n / ncols))
    bars = [wants_colorbar(m) if colorbar is None else bool(colorbar) for m in mics]
    widen = 1.35 if any(bars) else 1.0
    fig, axs = plt.subplots(nrows, ncols, figsize=(size * ncols * widen, size * nrows), squeeze=False)
    drawn = []
    for i, ax in enumerate(axs.flat):
        ax.axis("off")
        if i >= n:
            continue
        m = mics[i]
        d, vmin, vmax, unit, _ = display_data(m, robust)
        cm = cmap or ("afmhot" if is_spm_image(m) else "gray")
        im = ax.imshow(np.ma.masked_invalid(d), cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=max(7.0, 3.0 * size))
        drawn.append((ax, m, im, unit, bars[i]))
    fig.tight_layout(w_pad=3.0 if any(bars) else 1.08)
    for ax, m, im, unit, cb in drawn:  # sizes follow the panels as laid out
        add_scale_bar(ax, m)
        if cb:
            add_colorbar(ax, im, m, unit)
    return fig_to_png(fig)


@dataclass
class Section:
    title: str
    intro: str = ""
    parts: list[str] = field(default_factory=list)

    def text(self, text: str) -> "Section":
        self.parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def html(self, raw: str) -> "Section":
        self.parts.append(raw)
        return self

    def figure(self, png: bytes, caption: str = "") -> "Section":
        b64 = base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(caption)}"/>{cap}</figure>')
        return self

    def images(self, images: Sequence[Any], titles: Sequence[str] | None = None, caption: str = "", **kw) -> "Section":
        return self.figure(image_grid(images, titles, **kw), caption)

    def table(self, rows: Sequence[dict], caption: str = "", floatfmt: str = "{:.4g}") -> "Section":
        if not rows:
            return self
        cols = list(rows[0].keys())
        for r in rows[1:]:
            cols += [c for c in r if c not in cols]

        def fmt(v):
            if isinstance(v, float):
                return floatfmt.format(v)
            return html.escape(str(v))

        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def render(self) -> str:
        intro = f"<p>{html.escape(self.intro)}</p>" if self.intro else ""
        anchor = "".join(ch if ch.isalnum() else "-" for ch in self.title.lower())
        return f'<section id="{anchor}"><h2>{html.escape(self.title)}</h2>{intro}{"".join(self.parts)}</section>'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #345}h2{margin-top:2em;color:#234}
figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#eef}caption{caption-side:top;text-align:left;font-weight:bold;padding:4px 0}
nav a{margin-right:1em}.err{color:#a00;white-space:pre-wrap;font-family:monospace}
"""


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    footer: str = ""

    def section(self, title: str, intro: str = "") -> Section:
        s = Section(title, intro)
        self.sections.append(s)
        return s

    def render(self) -> str:
        nav = "".join(
            f'<a href="#{"".join(ch if ch.isalnum() else "-" for ch in s.title.lower())}">{html.escape(s.title)}</a>'
            for s in self.sections)
        body = "".join(s.render() for s in self.sections)
        foot = f"<footer><p>{html.escape(self.footer)}</p></footer>" if self.footer else ""
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1><nav>{nav}</nav>"
                f"{body}{foot}</body></html>")

    def write(self, path: str | Path, overwrite: bool = True) -> Path:
        path = Path(path)
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return path
