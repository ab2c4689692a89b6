"""The adaptive-scan figures: PNG bytes, also written (folders made) where a path is given."""
import numpy as np

from scopenet.tasks.adaptive_scan.demo import curves_png, paths_png


def test_figures_return_png_bytes_and_write_them(tmp_path):
    rng = np.random.default_rng(0)
    crops = rng.random((2, 24, 24)).astype(np.float32)
    scans = {"adaptive": {"points": [np.cumsum(rng.normal(0, 2, (30, 2)), 0) + 12 for _ in range(2)],
                          "completion": rng.random((2, 24, 24))}}
    curves = {"m": {"step": [1, 2, 3], "gen_mse": [0.5, None, 0.2], "coverage": [0.01, 0.02, 0.03],
                    "off_rate": [0.1, 0.2, None]}}
    p = paths_png(crops, scans, tmp_path / "a" / "paths.png", n=2)
    c = curves_png(curves, tmp_path / "curves.png")
    for data, f in ((p, tmp_path / "a" / "paths.png"), (c, tmp_path / "curves.png")):
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert f.read_bytes() == data
    assert paths_png(crops, scans, n=1) != p  # fewer rows: another figure, nothing written
