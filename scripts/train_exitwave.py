"""Train the shipped exit-wave models ``exitwave-restricted`` and ``exitwave-srtio3`` (CPU, resumable).

The recipes (``recipes/exitwave-<recipe>.yaml``) hold the data files, network and budget;
:mod:`scopenet.tasks.exitwave.train` the run. Make the data first with
``scripts/make_exitwave_data.py --preset shipped``::

    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/train_exitwave.py --recipe restricted [--resume] [--install]
    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/train_exitwave.py --recipe srtio3 --budget 1200

``--install`` copies the result to ``src/scopenet/weights/exitwave-<recipe>.*`` (check it first with
``scopenet bench exitwave --model <workdir>/exitwave-<recipe>``). The ``-continue`` recipes go on from the
v2 weights (``init_from``) with a lower learning rate; installing one records both stages in the card::

    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/train_exitwave.py --recipe restricted-continue
    .venv/bin/python scripts/train_exitwave.py --recipe restricted-continue \
        --install-only runs/exitwave-restricted-v3/exitwave-restricted --bench-json bench.json

Installing also sets the unfamiliar-input threshold (the 5th percentile of the mean phase confidence of
128 px training crops, :func:`scopenet.tasks.exitwave.model.calibrate_confidence`).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from scopenet.tasks.exitwave.config import ExitWaveTrainConfig
    from scopenet.tasks.exitwave.train import main as train_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=("restricted", "srtio3", "restricted-gpu", "srtio3-gpu",
                                           "restricted-continue", "srtio3-continue"), default="restricted")
    p.add_argument("--budget", type=float, default=None, help="training seconds (default: the recipe's)")
    p.add_argument("--workdir", default=None, help="default: the recipe's")
    p.add_argument("--data", nargs="*", default=None, help="data files (default: the recipe's)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--install", action="store_true")
    p.add_argument("--install-only", metavar="STEM", default=None,
                   help="install an already trained model (path stem) instead of training")
    p.add_argument("--bench-json", type=Path, default=None,
                   help="with --install/--install-only: `scopenet bench exitwave --json` output of the model, "
                        "recorded in its card's metrics")
    p.add_argument("--note", default=None, help="with --install/--install-only: a note on the training machine "
                                                  "(load, time), recorded in the card")
    a = p.parse_args(argv)
    if a.install_only:
        install(a.install_only, a.recipe, a.bench_json, a.note)
        return 0
    cfg = ExitWaveTrainConfig.from_yaml(ROOT / "recipes" / f"exitwave-{a.recipe}.yaml")
    update = {k: v for k, v in (("time_budget_s", a.budget), ("workdir", a.workdir), ("data", a.data))
              if v is not None}
    if update:
        cfg = ExitWaveTrainConfig.model_validate({**cfg.model_dump(), **update})
    stem = train_main(cfg, resume=a.resume, overwrite=a.overwrite)
    print("saved", stem)
    if a.install and stem is not None:
        install(stem, a.recipe, a.bench_json, a.note)
    return 0


def install(stem, recipe: str, bench_json: Path | None = None, note: str | None = None) -> None:
    """Copy a trained model to ``src/scopenet/weights/exitwave-<recipe>.*``, with its bench figures (and
    ``note``, e.g. the machine load during training); the model it replaces is recorded in
    ``previous_versions`` with its figures, and the version number goes up by one."""
    import json

    from scopenet.tasks.exitwave import ExitWaveEstimator

    from scopenet.tasks.exitwave.config import ExitWaveTrainConfig
    from scopenet.tasks.exitwave.train import calibrate, load_pool

    est = ExitWaveEstimator.load(stem)
    cfg = ExitWaveTrainConfig.from_yaml(ROOT / "recipes" / f"exitwave-{recipe}.yaml")
    if all(Path(p).exists() for p in cfg.data):  # the unfamiliar-input thresholds, from the training waves
        pool = load_pool([str(p) for p in cfg.data])
        est.config = est.config.model_copy(update=calibrate(est, pool, cfg.crop, seed=cfg.seed))
    if bench_json is not None:
        b = json.loads(Path(bench_json).read_text())
        flag = "" if cfg.name == "exitwave-restricted" else " --model single"
        if flag:  # the single-material model's target is on unseen transforms (chapter: 0.135)
            headline = {"label": "phase MAE, unseen transforms", "value": round(b["sets"]["unseen transforms"]["mae_mean"], 3)}
        else:
            headline = {"label": "phase MAE, unseen materials", "value": round(b["mae_mean"], 3)}
        values = {f"{k} mae": [round(v["mae_mean"], 4), round(v["mae_sd"], 4)] for k, v in b["sets"].items()}
        values.update(random_mae=round(b["random_mae"], 4), zero_phase_mae=round(b["zero_phase_mae"], 4), n=b["n"])
        est.update_card(metrics={"values": values, "command": f"scopenet bench exitwave{flag} --n {b['n']} "
                                                               f"--seed {b['seed']}",
                                 "headline": headline})
    name = cfg.name  # exitwave-restricted or exitwave-srtio3 (the gpu recipes install under the same names)
    dest = ROOT / "src" / "scopenet" / "weights" / name
    if note:
        est.update_card(notes={"training_machine": note})
    old_card = Path(f"{dest}.json")
    if old_card.exists():  # the replaced model's figures stay in the card
        old = json.loads(old_card.read_text())
        tr = old.get("training") or {}
        data = tr.get("data")
        entry = {"version": old.get("version", 1), "created": old.get("created"), "metrics": old.get("metrics"),
                 "architecture": old.get("architecture"), "steps": tr.get("steps"), "time_s": tr.get("time_s"),
                 "data": data.get("description") if isinstance(data, dict) else data}
        est.update_card(version=int(old.get("version", 1)) + 1,
                        previous_versions=list(old.get("previous_versions") or []) + [entry])
        if cfg.init_from:  # a continuation: the run it started from and both stages
            mine = est.card_.training
            stages = list(tr.get("stages") or [{"config": tr.get("config"), "steps": tr.get("steps"),
                                                 "time_s": tr.get("time_s"), "version": old.get("version", 1)}])
            stages.append({"config": mine.config, "steps": mine.steps, "time_s": mine.time_s,
                           "recipe": f"recipes/exitwave-{recipe}.yaml"})
            est.update_card(training={
                "init": {"from": f"{name} v{old.get('version', 1)}", "path": str(cfg.init_from),
                         "steps": tr.get("steps"), "time_s": tr.get("time_s")},
                "stages": stages, "steps": sum(int(st.get("steps") or 0) for st in stages),
                "time_s": round(sum(float(st.get("time_s") or 0) for st in stages), 1)})
    tmp = Path(f"/tmp/{name}")
    est.save(tmp, overwrite=True)
    for ext in (".safetensors", ".json"):
        shutil.copyfile(f"{tmp}{ext}", f"{dest}{ext}")
    print("installed", dest)


if __name__ == "__main__":
    raise SystemExit(main())
