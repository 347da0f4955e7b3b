"""What every training loop of the package shares: the step count, the batch order, the stop on a bad loss.

In: a trainer's config (anything with ``max_steps``, ``epochs``, ``batch_size`` and ``seed``: SFT's,
DPO's, the reward model's), its encoded records and each step's loss value. Out:

- :func:`total_steps`: how many optimizer steps a run takes;
- :func:`batches`: endless shuffled batches, the same order for the same seed;
- :func:`stop_if_not_finite`: raises :class:`NonFiniteLoss` when the loss is NaN or infinite, before
  the backward pass, so a bad step never reaches the weights.

The pretraining loop draws random windows instead of records (:mod:`llmkb.pretrain.train`) but
stops on a bad loss with the same :class:`NonFiniteLoss`.
"""

from __future__ import annotations

import math
import random


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the weights were not updated with it."""


def total_steps(config, n_records: int) -> int:
    """Optimizer steps of the run: ``max_steps`` if set, else ``epochs`` passes over the data.

    >>> from types import SimpleNamespace
    >>> by_epochs, capped = SimpleNamespace(max_steps=0, epochs=3, batch_size=16), SimpleNamespace(max_steps=5)
    >>> total_steps(by_epochs, 100), total_steps(capped, 100)
    (21, 5)
    """
    return config.max_steps or config.epochs * math.ceil(n_records / config.batch_size)


def batches(encoded: list[dict], config):
    """Endless shuffled batches: each epoch a new order, seeded by (seed, epoch), so runs repeat.

    Yields ``(epoch, batch)``. The seed string says "sft" for every trainer: SFT had this first, and
    the DPO and reward-model runs keep the order they have always had.
    """
    epoch = 0
    while True:
        order = list(range(len(encoded)))
        random.Random(f"sft:order:{config.seed}:{epoch}").shuffle(order)
        for start in range(0, len(order), config.batch_size):
            yield epoch, [encoded[i] for i in order[start : start + config.batch_size]]
        epoch += 1


def stop_if_not_finite(value: float, where: str, hint: str = "") -> None:
    """Raise :class:`NonFiniteLoss` naming ``where`` (and ``hint``, what to try) if ``value`` is NaN or infinite.

    >>> stop_if_not_finite(float("nan"), "SFT step 3", "lower the learning rate")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    llmkb.training.NonFiniteLoss: SFT step 3: the loss is nan; stopped before updating the weights
    (lower the learning rate)
    """
    if not math.isfinite(value):
        suffix = f" ({hint})" if hint else ""
        raise NonFiniteLoss(f"{where}: the loss is {value}; stopped before updating the weights{suffix}")
