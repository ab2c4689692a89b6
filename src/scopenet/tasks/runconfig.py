"""The run configuration: every task's training configuration, one union discriminated on ``task``.

A training run is fully described by one YAML file (CAREamics' pattern: a pydantic tree whose variable
part is a discriminated union; YAML in and out through two free functions)::

    task: denoise              # denoise | inpaint | superres | classify
    workdir: runs/my-run
    max_steps: 2000
    ...                        # the fields of that task's *TrainConfig (unknown keys are errors)

>>> from scopenet.tasks.runconfig import read_run_config, write_run_config, default_run_config
>>> cfg = default_run_config("denoise")
>>> type(cfg).__name__
'DenoiseTrainConfig'
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from ..errors import InputError, ReadError
from ..training.config import TrainConfig, read_yaml_mapping, validation_message, write_yaml
from .adaptive_scan.config import AdaptiveScanTrainConfig
from .atoms.config import AtomsTrainConfig
from .classify.config import ClassifyTrainConfig
from .denoise.config import DenoiseTrainConfig
from .embed.config import EmbedTrainConfig
from .exitwave.config import ExitWaveTrainConfig
from .inpaint.config import InpaintTrainConfig
from .segment.config import SegmentTrainConfig
from .superres.config import SuperResTrainConfig

__all__ = ["RunConfig", "TRAIN_CONFIGS", "read_run_config", "write_run_config", "run_config",
           "default_run_config", "TrainConfig"]

#: the training configuration of each task that trains on the engine
TRAIN_CONFIGS: dict[str, type[TrainConfig]] = {
    "denoise": DenoiseTrainConfig, "inpaint": InpaintTrainConfig, "superres": SuperResTrainConfig,
    "classify": ClassifyTrainConfig, "adaptive-scan": AdaptiveScanTrainConfig, "segment": SegmentTrainConfig,
    "atoms": AtomsTrainConfig, "embed": EmbedTrainConfig, "exitwave": ExitWaveTrainConfig,
}

RunConfig = Annotated[Union[DenoiseTrainConfig, InpaintTrainConfig, SuperResTrainConfig, ClassifyTrainConfig,
                            AdaptiveScanTrainConfig, SegmentTrainConfig, AtomsTrainConfig, EmbedTrainConfig,
                            ExitWaveTrainConfig],
                      Field(discriminator="task")]
_ADAPTER: TypeAdapter = TypeAdapter(RunConfig)


def _check_task(data: dict, task: str | None, where: str) -> dict:
    d = dict(data)
    if task is not None:
        if task not in TRAIN_CONFIGS:
            raise InputError(f"task {task!r} has no training configuration; tasks: {', '.join(TRAIN_CONFIGS)}")
        d.setdefault("task", task)  # files written before the task header (inpaint runs, model cards)
        if d["task"] != task:
            raise InputError(f"{where} is a configuration for task {d['task']!r}, not {task!r}")
    elif "task" not in d:
        raise InputError(f"{where} names no task (add 'task: <task>', one of {', '.join(TRAIN_CONFIGS)})")
    elif d["task"] not in TRAIN_CONFIGS:
        raise InputError(f"{where}: unknown task {d['task']!r}; tasks: {', '.join(TRAIN_CONFIGS)}")
    return d


def run_config(data: Any, task: str | None = None) -> TrainConfig:
    """A run configuration from a mapping (``task`` fills a missing ``task`` key and must match a present
    one) or a configuration object; an unknown or misspelt key raises ``InputError`` naming it."""
    if isinstance(data, TrainConfig):
        if task is not None and data.task != task:
            raise InputError(f"the configuration is for task {data.task!r}, not {task!r}")
        return data
    if not isinstance(data, dict):
        raise InputError(f"expected a run configuration or a mapping, got {type(data).__name__}")
    d = _check_task(data, task, "the configuration")
    try:
        return _ADAPTER.validate_python(d)
    except ValidationError as exc:
        raise InputError(validation_message(exc, f"{d['task']} run configuration", d["task"])) from exc


def read_run_config(path: str | Path, task: str | None = None) -> TrainConfig:
    """Read a run configuration from YAML: the task's ``*TrainConfig``.

    ``task`` (the CLI's ``scopenet train TASK``) fills a file without a ``task`` key and must match one that
    has it. A missing file, bad YAML, an unknown task, or an invalid, missing or unknown (misspelt) key
    raises ``ReadError`` naming the file and the key. Layouts written before the typed configuration (the
    nested ``model``/``data``/``optim``/``trainer``/``extra`` of denoising runs) are migrated on reading.
    """
    path = Path(path)
    raw = read_yaml_mapping(path, "run configuration")
    try:
        d = _check_task(raw, task, str(path))
    except InputError as exc:
        raise ReadError(path, str(exc)) from None
    try:
        return _ADAPTER.validate_python(d)
    except ValidationError as exc:
        raise ReadError(path, validation_message(exc, f"{d['task']} run configuration", d["task"])) from exc


def write_run_config(config: TrainConfig, path: str | Path, overwrite: bool = False) -> Path:
    """Write a run configuration as YAML, ``task`` first (atomically; an existing file needs ``overwrite``)."""
    return write_yaml(config.to_dict(), path, overwrite)


def default_run_config(task: str) -> TrainConfig:
    """The default configuration of ``task`` (``scopenet train init TASK``): the recipe of its default model."""
    if task not in TRAIN_CONFIGS:
        raise InputError(f"task {task!r} has no training configuration; tasks: {', '.join(TRAIN_CONFIGS)}")
    return TRAIN_CONFIGS[task]()
