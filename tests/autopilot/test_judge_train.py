"""The tip judge's training pieces: k-NN familiarity rule, source stacking, fit, leave-one-surface-out plumbing."""
import numpy as np
import pytest

from scopenet.autopilot.judge import TIP_FEATURE_NAMES, TipJudge
from scopenet.autopilot.judge_train import (DEFAULTS, SURFACE_FAMILIES, familiarity, fit, hsi_sessions, knn_distance,
                                            stack)

NF = len(TIP_FEATURE_NAMES)


def test_knn_distance_reference_values():
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 4.0]])
    z = np.array([[0.0, 0.0], [3.0, 1.0]])
    assert knn_distance(ref, z, 1) == pytest.approx([0.0, 1.0])
    assert knn_distance(ref, z, 2) == pytest.approx([1.0, np.hypot(2.0, 1.0)])
    # leave one out: each reference row's own zero distance is skipped
    assert knn_distance(ref, ref, 1, leave_one_out=True) == pytest.approx([1.0, 1.0, 2.0, 4.0])
    # chunking does not change the answer
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 3)), rng.standard_normal((37, 3))
    assert knn_distance(a, b, 3, chunk=5) == pytest.approx(knn_distance(a, b, 3, chunk=1000))


def test_familiarity_threshold_is_the_leave_one_out_quantile():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((1500, 4))
    fam = familiarity(Z, k=5, quantile=0.95, n_ref=1000, seed=0)
    ref = np.asarray(fam["familiarity_reference"])
    assert ref.shape == (1000, 4) and fam["familiarity_k"] == 5
    loo = knn_distance(ref, ref, 5, leave_one_out=True)
    assert np.mean(loo > fam["familiarity_threshold"]) == pytest.approx(0.05, abs=0.002)
    # fresh draws of the same distribution are flagged at about the same rate; a shifted cloud nearly always
    fresh = knn_distance(ref, rng.standard_normal((2000, 4)), 5)
    far = knn_distance(ref, rng.standard_normal((200, 4)) + 4.0, 5)
    assert np.mean(fresh > fam["familiarity_threshold"]) < 0.12
    assert np.mean(far > fam["familiarity_threshold"]) > 0.95


def _params_with_reference(threshold=1.0):
    w = np.zeros(NF)
    w[TIP_FEATURE_NAMES.index("lattice_peak")] = 1.0
    return {"feature_names": list(TIP_FEATURE_NAMES), "mean": [0.0] * NF, "std": [1.0] * NF,
            "layers": [[[list(w)], [0.0]]], "precision": np.eye(NF).tolist(), "domain_threshold": 1e9,
            "band": 0.1, "max_hf_noise": 0.9, "familiarity_reference": np.zeros((3, NF)).tolist(),
            "familiarity_k": 2, "familiarity_threshold": threshold}


def test_an_unfamiliar_feature_vector_is_unknown_with_the_quantity_value_and_threshold():
    j = TipJudge(_params_with_reference(threshold=1.0))
    F = np.zeros((3, NF), np.float32)
    F[:, TIP_FEATURE_NAMES.index("lattice_peak")] = [0.8, -0.9, 3.0]     # distances 0.8, 0.9, 3.0
    res = j.judge_features(F)
    assert [r.verdict for r in res] == ["good", "bad", "unknown"]
    assert res[2].reason == "unfamiliar" and not res[2].in_domain
    assert res[2].detail == "2-NN distance to the training features 3.00 > 1.00"
    assert "detail" in res[2].to_dict() and "detail" not in res[0].to_dict()
    assert j.familiarity_distance(F) == pytest.approx([0.8, 0.9, 3.0])
    # without a reference set (older parameter files) or without domain checks the rule is off
    old = {k: v for k, v in _params_with_reference().items() if not k.startswith("familiarity")}
    assert TipJudge(old).judge_features(F)[2].verdict == "good"
    assert TipJudge(_params_with_reference(), check_domain=False).judge_features(F)[2].verdict == "good"
    # other reasons name their quantity too
    F2 = F[:1].copy()
    F2[0, TIP_FEATURE_NAMES.index("lattice_peak")] = 0.05
    low = j.judge_features(F2)[0]
    assert low.reason == "low_confidence" and low.detail.startswith("|p_good - 0.5|")


def test_judge_features_reproduces_judge_many():
    j = TipJudge("autopilot-judge")
    rng = np.random.default_rng(2)
    imgs = [rng.standard_normal((64, 64)).cumsum(1), np.full((40, 40), 1.0), rng.standard_normal((80, 96)).cumsum(0)]
    a = j.judge_many(imgs)
    b = j.judge_features(*j.image_evidence(imgs))
    assert [(r.verdict, r.reason, r.p_good) for r in a] == [(r.verdict, r.reason, r.p_good) for r in b]
    assert a[1].reason == "blank"


def test_stack_repeats_weighted_sources_and_skips_missing_ones():
    src = {"a": {"F": np.ones((2, NF)), "y": np.array([True, False])},
           "b": {"F": np.zeros((3, NF)), "y": np.zeros(3, bool), "w": 2}}
    F, y = stack(src, ["a", "b", "missing"])
    assert F.shape == (8, NF) and F.dtype == np.float32 and y.tolist() == [True, False] + [False] * 6
    assert stack(src, ["missing"])[0].shape == (0, NF)


def test_fit_learns_a_separable_rule_and_calibrates_familiarity():
    rng = np.random.default_rng(3)
    F = rng.standard_normal((400, NF)).astype(np.float32)
    y = F[:, 6] > 0
    cfg = {**DEFAULTS, "epochs": 150, "hidden": [16], "familiarity_reference": 300, "familiarity_quantile": 0.9}
    p = fit(F, y, cfg, seed=0)
    j = TipJudge(p)
    assert ((j.proba(F) >= 0.5) == y).mean() > 0.95
    assert len(p["familiarity_reference"]) == 300 and p["familiarity_k"] == DEFAULTS["familiarity_k"]
    # about 10 % of the training rows lie beyond the threshold; a far cloud is unfamiliar
    d = j.familiarity_distance(F)
    assert 0.03 < np.mean(d > j.familiarity_threshold) < 0.2
    assert np.all(j.familiarity_distance(F[:20] + 8.0) > j.familiarity_threshold)
    assert "familiarity_reference" not in fit(F, y, {**cfg, "familiarity_k": 0}, seed=0)
    # an ensemble averages its members; its first member is the single MLP of the same seed
    pe = fit(F, y, {**cfg, "ensemble": 3, "familiarity_k": 0}, seed=0)
    je = TipJudge(pe)
    assert len(je.members) == 3 and pe["layers"] == p["layers"]
    assert je.proba(F) == pytest.approx(je.member_proba(F).mean(0))
    assert je.member_proba(F)[0] == pytest.approx(j.proba(F))


def test_surface_families_name_training_sources():
    sources = {f"sim_{s}" for s in DEFAULTS["surfaces"]} | {"simmic", "gordon"}
    for fam, spec in SURFACE_FAMILIES.items():
        assert set(spec["drop"]) <= sources, fam
        assert set(spec["sim"]) <= set(spec["drop"]), fam
    assert hsi_sessions(["x_2017Jan05-120000_1", "y_2017Jan05-120000_2", "other"]).tolist() == [0, 0, 1]


def test_leave_one_surface_out_refits_without_the_family_and_scores_it(tmp_path):
    from scopenet.autopilot.bench import _loso_table, judge_loso

    cfg = {**DEFAULTS, "sim_per_surface": 6, "pixels": [48, 56], "sim_microscope": 4, "epochs": 20, "hidden": [8],
           "familiarity_reference": 40, "ensemble": 2}
    logs = []
    lo = judge_loso(tmp_path / "no-shared", tmp_path / "cache", config=cfg, seeds=2, log=logs.append)
    assert lo["seeds"] == [0, 1]
    fam = lo["families"]["fcc(111) (Au, Cu)"]
    assert fam["held_out_sources"] == ["sim_au111", "sim_cu111"]
    row = fam["scored"]["sim_au111 (simulated scans)"]
    assert row["images"] == 6 and len(row["accuracy_judged_seeds"]) == 2
    assert 0.0 <= row["coverage"] <= 1.0 and row["agree_coverage"] <= row["familiar_coverage"] <= row["coverage"]
    assert row["members"] == 2
    # no real data here: the real rows are absent, the simulated ones present for every family with a sim source
    assert "I/Au(111) (real crops)" not in fam["scored"]
    assert lo["families"]["Si(111)-7x7 (never trained on)"]["scored"] == {}
    # features were cached: a second run reads them (no "cached" log line) and gives the same answer
    again = judge_loso(tmp_path / "no-shared", tmp_path / "cache", config=cfg, seeds=2, log=logs.append)
    assert sum("cached" in m for m in logs) == 2
    assert again["families"]["fcc(111) (Au, Cu)"]["scored"] == fam["scored"]
    tab = _loso_table(lo)
    assert len(tab.rows) == sum(len(v["scored"]) for v in lo["families"].values())
