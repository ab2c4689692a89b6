"""The second atom-image simulator (abTEM potentials and probe, incoherent HAADF): truth, dose, errors."""
import numpy as np
import pytest

pytest.importorskip("abtem", reason="abTEM (the sim extra) is not installed")

from scopenet.errors import InputError  # noqa: E402
from scopenet.simulate.em.atoms_abtem import CRYSTALS, abtem_atom_image, projected_scene  # noqa: E402
from scopenet.simulate.em.lattice import structure_library  # noqa: E402

pytestmark = pytest.mark.slow


def _peak_offsets(img, atoms, r=2):
    """Offset (px) of the intensity-weighted centre of the 5x5 window around each interior truth position."""
    out = []
    for y, x in atoms:
        iy, ix = int(round(y)), int(round(x))
        if r <= iy < img.shape[0] - r and r <= ix < img.shape[1] - r:
            w = img[iy - r:iy + r + 1, ix - r:ix + r + 1].astype(float)
            w = np.maximum(w - np.median(img), 0)
            yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
            out.append([(w * yy).sum() / w.sum() + iy - y, (w * xx).sum() / w.sum() + ix - x])
    return np.asarray(out)


def test_truth_sits_on_the_columns_of_the_noise_free_image():
    ex = abtem_atom_image(np.random.default_rng(3), 96, name="Cu [100]", dose=500, spacing_px=12, distortion=False)
    off = _peak_offsets(ex.clean, ex.atoms)
    assert len(off) > 20
    # symmetric columns: the local centroid is the column centre (the 5x5 window is on the pixel grid, so
    # it is biased toward the nearest pixel by at most a fraction of a pixel; its mean is unbiased)
    assert np.abs(off.mean(0)).max() < 0.05
    assert np.sqrt((off ** 2).sum(1)).max() < 0.6
    # every bright local maximum of the clean image has a truth column within 1 px
    from scipy.ndimage import maximum_filter
    c = ex.clean
    peaks = np.argwhere((c == maximum_filter(c, 5)) & (c > 0.5 * c.max()))
    peaks = peaks[(peaks > 3).all(1) & (peaks < 92).all(1)]
    d = np.hypot(*(peaks[:, None, :] - ex.atoms[None, :, :]).transpose(2, 0, 1)).min(1)
    assert len(peaks) > 20 and d.max() < 1.0


def test_dose_is_the_typical_peak_and_noise_is_poisson():
    ex = abtem_atom_image(np.random.default_rng(4), 96, name="Pt [110]", dose=200, spacing_px=8, distortion=False)
    peaks = ex.clean[np.round(ex.atoms[:, 0]).astype(int), np.round(ex.atoms[:, 1]).astype(int)]
    assert 120 < np.median(peaks) < 260
    assert np.all(ex.image == np.round(ex.image)) and ex.image.min() >= 0
    assert ex.params["simulator"] == "abtem-incoherent" and ex.params["structure"] == "Pt [110]"


def test_spacing_and_calibration():
    ex = abtem_atom_image(np.random.default_rng(5), 128, name="Ge [110]", dose=1000, spacing_px=10, distortion=False)
    d = np.hypot(*(ex.atoms[:, None, :] - ex.atoms[None, :, :]).transpose(2, 0, 1))
    d[d == 0] = np.inf
    # the Ge [110] dumbbell (a / 4 = 1.415 Å in projection) is the smallest spacing, drawn at 10 px
    assert d.min(1).min() == pytest.approx(10.0, abs=0.2)
    assert ex.pixel_size_m == pytest.approx(5.658e-10 / 4 / 10, rel=1e-3)


def test_same_seed_same_image_and_distortion_moves_truth():
    a = abtem_atom_image(np.random.default_rng(6), 64, name="WSe2 [001]", dose=100, spacing_px=9)
    b = abtem_atom_image(np.random.default_rng(6), 64, name="WSe2 [001]", dose=100, spacing_px=9)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.atoms, b.atoms)


def test_crystals_are_not_training_structures_and_bad_names_fail():
    train = {c.name.split(" ")[0] for c in structure_library()} - {"Cu", "WSe2", "GaN"}
    assert not any(name.split(" ")[0] in train for name in CRYSTALS)
    with pytest.raises(InputError, match="unknown crystal"):
        projected_scene("Unobtainium [111]")
    with pytest.raises(InputError, match="at least 16"):
        abtem_atom_image(np.random.default_rng(0), 8, name="Cu [100]")
    with pytest.raises(InputError, match="dose must be"):
        abtem_atom_image(np.random.default_rng(0), 64, name="Cu [100]", dose=float("nan"))
    with pytest.raises(InputError, match="spacing_px must be"):
        abtem_atom_image(np.random.default_rng(0), 64, name="Cu [100]", spacing_px=40)


def test_light_columns_between_heavy_ones_are_faint_not_truth():
    # BaTiO3 [100]: Ba and Ti-O columns are the truth; the pure-O columns, lifted by their neighbours'
    # tails but with little contrast of their own, are listed as faint
    ex = abtem_atom_image(np.random.default_rng(8), 96, name="BaTiO3 [100]", dose=500, spacing_px=8, distortion=False)
    faint = ex.params["faint_columns"]
    assert len(faint) > 0.8 * len(ex.atoms)
    # every column is at a multiple of a / 2 = 2.0 Å = 8 px from its neighbours; truth and faint columns interleave
    d = np.hypot(*(faint[:, None, :] - ex.atoms[None, :, :]).transpose(2, 0, 1)).min(1)
    assert np.median(d) == pytest.approx(8.0, abs=0.5)
