"""Re-seed the random generators from the iteration number, so that a resumed run repeats the
uninterrupted one."""
import random
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from soc_mm.registry import HOOKS


def iteration_seed(base_seed: int, iteration: int, rank: int) -> int:
    """A distinct 31-bit seed per (base seed, iteration, rank)."""
    return (int(base_seed) * 1000003 + int(iteration) * 7919 + int(rank) * 104729) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


class _SeededBatchIterator:
    """Wraps a loop's batch iterator: calls ``reseed(n)`` before drawing the n-th batch (n from 0)."""

    def __init__(self, iterator: Iterator, reseed: Callable[[int], None]) -> None:
        self.iterator = iterator
        self.reseed = reseed
        self.num_drawn = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.reseed(self.num_drawn)
        self.num_drawn += 1
        return next(self.iterator)


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Seed Python, NumPy and torch from (seed, next iteration, rank) before every training iteration.

    MMEngine seeds once at start-up, so after ``--resume`` dropout, drop-path and the augmentations
    of the main process draw other numbers than the uninterrupted run. With this hook the random
    streams depend only on the iteration, so an interrupted and resumed run ends with the same
    weights as an uninterrupted one. The seed is set before the data of the next iteration is
    loaded (after each iteration, at the start of each epoch and of training).

    With an iteration-based loop (a loop with a ``dataloader_iterator``, e.g. ``IterBasedTrainLoop``)
    the seed is also set right before each batch is drawn: when resuming, that loop draws the
    batches of the iterations already trained again to skip them (so the sampler order goes on where
    it stopped), which consumes random numbers between the seeding in ``before_train`` and the first
    new batch; seeding per drawn batch makes that batch, and every later one, see the same random
    state as in the uninterrupted run.

    Exact equality also needs the data loader workers to restart each epoch the same way
    (``num_workers=0`` or ``persistent_workers=False``: mmengine's ``worker_init_fn`` seeds them
    identically every epoch); an epoch-based loop must resume from an end-of-epoch checkpoint.

    Args:
        seed (int, optional): base seed; default the runner's seed (``randomness.seed``).
    """
    priority = 'VERY_HIGH'

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = seed

    def _reseed(self, runner, iteration: int) -> None:
        base = self.seed if self.seed is not None else runner.seed
        seed_everything(iteration_seed(base if base is not None else 0, iteration, get_rank()))

    def before_train(self, runner) -> None:
        self._reseed(runner, runner.iter)
        loop = runner.train_loop
        iterator = getattr(loop, 'dataloader_iterator', None)
        if iterator is not None and not isinstance(iterator, _SeededBatchIterator):
            # the loop builds its iterator before resuming: the n-th batch drawn is iteration n's
            loop.dataloader_iterator = _SeededBatchIterator(iterator, lambda index: self._reseed(runner, index))

    def before_train_epoch(self, runner) -> None:
        self._reseed(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._reseed(runner, runner.iter + 1)
