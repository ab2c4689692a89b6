"""The bundled sample files: present, small, calibrated, with the defects the demo shows."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scopenet.errors import ScopenetError
from scopenet.image import spm as pp
from scopenet.samples import list_samples, sample_files, sample_path


def test_samples_present_and_small(tmp_path):
    files = sample_files(tmp_path)
    assert {"stm-steps", "haadf-lattice"} <= set(files)
    assert set(list_samples()) == set(files)
    total = sum(p.stat().st_size for p in files.values())
    assert total < 1.5 * 2**20
    for p in files.values():
        assert p.is_file()


def test_stm_sample_has_tilt_offsets_and_scar():
    z = tifffile.imread(sample_path("stm-steps")).astype(np.float64)
    assert z.shape == (256, 256) and np.isfinite(z).all()
    with tifffile.TiffFile(sample_path("stm-steps")) as tf:
        xres = tf.pages[0].tags["XResolution"].value
    assert xres[1] / xres[0] == pytest.approx(0.04, rel=1e-3)  # nm per pixel
    assert 1e-10 < np.ptp(z) < 2e-9  # heights in metres
    scars = pp.detect_scars(pp.flatten_lines(z, "median"))
    rows = np.unique(np.nonzero(scars)[0])
    assert 171 in rows
    # line flattening removes most of the line-to-line jumps
    jump = lambda a: np.abs(np.median(np.diff(a, axis=0), axis=1)).mean()  # noqa: E731
    assert jump(z) > 2e-12 and jump(pp.align_rows(z)) < 0.1 * jump(z)


def test_haadf_sample_is_poisson_counts():
    z = tifffile.imread(sample_path("haadf-lattice"))
    assert z.shape == (256, 256) and z.min() >= 0
    assert np.array_equal(z, np.round(z))


def test_unknown_sample_name():
    with pytest.raises(ScopenetError, match="available"):
        sample_path("nope")
