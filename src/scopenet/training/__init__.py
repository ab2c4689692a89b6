"""The shared training engine: configuration, data pipeline, schedules, Lightning modules, packaging.

>>> from scopenet.training import RunConfig, ImageDataModule, ImageToImageModule, train  # doctest: +SKIP
>>> cfg = RunConfig(task="denoise", name="demo")                                      # doctest: +SKIP
>>> dm = ImageDataModule.from_images(images, cfg.data, pair_fn=add_noise)             # doctest: +SKIP
>>> result = train(cfg, dm, ImageToImageModule(UNet(), optim=cfg.optim))              # doctest: +SKIP

Submodules are imported lazily so that ``import scopenet.training`` does not import Lightning.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "DataConfig": "config", "OptimConfig": "config", "TrainerConfig": "config", "RunConfig": "config",
    "ArrayImageDataset": "data", "EpochSampler": "data", "ImageDataModule": "data",
    "ResumableDataLoader": "data", "grouped_split": "data",
    "ImageToImageModule": "module",
    "RunResult": "trainer", "build_trainer": "trainer", "train": "trainer",
    "save_model": "packaging", "load_model": "packaging", "export_onnx": "packaging",
    "export_torchscript": "packaging",
    "ALRC": "alrc", "DALRC": "alrc", "CLRC": "alrc", "Huberise": "alrc", "NoClip": "alrc", "make_clipper": "alrc",
    "load_em_real": "em_real",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
