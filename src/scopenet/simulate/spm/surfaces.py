"""Model surfaces for STM: atoms as Gaussian orbitals on terraces, in physical units.

A :class:`Surface` lives on a *canvas*: a pixel grid slightly larger than the image (the margin
absorbs tip ghosts, drift and the wrap-around of FFT convolution). Positions are canvas pixel
coordinates ``(row, col)`` = ``(y, x)``; heights are in metres. The apparent height is

``h(r) = T(r) + sum_layers sum_i a_i exp(-|r - r_i|^2 / (2 sigma_layer^2))``

where ``T`` is the terrace map (step heights, smooth reconstructions) and each layer holds Gaussian
"orbitals" of one width (substrate atoms, dangling bonds, adsorbates, pits). Layers are rendered by
bilinear splatting onto the grid followed by one FFT multiplication per layer, so the cost does not
depend on the number of atoms.

Every generator returns the feature *sites* used by the labelling rules: pairs of points
(``peak``, ``mid``) whose apparent-height difference measures whether a feature is resolved
(see :mod:`scopenet.simulate.spm.labels`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

#: Si(100) surface lattice constant (m); dimer rows are 2a apart, dimers a apart along a row.
SI_A = 3.84e-10
#: Apparent separation of the two atoms of a H:Si(100) dimer (m).
SI_DIMER_BOND = 2.4e-10
#: Single-atom step height on Si(100) (m).
SI_STEP = 1.36e-10

#: (nearest-neighbour spacing, step height) for the close-packed surfaces (m).
FCC111 = {"au111": (2.884e-10, 2.36e-10), "cu111": (2.556e-10, 2.08e-10)}
HOPG_A, HOPG_STEP = 2.46e-10, 3.35e-10

SURFACES = ("hsi100", "au111", "cu111", "hopg", "lattice")

#: Species codes in the ``atoms`` array.
SPECIES = {"substrate": 0, "dangling_bond": 1, "adsorbate": 2, "pit": 3}


@dataclass
class GaussianLayer:
    """Gaussian features of one width.

    Attributes
    ----------
    name : str
        What they are (``"atoms"``, ``"dangling_bonds"``, ``"adsorbates"``...).
    yx : ndarray, float, shape (N, 2)
        Centres in canvas pixels.
    amp : ndarray, float, shape (N,)
        Peak apparent heights (m); negative for pits.
    sigma : float
        Gaussian standard deviation (canvas pixels).
    species : int
        Code from :data:`SPECIES`.
    """

    name: str
    yx: np.ndarray
    amp: np.ndarray
    sigma: float
    species: int = 0


@dataclass
class Surface:
    """A model surface on a canvas.

    Attributes
    ----------
    kind : str
        One of :data:`SURFACES`.
    shape : (int, int)
        Canvas shape (rows, cols).
    pixel_size : float
        Canvas pixel size (m).
    terrace : ndarray, float, shape (Hc, Wc)
        Background height (m): terrace levels times step height plus smooth modulations.
    level : ndarray, int, shape (Hc, Wc)
        Terrace index (0 = lowest), used to keep feature sites off step edges.
    layers : list of GaussianLayer
    sites : dict
        ``feature -> (peak_yx [M, 2], mid_yx [M, 2])`` in canvas pixels.
    spacing : dict
        ``feature -> characteristic distance (m)`` used by the noise-visibility rule.
    params : dict
        JSON-serialisable generating parameters.
    """

    kind: str
    shape: tuple[int, int]
    pixel_size: float
    terrace: np.ndarray
    level: np.ndarray
    layers: list[GaussianLayer] = field(default_factory=list)
    sites: dict = field(default_factory=dict)
    spacing: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def atoms_array(self, origin: tuple[float, float], extent: tuple[int, int]) -> np.ndarray:
        """All Gaussian features inside an image window, in metres.

        Parameters
        ----------
        origin : (float, float)
            Canvas pixel ``(row, col)`` of the image's pixel (0, 0).
        extent : (int, int)
            Image shape (rows, cols).

        Returns
        -------
        ndarray, float32, shape (N, 4)
            Columns ``x (m), y (m), z (m), species``: position relative to the centre of image
            pixel (0, 0) (x along a scan line, y down the lines), apparent peak height including
            the terrace, and the species code of :data:`SPECIES`.
        """
        rows = []
        for layer in self.layers:
            if len(layer.amp) == 0:
                continue
            y = layer.yx[:, 0] - origin[0]
            x = layer.yx[:, 1] - origin[1]
            keep = (y >= -0.5) & (y < extent[0] - 0.5) & (x >= -0.5) & (x < extent[1] - 0.5)
            if not keep.any():
                continue
            iy = np.clip(np.rint(layer.yx[keep, 0]).astype(int), 0, self.shape[0] - 1)
            ix = np.clip(np.rint(layer.yx[keep, 1]).astype(int), 0, self.shape[1] - 1)
            z = layer.amp[keep] + self.terrace[iy, ix]
            sp = np.full(keep.sum(), layer.species, float)
            rows.append(np.stack([x[keep] * self.pixel_size, y[keep] * self.pixel_size, z, sp], 1))
        if not rows:
            return np.zeros((0, 4), np.float32)
        return np.concatenate(rows).astype(np.float32)


# ----------------------------------------------------------------------------- rendering

#: Layers with at most this many features are rendered directly in real space (exact Gaussians on
#: their truncated support) instead of by splatting and an FFT: adsorbates, pits and dangling
#: bonds are few, and one FFT costs more than a few dozen small outer products.
SPARSE_LAYER_MAX = 48
#: Gaussians rendered in real space are truncated at this many standard deviations.
GAUSS_TRUNCATE = 4.0


@lru_cache(maxsize=64)
def freq_vectors(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """1-D spatial frequencies (cycles per pixel) of an ``rfft2`` of ``shape``: ``ky [H]``, ``kx [W//2+1]``.

    Cached per shape (read-only arrays): canvases come from :func:`scipy.fft.next_fast_len`, so
    only a few shapes occur.
    """
    ky = sfft.fftfreq(shape[0])
    kx = sfft.rfftfreq(shape[1])
    ky.setflags(write=False)
    kx.setflags(write=False)
    return ky, kx


def freq_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies (cycles per pixel) of an ``rfft2`` of ``shape``: ``ky [H,1]``, ``kx [1,W//2+1]``."""
    ky, kx = freq_vectors(tuple(shape))
    return ky[:, None], kx[None, :]


def splat(shape: tuple[int, int], yx: np.ndarray, weights: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Bilinear splatting of weighted points onto a grid (points outside are dropped).

    Parameters
    ----------
    shape : (int, int)
    yx : ndarray, shape (N, 2)
        Positions in pixels.
    weights : ndarray, shape (N,)
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    ndarray, ``dtype``, shape ``shape``
        The sum of the weights is preserved for points at least one pixel inside the grid.
    """
    h, w = shape
    if len(weights) == 0:
        return np.zeros(shape, dtype)
    y0 = np.floor(yx[:, 0]).astype(np.int64)
    x0 = np.floor(yx[:, 1]).astype(np.int64)
    fy = yx[:, 0] - y0
    fx = yx[:, 1] - x0
    # the four corners of every point in one bincount
    idx = np.concatenate([y0 * w + x0, y0 * w + x0 + 1, (y0 + 1) * w + x0, (y0 + 1) * w + x0 + 1])
    yy = np.concatenate([y0, y0, y0 + 1, y0 + 1])
    xx = np.concatenate([x0, x0 + 1, x0, x0 + 1])
    wt = np.concatenate([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]) * np.tile(weights, 4)
    ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    out = np.bincount(idx[ok], weights=wt[ok], minlength=h * w)
    return out.reshape(shape).astype(dtype, copy=False)


def render_gaussians(out: np.ndarray, yx: np.ndarray, amp: np.ndarray, sigma: float,
                     truncate: float = GAUSS_TRUNCATE) -> np.ndarray:
    """Add ``amp_i exp(-|r - r_i|^2 / (2 sigma^2))`` to ``out`` in place, each on its truncated support.

    Parameters
    ----------
    out : ndarray, float, shape (H, W)
        Grid to add to (pixel centres at integer coordinates).
    yx : ndarray, shape (N, 2)
        Centres (pixels); features near or beyond the border are clipped, not wrapped.
    amp : ndarray, shape (N,)
        Peak heights.
    sigma : float
        Standard deviation (pixels).

    Returns
    -------
    ndarray
        ``out``.
    """
    h, w = out.shape
    s = max(float(sigma), 1e-3)
    r = int(np.ceil(truncate * s))
    inv = -0.5 / (s * s)
    for (cy, cx), a in zip(yx, amp):
        y0, y1 = max(0, int(np.floor(cy)) - r), min(h, int(np.floor(cy)) + r + 2)
        x0, x1 = max(0, int(np.floor(cx)) - r), min(w, int(np.floor(cx)) + r + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        gy = np.exp(inv * (np.arange(y0, y1) - cy) ** 2)
        gx = np.exp(inv * (np.arange(x0, x1) - cx) ** 2)
        out[y0:y1, x0:x1] += (a * gy)[:, None] * gx[None, :]
    return out


def gaussian_transfer(shape: tuple[int, int], sigma: float, dtype=np.float64) -> np.ndarray:
    """rfft2-domain transfer function of a unit-sum isotropic Gaussian of ``sigma`` pixels.

    Separable: the outer product of two 1-D Gaussians in frequency, shape (H, W//2+1).
    """
    ky, kx = freq_vectors(tuple(shape))
    c = -2.0 * np.pi**2 * sigma**2
    return np.multiply.outer(np.exp(c * ky**2).astype(dtype), np.exp(c * kx**2).astype(dtype))


def height_spectrum(surface: Surface, dtype=np.float32) -> np.ndarray:
    """``rfft2`` of the apparent height map of ``surface`` (complex, shape (Hc, Wc//2+1)).

    Dense layers (lattices) are splatted bilinearly and blurred in Fourier space; sparse layers (at
    most :data:`SPARSE_LAYER_MAX` features: adsorbates, pits, dangling bonds) are rendered exactly
    in real space onto the terrace first. ``dtype`` (float32 by default) sets the FFT precision.
    """
    base = np.array(surface.terrace, dtype=dtype)
    dense = []
    for layer in surface.layers:
        if len(layer.amp) == 0:
            continue
        if len(layer.amp) <= SPARSE_LAYER_MAX:
            render_gaussians(base, layer.yx, layer.amp, layer.sigma)
        else:
            dense.append(layer)
    spec = sfft.rfft2(base)
    for layer in dense:
        s = max(layer.sigma, 1e-3)
        # a unit-sum Gaussian of sigma s has peak 1/(2 pi s^2): scale so the peak equals amp
        grid = splat(surface.shape, layer.yx, layer.amp * (2.0 * np.pi * s * s), dtype)
        spec += sfft.rfft2(grid) * gaussian_transfer(surface.shape, s, dtype)
    return spec


def height_map(surface: Surface) -> np.ndarray:
    """The apparent height (m) of ``surface`` on its canvas, float64 [Hc, Wc]."""
    return sfft.irfft2(height_spectrum(surface, np.float64), s=surface.shape)


# ----------------------------------------------------------------------------- building blocks

def _lattice_points(shape, centre, a1, a2, basis, origin) -> tuple[np.ndarray, np.ndarray]:
    """Points ``origin + i a1 + j a2 + b`` covering a canvas. Returns (yx [N,2], basis index [N])."""
    diag = np.hypot(*shape) / 2 + 2
    la, lb = np.linalg.norm(a1), np.linalg.norm(a2)
    sin = abs(a1[0] * a2[1] - a1[1] * a2[0]) / (la * lb)
    ni = int(np.ceil(diag / (la * sin))) + 1
    nj = int(np.ceil(diag / (lb * sin))) + 1
    i, j = np.meshgrid(np.arange(-ni, ni + 1), np.arange(-nj, nj + 1), indexing="ij")
    base = centre + origin + i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    pts, idx = [], []
    for k, b in enumerate(basis):
        p = base + b
        ok = (p[:, 0] > -2) & (p[:, 0] < shape[0] + 1) & (p[:, 1] > -2) & (p[:, 1] < shape[1] + 1)
        pts.append(p[ok])
        idx.append(np.full(ok.sum(), k))
    return np.concatenate(pts), np.concatenate(idx)


def _level_at(level: np.ndarray, yx: np.ndarray) -> np.ndarray:
    iy = np.clip(np.rint(yx[:, 0]).astype(int), 0, level.shape[0] - 1)
    ix = np.clip(np.rint(yx[:, 1]).astype(int), 0, level.shape[1] - 1)
    return level[iy, ix]


def terrace_levels(rng: np.random.Generator, shape: tuple[int, int], pixel_size: float,
                   p_steps: float) -> tuple[np.ndarray, dict]:
    """Terrace index map with meandering steps (a vicinal staircase, sometimes with islands).

    Returns
    -------
    level : ndarray, int, shape ``shape``
        0 for the lowest terrace.
    params : dict
    """
    if rng.random() >= p_steps:
        return np.zeros(shape, np.int16), {"n_steps": 0}
    h, w = shape
    fov = max(h, w) * pixel_size
    width = fov * rng.uniform(0.25, 1.2)                  # mean terrace width (m)
    ang = rng.uniform(0, 2 * np.pi)
    y = np.arange(h, dtype=float) * pixel_size
    x = np.arange(w, dtype=float) * pixel_size
    phi = (np.cos(ang) * x)[None, :] / width + (np.sin(ang) * y)[:, None] / width
    meander = rng.uniform(0.05, 0.6)
    for _ in range(3):
        kk = rng.uniform(0.5, 4) * 2 * np.pi / fov
        th = rng.uniform(0, 2 * np.pi)
        # sin(a(x) + b(y)) = sin a cos b + cos a sin b: two outer products instead of a 2-D sin
        ax = kk * np.cos(th) * x + rng.uniform(0, 2 * np.pi)
        by = kk * np.sin(th) * y
        phi += (meander / 3) * (np.cos(by)[:, None] * np.sin(ax)[None, :] + np.sin(by)[:, None] * np.cos(ax)[None, :])
    phi += rng.uniform(0, 1)
    level = np.floor(phi).astype(np.int16)
    level -= level.min()
    return level, {"n_steps": int(level.max()), "terrace_width_m": float(width),
                   "step_angle_rad": float(ang), "meander": float(meander)}


def blob_layers(rng: np.random.Generator, shape: tuple[int, int], pixel_size: float,
                density: float, scale: float) -> tuple[list[GaussianLayer], dict]:
    """Adsorbates and clusters (bright, three size classes) and pits (dark).

    Parameters
    ----------
    density : float
        Mean number of bright adsorbates per nm^2.
    scale : float
        Typical adsorbate height (m).
    """
    area_nm2 = shape[0] * shape[1] * (pixel_size * 1e9) ** 2
    layers = []
    counts = {}
    for name, sig_m, frac in (("adsorbates_small", 3.5e-10, 0.5), ("adsorbates", 7e-10, 0.35),
                              ("clusters", 14e-10, 0.15)):
        n = rng.poisson(density * frac * area_nm2)
        yx = rng.uniform([0, 0], shape, size=(n, 2))
        amp = scale * rng.uniform(0.6, 2.0, n) * (sig_m / 7e-10) ** 0.5
        layers.append(GaussianLayer(name, yx, amp, sig_m / pixel_size, SPECIES["adsorbate"]))
        counts[name] = int(n)
    n = rng.poisson(density * 0.3 * area_nm2)
    yx = rng.uniform([0, 0], shape, size=(n, 2))
    layers.append(GaussianLayer("pits", yx, -scale * rng.uniform(0.4, 1.0, n), 6e-10 / pixel_size,
                                SPECIES["pit"]))
    counts["pits"] = int(n)
    return layers, counts


# ----------------------------------------------------------------------------- surfaces

def hsi100(rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, *,
           p_steps: float = 0.4, adsorbate_density: float | None = None) -> Surface:
    """Hydrogen-terminated Si(100)-2x1.

    Dimer rows ``2a = 7.68 Å`` apart run along a direction that turns by 90 degrees on every
    single-atom step (1.36 Å). Each dimer is two Gaussian atoms 2.4 Å apart across the row;
    dimers are ``a = 3.84 Å`` apart along it. Defects: missing dimers (atoms removed), dangling
    bonds (bright ~1 nm protrusions on one atom), adsorbates/clusters and pits.

    Feature sites (see labels): ``individual_atoms`` = atom vs dimer centre, ``dimers`` = dimer
    centre vs half-way to the next dimer along the row, ``rows`` = dimer centre vs the trough.
    """
    p = pixel_size
    level, tparams = terrace_levels(rng, shape, p, p_steps)
    A = rng.uniform(0.3e-10, 0.8e-10)                          # atom apparent height (m)
    sig_orb = rng.uniform(0.55e-10, 0.8e-10)
    bond = SI_DIMER_BOND * rng.uniform(0.9, 1.1)
    theta0 = rng.uniform(0, np.pi)
    p_missing = rng.uniform(0, 0.08)
    db_density = rng.choice([0.0, rng.uniform(0, 0.03)])      # per dimer
    centre = np.array(shape, float) / 2
    atoms_yx, atoms_amp = [], []
    db_yx = []
    peaks = {"individual_atoms": [], "dimers": [], "rows": []}
    mids = {"individual_atoms": [], "dimers": [], "rows": []}
    a = SI_A / p
    for n in range(int(level.max()) + 1):
        th = theta0 + (n % 2) * np.pi / 2
        u = np.array([np.sin(th), np.cos(th)])                 # along the row (y, x)
        v = np.array([np.cos(th), -np.sin(th)])                # across rows
        origin = rng.uniform(0, 1, 2) @ np.stack([a * u, 2 * a * v])
        dc, _ = _lattice_points(shape, centre, a * u, 2 * a * v, [np.zeros(2)], origin)
        dc = dc[_level_at(level, dc) == n]
        keep = rng.random(len(dc)) >= p_missing
        dc = dc[keep]
        half = 0.5 * bond / p * v
        at = np.concatenate([dc + half, dc - half])
        # tiny per-atom height variation (buckling, electronic inhomogeneity)
        amp = A * (1 + 0.08 * rng.standard_normal(len(at)))
        atoms_yx.append(at)
        atoms_amp.append(amp)
        nd = rng.binomial(len(at), db_density / 2) if len(at) else 0
        if nd:
            db_yx.append(at[rng.choice(len(at), nd, replace=False)])
        # sites (only those whose partner point is on the same terrace are used later)
        peaks["individual_atoms"].append(dc + half)
        mids["individual_atoms"].append(dc)
        peaks["dimers"].append(dc)
        mids["dimers"].append(dc + 0.5 * a * u)
        peaks["rows"].append(dc)
        mids["rows"].append(dc + a * v)
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros((0, 2))  # noqa: E731
    layers = [GaussianLayer("atoms", cat(atoms_yx), np.concatenate(atoms_amp), sig_orb / p,
                            SPECIES["substrate"])]
    dby = cat(db_yx)
    layers.append(GaussianLayer("dangling_bonds", dby, 1.2e-10 * rng.uniform(0.8, 1.5, len(dby)),
                                2.5e-10 / p, SPECIES["dangling_bond"]))
    dens = rng.choice([0.0, 0.003, 0.01, 0.03]) if adsorbate_density is None else adsorbate_density
    blobs, counts = blob_layers(rng, shape, p, dens, 1.3e-10)
    layers += blobs
    terrace = level * SI_STEP
    sites = {k: (cat(peaks[k]), cat(mids[k])) for k in peaks}
    params = {"kind": "hsi100", "atom_height_m": float(A), "orbital_sigma_m": float(sig_orb),
              "dimer_bond_m": float(bond), "row_angle_rad": float(theta0),
              "p_missing_dimer": float(p_missing), "n_dangling_bonds": int(len(dby)),
              "adsorbate_density_nm2": float(dens), **counts, **tparams}
    spacing = {"individual_atoms": bond, "dimers": SI_A, "rows": 2 * SI_A - bond}
    return Surface("hsi100", tuple(shape), p, terrace.astype(float), level, layers, sites, spacing, params)


def _hex_surface(rng, shape, p, kind, a_m, step_m, A, sig_orb, p_steps, extra_terrace=None,
                 adsorbate_density=None, extra_params=None) -> Surface:
    level, tparams = terrace_levels(rng, shape, p, p_steps)
    th = rng.uniform(0, np.pi / 3)
    a = a_m / p
    a1 = a * np.array([np.sin(th), np.cos(th)])
    a2 = a * np.array([np.sin(th + np.pi / 3), np.cos(th + np.pi / 3)])
    centre = np.array(shape, float) / 2
    pts, _ = _lattice_points(shape, centre, a1, a2, [np.zeros(2)], rng.uniform(0, 1, 2) @ np.stack([a1, a2]))
    amp = A * (1 + 0.05 * rng.standard_normal(len(pts)))
    layers = [GaussianLayer("atoms", pts, amp, sig_orb / p, SPECIES["substrate"])]
    dens = rng.choice([0.0, 0.002, 0.01, 0.03]) if adsorbate_density is None else adsorbate_density
    blobs, counts = blob_layers(rng, shape, p, dens, 2e-10)
    layers += blobs
    terrace = level * step_m
    if extra_terrace is not None:
        terrace = terrace + extra_terrace
    sites = {"individual_atoms": (pts, pts + (a1 + a2) / 3)}
    params = {"kind": kind, "lattice_m": float(a_m), "atom_height_m": float(A),
              "orbital_sigma_m": float(sig_orb), "lattice_angle_rad": float(th),
              "adsorbate_density_nm2": float(dens), **counts, **tparams, **(extra_params or {})}
    return Surface(kind, tuple(shape), p, terrace.astype(float), level, layers, sites,
                   {"individual_atoms": a_m / np.sqrt(3)}, params)


def fcc111(rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, metal: str = "au111",
           *, p_steps: float = 0.4) -> Surface:
    """Au(111) or Cu(111): a close-packed hexagonal lattice with a weak corrugation.

    Au(111) also shows the herringbone reconstruction: pairs of 0.15 Å ridges with a 6.3 nm
    period, zig-zagging by 120 degrees every ~25 nm.
    """
    a_m, step_m = FCC111[metal]
    p = pixel_size
    A = rng.uniform(0.05e-10, 0.3e-10)
    extra, ep = None, {}
    if metal == "au111":
        h, w = shape
        y = (np.arange(h) * p)[:, None]
        x = (np.arange(w) * p)[None, :]
        th = rng.uniform(0, np.pi)
        s = np.cos(th) * x + np.sin(th) * y
        t = -np.sin(th) * x + np.cos(th) * y
        zig = 25e-9 * rng.uniform(0.6, 1.4)
        tri = np.abs(((t / zig) % 2.0) - 1.0) * zig * np.tan(np.pi / 6)
        s = s + tri + rng.uniform(0, 6.3e-9)
        period, sep, wr = 6.3e-9, 2.2e-9, 0.8e-9
        d1 = (s % period) - period / 2
        d2 = ((s - sep) % period) - period / 2
        extra = 0.15e-10 * (np.exp(-d1**2 / (2 * wr**2)) + np.exp(-d2**2 / (2 * wr**2)))
        ep = {"herringbone_angle_rad": float(th)}
    return _hex_surface(rng, shape, p, metal, a_m, step_m, A, rng.uniform(0.6e-10, 0.9e-10), p_steps,
                        extra, extra_params=ep)


def hopg(rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, *, p_steps: float = 0.3) -> Surface:
    """HOPG: the 2.46 Å triangular lattice of beta sites seen by STM, 3.35 Å steps, optional moiré."""
    p = pixel_size
    extra, ep = None, {}
    if rng.random() < 0.3:
        h, w = shape
        y = np.arange(h) * p
        x = np.arange(w) * p
        per = rng.uniform(2e-9, 10e-9)
        th = rng.uniform(0, np.pi)
        m = np.zeros(shape)
        for k in range(3):
            ang = th + k * 2 * np.pi / 3
            # cos(a(x) + b(y)) = cos a cos b - sin a sin b: outer products instead of a 2-D cos
            a_ = 2 * np.pi / per * np.cos(ang) * x
            b_ = 2 * np.pi / per * np.sin(ang) * y
            m += np.cos(b_)[:, None] * np.cos(a_)[None, :] - np.sin(b_)[:, None] * np.sin(a_)[None, :]
        extra = rng.uniform(0.2e-10, 0.8e-10) * m / 3
        ep = {"moire_period_m": float(per)}
    return _hex_surface(rng, shape, p, "hopg", HOPG_A, HOPG_STEP, rng.uniform(0.3e-10, 1.0e-10),
                        rng.uniform(0.5e-10, 0.7e-10), p_steps, extra, extra_params=ep)


def lattice2d(rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, *,
              p_steps: float = 0.3) -> Surface:
    """A generic 2-D lattice: random cell (a in 2.5-6 Å, b/a in 0.8-1.6, gamma in 60-120 deg), one or two atoms."""
    p = pixel_size
    level, tparams = terrace_levels(rng, shape, p, p_steps)
    a_m = rng.uniform(2.5e-10, 6e-10)
    b_m = a_m * rng.uniform(0.8, 1.6)
    gamma = rng.choice([np.pi / 2, np.pi / 3, rng.uniform(np.pi / 3, 2 * np.pi / 3)])
    th = rng.uniform(0, np.pi)
    a1 = a_m / p * np.array([np.sin(th), np.cos(th)])
    a2 = b_m / p * np.array([np.sin(th + gamma), np.cos(th + gamma)])
    two = rng.random() < 0.4
    basis = [np.zeros(2)] + ([rng.uniform(0.3, 0.7) * (a1 + a2)] if two else [])
    centre = np.array(shape, float) / 2
    pts, idx = _lattice_points(shape, centre, a1, a2, basis, rng.uniform(0, 1, 2) @ np.stack([a1, a2]))
    A = rng.uniform(0.2e-10, 0.8e-10)
    amp = A * np.where(idx == 0, 1.0, rng.uniform(0.4, 1.0)) * (1 + 0.05 * rng.standard_normal(len(pts)))
    nn = min(a_m, b_m)
    sig_orb = nn * rng.uniform(0.15, 0.25)
    layers = [GaussianLayer("atoms", pts, amp, sig_orb / p, SPECIES["substrate"])]
    dens = rng.choice([0.0, 0.005, 0.02])
    blobs, counts = blob_layers(rng, shape, p, dens, 2e-10)
    layers += blobs
    main = pts[idx == 0]
    # the mid point: half-way to the nearest lattice neighbour (never a basis atom when two=False)
    short = a1 if a_m <= b_m else a2
    sites = {"individual_atoms": (main, main + 0.5 * short)}
    params = {"kind": "lattice", "a_m": float(a_m), "b_m": float(b_m), "gamma_rad": float(gamma),
              "lattice_angle_rad": float(th), "two_atom_basis": bool(two), "atom_height_m": float(A),
              "orbital_sigma_m": float(sig_orb), "adsorbate_density_nm2": float(dens), **counts, **tparams}
    return Surface("lattice", tuple(shape), p, (level * 2e-10).astype(float), level, layers, sites,
                   {"individual_atoms": nn / 2 if two else nn}, params)


def make_surface(kind: str, rng: np.random.Generator, shape: tuple[int, int], pixel_size: float,
                 p_steps: float = 0.4) -> Surface:
    """Build a surface by name (one of :data:`SURFACES`)."""
    if kind == "hsi100":
        return hsi100(rng, shape, pixel_size, p_steps=p_steps)
    if kind in FCC111:
        return fcc111(rng, shape, pixel_size, kind, p_steps=p_steps)
    if kind == "hopg":
        return hopg(rng, shape, pixel_size, p_steps=p_steps)
    if kind == "lattice":
        return lattice2d(rng, shape, pixel_size, p_steps=p_steps)
    from ...errors import InputError

    raise InputError(f"unknown SPM surface {kind!r}; choose one of {', '.join(SURFACES)}")
