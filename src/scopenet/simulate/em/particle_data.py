"""Nanoparticle micrographs with exact masks and per-particle labels (segmentation training data).

Particles are ellipses (aspect ratio, orientation) with a little roughness or a polygonal facet set,
isolated or aggregated, on an amorphous support film; bright-field TEM thickness contrast (dark
particles) or dark-field/SEM (bright particles), a Gaussian blur and Poisson shot noise at a dose in
counts per pixel. The shape and film models are those of :func:`scopenet.simulate.em.meso.particles`
(its radial roughness and random fields), with the truth kept: a boolean mask, an instance label map
and the drawn ellipse parameters.

Two settings with disjoint ranges are defined in :data:`PARTICLE_SETTINGS`: ``"train"`` (the
shipped ``segment-particles`` model's data) and ``"heldout"`` (other sizes, elongations, doses and
blur, for ``scopenet bench segment``).

>>> import numpy as np
>>> s = particle_sample(np.random.default_rng(0), size=64)
>>> s.image.shape, s.mask.dtype.name, int(s.labels.max()) == len(s.particles)
((64, 64), 'bool', True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ...errors import InputError
from .lattice import gaussian_random_field
from .meso import _blob_radius

__all__ = ["PARTICLE_SETTINGS", "ParticleSample", "particle_sample", "particle_batch"]

#: parameter ranges of the two settings: radius (px, log-uniform), aspect ratio (major/minor), count,
#: dose (counts per pixel at intensity 1, log-uniform), blur sigma (px), fraction of faceted particles
PARTICLE_SETTINGS: dict[str, dict] = {
    "train": dict(radius=(3.0, 14.0), aspect=(1.0, 1.6), count=(4, 60), dose=(10.0, 500.0), blur=(0.5, 1.5),
                  faceted=0.4, film_corr=(0.7, 2.0), aggregate=0.4, bright_field=0.6),
    "heldout": dict(radius=(5.0, 20.0), aspect=(1.6, 2.5), count=(3, 40), dose=(8.0, 30.0), blur=(1.5, 2.5),
                    faceted=0.2, film_corr=(2.0, 4.0), aggregate=0.6, bright_field=0.5),
}


@dataclass
class ParticleSample:
    """One simulated particle micrograph and its truth.

    Attributes
    ----------
    image : ndarray, float32, (size, size)
        Counts divided by the dose (about [0, 1.2]).
    mask : ndarray, bool, (size, size)
        True inside a particle.
    labels : ndarray, int32, (size, size)
        0 background, ``k`` inside particle ``k`` (where particles overlap, the thicker one).
    particles : list of dict
        Per particle: ``y``, ``x`` (centre, px), ``major``, ``minor`` (semi-axes of the drawn ellipse,
        px), ``angle`` (rad, of the major axis from the +x axis toward +y), ``faceted``.
    params : dict
        The image's draw: dose, blur, bright_field, setting.
    """

    image: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    particles: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)


def _draw_particle(rng, shape, cy, cx, a, b, th, faceted, rough=True):
    """Thickness patch of one particle: ``(1 - d^2)^0.3`` inside its (rough or faceted) ellipse."""
    h, w = shape
    R = int(math.ceil(max(a, b) * 1.4)) + 2
    y0, y1 = max(0, int(cy) - R), min(h, int(cy) + R + 1)
    x0, x1 = max(0, int(cx) - R), min(w, int(cx) + R + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    u = dx * math.cos(th) + dy * math.sin(th)
    v = -dx * math.sin(th) + dy * math.cos(th)
    # ellipse-normalised radius, then a shape factor from meso's radial model (1 for a smooth ellipse)
    d = np.hypot(u / a, v / b)
    if faceted or rough:
        shape_r = _blob_radius(rng, np.arctan2(v / b, u / a), 1.0, faceted)
        d = d / shape_r
    return (y0, y1, x0, x1), (np.clip(1 - d ** 2, 0, None) ** 0.3).astype(np.float32)  # steep-edged dome


def particle_sample(rng: np.random.Generator, size: int = 256, setting: str = "train",
                    dose: float | None = None) -> ParticleSample:
    """One particle micrograph with mask, labels and the particles' ellipses.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int
        Image side (px), at least 16.
    setting : {"train", "heldout"}
        The parameter ranges (:data:`PARTICLE_SETTINGS`).
    dose : float, optional
        Counts per pixel at intensity 1 (default: drawn from the setting's range).

    Returns
    -------
    ParticleSample
    """
    if setting not in PARTICLE_SETTINGS:
        raise InputError(f"unknown particle setting {setting!r}; settings: {', '.join(PARTICLE_SETTINGS)}")
    if size < 16:
        raise InputError(f"particle images need size >= 16 px, got {size}")
    s = PARTICLE_SETTINGS[setting]
    scale = size / 256  # counts and radii ranges are for 256 px images
    n = max(1, int(round(rng.integers(s["count"][0], s["count"][1] + 1) * scale ** 2)))
    r_lo, r_hi = s["radius"]
    r_hi = min(r_hi, size / 4)
    r_lo = min(r_lo, r_hi)
    if rng.random() < s["aggregate"]:
        k = int(rng.integers(1, 4))
        cc = rng.uniform(0.15, 0.85, (k, 2)) * size
        centres = cc[rng.integers(k, size=n)] + rng.normal(0, size * rng.uniform(0.05, 0.15), (n, 2))
    else:
        centres = rng.uniform(0, size, (n, 2))
    thick = np.zeros((size, size), np.float32)
    labels = np.zeros((size, size), np.int32)
    parts = []
    for (cy, cx) in centres:
        r = float(np.exp(rng.uniform(np.log(r_lo), np.log(r_hi))))
        asp = float(rng.uniform(*s["aspect"]))
        a, b = r * math.sqrt(asp), r / math.sqrt(asp)
        th = float(rng.uniform(-np.pi / 2, np.pi / 2))
        fac = bool(rng.random() < s["faceted"])
        got = _draw_particle(rng, (size, size), cy, cx, a, b, th, fac)
        if got is None:
            continue
        (y0, y1, x0, x1), t = got
        t = t * r / 10  # thickness grows with size
        sub = thick[y0:y1, x0:x1]
        win = t > sub  # this particle is the thicker one there (t > 0 inside it)
        if not win.any():
            continue
        k = len(parts) + 1
        labels[y0:y1, x0:x1][win] = k
        thick[y0:y1, x0:x1] = np.maximum(sub, t)
        parts.append(dict(y=float(cy), x=float(cx), major=a, minor=b, angle=th, faceted=fac))
    # relabel to the particles that kept pixels (a particle hidden under others is dropped)
    present = np.unique(labels[labels > 0])
    remap = np.zeros(len(parts) + 1, np.int32)
    remap[present] = np.arange(1, len(present) + 1)
    labels = remap[labels]
    parts = [parts[i - 1] for i in present]
    support = 0.15 * gaussian_random_field((size, size), rng, rng.uniform(*s["film_corr"])) + \
        0.3 * gaussian_random_field((size, size), rng, size / 8)
    bright_field = bool(rng.random() < s["bright_field"])
    mu = rng.uniform(0.8, 2.5)
    if bright_field:
        clean = np.exp(-mu * thick) * (1 + 0.1 * support)
    else:
        clean = (1 - np.exp(-mu * thick)) + 0.15 * (1 + support)
    blur = float(rng.uniform(*s["blur"]))
    clean = np.clip(ndimage.gaussian_filter(clean, blur), 0, None)
    dose = float(np.exp(rng.uniform(*np.log(s["dose"])))) if dose is None else float(dose)
    if dose <= 0:
        raise InputError(f"dose must be positive, got {dose}")
    img = (rng.poisson(clean * dose) / dose).astype(np.float32)
    return ParticleSample(img, labels > 0, labels, parts,
                          dict(dose=dose, blur=blur, bright_field=bright_field, setting=setting, n_particles=len(parts)))


def particle_batch(n: int, size: int = 256, seed: int = 0, setting: str = "train"):
    """``n`` particle micrographs: ``(images (n, size, size) float32, masks (n, size, size) bool)``."""
    rng = np.random.default_rng(seed)
    samples = [particle_sample(rng, size, setting) for _ in range(int(n))]
    return np.stack([s.image for s in samples]), np.stack([s.mask for s in samples])
