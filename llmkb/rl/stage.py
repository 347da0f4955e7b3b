"""The preference and RL stages: the SFT model in; a reward model and PPO- and DPO-tuned models out.

In: ``runs/<run>/sft/`` (the SFT model and its conversations). Out:

- ``reward/``: ``pairs/`` (the ranked replies as a ``datasets.DatasetDict`` of
  ``{"prompt", "chosen", "rejected"}`` conversations, the format trl's trainers read), ``model/``
  (an HF ``LlamaForSequenceClassification`` folder), ``log.jsonl``;
- ``ppo/``: ``model/`` (the policy tuned with the KL penalty), ``log.jsonl`` (every iteration of
  both runs: with the penalty, and without it), ``reward_hacking.png``;
- ``dpo/``: ``model/`` and ``log.jsonl``;
- ``grpo/``: three small models trained on sums only, ``steps/model`` (column addition written out),
  ``direct/model`` (the bare answer) and ``calc/model`` (a call to the calculator tool, then its
  result: :mod:`llmkb.sft.tools`), their ``sft_log.jsonl``; ``model/`` (the steps model after
  GRPO, :func:`llmkb.rl.grpo.train_grpo`) and ``log.jsonl`` (rewards, answer length and, every few
  steps, held-out accuracy per step), ``grpo.png``.

The reward, PPO and DPO stages score their model against the SFT model on held-out questions with
the scripted labeler (:func:`llmkb.rl.preferences.win_rate`): the number the reward model only
approximates. The questions are split once, by :func:`questions`. The GRPO stage scores the share
of held-out sums answered right: a rule checks it, no labeler is needed.
"""

from __future__ import annotations

import random
from pathlib import Path

from llmkb.io import write_jsonl
from llmkb.rl.config import DPOConfig, PPOConfig, RewardConfig, SumsConfig
from llmkb.sft.stage import conversations, sft_model
from llmkb.stages import RunDir, Stage, register


def questions(run_dir: RunDir) -> tuple[list[dict], list[dict]]:
    """The questions RL trains on and the held-out ones it is scored on, as the reward stage split them.

    Both are SFT train-split instruction records (facts of people the SFT model was taught to
    answer about), in a seeded order: the first ``prompts`` for the rankings, PPO and DPO; the next
    ``test_prompts`` for the reward model's held-out pairs and every win rate. (The SFT test split's
    people would measure nothing here: the SFT model cannot recall their facts at all.)
    """
    from llmkb.io import read_json

    records = [r for r in conversations(run_dir) if r["type"] == "instruction"]
    random.Random("rl:questions").shuffle(records)
    split = (
        read_json(run_dir.root / "reward" / "config.json") if (run_dir.root / "reward" / "config.json").exists() else {}
    )
    n, n_test = split.get("prompts", RewardConfig.prompts), split.get("test_prompts", RewardConfig.test_prompts)
    if len(records) < n + n_test:
        raise ValueError(
            f"{run_dir.root / 'sft' / 'data'}: {len(records)} instruction conversations; the reward stage's "
            f"prompts + test_prompts = {n + n_test} are needed"
        )
    return records[:n], records[n : n + n_test]


def save_pairs(pairs: dict[str, list[dict]], out: Path) -> Path:
    """Preference pairs as a DatasetDict on disk in trl's conversational format."""
    from llmkb.sft.stage import save_rows

    return save_rows(
        {
            split: [
                {
                    "prompt": p["prompt"],
                    "chosen": [{"role": "assistant", "content": p["chosen"]}],
                    "rejected": [{"role": "assistant", "content": p["rejected"]}],
                    "margin": p["margin"],
                }
                for p in ps
            ]
            for split, ps in pairs.items()
        },
        out,
    )


def load_pairs(run_dir: RunDir, split: str) -> list[dict]:
    """The reward stage's pairs back as ``{"prompt", "chosen", "rejected"}`` with plain-text replies."""
    from datasets import load_from_disk

    data = load_from_disk(str(run_dir.require("reward") / "pairs"))
    return [
        {"prompt": r["prompt"], "chosen": r["chosen"][0]["content"], "rejected": r["rejected"][0]["content"]}
        for r in data[split]
    ]


def run_reward(config: RewardConfig, run_dir: RunDir) -> dict:
    from llmkb.device import pick_device
    from llmkb.rl.preferences import build_preferences
    from llmkb.rl.reward import discriminator_generator_gap, save_reward_model, train_reward_model
    from llmkb.sft.evaluate import prompt_of

    out = run_dir.stage("reward")
    model, tokenizer = sft_model(run_dir)
    train_q, test_q = questions(run_dir)  # run_stage has just written this stage's config.json
    settings = {"k": config.samples, "temperature": config.temperature, "max_new_tokens": config.max_new_tokens}
    pairs, stats = build_preferences(model, tokenizer, train_q, seed=config.seed, **settings)
    test_pairs, test_stats = build_preferences(model, tokenizer, test_q, seed=config.seed + 1, **settings)
    save_pairs({"train": pairs, "test": test_pairs}, out / "pairs")
    reward, log, summary = train_reward_model(model, tokenizer, pairs, test_pairs, config)
    write_jsonl(out / "log.jsonl", log)
    save_reward_model(reward, tokenizer, out / "model")
    # Judging vs generating, on the held-out questions' samples (the reward model never trained on them).
    device = pick_device(config.device)
    gap = discriminator_generator_gap(
        reward.to(device), tokenizer, [prompt_of(r) for r in test_q], test_stats["groups"], device
    )
    return {
        "prompts": stats["prompts"],
        "judgements": stats["judgements"] + test_stats["judgements"],
        "train_pairs": len(pairs),
        "test_pairs": len(test_pairs),
        "sample_true_score": stats["mean_true_score"],
        "test_accuracy_before": summary["first_test_accuracy"],
        "test_accuracy": summary["test_accuracy"],
        "steps": summary["steps"],
        "s_per_step": summary["s_per_step"],
        "best_of_k_picks_best": gap["picks_best"],
        "best_of_k_sample_best": gap["sample_best"],
        "best_of_k_questions": gap["questions"],
    }


def plot_hacking(logs: dict[str, list[dict]], path: Path | None = None):
    """Reward-model score and the labeler's true score per PPO iteration, one panel per run."""
    from llmkb.plots import finish, subplots

    fig, axes = subplots(1, len(logs), figsize=(5 * len(logs), 3.4), sharey=True, squeeze=False)
    for ax, (name, log) in zip(axes[0], logs.items(), strict=True):
        steps = [r["iteration"] for r in log]
        ax.plot(steps, [r["reward"] for r in log], label="reward model's score")
        ax.plot(steps, [r["true_score"] for r in log], label="labeler's true score")
        ax.set(title=name, xlabel="PPO iteration")
    axes[0][0].set_ylabel("mean score of the batch")
    return finish(fig, axes, path)


def run_ppo(config: PPOConfig, run_dir: RunDir) -> dict:
    from llmkb.model.hf import save_pretrained
    from llmkb.rl.ppo import train_ppo
    from llmkb.rl.preferences import true_score, win_rate
    from llmkb.rl.reward import load_reward_model

    out = run_dir.stage("ppo")
    reward = load_reward_model(run_dir.require("reward") / "model")
    train_q, test_q = questions(run_dir)
    sft, tokenizer = sft_model(run_dir)
    runs = {f"KL penalty {config.kl_coef}": config, "no KL penalty": config.with_kl(0.0)}
    logs, results = {}, {}
    for name, settings in runs.items():
        policy, log = train_ppo(sft_model(run_dir)[0], reward, tokenizer, train_q, settings, true_score=true_score)
        logs[name] = [{"run": name, **r} for r in log]
        results[name] = (policy, win_rate(policy, sft, tokenizer, test_q))
    write_jsonl(out / "log.jsonl", [r for log in logs.values() for r in log])
    plot_hacking(logs, out / "reward_hacking.png")
    kept = results[next(iter(runs))][0]  # the run with the penalty is the stage's model
    save_pretrained(kept.cpu(), out / "model", tokenizer=tokenizer)
    (kept_log, kept_wins), (hack_log, hack_wins) = ((logs[n], results[n][1]) for n in runs)
    return {
        "iterations": len(kept_log),
        "kl_coef": config.kl_coef,
        "reward_start": kept_log[0]["reward"],
        "reward_end": kept_log[-1]["reward"],
        "true_score_start": kept_log[0]["true_score"],
        "true_score_end": kept_log[-1]["true_score"],
        "kl_end": kept_log[-1]["kl"],
        "win_rate_vs_sft": kept_wins["win_rate"],
        "no_kl_reward_end": hack_log[-1]["reward"],
        "no_kl_true_score_end": hack_log[-1]["true_score"],
        "no_kl_kl_end": hack_log[-1]["kl"],
        "no_kl_entropy_end": hack_log[-1]["entropy"],
        "no_kl_win_rate_vs_sft": hack_wins["win_rate"],
    }


def run_dpo(config: DPOConfig, run_dir: RunDir) -> dict:
    from llmkb.model.hf import save_pretrained
    from llmkb.rl.dpo import train_dpo
    from llmkb.rl.preferences import win_rate

    out = run_dir.stage("dpo")
    policy, tokenizer = sft_model(run_dir)
    reference, _ = sft_model(run_dir)
    policy, log = train_dpo(policy, reference, tokenizer, load_pairs(run_dir, "train"), config)
    write_jsonl(out / "log.jsonl", log)
    save_pretrained(policy.cpu(), out / "model", tokenizer=tokenizer)
    wins = win_rate(policy, reference, tokenizer, questions(run_dir)[1])
    return {
        "steps": len(log),
        "beta": config.beta,
        "final_loss": log[-1]["loss"],
        **{f"eval_{k}": v for k, v in wins.items()},
    }


def sums(config: SumsConfig) -> tuple[list[dict], list[dict]]:
    """(train, held-out) sum conversations with worked answers; no held-out sum occurs in training."""
    from llmkb.sft.data import reasoning

    train = reasoning(seed=config.seed + 1, digits=config.digits, n=config.train_sums)
    seen = {(r["messages"][0]["content"],) for r in train}
    return train, reasoning(seed=config.seed + 2, digits=config.digits, n=config.test_sums, exclude=seen)


def plot_grpo(log: list[dict], path: Path | None = None):
    """Per GRPO step: the sampled answers' rewards (correctness, format) and, where measured, held-out accuracy;
    beside it the answers' mean length in tokens."""
    from llmkb.plots import finish, subplots

    fig, axes = subplots(1, 2, figsize=(10, 3.2))
    ax, ax_len = axes
    steps = [r["step"] for r in log]
    ax.plot(steps, [r["correctness"] for r in log], label="right answer (sampled, training sums)")
    ax.plot(steps, [r["formatting"] for r in log], label="worked-steps format")
    measured = [r for r in log if "held_out_greedy" in r]
    if measured:
        ax.plot([r["step"] for r in measured], [r["held_out_greedy"] for r in measured], "o-", label="held-out, greedy")
    ax.set(xlabel="GRPO step", ylabel="share right", ylim=(-0.02, 1.02), title="GRPO rewards and accuracy")
    ax_len.plot(steps, [r["completion_length"] for r in log])
    ax_len.set(xlabel="GRPO step", ylabel="tokens", title="mean answer length")
    return finish(fig, axes, path)


def run_grpo(config: SumsConfig, run_dir: RunDir) -> dict:
    import time

    from llmkb.model.hf import save_pretrained
    from llmkb.rl.grpo import (
        accuracy,
        calculator_answers,
        direct_answers,
        sums_model,
        tool_accuracy,
        train_grpo,
        train_grpo_trl,
    )
    from llmkb.sft.config import SFTConfig
    from llmkb.sft.tools import add_tool_tokens
    from llmkb.sft.train import fine_tune
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    out = run_dir.stage("grpo")
    train, test = sums(config)
    sft = SFTConfig(
        max_steps=config.sft_steps,
        batch_size=config.sft_batch_size,
        lr=config.sft_lr,
        eval_every=config.sft_steps,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
    )
    styles = {
        "steps": (train, test),
        "direct": (direct_answers(train), direct_answers(test)),
        "calc": (calculator_answers(train), calculator_answers(test)),
    }
    tokenizer = load_tokenizer(
        run_dir.require("sft") / "model"
    )  # the run's tokenizer with its ChatML tokens and template
    models, sft_logs, metrics = {}, [], {}
    for style, (records, held_out) in styles.items():
        # The calculator's model also needs the tool's two tokens: its own copy of the tokenizer.
        tok = (
            add_tool_tokens(load_tokenizer(run_dir.require("sft") / "model"), "calc") if style == "calc" else tokenizer
        )
        model = sums_model(len(tok), config.n_layer, config.d_model, config.context, config.seed)
        model, log, summary = fine_tune(model, tok, records, held_out[:32], sft)
        models[style] = model.eval()
        sft_logs += [{"style": style, **r} for r in log]
        save_pretrained(model.cpu(), out / style / "model", tokenizer=tok)
        metrics[f"{style}_s_per_step"] = summary["s_per_step"]
        if style == "calc":
            scored = tool_accuracy(model, tok, test, config.max_new_tokens)
            metrics["calc_accuracy"], metrics["calc_called"] = scored["accuracy"], scored["called"]
        else:
            metrics[f"{style}_accuracy"] = accuracy(model, tok, held_out, config.max_new_tokens)
    write_jsonl(out / "sft_log.jsonl", sft_logs)

    before = models["steps"]
    metrics["before_sampled_accuracy"] = accuracy(
        before, tokenizer, test, config.max_new_tokens, config.sampled_per_sum, config.temperature
    )
    t0 = time.perf_counter()
    if config.grpo_trainer == "trl":
        policy, log = train_grpo_trl(before, tokenizer, train, config.grpo())
    else:
        watched = test[: config.grpo_eval_sums]

        def held_out(policy) -> dict:  # greedy accuracy on a slice of the held-out sums, during training
            return {"held_out_greedy": accuracy(policy, tokenizer, watched, config.max_new_tokens)}

        policy, log = train_grpo(
            before, tokenizer, train, config.grpo(), evaluate=held_out, eval_every=config.grpo_eval_every
        )
    metrics["grpo_s_per_step"] = round((time.perf_counter() - t0) / max(len(log), 1), 3)
    write_jsonl(out / "log.jsonl", log)
    plot_grpo(log, out / "grpo.png")
    save_pretrained(policy.cpu(), out / "model", tokenizer=tokenizer)
    metrics["after_accuracy"] = accuracy(policy, tokenizer, test, config.max_new_tokens)
    metrics["after_sampled_accuracy"] = accuracy(
        policy, tokenizer, test, config.max_new_tokens, config.sampled_per_sum, config.temperature
    )
    return {"train_sums": len(train), "test_sums": len(test), "grpo_steps": len(log), **metrics}


QUICK_REWARD = {"prompts": 20, "test_prompts": 10, "samples": 4, "max_new_tokens": 16, "max_steps": 6}
QUICK_SUMS = {
    "train_sums": 64,
    "test_sums": 8,
    "context": 160,
    "sft_steps": 4,
    "grpo_steps": 2,
    "group_size": 2,
    "prompts_per_step": 2,
    "max_new_tokens": 24,
    "sampled_per_sum": 1,
}
QUICK_PPO = {"iterations": 3, "batch_size": 8, "minibatch_size": 8, "max_new_tokens": 16}

register(
    Stage(
        name="reward",
        summary="rank sampled replies with the scripted labeler; train a reward model on the pairs",
        config_cls=RewardConfig,
        run=run_reward,
        needs=("sft",),
        profiles={"quick": QUICK_REWARD},
    )
)
register(
    Stage(
        name="ppo",
        summary="PPO against the reward model, with and without a KL penalty (reward hacking)",
        config_cls=PPOConfig,
        run=run_ppo,
        needs=("reward",),
        profiles={"quick": QUICK_PPO},
    )
)
register(
    Stage(
        name="dpo",
        summary="DPO on the same preference pairs: no reward model, a frozen reference",
        config_cls=DPOConfig,
        run=run_dpo,
        needs=("reward",),
        profiles={"quick": {"max_steps": 4}},
    )
)
register(
    Stage(
        name="grpo",
        summary="small models taught sums with worked steps, direct answers or a calculator; "
        "GRPO on a rule-based reward",
        config_cls=SumsConfig,
        run=run_grpo,
        needs=("sft",),
        profiles={"quick": QUICK_SUMS},
    )
)
