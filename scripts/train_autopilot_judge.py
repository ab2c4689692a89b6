"""Train the surface-agnostic tip judge (``autopilot-judge``) and validate it surface by surface.

The judge is a small MLP on :func:`scopenet.autopilot.judge.native_tip_features` (line glitches, lattice-peak
sharpness, autocorrelation ghosts, spectral resolution, noise), trained on

- simulated constant-current scans of several surfaces (``simulate.spm.surfaces``: H:Si(100), Au(111),
  Cu(111), HOPG, a random 2-D lattice) imaged with good and bad apexes
  (:func:`~scopenet.simulate.spm.probe.random_bad_apex`) through the autopilot's apex-to-image model,
  with domain randomisation (field of view, pixels, noise, glitch lines: several for unstable or
  adsorbate apexes, at most one for good ones),
- frames of the autopilot's own simulated microscope (:func:`scopenet.autopilot.bench.sim_frames`: good
  apexes and random bad ones after random conditioning actions, 8 nm x 64 px frames, the simulator's
  steps and contamination, no added glitch lines; seeds from ``sim_microscope_seed``), counted
  ``sim_microscope_weight`` times: without them the judge learnt "bad = glitch lines" and called the
  simulator's blunt, double and adsorbate tips good (issue 23), and
- optionally the gordon-hsi crowd verdicts on real H:Si(100) (``../shared/data/gordon-hsi``).

Validation (nothing here looks at the hand-labelled fixture crops; they are scored by
``scopenet bench autopilot --real --judge autopilot-judge``):

- leave one surface out: the simulated surface and its real images are dropped from training, then the
  model is scored on the real images of that surface (H:Si(100): all gordon-hsi; Au(111): nothing real
  is ever trained on);
- gordon-hsi, session-grouped 5-fold cross-validation of the shipped recipe (out-of-fold accuracy).

Usage::

    python scripts/train_autopilot_judge.py --config recipes/autopilot-judge/tip-judge.yaml \
        -o src/scopenet/weights/autopilot-judge.json [--overwrite]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from scopenet.autopilot.bench import sim_frames  # noqa: E402
from scopenet.autopilot.judge import TIP_FEATURE_NAMES, native_tip_features  # noqa: E402
from scopenet.simulate.spm.probe import ApexState, random_bad_apex, scan_states  # noqa: E402
from scopenet.simulate.spm.scan import flatten_lines, line_offsets, pink_noise, scan_times  # noqa: E402
from scopenet.simulate.spm.surfaces import height_spectrum, make_surface  # noqa: E402
from scopenet.simulate.spm.tips import dilate_paraboloid, tip_transfer  # noqa: E402

DEFAULTS = {
    "seed": 0,
    "surfaces": ["hsi100", "au111", "cu111", "hopg", "lattice"],
    "sim_per_surface": 600,
    "p_good": 0.5,
    "p_steps": 0.1,
    "pixel_nm": [0.03, 0.12],
    "pixels": [48, 128],
    "white_noise": [0.02, 0.15],
    "pink_noise": [0.02, 0.15],
    "use_hsi": True,
    "sim_microscope": 1500,
    "sim_microscope_seed": 100000,
    "sim_microscope_weight": 1,
    "hidden": [64, 32],
    "epochs": 600,
    "learning_rate": 0.003,
    "weight_decay": 0.0001,
    "band": 0.1,
    "domain_quantile": 0.995,
    "max_hf_noise": 0.9,
}


# ----------------------------------------------------------------------------- simulation


def good_apex(rng: np.random.Generator) -> ApexState:
    """A good apex: sharp (radius 0.3-0.9 nm, so that close-packed lattices resolve), single, near-symmetric,
    clean, stable."""
    return ApexState(radius_nm=float(np.exp(rng.uniform(np.log(0.3), np.log(0.9)))),
                     aspect=float(rng.uniform(1.0, 1.8)), angle=float(rng.uniform(0, np.pi)),
                     instability=float(rng.uniform(0, 0.25)))


def glitch_lines(rng: np.random.Generator, z: np.ndarray, k: int, amp: float) -> np.ndarray:
    """Add ``k`` tip-change glitches: a segment of a line offset or filled with noise (an apex that jumps)."""
    h, w = z.shape
    for _ in range(k):
        i = int(rng.integers(h))
        a = int(rng.integers(0, w // 2))
        b = int(rng.integers(a + w // 8, w + 1))
        if rng.random() < 0.5:
            z[i, a:b] += rng.choice([-1, 1]) * rng.uniform(0.5, 3.0) * amp
        else:
            z[i, a:b] += rng.uniform(0.5, 2.0) * amp * rng.standard_normal(b - a)
    return z


def render(surface: str, apex: ApexState, rng: np.random.Generator, size: int, fov_m: float,
           white: float, pink: float, p_steps: float = 0.1) -> np.ndarray:
    """One scan of ``surface`` with ``apex`` (the autopilot's apex-to-image model on any surface), [size, size]."""
    p = fov_m / size
    states, switch, m = scan_states(apex, rng, size, p)
    n = int(2 ** np.ceil(np.log2(size + 2 * m)))
    surf = make_surface(surface, rng, (n, n), p, p_steps=p_steps)
    spec = height_spectrum(surf, np.float32)
    A = surf.params["atom_height_m"]
    zs = []
    for s in states:
        z = np.fft.irfft2(spec * tip_transfer((n, n), p, s, np.float32), s=(n, n))
        if s.radius:
            z = dilate_paraboloid(z, s.radius, p)
        zs.append(z[m:m + size, m:m + size].astype(float) + s.z_offset)
    clean = zs[0] if switch is None else np.where(scan_times((size, size)) >= switch, zs[1], zs[0])
    ns = states[0].noise_scale
    noise = white * A * ns * rng.standard_normal((size, size))
    noise += pink * A * pink_noise(rng, size * size, 1.2).reshape(size, size)
    noise += line_offsets(rng, size, 0.1 * A * ns)[:, None]
    z = clean + noise
    bad_lines = apex.adsorbate or apex.instability >= 0.5
    k = int(rng.integers(2, 9)) if bad_lines else int(rng.random() < 0.3)
    z = glitch_lines(rng, z, k, A)
    return flatten_lines(z, 1).astype(np.float32)


def simulate(cfg: dict, surfaces, seed: int, log=print) -> tuple[list, np.ndarray, np.ndarray]:
    """Simulated scans: (images, good [N] bool, surface index [N])."""
    rng = np.random.default_rng(seed)
    imgs, good, surf = [], [], []
    for si, s in enumerate(surfaces):
        t = time.time()
        for _ in range(int(cfg["sim_per_surface"])):
            apex = good_apex(rng) if rng.random() < cfg["p_good"] else random_bad_apex(rng)
            size = int(rng.integers(cfg["pixels"][0], cfg["pixels"][1] + 1))
            fov = size * float(np.exp(rng.uniform(*np.log(cfg["pixel_nm"])))) * 1e-9
            imgs.append(render(s, apex, rng, size, fov, float(rng.uniform(*cfg["white_noise"])),
                               float(rng.uniform(*cfg["pink_noise"])), float(cfg["p_steps"])))
            good.append(apex.good())
            surf.append(si)
        log(f"  simulated {cfg['sim_per_surface']} {s} scans in {time.time() - t:.0f} s")
    return imgs, np.array(good), np.array(surf)


# ----------------------------------------------------------------------------- model


def features(images) -> np.ndarray:
    """Features at each image's own resolution, as the judge computes them."""
    return native_tip_features(images)


def fit(F: np.ndarray, y: np.ndarray, cfg: dict, seed: int) -> dict:
    """Standardise, train the MLP (balanced BCE, full batch Adam), fit the domain model. Returns the parameters."""
    from scopenet.nn.qnet import QMLP

    torch.manual_seed(seed)
    mu, sd = F.mean(0), F.std(0) + 1e-6
    Z = torch.from_numpy(((F - mu) / sd).astype(np.float32))
    t = torch.from_numpy(y.astype(np.float32))
    net = QMLP(F.shape[1], cfg["hidden"], 1)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    pos = float(t.mean())
    wts = torch.where(t > 0.5, 0.5 / max(pos, 1e-3), 0.5 / max(1 - pos, 1e-3))
    for _ in range(int(cfg["epochs"])):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(Z)[:, 0], t, weight=wts)
        loss.backward()
        opt.step()
    # domain: Mahalanobis distance in standardised feature space (shrunk covariance)
    Zn = Z.numpy().astype(np.float64)
    C = np.cov(Zn.T)
    C = 0.9 * C + 0.1 * np.eye(len(C))
    P = np.linalg.inv(C)
    d = np.sqrt(np.einsum("ij,jk,ik->i", Zn, P, Zn))
    layers = [[m.weight.detach().numpy().tolist(), m.bias.detach().numpy().tolist()]
              for m in net if isinstance(m, torch.nn.Linear)]
    return {"feature_names": list(TIP_FEATURE_NAMES), "mean": mu.tolist(), "std": sd.tolist(), "layers": layers,
            "precision": P.tolist(), "domain_threshold": float(np.quantile(d, cfg["domain_quantile"])),
            "band": float(cfg["band"]), "max_hf_noise": float(cfg["max_hf_noise"]), "final_loss": float(loss.detach())}


def predict(params: dict, F: np.ndarray) -> np.ndarray:
    from scopenet.autopilot.judge import TipJudge

    return TipJudge(params).proba(F)


def acc_report(p: np.ndarray, y: np.ndarray, band: float) -> dict:
    judged = np.abs(p - 0.5) >= band
    pr = p >= 0.5
    return {"images": int(len(y)), "good_fraction": round(float(y.mean()), 4),
            "majority_accuracy": round(float(max(y.mean(), 1 - y.mean())), 4),
            "accuracy_all": round(float((pr == y).mean()), 4),
            "coverage": round(float(judged.mean()), 4),
            "accuracy_judged": round(float((pr == y)[judged].mean()), 4) if judged.any() else None}


def hsi_sessions(names) -> np.ndarray:
    keys = [(re.search(r"(\d{4}[A-Za-z]{3}\d\d-\d{6})", n) or re.search(r"(.*)", n)).group(1) for n in names]
    u = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([u[k] for k in keys])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=None, help="YAML recipe (keys of DEFAULTS)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="judge parameters + card (JSON)")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--cache", type=Path, default=Path("runs/autopilot-judge/features.npz"))
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    if a.out.exists() and not a.overwrite:
        raise SystemExit(f"{a.out} exists: pass --overwrite")
    cfg = dict(DEFAULTS)
    if a.config:
        cfg.update(yaml.safe_load(a.config.read_text()) or {})
    torch.set_num_threads(1)
    t0 = time.time()
    surfaces = list(cfg["surfaces"])
    if a.cache.exists():
        z = np.load(a.cache)
        Fs, ys, ss, Fh, yh, gh = (z[k] for k in ("Fs", "ys", "ss", "Fh", "yh", "gh"))
        print(f"features from {a.cache}")
    else:
        imgs, ys, ss = simulate(cfg, surfaces, cfg["seed"])
        Fs = features(imgs)
        Fh = np.zeros((0, len(TIP_FEATURE_NAMES)), np.float32)
        yh, gh = np.zeros(0, bool), np.zeros(0, int)
        src = a.shared / "data" / "gordon-hsi"
        if (src / "images.npz").exists():
            from scopenet.autopilot.replay import load_recorded

            him, recs = load_recorded(src)
            Fh = features(him)
            yh = np.array([r.get("recorded_good", False) for r in recs])
            gh = hsi_sessions([r.get("name", "") for r in recs])
        a.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(a.cache, Fs=Fs, ys=ys, ss=ss, Fh=Fh, yh=yh, gh=gh)
    mcache = a.cache.with_name(a.cache.stem + f"-simmic-{cfg['sim_microscope']}-{cfg['sim_microscope_seed']}.npz")
    if int(cfg["sim_microscope"]) and mcache.exists():
        z = np.load(mcache)
        Fm, ym = z["Fm"], z["ym"]
    elif int(cfg["sim_microscope"]):
        t = time.time()
        mim, ym, _ = sim_frames(int(cfg["sim_microscope"]), int(cfg["sim_microscope_seed"]))
        Fm = features(mim)
        mcache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(mcache, Fm=Fm, ym=ym)
        print(f"  {len(Fm)} simulated-microscope frames in {time.time() - t:.0f} s")
    else:
        Fm, ym = np.zeros((0, len(TIP_FEATURE_NAMES)), np.float32), np.zeros(0, bool)
    wm = int(cfg["sim_microscope_weight"])
    FmW, ymW = np.repeat(Fm, wm, 0), np.repeat(ym, wm)
    t_data = time.time() - t0
    print(f"{len(Fs)} simulated, {len(Fm)} simulated-microscope, {len(Fh)} gordon-hsi feature rows ({t_data:.0f} s)")
    use_hsi = bool(cfg["use_hsi"]) and len(Fh)
    band = float(cfg["band"])
    val: dict = {}
    # simulation, leave one simulated surface out (sim -> sim)
    for k, s in enumerate(surfaces):
        tr = ss != k
        pm = fit(np.concatenate([Fs[tr]] + ([FmW] if s != "hsi100" else [])),
                 np.concatenate([ys[tr]] + ([ymW] if s != "hsi100" else [])), cfg, cfg["seed"])
        val[f"sim_{s}_held_out"] = acc_report(predict(pm, Fs[~tr]), ys[~tr], band)
        print(f"  sim {s} held out: {val[f'sim_{s}_held_out']}")
    if len(Fh):
        # H:Si held out entirely: no simulated H:Si, no gordon-hsi
        tr = ss != surfaces.index("hsi100")
        pm = fit(Fs[tr], ys[tr], cfg, cfg["seed"])
        val["real_hsi_held_out_surface"] = acc_report(predict(pm, Fh), yh, band)
        print(f"  real H:Si, surface held out: {val['real_hsi_held_out_surface']}")
        # session-grouped 5-fold CV of the shipped recipe
        folds = np.arange(gh.max() + 1) % 5
        rng = np.random.default_rng(cfg["seed"])
        folds = rng.permutation(folds)[gh]
        p = np.zeros(len(Fh))
        for f in range(5):
            te = folds == f
            F = np.concatenate([Fs, FmW, Fh[~te]]) if use_hsi else np.concatenate([Fs, FmW])
            y = np.concatenate([ys, ymW, yh[~te]]) if use_hsi else np.concatenate([ys, ymW])
            pm = fit(F, y, cfg, cfg["seed"] + f)
            p[te] = predict(pm, Fh[te])
        val["real_hsi_cv5_sessions"] = acc_report(p, yh, band)
        print(f"  real H:Si, 5-fold session CV: {val['real_hsi_cv5_sessions']}")
    if len(Fm):
        # the simulated microscope's frames, 5-fold CV (frames are independent microscopes), and without them
        folds = np.random.default_rng(cfg["seed"]).permutation(np.arange(len(Fm)) % 5)
        p = np.zeros(len(Fm))
        for f in range(5):
            te = folds == f
            Fw, yw = np.repeat(Fm[~te], wm, 0), np.repeat(ym[~te], wm)
            pm = fit(np.concatenate([Fs, Fw] + ([Fh] if use_hsi else [])),
                     np.concatenate([ys, yw] + ([yh] if use_hsi else [])), cfg, cfg["seed"] + f)
            p[te] = predict(pm, Fm[te])
        val["sim_microscope_cv5"] = acc_report(p, ym, band)
        print(f"  simulated microscope, 5-fold CV: {val['sim_microscope_cv5']}")
        pm = fit(np.concatenate([Fs] + ([Fh] if use_hsi else [])), np.concatenate([ys] + ([yh] if use_hsi else [])),
                 cfg, cfg["seed"])
        val["sim_microscope_not_trained_on"] = acc_report(predict(pm, Fm), ym, band)
        print(f"  simulated microscope, not trained on: {val['sim_microscope_not_trained_on']}")
    t1 = time.time()
    F = np.concatenate([Fs, FmW, Fh]) if use_hsi else np.concatenate([Fs, FmW])
    y = np.concatenate([ys, ymW, yh]) if use_hsi else np.concatenate([ys, ymW])
    params = fit(F, y, cfg, cfg["seed"])
    t_fit = time.time() - t1
    # the shipped model without any Au(111)/Cu(111) simulation, for the bench's leave-Au-out row
    tr = ~np.isin(ss, [surfaces.index(s) for s in ("au111", "cu111") if s in surfaces])
    params_no_fcc = fit(np.concatenate([Fs[tr], FmW] + ([Fh] if use_hsi else [])),
                        np.concatenate([ys[tr], ymW] + ([yh] if use_hsi else [])), cfg, cfg["seed"])
    card = {
        "name": a.out.stem, "task": "autopilot-judge", "version": 2,
        "description": "surface-agnostic STM tip judge: an MLP on tip_features (line glitches, lattice-peak "
                       "sharpness, autocorrelation ghosts, spectral resolution, noise) -> good-tip probability, "
                       "with unknown for blank, noise-only, coarse or out-of-domain images and a low-confidence band",
        "training": {"config": cfg, "script": "scripts/train_autopilot_judge.py",
                     "data": f"{len(Fs)} simulated scans ({', '.join(surfaces)}; {cfg['sim_per_surface']} each, "
                             f"seed {cfg['seed']}) + {len(Fm)} simulated-microscope frames (sim_frames, seeds "
                             f"{cfg['sim_microscope_seed']}.., x{wm})" + (f" + {len(Fh)} gordon-hsi H:Si(100) images with the crowd "
                                                        "verdict" if use_hsi else ""),
                     "time_s": round(time.time() - t0, 1), "data_time_s": round(t_data, 1),
                     "fit_time_s": round(t_fit, 2), "hardware": f"1 CPU thread, {platform.machine()}"},
        "metrics": {"validation": val},
        "judge": params, "judge_without_fcc111": params_no_fcc,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(card, indent=1))
    tmp.replace(a.out)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e3:.0f} kB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
