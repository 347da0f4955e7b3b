"""The pretraining loop: predict the next token, measure the error, nudge every weight, repeat.

In: token shards (:mod:`llmkb.pretrain.shards`) and a :class:`PretrainConfig`. Out, in the output
folder: ``checkpoint/`` (safetensors weights, optimizer state, step), ``log.jsonl`` (loss, learning
rate, gradient norm, tokens/s, MFU per step; validation loss every ``eval_every`` steps).

One optimizer step, as in nanoGPT:

1. draw ``batch_size`` random windows of text, plus ``repeat_windows`` windows of random tokens
   repeated (the same ones on every process: the draw is seeded by the step number, which is also
   why a resumed run sees exactly the batches it would have seen);
2. split them into ``grad_accum`` micro-batches per process; forward, cross-entropy, backward each,
   adding up gradients (under DDP, processes average their gradients on the last micro-batch);
3. stop if the loss is NaN or infinite, before the bad gradient touches the weights;
4. clip the gradient norm, set the learning rate (linear warmup, then cosine decay), AdamW step.

On CUDA the forward runs under bf16 autocast, the model is compiled with ``torch.compile`` and AdamW
uses its fused kernel; on CPU everything stays fp32. Run it under ``torchrun --nproc_per_node N``
and it trains with DistributedDataParallel (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from llmkb.device import autocast, peak_flops, pick_device
from llmkb.io import read_jsonl, write_jsonl
from llmkb.model.gpt import GPT, configure_optimizer
from llmkb.pretrain.checkpoint import load_checkpoint, read_state, recover, save_checkpoint
from llmkb.pretrain.config import PretrainConfig
from llmkb.pretrain.probes import induction_score, merged_tokens
from llmkb.pretrain.shards import TokenShards, repeat_windows
from llmkb.training import NonFiniteLoss


def lr_at(step: int, config: PretrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at ``max_steps``.

    >>> c = PretrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    >>> lr_at(0, c), lr_at(9, c), lr_at(60, c), lr_at(110, c)
    (0.1, 1.0, 0.55, 0.1)
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def windows_at(step: int, config: PretrainConfig) -> int:
    """Windows in step ``step``'s batch: ``batch_size`` of text, plus the repeat windows (in every step, or in
    the first ``repeat_steps`` when that is > 0).

    >>> c = PretrainConfig(batch_size=8, repeat_windows=24, repeat_steps=1300)
    >>> windows_at(0, c), windows_at(1299, c), windows_at(1300, c), windows_at(1300, PretrainConfig(repeat_steps=0))
    (32, 32, 8, 32)
    """
    repeats = not config.repeat_steps or step < config.repeat_steps
    return config.batch_size + (config.repeat_windows if repeats else 0)


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    cores = os.cpu_count() or 1
    if not device.startswith("cuda") and world > cores:
        raise ValueError(
            f"WORLD_SIZE={world}: {world} training processes on {cores} CPU core(s) would take turns on the same "
            f"cores; start at most {cores} (torchrun --nproc_per_node {cores}), or run one process"
        )
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def batch_generator(seed: int, step: int) -> torch.Generator:
    """The random source of step ``step``'s batch: a function of (seed, step) only, so resuming is exact."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: TokenShards, config: PretrainConfig, device: str) -> float:
    """Mean next-token loss over the first ``eval_tokens`` tokens of ``data`` (consecutive windows)."""
    model.eval()
    total, count = 0.0, 0
    for x, y in data.sequential(max(1, config.batch_size), config.context, config.eval_tokens):
        with autocast(device):
            _, loss = model(x.to(device), y.to(device))
        total += loss.item() * y.numel()
        count += y.numel()
    model.train()
    if count == 0:
        raise ValueError(
            f"{data.source}: the validation split is shorter than one window of {config.context + 1} tokens"
        )
    return total / count


def copy_scores(model: GPT) -> dict:
    """The induction probe during training: random 30-token sequences shown twice (no byte or special tokens)."""
    score = induction_score(model)
    return {
        "copy_first_loss": round(score.first_loss, 4),
        "copy_second_loss": round(score.second_loss, 4),
        "copy_second_accuracy": round(score.second_accuracy, 4),
    }


def train(config: PretrainConfig, train_data: TokenShards, val_data: TokenShards, out_dir: str | Path) -> dict:
    """Train (or resume) a model into ``out_dir``; returns the final numbers. See the module docstring."""
    out_dir = Path(out_dir)
    device = pick_device(config.device)
    ddp = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{ddp.local_rank}"
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    per_step = ddp.world * config.grad_accum
    for windows, what in ((config.batch_size, "batch_size"), (windows_at(0, config), "batch_size + repeat_windows")):
        if windows % per_step:
            raise ValueError(
                f"{what} = {windows} windows per step is not divisible by processes x grad_accum = {per_step}"
            )
    train_data.check_window(config.context)

    torch.manual_seed(config.seed)
    model_config = config.model_config(train_data.vocab_size)
    model = GPT(model_config).to(device)
    optimizer = configure_optimizer(model, config.lr, config.weight_decay, (config.beta1, config.beta2), device)
    ckpt = out_dir / "checkpoint"
    log: list[dict] = []
    step = 0
    recover(ckpt)
    if ckpt.exists():  # resume: weights, optimizer moments, step and the log up to that step
        step = load_checkpoint(ckpt, model, optimizer)["step"]
        log = (
            [r for r in read_jsonl(out_dir / "log.jsonl") if r["step"] < step]
            if (out_dir / "log.jsonl").exists()
            else []
        )

    compiled = config.compile == "yes" or (config.compile == "auto" and device.startswith("cuda"))
    fast = torch.compile(model) if compiled else model  # same weights as model, faster kernels
    runner = fast
    if ddp.world > 1:
        runner = torch.nn.parallel.DistributedDataParallel(
            fast, device_ids=[ddp.local_rank] if device.startswith("cuda") else None
        )

    def checkpoint() -> None:
        if ddp.main:
            state = {"step": step, "model_config": model_config.to_dict(), "train_config": dataclasses.asdict(config)}
            save_checkpoint(ckpt, model, optimizer, state)
            write_jsonl(out_dir / "log.jsonl", log)

    flops_per_token = model.flops_per_token(config.context)
    peak = peak_flops(device)
    last_step = config.max_steps if not config.stop_after else min(config.max_steps, step + config.stop_after)
    bar = tqdm(
        total=config.max_steps, initial=step, desc="pretrain", unit="step", disable=not (config.progress and ddp.main)
    )
    try:
        while step < last_step:
            t0 = time.perf_counter()
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            generator = batch_generator(config.seed, step)
            x_all, y_all = train_data.batch(config.batch_size, config.context, generator)
            if windows_at(step, config) > config.batch_size:
                low, high = merged_tokens(train_data.vocab_size)
                x_rep, y_rep = repeat_windows(config.repeat_windows, config.context, low, high, generator)
                x_all, y_all = torch.cat([x_all, x_rep]), torch.cat([y_all, y_rep])
            loss_sum = torch.zeros((), device=device)
            micro = len(x_all) // per_step
            for m in range(config.grad_accum):
                rows = slice((m * ddp.world + ddp.rank) * micro, (m * ddp.world + ddp.rank + 1) * micro)
                x, y = x_all[rows].to(device, non_blocking=True), y_all[rows].to(device, non_blocking=True)
                last_micro = m == config.grad_accum - 1
                sync = nullcontext() if (ddp.world == 1 or last_micro) else runner.no_sync()
                with sync, autocast(device):
                    _, loss = runner(x, y)
                (loss / config.grad_accum).backward()
                loss_sum += loss.detach()
            loss_step = loss_sum / config.grad_accum
            if ddp.world > 1:
                dist.all_reduce(loss_step, op=dist.ReduceOp.AVG)
            loss_value = loss_step.item()
            if not math.isfinite(loss_value):
                optimizer.zero_grad(set_to_none=True)
                where = (
                    f"the last good checkpoint is {ckpt} (step {read_state(ckpt)['step']})"
                    if ckpt.exists()
                    else "no checkpoint was written yet"
                )
                raise NonFiniteLoss(
                    f"step {step}: the training loss is {loss_value}; stopped before updating the weights; {where}. "
                    "Lower the learning rate or check the data"
                )
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or float("inf")).item()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            step += 1
            record = {
                "step": step - 1,
                "loss": round(loss_value, 5),
                "lr": lr,
                "grad_norm": round(grad_norm, 4),
                "tokens_per_s": round(x_all.numel() / dt, 1),
            }
            if peak:
                record["mfu"] = round(flops_per_token * x_all.numel() / dt / (peak * ddp.world), 4)
            log.append(record)  # before validating: an interrupt there must not lose this step's record
            if step % config.eval_every == 0 or step == config.max_steps:
                record["val_loss"] = round(evaluate(fast, val_data, config, device), 5)
                record.update(copy_scores(model))  # eager: no recompile for its shape
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            if step % config.checkpoint_every == 0 or step == last_step:
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()  # keep what the interrupted run learned; running again resumes from here
        raise
    finally:
        bar.close()
    return summarize(log, model, config, step)


def summarize(log: list[dict], model: GPT, config: PretrainConfig, step: int) -> dict:
    """The run's key numbers from its log."""
    val = [r["val_loss"] for r in log if "val_loss" in r]
    # Tokens/s from the steady state: the first steps include compilation and warm-up.
    speeds = sorted(r["tokens_per_s"] for r in log[len(log) // 5 :]) or [0.0]
    mfus = sorted(r["mfu"] for r in log[len(log) // 5 :] if "mfu" in r)
    copies = [r for r in log if "copy_second_accuracy" in r]
    return {
        "steps": step,
        "finished": step >= config.max_steps,
        "params": model.num_params(),
        "train_loss": log[-1]["loss"] if log else None,
        "val_loss": val[-1] if val else None,
        "val_perplexity": round(math.exp(val[-1]), 2) if val else None,
        "tokens_per_s": speeds[len(speeds) // 2],
        # Time spent in training steps over the whole run, resumed parts included (no evaluation).
        "train_s": round(sum(windows_at(r["step"], config) * config.context / r["tokens_per_s"] for r in log), 1),
        "mfu": mfus[len(mfus) // 2] if mfus else None,
        "tokens_seen": step * config.batch_size * config.context,  # of text; the repeat windows come on top
        "repeat_tokens_seen": (min(step, config.repeat_steps) if config.repeat_steps else step)
        * config.repeat_windows
        * config.context,
        # The last induction probe: next-token accuracy on the second copy of random sequences (chance on the first).
        "copy_second_accuracy": copies[-1]["copy_second_accuracy"] if copies else None,
        "copy_loss_drop": round(copies[-1]["copy_first_loss"] - copies[-1]["copy_second_loss"], 4) if copies else None,
    }
