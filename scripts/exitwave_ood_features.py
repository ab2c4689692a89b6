"""Which per-image quantity separates unseen materials from the training distribution of an exit-wave model?

For the bench's three validation sets (``scopenet bench exitwave``: unseen transforms, + unseen parameters,
+ unseen materials; same seed, same crops) and ``--train-crops`` random 128 px crops of the model's training
waves, compute per image: mean / median / 10th and 25th percentiles of the phase confidence, the fraction of
pixels below confidence 0.5, the resultant length of the predicted phases, the amplitude's sd, skewness,
kurtosis and high-frequency fraction, the agreement of the 8 flipped/rotated views, and a Mahalanobis
distance of the network's pooled features (mean and sd of its 1/4-resolution channels) fitted on half the
training crops. Each quantity is thresholded at the 95th percentile (suspicious direction) of the other
half of the training crops, i.e. calibrated to flag 5 % of training-like inputs, and the script prints the
flag rate on each set and the mean MAE of flagged / unflagged waves::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/exitwave_ood_features.py --model restricted --n 24 --seed 0
    OMP_NUM_THREADS=1 .venv/bin/python scripts/exitwave_ood_features.py --model restricted --n 24 --seed 1

The training waves must be in ``--data-dir`` (``scripts/make_exitwave_data.py``). The shipped rule
(:func:`scopenet.tasks.exitwave.model.calibrate_confidence`) is the mean confidence's.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

NAMES = ["mean confidence", "fraction conf < 0.5", "median confidence", "conf 10th pct", "conf 25th pct",
         "phase resultant length", "amplitude sd", "amplitude skewness", "amplitude kurtosis",
         "high-frequency fraction", "8-view agreement"]
SIGN = [-1, 1, -1, -1, -1, 1, 0, 0, 0, 0, -1]  # +1: large is suspicious, -1: small is, 0: both tails tried


def features(net, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scalar features, pooled network features) of one scaled amplitude ``a`` (H, W)."""
    import torch

    from scopenet.image.tta import dihedral, dihedral_inverse
    from scopenet.tasks.exitwave.familiar import high_frequency_fraction

    xs = np.stack([np.ascontiguousarray(dihedral(a, k)) for k in range(8)]).astype(np.float32)
    with torch.inference_mode():
        x = torch.from_numpy(xs)[:, None]
        s2 = net.body(net.down(net.stem(x[:1] - 1.0)))
        pooled = torch.cat([s2.mean((2, 3))[0], s2.std((2, 3))[0]]).numpy()
        raw = net.forward_raw(x)[1].numpy()
    conf = np.clip(np.hypot(raw[0, 0], raw[0, 1]), 0, 1)
    ph = np.arctan2(raw[:, 1], raw[:, 0])
    views = np.stack([np.exp(1j * dihedral_inverse(ph[k], k)) for k in range(8)])
    z = a - a.mean()
    sd = a.std()
    scal = [conf.mean(), (conf < 0.5).mean(), np.median(conf), np.percentile(conf, 10), np.percentile(conf, 25),
            np.abs(np.exp(1j * ph[0]).mean()), sd, (z ** 3).mean() / max(sd, 1e-9) ** 3,
            (z ** 4).mean() / max(sd, 1e-9) ** 4, high_frequency_fraction(a), np.abs(views.mean(0)).mean()]
    return np.array(scal), pooled


def main(argv=None) -> int:
    import torch

    from scopenet.tasks.exitwave import bench as B
    from scopenet.tasks.exitwave.model import ExitWaveEstimator, UnfamiliarInputWarning
    from scopenet.tasks.exitwave.train import load_pool, make_batch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="restricted")
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-crops", type=int, default=300)
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/exitwave-data"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    est = ExitWaveEstimator.pretrained(a.model)
    net = est.net_.eval()
    sets = B.simulate_validation_sets(B.training_sets(est), a.n, a.seed, progress=False)
    rng = np.random.default_rng([a.seed, 9])  # the bench's crops
    got = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnfamiliarInputWarning)
        for name in B.SET_NAMES:
            views = [B.transform(w, 128, rng) for w in sets[name][0]]
            s = B.score_waves(est, views, rng)
            f = [features(net, est._scaled(np.abs(v))) for v in views]
            got[name] = (np.array(s["model"]), np.stack([x[0] for x in f]), np.stack([x[1] for x in f]))
    pool = load_pool([a.data_dir / f"{s['name']}.npz" for s in B.training_sets(est)])
    amps, _ = make_batch(pool, 128, a.train_crops, np.random.default_rng([a.seed, 77]))
    tr = [features(net, x[0]) for x in amps]
    tr_s, tr_n = np.stack([x[0] for x in tr]), np.stack([x[1] for x in tr])
    half = len(tr) // 2
    mu = tr_n[:half].mean(0)
    cov = np.cov(tr_n[:half], rowvar=False)
    cov = 0.9 * cov + 0.1 * np.trace(cov) / len(cov) * np.eye(len(cov))
    prec = np.linalg.inv(cov)

    def maha(x):
        d = x - mu
        return np.sqrt(np.einsum("ij,jk,ik->i", d, prec, d))

    scores = [(nm, sg, tr_s[half:, j], {k: v[1][:, j] for k, v in got.items()})
              for j, nm in enumerate(NAMES) for sg in ([SIGN[j]] if SIGN[j] else [-1, 1])]
    scores.append(("Mahalanobis, pooled net features", 1, maha(tr_n[half:]), {k: maha(v[2]) for k, v in got.items()}))
    print(f"model {est.name}, seed {a.seed}, n {a.n}; flag rate (MAE flagged / unflagged) per set")
    print("| quantity | direction | threshold | " + " | ".join(B.SET_NAMES) + " |")
    print("|---|---|---|" + "---|" * len(B.SET_NAMES))
    for nm, sg, cal, per in scores:
        thr = np.percentile(sg * cal, 95)
        cells = []
        for k in B.SET_NAMES:
            m, flag = got[k][0], sg * per[k] > thr
            fm = f"{m[flag].mean():.2f}" if flag.any() else "-"
            cells.append(f"{flag.mean():.0%} ({fm} / {m[~flag].mean():.2f})")
        print(f"| {nm} | {'high' if sg > 0 else 'low'} | {sg * thr:.3f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
