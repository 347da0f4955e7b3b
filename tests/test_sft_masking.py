"""Assistant-only labels and the SFT loss: exact masks, clear errors, padding, and trl's numbers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.sft.data import build_splits
from llmkb.sft.masking import IGNORE, _char_tokenizer, collate, sft_loss, tokenize_conversation
from llmkb.tokenizer.hf import CHATML_TEMPLATE
from llmkb.world import make_entities

MODEL = Path(__file__).resolve().parents[1] / "runs" / "default" / "pretrain" / "model"
SIZES = {"instruction": 2, "conversation": 2, "text_generation": 1, "code": 1, "reasoning": 1, "reading": 1}
SYSTEM = "You are brief."


@pytest.fixture(scope="module")
def records() -> list[dict]:
    entities, _ = make_entities(random.Random(0))
    return build_splits({"entities": entities}, seed=0, sizes=SIZES, system=SYSTEM)["train"]


@pytest.fixture(scope="module")
def setup():
    """(tokenizer, our GPT, context): the trained base model if present, else a char tokenizer + random GPT."""
    if (MODEL / "model.safetensors").is_file():
        from llmkb.model.hf import load_pretrained as load_model
        from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

        model = load_model(MODEL)
        return load_tokenizer(MODEL), model, model.config.context
    tokenizer = _char_tokenizer(CHATML_TEMPLATE)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=len(tokenizer), context=1024, d_model=32, n_layer=2, n_head=2, n_kv_head=1, d_ff=64)
    return tokenizer, GPT(config).eval(), config.context


def runs(labels: list[int]) -> list[list[int]]:
    """The labelled tokens, grouped into runs of consecutive positions (one run per assistant turn)."""
    groups, previous = [], IGNORE
    for t in labels:
        if t != IGNORE:
            if previous == IGNORE:
                groups.append([])
            groups[-1].append(t)
        previous = t
    return groups


def test_mask_is_exactly_each_assistant_turn_and_its_im_end(setup, records):
    tokenizer, _, context = setup
    assert any(sum(m["role"] == "assistant" for m in r["messages"]) > 1 for r in records)  # multi-turn present
    for record in records:
        out = tokenize_conversation(tokenizer, record["messages"], context)
        ids, labels = out["input_ids"], out["labels"]
        assert len(ids) == len(labels)
        assert all(t in (i, IGNORE) for i, t in zip(ids, labels))
        answers = [m["content"] + "<|im_end|>" for m in record["messages"] if m["role"] == "assistant"]
        assert [tokenizer.decode(g) for g in runs(labels)] == answers
        # Everything outside the labels is the system/user messages and the ChatML scaffolding.
        rest = tokenizer.decode([i for i, t in zip(ids, labels) if t == IGNORE])
        assert rest.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
        for m in record["messages"]:
            if m["role"] != "assistant":
                assert f"{m['content']}<|im_end|>" in rest
        assert rest.count("<|im_start|>assistant\n") == len(answers)


def test_errors_name_the_problem(setup):
    tokenizer, _, _ = setup
    messages = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello."}]
    n = len(tokenize_conversation(tokenizer, messages, 1000)["input_ids"])
    assert len(tokenize_conversation(tokenizer, messages, n)["input_ids"]) == n
    with pytest.raises(ValueError, match=f"{n} tokens, longer than the model's context of {n - 1}"):
        tokenize_conversation(tokenizer, messages, n - 1)
    with pytest.raises(ValueError, match="no assistant tokens"):
        tokenize_conversation(tokenizer, messages[:1], 1000)


def test_collate_pads_on_the_right(setup, records):
    tokenizer, _, context = setup
    batch = [tokenize_conversation(tokenizer, r["messages"], context) for r in records[:3]]
    lengths = [len(x["input_ids"]) for x in batch]
    input_ids, labels, mask = collate(batch, pad_id=tokenizer.pad_token_id)
    assert input_ids.shape == labels.shape == mask.shape == (3, max(lengths))
    assert input_ids.dtype == labels.dtype == torch.long
    for row, (x, n) in enumerate(zip(batch, lengths)):
        assert input_ids[row, :n].tolist() == x["input_ids"] and labels[row, :n].tolist() == x["labels"]
        assert (input_ids[row, n:] == tokenizer.pad_token_id).all() and (labels[row, n:] == IGNORE).all()
        assert mask[row].tolist() == [1] * n + [0] * (max(lengths) - n)
    with pytest.raises(ValueError, match="at least one"):
        collate([], pad_id=0)


def test_sft_loss_equals_our_gpt_and_trl(setup, records, tmp_path):
    """THE KEY TEST: trl's SFTTrainer, with its own tokenization, collator and compute_loss, on the HF copy."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    from llmkb.model.hf import to_hf

    tokenizer, model, context = setup
    batch = [tokenize_conversation(tokenizer, r["messages"], context) for r in records]
    input_ids, labels, _ = collate(batch, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        ours = sft_loss(model, input_ids, labels)
        _, gpt_loss = model(input_ids[:, :-1], labels[:, 1:])
    assert abs(ours.item() - gpt_loss.item()) < 1e-6

    hf = to_hf(model, tokenizer.eos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    config = SFTConfig(
        output_dir=str(tmp_path),
        assistant_only_loss=True,
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        save_strategy="no",
        max_length=context,
        per_device_train_batch_size=len(records),
        dataset_num_proc=None,
    )
    dataset = datasets.Dataset.from_list([{"messages": r["messages"]} for r in records])
    trainer = SFTTrainer(model=hf, args=config, train_dataset=dataset, processing_class=tokenizer)
    prepared = trainer.train_dataset
    assert len(prepared) == len(records)  # nothing dropped or truncated
    for x, row in zip(batch, prepared):
        assert row["input_ids"] == x["input_ids"]
        assert row["labels"] == x["labels"]  # token for token
    trl_batch = trainer.data_collator([prepared[i] for i in range(len(records))])
    assert torch.equal(trl_batch["input_ids"], input_ids) and torch.equal(trl_batch["labels"], labels)
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, dict(trl_batch))
        hf_loss = hf(input_ids=input_ids, attention_mask=trl_batch["attention_mask"], labels=labels).loss
    print(
        f"ours {ours.item():.6f} trl {trl_loss.item():.6f} hf {hf_loss.item():.6f} "
        f"max diff {max(abs(ours - trl_loss).item(), abs(ours - hf_loss).item()):.2e}"
    )
    assert abs(ours.item() - trl_loss.item()) < 1e-4
    assert abs(ours.item() - hf_loss.item()) < 1e-4
