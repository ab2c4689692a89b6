"""CLI command: ``scopenet train TASK --config run.yaml [--resume]`` and ``scopenet train init TASK -o run.yaml``."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer

from ._common import user_errors

#: the tasks ``scopenet train`` knows (each has a typed configuration and ``tasks/<task>/train.py``)
TASKS = ("denoise", "inpaint", "superres", "classify", "adaptive-scan", "segment", "atoms", "embed", "exitwave")


def known_tasks() -> list[str]:
    """Tasks that train on the engine."""
    return list(TASKS)


def _check_task(task: str) -> None:
    from ..errors import InputError

    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; tasks that train: {', '.join(TASKS)}")


def task_train_module(task: str):
    """``scopenet.tasks.<task>.train``, or ``InputError`` naming the known tasks."""
    _check_task(task)
    return importlib.import_module(f"scopenet.tasks.{task.replace('-', '_')}.train")


def default_config(task: str):
    """The task's default run configuration (the recipe of its default model)."""
    from ..tasks.runconfig import default_run_config

    _check_task(task)
    return default_run_config(task)


def run_training(task: str, config: Path | None, resume: bool, labels: Path | None = None,
                 init: str | None = None, overwrite: bool = False):
    """Read ``config`` as a run configuration of ``task`` and run ``scopenet.tasks.<task>.train.main``.

    ``labels`` (an export CSV) and ``init`` (a saved or shipped model to fine-tune) are for classify; with
    ``labels`` the configuration may be omitted (the default, with the images beside the export).
    """
    from ..errors import InputError
    from ..tasks.runconfig import read_run_config

    _check_task(task)
    if (labels is not None or init is not None) and task != "classify":
        raise InputError(f"--labels and --init are for `scopenet train classify`, not {task!r}")
    mod = task_train_module(task)
    if config is None:
        if labels is None:
            raise InputError(f"--config is required (create one with `scopenet train init {task} -o run.yaml`)")
        cfg = default_config(task)
    else:
        cfg = read_run_config(config, task=task)
    if task == "classify":
        return mod.main(cfg, resume, labels=labels, init=init, overwrite=overwrite)
    return mod.main(cfg, resume, overwrite=overwrite)


def train_cmd(
    task: str = typer.Argument(..., help="Task to train (denoise, inpaint, superres, classify), or 'init'."),
    init_task: Optional[str] = typer.Argument(None, help="With 'init': the task whose default config to write."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run configuration (YAML)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="With 'init': YAML file to write."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="With 'init': replace an existing file; otherwise start a run over."),
    labels: Optional[Path] = typer.Option(None, "--labels",
                                          help="classify: labelling-service or Zooniverse export CSV."),
    init: Optional[str] = typer.Option(None, "--init",
                                       help="classify: fine-tune this saved or shipped model (e.g. hsi-six)."),
):
    """Train a task model from a YAML run configuration.

    \b
    scopenet train init denoise -o run.yaml     write the default configuration
    scopenet train denoise --config run.yaml    train (run.yaml, last.ckpt, log.csv, model.* in its workdir)
    scopenet train denoise --config run.yaml --resume
    scopenet train superres --config recipes/superres-spm-x4.yaml
    scopenet train classify --labels export.csv   train the tip classifier from an export
    scopenet train classify --labels export.csv --init hsi-six   fine-tune the shipped model on it
    """
    from ..errors import InputError

    with user_errors():
        if task == "init":
            if init_task is None:
                raise InputError("usage: scopenet train init TASK -o run.yaml")
            from ..tasks.runconfig import write_run_config

            out = output or Path(f"{init_task}.yaml")
            write_run_config(default_config(init_task), out, overwrite=overwrite)
            typer.echo(f"wrote {out}")
            return
        if init_task is not None:
            raise InputError(f"unexpected argument {init_task!r}; usage: scopenet train TASK --config run.yaml")
        result = run_training(task, config, resume, labels, init, overwrite)
        if result is not None and hasattr(result, "run_dir"):
            typer.echo(f"run finished: {result.run_dir}")
        elif isinstance(result, Path):
            typer.echo(f"run finished: {result}")


def register(app: typer.Typer) -> None:
    """Add ``scopenet train`` to the app."""
    app.command("train")(train_cmd)
