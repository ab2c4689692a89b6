"""``scopenet superres``: the real command in a subprocess."""
from __future__ import annotations

import numpy as np

import scopenet as sn
from scopenet.image.micrograph import Axis, Micrograph

from ...cli._run import scopenet


def test_superres_cli_upsamples_keeps_the_field_of_view_and_goes_on_after_a_bad_file(tmp_path):
    a = np.random.default_rng(0).random((24, 20)).astype(np.float32)
    sn.write(Micrograph(a, axes=[Axis("y", 24, 1e-9), Axis("x", 20, 1e-9)]), tmp_path / "c.tif")
    r = scopenet("superres", tmp_path / "c.tif", tmp_path / "missing.tif", "-o", tmp_path / "out", "-f", "2")
    assert r.returncode == 1 and "missing.tif" in r.output and "Traceback" not in r.output
    out = sn.read(tmp_path / "out" / "c-x2.tif")
    assert out.shape == (48, 40)
    assert out.axes[-1].scale == np.float32(0.5e-9) or abs(out.axes[-1].scale - 0.5e-9) < 1e-15
    ref = sn.super_resolve(a, factor=2)
    np.testing.assert_allclose(out.data, ref, atol=1e-5)
    assert [p["operation"] for p in out.provenance][-2:] == ["super_resolve", "read"]


def test_superres_cli_refuses_a_bad_factor(tmp_path):
    r = scopenet("superres", tmp_path / "x.tif", "-o", tmp_path / "o.tif", "--factor", "9")
    assert r.returncode != 0 and "factor" in r.output.lower() and "Traceback" not in r.output
