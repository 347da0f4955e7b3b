"""A base model + SFT conversations -> the fine-tuned model, trained by our loop or by trl's SFTTrainer.

In: our GPT (the pretraining stage's base model), its tokenizer (with the ChatML template), train and
test records (:mod:`llmkb.sft.data`) and an :class:`~llmkb.sft.config.SFTConfig`.
Out: :func:`fine_tune` returns the trained GPT (LoRA adapters merged into its weights), the log
(loss, learning rate, gradient norm, tokens/s per step; test loss every ``eval_every`` steps) and a
summary: trainable parameters, the bytes of gradients and optimizer state they need, time per step.

Our loop is pretraining's loop with three changes: batches are whole conversations (right-padded,
shuffled each epoch), the loss counts the assistant's tokens only (:func:`llmkb.sft.masking.sft_loss`),
and the model starts from the base model's weights instead of random ones. With ``method="lora"``
the weights are frozen and peft adds a trainable low-rank pair ``B @ A`` beside each target
projection: the layer computes ``W x + (alpha / r) * B A x``, B starts at zero so training starts
from the base model exactly, and only A and B get gradients and AdamW moments.

``trainer="trl"`` hands the same model (converted to HF's ``LlamaForCausalLM``), data and settings
to trl's ``SFTTrainer`` with ``assistant_only_loss=True`` (and to peft's ``LoraConfig`` for LoRA).
On CUDA both use bf16 autocast; ours also compiles the model and uses fused AdamW.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

import torch
from tqdm.auto import tqdm

from llmkb.device import autocast, pick_device
from llmkb.model.gpt import GPT, configure_optimizer
from llmkb.pretrain.train import lr_at
from llmkb.sft.config import SFTConfig
from llmkb.sft.masking import IGNORE, collate, sft_loss, tokenize_conversation
from llmkb.training import batches, stop_if_not_finite, total_steps

CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")


def chat_token_ids(tokenizer) -> list[int]:
    """The ids of the ChatML tokens; an error if the tokenizer lacks them."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in CHAT_TOKENS]
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError(
            f"the tokenizer has no {CHAT_TOKENS} tokens: SFT needs the ChatML special tokens "
            "(the tokenizer stage adds them)"
        )
    return ids


@torch.no_grad()
def init_chat_tokens(model: GPT, tokenizer) -> dict:
    """Set the embedding rows of the ChatML tokens to the mean of the rows of the ordinary (non-special) tokens.

    Why: the base model never saw these tokens as inputs, and because the LM head shares the
    embedding matrix, pretraining kept pushing their rows toward "never predict me", with a norm
    of its own. Starting them at the average of the tokens the model did learn gives them an
    ordinary norm and no leftover direction (HF's ``resize_token_embeddings`` starts new tokens at
    the mean for the same reason). It does not make ``<|im_end|>`` likely by itself: training does
    that (the SFT page measures both). Returns the rows' norms before and after, and the mean norm
    of the ordinary rows.
    """
    token_ids = chat_token_ids(tokenizer)
    special = set(tokenizer.all_special_ids) | set(token_ids)
    used = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    weight = model.embed_tokens.weight
    rows = weight[used]
    before = weight[token_ids].norm(dim=-1).tolist()
    weight[token_ids] = rows.mean(0)
    return {
        "norm_before": [round(x, 4) for x in before],
        "norm_after": [round(x, 4) for x in weight[token_ids].norm(dim=-1).tolist()],
        "used_norm_mean": round(rows.norm(dim=-1).mean().item(), 4),
    }


@torch.no_grad()
def grow_vocab(model: GPT, tokenizer) -> list[int]:
    """Give ``model`` an embedding row for every token ``tokenizer`` added since the model was made.

    New rows start at the mean of the existing ordinary rows, for the reason
    :func:`init_chat_tokens` gives (an untied LM head gets the mean of its rows too). Returns the new ids.
    """
    old, new = model.config.vocab_size, len(tokenizer)
    if new < old:
        raise ValueError(f"the tokenizer has {new} tokens, fewer than the model's {old}: not the model's tokenizer")
    special = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(old) if i not in special]

    def grown(weight: torch.Tensor) -> torch.nn.Parameter:
        return torch.nn.Parameter(torch.cat([weight, weight[ordinary].mean(0).expand(new - old, -1)]))

    tied = model.lm_head.weight is model.embed_tokens.weight
    model.embed_tokens.weight = grown(model.embed_tokens.weight)
    model.embed_tokens.num_embeddings = model.lm_head.out_features = new
    model.lm_head.weight = model.embed_tokens.weight if tied else grown(model.lm_head.weight)
    model.config = dataclasses.replace(model.config, vocab_size=new)
    return list(range(old, new))


def encode_records(tokenizer, records: list[dict], context: int) -> list[dict[str, list[int]]]:
    """Every record's ids and assistant-only labels; an error names the record that does not fit."""
    out = []
    for i, record in enumerate(records):
        try:
            out.append(tokenize_conversation(tokenizer, record["messages"], context))
        except ValueError as e:
            raise ValueError(f"record {i} ({record.get('type', '?')}): {e}") from e
    return out


def trainable_summary(model: torch.nn.Module) -> dict:
    """Parameters that train and in total (a LoRA model's total includes its adapters)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_params": trainable, "total_params": total, "trainable_share": round(trainable / total, 5)}


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Measured bytes of the tensors training adds to the weights: gradients and AdamW's moments."""
    grads = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    moments = sum(
        v.nbytes for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v) and v.dim() > 0
    )
    weights = sum(p.nbytes for p in model.parameters())
    return {"weight_bytes": weights, "grad_bytes": grads, "optimizer_bytes": moments}


@torch.no_grad()
def heldout_loss(model, encoded: list[dict], pad_id: int, device: str, batch_size: int = 32) -> float:
    """The assistant-token loss over all of ``encoded`` (summed over tokens, then divided once)."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        ids, labels, _ = collate(encoded[start : start + batch_size], pad_id)
        n = int((labels[:, 1:] != IGNORE).sum())
        with autocast(device):
            total += sft_loss(model, ids.to(device), labels.to(device)).item() * n
        count += n
    model.train()
    return total / count


def add_lora(model: GPT, config: SFTConfig):
    """``model`` wrapped by peft: its weights frozen, an (A, B) adapter pair beside each target projection."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=list(config.lora_targets), lora_dropout=0.0
    )
    return get_peft_model(model, lora)


def fine_tune(
    model: GPT, tokenizer, train_records: list[dict], test_records: list[dict], config: SFTConfig
) -> tuple[GPT, list[dict], dict]:
    """Fine-tune ``model`` (changed in place for full fine-tuning); returns (model, log, summary)."""
    if config.trainer == "trl":
        return fine_tune_trl(model, tokenizer, train_records, test_records, config)
    device = pick_device(config.device)
    context = model.config.context
    train_enc = encode_records(tokenizer, train_records, context)
    test_enc = encode_records(tokenizer, test_records, context)
    if not train_enc:
        raise ValueError("no training conversations: the SFT data set is empty")
    pad_id = tokenizer.pad_token_id
    torch.manual_seed(config.seed)
    model = model.to(device).train()
    trainee = add_lora(model, config) if config.method == "lora" else model
    optimizer = configure_optimizer(trainee, config.lr, config.weight_decay, (0.9, 0.95), device)
    compiled = config.compile == "yes" or (config.compile == "auto" and device.startswith("cuda"))
    runner = torch.compile(trainee, dynamic=True) if compiled else trainee
    steps = total_steps(config, len(train_enc))
    schedule = dataclasses.replace(config, max_steps=steps)  # lr_at reads lr, warmup_steps, max_steps, min_lr_ratio
    log: list[dict] = (
        [{"step": 0, "test_loss": round(heldout_loss(runner, test_enc, pad_id, device), 5)}] if test_enc else []
    )
    summary = trainable_summary(trainee)
    data = batches(train_enc, config)
    bar = tqdm(total=steps, desc=f"sft ({config.method})", unit="step", disable=not config.progress)
    times = []
    for step in range(steps):
        t0 = time.perf_counter()
        lr = lr_at(step, schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        epoch, batch = next(data)
        ids, labels, _ = collate(batch, pad_id)
        ids, labels = ids.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device):
            loss = sft_loss(runner, ids, labels)
        value = loss.item()
        stop_if_not_finite(value, f"SFT step {step}", "lower the learning rate, or check the data")
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in trainee.parameters() if p.requires_grad], config.grad_clip or float("inf")
        )
        optimizer.step()
        if step == 0:
            summary.update(state_bytes(trainee, optimizer))  # after one step every moment exists
            if device.startswith("cuda"):
                summary["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        times.append(dt)
        record = {
            "step": step + 1,
            "epoch": epoch,
            "loss": round(value, 5),
            "lr": lr,
            "grad_norm": round(grad_norm.item(), 4),
            "tokens_per_s": round(ids.numel() / dt, 1),
        }
        if test_enc and ((step + 1) % config.eval_every == 0 or step + 1 == steps):
            record["test_loss"] = round(heldout_loss(runner, test_enc, pad_id, device), 5)
        log.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
    bar.close()
    if config.method == "lora":
        model = trainee.merge_and_unload()  # W + (alpha/r) B A folded into W: an ordinary GPT again
    timed = sorted(times[1:] or times)
    summary.update(
        {
            "steps": steps,
            "train_conversations": len(train_enc),
            "s_per_step": round(timed[len(timed) // 2], 4),
            "final_test_loss": log[-1].get("test_loss"),
            "first_test_loss": log[0].get("test_loss") if test_enc else None,
        }
    )
    return model.eval(), log, summary


def fine_tune_trl(
    model: GPT, tokenizer, train_records: list[dict], test_records: list[dict], config: SFTConfig
) -> tuple[GPT, list[dict], dict]:
    """The same fine-tuning through trl's ``SFTTrainer`` on the HF copy of ``model``; back to our GPT at the end."""
    import datasets
    from trl import SFTConfig as TrlConfig
    from trl import SFTTrainer

    from llmkb.model.hf import from_hf, to_hf

    device = pick_device(config.device)
    encode_records(tokenizer, train_records + test_records, model.config.context)  # the same errors as our loop
    hf = to_hf(model, tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.eos_token_id, tokenizer.pad_token_id)
    steps = total_steps(config, len(train_records))
    peft_config = None
    if config.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            target_modules=list(config.lora_targets),
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
    as_dataset = lambda records: datasets.Dataset.from_list(  # noqa: E731
        [{"messages": r["messages"]} for r in records]
    )
    from transformers import PrinterCallback, TrainerCallback

    class Timer(TrainerCallback):
        """Each optimizer step's wall time (evaluation excluded), and the gradients' bytes once."""

        def __init__(self):
            self.times, self.grad_bytes, self.t0 = [], None, 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            if self.grad_bytes is None:
                self.grad_bytes = sum(p.grad.nbytes for p in trainer.model.parameters() if p.grad is not None)

        def on_step_end(self, args, state, control, **kwargs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

    timer = Timer()
    if not config.progress:
        datasets.disable_progress_bars()  # trl tokenizes with datasets.map, which draws bars of its own
    with tempfile.TemporaryDirectory() as tmp:
        args = TrlConfig(
            output_dir=tmp,
            assistant_only_loss=True,
            max_length=model.config.context,
            max_steps=steps,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=32,
            learning_rate=config.lr,
            lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio},
            warmup_steps=config.warmup_steps,
            weight_decay=config.weight_decay,
            adam_beta2=0.95,
            max_grad_norm=config.grad_clip or 1e9,
            logging_steps=1,
            eval_strategy="steps" if test_records else "no",
            eval_steps=config.eval_every,
            save_strategy="no",
            report_to="none",
            seed=config.seed,
            use_cpu=not device.startswith("cuda"),
            bf16=device.startswith("cuda"),
            fp16=False,
            dataset_num_proc=None,
            disable_tqdm=not config.progress,
        )
        trainer = SFTTrainer(
            model=hf,
            args=args,
            train_dataset=as_dataset(train_records),
            eval_dataset=as_dataset(test_records) if test_records else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)  # without a progress bar trl would print every step's logs
        summary = trainable_summary(trainer.model)
        trainer.train()
        optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
        summary.update(
            {**state_bytes(trainer.model, optimizer), "grad_bytes": timer.grad_bytes}
        )  # grads are freed by now
        trained = trainer.model.merge_and_unload() if config.method == "lora" else trainer.model
    log: list[dict] = []
    for entry in trainer.state.log_history:
        if "loss" in entry:
            log.append(
                {
                    "step": entry["step"],
                    "loss": round(entry["loss"], 5),
                    "lr": entry.get("learning_rate"),
                    "grad_norm": entry.get("grad_norm"),
                }
            )
        elif "eval_loss" in entry and log and log[-1]["step"] == entry["step"]:
            log[-1]["test_loss"] = round(entry["eval_loss"], 5)
    ours = from_hf(trained.float()).eval()
    timed = sorted(timer.times[1:] or timer.times)
    summary.update(
        {
            "steps": steps,
            "train_conversations": len(train_records),
            "s_per_step": round(timed[len(timed) // 2], 4),
            "final_test_loss": next((r["test_loss"] for r in reversed(log) if "test_loss" in r), None),
        }
    )
    return ours, log, summary
