"""The demo section reads, flattens and reports every bundled sample."""
from __future__ import annotations

import numpy as np
import pytest

import scopenet as sn
from scopenet.io.demo_section import is_spm, section
from scopenet.io.registry import find_format
from scopenet.report import Report
from scopenet.samples import sample_files


@pytest.mark.slow
def test_section_runs_on_bundled_samples(tmp_path):
    from pathlib import Path

    if find_format(Path("x.tif")) is None or find_format(Path("x.tif"), for_writing=True) is None:
        pytest.skip("TIFF reader/writer not registered yet")
    rep = Report("t")
    samples = sample_files(tmp_path)
    section(rep, tmp_path, samples)
    html = rep.render()
    assert "stm-steps.tif" in html and "haadf-lattice.tif" in html
    assert "40 pm" in html and "20 pm" in html  # calibration came through the reader (0.04, 0.02 nm)
    assert html.count("<img") >= 2
    out = tmp_path / "stm-steps-flattened.tif"
    flat = sn.read(out)
    raw = sn.read(samples["stm-steps"])
    assert flat.pixel_size == pytest.approx(raw.pixel_size)
    assert np.nanstd(flat.data) < np.nanstd(raw.data)
    assert not (tmp_path / "haadf-lattice-flattened.tif").exists()


def test_is_spm():
    img = sn.Micrograph(np.zeros((4, 4)), signal="HAADF", modality="STEM")
    assert not is_spm(img, "haadf-lattice")
    assert is_spm(img, "stm-steps")
    assert is_spm(sn.Micrograph(np.zeros((4, 4)), signal="Z", scan_direction="forward/up"))
