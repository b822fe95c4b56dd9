"""Data order for exact resumption and DDP: a seeded global order, split per rank, per step.

Epoch ``e`` visits the training frames in the order ``randperm(n)`` drawn from a generator seeded
with ``(seed, e)``. Global batch ``k`` of the epoch is ``order[k*G : (k+1)*G]`` with
``G = batch_size * world_size``; rank ``r`` takes the slice ``[k*G + r*B : k*G + (r+1)*B]``. So a
run on 2 processes with batch 2 sees exactly the frames a single process with batch 4 sees, and
step ``s`` of any run maps to (epoch, batch) = divmod(s, steps_per_epoch): resuming at step ``s``
starts the epoch's order at that batch. The incomplete last global batch of an epoch is dropped.

Random augmentation must not depend on which loader worker happens to load a frame: each item
is loaded under RNG seeds derived from (seed, epoch, position), see :class:`SeededItems`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from occkit.data.sample import Batch, collate


def _mix(*xs: int) -> int:
    """A 63-bit seed from integers (SplitMix64-style mixing; stable across runs and platforms)."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h = (h ^ (int(x) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of the training RNGs at ``step`` on ``rank`` (dropout, ray sampling ...)."""
    return _mix(seed, 1, rank, step)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class StepSampler(Sampler[tuple[int, int]]):
    """This rank's items of one epoch from a given batch on: yields ``(index, item_seed)``.

    Args:
        n: number of frames.
        batch_size: frames per step on this rank.
        seed: run seed.
        rank, world_size: this process and how many there are.
        shuffle: permute (training) or keep the dataset order.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{n} training frames cannot fill one global batch of {batch_size} x {world_size} processes"
            )
        self.epoch, self.start_batch = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Start the next iteration at batch ``start_batch`` of epoch ``epoch``."""
        if not 0 <= start_batch < self.steps_per_epoch:
            raise ValueError(f"start_batch {start_batch} outside [0, {self.steps_per_epoch})")
        self.epoch, self.start_batch = epoch, start_batch

    def order(self, epoch: int) -> torch.Tensor:
        """``(n,)`` the global order of epoch ``epoch`` (the same on every rank)."""
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(_mix(self.seed, 2, epoch))
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order(self.epoch).tolist()
        B, G = self.batch_size, self.batch_size * self.world_size
        for k in range(self.start_batch, self.steps_per_epoch):
            lo = k * G + self.rank * B
            for pos in range(lo, lo + B):
                yield order[pos], _mix(self.seed, 3, self.epoch, pos)

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_batch) * self.batch_size


class SeededItems(Dataset):
    """Wraps a dataset so that item ``(index, item_seed)`` loads under seeded RNGs.

    The caller's RNG states are restored afterwards (it matters when loading in the main process).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        index, item_seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            seed_everything(item_seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def train_batches(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    start_step: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """Endless stream of this rank's training batches, starting at global step ``start_step``."""
    sampler = StepSampler(len(dataset), batch_size, seed, rank, world_size, shuffle=True)  # type: ignore[arg-type]
    epoch, start_batch = divmod(start_step, sampler.steps_per_epoch)
    while True:
        sampler.set_position(epoch, start_batch)
        loader = DataLoader(
            SeededItems(dataset),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=pin_memory,
            drop_last=True,
        )
        yield from loader
        epoch, start_batch = epoch + 1, 0


def spread_indices(n: int, max_frames: int) -> list[int]:
    """Indices of ``max_frames`` frames spread evenly over ``n`` (first and last included), or all
    ``n`` when ``max_frames`` is 0 or not below ``n``: a quick pass that still visits every scene."""
    if not 0 < max_frames < n:
        return list(range(n))
    return sorted({round(i * (n - 1) / max(1, max_frames - 1)) for i in range(max_frames)})


def eval_batches(
    dataset: Dataset,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    max_frames: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """This rank's share of the evaluation frames (strided, nothing repeated), in dataset order.

    ``max_frames`` > 0 keeps ``max_frames`` frames spread evenly over the dataset (a quick
    evaluation that still visits every scene).
    """
    indices = spread_indices(len(dataset), max_frames)[rank::world_size]  # type: ignore[arg-type]
    return DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
    )
