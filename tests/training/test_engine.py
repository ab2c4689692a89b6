"""The training engine: data helpers, schedules, batch streams and the budgeted module."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from scopenet.errors import InputError
from scopenet.training.budget import EpochStream, SeededStream, _open_log
from scopenet.training.config import resolve_precision
from scopenet.training.data import dihedral, dihedral_inverse, dihedral_tta, normalise_image, replace_nonfinite
from scopenet.training.schedules import (cosine, cyclic_sawtooth, demon_beta, exponential_decay, one_cycle,
                                         set_momentum, step_decay)

torch.set_num_threads(1)


def test_mixed_precision_falls_back_on_cpu():
    with pytest.warns(UserWarning, match="GPU"):
        assert resolve_precision("16-mixed", "cpu") == "32"
    assert resolve_precision("32", "gpu") == "32"


# ---------------------------------------------------------------------------------------------- data
def test_nonfinite_and_normalisation():
    img = np.array([[1, np.nan], [np.inf, 3]], dtype=np.float32)
    out = replace_nonfinite(img)
    assert out.tolist() == [[1, 2], [2, 3]]
    assert replace_nonfinite(img, 0).tolist() == [[1, 0], [0, 3]]
    with pytest.raises(InputError):
        replace_nonfinite(np.full((2, 2), np.nan))
    z = normalise_image(np.arange(16.0).reshape(4, 4))
    assert abs(z.mean()) < 1e-6 and abs(z.std() - 1) < 1e-6
    m = normalise_image(np.arange(16.0).reshape(4, 4), "minmax")
    assert m.min() == 0 and m.max() == 1
    assert np.all(normalise_image(np.ones((3, 3))) == 0)
    with pytest.raises(InputError):
        normalise_image(img, "robust")


def test_dihedral_group_of_eight():
    a = np.arange(12.0).reshape(3, 4)
    outs = [dihedral(a, k) for k in range(8)]
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    assert np.array_equal(outs[0], a)
    assert np.array_equal(outs[1], np.rot90(a)) and np.array_equal(outs[4], a[:, ::-1])
    with pytest.raises(InputError):
        dihedral(a, 8)
    # the inverse undoes each transform, also with leading (channel) axes
    c = np.arange(24.0).reshape(2, 3, 4)
    for k in range(8):
        assert np.array_equal(dihedral_inverse(dihedral(c, k), k), c)
    with pytest.raises(InputError):
        dihedral_inverse(a, -1)


def test_dihedral_tta_maps_each_output_back():
    a = np.random.default_rng(0).normal(size=(5, 7))
    np.testing.assert_allclose(dihedral_tta(lambda x: 2 * x + 1, a), 2 * a + 1, rtol=1e-6)
    # a position-dependent function is averaged over the orientations: x + column index becomes
    # x + the mean of the column index and the row index (as seen by the transformed copies)
    # (column, row, 4 - column, 4 - row, each twice: 2 everywhere)
    out = dihedral_tta(lambda x: x + np.arange(x.shape[-1])[None, :], np.zeros((5, 5)))
    np.testing.assert_allclose(out, 2.0, atol=1e-6)
    # channels in, one image out; a subset of the transforms
    two = np.stack([a, 3 * a])
    np.testing.assert_allclose(dihedral_tta(lambda x: x[0] + x[1], two, ks=[0, 5]), 4 * a, rtol=1e-6)


# ---------------------------------------------------------------------------------------------- schedules
def test_schedule_reference_values():
    assert step_decay(0, step_size=10) == 1 and step_decay(25, step_size=10, gamma=0.1) == pytest.approx(0.01)
    assert exponential_decay(50, decay_steps=100, gamma=0.25) == pytest.approx(0.5)
    # Ede adaptive scans: M = 900 steps, envelope 0.75**(5m/M), triangle of period 2M/9 = 200 in [0.2, 1]
    M = 900
    assert cyclic_sawtooth(0, M) == pytest.approx(1.0)
    assert cyclic_sawtooth(50, M) == pytest.approx(0.75 ** (50 / 180) * 0.6)
    assert cyclic_sawtooth(100, M) == pytest.approx(0.75 ** (100 / 180) * 0.2)
    assert cyclic_sawtooth(200, M) == pytest.approx(0.75 ** (200 / 180) * 1.0)
    assert cyclic_sawtooth(899, M) == pytest.approx(0.75 ** (899 / 180) * (0.2 + 0.8 * 0.01))  # r = 99, one step before the trough
    # DEMON: beta_t = b (1 - t/T) / ((1 - b) + b (1 - t/T))
    assert demon_beta(0, 100, 0.9) == pytest.approx(0.9)
    assert demon_beta(50, 100, 0.9) == pytest.approx(0.45 / 0.55)
    assert demon_beta(100, 100, 0.9) == 0.0
    with pytest.raises(InputError):
        step_decay(3, step_size=0)


def test_cosine_and_one_cycle():
    assert cosine(0.0) == pytest.approx(1.0) and cosine(0.5) == pytest.approx(0.5)
    assert cosine(1.0, 0.1) == pytest.approx(0.1)
    assert cosine(-1.0, 0.1) == pytest.approx(1.0) and cosine(3.0, 0.1) == pytest.approx(0.1)
    assert cosine(0.5, 0.2) == pytest.approx(0.6)
    lr = [one_cycle(s, 100, 1.0) for s in range(100)]
    assert lr[0] == pytest.approx(1 / 25) and max(lr) == pytest.approx(1.0) and lr.index(max(lr)) == 30
    assert lr[-1] < 1e-3 and all(a <= b for a, b in zip(lr[:30], lr[1:31]))


def test_set_momentum_for_adam_and_sgd():
    p = [torch.nn.Parameter(torch.zeros(1))]
    adam, sgd = torch.optim.Adam(p, betas=(0.9, 0.99)), torch.optim.SGD(p, lr=0.1, momentum=0.9)
    for opt in (adam, sgd):
        set_momentum(opt, demon_beta(50, 100, 0.9))
    assert adam.param_groups[0]["betas"] == (pytest.approx(0.45 / 0.55), 0.99)
    assert sgd.param_groups[0]["momentum"] == pytest.approx(0.45 / 0.55)


# ---------------------------------------------------------------------------------------------- streams
def _take(stream, n=3):
    return [float(v) for v in itertools.islice(iter(stream), n)]


def test_seeded_stream_is_a_function_of_seed_rank_and_step():
    s = SeededStream(lambda rng: rng.random(), seed=4)
    first = _take(s, 5)
    assert _take(s, 5) == first  # same seed, rank and start step: the same batches
    s.start_step = 2
    assert _take(s, 3) == first[2:5]  # a resumed stream continues exactly where the first one was
    s.rank, s.start_step = 1, 0
    assert _take(s) != first[:3]  # another rank draws other batches
    assert _take(SeededStream(lambda rng: rng.random(), seed=5)) != first[:3]


def test_seeded_stream_does_not_depend_on_the_number_of_workers():
    s = SeededStream(lambda rng: torch.tensor(rng.random()), seed=1)
    one = [float(b) for b in itertools.islice(torch.utils.data.DataLoader(s, batch_size=None), 6)]
    two = [float(b) for b in itertools.islice(torch.utils.data.DataLoader(s, batch_size=None, num_workers=2), 6)]
    assert one == two


def test_epoch_stream_covers_each_sample_once_per_epoch_and_splits_ranks():
    s = EpochStream(10, 4, lambda idx, rng: idx.tolist(), seed=3)
    assert s.steps_per_epoch == 3  # 4 + 4 + 2 (a last batch of one would be dropped)
    batches = list(itertools.islice(iter(s), 6))
    assert sorted(sum(batches[:3], [])) == list(range(10)) and sorted(sum(batches[3:], [])) == list(range(10))
    assert batches[:3] != batches[3:]  # a new permutation each epoch
    assert EpochStream(9, 4, lambda i, r: i).steps_per_epoch == 2  # 4 + 4 (+1 dropped)
    r0, r1 = (EpochStream(16, 4, lambda idx, rng: idx.tolist(), seed=3) for _ in range(2))
    r0.world = r1.world = 2
    r1.rank = 1
    a, b = list(itertools.islice(iter(r0), 2)), list(itertools.islice(iter(r1), 2))
    assert r0.steps_per_epoch == 2 and sorted(sum(a + b, [])) == list(range(16))  # disjoint shares
    s.start_step = 4
    assert next(iter(s)) == batches[4]
    with pytest.raises(InputError):
        EpochStream(1, 4, lambda i, r: i)


def test_log_rows_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    log = tmp_path / "log.csv"
    f = _open_log(log, 0, ["step", "loss"])
    f.write("".join(f"{i},0.{i}\n" for i in range(1, 8)))
    f.close()
    f = _open_log(log, 5, ["step", "loss"])
    f.write("6,x\n")
    f.close()
    assert log.read_text().split() == ["step,loss", "1,0.1", "2,0.2", "3,0.3", "4,0.4", "5,0.5", "6,x"]
    _open_log(log, 0, ["step", "loss"]).close()  # a run started over starts its log over
    assert log.read_text().split() == ["step,loss"]
