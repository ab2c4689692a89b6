"""``scopenet bench atoms`` bookkeeping: the position error and its coverage split by the support's strength."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.tasks.atoms import AtomFinder
from scopenet.tasks.atoms.bench import WEAK_SUPPORT, evaluate, held_out_images


@pytest.mark.slow
def test_evaluate_splits_error_and_coverage_by_support():
    weak = held_out_images(1, 200.0, 96, seed=9, support=0.0)  # Cu [110], 9.9 px spacing, 47 columns
    strong = held_out_images(1, 200.0, 96, seed=9, support=0.12)  # the same crystal on a support
    assert weak[0].params["support"] < WEAK_SUPPORT <= strong[0].params["support"]
    m = evaluate(AtomFinder.pretrained("default"), weak + strong, methods={})["AtomFinder"]
    alone = [evaluate(AtomFinder.pretrained("default"), x, methods={})["AtomFinder"] for x in (weak, strong)]
    assert m["n_weak"] == alone[0]["n_weak"] > 0 and m["n_strong"] == alone[1]["n_strong"] > 0
    assert m["rms_px_weak"] == pytest.approx(alone[0]["rms_px"]) and m["rms_px_strong"] == pytest.approx(alone[1]["rms_px"])
    assert m["inside_1sigma_weak"] == pytest.approx(alone[0]["inside_1sigma"])
    assert m["inside_1sigma_strong"] == pytest.approx(alone[1]["inside_1sigma"])
    n = np.array([m["n_weak"], m["n_strong"]])  # the parts add up to the whole
    both = np.array([m["inside_1sigma_weak"], m["inside_1sigma_strong"]])
    assert m["inside_1sigma"] == pytest.approx(float(n @ both / n.sum()))
    rms = np.array([m["rms_px_weak"], m["rms_px_strong"]])
    assert m["rms_px"] == pytest.approx(float(np.sqrt(n @ rms ** 2 / n.sum())))
    assert m["rms_px_strong"] > m["rms_px_weak"]  # the same columns, moved by the support's bumps
