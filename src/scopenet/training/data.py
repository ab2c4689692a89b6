"""Data pipeline: random crops of 2-D images, the 8 dihedral augmentations, grouped splits.

Resumable and reproducible by construction: the crop, augmentation and ``pair_fn`` randomness of a
sample is drawn from ``numpy.random.default_rng([seed, epoch, index])`` and the order of samples is
a permutation seeded by ``(seed, epoch)``. The batch at any (epoch, step) is therefore a pure
function of the seed, whatever the number of workers, and :class:`ResumableDataLoader` can skip to
the middle of an epoch after a restart (Lightning calls its ``state_dict``/``load_state_dict``).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import InputError

PairFn = Callable[[np.random.Generator, np.ndarray], tuple[np.ndarray, np.ndarray]]


# ---------------------------------------------------------------------------------------------
# pure array helpers
# ---------------------------------------------------------------------------------------------
def replace_nonfinite(image: np.ndarray, value: float | None = None) -> np.ndarray:
    """Copy of ``image`` with NaN/inf replaced by ``value`` (default: the median of finite pixels).

    An image without a single finite pixel raises ``InputError``.
    """
    image = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(image)
    if finite.all():
        return image.copy()
    if not finite.any():
        raise InputError("image has no finite pixels")
    fill = float(np.median(image[finite])) if value is None else float(value)
    return np.where(finite, image, np.float32(fill)).astype(np.float32)


def normalise_image(image: np.ndarray, mode: str = "zscore") -> np.ndarray:
    """Per-image normalisation: ``"zscore"`` (mean 0, sd 1), ``"minmax"`` ([0, 1]) or ``"none"``.

    Constant images map to zeros instead of dividing by zero.
    """
    image = np.asarray(image, dtype=np.float32)
    if mode == "none":
        return image
    if mode == "zscore":
        sd = float(image.std())
        return ((image - image.mean()) / sd if sd > 0 else image - image.mean()).astype(np.float32)
    if mode == "minmax":
        lo, hi = float(image.min()), float(image.max())
        return ((image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)).astype(np.float32)
    raise InputError(f"unknown normalisation {mode!r}; use zscore, minmax or none")


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th of the 8 flips/90-degree rotations (k = 0 is the identity) of the last two axes.

    ``k % 4`` quarter turns, followed by a left-right flip when ``k >= 4``.
    """
    if not 0 <= k < 8:
        raise InputError(f"dihedral index must be in 0..7, got {k}")
    out = np.rot90(image, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


def dihedral_inverse(image: np.ndarray, k: int) -> np.ndarray:
    """Undo :func:`dihedral` ``k`` on the last two axes: ``dihedral_inverse(dihedral(a, k), k) == a``."""
    if not 0 <= k < 8:
        raise InputError(f"dihedral index must be in 0..7, got {k}")
    out = image[..., ::-1] if k >= 4 else image
    return np.ascontiguousarray(np.rot90(out, -(k % 4), axes=(-2, -1)))


def dihedral_tta(fn, x: np.ndarray, ks=range(8)) -> np.ndarray:
    """Average ``fn`` over flips/90-degree rotations of the last two axes of ``x``, each mapped back.

    Parameters
    ----------
    fn : callable ``(..., H, W) -> (..., H, W)``
        Any leading axes (channels) are carried along; the output's last two axes are transformed back.
    x : ndarray
    ks : iterable of int
        Which of the 8 transforms of :func:`dihedral` to average (default all).
    """
    ks = list(ks)
    acc = None
    for k in ks:
        y = dihedral_inverse(np.asarray(fn(dihedral(x, k)), np.float64), k)
        acc = y if acc is None else acc + y
    return (acc / len(ks)).astype(np.float32)


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` x ``size`` crop at a uniformly random position of the last two axes."""
    h, w = image.shape[-2:]
    if h < size or w < size:
        raise InputError(f"image of shape {image.shape} is smaller than the crop size {size}")
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return image[..., y:y + size, x:x + size]


def grouped_split(groups: Sequence[Any], fractions: Sequence[float] = (0.75, 0.15, 0.10), seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split item indices into train/validation/test so that no group straddles two parts.

    Groups (e.g. source file names) are shuffled with ``seed`` and assigned greedily to the part
    whose item count is furthest below its target, so the item fractions come close to
    ``fractions`` while every item of one group lands in the same part.

    Parameters
    ----------
    groups : sequence, length N
        Group label of every item (any hashable).
    fractions : 3 floats summing to 1
    seed : int

    Returns
    -------
    train, val, test : int arrays
        Sorted item indices of each part.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or abs(fractions.sum() - 1) > 1e-6:
        raise InputError(f"split fractions must be 3 non-negative numbers summing to 1, got {list(fractions)}")
    groups = list(groups)
    n = len(groups)
    if n == 0:
        raise InputError("cannot split an empty set of images")
    labels = {}
    for g in groups:
        labels.setdefault(g, len(labels))
    members: list[list[int]] = [[] for _ in labels]
    for i, g in enumerate(groups):
        members[labels[g]].append(i)
    order = np.random.default_rng(seed).permutation(len(members))
    counts = np.zeros(3)
    parts: list[list[int]] = [[], [], []]
    targets = fractions * n
    for gi in order:
        # most under-filled part relative to its target (parts with target 0 never receive items)
        deficit = np.where(targets > 0, (targets - counts) / np.maximum(targets, 1e-12), -np.inf)
        p = int(np.argmax(deficit))
        parts[p].extend(members[gi])
        counts[p] += len(members[gi])
    return tuple(np.array(sorted(p), dtype=int) for p in parts)  # type: ignore[return-value]


def group_labels(images: Sequence[Any], key: str | None = "source") -> list[Any]:
    """Source label of every image for :func:`grouped_split`.

    ``key == "source"`` uses a Micrograph's ``source`` file; other keys look in its ``metadata``.
    Images without the label (plain arrays) are their own group.
    """
    labels: list[Any] = []
    for i, img in enumerate(images):
        label = None
        if key == "source":
            label = getattr(img, "source", None)
        elif key is not None:
            label = (getattr(img, "metadata", None) or {}).get(key)
        labels.append(("file", str(label)) if label is not None else ("image", i))
    return labels


def expand_stacks(images: Sequence[Any], groups: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Split Micrograph stacks ``(n, H, W)`` into frames that keep their stack's group label."""
    out_images, out_groups = [], []
    for img, g in zip(images, groups):
        if getattr(img, "is_stack", False):
            out_images.extend(img.data[k] for k in range(img.data.shape[0]))
            out_groups.extend([g] * img.data.shape[0])
        else:
            out_images.append(img)
            out_groups.append(g)
    return out_images, out_groups


def _as_array(img: Any, i: int) -> np.ndarray:
    data = getattr(img, "data", img)
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[0] <= 4:  # channels first
        return arr
    raise InputError(f"training image {i} has shape {arr.shape}; expected (H, W) or (C, H, W) with C <= 4")


def _identity_pair(rng: np.random.Generator, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return crop, crop


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    return torch.from_numpy(a)


# ---------------------------------------------------------------------------------------------
# datasets and samplers
# ---------------------------------------------------------------------------------------------
class ArrayImageDataset(Dataset):
    """Random crops of a list of images, each turned into an ``(input, target)`` pair.

    Images are cleaned (NaN/inf replaced by the finite median) and normalised per image once,
    at construction. A sample key is an index or an ``(index, epoch)`` pair (as yielded by
    :class:`EpochSampler`); its randomness comes from ``default_rng([seed, epoch, index])``.

    Parameters
    ----------
    images : sequence of arrays (H, W) or (C, H, W), or Micrographs
    crop_size : int
        Side of square crops in pixels.
    samples_per_image : int
        Crops per image per epoch; ``len(dataset) = len(images) * samples_per_image``.
    augment : bool
        Apply a random one of the 8 dihedral transforms.
    normalise : {"zscore", "minmax", "none"}
    pair_fn : callable ``(rng, crop) -> (input, target)``
        Turns a clean crop into the network input and target (adds noise, masks pixels...).
        Default: ``(crop, crop)``.
    seed : int
    fixed : bool
        Ignore the epoch (the same crops every epoch), for validation and test sets.
    """

    def __init__(self, images: Sequence[Any], crop_size: int = 64, samples_per_image: int = 1,
                 augment: bool = True, normalise: str = "zscore", pair_fn: PairFn | None = None,
                 seed: int = 0, fixed: bool = False):
        if len(images) == 0:
            raise InputError("no training images given")
        arrays = [_as_array(im, i) for i, im in enumerate(images)]
        self.images = [normalise_image(replace_nonfinite(a), normalise) for a in arrays]
        for i, a in enumerate(self.images):
            if min(a.shape[-2:]) < crop_size:
                raise InputError(f"training image {i} of shape {a.shape} is smaller than crop_size={crop_size}")
        self.crop_size = int(crop_size)
        self.samples_per_image = int(samples_per_image)
        self.augment = augment
        self.pair_fn = pair_fn or _identity_pair
        self.seed = int(seed)
        self.fixed = fixed

    def __len__(self) -> int:
        return len(self.images) * self.samples_per_image

    def rng_for(self, index: int, epoch: int = 0) -> np.random.Generator:
        """The generator used for sample ``index`` in ``epoch``."""
        return np.random.default_rng([self.seed, 0 if self.fixed else int(epoch), int(index)])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = (key, 0) if np.isscalar(key) else key
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = self.rng_for(index, epoch)
        crop = random_crop(self.images[index // self.samples_per_image], self.crop_size, rng)
        if self.augment:
            crop = dihedral(crop, int(rng.integers(0, 8)))
        inp, target = self.pair_fn(rng, np.array(crop))
        return _to_tensor(inp), _to_tensor(target)


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSampler(Sampler):
    """Yields ``(index, epoch)`` keys: a permutation seeded by ``(seed, epoch)``, sharded by rank.

    Every global batch of ``batch_size * world_size`` consecutive keys of the permutation is
    split so that rank ``r`` takes the ``r``-th slice of ``batch_size``: a DDP run on W processes
    sees exactly the global batches of a single process with ``W * batch_size``. Incomplete global
    batches at the end of an epoch are dropped when ``drop_last``.

    Parameters
    ----------
    n : int
        Dataset length.
    batch_size : int
        Per-process batch size.
    shuffle : bool
    seed : int
    drop_last : bool
    rank, world_size : int, optional
        Default: from ``torch.distributed`` when initialised at iteration time, else 0 and 1.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = True,
                 rank: int | None = None, world_size: int | None = None):
        self.n, self.batch_size, self.shuffle, self.seed = int(n), int(batch_size), shuffle, int(seed)
        self.drop_last = drop_last
        self._rank, self._world = rank, world_size
        self.epoch = 0
        self.start_batch = 0  # batches of this epoch to skip (set on resume)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _world_info(self) -> tuple[int, int]:
        r, w = _dist_info()
        return (self._rank if self._rank is not None else r, self._world if self._world is not None else w)

    def _keys(self) -> list[int]:
        rank, world = self._world_info()
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle
                 else np.arange(self.n))
        gb = self.batch_size * world
        n_global = self.n // gb if self.drop_last else -(-self.n // gb)
        keys: list[int] = []
        for g in range(n_global):
            chunk = order[g * gb:(g + 1) * gb]
            keys.extend(int(i) for i in chunk[rank * self.batch_size:(rank + 1) * self.batch_size])
        return keys

    def num_batches(self) -> int:
        _, world = self._world_info()
        gb = self.batch_size * world
        return self.n // gb if self.drop_last else -(-self.n // gb)

    def __len__(self) -> int:
        return len(self._keys())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        keys = self._keys()[self.start_batch * self.batch_size:]
        self.start_batch = 0
        epoch = self.epoch
        return iter([(k, epoch) for k in keys])


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed numpy and random in each worker from torch's per-worker seed."""
    import random

    s = torch.initial_seed() % 2 ** 32
    np.random.seed(s)
    random.seed(s)


class ResumableDataLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` that remembers how far into the epoch it got.

    ``state_dict()`` returns ``{"epoch", "batches"}`` (batches handed out in the current epoch);
    ``load_state_dict`` makes the next iteration start at that batch of that epoch. Lightning saves
    and restores this state in its checkpoints, so a run killed mid-epoch continues with exactly
    the batches it would have seen.
    """

    def __init__(self, dataset: Dataset, sampler: EpochSampler, **kwargs):
        kwargs.setdefault("worker_init_fn", seed_worker)
        if kwargs.get("num_workers", 0) > 0:
            kwargs.setdefault("persistent_workers", False)
        super().__init__(dataset, batch_size=sampler.batch_size, sampler=sampler, drop_last=False, **kwargs)
        self._served = 0

    def __iter__(self):
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        self._served = sampler.start_batch
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def __len__(self) -> int:
        return self.sampler.num_batches()  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._served)}  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        sampler.set_epoch(state["epoch"])
        sampler.start_batch = int(state["batches"]) if state["batches"] < sampler.num_batches() else 0
        self._served = sampler.start_batch


# ---------------------------------------------------------------------------------------------
# Lightning data module
# ---------------------------------------------------------------------------------------------
import lightning.pytorch as pl  # noqa: E402


class ImageDataModule(pl.LightningDataModule):
    """Train/validation/test loaders over :class:`ArrayImageDataset` s.

    Build it from datasets directly, or from a list of images with :meth:`from_images`, which
    splits them by group (source file) so crops of one image never sit on both sides.

    Parameters
    ----------
    train, val, test : Dataset or None
    batch_size : int
        Per-process batch size.
    num_workers : int
        Worker processes prefetching batches (0: load in the main process).
    seed : int
        Seed of the sample order (the datasets carry their own crop seeds).
    """

    def __init__(self, train: Dataset, val: Dataset | None = None, test: Dataset | None = None,
                 batch_size: int = 8, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.train_set, self.val_set, self.test_set = train, val, test
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        if len(train) < batch_size:
            raise InputError(f"the training set has {len(train)} samples, fewer than one batch of {batch_size}")

    @classmethod
    def from_images(cls, images: Sequence[Any], config, pair_fn: PairFn | None = None,
                    groups: Sequence[Any] | None = None, seed: int = 0) -> "ImageDataModule":
        """Split ``images`` by ``groups`` (default: one group per image) and wrap each part.

        Parameters
        ----------
        images : sequence of arrays or Micrographs
        config : DataConfig
        pair_fn : callable, optional
            See :class:`ArrayImageDataset`.
        groups : sequence, optional
            Source label of every image; default :func:`group_labels` with ``config.group_key``
            (a Micrograph's source file; plain arrays are their own group). Frames of a
            Micrograph stack share its group.
        seed : int
            Seed of crops and sample order.
        """
        groups = group_labels(images, config.group_key) if groups is None else list(groups)
        if len(groups) != len(images):
            raise InputError(f"{len(groups)} group labels for {len(images)} images")
        images, groups = expand_stacks(images, groups)
        tr, va, te = grouped_split(groups, config.split, config.split_seed)
        common = dict(crop_size=config.crop_size, normalise=config.normalise, pair_fn=pair_fn)

        def make(idx, train):
            if len(idx) == 0:
                return None
            return ArrayImageDataset([images[i] for i in idx], samples_per_image=config.samples_per_image,
                                     augment=config.augment and train, seed=seed + (0 if train else 1),
                                     fixed=not train, **common)

        train = make(tr, True)
        if train is None:
            raise InputError("the split left no training images; add images or change data.split")
        return cls(train, make(va, False), make(te, False), batch_size=config.batch_size,
                   num_workers=config.num_workers, seed=seed)

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Training batches per epoch on each of ``world_size`` processes (incomplete batches dropped)."""
        return len(self.train_set) // (self.batch_size * max(int(world_size), 1))

    def _loader(self, ds: Dataset, shuffle: bool) -> ResumableDataLoader:
        sampler = EpochSampler(len(ds), self.batch_size, shuffle=shuffle, seed=self.seed, drop_last=shuffle)
        return ResumableDataLoader(ds, sampler, num_workers=self.num_workers,
                                   persistent_workers=self.num_workers > 0 and shuffle)

    def train_dataloader(self):
        return self._loader(self.train_set, True)

    def val_dataloader(self):
        return [] if self.val_set is None else self._loader(self.val_set, False)

    def test_dataloader(self):
        return [] if self.test_set is None else self._loader(self.test_set, False)
