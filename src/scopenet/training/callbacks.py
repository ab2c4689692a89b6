"""Lightning callbacks used by :func:`scopenet.training.train`."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from .._fileutil import atomic_output


class LastCheckpoint(Callback):
    """Write ``path`` (``last.ckpt``) every ``every_n_steps`` optimiser steps and at every epoch end.

    Mid-epoch checkpoints carry the data loader position (see
    :class:`~scopenet.training.data.ResumableDataLoader`), so a killed run resumes exactly.
    """

    def __init__(self, path: str | Path, every_n_steps: int = 100):
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self._saved_step = -1

    def _save(self, trainer) -> None:
        if trainer.global_step == self._saved_step:
            return
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > 0 and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read Lightning's ``metrics.csv`` into ``{metric: [(step, value), ...]}``.

    Rows repeated after a resume are de-duplicated: the last value logged at a step wins.
    """
    series: dict[str, dict[int, float]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                step = int(float(row.get("step") or 0))
            except ValueError:
                continue
            for k, v in row.items():
                if k in ("step", "epoch") or v in (None, ""):
                    continue
                try:
                    value = float(v)
                except ValueError:
                    continue
                if math.isfinite(value):
                    series.setdefault(k, {})[step] = value
    return {k: sorted(d.items()) for k, d in series.items()}


def plot_loss_curve(metrics_csv: str | Path, out_png: str | Path,
                    keys: tuple[str, ...] = ("train_loss", "val_loss")) -> Path | None:
    """Plot the loss curves logged in ``metrics_csv`` to ``out_png`` (log scale when positive).

    Returns the PNG path, or None when there is nothing to plot.
    """
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        return None
    series = read_metrics_csv(metrics_csv)
    present = [k for k in keys if k in series]
    if not present:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    positive = True
    for k in present:
        steps, values = zip(*series[k])
        positive &= min(values) > 0
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3, label=k)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_output(out_png, overwrite=True) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out_png
