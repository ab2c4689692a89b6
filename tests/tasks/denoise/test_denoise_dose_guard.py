"""The known-dose guard: with the dose given, a denoiser removes no more than the shot noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from typer.testing import CliRunner

import scopenet as sn
from scopenet.cli.main import app
from scopenet.errors import InputError
from scopenet.tasks.denoise.dose import shot_noise_guard
from scopenet.tasks.denoise.model import Denoiser

runner = CliRunner()


def _scene(seed: int = 0, size: int = 96) -> np.ndarray:
    """Smooth background plus fine texture (detail an over-smoothing filter destroys), in [0.2, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    smooth = 0.5 + 0.2 * np.sin(2 * np.pi * xx) * np.cos(2 * np.pi * yy)
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.7)
    s = smooth + 0.15 * texture / texture.std()
    return np.clip(s, 0.2, 1.0)


def _counts(s: np.ndarray, mean_counts: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lam = s * mean_counts / s.mean()
    return rng.poisson(lam).astype(np.float64), lam


@pytest.mark.parametrize("mean_counts", [500.0, 5000.0])
def test_guard_never_worse_than_input_against_an_over_smoothing_filter(mean_counts):
    s = _scene()
    x, lam = _counts(s, mean_counts)
    f = ndimage.gaussian_filter(x, 3.0)  # takes the texture away with the noise
    out, w = shot_noise_guard(x, f, mean_counts)
    mse = lambda a: float(np.mean((a - lam) ** 2))  # noqa: E731
    assert mse(f) > mse(x)  # the filter alone is worse than doing nothing at these doses
    assert mse(out) < mse(x)
    assert mse(out) < mse(f)
    assert 0 < w < 1
    # the weight is the discrepancy ratio v / R with v = mean(x)^2 / dose
    v = x.mean() ** 2 / mean_counts
    assert w == pytest.approx(v / np.mean((x - f) ** 2), rel=1e-9)


def test_guard_keeps_a_denoiser_that_removes_only_noise():
    s = _scene(3)
    x, lam = _counts(s, 200.0, seed=4)
    out, w = shot_noise_guard(x, lam, 200.0)  # a perfect denoiser: its residual is all noise
    assert w > 0.9
    assert np.mean((out - lam) ** 2) < 0.05 * np.mean((x - lam) ** 2)


def test_guard_ignores_nan_and_keeps_it():
    s = _scene(5, 48)
    x, _ = _counts(s, 300.0)
    f = ndimage.gaussian_filter(x, 1.0)
    x[3, 4] = np.nan
    out, w = shot_noise_guard(x, f, 300.0)
    assert np.isnan(out[3, 4]) and np.isfinite(np.delete(out.ravel(), 3 * 48 + 4)).all()
    assert 0 <= w <= 1


@pytest.mark.parametrize("dose", [0.0, -3.0, float("nan"), float("inf")])
def test_guard_rejects_bad_dose(dose):
    with pytest.raises(InputError, match="dose"):
        shot_noise_guard(np.ones((8, 8)), np.ones((8, 8)), dose)


def test_guard_rejects_offset_images_and_shape_mismatch():
    with pytest.raises(InputError, match="proportional to counts"):
        shot_noise_guard(-np.ones((8, 8)), -np.ones((8, 8)), 10.0)
    with pytest.raises(InputError, match="shapes differ"):
        shot_noise_guard(np.ones((8, 8)), np.ones((8, 9)), 10.0)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return Denoiser(arch_config={"widths": [8, 16]})


def test_predict_with_dose_blends_and_records_weight(tiny):
    x, _ = _counts(_scene(7, 64), 1000.0)
    plain = tiny.predict(x)
    m = tiny.predict(sn.Micrograph(x.astype(np.float32)), dose=1000.0)
    w = m.provenance[-1]["params"]["guard_weight"][0]
    assert m.provenance[-1]["params"]["dose"] == 1000.0
    np.testing.assert_allclose(m.data, x + w * (plain - x), rtol=1e-4, atol=0)


def test_auto_denoiser_takes_dose(tiny):
    auto = sn.tasks.denoise.AutoDenoiser(tiny, tiny)
    x, _ = _counts(_scene(8, 64), 800.0)
    out = auto.predict(sn.Micrograph(x.astype(np.float32)), dose=800.0)
    p = out.provenance[-1]["params"]
    assert p["model"] == "denoise-auto" and len(p["guard_weight"]) == 1


def test_cli_dose_option(tmp_path, tiny):
    tiny.save(tmp_path / "tiny")
    x, _ = _counts(_scene(9, 64), 2000.0)
    src = tmp_path / "in.tif"
    sn.write(sn.Micrograph(x.astype(np.float32)), src)
    out = tmp_path / "out.tif"
    r = runner.invoke(app, ["denoise", str(src), "-o", str(out), "--model", str(tmp_path / "tiny"), "--dose", "2000"])
    assert r.exit_code == 0, r.output
    assert "known dose 2000 counts/px -> denoiser weight" in r.output
    r = runner.invoke(app, ["denoise", str(src), "-o", str(tmp_path / "o2.tif"), "--model", str(tmp_path / "tiny"),
                            "--dose", "0"])
    assert r.exit_code != 0 and "--dose must be a positive" in r.output
    assert not (tmp_path / "o2.tif").exists()
