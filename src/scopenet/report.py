"""A small self-contained HTML report: sections of text, tables and figures (PNG embedded inline).

Used by ``make demo`` and by the benchmarks. Images are drawn with a scale bar when calibrated.

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


def _nice_length(x: float) -> float:
    """Largest 1/2/5 x 10^k not above x."""
    if x <= 0:
        return 0.0
    k = np.floor(np.log10(x))
    for m in (5, 2, 1):
        if m * 10**k <= x:
            return float(m * 10**k)
    return float(10**k)


def add_scale_bar(ax, img, color: str = "white") -> None:
    """Draw a scale bar of about 1/5 of the width on a matplotlib axis showing ``img`` (a Micrograph)."""
    axis = img.axes[-1]
    if not axis.calibrated:
        return
    w_px = img.shape[-1]
    length = _nice_length(0.2 * w_px * axis.scale)
    if length <= 0:
        return
    # express in a readable unit
    unit = axis.unit
    metres = axis.scale_in_metres()
    label_val, label_unit = length, unit
    if metres is not None:
        length_m = length / axis.scale * metres
        for u, f in (("pm", 1e-12), ("nm", 1e-9), ("µm", 1e-6), ("mm", 1e-3), ("m", 1.0)):
            if length_m < 1000 * f:
                label_val, label_unit = length_m / f, u
                break
    bar_px = length / axis.scale
    h_px = img.shape[-2]
    x0, y0 = 0.05 * w_px, 0.93 * h_px
    ax.plot([x0, x0 + bar_px], [y0, y0], color=color, linewidth=3, solid_capstyle="butt")
    ax.text(x0 + bar_px / 2, y0 - 0.02 * h_px, f"{label_val:g} {label_unit}", color=color,
            ha="center", va="bottom", fontsize=8, fontweight="bold")


def fig_to_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def image_grid(images: Sequence[Any], titles: Sequence[str] | None = None, cmap: str = "gray",
               ncols: int | None = None, size: float = 2.6, robust: bool = True) -> bytes:
    """A row/grid of images (Micrographs or arrays) with titles and scale bars, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .image.micrograph import as_micrograph

    n = len(images)
    ncols = ncols or min(n, 5)
    nrows = int(np.ceil(n / ncols))
    fig, axs = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axs.flat):
        ax.axis("off")
        if i >= n:
            continue
        m = as_micrograph(images[i])
        d = m.data if m.data.ndim == 2 else m.data[0]
        finite = d[np.isfinite(d)]
        if robust and finite.size:
            vmin, vmax = np.percentile(finite, [0.5, 99.5])
        else:
            vmin, vmax = (finite.min(), finite.max()) if finite.size else (0, 1)
        ax.imshow(d, cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1, interpolation="nearest")
        add_scale_bar(ax, m)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
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
