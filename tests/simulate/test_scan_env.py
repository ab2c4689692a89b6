"""The adaptive-scan environment: geometry, sampling, penalties, the gymnasium API and the coil model."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.simulate import scan_env as env

gym = pytest.importorskip("gymnasium")

RNG = np.random.default_rng(0)
IMG = RNG.random((96, 96)).astype(np.float32)


def test_constants_are_the_chapters():
    assert (env.SIZE, env.N_SEGMENTS, env.SEGMENT_POSITIONS) == (96, 20, 20)
    assert env.SPACING == pytest.approx(math.sqrt(2)) and env.EDGE_PENALTY == 0.1
    assert 1 / env.COVERAGE == pytest.approx(23.04)


def test_segment_positions_are_spaced_sqrt2_from_the_start():
    p = env.segment_positions(np.array([[47.5, 47.5]]), np.array([[3.0, 4.0]]))
    assert p.shape == (1, 20, 2)
    np.testing.assert_allclose(p[0, 0], [47.5, 47.5])
    steps = np.linalg.norm(np.diff(p[0], axis=0), axis=1)
    np.testing.assert_allclose(steps, math.sqrt(2))
    np.testing.assert_allclose(p[0, 1] - p[0, 0], math.sqrt(2) * np.array([0.6, 0.8]))


def test_nearest_pixel_and_off_image_positions_sample_the_edge():
    r, c, off = env.sample_pixels(np.array([[0.49, 0.51], [-0.6, 50.2], [95.6, 95.4], [10.0, 99.0]]))
    np.testing.assert_array_equal(r, [0, 0, 95, 10])
    np.testing.assert_array_equal(c, [1, 50, 95, 95])
    np.testing.assert_array_equal(off, [False, True, True, True])


def test_an_episode_scans_twenty_segments_from_the_centre_towards_a_corner():
    e = env.ScanEnv(IMG[None])
    obs, info = e.reset(seed=0)
    assert obs.shape == (22,) and e.observation_space.contains(obs)
    # the first segment: centre towards the bottom-right corner, nearest pixels sampled
    np.testing.assert_allclose(e.points[0], [47.5, 47.5])
    np.testing.assert_allclose(e.points[1] - e.points[0], [1.0, 1.0])
    np.testing.assert_array_equal(info["values"], IMG[info["rows"], info["cols"]])
    np.testing.assert_allclose(obs[-2:], (np.array([47.5, 47.5]) + 20 * np.array([1.0, 1.0])) / 96)
    done, n = False, 0
    while not done:
        obs, reward, done, trunc, info = e.step(np.array([0.0, -1.0]))
        n += 1
    assert n == 19 and not trunc
    assert info["mask"].sum() <= 400 and e.points.shape == (400, 2)
    with pytest.raises(InputError, match="ended"):
        e.step(np.array([1.0, 0.0]))


def test_off_image_segments_cost_the_edge_penalty_and_turns_the_coil_penalty():
    e = env.ScanEnv(IMG[None], limits=env.CoilLimits(turn_penalty=0.5))
    e.reset(seed=0)
    # segments start at (47.5, 47.5), (67.5, 67.5), (87.5, 87.5): the third one towards the corner
    # leaves the image, without turning
    _, r0, _, _, i0 = e.step(np.array([1.0, 1.0]))
    assert not i0["off_image"] and r0 == 0.0
    _, r1, _, _, i1 = e.step(np.array([1.0, 1.0]))
    assert i1["off_image"] and r1 == pytest.approx(-0.1)
    # a reversal starts off the image (where the last segment ended): edge penalty + the full turn penalty
    _, r2, _, _, i2 = e.step(np.array([-1.0, -1.0]))
    assert i2["off_image"] and i2["turn"] == pytest.approx(math.pi) and r2 == pytest.approx(-0.6)
    # then inside (from (87.5, 87.5) upwards), turning by 45 degrees
    _, r3, _, _, i3 = e.step(np.array([-1.0, 0.0]))
    assert not i3["off_image"] and r3 == pytest.approx(-0.5 * (1 - math.cos(math.pi / 4)) / 2)


def test_a_zero_action_keeps_the_direction_and_the_final_loss_is_added():
    seen = {}

    def final(image, mask, values):
        seen["n"] = int(mask.sum())
        np.testing.assert_array_equal(values[mask], image[mask])
        return 2.0

    e = env.ScanEnv(IMG[None], final_loss=final, n_segments=3)
    e.reset(seed=0)
    e.step(np.zeros(2))
    _, reward, done, _, info = e.step(np.zeros(2))
    assert done and reward == pytest.approx(-2.1)  # the third straight segment leaves the image
    assert seen["n"] == info["mask"].sum()


def test_the_vectorised_rollout_matches_the_environment():
    dirs = RNG.normal(size=(20, 2))
    res = env.rollout(IMG[None], lambda t, o, p, d: dirs[t][None], limits=env.CoilLimits(turn_penalty=0.3))
    e = env.ScanEnv(IMG[None], limits=env.CoilLimits(turn_penalty=0.3))
    obs, info = e.reset(seed=1)
    np.testing.assert_allclose(obs, np.concatenate([res["obs"][0, 0], res["pos"][0, 0]]), atol=1e-6)
    for t in range(1, 20):
        obs, reward, _, _, info = e.step(dirs[t])
        np.testing.assert_array_equal(info["rows"], res["rows"][0, t])
        np.testing.assert_array_equal(info["cols"], res["cols"][0, t])
        np.testing.assert_allclose(obs, np.concatenate([res["obs"][0, t], res["pos"][0, t]]), atol=1e-6)
        assert -reward == pytest.approx(float(res["step_cost"][0, t]), abs=1e-6)


def test_observations_are_scaled_by_the_running_range():
    a = env.rollout(IMG[None], lambda t, o, p, d: d)
    b = env.rollout(7.0 * IMG[None] + 3.0, lambda t, o, p, d: d)
    np.testing.assert_allclose(a["obs"], b["obs"], atol=1e-5)
    assert a["obs"].min() >= 0 and a["obs"].max() <= 1


def test_gymnasium_checker_accepts_the_environment():
    from gymnasium.utils.env_checker import check_env

    check_env(env.ScanEnv(IMG[None]), skip_render_check=True)


def test_wrong_images_are_input_errors():
    with pytest.raises(InputError, match="96"):
        env.ScanEnv(np.zeros((2, 50, 50)))
    with pytest.raises(InputError):
        env.rollout(np.zeros((96, 96)), lambda *a: None)


def test_polygonal_spiral_stays_inside_and_probes_distinct_pixels():
    d = env.spiral_directions()
    np.testing.assert_allclose(d[0], env.first_direction())
    res = env.rollout(IMG[None], lambda t, o, p, prev: d[t][None])
    assert not res["off"].any()
    assert env.positions_to_mask(res["rows"].reshape(1, -1), res["cols"].reshape(1, -1)).sum() >= 390


def test_fixed_baseline_paths_have_the_same_actual_coverage():
    m, pts = env.spiral_scan_path()
    assert m.mean() == pytest.approx(env.COVERAGE, rel=0.01)
    g, gp = env.grid_scan_path()
    assert g.sum() == 400 and len(gp) >= 400


def test_scan_time_counts_dwell_turns_and_jumps():
    lim = env.CoilLimits(dwell_s=1e-6, flyback_s=50e-6, jump_speed_px_s=1e6, settle_s=2e-6)
    line = np.stack([np.zeros(10), np.arange(10.0)], 1)
    st = env.path_scan_time(line, lim)
    assert st.time_s == pytest.approx(10e-6) and st.n_jumps == 0 and st.turn_s == 0
    back = np.concatenate([line, line[::-1][1:]])  # a reversal at the end of the line
    assert env.path_scan_time(back, lim).turn_s == pytest.approx(50e-6)
    jump = np.concatenate([line, line + [5.0, 0.0]])  # a fly-back of hypot(5, 9) px to the next line
    st = env.path_scan_time(jump, lim)
    assert st.n_jumps == 1 and st.jump_s == pytest.approx(2e-6 + math.hypot(5, 9) * 1e-6)
    with pytest.raises(InputError):
        env.path_scan_time(np.zeros((3, 3)))
