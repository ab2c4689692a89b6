"""Pieces of the optional adversarial fine-tuning of the completion network (Ede thesis ch. 4).

The discriminators and LSGAN losses live in :mod:`scopenet.nn.partial_stem`; the loop is in
:mod:`scopenet.tasks.inpaint.train` (``InpaintTrainConfig.adversarial``). Here: the experience-replay
buffer that shows the discriminators earlier generator outputs, so they do not forget what the
generator used to get wrong and the two networks do not chase each other in circles.
"""
from __future__ import annotations

import torch


class ReplayBuffer:
    """A pool of past generator outputs mixed into the discriminator's "fake" batches.

    :meth:`push_and_sample` takes a batch of new outputs ``(B, ...)`` (detached) and returns a batch of
    the same shape: while the pool is filling, the new images themselves (and they are stored); once
    it is full, each image is swapped with probability ``p_replay`` for a random stored one, which the
    new image replaces in the pool. ``capacity=0`` disables replay (the new batch is returned).
    """

    def __init__(self, capacity: int = 50, p_replay: float = 0.5, seed: int = 0):
        if capacity < 0 or not 0 <= p_replay <= 1:
            raise ValueError(f"need capacity >= 0 and 0 <= p_replay <= 1, got {capacity}, {p_replay}")
        self.capacity, self.p_replay = int(capacity), float(p_replay)
        self.items: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.items)

    def push_and_sample(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.detach()
        if self.capacity == 0:
            return batch
        out = []
        for img in batch:
            img = img.clone()
            if len(self.items) < self.capacity:
                self.items.append(img)
                out.append(img)
            elif float(torch.rand(1, generator=self.gen)) < self.p_replay:
                j = int(torch.randint(len(self.items), (1,), generator=self.gen))
                out.append(self.items[j])
                self.items[j] = img
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"items": list(self.items), "gen": self.gen.get_state(), "capacity": self.capacity,
                "p_replay": self.p_replay}

    def load_state_dict(self, state: dict) -> None:
        self.items = list(state["items"])
        self.gen.set_state(state["gen"])
        self.capacity, self.p_replay = int(state["capacity"]), float(state["p_replay"])
