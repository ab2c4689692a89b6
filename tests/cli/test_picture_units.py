"""`scopenet info` writes one unit style; `scopenet preview` draws the scale bar (real command, subprocess)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import scopenet as sn
from scopenet.image.micrograph import Axis, Micrograph

from ._run import scopenet


def write_scan(path, scale=7.8125e-10, unit="m", n=64):
    """A calibrated STM-like height image in metres (Si(111)-like pixel of 781.25 pm) as TIFF."""
    yy, xx = np.mgrid[0:n, 0:n]
    z = 4.3e-8 + 2e-10 * np.sin(xx / 3.0) * np.cos(yy / 3.0)
    img = Micrograph(z, axes=[Axis("y", n, scale, unit=unit), Axis("x", n, scale, unit=unit)],
                     signal="height", signal_unit="m", modality="STM", scan_direction="forward/up")
    sn.write(img, path)
    return path


def table_row(stdout: str) -> list[str]:
    rows = [r for r in stdout.splitlines() if r.startswith("│")]
    assert len(rows) == 1, stdout
    return [c.strip() for c in rows[0].strip("│").split("│")]


def test_info_writes_pixel_size_and_values_in_pm_or_nm(tmp_path):
    r = scopenet("info", write_scan(tmp_path / "scan.tif"))
    assert r.returncode == 0, r.output
    cells = table_row(r.stdout)
    assert "781.2 pm" in cells                      # not 7.812e-10 m
    assert "50 nm x 50 nm" in cells                 # field of view
    assert cells[1] == "height [nm]"
    lo, hi, mean = cells[-3:]
    assert all(re.fullmatch(r"-?\d+\.\d+ nm", c) for c in (lo, hi, mean)), cells
    assert float(lo.split()[0]) == pytest.approx(42.8, abs=0.01) and float(hi.split()[0]) == pytest.approx(43.2, abs=0.01)
    assert not re.search(r"\de[-+]\d", r.stdout), r.stdout   # no exponent anywhere in the table


def test_info_nm_axes_and_uncalibrated(tmp_path):
    r = scopenet("info", write_scan(tmp_path / "nm.tif", scale=0.0390625, unit="nm"))
    assert r.returncode == 0, r.output
    assert "39.06 pm" in table_row(r.stdout)
    np.save(tmp_path / "plain.npy", np.random.default_rng(0).random((16, 16)).astype(np.float32))
    r = scopenet("info", tmp_path / "plain.npy")
    assert r.returncode == 0, r.output
    assert "uncalibrated" in table_row(r.stdout)


def test_preview_command_draws_scale_and_height_bar(tmp_path):
    from PIL import Image

    src = write_scan(tmp_path / "scan.tif")
    r = scopenet("preview", src, "-o", tmp_path / "scan.png")
    assert r.returncode == 0, r.output
    with Image.open(tmp_path / "scan.png") as im:
        w, h = im.size
        a = np.asarray(im.convert("RGB")).astype(int)
    assert h == 256 and w > h                       # 64 px image shown at 256 px, colour bar beside it
    white = (a[:, :256] >= 250).all(axis=2)
    runs = [max((len(m) for m in "".join("1" if v else "0" for v in row).split("0")), default=0) for row in white]
    # 50 nm wide image: a 10 nm bar = 12.8 image px = 51.2 PNG px
    assert abs(max(runs) - 51.2) <= 2
