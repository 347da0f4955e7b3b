"""The SFT stage: base model + the mini-web's facts in, an assistant that answers in ChatML out.

In: ``runs/<run>/pretrain/model/`` (the base model and its tokenizer) and the mini-web's manifest in
``runs/<run>/data/``. Out: ``runs/<run>/sft/``:

- ``data/`` the conversations as a ``datasets.DatasetDict`` (``train``, ``test``; ``load_from_disk``);
- ``model/`` the fine-tuned model in Hugging Face format; its tokenizer carries the ChatML template,
  so ``AutoTokenizer.apply_chat_template`` and ``llmkb chat`` talk to it as to any chat model;
- ``log.jsonl`` and ``loss.png``: training loss per step, assistant-token loss on the test split;
- ``eval.json``: base vs SFT on the held-out prompts of each data type (format followed, answer
  right), and the SFT model on prompts it trained on;
- ``identity.json``: what the base and SFT models say they are, with and without a system message;
- ``chat_tokens.json``: how the ChatML tokens' embeddings start, and the probability of
  ``<|im_end|>`` at the end of an answer before and after fine-tuning.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from llmkb.io import write_json, write_jsonl
from llmkb.sft.config import SFTConfig
from llmkb.stages import RunDir, Stage, register

EVAL_TRAIN_SAMPLE = 300  # train conversations scored too: what SFT memorised vs what it generalises


def sft_model(run_dir: RunDir):
    """The run's SFT model and its tokenizer (with the ChatML template), as the sft stage saved them."""
    from llmkb.model.hf import load_pretrained as load_model
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    folder = run_dir.require("sft") / "model"
    return load_model(folder), load_tokenizer(folder)


def conversations(run_dir: RunDir, split: str = "train") -> list[dict]:
    """The run's SFT conversations of ``split`` as records, ``meta`` decoded back into a dict."""
    import json

    from datasets import load_from_disk

    data = load_from_disk(str(run_dir.require("sft") / "data"))
    return [dict(r, meta=json.loads(r["meta"])) for r in data[split]]


def build_data(config: SFTConfig, manifest: Path, tokenizer, context: int) -> tuple[dict[str, list[dict]], dict]:
    """The train and test records (the five types + identity), with too-long ones skipped and counted."""
    from llmkb.sft.data import build_splits, check_length
    from llmkb.sft.identity import identity_conversations, system_identity_conversations

    splits = build_splits(manifest, seed=config.seed, sizes=config.sizes)
    splits["train"] += identity_conversations(config.identity, config.seed)
    splits["train"] += system_identity_conversations(config.system_identity, config.seed)
    random.Random(f"sft:mix:{config.seed}").shuffle(splits["train"])
    info = {}
    for split in ("train", "test"):
        splits[split], info[f"{split}_skipped_long"] = check_length(
            tokenizer, splits[split], context, skip=config.skip_long
        )
        info[f"{split}_conversations"] = len(splits[split])
    return splits, info


def save_rows(rows: dict[str, list[dict]], out: Path) -> Path:
    """Rows per split as a ``datasets.DatasetDict`` on disk: written to a temporary sibling, then swapped in.

    An interrupted save leaves the previous folder (or none), never half of one.
    """
    import tempfile

    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    from llmkb.model.hf import replace_dir

    disable_progress_bar()  # a few thousand short rows save in a blink; the bar would only clutter the log
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        DatasetDict({split: Dataset.from_list(r) for split, r in rows.items()}).save_to_disk(str(tmp))
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def save_dataset(splits: dict[str, list[dict]], out: Path) -> Path:
    """SFT records as ``{"messages", "type", "meta"}`` rows (``meta`` as a JSON string: its fields differ by type)."""
    import json

    return save_rows(
        {
            split: [{"messages": r["messages"], "type": r["type"], "meta": json.dumps(r["meta"])} for r in records]
            for split, records in splits.items()
        },
        out,
    )


def end_probability(model, tokenizer, records: list[dict]) -> float:
    """Mean probability the model gives ``<|im_end|>`` right after a reference answer's last word."""
    import torch

    from llmkb.inference.chat import render
    from llmkb.tokenizer.ids import encode

    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    probs = []
    with torch.no_grad():
        for record in records:
            text = render(tokenizer, record["messages"], add_generation_prompt=False)
            ids = encode(tokenizer, text[: text.rindex("<|im_end|>")])  # the whole chat up to the last answer's end
            logits, _ = model(ids[:, -model.config.context :])
            probs.append(logits[0, -1].float().softmax(-1)[im_end].item())
    return sum(probs) / len(probs)


def plot_log(log: list[dict], path: Path | None = None, title: str = "Supervised fine-tuning"):
    """Training loss per step and test loss (assistant tokens only) per evaluation."""
    from llmkb.plots import finish, subplots

    fig, ax = subplots(figsize=(7, 3.6))
    train = [r for r in log if "loss" in r]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8, alpha=0.6, label="training batch")
    test = [r for r in log if "test_loss" in r]
    ax.plot([r["step"] for r in test], [r["test_loss"] for r in test], "o-", label="held-out conversations")
    ax.set(xlabel="step", ylabel="cross-entropy on assistant tokens", title=title, yscale="log")
    return finish(fig, ax, path)


def run(config: SFTConfig, run_dir: RunDir) -> dict:
    from llmkb.model.hf import load_pretrained as load_model
    from llmkb.model.hf import save_pretrained
    from llmkb.sft.evaluate import score
    from llmkb.sft.identity import identity_report
    from llmkb.sft.train import fine_tune, init_chat_tokens
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    out = run_dir.stage("sft")
    base_dir = run_dir.require("pretrain") / "model"
    manifest = run_dir.require("data") / "miniweb" / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(
            f"{manifest}: missing; the SFT data is made from the mini-web's manifest "
            "(a data stage run on other sites or WARC files has none)"
        )
    model, tokenizer = load_model(base_dir), load_tokenizer(base_dir)
    context = model.config.context
    splits, info = build_data(config, manifest, tokenizer, context)
    save_dataset(splits, out / "data")
    probe = [r for r in splits["test"] if r["type"] in ("instruction", "reasoning")][:50]
    tokens = {"base_end_probability": end_probability(model, tokenizer, probe)}

    def evaluate(m) -> dict:
        return score(m, tokenizer, splits["test"], config.eval_new_tokens)

    base_scores, base_identity = evaluate(model), identity_report(model, tokenizer)
    if config.init_special == "mean":
        tokens.update(init_chat_tokens(model, tokenizer))
        tokens["mean_init_end_probability"] = end_probability(model, tokenizer, probe)
    model, log, summary = fine_tune(model, tokenizer, splits["train"], splits["test"], config)
    write_jsonl(out / "log.jsonl", log)
    plot_log(log, out / "loss.png")
    save_pretrained(model.cpu(), out / "model", tokenizer=tokenizer)
    tokens["sft_end_probability"] = end_probability(model, tokenizer, probe)
    sft_scores, sft_identity = evaluate(model), identity_report(model, tokenizer)
    seen = score(model, tokenizer, splits["train"][:EVAL_TRAIN_SAMPLE], config.eval_new_tokens)
    write_json(out / "eval.json", {"base": base_scores, "sft": sft_scores, "sft_on_train": seen})
    write_json(out / "identity.json", {"base": base_identity, "sft": sft_identity})
    write_json(out / "chat_tokens.json", tokens)

    def share(scores: dict, key: str) -> float:  # over all test conversations
        n = sum(row["n"] for row in scores.values())
        return round(sum(row[key] * row["n"] for row in scores.values()) / n, 4)

    return {
        **info,
        "trainer": config.trainer,
        "method": config.method,
        **{k: v for k, v in summary.items() if k not in ("first_test_loss",)},
        "start_test_loss": summary.get("first_test_loss"),  # after the ChatML rows were set, before any step
        "base_format": share(base_scores, "format"),
        "sft_format": share(sft_scores, "format"),
        "base_correct": share(base_scores, "correct"),
        "sft_correct": share(sft_scores, "correct"),
        "sft_correct_on_train": share(seen, "correct"),
        "identity_base": base_identity["no_system"]["says_hard_coded"],
        "identity_sft": sft_identity["no_system"]["says_hard_coded"],
        "identity_new_system_name": sft_identity["system_new"]["says_new"],
        "end_probability_base": round(tokens["base_end_probability"], 6),
        "end_probability_sft": round(tokens["sft_end_probability"], 4),
    }


QUICK = {
    "sizes": {"instruction": 40, "conversation": 20, "text_generation": 10, "code": 20, "reasoning": 20, "reading": 20},
    "identity": 20,
    "system_identity": 20,
    "max_steps": 30,
    "warmup_steps": 5,
    "eval_every": 10,
    "eval_new_tokens": 32,
}

register(
    Stage(
        name="sft",
        summary="fine-tune the base model on ChatML conversations (assistant-only loss); save an HF chat model",
        config_cls=SFTConfig,
        run=run,
        needs=("data", "pretrain"),
        profiles={"quick": QUICK, "default": {}, "gpu": {"epochs": 2, "batch_size": 32, "lr": 3e-4}},
    )
)
