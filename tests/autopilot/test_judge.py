"""The judge's model-free image statistics, the H:Si crowd rule, and the judge an agent's card asks for."""
import numpy as np
import pytest

from scopenet.autopilot.judge import FEATURE_NAMES, hsi_crowd_rule, image_features


def _std(z):
    return ((z - z.mean()) / z.std())[None, None].astype(np.float32)


def test_image_features_reference_values():
    rng = np.random.default_rng(0)
    white = image_features(_std(rng.standard_normal((64, 64))))[0]
    y, x = np.mgrid[:64, :64]
    smooth = image_features(_std(np.sin(2 * np.pi * x / 32) + np.cos(2 * np.pi * y / 64)))[0]
    assert white.shape == (len(FEATURE_NAMES),)
    assert white[0] == pytest.approx(1.0, abs=0.05) and smooth[0] < 0.05          # hf_noise
    assert white[2] > 0.6 and smooth[2] < 1e-6 and smooth[3] < 1e-6               # spectral fractions
    # a tip change half-way: lines below have four times the contrast
    z = rng.standard_normal((64, 64))
    z[32:] *= 4
    switched = image_features(_std(z))[0]
    assert switched[1] == pytest.approx(np.log(4), abs=0.15) and white[1] < 0.3


def test_hsi_crowd_rule():
    cats = ["asymmetries", "individual_atoms", "dimers", "rows", "tip_change", "bad_blurry"]
    P = np.array([[0.0, 0.9, 0.2, 0.5, 0.1, 0.2],
                  [1.0, 0.1, 0.6, 1.0, 0.0, 0.0],
                  [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    assert hsi_crowd_rule(P, cats) == pytest.approx([0.9 * 0.9 * 0.8, 0.6, 0.0])
    assert hsi_crowd_rule(P[:, ::-1], cats[::-1]) == pytest.approx(hsi_crowd_rule(P, cats))


@pytest.mark.slow
def test_judge_from_the_shipped_card_matches_the_agent():
    from scopenet.autopilot.agent import QAgent, observation, observation_size
    from scopenet.autopilot.judge import Judge, judge_from_card
    from scopenet.errors import InputError

    agent = QAgent.pretrained("default")
    judge = judge_from_card(agent.card)
    assert observation_size(judge) == agent.card["architecture"]["config"]["n_obs"]
    rng = np.random.default_rng(1)
    res = judge(rng.standard_normal((64, 64)))
    assert set(res.features) == set(judge.feature_names) and res.verdict in ("good", "bad", "unknown")
    assert 0 <= agent.act(observation(res, [], 0, 100, False)) < 12
    # an H:Si multi-label model serves as a judge through the crowd rule; a model without those categories not
    hsi = Judge(model="hsi-six-sim")
    r = hsi(rng.standard_normal((64, 64)))
    assert 0 <= r.p_good <= 1 and r.embedding.shape == (hsi.embedding_dim,)
    with pytest.raises(InputError):
        Judge(model=hsi.clf.__class__(categories=["a", "b"], mode="multi"))


@pytest.mark.slow
def test_crowd_rule_out_of_fold_scores_the_recorded_verdicts(tmp_path):
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2].parent / "shared"
    if not (shared / "data" / "gordon-hsi" / "images.npz").exists():
        pytest.skip("gordon-hsi data not available (../shared/data/gordon-hsi)")
    from scopenet.autopilot.bench import crowd_rule_out_of_fold
    from scopenet.autopilot.replay import load_recorded

    _, recs = load_recorded(shared / "data" / "gordon-hsi", limit=40)
    truth = np.array([r["recorded_good"] for r in recs])
    # perfect logits for images 0-19 (fold 0) and inverted ones for 20-39 (fold 1); categories in CATEGORIES order
    good = np.array([-9, 9, 9, 0, -9, -9.0])
    bad = np.array([-9, -9, -9, 0, 9, 9.0])
    lg = np.where(truth[:, None], good, bad)
    np.savez(tmp_path / "cv.logits.npz", fold0_test_index=np.arange(20), fold0_logits=lg[None, :20],
             fold1_test_index=np.arange(20, 40), fold1_logits=np.where(truth[20:, None], bad, good)[None])
    out = crowd_rule_out_of_fold(tmp_path / "cv.logits.npz", shared)
    assert out["images"] == 40 and out["folds"] == 2
    assert out["accuracy_p0.5"] == pytest.approx(0.5) and out["good_fraction"] == pytest.approx(truth.mean())
