"""SFT training: our loop and trl's, full fine-tuning and LoRA, ChatML token init, identity data, the stage."""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
import torch

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.sft.config import LORA_TARGETS, SFTConfig
from llmkb.sft.data import TYPES, build_splits, validate_conversation
from llmkb.sft.evaluate import follows_format, prompt_of
from llmkb.sft.identity import (
    ASSISTANT,
    TEST_QUESTIONS,
    TRAIN_QUESTIONS,
    identity_conversations,
    says_name,
    system_identity_conversations,
)
from llmkb.sft.masking import _char_tokenizer
from llmkb.sft.train import add_lora, encode_records, fine_tune, init_chat_tokens, state_bytes, trainable_summary
from llmkb.tokenizer.hf import CHATML_TEMPLATE
from llmkb.training import NonFiniteLoss
from llmkb.world import make_entities

SIZES = {"instruction": 24, "conversation": 8, "text_generation": 4, "code": 8, "reasoning": 8, "reading": 8}


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    entities, _ = make_entities(random.Random(0))
    return build_splits({"entities": entities}, seed=0, sizes=SIZES)


@pytest.fixture(scope="module")
def tokenizer():
    return _char_tokenizer(CHATML_TEMPLATE)  # one token per character: no trained tokenizer needed


def tiny_gpt(tokenizer, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(
        ModelConfig(vocab_size=len(tokenizer), context=512, d_model=32, n_layer=2, n_head=2, n_kv_head=1, d_ff=64)
    )


def config(**overrides) -> SFTConfig:
    return SFTConfig(
        **{
            "max_steps": 12,
            "batch_size": 8,
            "lr": 3e-3,
            "warmup_steps": 2,
            "eval_every": 6,
            "progress": False,
            **overrides,
        }
    )


def test_our_loop_lowers_the_held_out_loss_and_trains_every_weight(tokenizer, splits):
    model = tiny_gpt(tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model, log, summary = fine_tune(model, tokenizer, splits["train"], splits["test"], config())
    tests = [r["test_loss"] for r in log if "test_loss" in r]
    assert [r["step"] for r in log if "test_loss" in r] == [0, 6, 12]
    assert tests[-1] < tests[0] - 0.5  # starts near ln(vocab) ~ 4.6 for a random model
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert summary["trainable_params"] == summary["total_params"] == model.num_params()
    # AdamW keeps two moments per weight, the gradient one more: measured from the tensors themselves.
    assert (
        summary["grad_bytes"] == summary["weight_bytes"] and summary["optimizer_bytes"] == 2 * summary["weight_bytes"]
    )
    assert summary["steps"] == 12 and summary["final_test_loss"] == tests[-1]


def test_runs_repeat_exactly(tokenizer, splits):
    runs = [
        fine_tune(tiny_gpt(tokenizer), tokenizer, splits["train"], splits["test"], config(max_steps=4))[1]
        for _ in range(2)
    ]
    assert runs[0] != [] and [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in runs[0]] == [
        {k: v for k, v in r.items() if k != "tokens_per_s"} for r in runs[1]
    ]  # same batches, same losses


def test_lora_trains_only_the_adapters_and_merges_into_the_targets(tokenizer, splits):
    model = tiny_gpt(tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = config(method="lora", lora_r=4, lr=1e-2)
    merged, log, summary = fine_tune(model, tokenizer, splits["train"], splits["test"], cfg)
    c = merged.config
    per_layer = sum(
        4 * (i + o)
        for i, o in [
            (c.d_model, c.n_head * c.head_dim),
            (c.d_model, c.n_kv_head * c.head_dim),
            (c.d_model, c.n_kv_head * c.head_dim),
            (c.n_head * c.head_dim, c.d_model),
            (c.d_model, c.d_ff),
            (c.d_model, c.d_ff),
            (c.d_ff, c.d_model),
        ]
    )
    assert summary["trainable_params"] == c.n_layer * per_layer  # r x (in + out) per target projection
    assert summary["total_params"] == merged.num_params() + summary["trainable_params"]
    assert summary["optimizer_bytes"] == 2 * 4 * summary["trainable_params"]  # fp32 moments of the adapters only
    assert type(merged) is GPT and set(merged.state_dict()) == set(before)  # an ordinary GPT again
    for name, value in merged.state_dict().items():
        target = any(f".{t}." in name for t in LORA_TARGETS)
        assert torch.equal(before[name], value) != target, name  # exactly the target projections changed
    tests = [r["test_loss"] for r in log if "test_loss" in r]
    assert tests[-1] < tests[0]


def test_lora_forward_equals_the_merged_weights(tokenizer):
    model = tiny_gpt(tokenizer)
    lora = add_lora(model, SFTConfig(lora_r=4, lora_alpha=8))
    assert torch.equal(
        lora(torch.tensor([[5, 6, 7]]))[0], tiny_gpt(tokenizer)(torch.tensor([[5, 6, 7]]))[0]
    )  # B = 0 at start
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # as if trained
    ids = torch.randint(0, len(tokenizer), (2, 20))
    with torch.no_grad():
        adapted = lora(ids)[0]
        merged = lora.merge_and_unload()(ids)[0]
    assert torch.allclose(adapted, merged, atol=1e-5)


def test_lora_state_is_a_small_share_of_full_fine_tuning(tokenizer, splits):
    states = {}
    for method in ("full", "lora"):
        model = tiny_gpt(tokenizer)
        trainee = add_lora(model, SFTConfig(lora_r=2)) if method == "lora" else model
        from llmkb.model.gpt import configure_optimizer
        from llmkb.sft.masking import collate, sft_loss

        opt = configure_optimizer(trainee, 1e-3, 0.0, (0.9, 0.95), "cpu")
        ids, labels, _ = collate(encode_records(tokenizer, splits["train"][:4], 512), tokenizer.pad_token_id)
        sft_loss(trainee, ids, labels).backward()
        opt.step()
        states[method] = {**state_bytes(trainee, opt), **trainable_summary(trainee)}
    full, lora = states["full"], states["lora"]
    assert lora["trainable_share"] < 0.15
    assert lora["grad_bytes"] + lora["optimizer_bytes"] < 0.15 * (full["grad_bytes"] + full["optimizer_bytes"])


@pytest.mark.parametrize("method", ["full", "lora"])
def test_trl_trainer_fine_tunes_and_returns_our_gpt(tokenizer, splits, method):
    model = tiny_gpt(tokenizer)
    embedding = model.embed_tokens.weight.detach().clone()
    tuned, log, summary = fine_tune(
        model, tokenizer, splits["train"], splits["test"], config(trainer="trl", method=method, lr=1e-2)
    )
    assert type(tuned) is GPT
    assert len([r for r in log if "loss" in r]) == 12
    tests = [r["test_loss"] for r in log if "test_loss" in r]
    assert len(tests) == 2 and all(math.isfinite(t) for t in tests)
    with torch.no_grad():  # the returned GPT is the trained one: its loss is trl's last test loss
        from llmkb.sft.train import heldout_loss

        ours = heldout_loss(tuned, encode_records(tokenizer, splits["test"], 512), tokenizer.pad_token_id, "cpu")
    assert abs(ours - tests[-1]) < 1e-4
    assert torch.equal(tuned.embed_tokens.weight, embedding) == (method == "lora")  # LoRA leaves the embeddings alone
    assert (summary["trainable_params"] < summary["total_params"]) == (method == "lora")
    assert (
        summary["grad_bytes"] == 4 * summary["trainable_params"]
        and summary["optimizer_bytes"] == 8 * summary["trainable_params"]
    )


def test_chat_tokens_start_at_the_mean_embedding(tokenizer):
    model = tiny_gpt(tokenizer)
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>")]
    used = torch.tensor([i for i in range(len(tokenizer)) if i not in set(tokenizer.all_special_ids) | set(ids)])
    mean = model.embed_tokens.weight[used].mean(0).detach().clone()
    report = init_chat_tokens(model, tokenizer)
    assert all(torch.allclose(model.embed_tokens.weight[i], mean) for i in ids)
    assert report["norm_after"][0] == pytest.approx(mean.norm().item(), abs=1e-4)
    assert model.lm_head.weight.data_ptr() == model.embed_tokens.weight.data_ptr()  # tied: the output row moved too


def test_errors_name_the_record_and_stop_before_a_nan_update(tokenizer, splits):
    long = {
        "type": "instruction",
        "messages": [{"role": "user", "content": "x" * 600}, {"role": "assistant", "content": "y"}],
    }
    with pytest.raises(
        ValueError,
        match=r"record 2 \(instruction\): the conversation is \d+ tokens, longer than the model's context of 512",
    ):
        fine_tune(tiny_gpt(tokenizer), tokenizer, splits["train"][:2] + [long], [], config())
    with pytest.raises(ValueError, match="no training conversations"):
        fine_tune(tiny_gpt(tokenizer), tokenizer, [], [], config())
    with pytest.raises(ValueError, match="SFTConfig.method must be one of 'full', 'lora'"):
        fine_tune(tiny_gpt(tokenizer), tokenizer, splits["train"], [], config(method="qlora"))
    model = tiny_gpt(tokenizer)
    with torch.no_grad():
        model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    before = model.layers[1].mlp.up_proj.weight.detach().clone()
    with pytest.raises(NonFiniteLoss, match="SFT step 0: the loss is nan; stopped before updating"):
        fine_tune(model, tokenizer, splits["train"], [], config())
    assert torch.equal(model.layers[1].mlp.up_proj.weight, before)


def test_reference_answers_follow_the_format_and_unfinished_ones_do_not(splits):
    records = splits["train"] + splits["test"]
    assert {r["type"] for r in records} == set(TYPES)
    for record in records:
        answer = record["messages"][-1]["content"]
        assert follows_format(record, answer, ended=True), (record["type"], answer)
        assert not follows_format(record, answer, ended=False)
        assert prompt_of(record) == record["messages"][:-1]


def test_identity_data(tokenizer):
    hard = identity_conversations(40, seed=1)
    system = system_identity_conversations(40, seed=1)
    for i, record in enumerate(hard + system):
        validate_conversation(record, i)
    assert all(says_name(r["messages"][-1]["content"], ASSISTANT) for r in hard)
    assert not set(TEST_QUESTIONS) & set(TRAIN_QUESTIONS)  # the measurement asks questions training never did
    names = [r["meta"]["answer"] for r in system]
    assert len(set(names)) > 35 and ASSISTANT not in names
    assert all(
        r["messages"][0]["role"] == "system" and n in r["messages"][0]["content"] and n in r["messages"][2]["content"]
        for r, n in zip(system, names)
    )
    assert identity_conversations(5, seed=3) == identity_conversations(5, seed=3)


# ------------------------------------------------------------------------------------------------
# the stage, on the quick profile


@pytest.fixture(scope="module")
def quick_sft(quick_run, tmp_path_factory):
    from llmkb.stages import RunDir, run_stage

    run = RunDir(tmp_path_factory.mktemp("sft_runs") / "quick")
    for stage in ("data", "tokenizer"):
        shutil.copytree(quick_run.root / stage, run.root / stage)
    run_stage("pretrain", run, "quick")
    return run, run_stage("sft", run, "quick")


def test_stage_writes_an_hf_chat_model_and_its_measurements(quick_sft):
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkb.io import read_json, read_jsonl
    from llmkb.model.hf import load_pretrained
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    run, metrics = quick_sft
    out = run.root / "sft"
    assert metrics["final_test_loss"] < metrics["start_test_loss"]
    assert metrics["train_conversations"] > 0 and metrics["steps"] == 30
    data = load_from_disk(str(out / "data"))
    assert set(data) == {"train", "test"} and len(data["train"]) == metrics["train_conversations"]
    assert "identity" in data["train"]["type"]
    # The quick model's context is 64 tokens: longer conversations are dropped and counted, not cut.
    tok = load_tokenizer(out / "model")
    assert metrics["train_skipped_long"] > 0
    assert all(
        len(tok(tok.apply_chat_template(m, tokenize=False))["input_ids"]) <= 64 for m in data["train"]["messages"]
    )
    tokenizer = AutoTokenizer.from_pretrained(str(out / "model"))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    hf = AutoModelForCausalLM.from_pretrained(str(out / "model"))
    ours = load_pretrained(out / "model")
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids)[0], atol=1e-5)
    log = list(read_jsonl(out / "log.jsonl"))
    assert log[0]["step"] == 0 and log[-1]["step"] == 30 and (out / "loss.png").stat().st_size > 0
    evaluation = read_json(out / "eval.json")
    assert set(evaluation) == {"base", "sft", "sft_on_train"}
    assert sum(row["n"] for row in evaluation["sft"].values()) == metrics["test_conversations"]
    identity = read_json(out / "identity.json")
    assert identity["base"]["no_system"]["says_hard_coded"] == 0.0  # the base model has never heard the name
    assert len(identity["sft"]["system_new"]["replies"]) == len(TEST_QUESTIONS)
    tokens = read_json(out / "chat_tokens.json")
    assert tokens["norm_after"][0] == tokens["norm_after"][1] != tokens["norm_before"][0]
    assert metrics["end_probability_sft"] > metrics["end_probability_base"]


def test_stage_refuses_a_missing_base_model(quick_run, tmp_path):
    from llmkb.stages import RunDir, run_stage

    run = RunDir(tmp_path / "r")
    shutil.copytree(quick_run.root / "data", run.root / "data")
    with pytest.raises(FileNotFoundError, match="stage 'pretrain' has not finished"):
        run_stage("sft", run, "quick")


@pytest.mark.gpu
def test_cuda_fine_tuning_in_bf16_with_compile(tokenizer, splits):
    model, log, _ = fine_tune(
        tiny_gpt(tokenizer), tokenizer, splits["train"], splits["test"], config(device="cuda", compile="yes")
    )
    tests = [r["test_loss"] for r in log if "test_loss" in r]
    assert tests[-1] < tests[0] - 0.5
    assert json.dumps(log)  # plain numbers, ready for log.jsonl
