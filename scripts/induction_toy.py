"""Can a model of the pretraining stage's shape grow induction heads at all, on data made for them?

In: a batch size, a number of steps, a share of windows with a copy, a learning rate (the stage's
model shape; its peak learning rate, held constant, unless given). Out: the induction probe of
:func:`llmkb.pretrain.probes.induction_score` every ``--every`` steps, printed: step, training
loss, second-copy accuracy, first-copy loss minus second-copy loss.

Each training window is random tokens; in ``--share`` of them a span of 10 to 59 tokens is copied
to a random later place, so the only thing to learn is to copy from the context. ``--fixed-gap``
puts every copy exactly half a window later instead: a model can then predict it by position
alone (a head that looks back a fixed distance), which is not an induction head, and the probe
(copies at distance 30) tells the two apart. ``--repeat`` makes every window the pretraining
stage's repeat windows (:func:`llmkb.pretrain.shards.repeat_windows`: a run of 8 to 40 random tokens
repeated to the end), where most tokens can be predicted by copying.

    OMP_NUM_THREADS=1 python scripts/induction_toy.py --batch 8 --steps 1200
    OMP_NUM_THREADS=1 python scripts/induction_toy.py --repeat --batch 8 --steps 1400 --every 100
"""

from __future__ import annotations

import argparse
import time

import torch

from llmkb.model.gpt import GPT, configure_optimizer
from llmkb.pretrain.config import PretrainConfig
from llmkb.pretrain.probes import induction_score, merged_tokens
from llmkb.pretrain.shards import repeat_windows


def windows(batch: int, context: int, vocab: tuple[int, int], share: float, fixed_gap: bool, g: torch.Generator):
    """``(batch, context + 1)`` random token windows, ``share`` of them holding a copied span.

    >>> x = windows(2, 16, (5, 100), 1.0, True, torch.Generator().manual_seed(0))
    >>> x.shape, bool((x[:, :8] == x[:, 8:16]).all())
    (torch.Size([2, 17]), True)
    >>> y = windows(1, 127, (5, 4000), 1.0, False, torch.Generator().manual_seed(0))[0].tolist()
    >>> any(y[i : i + 10] == y[j : j + 10] for i in range(118) for j in range(i + 10, 119))
    True
    """
    x = torch.randint(*vocab, (batch, context + 1), generator=g)
    half = (context + 1) // 2
    for row in range(batch):
        if torch.rand(1, generator=g).item() >= share:
            continue
        if fixed_gap:
            x[row, half : 2 * half] = x[row, :half]
            continue
        n = int(torch.randint(10, 60, (1,), generator=g))
        a = int(torch.randint(0, context + 2 - 2 * n, (1,), generator=g))
        b = int(torch.randint(a + n, context + 2 - n, (1,), generator=g))
        x[row, b : b + n] = x[row, a : a + n]
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="windows per step (the default pretraining: 8)")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--every", type=int, default=200, help="steps between probes")
    parser.add_argument("--share", type=float, default=1.0, help="share of windows with a copied span")
    parser.add_argument("--fixed-gap", action="store_true", help="every copy half a window later")
    parser.add_argument("--repeat", action="store_true", help="the pretraining stage's repeat windows")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the stage's)")
    args = parser.parse_args()
    config = PretrainConfig()  # the default stage's model shape, learning rate and betas
    vocab_size = 4096
    torch.manual_seed(config.seed)
    model = GPT(config.model_config(vocab_size))
    optimizer = configure_optimizer(
        model, args.lr or config.lr, config.weight_decay, (config.beta1, config.beta2), "cpu"
    )
    g = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    print("step  loss  second-copy accuracy  loss drop  seconds")
    for step in range(1, args.steps + 1):
        if args.repeat:
            x, y = repeat_windows(args.batch, config.context, *merged_tokens(vocab_size), g)
        else:
            window = windows(args.batch, config.context, merged_tokens(vocab_size), args.share, args.fixed_gap, g)
            x, y = window[:, :-1], window[:, 1:]
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % args.every == 0:
            score = induction_score(model)
            print(
                f"{step:>4}  {loss.item():.3f}  {score.second_accuracy:>20.1%}  "
                f"{score.first_loss - score.second_loss:>9.2f}  {time.perf_counter() - t0:>7.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
