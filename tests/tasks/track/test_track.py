"""Drift by phase correlation, linking, velocities, MSD and scan timing of the tracker."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from scopenet.errors import InputError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.simulate.em.movies import shift_image, simulate_movie
from scopenet.tasks.track import estimate_drift, frame_shift, msd, scan_timing, track
from scopenet.tasks.track.bench import link_scores


def _texture(shape, seed=0):
    return ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 1.5)


def test_drift_of_a_shifted_frame_is_recovered_to_a_tenth_of_a_pixel():
    a = _texture((96, 96))
    d = estimate_drift(np.stack([a, shift_image(a, 2.37, -1.61), shift_image(a, -4.2, 3.05)]))
    np.testing.assert_allclose(d, [[0, 0], [2.37, -1.61], [-4.2, 3.05]], atol=0.1)
    # a non-periodic frame: a crop of a larger texture moved by a sub-pixel amount
    big = _texture((160, 160), seed=1)
    moved = ndimage.shift(big, (1.45, -2.8), order=3)
    got = frame_shift(big[30:130, 30:130], moved[30:130, 30:130])
    np.testing.assert_allclose(got, [1.45, -2.8], atol=0.1)
    assert np.allclose(estimate_drift(np.stack([a, a]), reference="previous"), 0, atol=1e-6)
    with pytest.raises(InputError, match="shape"):
        frame_shift(a, a[:50])


def test_a_blank_frame_keeps_the_previous_drift():
    a = _texture((96, 96))
    frames = np.stack([a, shift_image(a, 1.5, -1.0), np.full_like(a, 0.3), shift_image(a, 3.0, -2.0)])
    with pytest.warns(UserWarning, match="1 of 4 frames have no contrast"):
        d = estimate_drift(frames)
    np.testing.assert_allclose(d, [[0, 0], [1.5, -1.0], [1.5, -1.0], [3.0, -2.0]], atol=0.1)
    with pytest.warns(UserWarning):
        assert np.all(estimate_drift(np.zeros((3, 32, 32))) == 0)


@pytest.mark.slow  # the first trackpy import takes seconds
def test_a_movie_without_particles_gives_empty_tracks():
    with pytest.warns(UserWarning):
        df = track(np.ones((4, 48, 48), np.float32))
    assert len(df) == 0 and list(df.columns[:6]) == ["frame", "particle", "x", "y", "vx", "vy"]
    assert np.all(np.asarray(df.attrs["drift"]) == 0)
    assert len(msd(df)) == 0 and list(msd(df).columns) == ["lag", "lag_t", "msd_px2", "msd_m2", "n"]


@pytest.mark.slow  # the first trackpy import takes seconds
def test_three_particles_are_linked_correctly():
    m = simulate_movie(n_frames=8, size=96, n_particles=3, step=0.7, drift=(0.5, -0.4), drift_jitter=0.1, seed=3)
    df = track(m.frames, diameter=7, search_range=4, minmass=4.0)  # 3 spots: too few for the automatic split
    assert list(df.columns[:6]) == ["frame", "particle", "x", "y", "vx", "vy"]
    s = link_scores(df, m)
    assert s["precision"] == 1.0 and s["recall"] == 1.0
    assert df["particle"].nunique() == 3 and df.groupby("particle").size().tolist() == [8, 8, 8]
    assert s["drift_max"] < 0.3
    # drift-corrected positions follow the true sample positions (up to the first frame's offset)
    first = df[df.frame == 0].sort_values("x")
    true0 = m.observed()[0][np.argsort(m.observed()[0][:, 1])]
    np.testing.assert_allclose(first[["y", "x"]].to_numpy(), true0, atol=0.5)


def test_constant_flow_gives_its_velocity_and_ballistic_msd():
    m = simulate_movie(n_frames=8, size=128, n_particles=4, step=0.0, velocity=(0.5, 1.0), drift=(0, 0),
                       drift_jitter=0.0, seed=0)
    assert np.allclose(np.diff(m.positions, axis=0), [0.5, 1.0])  # no particle reflected at a border
    df = track(m.frames, drift="none", search_range=3)
    assert df.vx.mean() == pytest.approx(1.0, abs=0.05) and df.vy.mean() == pytest.approx(0.5, abs=0.05)
    md = msd(df, max_lag=3)
    # (0.5^2 + 1^2) lag^2, plus twice the localisation variance (a few hundredths of a px^2)
    np.testing.assert_allclose(md.msd_px2, 1.25 * md.lag ** 2, atol=0.3)


def test_msd_reference_values_and_errors():
    t = np.arange(6)
    df = pd.DataFrame({"frame": np.r_[t, t], "particle": np.r_[[0] * 6, [1] * 6],
                       "x": np.r_[t * 1.0, np.zeros(6)], "y": np.r_[np.zeros(6), t * 2.0], "t": np.r_[t, t] * 0.5})
    md = msd(df, pixel_size=1e-9)
    assert md.lag.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(md.msd_px2, (1 + 4) / 2 * md.lag ** 2)
    np.testing.assert_allclose(md.lag_t, 0.5 * md.lag)
    np.testing.assert_allclose(md.msd_m2, md.msd_px2 * 1e-18)
    assert md.n.tolist() == [10, 8, 6, 4, 2]
    with pytest.raises(InputError, match="columns"):
        msd(df.drop(columns="particle"))


def test_scan_timing_is_read_from_metadata():
    frame = np.zeros((2, 16, 16), np.float32)
    mg = Micrograph(frame, axes=[Axis("frame", 2, 0.5, unit="s"), Axis("y", 16), Axis("x", 16)],
                    metadata={"Scan": {"line_time": "0.01 s"}})
    assert scan_timing(mg) == (0.5, 0.01)
    assert scan_timing(Micrograph(frame[0], metadata={"Ciao": {"Scan Rate": 2.0}}))[1] == pytest.approx(0.5)
    assert scan_timing(Micrograph(frame[0], metadata={"Raster_Time": 1e-3}))[1] == pytest.approx(0.016)
    assert scan_timing(None) == (None, None)


def test_scanned_rows_get_their_own_times():
    m = simulate_movie(n_frames=4, size=64, n_particles=3, step=0.3, scan_fraction=0.8, seed=6)
    df = track(m.frames, line_time=m.line_time, frame_interval=1.0)
    np.testing.assert_allclose(df.t, df.frame + df.y_raw * m.line_time)
    assert df.attrs["line_time"] == pytest.approx(m.line_time)


def test_bad_movies_and_a_missing_trackpy_are_input_errors(monkeypatch):
    with pytest.raises(InputError, match="stack"):
        track(np.zeros((32, 32)))
    with pytest.raises(InputError, match="differ in shape"):
        track([np.zeros((32, 32)), np.zeros((30, 32))])
    with pytest.raises(InputError, match="TrackConfig"):
        track(np.zeros((3, 32, 32)), no_such_setting=1)
    monkeypatch.setitem(sys.modules, "trackpy", None)
    with pytest.raises(InputError, match=r"pip install 'scopenet\[track\]'"):
        track(np.random.default_rng(0).random((3, 32, 32)))


@pytest.mark.slow
def test_segmentation_detector_tracks_large_particles():
    m = simulate_movie(n_frames=4, size=96, n_particles=3, step=0.5, sigma=3.0, amplitude=2.0, seed=3)
    df = track(m.frames, detector="segment")  # the shipped segment-particles model; regions' centroids
    lone = df[df.x_raw < 35].sort_values("frame")  # the isolated particle (the other two touch)
    assert len(lone) == 4 and lone.particle.nunique() == 1
    truth = np.array([m.observed()[t][0] for t in range(4)])
    np.testing.assert_allclose(lone[["y_raw", "x_raw"]].to_numpy(), truth, atol=1.0)
