"""RL for reasoning: worked steps vs direct answers, rule-based rewards, group-relative advantages, GRPO through trl.

Run it: ``llmkb examples run rl_reasoning --profile quick`` (or ``python examples/rl_reasoning.py``).
The RL-for-reasoning page includes its sections; the docs build saves its tables and plot.
"""

# %% [markdown]
# # Reinforcement learning where a rule checks the answer
# The ``grpo`` stage trains two small models that only add three-digit numbers, one taught to write
# column addition out step by step and one taught to give the bare answer, and then runs GRPO
# (through trl) on the first, rewarded by two rules: is the answer right, and is it in the format.
# This example reads what the stage measured, shows the rules and the advantages GRPO computes
# from them, and asks both models a few sums they never saw.

# %%
# --8<-- [start:load]
import dataclasses

from llmkb.examples import context
from llmkb.io import read_jsonl
from llmkb.rl.stage import sums

ctx = context("rl_reasoning")
grpo_dir = ctx.ensure("grpo")  # runs data -> tokenizer -> pretrain -> sft -> grpo if this run lacks them
metrics = ctx.run.metrics("grpo")
config = ctx.run.config("grpo")
train, test = sums(config)  # the stage's sums, rebuilt from its seed: no held-out sum is in training
print(f"{len(train):,} training sums, {len(test)} held-out sums, for example {test[0]['messages'][0]['content']!r}")
print(
    f"sums models: {config.n_layer} layers of width {config.d_model}, trained {config.sft_steps} steps "
    f"of {config.sft_batch_size} sums each, from random weights"
)
# --8<-- [end:load]
quick = ctx.profile == "quick"  # the quick models train for seconds: mechanics, not skills
assert metrics["train_sums"] == len(train) and metrics["test_sums"] == len(test)

# %%
# --8<-- [start:think]
from llmkb.rl.grpo import direct_answers
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

tokenizer = load_tokenizer(grpo_dir / "steps" / "model")
worked = test[0]["messages"][-1]["content"]
direct = direct_answers(test[:1])[0]["messages"][-1]["content"]
print(f"{test[0]['messages'][0]['content']}\n--- worked steps ---\n{worked}\n--- direct ---\n{direct}\n")


def answer_tokens(records):
    """Mean number of tokens in the assistant's answers: one forward pass each."""
    return sum(len(tokenizer.encode(r["messages"][-1]["content"])) for r in records) / len(records)


steps_tokens, direct_tokens = answer_tokens(test), answer_tokens(direct_answers(test))
table = (
    "| taught to answer with | tokens per answer (mean) | right on held-out sums (greedy) |\n"
    "|---|---:|---:|\n"
    f"| column addition, step by step | {steps_tokens:.1f} | {metrics['steps_accuracy']:.0%} |\n"
    f"| the bare `Answer: N` | {direct_tokens:.1f} | {metrics['direct_accuracy']:.0%} |\n"
)
ctx.save_text("thinking.md", table)
print(table)
# --8<-- [end:think]
assert steps_tokens > 3 * direct_tokens
if not quick:
    # Three seeds (scripts/seed_spread.py): worked steps 95.5-100% right, direct answers 0-0.5%.
    assert metrics["steps_accuracy"] > metrics["direct_accuracy"] + 0.5

# %%
# --8<-- [start:samples]
from llmkb.inference.chat import respond
from llmkb.model.hf import load_pretrained as load_model
from llmkb.rl.grpo import as_prompts

models = {style: load_model(grpo_dir / style / "model") for style in ("steps", "direct")}
rows = as_prompts(test[:4])
replies = {
    style: respond(model, tokenizer, [r["prompt"] for r in rows], config.max_new_tokens)
    for style, model in models.items()
}  # greedy
for i, row in enumerate(rows):
    print(f"=== {row['prompt'][-1]['content']}  (right answer: {row['answer']})")
    for style in models:
        text, ended = replies[style][i]
        print(f"--- {style} model{'' if ended else ' (did not end its turn)'}:\n{text}")
# --8<-- [end:samples]
assert all(len(r) == len(rows) for r in replies.values())

# %%
# --8<-- [start:rules]
from llmkb.rl.grpo import correctness_reward, format_reward

candidates = [
    worked,  # the worked steps of the data
    worked.rsplit("Answer: ", 1)[0] + "Answer: 7",  # the same steps, a wrong answer
    direct,  # right answer, no steps
    test[0]["messages"][0]["content"][8:-1] + " = " + str(test[0]["meta"]["answer"]),  # no Answer line
    worked + "\nHope that helps!",  # right, with chatter after the answer
]
answers = [str(test[0]["meta"]["answer"])] * len(candidates)
for reply, right, shaped in zip(candidates, correctness_reward(candidates, answers), format_reward(candidates)):
    print(f"correctness {right:.0f}  format {shaped:.0f}  total {right + shaped:.0f}  <- {reply!r}")
# --8<-- [end:rules]
assert correctness_reward(candidates, answers) == [1.0, 0.0, 1.0, 0.0, 1.0]
assert format_reward(candidates) == [1.0, 1.0, 0.0, 0.0, 0.0]

# %%
# --8<-- [start:checked]
from llmkb.rl.grpo import checked, formatting


def broken(prompts, completions, **kwargs):  # a reward function with a bug: None for short replies
    return [1.0 if len(c) > 20 else None for c in completions]


print("formatting, wrapped:", checked(formatting)(prompts=[[], []], completions=[worked, direct]))
try:
    checked(broken)(prompts=[[], []], completions=[worked, direct])
except ValueError as error:
    print("broken, wrapped:    ", error)
# --8<-- [end:checked]
assert checked(formatting).__name__ == "formatting"  # trl labels its log with the function's name

# %%
# --8<-- [start:advantages]
import torch

from llmkb.rl.grpo import group_advantages

# One prompt, a group of G = 8 sampled answers; reward = correctness + format (0, 1 or 2).
group = torch.tensor([2.0, 2.0, 1.0, 2.0, 0.0, 1.0, 2.0, 1.0])
advantages = group_advantages(group, group_size=8)
print(f"mean {group.mean():.3f}, std {group.std():.3f} (divides by G - 1)")
for reward, advantage in zip(group.tolist(), advantages.tolist()):
    print(f"reward {reward:.0f} -> advantage {advantage:+.3f}")
tied = group_advantages(torch.full((8,), 2.0), group_size=8)  # all eight right: nothing to prefer
print("a group where every answer scores 2:", tied.tolist())
# --8<-- [end:advantages]
assert abs(advantages.sum()) < 1e-5 and advantages[0] > 0 > advantages[4]
assert tied.abs().max() == 0

# %%
# --8<-- [start:grpo]
from llmkb.rl.stage import plot_grpo

settings = config.grpo()  # what the stage passed to train_grpo
print({k: v for k, v in dataclasses.asdict(settings).items() if k not in ("device", "progress")})
print(
    f"{settings.prompts_per_step} sums x {settings.group_size} answers = "
    f"{settings.prompts_per_step * settings.group_size} sampled answers per step, "
    f"{metrics['grpo_s_per_step']:.1f} s per step here"
)
log = list(read_jsonl(grpo_dir / "log.jsonl"))  # one row per step
ctx.save_figure("rewards.png", plot_grpo(log))
for i in sorted({0, 1, 2, len(log) // 2, len(log) - 2, len(log) - 1} & set(range(len(log)))):
    row = log[i]
    print(
        f"step {row['step']:>3}: correctness {row['correctness']:.3f}  format {row['formatting']:.3f}  "
        f"reward std {row['reward_std']:.3f}  answer length {row['completion_length']:.1f} tokens"
        + (f"  held-out greedy {row['held_out_greedy']:.0%}" if "held_out_greedy" in row else "")
    )
# --8<-- [end:grpo]
assert len(log) == metrics["grpo_steps"] == config.grpo_steps
assert all(0 <= row["correctness"] <= 1 and 0 <= row["formatting"] <= 1 for row in log)

# %%
# --8<-- [start:before-after]
table = (
    "| worked-steps model | greedy: right | sampled at temperature 1: right |\n|---|---:|---:|\n"
    f"| before GRPO | {metrics['steps_accuracy']:.1%} | {metrics['before_sampled_accuracy']:.1%} |\n"
    f"| after {metrics['grpo_steps']} GRPO steps | {metrics['after_accuracy']:.1%} | "
    f"{metrics['after_sampled_accuracy']:.1%} |\n"
)
ctx.save_text("accuracy.md", table)
print(table)
print(f"{metrics['test_sums']} held-out sums, each answered once greedily and {config.sampled_per_sum} times sampled")
# --8<-- [end:before-after]
if not quick:
    assert metrics["steps_accuracy"] > metrics["before_sampled_accuracy"]  # sampling is where the wrong answers are
    assert metrics["after_accuracy"] > 0.5  # lr 1e-4 did not destroy the sums (3e-4 and 1e-3 did)
