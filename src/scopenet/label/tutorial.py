"""The built-in tutorial of the six default categories: a definition and a simulated example of each.

The definitions follow Gordon & Landon's H:Si(100) study (report §4.2, after Møller et al.,
*Nanotechnology* 28, 075302, 2017): step edges and surface defects are ignored; several categories
may apply; the categories are not a hierarchy; Bad/Blurry is chosen by the time a decision takes.
The example images are simulated H:Si(100) scans (:mod:`scopenet.simulate.spm`) rendered as uploads
are, made by ``scripts/make_tutorial_examples.py`` and shipped in ``label/static`` with their field of
view in ``tutorial-examples.json``.

A project whose categories carry the default names (or their slugs, ``bad_blurry`` ...) shows them on
its tutorial page, above any examples the administrators marked.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from .db import slug

STATIC = Path(__file__).resolve().parent / "static"

#: general rules shown above the categories
RULES: tuple[str, ...] = (
    "Judge what the tip resolves on the H:Si(100)-2x1 surface. Ignore step edges and surface defects "
    "(bright adsorbates, dark vacancies).",
    "Tick every category that applies. They are not a ladder: tick the finest feature you can make out, "
    "and when the resolution lies between two categories, tick both.",
    "Bad/Blurry goes by how long a decision takes: a feature seen at a glance is ticked alone; a feature "
    "made out only with some effort is ticked together with Bad/Blurry; when no feature can be seen, "
    "tick Bad/Blurry only.",
)

#: slug -> definition of each default category
DEFINITIONS: dict[str, str] = {
    "asymmetries": "Features look stretched, doubled or lopsided, all in the same direction (ghost copies, "
                   "comet-like tails, oval atoms): an asymmetric or double tip apex. Tick it together with "
                   "the finest feature still visible.",
    "individual_atoms": "The two hydrogen-terminated silicon atoms of each dimer are resolved as two separate "
                        "bright spots: pairs of spots side by side across each row. The sharpest tip.",
    "dimers": "Each dimer is one bright oval bump and neighbouring dimers along a row are separated "
              "(a row of beads), but the two atoms within a dimer are not resolved.",
    "rows": "Only the dimer rows show, as parallel bright stripes about 0.77 nm apart; the dimers along a "
            "row merge into one line.",
    "tip_change": "The picture changes abruptly from one scan line to the next (scan lines run left to "
                  "right, top to bottom): resolution, contrast or apparent height differ above and below "
                  "the line, often with a streak. Also tick the features seen on either side.",
    "bad_blurry": "No feature can be made out at a glance: blurred blobs, noise, streaks or a crashed tip. "
                  "Tick it alone if nothing can be seen, together with a feature that needs some "
                  "effort to make out.",
}


@functools.lru_cache(maxsize=1)
def _manifest() -> dict:
    try:
        return json.loads((STATIC / "tutorial-examples.json").read_text(encoding="utf-8")).get("examples", {})
    except (OSError, ValueError):
        return {}


def builtin_entry(category: str) -> dict | None:
    """Definition and shipped example of a default category (by display name or slug), or None.

    Returns
    -------
    dict or None
        ``definition``; ``image`` (URL under ``/static``) and ``caption`` (field of view, pixels,
        "simulated") when an example image is shipped, else None for both.
    """
    key = slug(category)
    if key not in DEFINITIONS:
        return None
    from ..image.units import format_length

    ex = _manifest().get(key) or {}
    image = caption = None
    if ex.get("file") and (STATIC / ex["file"]).is_file():
        image = f"/static/{ex['file']}"
        fov = ex.get("field_of_view_m")
        side = format_length(float(fov), 3) if fov else "unknown"
        caption = f"Simulated H:Si(100) scan, field of view {side} x {side} ({ex.get('pixels', '?')} px)"
    return {"definition": DEFINITIONS[key], "image": image, "caption": caption}


def builtin_entries(categories) -> dict[str, dict]:
    """``{category: builtin_entry(category)}`` for the categories that are default ones."""
    out = {}
    for c in categories:
        e = builtin_entry(c)
        if e is not None:
            out[c] = e
    return out
