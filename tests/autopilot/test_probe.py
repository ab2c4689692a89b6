"""The latent tip's dynamics: Monte Carlo estimates against the documented probabilities."""
import numpy as np
import pytest

from scopenet.simulate.spm.probe import (ApexState, apply_dip, apply_pulse, crash_probability, degrade,
                                         random_bad_apex, render_scan)

N = 2000


def _rate(fn, n=N, seed=0):
    rng = np.random.default_rng(seed)
    return np.mean([fn(rng) for _ in range(n)])


def _close(rate, p, n=N):
    # 4.5 standard errors: a wrong documented probability fails, chance does not
    assert abs(rate - p) <= 4.5 * np.sqrt(p * (1 - p) / n) + 1e-9, (rate, p)


@pytest.mark.parametrize("volts,p", [(8.0, 0.6), (4.0, 0.45), (2.5, 0.2), (-8.0, 0.15), (-4.0, 0.1125)])
def test_pulse_drops_adsorbate_at_documented_rate(volts, p):
    st = ApexState(adsorbate=True)
    _close(_rate(lambda r: not apply_pulse(st, volts, r).adsorbate), p)


@pytest.mark.parametrize("volts,p", [(-8.0, 0.5), (-2.5, 0.2), (8.0, 0.05)])
def test_pulse_picks_up_adsorbate_at_documented_rate(volts, p):
    st = ApexState(adsorbate=False)
    _close(_rate(lambda r: apply_pulse(st, volts, r).adsorbate), p)


@pytest.mark.parametrize("depth", [0.8, 2.5, 5.0])
def test_dip_crash_rate(depth):
    st = ApexState()
    _close(_rate(lambda r: apply_dip(st, depth, r)[1]), crash_probability(depth))
    assert crash_probability(5.0) > crash_probability(2.5) > crash_probability(0.8)


def test_deep_dips_remove_second_apex_more_often():
    st = ApexState(ghost_w=0.8, ghost_dx=1.0)

    def removed(d):
        return _rate(lambda r: (lambda s: s.ghost_w == 0)(apply_dip(st, d, r)[0]), n=1000)
    shallow, deep = removed(0.8), removed(2.5)
    # removal 1 - exp(-(d/1.5)^2), reduced by the chance of forming a new one (0.04 + 0.05 d) and crashes
    assert 0.15 < shallow < 0.3 and 0.72 < deep < 0.9


def test_dip_reshape_sets_radius_by_depth():
    st = ApexState(radius_nm=6.0)
    rng = np.random.default_rng(1)
    shallow = [apply_dip(st, 0.8, rng)[0].radius_nm for _ in range(1500)]
    deep = [apply_dip(st, 2.5, rng)[0].radius_nm for _ in range(1500)]
    # reshaped with p = 1 - exp(-d / 1.5); else the radius stays 6 nm
    reshaped_shallow = np.mean(np.array(shallow) != 6.0)
    _close(reshaped_shallow, (1 - np.exp(-0.8 / 1.5)) * (1 - crash_probability(0.8)), 1500)
    med_s = np.median([r for r in shallow if r != 6.0])
    med_d = np.median([r for r in deep if r != 6.0 and r < 4])
    assert abs(med_s - (0.3 + 0.5 * 0.8)) < 0.08 and med_d > med_s


def test_degradation_and_bad_start():
    rng = np.random.default_rng(2)
    st = ApexState(instability=0.1)
    for _ in range(10):
        st = degrade(st, rng)
    assert st.instability == pytest.approx(0.2)
    starts = [random_bad_apex(rng) for _ in range(500)]
    assert all(not s.good() for s in starts)
    assert 0.5 < np.mean(["blunt" in s.defects() for s in starts]) < 0.75


def test_apex_round_trip_and_render_is_seeded():
    st = ApexState(radius_nm=3.0, ghost_w=0.5, ghost_dx=1.0, adsorbate=True)
    assert ApexState.from_dict(st.to_dict()) == st
    a = render_scan(st, np.random.default_rng(3), surface_seed=5)
    b = render_scan(st, np.random.default_rng(3), surface_seed=5)
    assert a.shape == (64, 64) and a.dtype == np.float32 and np.array_equal(a, b)
    # a blunt tip blurs: less high-frequency content than a sharp one on the same patch
    sharp = render_scan(ApexState(radius_nm=0.5, instability=0.0), np.random.default_rng(3), surface_seed=5,
                        white_noise=0, pink_noise_level=0)
    blunt = render_scan(ApexState(radius_nm=5.0, instability=0.0), np.random.default_rng(3), surface_seed=5,
                        white_noise=0, pink_noise_level=0)
    assert np.abs(np.diff(sharp, axis=1)).mean() > 2 * np.abs(np.diff(blunt, axis=1)).mean()


def test_repeated_strong_pulses_cannot_blunt_without_bound():
    rng = np.random.default_rng(4)
    st = ApexState(radius_nm=5.0)
    for _ in range(400):
        st = degrade(apply_pulse(st, 8.0, rng), rng)
    assert st.radius_nm <= 20.0
    img = render_scan(ApexState(radius_nm=20.0, aspect=5.0, ghost_w=1.0, ghost_dx=2.5), rng, surface_seed=1)
    assert img.shape == (64, 64) and np.isfinite(img).all()


def test_the_best_cure_depends_on_the_defect():
    """State-dependent effects: a deep dip cures a double apex far more often than any pulse, and a
    positive pulse cures an adsorbate far more often than any dip (what an agent that sees the tip can use)."""
    double = ApexState(ghost_w=0.8, ghost_dx=1.2)
    adsorbate = ApexState(adsorbate=True)

    def cured(st, act, n=600):
        return _rate(lambda r: (apply_pulse(st, act[1], r) if act[0] == "pulse" else apply_dip(st, act[1], r)[0])
                     .good(), n=n)
    pulses = [("pulse", v) for v in (2.5, -2.5, 4.0, -4.0, 8.0, -8.0)]
    dips = [("dip", d) for d in (0.8, 1.0, 1.2, 1.8, 2.5, 5.0)]
    assert cured(double, ("dip", 1.8)) > 0.3 > max(cured(double, a) for a in pulses)
    assert cured(adsorbate, ("pulse", 4.0)) > 0.35 > max(cured(adsorbate, a) for a in dips)
