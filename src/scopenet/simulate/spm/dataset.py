"""A torch ``IterableDataset`` of simulated SPM images, sharded over DataLoader workers.

Image ``i`` depends only on ``(seed, i)`` (see :mod:`scopenet.simulate.spm.stream`), so the
stream is reproducible whatever the number of workers: with ``num_workers = K`` worker ``w``
renders the indices ``start + w, start + w + K, ...`` and every index is produced exactly once.
Under ``torch.distributed`` the indices are further split by rank (rank-major, then worker).

>>> from torch.utils.data import DataLoader
>>> from scopenet.simulate.spm import SPMStream
>>> loader = DataLoader(SPMStream(n=1024, size=128, seed=0), batch_size=64, num_workers=2)  # doctest: +SKIP
>>> batch = next(iter(loader)); batch["image"].shape                                       # doctest: +SKIP
torch.Size([64, 1, 128, 128])
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ...errors import InputError
from .core import SPMSimConfig, _image_rng, resolve_config, simulate_image


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SPMStream(IterableDataset):
    """Simulated STM images with their labels, streamed (optionally without end).

    Parameters
    ----------
    n : int or None
        Number of images (indices ``start .. start + n - 1``); ``None`` streams forever.
    size : int
        Image side (pixels).
    seed : int
        Dataset seed: image ``i`` is ``simulate_image(default_rng(SeedSequence([seed, i])))``.
    config : SPMSimConfig or dict, optional
        Simulator settings (``size`` here wins).
    start : int
        First index.
    shard_by_rank : bool
        Also split the indices over ``torch.distributed`` ranks when a process group is running.

    Yields
    ------
    dict
        ``image`` float32 tensor [1, size, size], ``labels6`` float32 [6], ``good`` float32 scalar
        (1 = good tip), ``index`` int64 scalar. The default collate stacks them into batches.
    """

    def __init__(self, n: int | None = None, size: int = 128, seed: int = 0,
                 config: SPMSimConfig | dict | None = None, start: int = 0, shard_by_rank: bool = True):
        super().__init__()
        if n is not None and n < 0:
            raise InputError(f"number of images must be >= 0 or None, got {n}")
        if start < 0:
            raise InputError(f"start must be >= 0, got {start}")
        self.n, self.seed, self.start, self.shard_by_rank = n, int(seed), int(start), shard_by_rank
        self.config = resolve_config(config, {"size": size})

    def __len__(self) -> int:
        if self.n is None:
            raise TypeError("an endless SPMStream (n=None) has no length")
        return self.n

    def indices(self) -> Iterator[int]:
        """The dataset indices this process/worker renders, in order."""
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = _rank_world() if self.shard_by_rank else (0, 1)
        shard, n_shards = rank * nw + wid, world * nw
        i = self.start + shard
        stop = None if self.n is None else self.start + self.n
        while stop is None or i < stop:
            yield i
            i += n_shards

    def __iter__(self) -> Iterator[dict]:
        for i in self.indices():
            s = simulate_image(_image_rng(self.seed, i), self.config)
            yield {"image": torch.from_numpy(np.ascontiguousarray(s.image))[None],
                   "labels6": torch.from_numpy(s.labels6),
                   "good": torch.tensor(float(s.good_tip)),
                   "index": torch.tensor(i, dtype=torch.int64)}
