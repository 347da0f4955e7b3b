"""The pretraining stage: clean corpus + tokenizer in, a base model out.

In: ``runs/<run>/data/`` (train/heldout documents, and the mini-web's manifest) and
``runs/<run>/tokenizer/``. Out: ``runs/<run>/pretrain/``:

- ``shards/`` the training mix and the held-out documents as memmapped token files;
- ``checkpoint/`` and ``log.jsonl`` from the loop (:mod:`llmkb.pretrain.train`), resumable;
- ``model/`` the base model in Hugging Face format (``config.json``, ``model.safetensors`` and the
  tokenizer), loadable with ``AutoModelForCausalLM.from_pretrained``;
- ``loss.png`` the loss curves; ``induction.png`` the induction probe at every evaluation.

Why a "focused" mix by default: a 1M-parameter model on two CPU cores gets a few thousand steps.
A fact needs a few hundred exposures within them to stick, so the default trains mostly on the
pages that carry the mini-web's planted facts and passages, plus a little ordinary text. The whole
corpus is one option away (``mix="all"``), and is what the GPU profile uses.

Under ``torchrun --nproc_per_node N -m llmkb -- pretrain --run NAME`` every process runs this
(the ``--`` keeps torchrun from reading ``--run`` as its own ``--run-path``); process 0 alone
writes files.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from llmkb.io import read_json, read_jsonl, write_json
from llmkb.pretrain.config import PretrainConfig
from llmkb.stages import RunDir, Stage, StageStopped, register


def training_mix(corpus_dir: Path, config: PretrainConfig) -> tuple[list[str], dict]:
    """The training documents: all of them, or the planted pages plus ``filler_bytes`` of the rest."""
    from llmkb.corpus import load_split

    docs = load_split(corpus_dir, "train")
    manifest = corpus_dir / "miniweb" / "manifest.json"
    if config.mix == "all" or not manifest.exists():
        return [d["text"] for d in docs], {"mix": "all", "documents": len(docs)}
    from llmkb.data.stage import planted_urls

    planted = planted_urls(read_json(manifest))
    focus = [d["text"] for d in docs if d["url"] in planted]
    filler, budget = [], config.filler_bytes
    for d in docs:
        if budget <= 0:
            break
        if d["url"] not in planted:
            filler.append(d["text"])
            budget -= len(d["text"].encode("utf-8"))
    if not focus + filler:
        raise ValueError(
            f"{corpus_dir / 'train.jsonl'}: the focused mix is empty (no planted pages in the corpus and "
            f"PretrainConfig.filler_bytes={config.filler_bytes}); raise filler_bytes or use mix='all'"
        )
    return focus + filler, {"mix": "focused", "documents": len(focus) + len(filler), "planted_documents": len(focus)}


def file_digest(path: Path) -> str:
    """A short sha256 of a file's bytes."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def set_aside_stale_training(pretrain_dir: Path) -> None:
    """New shards mean new data: a checkpoint trained on the old shards must not be resumed.

    It is renamed to ``checkpoint.stale`` (with its log), not deleted: nothing trained is lost.
    """
    ckpt = pretrain_dir / "checkpoint"
    if not ckpt.exists():
        return
    stale = pretrain_dir / "checkpoint.stale"
    shutil.rmtree(stale, ignore_errors=True)
    ckpt.rename(stale)
    if (pretrain_dir / "log.jsonl").exists():
        (pretrain_dir / "log.jsonl").replace(stale / "log.jsonl")
    print(
        f"{pretrain_dir}: the corpus or tokenizer changed since the last checkpoint; training starts over "
        f"(the old checkpoint is in {stale})"
    )


def build(config: PretrainConfig, run_dir: RunDir) -> tuple[Path, dict]:
    """Tokenize the mix and the held-out documents into ``pretrain/shards`` (once per run)."""
    from llmkb.corpus import load_split
    from llmkb.pretrain.shards import build_shards
    from llmkb.tokenizer.hf import load_pretrained

    out = run_dir.stage("pretrain") / "shards"
    info_path = out / "mix.json"
    corpus, tokenizer_dir = run_dir.require("data"), run_dir.require("tokenizer")
    # Shards are reused only if made from the same mix, corpus and tokenizer (a rerun of either stage redoes them).
    key = [
        config.mix,
        config.filler_bytes,
        file_digest(corpus / "train.jsonl"),
        file_digest(tokenizer_dir / "tokenizer.json"),
    ]
    if (out / "shards.json").exists() and info_path.exists() and read_json(info_path).get("key") == key:
        return out, read_json(info_path)
    set_aside_stale_training(out.parent)
    tokenizer = load_pretrained(tokenizer_dir)
    texts, info = training_mix(corpus, config)
    heldout = [d["text"] for d in load_split(corpus, "heldout")]
    meta = build_shards({"train": texts, "val": heldout}, tokenizer, out)
    info = {
        **info,
        "key": key,
        "train_tokens": meta["splits"]["train"]["tokens"],
        "val_tokens": meta["splits"]["val"]["tokens"],
    }
    write_json(info_path, info)
    return out, info


def plot_losses(log: list[dict], path: str | Path | None = None):
    """Training loss per step and validation loss per evaluation, on one figure."""
    from llmkb.plots import finish, subplots

    fig, ax = subplots(figsize=(7, 3.6))
    steps, losses = [r["step"] for r in log], [r["loss"] for r in log]
    ax.plot(steps, losses, lw=0.6, alpha=0.35, color="tab:blue", label="training batch")
    window = max(1, len(losses) // 40)  # a running mean shows the trend through the batch-to-batch noise
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    ax.plot(steps, smooth, lw=1.6, color="tab:blue", label=f"training, mean of {window} steps")
    val = [r for r in log if "val_loss" in r]
    ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="held-out text")
    ax.set(xlabel="step", ylabel="cross-entropy (nats per token)", title="Pretraining loss")
    return finish(fig, ax, path)


def plot_induction(log: list[dict], path: str | Path | None = None):
    """The induction probe during training: loss on the first and the second copy of random sequences.

    The two lines part when the model starts copying from its context (induction heads); they stay
    together while it does not.
    """
    from llmkb.plots import finish, subplots

    fig, ax = subplots(figsize=(7, 3.2))
    probes = [r for r in log if "copy_second_loss" in r]
    steps = [r["step"] + 1 for r in probes]  # the probe ran after this many steps
    ax.plot(steps, [r["copy_first_loss"] for r in probes], "o-", label="first copy (unpredictable)")
    ax.plot(steps, [r["copy_second_loss"] for r in probes], "o-", label="second copy (predictable by copying)")
    ax.set(xlabel="step", ylabel="cross-entropy (nats per token)", title="Random tokens shown twice")
    return finish(fig, ax, path)


def run(config: PretrainConfig, run_dir: RunDir) -> dict:
    from llmkb.model.hf import save_pretrained
    from llmkb.pretrain.checkpoint import load_checkpoint
    from llmkb.pretrain.shards import TokenShards
    from llmkb.pretrain.train import init_distributed, train
    from llmkb.tokenizer.hf import load_pretrained

    out = run_dir.stage("pretrain")
    main = os.environ.get("RANK", "0") == "0"
    shards, info = build(config, run_dir) if main else (out / "shards", {})
    if os.environ.get("WORLD_SIZE", "1") != "1":
        import torch.distributed as dist

        from llmkb.device import pick_device

        init_distributed(pick_device(config.device))
        dist.barrier()  # the other processes wait until process 0 has written the shards
    train_data, val_data = TokenShards.open(shards, "train"), TokenShards.open(shards, "val")
    tokenizer = load_pretrained(run_dir.require("tokenizer"))
    if len(tokenizer) != train_data.vocab_size:
        raise ValueError(
            f"{shards / 'shards.json'}: shards were made with a {train_data.vocab_size}-token vocabulary but "
            f"{run_dir.require('tokenizer')} has {len(tokenizer)}; delete {shards} to re-tokenize"
        )
    result = train(config, train_data, val_data, out)
    if not main:
        return result
    log = list(read_jsonl(out / "log.jsonl"))
    plot_losses(log, out / "loss.png")
    plot_induction(log, out / "induction.png")
    if not result["finished"]:  # no metrics.json: later stages must not take a half-trained model
        raise StageStopped(
            f"{out}: stopped at step {result['steps']} of {config.max_steps}; run the same command again to resume"
        )
    from llmkb.model.gpt import GPT

    model = GPT(config.model_config(train_data.vocab_size))
    load_checkpoint(out / "checkpoint", model)
    save_pretrained(model, out / "model", tokenizer=tokenizer)
    unigram = train_data.unigram_loss(val_data)
    return {
        **{k: v for k, v in result.items() if k != "finished"},
        "mix": info.get("mix"),
        "train_tokens": train_data.tokens,
        "val_tokens": val_data.tokens,
        "epochs": round(result["tokens_seen"] / train_data.tokens, 1),
        "unigram_val_loss": round(unigram, 4),
        "unigram_val_perplexity": round(math.exp(unigram), 1),
        "beats_unigram": result["val_loss"] is not None and result["val_loss"] < unigram,
    }


register(
    Stage(
        name="pretrain",
        summary="pretrain a Llama-style GPT on the clean corpus; save checkpoints and an HF base model",
        config_cls=PretrainConfig,
        run=run,
        needs=("data", "tokenizer"),
        profiles={
            "quick": {
                "context": 64,
                "d_model": 64,
                "n_layer": 2,
                "n_head": 4,
                "n_kv_head": 2,
                "d_ff": 160,
                "max_steps": 120,
                "warmup_steps": 10,
                "lr": 3e-3,  # 120 steps: it shows the mechanics, and learns more at the higher rate
                "repeat_windows": 0,  # too few steps to grow induction heads anyway
                "eval_every": 60,
                "checkpoint_every": 60,
                "eval_tokens": 4096,
            },
            "default": {},
            "gpu": {
                "mix": "all",
                "context": 1024,
                "d_model": 768,
                "n_layer": 12,
                "n_head": 12,
                "n_kv_head": 12,
                "d_ff": 3072,
                "batch_size": 64,
                "grad_accum": 1,
                "repeat_windows": 0,  # the whole corpus at context 1024: real text has the repetition
                "lr": 6e-4,
                "warmup_steps": 200,
                "max_steps": 2000,
                "eval_every": 500,
                "checkpoint_every": 1000,
                "eval_tokens": 262_144,
            },
        },
    )
)
