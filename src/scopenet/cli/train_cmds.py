"""CLI command: ``scopenet train TASK --config run.yaml [--resume]`` and ``scopenet train init TASK``."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Optional

import typer

from ._common import user_errors


def known_tasks() -> list[str]:
    """Task packages present in ``scopenet.tasks``."""
    import scopenet.tasks as tasks

    names = {m.name for m in pkgutil.iter_modules(tasks.__path__)}
    for root in tasks.__path__:  # task folders may still lack an __init__.py
        names.update(p.name for p in Path(root).iterdir() if p.is_dir() and p.name.isidentifier())
    return sorted(n for n in names if not n.startswith("_"))


def task_train_module(task: str):
    """``scopenet.tasks.<task>.train``, or ``InputError`` naming the known tasks."""
    from ..errors import InputError

    tasks = known_tasks()
    if task not in tasks:
        raise InputError(f"unknown task {task!r}; known tasks: {', '.join(tasks) or 'none'}")
    try:
        return importlib.import_module(f"scopenet.tasks.{task}.train")
    except ModuleNotFoundError as exc:
        if exc.name == f"scopenet.tasks.{task}.train":
            raise InputError(f"task {task!r} has no training entry point (scopenet.tasks.{task}.train)") from None
        raise


def default_config(task: str):
    """The task's default :class:`RunConfig` (``train.default_config()`` when it has one)."""
    from ..training.config import RunConfig

    from ..errors import InputError

    try:
        mod = task_train_module(task)
    except InputError:
        if task not in known_tasks():
            raise
        mod = None  # the task exists but has no training module yet: a generic configuration
    if mod is not None and hasattr(mod, "default_config"):
        return mod.default_config()
    return RunConfig(task=task, name=f"{task}-run")


def run_training(task: str, config: Path | None, resume: bool, labels: Path | None = None,
                 init: str | None = None):
    """Load ``config``, check its task and call ``scopenet.tasks.<task>.train.main(config, resume)``.

    ``labels`` (an export CSV) is passed on to tasks that train from labels (classify); with it the
    configuration may be omitted and the task's default is used. ``init`` (classify) names a saved
    or shipped model to fine-tune.
    """
    from ..errors import InputError
    from ..training.config import RunConfig

    if (labels is not None or init is not None) and task != "classify":
        raise InputError(f"--labels and --init are for `scopenet train classify`, not {task!r}")
    mod = task_train_module(task)
    if config is None:
        if labels is None:
            raise InputError(f"--config is required (create one with `scopenet train init {task} -o run.yaml`)")
        cfg = default_config(task)
        if task == "classify":  # no configuration: the images lie beside the export
            cfg.extra["images"] = None
    else:  # a task with its own configuration type (inpaint) reads it itself
        cfg = mod.load_config(config) if hasattr(mod, "load_config") else RunConfig.from_yaml(config)
    if labels is not None:
        return mod.main(cfg, resume, labels=labels, init=init)
    if getattr(cfg, "task", task) != task:
        raise InputError(f"{config} is a configuration for task {cfg.task!r}, not {task!r}")
    if not hasattr(mod, "main"):
        raise InputError(f"scopenet.tasks.{task}.train has no main(config, resume) entry point")
    return mod.main(cfg, resume, init=init) if init is not None else mod.main(cfg, resume)


def train_cmd(
    task: str = typer.Argument(..., help="Task to train (denoise, inpaint, classify, ...), or 'init'."),
    init_task: Optional[str] = typer.Argument(None, help="With 'init': the task whose default config to write."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run configuration (YAML)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="With 'init': YAML file to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="With 'init': replace an existing file."),
    labels: Optional[Path] = typer.Option(None, "--labels",
                                          help="classify: labelling-service or Zooniverse export CSV."),
    init: Optional[str] = typer.Option(None, "--init",
                                       help="classify: fine-tune this saved or shipped model (e.g. hsi-six)."),
):
    """Train a task model from a YAML run configuration.

    \b
    scopenet train init denoise -o run.yaml     write the default configuration
    scopenet train denoise --config run.yaml    train (checkpoints, logs and run.yaml in out_dir/name)
    scopenet train denoise --config run.yaml --resume
    scopenet train classify --labels export.csv   train the tip classifier from an export
    scopenet train classify --labels export.csv --init hsi-six   fine-tune the shipped model on it
    """
    from ..errors import InputError

    with user_errors():
        if task == "init":
            if init_task is None:
                raise InputError("usage: scopenet train init TASK -o run.yaml")
            out = output or Path(f"{init_task}.yaml")
            default_config(init_task).to_yaml(out, overwrite=overwrite)
            typer.echo(f"wrote {out}")
            return
        if init_task is not None:
            raise InputError(f"unexpected argument {init_task!r}; usage: scopenet train TASK --config run.yaml")
        result = run_training(task, config, resume, labels, init)
        if result is not None and hasattr(result, "run_dir"):
            typer.echo(f"run finished: {result.run_dir}")
        elif isinstance(result, Path):
            typer.echo(f"saved {result}.safetensors")


def register(app: typer.Typer) -> None:
    """Add ``scopenet train`` to the app."""
    app.command("train")(train_cmd)
