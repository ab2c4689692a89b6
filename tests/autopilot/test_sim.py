"""The simulated microscope: determinism, time accounting, typed errors, snapshots, the gym env."""
import numpy as np
import pytest

from scopenet.autopilot.instrument import ACTIONS, AreaUsedError, LostContactError, TipCrashError
from scopenet.autopilot.sim import SimMicroscope


def _drive(m, n=6, x0=0.0):
    out = []
    for i in range(n):
        m.move(x0 + 100.0 * i + 20, 2500.0)
        try:
            m.condition(i % len(ACTIONS))
        except TipCrashError:
            m.approach()
        out.append(m.scan((x0 + 100.0 * i + 35, 2500.0), 8.0).data)
    return out


def test_same_seed_same_everything():
    a, b = SimMicroscope(seed=4), SimMicroscope(seed=4)
    ia, ib = _drive(a), _drive(b)
    assert all(np.array_equal(x, y) for x, y in zip(ia, ib))
    assert a.state() == b.state() and a.now() == b.now()
    c = SimMicroscope(seed=5)
    assert not np.array_equal(_drive(c)[0], ia[0])


def test_time_accounting_and_log():
    m = SimMicroscope(seed=0)
    img = m.scan((10.0, 10.0), 8.0)
    cfg = m.config
    assert m.now() == pytest.approx(64 * cfg.line_time_s + cfg.scan_overhead_s + np.hypot(10, 10) / cfg.move_speed_nm_s)
    assert img.metadata["backend"] == "sim" and img.signal_unit == "m"
    assert img.axes[1].unit == "nm" and img.axes[1].scale == pytest.approx(8 / 64)
    m.move(30.0, 2500.0)
    m.pulse(4.0)
    rec = m.log[-1]
    assert rec.method == "pulse" and rec.duration_s == pytest.approx(0.2 + cfg.action_settle_s)
    assert [r.method for r in m.log] == ["scan", "move", "pulse"]
    assert m.log[1].t_s == pytest.approx(m.log[0].t_s + m.log[0].duration_s)


def test_spot_reuse_is_refused_and_withdrawn_tip_cannot_scan():
    m = SimMicroscope(seed=0)
    m.move(500.0, 2500.0)
    m.dip(1.0)
    with pytest.raises(AreaUsedError):
        m.pulse(2.5)
    assert m.log[-1].error == "AreaUsedError"
    m.withdraw()
    with pytest.raises(LostContactError):
        m.scan((500.0, 500.0), 8.0)
    m.approach()
    m.scan((500.0, 500.0), 8.0)


def test_crash_raises_typed_error_and_withdraws():
    m = SimMicroscope(seed=0)
    crashed = 0
    for i in range(80):                 # 5 nm dips crash with p = 0.002 exp(5 / 1.2) = 0.13
        m.move(30.0 * i + 15, 2415.0)
        try:
            m.dip(5.0)
        except TipCrashError:
            crashed += 1
            assert not m.state()["approached"]
            m.approach()
    assert 3 <= crashed <= 25


def test_snapshot_restore_continues_identically():
    a = SimMicroscope(seed=9)
    _drive(a, 3)
    snap = a.snapshot()
    rest_a = _drive(a, 3, x0=1000.0)
    b = SimMicroscope(seed=9).restore(snap)
    rest_b = _drive(b, 3, x0=1000.0)
    assert all(np.array_equal(x, y) for x, y in zip(rest_a, rest_b))


def test_sample_has_dirty_and_stepped_cells():
    m = SimMicroscope(seed=1)
    props = [m.cell_properties(m.plan.frame_centre(c, 0)) for c in range(400)]
    dirty = np.mean([p["adsorbate_density"] >= m.config.contamination_density for p in props])
    stepped = np.mean([p["p_steps"] > 0 for p in props])
    assert abs(dirty - m.config.p_contaminated) < 0.08 and abs(stepped - m.config.p_stepped) < 0.08


@pytest.mark.slow
def test_gym_env_registered_and_steps():
    gym = pytest.importorskip("gymnasium")
    from scopenet.autopilot.sim import ENV_ID

    env = gym.make(ENV_ID, max_actions=3)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and "tip_good" in info
    total, done, n = 0.0, False, 0
    while not done:
        obs, r, term, trunc, info = env.step(9)
        total += r
        n += 1
        done = term or trunc
    assert n <= 3 and (r == 9.0 if term else r == -1.0)
    obs2, _ = env.reset(seed=3)
    assert np.array_equal(obs, obs) and np.array_equal(obs2, env.reset(seed=3)[0])
