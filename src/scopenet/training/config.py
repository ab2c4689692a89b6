"""Training configuration as data: the shared part of every task's typed training configuration.

Each task's ``config.py`` defines its training configuration as a subclass of :class:`TrainConfig`
with a ``task`` literal; :mod:`scopenet.tasks.runconfig` joins them into the run configuration, a
pydantic union discriminated on ``task`` (CAREamics' pattern), read from and written to YAML by two free
functions. Every model forbids unknown keys, so a misspelt key is an error naming the key and the file.
A run writes its configuration as ``run.yaml`` beside its checkpoints, so that file repeats the run.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._fileutil import atomic_output
from ..errors import ReadError

Precision = Literal["32", "16-mixed", "bf16-mixed"]

__all__ = ["TrainConfig", "Precision", "read_yaml_mapping", "read_yaml_model", "write_yaml", "resolve_precision",
           "validation_message"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainConfig(_Base):
    """Settings every training run shares: where it writes, its seed, and where and how it runs (the engine,
    :mod:`scopenet.training.budget`). Tasks subclass it with a ``task`` literal and their own fields.

    Attributes
    ----------
    task : str
        The task (the discriminator of the run configuration).
    workdir : Path or None
        The run folder: ``run.yaml``, ``last.ckpt``, ``log.csv`` and the trained model. None (the
        estimators' ``fit``) writes nothing and cannot resume.
    seed : int
        Seeds the initial weights and the batch stream (each step's batch is drawn from
        ``(seed, rank, step)``, so a resumed run sees the batches an uninterrupted one would).
    threads : int
        torch CPU threads.
    accelerator : str
        "auto" (a GPU when there is one), "cpu", "gpu"/"cuda" or "mps".
    devices : int or "auto"
        Devices to train on; several with ``strategy: ddp`` train one process each (the global batch is
        ``batch_size * devices``).
    strategy : {"auto", "ddp"}
    precision : {"32", "16-mixed", "bf16-mixed"}
        Mixed precision applies on GPUs only (on the CPU the run falls back to 32 with a warning).
    num_workers : int
        DataLoader worker processes making batches (0: in the training process).
    checkpoint_every_n_steps, checkpoint_every_s : int or None, float or None
        When ``last.ckpt`` is written during the run (always at its end).
    log_every : int
        Steps between rows of ``log.csv``.
    init_from : str or None
        Warm start: a saved model (path stem or shipped name) or a run's ``last.ckpt`` whose weights seed
        the network (ignored when resuming).
    """

    task: str
    workdir: Path | None = Path("runs/run")
    seed: int = 0
    threads: int = Field(2, ge=1)
    accelerator: str = "auto"
    devices: int | Literal["auto"] = 1
    strategy: Literal["auto", "ddp"] = "auto"
    precision: Precision = "32"
    num_workers: int = Field(0, ge=0)
    checkpoint_every_n_steps: int | None = Field(None, ge=1)
    checkpoint_every_s: float | None = Field(120.0, ge=0)
    log_every: int = Field(10, ge=1)
    init_from: str | None = None

    @field_validator("workdir")
    @classmethod
    def _plain_folder(cls, v):
        if v is not None and (str(v) in ("", ".") or v.name in ("", "..")):
            raise ValueError(f"workdir {str(v)!r} must name a run folder")
        return v

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dictionary (``task`` first)."""
        d = self.model_dump(mode="json")
        return {"task": d.pop("task"), **d}

    def to_yaml(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the configuration as YAML (atomically; an existing file needs ``overwrite``)."""
        return write_yaml(self.to_dict(), path, overwrite)

    @classmethod
    def from_yaml(cls, path: str | Path):
        """Read a configuration of this task; a missing file, bad YAML or an invalid or unknown key raises
        ``ReadError`` naming the file and the key."""
        return read_yaml_model(cls, path, "training configuration")


def write_yaml(data: dict, path: str | Path, overwrite: bool = False) -> Path:
    """``data`` as YAML in ``path``, atomically; an existing file is refused unless ``overwrite``."""
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """The YAML mapping in ``path``; a missing file, bad YAML or a non-mapping raises ``ReadError``."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(path, "no such configuration file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ReadError(path, f"not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ReadError(path, f"a {what} must be a YAML mapping")
    return raw


def validation_message(exc: ValidationError, what: str, tag: str | None = None) -> str:
    """A readable list of what is wrong, one line per error, naming the (dotted) key of each (``tag``: the
    union member's name that pydantic puts first, left out)."""
    lines = []
    for e in exc.errors():
        loc = list(e["loc"])
        if tag is not None and loc and loc[0] == tag:
            loc = loc[1:]
        key = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  unknown key {key!r} (misspelt?)")
        elif e["type"] == "missing":
            lines.append(f"  missing key {key!r}")
        else:
            lines.append(f"  {key}: {e['msg']}")
    return f"invalid {what}:\n" + "\n".join(lines)


def read_yaml_model(model: type[BaseModel], path: str | Path, what: str, drop: tuple[str, ...] = ()) -> BaseModel:
    """Validate the YAML mapping in ``path`` as ``model`` (keys in ``drop`` ignored); a missing file, bad
    YAML, a non-mapping or an invalid field raises ``ReadError`` naming the file and the key."""
    raw = read_yaml_mapping(path, what)
    for k in drop:
        raw.pop(k, None)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ReadError(Path(path), validation_message(exc, what)) from exc


def resolve_precision(precision: str, accelerator: str) -> str:
    """Mixed precision on GPUs only: on the CPU return ``"32"`` and warn.

    Parameters
    ----------
    precision : str
        Requested precision ("32", "16-mixed", "bf16-mixed").
    accelerator : str
        "cpu", "gpu", "cuda" or "auto" (auto means cuda when available).
    """
    import torch

    if precision == "32":
        return "32"
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if not on_gpu:
        warnings.warn(f"precision {precision!r} needs a GPU; training on the CPU in 32-bit", stacklevel=2)
        return "32"
    return precision
