"""The training data stream: endless batches, seeded per sample, resumable at any micro-step.

Reproducibility: data order comes from a seeded DistributedSampler, and each sample's
augmentation from an RNG seeded by (seed, epoch, index), so neither depends on worker count or
on where a run was resumed. A run's position in the stream is its micro-step count
(iteration × run.accumulation): nothing else needs saving to continue it exactly.
"""

from __future__ import annotations

import random

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from training import distributed
from training.config import TrainConfig
from training.stop_signals import ignore_stop_signals


class SeededDataset(Dataset):
    """Draws each sample's random transform from RNGs seeded by (seed, epoch, index).

    The process's own RNG states are restored afterwards, so loading data (in the main process
    or in workers) never shifts the model's random stream (stochastic depth, dropout).
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        key = (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            random.seed(key)
            torch.manual_seed(key % 2**63)
            try:
                return self.dataset[index]
            finally:
                random.setstate(python_state)


class SkipFirst(Sampler):
    """The indices of `sampler` without the first `skip` (to resume mid-epoch without loading)."""

    def __init__(self, sampler: Sampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        for position, index in enumerate(self.sampler):
            if position >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


class BatchStream:
    """Endless training batches for this process, resumable at any micro-step.

    Data order comes from a seeded DistributedSampler (one permutation per epoch); a resumed
    run skips the micro-steps already taken instead of loading them.
    """

    def __init__(self, dataset: Dataset, cfg: TrainConfig, ctx: distributed.Context, per_rank: int,
                 micro_step: int) -> None:
        self.seeded = SeededDataset(dataset, cfg.run.seed)
        self.sampler = DistributedSampler(self.seeded, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.run.seed,
                                          drop_last=True)
        self.per_rank, self.seed, self.workers = per_rank, cfg.run.seed, cfg.data.workers
        self.pin = ctx.device.type == "cuda"
        self.batches_per_epoch = len(self.sampler) // per_rank
        if self.batches_per_epoch == 0:
            raise ValueError(f"the training set ({len(dataset)} images) is smaller than one batch per process")
        self.micro_step = micro_step
        self._batches = iter(self._loader())

    def _loader(self) -> DataLoader:
        epoch, skip = divmod(self.micro_step, self.batches_per_epoch)
        self.sampler.set_epoch(epoch)
        self.seeded.epoch = epoch
        # Its own generator: creating a loader must not draw from the global RNG either.
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return DataLoader(self.seeded, batch_size=self.per_rank, sampler=SkipFirst(self.sampler, skip * self.per_rank),
                          num_workers=self.workers, drop_last=True, pin_memory=self.pin, generator=generator,
                          worker_init_fn=ignore_stop_signals if self.workers else None)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            batch = next(self._batches)
        except StopIteration:  # end of an epoch: the next one, newly shuffled
            self._batches = iter(self._loader())
            batch = next(self._batches)
        self.micro_step += 1
        return batch
