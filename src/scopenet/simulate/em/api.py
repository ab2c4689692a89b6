"""Batch generation, dataset shards, gallery and demo section for the EM simulator."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InputError
from .hrtem import hrtem_image
from .lattice import stem_image
from .meso import meso_image

EM_KINDS = ("stem", "hrtem", "meso", "mixed")
#: probabilities of stem / hrtem / meso for kind="mixed"
MIXED_P = (0.4, 0.2, 0.4)


@dataclass
class EMSample:
    """One simulated electron micrograph with its ground truth.

    Attributes
    ----------
    image : ndarray, float32, shape (size, size)
        Clean (noise-free) image in [0, 1]; add noise with :mod:`scopenet.simulate.em.noise`.
    kind : str
        ``"stem"``, ``"hrtem"`` or ``"meso"``.
    params : dict
        Every generating parameter (JSON-serialisable).
    atoms : ndarray, float32, shape (k, 2)
        Column positions ``(row, col)`` in px (``k = 0`` for mesoscale images).
    atoms_m : ndarray, float64, shape (k, 2)
        Column positions in metres from pixel (0, 0).
    mask : ndarray, uint8, shape (size, size)
        0 background, 1 host column, 2 dopant column (all 0 for mesoscale images).
    pixel_size_m : float or None
        Metres per pixel (None for mesoscale textures, which have no absolute scale).
    """

    image: np.ndarray
    kind: str
    params: dict = field(default_factory=dict)
    atoms: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    atoms_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    mask: np.ndarray | None = None
    pixel_size_m: float | None = None

    def to_micrograph(self):
        """The image as a :class:`~scopenet.image.micrograph.Micrograph` (calibrated when possible)."""
        from ...image.micrograph import Axis, Micrograph

        modality = {"stem": "STEM", "hrtem": "TEM"}.get(self.kind)
        signal = "HAADF" if self.params.get("contrast") == "haadf" else "intensity"
        axes = None
        if self.pixel_size_m:
            axes = [Axis(name=n, size=s, scale=self.pixel_size_m * 1e9, unit="nm")
                    for n, s in zip(("y", "x"), self.image.shape)]
        return Micrograph(self.image, axes=axes or [], signal=signal, modality=modality,
                          metadata={"simulated": self.params})


def _rng(seed: int, index: int) -> np.random.Generator:
    """Generator for sample ``index`` of a run with ``seed`` (independent of batch/shard layout)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def simulate_image(rng: np.random.Generator, size: int = 512, kind: str = "mixed") -> EMSample:
    """One clean electron micrograph of ``kind`` with labels.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int
        Image side, px.
    kind : {"stem", "hrtem", "meso", "mixed"}
        ``"mixed"`` draws stem / hrtem / meso with probabilities :data:`MIXED_P`.
    """
    if kind not in EM_KINDS:
        raise InputError(f"unknown EM kind {kind!r}; choose one of {', '.join(EM_KINDS)}")
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise InputError(f"image size must be an integer >= 16, got {size!r}")
    if kind == "mixed":
        kind = str(rng.choice(["stem", "hrtem", "meso"], p=MIXED_P))
    if kind == "meso":
        img, params = meso_image(rng, size)
        return EMSample(img, "meso", params, mask=np.zeros((size, size), np.uint8))
    li = stem_image(rng, size) if kind == "stem" else hrtem_image(rng, size)
    return EMSample(li.image, kind, li.params, li.atoms, li.atoms_m, li.mask, li.pixel_size_m)


def simulate_batch(n: int, size: int = 512, seed: int = 0, kind: str = "mixed", start: int = 0,
                   tick=None) -> dict:
    """``n`` clean micrographs with ground truth, reproducible from ``seed``.

    Sample ``i`` is drawn from ``SeedSequence([seed, start + i])``, so a sample does not depend on how a
    run is split into batches or shards. ``tick``, if given, is called with 1 after each sample.

    Returns
    -------
    dict
        ``"images"`` float32 ``(n, size, size)`` in [0, 1]; ``"masks"`` uint8 ``(n, size, size)``;
        ``"atoms"`` list of ``(k_i, 2)`` float32 pixel coordinates ``(row, col)``; ``"atoms_m"`` list of
        ``(k_i, 2)`` metres; ``"kinds"`` list of str; ``"pixel_size_m"`` float64 ``(n,)`` (NaN for
        mesoscale); ``"params"`` list of dict.
    """
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    images = np.zeros((n, size, size), np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    atoms, atoms_m, kinds, params = [], [], [], []
    px = np.full(n, np.nan)
    for i in range(n):
        s = simulate_image(_rng(seed, start + i), size, kind)
        images[i] = s.image
        if s.mask is not None:
            masks[i] = s.mask
        atoms.append(s.atoms)
        atoms_m.append(s.atoms_m)
        kinds.append(s.kind)
        params.append(s.params)
        if s.pixel_size_m:
            px[i] = s.pixel_size_m
        if tick is not None:
            tick(1)
    return {"images": images, "masks": masks, "atoms": atoms, "atoms_m": atoms_m, "kinds": kinds,
            "pixel_size_m": px, "params": params}


def write_dataset(out_dir: str | Path, n: int, seed: int = 0, size: int = 512, kind: str = "mixed",
                  progress: bool = True, shard_size: int = 256, overwrite: bool = False) -> Path:
    """Write ``n`` samples as ``shard_XXXXX.npz`` files plus ``manifest.json`` in ``out_dir``.

    Each shard holds ``images`` ``(m, size, size)`` float32, ``masks`` uint8, ``atoms`` ``(K, 2)`` float32
    with ``atoms_offsets`` ``(m + 1,)`` (sample ``j``'s atoms are ``atoms[off[j]:off[j+1]]``),
    ``pixel_size_m`` ``(m,)``, ``kinds`` ``(m,)`` str and ``params_json`` ``(m,)`` str.

    Returns
    -------
    Path
        The manifest.
    """
    import json

    from .._shards import ragged_to_arrays, write_shards

    if kind not in EM_KINDS:
        raise InputError(f"unknown EM kind {kind!r}; choose one of {', '.join(EM_KINDS)}")

    def make(start: int, count: int, tick=None) -> dict:
        b = simulate_batch(count, size, seed, kind, start=start, tick=tick)
        flat, off = ragged_to_arrays(b["atoms"])
        return {"images": b["images"], "masks": b["masks"], "atoms": flat, "atoms_offsets": off,
                "pixel_size_m": b["pixel_size_m"], "kinds": np.array(b["kinds"]),
                "params_json": np.array([json.dumps(p, default=str) for p in b["params"]])}

    return write_shards(out_dir, n, make, shard_size=shard_size, progress=progress, overwrite=overwrite,
                        meta={"generator": "scopenet.simulate.em", "kind": kind, "size": size, "seed": seed})


def gallery_png(seed: int = 0, size: int = 256) -> bytes:
    """PNG: STEM, HRTEM and each mesoscale family, clean and with Ede low-dose noise."""
    from ...report import image_grid
    from .hrtem import hrtem_image as _h
    from .lattice import stem_image as _s
    from .meso import MESO_KINDS, meso_image
    from .noise import ede_noisy_pair

    from ...image.micrograph import Axis, Micrograph

    def calibrated(img, px_m):  # the lattice panels know their pixel size; the mesoscale textures do not
        return Micrograph(img, axes=[Axis(name=n, size=s, scale=px_m * 1e9, unit="nm")
                                     for n, s in zip(("y", "x"), img.shape)])

    rng = np.random.default_rng(seed)
    clean, titles, px = [], [], []
    li = _s(rng, size)
    clean.append(li.image)
    px.append(li.pixel_size_m)
    titles.append(f"STEM {li.params['structure']}")
    li = _h(rng, size)
    clean.append(li.image)
    px.append(li.pixel_size_m)
    titles.append(f"HRTEM {li.params['structure']}")
    for fam in MESO_KINDS:
        clean.append(meso_image(rng, size, fam)[0])
        px.append(None)
        titles.append(f"meso: {fam}")
    noisy = [ede_noisy_pair(c, rng, "low")[0] for c in clean]
    panels = [calibrated(a, p) if p else a for a, p in zip(clean + noisy, px + px)]
    return image_grid(panels, titles + [t + " (low dose)" for t in titles], ncols=len(clean), robust=False)


def demo_section(report, workdir, samples) -> None:
    """Demo-report section: EM simulator gallery, labelled lattice, noise pairs and scan masks."""
    from ...report import image_grid
    from .. import scans
    from .noise import ede_noisy_pair

    sec = report.section("Synthetic electron micrographs",
                         "Clean images with exact ground truth from scopenet.simulate.em: atom columns from ASE "
                         "crystals (HAADF Z^1.7 contrast, HRTEM through a CTF) and mesoscale textures; Ede's "
                         "low/high-dose Poisson pairs; partial-scan masks from scopenet.simulate.scans.")
    sec.figure(gallery_png(0, 256), "Top: clean STEM, HRTEM and mesoscale images. Bottom: Ede low-dose noise.")
    rng = np.random.default_rng(1)
    s = simulate_image(rng, 256, "stem")
    sec.figure(image_grid([s.to_micrograph(), s.mask.astype(np.float32)],
                          [f"STEM {s.params['structure']}", f"column mask ({len(s.atoms)} columns)"],
                          robust=False), "A simulated lattice (scale bar from its pixel size) and its label "
                                         "mask (1 host, 2 dopant).")
    rows = []
    for regime in ("low", "high"):
        noisy, truth, scale = ede_noisy_pair(s.image, rng, regime, return_scale=True)
        rows.append({"regime": regime, "scale (counts)": scale, "noisy mean": float(noisy.mean()),
                     "truth mean": float(truth.mean()), "RMSE": float(np.sqrt(np.mean((noisy - truth) ** 2)))})
    sec.table(rows, caption="Ede noisy/truth pairs (truth rescaled to the noisy mean)")
    sec.figure(scans.gallery_png(0, 256), "Scan masks at 1/20 coverage and a spiral partial scan with NN infill.")
    mrow = []
    for nominal in (16, 25, 36, 49, 64, 81, 100):
        m = scans.spiral_mask(512, 1 / nominal)
        t = scans.scan_time(scans.spiral_path(512, 1 / nominal), size=512)
        mrow.append({"nominal": f"1/{nominal}", "actual": f"1/{1 / m.mean():.1f}",
                     "dose reduction": t.dose_reduction, "time reduction": t.time_reduction})
    sec.table(mrow, caption="Archimedes spiral coverage on 512 x 512 (Ede's construction)")
