"""Rendering of uploads for annotators: X-flattened lines and robust percentile contrast."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import InputError, ReadError
from scopenet.label.render import png_bytes, render_file, spm_contrast


def lattice(n=64):
    y, x = np.mgrid[0:n, 0:n]
    return np.cos(x * 0.7) * np.cos(y * 0.7)


def test_line_offsets_and_tilts_are_removed():
    z = lattice()
    r = np.random.default_rng(0)
    scarred = z + r.normal(0, 5, (64, 1)) + r.normal(0, 0.1, (64, 1)) * np.arange(64)[None, :]
    a, b = spm_contrast(z), spm_contrast(scarred)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # without flattening the line offsets dominate the picture
    c = spm_contrast(scarred, flatten=False)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 20


def test_robust_percentiles_keep_contrast_despite_a_spike():
    z = lattice()
    z[10, 10] = 1e6
    g = spm_contrast(z)
    assert g.dtype == np.uint8 and g[10, 10] == 255
    assert np.percentile(g, 99) - np.percentile(g, 1) > 200


def test_nan_lines_and_bad_input():
    z = lattice()
    z[:5] = np.nan  # lines never scanned
    g = spm_contrast(z)
    assert (g[:5] == 0).all() and g[5:].max() == 255
    with pytest.raises(InputError):
        spm_contrast(np.full((4, 4), np.nan))
    with pytest.raises(InputError):
        spm_contrast(np.zeros(5))
    assert (spm_contrast(np.zeros((4, 4))) == 0).all()  # flat image: no division by zero


def test_render_file_png_and_errors(tmp_path):
    from PIL import Image

    p = tmp_path / "a.npy"
    np.save(p, lattice(48)[:40])
    png, w, h = render_file(p)
    assert (w, h) == (48, 40)
    import io

    im = Image.open(io.BytesIO(png))
    assert im.size == (48, 40) and im.mode == "L"
    assert png_bytes(np.zeros((2, 3), np.uint8))[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ReadError, match="bad.npy"):
        render_file(bad)


@pytest.mark.shared
def test_render_real_sxm():
    from tests.conftest import shared_path

    png, w, h = render_file(shared_path("fixtures", "sxm", "Si_7x7_012.sxm"))
    assert png[:4] == b"\x89PNG" and w > 16 and h > 16


def test_npy_goes_through_scopenet_read(tmp_path):
    """An .npy written by scopenet keeps its sidecar: an electron micrograph is not X-flattened."""
    import io

    from PIL import Image

    import scopenet as sn
    from scopenet.image.micrograph import Micrograph

    r = np.random.default_rng(1)
    z = (lattice(40) + r.normal(0, 3, (40, 1))).astype(np.float32)  # strong line offsets
    sn.write(Micrograph(z, modality="TEM"), tmp_path / "em.npy")
    np.save(tmp_path / "plain.npy", z)
    em = np.asarray(Image.open(io.BytesIO(render_file(tmp_path / "em.npy")[0])))
    plain = np.asarray(Image.open(io.BytesIO(render_file(tmp_path / "plain.npy")[0])))
    np.testing.assert_array_equal(em, spm_contrast(z, flatten=False))
    np.testing.assert_array_equal(plain, spm_contrast(z, flatten=True))
    assert np.abs(em.astype(int) - plain.astype(int)).mean() > 20


def test_jpeg_and_bmp_pictures_are_read_with_pillow(tmp_path):
    import io

    from PIL import Image

    g = (np.arange(30 * 20).reshape(20, 30) % 256).astype(np.uint8)
    for name in ("a.bmp", "b.jpg"):
        Image.fromarray(g).save(tmp_path / name)
        png, w, h = render_file(tmp_path / name)
        assert (w, h) == (30, 20) and Image.open(io.BytesIO(png)).size == (30, 20)
    bad = tmp_path / "broken.jpeg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ReadError, match="broken.jpeg"):
        render_file(bad)
    with pytest.raises(ReadError, match="unsupported|format"):
        (tmp_path / "notes.txt").write_text("hello")
        render_file(tmp_path / "notes.txt")
