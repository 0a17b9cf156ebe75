"""The order in which images, flips and captions are drawn: seeded, resumable, shardable.

Every process runs the same generator, so all draw the same global batch of
`batch_size x processes` items, and process r keeps items [r*batch_size, (r+1)*batch_size).
The stream is one random permutation of the images after another (an epoch each), so every
image is seen equally often. The whole state is a generator state plus a position, which a
checkpoint stores to continue bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MicroBatch:
    """One process's share of one micro-batch: which images, mirrored or not, which caption."""

    indices: torch.Tensor
    """[batch_size] int64 dataset items (sorted-filename order)."""
    flips: torch.Tensor
    """[batch_size] int64, 1 = horizontally mirrored."""
    templates: torch.Tensor
    """[batch_size] int64 caption template numbers."""


class BatchSampler:
    """Draws MicroBatches for process `rank` of `world_size` from one seeded generator.

    `state_dict`/`load_state_dict` carry the generator, the current epoch's permutation and
    the position in it, so a resumed run draws exactly the items the straight run would.
    """

    def __init__(self, num_images: int, num_templates: int, batch_size: int, *, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.num_images = num_images
        self.num_templates = num_templates
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []
        self.position = 0
        self.items_drawn = 0
        """Items drawn in total, over all processes: images seen = this."""

    def _next_index(self) -> int:
        if self.position >= len(self.order):
            self.order = torch.randperm(self.num_images, generator=self.generator).tolist()
            self.position = 0
        index = self.order[self.position]
        self.position += 1
        return index

    def next(self) -> MicroBatch:
        """The next global micro-batch (batch_size x world_size items), this process's slice."""
        total = self.batch_size * self.world_size
        indices = [self._next_index() for _ in range(total)]
        flips = torch.randint(0, 2, (total,), generator=self.generator)
        templates = torch.randint(0, self.num_templates, (total,), generator=self.generator)
        self.items_drawn += total
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return MicroBatch(torch.tensor(indices[mine]), flips[mine], templates[mine])

    def state_dict(self) -> dict:
        """Generator state, permutation, position and items drawn (plain, weights_only-safe)."""
        return {"generator": self.generator.get_state(), "order": list(self.order),
                "position": self.position, "items_drawn": self.items_drawn}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict` taken by a sampler with the same sizes and seed."""
        self.generator.set_state(state["generator"])
        self.order = list(state["order"])
        self.position = int(state["position"])
        self.items_drawn = int(state["items_drawn"])
