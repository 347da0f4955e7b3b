"""Is our pretraining loop as fast as Hugging Face's ``Trainer`` on the same job?

In: a shards folder (``runs/<run>/pretrain/shards/``, with ``train`` and ``val`` splits) and a
:class:`~llmkb.pretrain.config.PretrainConfig`. Out: a dict with the training throughput of both
loops (tokens/s), their ratio ours / HF (the goal is >= 1.0), and the losses that show both really
trained; :func:`to_markdown` turns it into the table on the training page.

Why the comparison is fair, one process on the CPU, in fp32, ``steps`` optimizer steps each:

* **Same network, same start.** Ours trains :class:`~llmkb.model.gpt.GPT` from
  ``config.model_config(vocab)``; HF trains the ``LlamaForCausalLM`` that :func:`llmkb.model.hf.to_hf`
  makes of the very same initial weights (seeded as :func:`~llmkb.pretrain.train.train` seeds them).
  The two compute the same logits (``tests/test_model_hf.py``).
* **Same batches.** Step ``s`` of both loops sees the windows ``TokenShards.batch`` draws with
  :func:`~llmkb.pretrain.train.batch_generator` ``(seed, s)``. HF gets them from an
  ``IterableDataset`` that draws the same batch lazily and yields its rows; the ``DataLoader``
  collates them back into ``batch_size`` rows (``grad_accum`` micro-batches when that is > 1).
* **Same predicted tokens.** Every row is a window of ``context + 1`` tokens. HF's causal-LM loss
  shifts ``labels`` by one itself, which would give ``context - 1`` targets from ``context``
  inputs; so the rows carry ``input_ids = window[:-1]`` and ``shift_labels = window[1:]`` (already
  shifted, which the loss then takes as they are; ``labels`` is the same tensor so that the
  ``Trainer`` asks for a loss). Both loops therefore run ``context`` positions per row and average
  the cross-entropy over exactly ``batch_size * context`` predicted tokens per step.
* **Same optimization.** ``torch.optim.AdamW`` with the kernel ``train`` uses on the CPU (for-loop
  or fused; :func:`hf_optim` picks HF's ``optim`` to match), the same lr, betas, eps and weight
  decay on matrices only (HF exempts the norms by name, we by shape: the same parameters), the
  same gradient-norm clip, and warmup then cosine decay to
  ``lr * min_lr_ratio`` over ``steps`` (HF's warmup starts at 0, ours one step later: a learning
  rate does not change a step's cost).
* **Same timing rule.** Throughput = ``batch_size * context`` tokens / the median step time over
  steps ``warmup`` .. ``steps - 1`` (the first steps warm caches and the allocator; the median
  ignores the occasional step disturbed by other work on the machine). Ours: the per-step time
  :func:`~llmkb.pretrain.train.train` logs (``tokens_per_s`` in ``log.jsonl``): drawing the batch,
  forward, backward, loss to Python, clip, AdamW; the final validation pass and checkpoint come
  after the clock stops. HF: the time between consecutive ``on_step_end`` callbacks, which covers
  the same work plus what the Trainer does around it (fetching and collating the batch, the
  scheduler, its logging every ``k`` steps). Both figures are also given the other way round, as a
  cross-check: ours as wall time between consecutive batch draws, HF from ``on_step_begin`` to
  ``on_step_end`` (forward to optimizer step, without fetching the batch). And both as tokens
  per CPU-second of the process (batch draw to batch draw, ``on_step_end`` to ``on_step_end``,
  timed with ``time.process_time``), which a
  machine busy with other jobs disturbs far less than the wall clock.
* **Same conditions.** One process, the same torch thread count (reported for both loops), the
  two loops run back to back in one Python process; with ``repeat`` they take turns and each
  keeps its fastest run.

What is not compared: ``torch.compile`` (off in both; on CPU ``train`` does not compile), bf16
(CPU trains in fp32), several processes (DDP), and start-up costs such as building the Trainer.

Run it on a run's shards with::

    OMP_NUM_THREADS=1 python -c "from pathlib import Path; from llmkb.pretrain.bench import *; \\
        from llmkb.pretrain.config import PretrainConfig; \\
        print(to_markdown(run_benchmark(Path('runs/default/pretrain/shards'), PretrainConfig(), threads=1, repeat=3)))"
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from llmkb.device import cpu_name
from llmkb.io import read_jsonl
from llmkb.pretrain.shards import TokenShards
from llmkb.pretrain.config import PretrainConfig
from llmkb.pretrain.train import batch_generator, evaluate, train

LOSS_WINDOW = 10  # steps averaged for the final training loss (HF logs the mean loss every this many steps)


def bench_config(config: PretrainConfig, steps: int) -> PretrainConfig:
    """``config`` for a ``steps``-step CPU run: schedule over ``steps``, no compile, no bar, no mid-run eval/checkpoint,
    and text windows only (the Trainer reads the same text batches; it has no repeat windows).

    >>> c = bench_config(PretrainConfig(), 50)
    >>> c.max_steps, c.device, c.compile, c.progress, c.eval_every > 50, c.checkpoint_every > 50, c.repeat_windows
    (50, 'cpu', 'no', False, True, True, 0)
    """
    return dataclasses.replace(
        config,
        repeat_windows=0,
        max_steps=steps,
        stop_after=0,
        device="cpu",
        compile="no",
        progress=False,
        eval_every=steps + 1,
        checkpoint_every=steps + 1,
    )


def median_tokens_per_s(step_seconds: dict[int, float], tokens_per_step: int, warmup: int) -> float:
    """``tokens_per_step`` / the median of the step times of steps >= ``warmup``.

    >>> median_tokens_per_s({0: 9.0, 1: 0.5, 2: 0.25, 3: 1.0}, 100, 1)
    200.0
    """
    times = [t for s, t in step_seconds.items() if s >= warmup and t > 0]
    if not times:
        raise ValueError(f"no timed steps after the first {warmup}")
    return tokens_per_step / statistics.median(times)


class _TimedShards:
    """A :class:`TokenShards` that notes when each batch is drawn (the start of each of ``train``'s steps)."""

    def __init__(self, data: TokenShards):
        self.data = data
        self.draws: list[float] = []  # wall clock
        self.cpu: list[float] = []  # CPU time of the process

    def batch(self, batch_size: int, context: int, generator: torch.Generator):
        self.draws.append(time.perf_counter())
        self.cpu.append(time.process_time())
        return self.data.batch(batch_size, context, generator)

    def __getattr__(self, name):  # vocab_size, check_window, source, ...
        return getattr(self.data, name)


def hf_optim(config: PretrainConfig) -> str:
    """The ``TrainingArguments.optim`` that runs the AdamW kernel ``train`` uses on the CPU.

    Follows :func:`~llmkb.model.gpt.configure_optimizer`: its for-loop AdamW is HF's ``adamw_torch``,
    its fused one (``fused=True``) HF's ``adamw_torch_fused``.

    >>> hf_optim(PretrainConfig()) in ("adamw_torch", "adamw_torch_fused")
    True
    """
    from llmkb.model.gpt import configure_optimizer

    probe = configure_optimizer(
        torch.nn.Linear(2, 2, bias=False), config.lr, config.weight_decay, (config.beta1, config.beta2), "cpu"
    )
    return "adamw_torch_fused" if probe.defaults.get("fused") else "adamw_torch"


def _run_ours(train_data: TokenShards, val_data: TokenShards, config: PretrainConfig, out_dir: Path) -> dict:
    """Our loop: ``train`` into ``out_dir``; per-step seconds from its log and from the batch draws."""
    timed = _TimedShards(train_data)
    summary = train(config, timed, val_data, out_dir)
    log = list(read_jsonl(out_dir / "log.jsonl"))
    tokens_per_step = config.batch_size * config.context
    return {
        "step_s": {r["step"]: tokens_per_step / r["tokens_per_s"] for r in log},
        "wall_s": {s: timed.draws[s + 1] - timed.draws[s] for s in range(len(timed.draws) - 1)},
        "cpu_s": {s: timed.cpu[s + 1] - timed.cpu[s] for s in range(len(timed.cpu) - 1)},
        "losses": {r["step"]: r["loss"] for r in log},
        "val_loss": summary["val_loss"],
        "threads": torch.get_num_threads(),
    }


def _run_hf(
    train_data: TokenShards, val_data: TokenShards, config: PretrainConfig, out_dir: Path, loss_window: int
) -> dict:
    """HF's loop: ``Trainer`` on the ``LlamaForCausalLM`` of the same initial weights and the same batches."""
    import transformers
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from llmkb.model.gpt import GPT
    from llmkb.model.hf import from_hf, to_hf

    torch.manual_seed(config.seed)  # as train() does, so both loops start from the same weights
    model = to_hf(GPT(config.model_config(train_data.vocab_size))).train()
    steps, micro = config.max_steps, config.batch_size // config.grad_accum

    class Windows(torch.utils.data.IterableDataset):
        """Step s's batch, drawn exactly as train() draws it, one row at a time."""

        def __iter__(self):
            for step in range(steps):
                x, y = train_data.batch(config.batch_size, config.context, batch_generator(config.seed, step))
                for i in range(len(x)):
                    yield {"input_ids": x[i], "labels": y[i], "shift_labels": y[i]}

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin: dict[int, float] = {}
            self.end: dict[int, float] = {}
            self.end_cpu: dict[int, float] = {}
            self.losses: list[tuple[int, float]] = []  # (global step, mean loss of the last loss_window steps)
            self.threads = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.threads = torch.get_num_threads()

        def on_step_begin(self, args, state, control, **kwargs):
            self.begin[state.global_step] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.end[state.global_step - 1] = time.perf_counter()  # global_step already counts this step
            self.end_cpu[state.global_step - 1] = time.process_time()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append((state.global_step, float(logs["loss"])))

    args = TrainingArguments(
        output_dir=str(out_dir),
        use_cpu=True,
        bf16=False,
        fp16=False,
        torch_compile=False,
        seed=config.seed,
        max_steps=steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=config.grad_accum,
        optim=hf_optim(config),
        learning_rate=config.lr,
        adam_beta1=config.beta1,
        adam_beta2=config.beta2,
        adam_epsilon=1e-8,  # torch.optim.AdamW's default, which ours uses
        weight_decay=config.weight_decay,
        max_grad_norm=config.grad_clip,  # 0 disables clipping in both
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio},
        warmup_steps=config.warmup_steps,
        logging_strategy="steps",
        logging_steps=loss_window,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        log_level="error",
        dataloader_num_workers=0,  # the batch is drawn in the training process, as ours is
        dataloader_pin_memory=False,
        remove_unused_columns=False,  # keep shift_labels, which forward() takes through **kwargs
        accelerator_config={"dispatch_batches": False},  # one process: nothing to dispatch
    )
    timer = StepTimer()
    verbosity = transformers.logging.get_verbosity()
    try:
        trainer = Trainer(model=model, args=args, train_dataset=Windows(), callbacks=[timer])
        trainer.remove_callback(PrinterCallback)  # disable_tqdm swaps the bar for a printer of every log
        trainer.train()
    finally:
        transformers.logging.set_verbosity(verbosity)
    if trainer.state.global_step != steps:
        raise RuntimeError(f"HF Trainer stopped after {trainer.state.global_step} of {steps} steps")
    tuned = from_hf(trainer.model)  # our GPT with HF's trained weights: validated by the same code as ours
    return {
        "step_s": {s: timer.end[s] - timer.end[s - 1] for s in timer.end if s - 1 in timer.end},
        "compute_s": {s: timer.end[s] - timer.begin[s] for s in timer.end if s in timer.begin},
        "cpu_s": {s: timer.end_cpu[s] - timer.end_cpu[s - 1] for s in timer.end_cpu if s - 1 in timer.end_cpu},
        "losses": timer.losses,
        "val_loss": round(evaluate(tuned, val_data, config, "cpu"), 5),
        "threads": timer.threads,
    }


def run_benchmark(
    shards_dir: str | Path,
    config: PretrainConfig,
    steps: int = 200,
    warmup: int = 20,
    threads: int | None = None,
    repeat: int = 1,
    progress: bool = True,
) -> dict:
    """Train ``steps`` steps with our loop, then with HF's Trainer; return throughputs, ratio and losses.

    Throughput for both = ``batch_size * context`` tokens per step / the median time of steps
    ``warmup`` .. ``steps - 1`` (see the module docstring for what each step time covers).
    ``ratio`` = ours / HF. With ``repeat`` > 1 the two loops take turns ``repeat`` times and each
    keeps its fastest run (the least disturbed by other work on the machine; every run is listed
    under ``runs``). ``threads`` sets torch's intra-op threads for the run (restored after);
    ``None`` keeps the current setting (``OMP_NUM_THREADS``).

    ``cpu_ratio`` is the same ratio from the process's CPU time per step instead of the wall clock:
    on a machine shared with other jobs, a process that waits for a core loses wall time but not
    CPU time, so this figure barely moves with the load while the wall-clock one can.

    The losses show both really trained: ``*_final_loss`` is the mean training loss over the same
    last :data:`LOSS_WINDOW` steps (identical batches in both loops), ``*_val_loss`` the loss on the
    validation split computed by the same :func:`~llmkb.pretrain.train.evaluate`. From identical
    weights, batches and hyperparameters they agree closely (not bit for bit: the two networks sum
    in different orders, and HF's warmup is one step behind ours).
    """
    import transformers

    from llmkb.model.gpt import GPT

    shards_dir = Path(shards_dir)
    if warmup < 1 or steps < warmup + 2:
        raise ValueError(f"need 1 <= warmup and warmup + 2 <= steps (got warmup {warmup}, steps {steps})")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1 (got {repeat})")
    if config.batch_size % config.grad_accum:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by grad_accum {config.grad_accum}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("the benchmark compares one process with one process; run it without torchrun")
    cfg = bench_config(config, steps)
    train_data, val_data = TokenShards.open(shards_dir, "train"), TokenShards.open(shards_dir, "val")
    train_data.check_window(cfg.context)
    tokens_per_step = cfg.batch_size * cfg.context
    loss_window = min(LOSS_WINDOW, steps)

    def say(message: str) -> None:
        if progress:
            print(message, file=sys.stderr, flush=True)

    def speed(step_seconds: dict[int, float]) -> float:
        return median_tokens_per_s(step_seconds, tokens_per_step, warmup)

    runs, first = [], None
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="llmkb-bench-pretrain-") as tmp:
            for i in range(repeat):
                phase = f"run {i + 1}/{repeat}: " if repeat > 1 else ""
                say(f"{phase}llmkb train(), {steps} steps of {tokens_per_step} tokens ...")
                ours = _run_ours(train_data, val_data, cfg, Path(tmp) / f"ours{i}")
                say(f"{phase}HF Trainer, {steps} steps of {tokens_per_step} tokens ...")
                hf = _run_hf(train_data, val_data, cfg, Path(tmp) / f"hf{i}", loss_window)
                first = first or (ours, hf)
                runs.append(
                    {
                        "ours_tokens_per_s": round(speed(ours["step_s"]), 1),
                        "hf_trainer_tokens_per_s": round(speed(hf["step_s"]), 1),
                        "ours_wall_tokens_per_s": round(speed(ours["wall_s"]), 1),
                        "hf_trainer_compute_tokens_per_s": round(speed(hf["compute_s"]), 1),
                        "ours_cpu_tokens_per_s": round(speed(ours["cpu_s"]), 1),
                        "hf_trainer_cpu_tokens_per_s": round(speed(hf["cpu_s"]), 1),
                        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
                    }
                )
                say(
                    f"{phase}ours {runs[-1]['ours_tokens_per_s']:,.0f} tokens/s, "
                    f"HF {runs[-1]['hf_trainer_tokens_per_s']:,.0f}"
                )
    finally:
        torch.set_num_threads(previous_threads)

    best = {key: max(r[key] for r in runs) for key in runs[0] if key != "loadavg"}
    ours, hf = first
    # The final training loss over HF's last logging window, and ours over the very same steps.
    last_logged, hf_loss = hf["losses"][-1]
    window = range(last_logged - loss_window, last_logged)
    ours_loss = statistics.fmean(ours["losses"][s] for s in window)
    return {
        "device": "cpu",
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": ours["threads"],
        "hf_torch_threads": hf["threads"],
        "model_params": GPT(cfg.model_config(train_data.vocab_size)).num_params(),
        "vocab_size": train_data.vocab_size,
        "batch_size": cfg.batch_size,
        "context": cfg.context,
        "grad_accum": cfg.grad_accum,
        "steps": steps,
        "warmup": warmup,
        "repeat": repeat,
        "ours_tokens_per_s": best["ours_tokens_per_s"],
        "hf_trainer_tokens_per_s": best["hf_trainer_tokens_per_s"],
        "ratio": round(best["ours_tokens_per_s"] / best["hf_trainer_tokens_per_s"], 3),
        "cpu_ratio": round(best["ours_cpu_tokens_per_s"] / best["hf_trainer_cpu_tokens_per_s"], 3),
        # the cross-checks: ours as wall time between batch draws, HF without fetching the batch
        **{
            key: best[key]
            for key in (
                "ours_wall_tokens_per_s",
                "hf_trainer_compute_tokens_per_s",
                "ours_cpu_tokens_per_s",
                "hf_trainer_cpu_tokens_per_s",
            )
        },
        "runs": runs,
        "optimizer": hf_optim(cfg),
        "loss_steps": [window.start, window.stop - 1],
        "ours_final_loss": round(ours_loss, 4),
        "hf_final_loss": round(hf_loss, 4),
        "ours_val_loss": ours["val_loss"],
        "hf_val_loss": hf["val_loss"],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }


def to_markdown(results: dict) -> str:
    """The benchmark as a Markdown table for the training page, with the ratios in a line below.

    >>> r = {"cpu": "Some CPU", "torch_threads": 1, "model_params": 1000, "batch_size": 8, "context": 128,
    ...      "steps": 200, "warmup": 20, "repeat": 1, "ours_tokens_per_s": 1100.0, "hf_trainer_tokens_per_s": 1000.0,
    ...      "ratio": 1.1, "ours_cpu_tokens_per_s": 1200.0, "hf_trainer_cpu_tokens_per_s": 1000.0, "cpu_ratio": 1.2,
    ...      "ours_final_loss": 3.0, "hf_final_loss": 3.01, "ours_val_loss": 4.0, "hf_val_loss": 4.02,
    ...      "loss_steps": [190, 199], "transformers_version": "5.0", "torch_version": "2.0"}
    >>> print(to_markdown(r).splitlines()[2])
    | llmkb `train()` | 1,100 | 1,200 | 3.000 | 4.000 |
    """
    r = results
    lo, hi = r["loss_steps"]
    best = f"fastest of {r['repeat']} alternating runs, " if r["repeat"] > 1 else ""
    lines = [
        f"| Training loop | Tokens/s | Tokens per CPU-second | Training loss (steps {lo}-{hi}) | Validation loss |",
        "|---|---:|---:|---:|---:|",
        f"| llmkb `train()` | {r['ours_tokens_per_s']:,.0f} | {r['ours_cpu_tokens_per_s']:,.0f} "
        f"| {r['ours_final_loss']:.3f} | {r['ours_val_loss']:.3f} |",
        f"| HF `Trainer` (transformers {r['transformers_version']}) | {r['hf_trainer_tokens_per_s']:,.0f} "
        f"| {r['hf_trainer_cpu_tokens_per_s']:,.0f} | {r['hf_final_loss']:.3f} | {r['hf_val_loss']:.3f} |",
        "",
        f"Ours / HF: **{r['ratio']:.2f}x** (wall clock), {r['cpu_ratio']:.2f}x (CPU time). Same "
        f"{r['model_params']:,}-parameter model, same batches of {r['batch_size']} x {r['context']} tokens, "
        f"same AdamW settings; {r['steps']} steps each, fp32 on {r['cpu']} with {r['torch_threads']} torch "
        f"thread(s); median step time after step {r['warmup']} ({best}torch {r['torch_version']}).",
    ]
    return "\n".join(lines) + "\n"
