"""The reward, PPO, DPO and GRPO stages end to end on the quick profile: files, formats, metrics."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from llmkb.io import read_json, read_jsonl


@pytest.fixture(scope="module")
def rl_run(quick_run, tmp_path_factory):
    from llmkb.stages import RunDir, run_stage

    run = RunDir(tmp_path_factory.mktemp("rl_runs") / "quick")
    for stage in ("data", "tokenizer"):
        shutil.copytree(quick_run.root / stage, run.root / stage)
    metrics = {name: run_stage(name, run, "quick") for name in ("pretrain", "sft", "reward", "ppo", "dpo", "grpo")}
    return run, metrics


def test_reward_stage_writes_pairs_in_trl_format_and_an_hf_reward_model(rl_run):
    from datasets import load_from_disk
    from transformers import AutoModelForSequenceClassification

    from llmkb.rl.reward import load_reward_model

    run, metrics = rl_run
    m = metrics["reward"]
    assert m["judgements"] == (20 + 10) * 4 and m["train_pairs"] > 0 and m["steps"] == 6
    pairs = load_from_disk(str(run.root / "reward" / "pairs"))
    row = pairs["train"][0]
    assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    assert row["chosen"] != row["rejected"] and row["margin"] > 0
    hf = AutoModelForSequenceClassification.from_pretrained(str(run.root / "reward" / "model"))
    assert hf.config.num_labels == 1
    assert load_reward_model(run.root / "reward" / "model").score.weight.shape == (1, hf.config.hidden_size)
    with pytest.raises(FileNotFoundError, match="run `llmkb reward` first"):
        load_reward_model(run.root / "nothing")


def test_ppo_stage_logs_both_runs_and_saves_the_penalised_policy(rl_run):
    from llmkb.model.hf import load_pretrained

    run, metrics = rl_run
    m = metrics["ppo"]
    log = list(read_jsonl(run.root / "ppo" / "log.jsonl"))
    assert {r["run"] for r in log} == {"KL penalty 1.0", "no KL penalty"}
    assert all({"reward", "true_score", "kl", "entropy"} <= set(r) for r in log)
    assert m["iterations"] == 3 and 0 <= m["win_rate_vs_sft"] <= 1
    assert (run.root / "ppo" / "reward_hacking.png").stat().st_size > 0
    # Both runs start from the SFT model, which is also the KL reference: their first rollout has KL 0.
    assert [r["kl"] for r in log if r["iteration"] == 0] == [0.0, 0.0]
    saved, sft = load_pretrained(run.root / "ppo" / "model"), load_pretrained(run.root / "sft" / "model")
    assert any(
        not torch.equal(a, b) for a, b in zip(saved.state_dict().values(), sft.state_dict().values())
    )  # it trained
    assert read_json(run.root / "ppo" / "config.json")["kl_coef"] == 1.0


def test_dpo_stage(rl_run):
    run, metrics = rl_run
    m = metrics["dpo"]
    assert m["steps"] == 4 and 0 <= m["eval_win_rate"] <= 1
    assert abs(m["eval_win"] + m["eval_tie"] + m["eval_loss"] - 1) < 1e-3
    assert abs(m["eval_win_rate"] - (m["eval_win"] + m["eval_tie"] / 2)) < 1e-3  # a tie counts half
    log = list(read_jsonl(run.root / "dpo" / "log.jsonl"))
    # The policy starts as its reference (every implicit reward 0: loss log 2), then moves toward the chosen replies.
    assert abs(log[0]["loss"] - math.log(2)) < 1e-3 and log[-1]["loss"] < log[0]["loss"] and log[-1]["margin"] > 0
    assert (run.root / "dpo" / "model" / "model.safetensors").is_file()


def test_grpo_stage_trains_three_sums_models_and_runs_grpo_through_trl(rl_run):
    from transformers import AutoTokenizer

    from llmkb.model.hf import load_pretrained

    run, metrics = rl_run
    m = metrics["grpo"]
    out = run.root / "grpo"
    assert m["grpo_steps"] == 2 and m["train_sums"] == 64 and m["test_sums"] == 8
    for key in (
        "steps_accuracy",
        "direct_accuracy",
        "calc_accuracy",
        "calc_called",
        "before_sampled_accuracy",
        "after_accuracy",
        "after_sampled_accuracy",
    ):
        assert 0 <= m[key] <= 1, key
    sft_log = list(read_jsonl(out / "sft_log.jsonl"))
    assert {r["style"] for r in sft_log} == {"steps", "direct", "calc"}
    for style in ("steps", "direct", "calc"):  # each model learns from its own data, even in 4 steps (about -0.9 here)
        test_losses = [r["test_loss"] for r in sft_log if r["style"] == style and "test_loss" in r]
        assert test_losses[-1] < test_losses[0] - 0.3, (style, test_losses)
    # The accuracy in the metrics is the saved worked-steps model's, recomputed.
    from llmkb.rl.grpo import accuracy
    from llmkb.rl.stage import sums
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    config = run.config("grpo")
    steps_model = load_pretrained(out / "steps" / "model").eval()
    held_out = sums(config)[1]
    assert (
        accuracy(steps_model, load_tokenizer(out / "steps" / "model"), held_out, config.max_new_tokens)
        == m["steps_accuracy"]
    )
    log = list(read_jsonl(out / "log.jsonl"))
    assert [r["step"] for r in log] == [1, 2] and all({"correctness", "formatting"} <= set(r) for r in log)
    for folder in ("steps/model", "direct/model", "calc/model", "model"):  # HF folders with the ChatML template
        assert load_pretrained(out / folder).config.n_layer == 2
        assert "<|im_start|>" in AutoTokenizer.from_pretrained(str(out / folder)).chat_template
    # The calculator's model has the tool's two tokens, and its vocabulary grew by them; the others do not.
    calc, steps = (AutoTokenizer.from_pretrained(str(out / f"{s}/model")) for s in ("calc", "steps"))
    assert calc.convert_tokens_to_ids("<|calc_start|>") == len(steps) and len(calc) == len(steps) + 2
    assert load_pretrained(out / "calc/model").config.vocab_size == len(calc)
    assert (out / "grpo.png").stat().st_size > 0
