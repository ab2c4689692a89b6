"""Optional adversarial fine-tuning of the completion network: replay buffer, LSGAN steps, the training loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from scopenet.nn.partial_stem import MultiScaleDiscriminator, lsgan_losses
from scopenet.tasks.inpaint.adversarial import ReplayBuffer
from scopenet.tasks.inpaint.config import InpaintTrainConfig
from scopenet.tasks.inpaint.train import _discriminator_step, _generator_adv_loss, main


def _batch(v: float, n: int = 2) -> torch.Tensor:
    return torch.full((n, 1, 4, 4), float(v))


def test_replay_buffer_fills_then_swaps_and_round_trips():
    buf = ReplayBuffer(capacity=3, p_replay=1.0, seed=0)
    assert torch.equal(buf.push_and_sample(_batch(1)), _batch(1))  # filling: the new images come back
    buf.push_and_sample(_batch(2))
    assert len(buf) == 3  # capacity holds: one of the 2s was not stored
    state = buf.state_dict()
    out = buf.push_and_sample(_batch(9, 1))  # full, p_replay=1: the image is swapped for a stored one
    assert float(out.max()) in (1.0, 2.0) and len(buf) == 3 and sum(bool((t == 9).all()) for t in buf.items) == 1
    again = ReplayBuffer(capacity=3, p_replay=1.0, seed=5)
    again.load_state_dict(state)
    assert torch.equal(again.push_and_sample(_batch(9, 1)), out)  # same state, same draw
    keep = ReplayBuffer(capacity=1, p_replay=0.0)
    keep.push_and_sample(_batch(1, 1))
    assert torch.equal(keep.push_and_sample(_batch(7)), _batch(7))  # p_replay=0: never swapped
    assert torch.equal(ReplayBuffer(capacity=0).push_and_sample(_batch(3)), _batch(3))
    with pytest.raises(ValueError):
        ReplayBuffer(capacity=-1)


def test_generator_and_discriminator_steps_touch_only_their_own_network():
    torch.manual_seed(0)
    disc = MultiScaleDiscriminator(channels=4, crop_sizes=(16, 32), input_size=32)
    out = torch.rand(2, 1, 32, 32, requires_grad=True)
    g = _generator_adv_loss(disc, out, lambda_adv=5.0)
    g.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters()) and all(p.requires_grad for p in disc.parameters())
    # the value is lambda * mean((D(out) - 1)^2), the generator half of lsgan_losses
    with torch.no_grad():
        torch.manual_seed(1)
        d_fake = disc(out)
    assert float(lsgan_losses(torch.ones(1), d_fake, 2.0)[1]) == pytest.approx(float(2.0 * ((d_fake - 1) ** 2).mean()))
    before = [p.detach().clone() for p in disc.parameters()]
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    real = torch.rand(2, 1, 32, 32)
    d = _discriminator_step(disc, opt, ReplayBuffer(4), out, real)
    assert np.isfinite(d) and d > 0
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, disc.parameters()))


def test_config_refuses_crops_larger_than_the_training_crop():
    with pytest.raises(ValidationError, match="largest discriminator crop"):
        InpaintTrainConfig(adversarial=True, crop=128)  # default crops go to 280 px
    assert InpaintTrainConfig(adversarial=False, crop=128).crop == 128


def test_adversarial_training_runs_checkpoints_and_resumes(tmp_path):
    kw = dict(workdir=tmp_path / "run", crop=64, batch_size=2, max_steps=3, time_budget_s=120, n_simulated=2,
              simulated_size=64, use_em_real=False, n_coverages=2, masks_per_level=1, threads=1, log_every=1,
              arch_config={"depth": 2, "base_channels": 4, "unshuffle": 1}, adversarial=True,
              disc_crop_sizes=[16, 32, 64], disc_input=32, disc_channels=4, replay_size=3, checkpoint_every_s=0)
    stem = main(InpaintTrainConfig(**kw))
    st = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert st["budget"]["steps"] == 3 and len(st["budget"]["extra"]["replay"]["items"]) == 3
    assert len(st["optimizer_states"]) == 2  # generator and discriminators
    key = "disc.discs.0.net.0.parametrizations.weight.original"
    assert key in st["state_dict"]
    import json

    card = json.loads(stem.with_suffix(".json").read_text())
    adv = card["notes"]["adversarial"]  # the ModelCard keeps keys outside its schema in notes
    assert np.isfinite(adv["final_running_g_adv"]) and adv["lambda_adv"] == 5.0
    rows = (tmp_path / "run" / "log.csv").read_text().split()
    assert len(rows) == 3 and all(len(r.split(",")) == 7 for r in rows)
    main(InpaintTrainConfig(**{**kw, "max_steps": 5}))  # resumes at step 3 with the discriminators' state
    st2 = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert st2["budget"]["steps"] == 5 and len((tmp_path / "run" / "log.csv").read_text().split()) == 5
    assert [int(r.split(",")[0]) for r in (tmp_path / "run" / "log.csv").read_text().split()] == [1, 2, 3, 4, 5]
    assert not torch.equal(st2["state_dict"][key], st["state_dict"][key])
