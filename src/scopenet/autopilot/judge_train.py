"""Training data, fitting and leave-one-surface-out validation of the tip judge (:class:`~.judge.TipJudge`).

The pieces ``scripts/train_autopilot_judge.py`` trains the shipped ``autopilot-judge`` from, and that
``scopenet bench autopilot --loso`` re-fits with one surface family left out:

- **sources** (:func:`training_sources`): simulated constant-current scans of each surface of
  ``cfg["surfaces"]`` (``sim_<surface>``; :func:`simulate`), frames of the autopilot's own simulated
  microscope (``simmic``, an H:Si(100) sample; :func:`~.bench.sim_frames`) and the gordon-hsi crowd
  verdicts on real H:Si(100) (``gordon``). Their :func:`~.judge.native_tip_features` are cached in
  ``cache_dir`` under a hash of the recipe keys that change them.
- **fit** (:func:`fit`): a balanced-BCE MLP on standardised features, a Mahalanobis domain model, and the
  **familiarity rule**: the distance of an image's standardised feature vector to its ``k``-th nearest
  neighbour among (a seeded subsample of) the training rows, thresholded at the ``familiarity_quantile``
  of the same subsample's leave-one-out ``k``-NN distances. Calibrated on training rows only.
- **families** (:data:`SURFACE_FAMILIES`): which sources a surface family removes, and which real images
  score the model trained without it.

Everything runs on one CPU thread: a fit of the 64-32 MLP on about 7,800 rows takes 5-10 s.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np

from ..simulate.spm.probe import ApexState, random_bad_apex, scan_states
from ..simulate.spm.scan import flatten_lines, line_offsets, pink_noise, scan_times
from ..simulate.spm.surfaces import height_spectrum, make_surface
from ..simulate.spm.tips import dilate_paraboloid, tip_transfer
from .judge import TIP_FEATURE_NAMES, knn_distance, native_tip_features

__all__ = ["DEFAULTS", "SURFACE_FAMILIES", "familiarity", "fit", "good_apex", "hsi_sessions", "knn_distance",
           "render", "sim_frames", "simulate", "stack", "training_sources"]

#: recipe keys and defaults (``recipes/autopilot-judge/tip-judge.yaml`` overrides them)
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
    "ensemble": 1,
    "epochs": 600,
    "learning_rate": 0.003,
    "weight_decay": 0.0001,
    "band": 0.1,
    "domain_quantile": 0.995,
    "max_hf_noise": 0.9,
    "familiarity_k": 5,
    "familiarity_quantile": 0.99,
    "familiarity_reference": 2000,
}

#: version of the feature pipeline in the cache key (bump when :func:`~.judge.tip_features` changes)
FEATURE_VERSION = 1

#: surface families for leave-one-surface-out validation: the training sources each removes, and the
#: real images (``gordon``: gordon-hsi; otherwise a ``surface`` of benchmarks/autopilot-real-labels.csv)
#: and simulated scans (``sim_<surface>``) that score the model trained without it. Si(111)-7x7 is in no
#: training source: every model has it held out.
SURFACE_FAMILIES = {
    "H:Si(100)": {"drop": ["sim_hsi100", "simmic", "gordon"], "real": ["gordon"], "sim": ["sim_hsi100"]},
    "fcc(111) (Au, Cu)": {"drop": ["sim_au111", "sim_cu111"], "real": ["I/Au(111)"],
                          "sim": ["sim_au111", "sim_cu111"]},
    "hexagonal lattices (HOPG, random)": {"drop": ["sim_hopg", "sim_lattice"],
                                          "real": ["spiepy demo (hexagonal lattice)"],
                                          "sim": ["sim_hopg", "sim_lattice"]},
    "Si(111)-7x7 (never trained on)": {"drop": [], "real": ["Si(111)-7x7"], "sim": []},
}


# ----------------------------------------------------------------------------- simulation


def good_apex(rng: np.random.Generator) -> ApexState:
    """A good apex: sharp (radius 0.3-0.9 nm, so that close-packed lattices resolve), single, near-symmetric,
    clean, stable."""
    return ApexState(radius_nm=float(np.exp(rng.uniform(np.log(0.3), np.log(0.9)))),
                     aspect=float(rng.uniform(1.0, 1.8)), angle=float(rng.uniform(0, np.pi)),
                     instability=float(rng.uniform(0, 0.25)))


def glitch_lines(rng: np.random.Generator, z: np.ndarray, k: int, amp: float) -> np.ndarray:
    """Add ``k`` tip-change glitches to ``z`` [H, W] in place: a segment of a line offset by ``amp`` x U(0.5, 3)
    or filled with noise (an apex that jumps)."""
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
    """One scan of ``surface`` with ``apex`` (the autopilot's apex-to-image model on any surface), float32 [size, size].

    ``fov_m`` is the field of view (m); ``white`` and ``pink`` the noise levels in units of the surface's
    atomic corrugation. Unstable or adsorbate apexes get 2-8 glitch lines, others none or one.
    """
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
    """``cfg["sim_per_surface"]`` simulated scans of each surface: (images, good [N] bool, surface index [N])."""
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


def sim_frames(n: int, seed: int, p_good: float = 0.5, max_actions: int = 6) -> tuple[list, np.ndarray, list]:
    """Frames of the autopilot's simulated microscope with known tips, for training and scoring tip judges.

    Frame ``i`` comes from its own :class:`~.sim.SimMicroscope` (seed ``seed + i``, so that the sample's cells,
    steps and contamination differ): with probability ``p_good`` the apex is a good one (radius log-uniform
    0.35-1.45 nm, near-symmetric, clean, instability 0-0.45), otherwise a random bad apex
    (:func:`~scopenet.simulate.spm.probe.random_bad_apex`) changed by 0 to ``max_actions`` random
    conditioning actions (pulses and dips of :data:`~.instrument.ACTIONS`, as an episode would). The frame
    is the microscope's own scan (``frame_nm`` side, 64 px) at a random spot of the sample.

    Returns
    -------
    images : list of Micrograph
    good : ndarray bool [n]
        The simulator's truth at the time of the scan (``metadata["tip_good"]``).
    defects : list of list of str
        :meth:`~scopenet.simulate.spm.probe.ApexState.defects` of each frame's apex.
    """
    from ..simulate.spm.probe import apply_dip, apply_pulse
    from .instrument import ACTIONS
    from .sim import SimMicroscope

    imgs, good, defects = [], [], []
    for i in range(int(n)):
        rng = np.random.default_rng([int(seed), i, 23])
        mic = SimMicroscope(seed=int(seed) + i)
        if rng.random() < p_good:
            apex = ApexState(radius_nm=float(np.exp(rng.uniform(np.log(0.35), np.log(1.45)))),
                             aspect=1.0 + abs(float(rng.normal(0, 0.3))), angle=float(rng.uniform(0, np.pi)),
                             instability=float(rng.uniform(0, 0.45)))
        else:
            apex = random_bad_apex(rng)
            for _ in range(int(rng.integers(0, max_actions + 1))):
                act = ACTIONS[int(rng.integers(len(ACTIONS)))]
                apex = apply_pulse(apex, act.value, rng) if act.kind == "pulse" else apply_dip(apex, act.value, rng)[0]
        mic.apex = apex
        lay = mic.config.layout
        centre = (float(rng.uniform(lay.frame_nm, lay.sample_nm - lay.frame_nm)),
                  float(rng.uniform(lay.frame_nm, lay.sample_nm - lay.frame_nm)))
        img = mic.scan(centre, lay.frame_nm, 64)
        imgs.append(img)
        good.append(bool(img.metadata["tip_good"]))
        defects.append(apex.defects())
    return imgs, np.array(good, bool), defects


def hsi_sessions(names) -> np.ndarray:
    """Session index [N] of gordon-hsi image names (the ``YYYYMonDD-HHMMSS`` stamp; the name itself otherwise)."""
    keys = [(re.search(r"(\d{4}[A-Za-z]{3}\d\d-\d{6})", n) or re.search(r"(.*)", n)).group(1) for n in names]
    u = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([u[k] for k in keys], int)


def _key(cfg: dict, keys) -> str:
    blob = json.dumps({"v": FEATURE_VERSION, **{k: cfg.get(k) for k in keys}}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def _cached(path: Path, make, log=print) -> dict:
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    log(f"  cached {path}")
    return out


def training_sources(cfg: dict, shared: Path | None = None, cache_dir: Path | None = None,
                     log=print) -> dict[str, dict]:
    """Feature rows of every training source, by name: ``{"F": [N, 10], "y": [N] bool, ...}``.

    ``sim_<surface>`` for each of ``cfg["surfaces"]`` (:func:`simulate`), ``simmic`` (``cfg["sim_microscope"]``
    frames of :func:`sim_frames`, ``"w"``: ``sim_microscope_weight``) and, when ``shared/data/gordon-hsi``
    exists, ``gordon`` (``"groups"``: session index). Features are cached in ``cache_dir`` (default
    ``runs/autopilot-judge``) under a hash of the keys that change them.
    """
    cache_dir = Path(cache_dir or "runs/autopilot-judge")
    sim_keys = ("seed", "surfaces", "sim_per_surface", "p_good", "p_steps", "pixel_nm", "pixels",
                "white_noise", "pink_noise")

    def make_sim():
        imgs, ys, ss = simulate(cfg, list(cfg["surfaces"]), int(cfg["seed"]), log=log)
        return {"F": native_tip_features(imgs), "y": ys, "s": ss}

    sim = _cached(cache_dir / f"sim-{_key(cfg, sim_keys)}.npz", make_sim, log)
    out = {f"sim_{s}": {"F": sim["F"][sim["s"] == i], "y": sim["y"][sim["s"] == i]}
           for i, s in enumerate(cfg["surfaces"])}
    if int(cfg.get("sim_microscope", 0)):
        def make_mic():
            t = time.time()
            imgs, ym, _ = sim_frames(int(cfg["sim_microscope"]), int(cfg["sim_microscope_seed"]))
            log(f"  {len(imgs)} simulated-microscope frames in {time.time() - t:.0f} s")
            return {"F": native_tip_features(imgs), "y": ym}

        mic = _cached(cache_dir / f"simmic-{_key(cfg, ('sim_microscope', 'sim_microscope_seed'))}.npz", make_mic, log)
        out["simmic"] = {"F": mic["F"], "y": mic["y"], "w": int(cfg.get("sim_microscope_weight", 1))}
    src = Path(shared or "../shared") / "data" / "gordon-hsi"
    if (src / "images.npz").exists():
        def make_hsi():
            from .replay import load_recorded

            him, recs = load_recorded(src)
            return {"F": native_tip_features(him), "y": np.array([r.get("recorded_good", False) for r in recs]),
                    "groups": hsi_sessions([r.get("name", "") for r in recs])}

        out["gordon"] = _cached(cache_dir / f"gordon-{_key(cfg, ())}.npz", make_hsi, log)
    return out


def stack(sources: dict, names) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the named sources' rows (a source's ``w`` repeats its rows): (F [N, 10], y [N] bool)."""
    names = [n for n in names if n in sources]
    if not names:
        return np.zeros((0, len(TIP_FEATURE_NAMES)), np.float32), np.zeros(0, bool)
    F = [np.repeat(sources[n]["F"], int(sources[n].get("w", 1)), 0) for n in names]
    y = [np.repeat(sources[n]["y"], int(sources[n].get("w", 1)), 0) for n in names]
    return np.concatenate(F).astype(np.float32), np.concatenate(y).astype(bool)


# ----------------------------------------------------------------------------- familiarity


def familiarity(Z: np.ndarray, k: int = 5, quantile: float = 0.99, n_ref: int = 2000, seed: int = 0) -> dict:
    """The familiarity rule's parameters from standardised training rows ``Z`` [N, D].

    A seeded subsample of at most ``n_ref`` rows is the reference set; the threshold is the ``quantile`` of its
    leave-one-out ``k``-NN distances (:func:`knn_distance`), so that about ``1 - quantile`` of training-like
    images are called unfamiliar.
    """
    Z = np.asarray(Z, np.float64)
    idx = np.sort(np.random.default_rng(seed).choice(len(Z), min(int(n_ref), len(Z)), replace=False))
    ref = Z[idx]
    d = knn_distance(ref, ref, k, leave_one_out=True)
    return {"familiarity_reference": np.round(ref, 4).tolist(), "familiarity_k": int(k),
            "familiarity_quantile": float(quantile), "familiarity_threshold": float(np.quantile(d, quantile))}


# ----------------------------------------------------------------------------- fit


def fit(F: np.ndarray, y: np.ndarray, cfg: dict, seed: int) -> dict:
    """Standardise, train the MLP (balanced BCE, full-batch Adam), fit the domain and familiarity rules.

    With ``cfg["ensemble"] = M > 1``, M MLPs are trained with seeds ``seed .. seed + M - 1`` (``members``; the
    judge averages their probabilities): one MLP's verdicts on a few dozen real crops move by tens of points
    between seeds. Returns the :class:`~.judge.TipJudge` parameter dict.
    """
    import torch

    from ..nn.qnet import QMLP

    c = {**DEFAULTS, **cfg}
    F = np.asarray(F, np.float32)
    mu, sd = F.mean(0), F.std(0) + 1e-6
    Z = torch.from_numpy(((F - mu) / sd).astype(np.float32))
    t = torch.from_numpy(np.asarray(y, np.float32))
    pos = float(t.mean())
    wts = torch.where(t > 0.5, 0.5 / max(pos, 1e-3), 0.5 / max(1 - pos, 1e-3))
    members, losses = [], []
    for m in range(max(1, int(c.get("ensemble", 1)))):
        torch.manual_seed(seed + m)
        net = QMLP(F.shape[1], c["hidden"], 1)
        opt = torch.optim.Adam(net.parameters(), lr=c["learning_rate"], weight_decay=c["weight_decay"])
        for _ in range(int(c["epochs"])):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(Z)[:, 0], t, weight=wts)
            loss.backward()
            opt.step()
        members.append([[q.weight.detach().numpy().tolist(), q.bias.detach().numpy().tolist()]
                        for q in net if isinstance(q, torch.nn.Linear)])
        losses.append(float(loss.detach()))
    # domain: Mahalanobis distance in standardised feature space (shrunk covariance)
    Zn = Z.numpy().astype(np.float64)
    C = np.cov(Zn.T)
    C = 0.9 * C + 0.1 * np.eye(len(C))
    P = np.linalg.inv(C)
    d = np.sqrt(np.einsum("ij,jk,ik->i", Zn, P, Zn))
    out = {"feature_names": list(TIP_FEATURE_NAMES), "mean": mu.tolist(), "std": sd.tolist(), "layers": members[0],
           "precision": P.tolist(), "domain_threshold": float(np.quantile(d, c["domain_quantile"])),
           "band": float(c["band"]), "max_hf_noise": float(c["max_hf_noise"]), "final_loss": float(np.mean(losses))}
    if len(members) > 1:
        out["members"] = members
    if int(c.get("familiarity_k", 0)):
        out.update(familiarity(Zn, int(c["familiarity_k"]), float(c["familiarity_quantile"]),
                               int(c["familiarity_reference"]), seed))
    return out
