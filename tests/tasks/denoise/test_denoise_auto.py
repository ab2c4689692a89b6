"""Dose-aware routing (``model="auto"``): raw-image noise estimate, routing rule, AutoDenoiser, CLI default."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import scopenet as sn
from scopenet.errors import InputError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.tasks.denoise.dose import AUTO_DOSE_RANGE, auto_weight, equivalent_dose, haar_noise_curve
from scopenet.tasks.denoise.model import AutoDenoiser, Denoiser, denoise


def _clean(n=256, period=64.0):
    """Smooth test scene in [0, 1] (a sinusoidal pattern with exact min 0 and max 1 on the grid)."""
    y, x = np.mgrid[:n, :n]
    a = 0.5 + 0.5 * np.sin(2 * np.pi * x / period) * np.cos(2 * np.pi * y / period)
    return (a - a.min()) / np.ptp(a)


def _poisson(scale, n=256, seed=0):
    return np.random.default_rng(seed).poisson(_clean(n) * scale).astype(np.float64)


def _installed():
    from scopenet.weights import list_models

    names = [m.name for m in list_models()]
    if "denoise-default" not in names or "denoise-high-dose" not in names:
        pytest.skip("denoise-default / denoise-high-dose weights not installed")


def _tiny_pair(seed=0):
    torch.manual_seed(seed)
    low = Denoiser(arch_config={"widths": [8, 16]})
    torch.manual_seed(seed + 1)
    high = Denoiser(arch_config={"widths": [8, 16]})
    return low, high


# ------------------------------------------------------------------------------ noise estimate
@pytest.mark.parametrize("scale", [10.0, 40.0, 300.0, 2000.0])
def test_equivalent_dose_recovers_poisson_counts_range(scale):
    # smooth scene, pure shot noise, dark level 0: on the frame scaled between its 0.1/99.9 percentiles
    # the variance at level m is about m / R with R the counts between them: R_eq = mean(u) / mean var = R
    img = _poisson(scale, 384)
    lo, hi = np.percentile(img, (0.1, 99.9))
    R = hi - lo
    d = equivalent_dose(img)
    assert d["dose"] == pytest.approx(R, rel=0.1)
    assert d["slope"] > 0 and 1 / d["slope"] == pytest.approx(R, rel=0.15)


def test_equivalent_dose_gaussian_noise_and_noise_free():
    rng = np.random.default_rng(3)
    u = _clean(384)
    g = u + rng.normal(0, 0.02, u.shape)
    d = equivalent_dose(g)
    # in the frame scaled between its 0.1/99.9 percentiles: sd 0.02 / that span
    lo, hi = np.percentile(g, (0.1, 99.9))
    span = hi - lo
    assert d["noise_sd"] == pytest.approx(0.02 / span, rel=0.1)
    assert d["dose"] == pytest.approx(d["mean_level"] / (0.02 / span) ** 2, rel=0.2)
    flat = equivalent_dose(np.outer(np.arange(64.0), np.ones(64)))  # noise-free ramp: Haar diagonal is 0
    assert flat["noise_sd"] == 0 and math.isinf(flat["dose"])


def test_equivalent_dose_ignores_sparse_edges_and_nan():
    base = _poisson(500.0, 256, seed=1)
    spiky = base.copy()
    spiky[::16, ::16] += 60.0  # sparse bright points (atoms, hot pixels) inside the range
    spiky[5, 7] = np.nan
    a, b = equivalent_dose(base)["dose"], equivalent_dose(spiky)["dose"]
    # 0.4 % spikes and a NaN: the robust range and the MAD noise estimate barely move
    assert b == pytest.approx(a, rel=0.1) and np.isfinite(b)


def test_equivalent_dose_independent_of_image_size():
    # same scene statistics at 128 and 1024 px (the larger is the same pattern tiled): same estimate
    for scale in (60.0, 3000.0):
        small = _poisson(scale, 128, seed=2)
        big = np.random.default_rng(5).poisson(np.tile(_clean(128), (8, 8)) * scale).astype(float)
        ds, db = equivalent_dose(small)["dose"], equivalent_dose(big)["dose"]
        assert ds == pytest.approx(db, rel=0.1)
        assert (auto_weight(ds) == 0) == (auto_weight(db) == 0) and (auto_weight(ds) == 1) == (auto_weight(db) == 1)


def test_haar_noise_curve_is_linear_in_level_for_shot_noise():
    lev, var, cnt = haar_noise_curve(_poisson(400.0, 384))
    assert len(lev) >= 8 and cnt.sum() == 192 * 192
    slope, icpt = np.polyfit(lev, var, 1, w=np.sqrt(cnt))
    assert 1 / slope == pytest.approx(400, rel=0.3) and abs(icpt) < 2e-4


def test_noise_estimate_errors():
    with pytest.raises(InputError):
        equivalent_dose(np.zeros((3, 3)))
    with pytest.raises(InputError):
        equivalent_dose(np.full((8, 8), np.nan))
    with pytest.raises(InputError):
        equivalent_dose(np.zeros((2, 8, 8)))


# ------------------------------------------------------------------------------ routing rule
def test_auto_weight_reference_values():
    lo, hi = AUTO_DOSE_RANGE
    assert auto_weight(lo / 2) == 0 and auto_weight(lo) == 0
    assert auto_weight(hi) == 1 and auto_weight(10 * hi) == 1 and auto_weight(math.inf) == 1
    assert auto_weight(math.sqrt(lo * hi)) == pytest.approx(0.5)
    assert auto_weight(float("nan")) == 1
    assert auto_weight(40.0, (20.0, 80.0)) == pytest.approx(0.5)
    with pytest.raises(InputError):
        auto_weight(10.0, (100.0, 50.0))


def test_auto_blends_the_two_models_by_weight():
    low, high = _tiny_pair()
    img = _poisson(100.0, 64)
    d = AutoDenoiser(low, high).route(img)[0]["dose"]
    auto = AutoDenoiser(low, high, dose_range=(d / 2, d * 2))  # puts this image at w = 0.5
    w = auto.route(img)[0]["weight"]
    assert w == pytest.approx(0.5)
    np.testing.assert_allclose(auto.predict(img), 0.5 * low.predict(img) + 0.5 * high.predict(img), atol=1e-5)
    # outside the zone only one model is used
    np.testing.assert_array_equal(AutoDenoiser(low, high, (d * 2, d * 4)).predict(img), low.predict(img))
    np.testing.assert_array_equal(AutoDenoiser(low, high, (d / 4, d / 2)).predict(img), high.predict(img))


def test_auto_routes_each_frame_and_records_provenance():
    low, high = _tiny_pair()
    stack = np.stack([_poisson(30.0, 64, 1), _poisson(1e5, 64, 2)])
    auto = AutoDenoiser(low, high)
    m = Micrograph(stack.astype(np.float32), axes=[Axis("frame", 2, 1, 0, ""), Axis("y", 64, 0.1, 0, "nm"),
                                                   Axis("x", 64, 0.1, 0, "nm")])
    out = auto.predict(m)
    p = out.provenance[-1]
    assert p["operation"] == "denoise" and p["params"]["model"] == "denoise-auto"
    assert p["params"]["high_dose_weight"] == [0.0, 1.0]
    assert p["params"]["equivalent_dose"][0] < AUTO_DOSE_RANGE[0] < AUTO_DOSE_RANGE[1] < p["params"]["equivalent_dose"][1]
    np.testing.assert_array_equal(out.data[0], low.predict(stack[0]))
    np.testing.assert_array_equal(out.data[1], high.predict(stack[1]))
    tiny = auto.predict(np.random.default_rng(0).random((3, 3)))  # too small to measure: high-dose model
    assert tiny.shape == (3, 3) and auto.route(np.zeros((3, 3)))[0]["weight"] == 1
    with pytest.raises(InputError):
        auto.fit([stack[0]])


def test_pretrained_auto_routes_clean_to_high_and_low_count_to_low():
    _installed()
    from scopenet.simulate.em import simulate_batch

    clean = simulate_batch(1, size=192, seed=4242, kind="hrtem")["images"][0]
    clean = (clean - clean.min()) / np.ptp(clean)
    rng = np.random.default_rng(0)
    low_count = rng.poisson(clean * 30.0).astype(np.float32)
    clean_ish = rng.poisson(clean * 20000.0).astype(np.float32)
    tiled = AutoDenoiser.pretrained(tile=64, overlap=16, max_direct_pixels=1024)
    direct = AutoDenoiser.pretrained()
    for auto in (tiled, direct):  # the decision is made on the whole frame, whatever the tiling
        assert auto.route(low_count)[0]["weight"] == 0
        assert auto.route(clean_ish)[0]["weight"] == 1
    np.testing.assert_array_equal(direct.predict(low_count), direct.low.predict(low_count))
    np.testing.assert_array_equal(direct.predict(clean_ish), direct.high.predict(clean_ish))
    assert isinstance(Denoiser.pretrained("auto"), AutoDenoiser)
    assert np.array_equal(denoise(clean_ish), direct.high.predict(clean_ish))  # sn.denoise defaults to auto


def test_auto_is_the_default_of_denoise_cli_and_bench():
    assert inspect.signature(denoise).parameters["model"].default == "auto"
    assert sn.denoise is denoise or inspect.signature(sn.denoise).parameters["model"].default == "auto"
    from scopenet.cli.denoise_cmds import denoise_cmd

    assert inspect.signature(denoise_cmd).parameters["model"].default.default == "auto"


def test_cli_auto_reports_route(tmp_path):
    _installed()
    from scopenet.cli.main import app

    m = Micrograph(np.random.default_rng(0).poisson(_clean(64) * 20.0).astype(np.float32),
                   axes=[Axis("y", 64, 0.25, 0, "nm"), Axis("x", 64, 0.25, 0, "nm")])
    src = tmp_path / "in.tif"
    sn.write(m, src)
    r = CliRunner().invoke(app, ["denoise", str(src), "-o", str(tmp_path / "out.tif")])
    assert r.exit_code == 0, r.output
    assert "auto: equivalent dose" in r.output and "high-dose weight 0.00" in r.output
    back = sn.read(tmp_path / "out.tif")
    assert back.pixel_size == pytest.approx((0.25, 0.25))
    assert any(p.get("params", {}).get("model") == "denoise-auto" for p in back.provenance)
