"""Record every shipped model's output on fixed inputs (the refactoring reference of issue #17).

Run once, before a refactor, with the code whose behaviour is the reference:

    python tests/data/golden/make_golden.py          # writes tests/data/golden/outputs.npz

``tests/test_golden_outputs.py`` recomputes every case through today's API and compares to 1e-5.
The cases and their inputs are defined in :func:`cases` (shared with the test) so that the recording
and the check cannot drift apart.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "outputs.npz"


def inputs() -> dict[str, np.ndarray]:
    """Deterministic inputs: smooth lattice-like images plus noise, masks, coarse scans."""
    rng = np.random.default_rng(20261205)
    y, x = np.mgrid[0:96, 0:112].astype(np.float64)
    lattice = 0.5 + 0.25 * np.cos(2 * np.pi * x / 7.3) * np.cos(2 * np.pi * y / 6.1) + 0.1 * np.sin(x / 17 + y / 23)
    noisy = rng.poisson(np.clip(lattice, 0, None) * 40) / 40.0
    mask = rng.random((96, 112)) < 0.06
    mask[::9, :] = True  # scan lines plus random probes
    partial = np.where(mask, lattice, 0.0)
    coarse = lattice[:96:4, :112:4] + 0.01 * rng.standard_normal((24, 28))
    spm = rng.standard_normal((6, 64, 64)).cumsum(1) * 0.1 + np.cos(np.arange(64) / 3.0)[None, None, :]
    return {"noisy": noisy.astype(np.float32), "big": np.tile(noisy, (2, 2)).astype(np.float32)[:150, :170],
            "mask": mask, "partial": partial.astype(np.float32), "coarse": coarse.astype(np.float32),
            "spm": spm.astype(np.float32)}


def cases():
    """``[(key, fn(inputs) -> ndarray)]`` through the public API."""
    import scopenet as sn

    def den(name, **kw):
        return lambda d: sn.denoise(d["noisy"], model=name, **kw)

    def den_tiled(d):
        est = sn.Denoiser.pretrained("default")
        upd = {"tile": 64, "overlap": 16, "max_direct_pixels": 1000}
        if hasattr(est, "settings"):  # before the estimator contract
            est.settings = est.settings.model_copy(update=upd)
        else:
            est.config = est.config.model_copy(update=upd)
        return est.predict(d["big"])

    def inp(name, **kw):
        return lambda d: sn.inpaint(d["partial"], d["mask"], model=name, **kw)

    def inp_tiled(d):
        est = sn.Inpainter.pretrained("default")
        est.config = est.config.model_copy(update={"tile": 64, "overlap": 16})
        return est.predict(d["partial"], d["mask"], fourier="off")

    def sr(name, factor):
        return lambda d: sn.super_resolve(d["coarse"], factor=factor, model=name)

    def clf(name, tta=None):
        return lambda d: sn.TipClassifier.pretrained(name).predict_proba(list(d["spm"]), tta=tta)

    return [
        ("denoise_default", den("default")),
        ("denoise_default_tta8", den("default", tta=True)),
        ("denoise_high_dose", den("high-dose")),
        ("denoise_auto", den("auto")),
        ("denoise_default_tiled", den_tiled),
        ("inpaint_default_off", inp("default", fourier="off")),
        ("inpaint_default_auto", inp("default", fourier="auto")),
        ("inpaint_default_on", inp("default", fourier="on")),
        ("inpaint_dense_off", inp("inpaint-dense", fourier="off")),
        ("inpaint_auto", inp("auto")),
        ("inpaint_default_tta8", inp("default", fourier="off", tta=True)),
        ("inpaint_default_tiled", inp_tiled),
        ("superres_spm_x4", sr("spm-x4", 4)),
        ("superres_spm_x2", sr("spm-x4", 2)),
        ("superres_stem_x4", sr("stem-x4", 4)),
        ("classify_hsi_six", clf("hsi-six")),
        ("classify_hsi_six_1view", clf("hsi-six", tta=1)),
        ("classify_hsi_six_sim", clf("hsi-six-sim")),
        ("classify_hsi_six_sim_fast", clf("hsi-six-sim-fast")),
        ("classify_good_bad", clf("good-bad")),
        ("classify_good_bad_tta8", clf("good-bad", tta=8)),
    ]


def main() -> int:
    import torch

    torch.set_num_threads(1)
    d = inputs()
    out = {}
    for key, fn in cases():
        out[key] = np.asarray(fn(d), np.float32)
        print(key, out[key].shape, float(out[key].mean()))
    np.savez_compressed(OUT, **out)
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
