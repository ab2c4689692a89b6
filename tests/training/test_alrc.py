"""Tests of ALRC (Algorithm 1), DALRC, CLRC and Huberisation against hand-computed values."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from scopenet.errors import InputError
from scopenet.training.alrc import ALRC, CLRC, DALRC, Huberise, LossClipper, NoClip, make_clipper


def _grads(loss_fn, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Value and gradient of ``loss_fn`` at a leaf copy of ``x0``."""
    x = x0.clone().requires_grad_(True)
    out = loss_fn(x)
    out.backward()
    return out.detach(), x.grad.detach()


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


# --------------------------------------------------------------------------------------------
# ALRC
# --------------------------------------------------------------------------------------------
def test_alrc_thresholds_from_initial_moments():
    a = ALRC(n_max=3.0, n_min=2.0, mu1_init=1.0, mu2_init=1.25)  # sigma = 0.5
    lo, hi = a.thresholds()
    assert float(a.sigma) == pytest.approx(0.5)
    assert float(hi) == pytest.approx(2.5)
    assert float(lo) == pytest.approx(0.0)


def test_losses_below_threshold_pass_unchanged_with_identical_gradients():
    torch.manual_seed(0)
    w = torch.randn(8, 5)
    x0 = torch.randn(5)

    def per_example(x):
        return ((w @ x) ** 2) / 100.0  # (8,), all far below L_max = 25 + 3 * 16.6

    a = ALRC()
    v_ref, g_ref = _grads(lambda x: per_example(x).mean(), x0)
    v_clip, g_clip = _grads(lambda x: a(per_example(x)), x0)
    assert torch.equal(v_ref, v_clip)
    assert torch.equal(g_ref, g_clip)
    assert a.last_clipped_fraction == 0.0


def test_spike_forward_is_lmax_and_gradient_scaled_with_same_direction():
    w = torch.tensor([[1.0, 2.0, -3.0], [0.5, -1.0, 2.0]])
    x0 = torch.tensor([3.0, -2.0, 1.5])

    def batch_loss(x):
        return ((w @ x) ** 4).mean()  # one scalar loss, a spike

    a = ALRC(n_max=3.0, mu1_init=1.0, mu2_init=1.25, mode="batch")
    l_max = 1.0 + 3.0 * 0.5
    v_ref, g_ref = _grads(batch_loss, x0)
    assert float(v_ref) > l_max
    v_clip, g_clip = _grads(lambda x: a(batch_loss(x)), x0)
    assert float(v_clip) == pytest.approx(l_max, rel=1e-6)
    torch.testing.assert_close(g_clip, g_ref * (l_max / float(v_ref)), rtol=1e-5, atol=0)
    assert _cos(g_clip, g_ref) == pytest.approx(1.0, abs=1e-6)
    assert a.last_clipped_fraction == 1.0


def test_per_example_clipping_only_touches_the_spike():
    a = ALRC(n_max=3.0, mu1_init=1.0, mu2_init=1.25, reduction="none")  # L_max = 2.5
    x = torch.tensor([0.5, 2.0, 10.0, 2.5], requires_grad=True)
    out = a(x)
    torch.testing.assert_close(out.detach(), torch.tensor([0.5, 2.0, 2.5, 2.5]))
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1.0, 1.0, 0.25, 1.0]))
    # moments updated with batch means of L and L^2 (unclipped), computed after the clipping
    m1 = 0.999 * 1.0 + 0.001 * float(x.detach().mean())
    m2 = 0.999 * 1.25 + 0.001 * float((x.detach() ** 2).mean())
    assert float(a.mu1) == pytest.approx(m1, rel=1e-12)
    assert float(a.mu2) == pytest.approx(m2, rel=1e-12)
    assert int(a.steps) == 1


def test_example_mode_reduces_non_batch_axes_before_clipping():
    a = ALRC(mu1_init=1.0, mu2_init=1.25, reduction="none")  # L_max = 2.5
    el = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[8.0, 0.0], [4.0, 0.0]]])  # means 1, 3
    torch.testing.assert_close(a(el), torch.tensor([1.0, 2.5]))


def test_element_mode_clips_each_element_and_keeps_shape():
    a = ALRC(mu1_init=1.0, mu2_init=1.25, mode="element", reduction="none")
    el = torch.tensor([[1.0, 3.0], [0.0, 9.0]])
    torch.testing.assert_close(a(el), torch.tensor([[1.0, 2.5], [0.0, 2.5]]))
    assert float(a.mu1) == pytest.approx(0.999 + 0.001 * 13 / 4)


def test_batch_mode_clips_the_mean():
    a = ALRC(mu1_init=1.0, mu2_init=1.25, mode="batch", reduction="none")
    out = a(torch.tensor([0.0, 10.0]))  # mean 5 > 2.5
    assert out.shape == ()
    assert float(out) == pytest.approx(2.5)


def test_thresholds_use_moments_before_update():
    # A huge loss would raise mu1/mu2 if the update came first; the clip value must be the old L_max.
    a = ALRC(mu1_init=1.0, mu2_init=1.25, b1=0.5, b2=0.5, mode="batch")
    out = a(torch.tensor(1000.0))
    assert float(out) == pytest.approx(2.5)
    assert float(a.mu1) == pytest.approx(500.5)


def test_update_with_clipped_uses_clipped_losses():
    a = ALRC(mu1_init=1.0, mu2_init=1.25, b1=0.5, b2=0.5, mode="batch", update_with_clipped=True)
    a(torch.tensor(1000.0))
    assert float(a.mu1) == pytest.approx(0.5 * 1.0 + 0.5 * 2.5)
    assert float(a.mu2) == pytest.approx(0.5 * 1.25 + 0.5 * 2.5 ** 2)


def test_moments_converge_to_mean_and_std_of_stationary_stream():
    rng = np.random.default_rng(7)
    mean, sd = 2.0, 0.5
    stream = rng.gamma(shape=(mean / sd) ** 2, scale=sd ** 2 / mean, size=(3000, 8))
    a = ALRC(n_max=math.inf, b1=0.99, b2=0.99, mu1_init=10.0, mu2_init=200.0)
    with torch.no_grad():
        for row in torch.from_numpy(stream):
            a(row)
    assert float(a.mu1) == pytest.approx(mean, rel=0.05)
    assert float(a.sigma) == pytest.approx(sd, rel=0.1)


def test_n_min_inf_is_one_sided_and_finite_n_min_clips_low():
    low = torch.tensor([0.01, 0.02])
    a = ALRC(mu1_init=1.0, mu2_init=1.25, reduction="none")  # n_min = inf
    v, g = _grads(lambda x: a(x).sum(), low)
    torch.testing.assert_close(v, low.sum())
    torch.testing.assert_close(g, torch.ones(2))
    assert float(a.thresholds()[0]) == -math.inf
    b = ALRC(n_min=1.0, mu1_init=1.0, mu2_init=1.25, reduction="none")  # L_min = 0.5
    out = b(low.clone().requires_grad_(True))
    torch.testing.assert_close(out.detach(), torch.tensor([0.5, 0.5]))


def test_buffers_in_state_dict_and_round_trip():
    a = ALRC(mu1_init=3.0, mu2_init=10.0)
    for v in torch.linspace(0.5, 4.0, 17):
        a(v.reshape(1))
    sd = a.state_dict()
    assert {"mu1", "mu2", "steps"} <= set(sd)
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    b = ALRC(mu1_init=3.0, mu2_init=10.0)
    b.load_state_dict(torch.load(buf))
    assert float(b.mu1) == float(a.mu1) and float(b.mu2) == float(a.mu2)
    assert int(b.steps) == 17
    x = torch.tensor([2.0, 50.0])
    torch.testing.assert_close(a(x), b(x))


def test_buffers_travel_inside_a_parent_module():
    model = torch.nn.Module()
    model.net = torch.nn.Linear(2, 2)
    model.clipper = ALRC()
    assert {"clipper.mu1", "clipper.mu2", "clipper.steps"} <= set(model.state_dict())


def test_eval_mode_neither_updates_nor_clips():
    a = ALRC(mu1_init=1.0, mu2_init=1.25)
    a.eval()
    x = torch.tensor([0.5, 100.0])
    out = a(x)
    assert float(out) == pytest.approx(50.25)
    assert float(a.mu1) == 1.0 and float(a.mu2) == 1.25 and int(a.steps) == 0
    a.train()
    assert float(a(x)) == pytest.approx((0.5 + 2.5) / 2)
    assert int(a.steps) == 1


@pytest.mark.parametrize("kw", [dict(mu1_init=2.0, mu2_init=4.0), dict(mu1_init=2.0, mu2_init=3.0),
                                dict(mu1_init=math.nan, mu2_init=1.0), dict(n_max=0.0),
                                dict(n_min=-1.0), dict(b1=1.0), dict(b2=-0.1), dict(mode="pixel"),
                                dict(reduction="sum")])
def test_invalid_alrc_arguments_raise(kw):
    with pytest.raises(ValueError):
        ALRC(**kw)


def test_bad_loss_inputs_raise():
    with pytest.raises(InputError, match="empty"):
        ALRC()(torch.zeros(0))
    with pytest.raises(InputError, match="Tensor"):
        ALRC()(1.0)


def test_zero_loss_outside_bounds_gives_no_nan():
    c = CLRC(l_min=0.5, l_max=2.0, reduction="none")
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    out = c(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------------------------
# DALRC, CLRC, Huberise, factory
# --------------------------------------------------------------------------------------------
def test_dalrc_algorithm3_single_loss():
    d = DALRC(n_up=2.0, n_down=2.0, b1=0.5, b_up=0.5, b_down=0.5, mu1_init=1.0,
              mu_up_init=0.5, mu_down_init=0.25, mode="batch")  # L in [0.5, 2.0]
    assert [float(t) for t in d.thresholds()] == [0.5, 2.0]
    v, g = _grads(lambda x: d(x), torch.tensor(4.0))
    assert float(v) == pytest.approx(2.0) and float(g) == pytest.approx(0.5)
    # L = 4 > mu1 = 1: mu_up <- 0.5*0.5 + 0.5*3 ; mu_down unchanged ; mu1 <- 0.5 + 2
    assert float(d.mu_up) == pytest.approx(1.75)
    assert float(d.mu_down) == pytest.approx(0.25)
    assert float(d.mu1) == pytest.approx(2.5)
    # next: L = 0.1 < L_min = 2.5 - 2*0.25 = 2.0 -> value 2.0; mu_down <- 0.125 + 0.5*2.4
    v, _ = _grads(lambda x: d(x), torch.tensor(0.1))
    assert float(v) == pytest.approx(2.0)
    assert float(d.mu_down) == pytest.approx(1.325)
    assert float(d.mu_up) == pytest.approx(1.75)


def test_dalrc_batch_of_examples_updates_sides_with_mean_deviations():
    d = DALRC(b1=0.5, b_up=0.5, b_down=0.5, mu1_init=1.0, mu_up_init=1.0, mu_down_init=1.0)
    d(torch.tensor([2.0, 4.0, 0.5, 1.0]))
    assert float(d.mu_up) == pytest.approx(0.5 + 0.5 * 2.0)     # deviations 1, 3
    assert float(d.mu_down) == pytest.approx(0.5 + 0.5 * 0.5)   # deviation 0.5
    assert float(d.mu1) == pytest.approx(0.5 + 0.5 * 1.875)
    assert {"mu1", "mu_up", "mu_down", "steps"} <= set(d.state_dict())


def test_clrc_fixed_bounds_and_gradients():
    c = CLRC(l_min=1.0, l_max=3.0, reduction="none")
    x = torch.tensor([0.5, 2.0, 6.0], requires_grad=True)
    out = c(x)
    torch.testing.assert_close(out.detach(), torch.tensor([1.0, 2.0, 3.0]))
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([2.0, 1.0, 0.5]))
    with pytest.raises(ValueError):
        CLRC(l_min=2.0, l_max=1.0)


def test_huberise_values_and_gradients():
    h = Huberise(h=1.0, reduction="none")
    x = torch.tensor([0.25, 1.0, 4.0, 9.0], requires_grad=True)
    out = h(x)
    torch.testing.assert_close(out.detach(), torch.tensor([0.25, 1.0, 2.0, 3.0]))
    out.sum().backward()
    # d sqrt(hL)/dL = sqrt(h/L)/2
    torch.testing.assert_close(x.grad, torch.tensor([1.0, 1.0, 0.25, 1.0 / 6.0]))
    torch.testing.assert_close(out.detach(), torch.minimum(x.detach(), torch.sqrt(x.detach())))
    with pytest.raises(ValueError):
        Huberise(h=0.0)


@pytest.mark.parametrize("name,cls", [("none", NoClip), (None, NoClip), ("alrc", ALRC),
                                      ("DALRC", DALRC), ("clrc", CLRC), ("huber", Huberise),
                                      ("huberize", Huberise)])
def test_make_clipper(name, cls):
    c = make_clipper(name)
    assert isinstance(c, cls) and isinstance(c, LossClipper)
    out = c(torch.tensor([0.5, 0.7]))
    assert out.shape == () and float(out) == pytest.approx(0.6)


def test_make_clipper_errors_and_kwargs():
    assert make_clipper("alrc", n_max=2.0, mu1_init=1.0, mu2_init=2.0).n_max == 2.0
    with pytest.raises(InputError, match="unknown loss clipper"):
        make_clipper("gradient")
    with pytest.raises(InputError, match="bad parameters"):
        make_clipper("clrc", n_max=3)


def test_float16_losses_keep_their_dtype():
    a = ALRC(mu1_init=1.0, mu2_init=1.25, reduction="none")
    out = a(torch.tensor([1.0, 8.0], dtype=torch.float16))
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, torch.tensor([1.0, 2.5], dtype=torch.float16))


@pytest.mark.parametrize("seed", range(5))
def test_alrc_equals_clamp_with_gradient_ratio_on_random_batches(seed):
    """Invariant of Algorithm 1: value = clamp(L, L_min, L_max), d value / d L = value / L."""
    g = torch.Generator().manual_seed(seed)
    mu1 = float(torch.rand(1, generator=g)) * 2 + 0.5
    mu2 = mu1 ** 2 + float(torch.rand(1, generator=g)) + 0.01
    a = ALRC(n_max=2.0, n_min=1.0, mu1_init=mu1, mu2_init=mu2, mode="element", reduction="none")
    lo, hi = (float(t) for t in a.thresholds())
    x = (torch.rand(64, generator=g, dtype=torch.float64) * 3 * hi + 1e-3).requires_grad_(True)
    out = a(x)
    expected = x.detach().clamp(lo, hi)
    torch.testing.assert_close(out.detach(), expected)
    out.sum().backward()
    torch.testing.assert_close(x.grad, expected / x.detach())
