"""Pretraining: token shards, the training loop, the loss curve, and an interrupted run that resumes exactly.

Run it: ``llmkb examples run pretraining --profile quick`` (or ``python examples/pretraining.py``).
The training page includes its sections; the docs build saves its tables and plots.
"""

# %% [markdown]
# # Pretraining a tiny GPT
# The pretraining stage turns the clean corpus into token shards and trains the model to predict
# the next token. This notebook opens what the stage wrote and checks its claims.

# %%
# --8<-- [start:shards]
from llmkb.examples import context
from llmkb.io import read_json
from llmkb.pretrain.shards import TokenShards
from llmkb.tokenizer.hf import load_pretrained

ctx = context("pretraining")
pretrain_dir = ctx.ensure("pretrain")  # runs data -> tokenizer -> pretrain if this run lacks them
tokenizer = load_pretrained(ctx.run.require("tokenizer"))
meta = read_json(pretrain_dir / "shards" / "shards.json")
print("token dtype:", meta["dtype"], "| vocabulary:", meta["vocab_size"], "| <|endoftext|> id:", meta["eot_id"])
for split, info in meta["splits"].items():
    print(f"{split:>5}: {info['documents']:5d} documents -> {info['tokens']:8,d} tokens in {info['files']}")
print("training mix:", read_json(pretrain_dir / "shards" / "mix.json"))
# --8<-- [end:shards]
assert meta["dtype"] == "uint16"  # 4,096 ids fit in two bytes

# %%
# --8<-- [start:batch]
import torch

train_data = TokenShards.open(pretrain_dir / "shards", "train")
x, y = train_data.batch(batch_size=2, context=16, generator=torch.Generator().manual_seed(0))
print("inputs  (B, T):", tuple(x.shape), "  targets (B, T):", tuple(y.shape))
for t in range(5):
    print(
        f"position {t}: sees {tokenizer.decode(x[0, : t + 1])!r:<40} must predict {tokenizer.decode(y[0, t : t + 1])!r}"
    )
# --8<-- [end:batch]
assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one

# %%
# --8<-- [start:schedule]
import matplotlib.pyplot as plt

from llmkb.pretrain.config import PretrainConfig
from llmkb.pretrain.train import lr_at
from llmkb.stages import get_stage

config = get_stage("pretrain").config(ctx.profile)
steps = range(config.max_steps)
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.plot(steps, [lr_at(s, config) for s in steps])
ax.set(xlabel="step", ylabel="learning rate", title=f"{config.warmup_steps} warmup steps, then cosine decay")
ax.grid(alpha=0.3)
ctx.save_figure("schedule.png", fig)
print(f"peak {config.lr} at step {config.warmup_steps - 1}, final {lr_at(config.max_steps, config):.2g}")
# --8<-- [end:schedule]
assert abs(lr_at(config.max_steps, config) - config.lr * config.min_lr_ratio) < 1e-12

# %%
# --8<-- [start:result]
from llmkb.io import read_jsonl
from llmkb.pretrain.stage import plot_losses

metrics = ctx.run.metrics("pretrain")
log = list(read_jsonl(pretrain_dir / "log.jsonl"))
ctx.save_figure("loss.png", plot_losses(log))
rows = [
    ("parameters", f"{metrics['params']:,}"),
    ("optimizer steps", f"{metrics['steps']:,}"),
    ("tokens seen", f"{metrics['tokens_seen']:,} ({metrics['epochs']} passes over {metrics['train_tokens']:,})"),
    ("training speed", f"{metrics['tokens_per_s']:,.0f} tokens/s"),
    ("time in training steps", f"{metrics['train_s']:.0f} s"),
    ("held-out loss", f"{metrics['val_loss']:.3f} nats/token (perplexity {metrics['val_perplexity']})"),
    (
        "unigram baseline",
        f"{metrics['unigram_val_loss']:.3f} nats/token (perplexity {metrics['unigram_val_perplexity']})",
    ),
]
result_table = "| | |\n|---|---:|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"
ctx.save_text("result.md", result_table)
print(result_table)
# --8<-- [end:result]
assert metrics["beats_unigram"]  # word order carries information the unigram baseline cannot use

# %%
# --8<-- [start:bits-per-byte]
import math

from llmkb.corpus import load_split

heldout = load_split(ctx.run.require("data"), "heldout")
val_bytes = sum(len(d["text"].encode("utf-8")) for d in heldout)
val_tokens = metrics["val_tokens"] - len(heldout)  # minus one <|endoftext|> per document
bytes_per_token = val_bytes / val_tokens
bits_per_byte = metrics["val_loss"] / math.log(2) / bytes_per_token
print(f"held-out text: {bytes_per_token:.2f} bytes per token")
print(f"ours: {metrics['val_loss']:.2f} nats/token = {bits_per_byte:.2f} bits per byte")
# --8<-- [end:bits-per-byte]
assert 0 < bits_per_byte < 8  # better than writing each byte out in full

# %%
# --8<-- [start:resume]
import tempfile
from pathlib import Path

from llmkb.pretrain.train import train

val_data = TokenShards.open(pretrain_dir / "shards", "val")
tiny = PretrainConfig(
    context=32,
    d_model=32,
    n_layer=2,
    n_head=2,
    n_kv_head=1,
    d_ff=64,
    max_steps=30,
    warmup_steps=5,
    eval_every=30,
    checkpoint_every=10,
    progress=False,
)
with tempfile.TemporaryDirectory() as tmp:
    whole, split = Path(tmp, "whole"), Path(tmp, "split")
    train(tiny, train_data, val_data, whole)  # 30 steps in one go
    first = train(PretrainConfig(**{**vars(tiny), "stop_after": 12}), train_data, val_data, split)
    print(
        f"interrupted after step {first['steps']}; the checkpoint holds step",
        read_json(split / "checkpoint" / "state.json")["step"],
    )
    train(tiny, train_data, val_data, split)  # same command again: resumes from the checkpoint
    losses_whole = [r["loss"] for r in read_jsonl(whole / "log.jsonl")]
    losses_split = [r["loss"] for r in read_jsonl(split / "log.jsonl")]
print("last five losses, uninterrupted:", losses_whole[-5:])
print("last five losses, resumed:      ", losses_split[-5:])
# --8<-- [end:resume]
assert losses_whole == losses_split  # bit for bit: same batches, same weights, same optimizer state

# %%
# --8<-- [start:mismatch]
from llmkb.model.gpt import GPT
from llmkb.pretrain.checkpoint import load_checkpoint

wider = GPT(PretrainConfig(**{**vars(config), "d_model": 2 * config.d_model}).model_config(meta["vocab_size"]))
try:
    load_checkpoint(pretrain_dir / "checkpoint", wider)
except ValueError as error:
    message = str(error)
    print(message)
# --8<-- [end:mismatch]
assert "d_model" in message

# %%
# --8<-- [start:flops]
rows = ["| profile | parameters | context | training FLOPs per token | 6N share |", "|---|---:|---:|---:|---:|"]
for profile in ("default", "gpu"):
    cfg = get_stage("pretrain").config(profile)
    model = GPT(cfg.model_config(meta["vocab_size"]))
    per_token = model.flops_per_token(cfg.context)
    rows.append(
        f"| {profile} | {model.num_params():,} | {cfg.context} | {per_token / 1e6:,.1f} M | "
        f"{6 * model.num_params() / per_token:.0%} |"
    )
flops_table = "\n".join(rows) + "\n"
ctx.save_text("flops.md", flops_table)
print(flops_table)
# --8<-- [end:flops]
assert "gpu" in flops_table
