"""RLHF: a scripted labeler's rankings, a reward model, PPO with and without a KL penalty, and reward hacking.

Run it: ``llmkb examples run rlhf --profile quick`` (or ``python examples/rlhf.py``).
The RLHF page includes its sections; the docs build saves its tables and plots.
"""

# %% [markdown]
# # Reinforcement learning from (simulated) human feedback
# The reward stage samples replies from the SFT model, has a scripted labeler rank them and trains
# a reward model on the rankings; the PPO stage then tunes the SFT model against that reward model,
# once with a KL penalty and once without. Because the labeler is a program, this example can ask
# it what it really thinks of every reply, and watch the reward model and the labeler disagree.

# %%
# --8<-- [start:load]
from collections import Counter

from datasets import load_from_disk

from llmkb.examples import context
from llmkb.io import read_json, read_jsonl

ctx = context("rlhf")
ppo_dir = ctx.ensure("ppo")  # runs sft -> reward -> ppo if this run lacks them
reward_dir = ctx.run.require("reward")
reward_metrics, ppo_metrics = ctx.run.metrics("reward"), ctx.run.metrics("ppo")
pairs = load_from_disk(str(reward_dir / "pairs"))  # a datasets.DatasetDict: train and test pairs
print(pairs)
# --8<-- [end:load]
quick = ctx.profile == "quick"  # tiny models and a few steps: the mechanics run, the numbers mean nothing

# %%
# --8<-- [start:cost]
naive = 1_000 * 1_000 * 1_000  # RL as usual: updates x prompts x rollouts, every rollout scored by a person
rlhf = 1_000 * 5  # RLHF: 1,000 prompts, 5 rollouts each, ranked once; the reward model scores the rest
print(f"naive RL with people as the reward: {naive:,} human scores")
print(f"RLHF, people rank 1,000 prompts x 5 rollouts: {rlhf:,} judgements ({naive // rlhf:,}x fewer)")
config = read_json(reward_dir / "config.json")
print(
    f"this run: {config['prompts'] + config['test_prompts']:,} questions x {config['samples']} replies = "
    f"{reward_metrics['judgements']:,} labeler judgements -> "
    f"{reward_metrics['train_pairs']:,} training pairs + {reward_metrics['test_pairs']:,} held-out pairs"
)
# --8<-- [end:cost]
assert reward_metrics["judgements"] == (config["prompts"] + config["test_prompts"]) * config["samples"]

# %%
# --8<-- [start:rules]
from llmkb.rl.preferences import RULES, true_score

for rule, points in RULES.items():
    print(f"{rule:>17}: {points:+.1f}")
record = {
    "type": "instruction",
    "meta": {"name": "Ka Lo", "answer": "1801"},
    "messages": [
        {"role": "user", "content": "When was Ka Lo born?"},
        {"role": "assistant", "content": "Ka Lo was born in 1801."},
    ],
}
for reply, ended in (
    ("Ka Lo was born in 1801.", True),
    ("Ka Lo was born in 1802.", True),
    ("Born in 1801.", False),
    ("the the the the", False),
):
    print(f"{true_score(record, reply, ended):+5.1f}  {reply!r} (ended: {ended})")
# --8<-- [end:rules]
assert true_score(record, "Ka Lo was born in 1801.", True) == RULES["right"] + RULES["ended"] + RULES["names_person"]

# %%
# --8<-- [start:pairs]
train = pairs["train"]
margins = Counter(train["margin"])
print(
    f"{len(train):,} training pairs; the most common labeler margins (chosen - rejected):", dict(margins.most_common(4))
)
shown, seen = set(), set()
for row in train:  # one pair for each of those margins, each from a different question
    question = row["prompt"][0]["content"]
    if row["margin"] in shown or question in seen or row["margin"] not in dict(margins.most_common(4)):
        continue
    shown.add(row["margin"]), seen.add(question)
    print(f"--- {question}   (margin {row['margin']})")
    print(f"  chosen:   {row['chosen'][0]['content']!r}")
    print(f"  rejected: {row['rejected'][0]['content']!r}")
# --8<-- [end:pairs]
assert all(m > 0 for m in train["margin"])  # ties say nothing and are never pairs

# %%
# --8<-- [start:reward-model]
reward_log = list(read_jsonl(reward_dir / "log.jsonl"))
print(
    f"{reward_metrics['steps']} steps over {reward_metrics['train_pairs']:,} pairs, "
    f"{reward_metrics['s_per_step']:.3f} s per step"
)
print(
    f"held-out pairwise accuracy: {reward_metrics['test_accuracy_before']:.3f} with the untrained head, "
    f"{reward_metrics['test_accuracy']:.3f} after training"
)
print(
    f"Bradley-Terry loss on the training batches: first {reward_log[0]['loss']:.3f}, "
    f"mean of the last 20 {sum(r['loss'] for r in reward_log[-20:]) / len(reward_log[-20:]):.3f}"
)
# --8<-- [end:reward-model]
if not quick:
    assert reward_metrics["test_accuracy"] > reward_metrics["test_accuracy_before"] + 0.1

# %%
# --8<-- [start:gap]
k = ctx.run.config("reward").samples
picks, single = reward_metrics["best_of_k_picks_best"], reward_metrics["best_of_k_sample_best"]
print(
    f"{reward_metrics['best_of_k_questions']} held-out questions whose {k} sampled replies "
    "the labeler did not score all alike"
)
print(f"the reward model's favourite of the {k} is one of the labeler's best: {picks:.1%}")
print(f"one sampled reply is one of the labeler's best:                {single:.1%}")
# --8<-- [end:gap]
assert 0 < reward_metrics["best_of_k_questions"] and 0 <= single < 1
if not quick:  # the page: the gap is narrow (a weak judge), the room PPO and DPO have
    assert picks - single < 0.2

# %%
# --8<-- [start:hacking]
from llmkb.rl.stage import plot_hacking

log = list(read_jsonl(ppo_dir / "log.jsonl"))
runs = {}
for row in log:  # both PPO runs are in one file; "run" says which
    runs.setdefault(row["run"], []).append(row)
ctx.save_figure("hacking.png", plot_hacking(runs))
print(
    f"{'run':>15} | {'iterations':>10} | reward model: start -> end | true score: start -> end | KL end | entropy end"
)
for name, rows in runs.items():
    first, last = rows[0], rows[-1]
    print(
        f"{name:>15} | {len(rows):>10} | {first['reward']:>12.2f} -> {last['reward']:.2f} | "
        f"{first['true_score']:>10.2f} -> {last['true_score']:.2f} | {last['kl']:>6.2f} | {last['entropy']:.2f}"
    )
# --8<-- [end:hacking]
penalised, unleashed = (runs[name] for name in runs)  # the stage logs the KL-penalised run first
assert len(runs) == 2 and "no KL penalty" in runs
if not quick:  # without the leash the reward model's score rises while the labeler's falls
    assert (
        unleashed[-1]["reward"] > penalised[-1]["reward"] and unleashed[-1]["true_score"] < penalised[-1]["true_score"]
    )
    assert unleashed[-1]["kl"] > 3 * penalised[-1]["kl"]

# %%
# --8<-- [start:samples]
import re

last = unleashed[-10:]  # one sampled reply per iteration, each to a randomly drawn question
for row in last:
    print(f"iteration {row['iteration']:>2}: {row['sample']!r}")
name, count = None, 0
names = Counter(n for row in last for n in set(re.findall(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b", row["sample"])))
if names:
    name, count = names.most_common(1)[0]
    print(f"most frequent name in these {len(last)} replies: {name!r}, in {count} of them")
# --8<-- [end:samples]
# No assertion on the names: whether one person takes over the replies changed from run to run (the
# scores above, which did hold, are asserted there).

# %%
# --8<-- [start:early-stop]
kl_budget = 2.0  # nats per reply; PPOConfig(stop_kl=2.0) makes train_ppo stop at the first iteration over it
over = next((row for row in unleashed if row["kl"] > kl_budget), None)
if over is None:
    print(f"the run without a KL penalty never exceeded {kl_budget} nats of KL")
else:
    print(
        f"without a KL penalty, the KL first exceeds {kl_budget} at iteration {over['iteration']}: "
        f"reward model {over['reward']:.2f}, true score {over['true_score']:.2f}"
    )
print(
    f"left to run to iteration {unleashed[-1]['iteration']}: reward model {unleashed[-1]['reward']:.2f}, "
    f"true score {unleashed[-1]['true_score']:.2f}, KL {unleashed[-1]['kl']:.2f}"
)
# --8<-- [end:early-stop]
if not quick:
    assert over is not None and over["true_score"] > unleashed[-1]["true_score"]

# %%
# --8<-- [start:win-rates]
from llmkb.model.hf import load_pretrained as load_model
from llmkb.rl.preferences import win_rate
from llmkb.rl.stage import questions
from llmkb.sft.stage import sft_model

sft, tokenizer = sft_model(ctx.run)
held_out = questions(ctx.run)[1]
ppo = win_rate(load_model(ppo_dir / "model"), sft, tokenizer, held_out)  # the saved policy is the KL-penalised one
dpo_metrics = read_json(ctx.ensure("dpo") / "metrics.json")
dpo = {k.removeprefix("eval_"): v for k, v in dpo_metrics.items() if k.startswith("eval_")}
table = (
    "| model | win | tie | loss | win rate vs SFT | true score | SFT's true score |\n"
    "|---|---:|---:|---:|---:|---:|---:|\n"
)
for label, w in ((f"PPO, KL penalty {ppo_metrics['kl_coef']}", ppo), ("DPO", dpo)):
    table += (
        f"| {label} | {w['win']:.0%} | {w['tie']:.0%} | {w['loss']:.0%} | {w['win_rate']:.2f} | "
        f"{w['true_score']:.2f} | {w['baseline_true_score']:.2f} |\n"
    )
table += f"| PPO, no KL penalty | | | | {ppo_metrics['no_kl_win_rate_vs_sft']:.2f} | | |\n"
ctx.save_text("win_rates.md", table)
print(f"{len(held_out)} held-out questions, greedy replies, scored by the labeler (a tie counts half)")
print(table)
# --8<-- [end:win-rates]
assert ppo["win_rate"] == ppo_metrics["win_rate_vs_sft"]  # the same measurement as the stage's
if not quick:
    assert ppo_metrics["no_kl_win_rate_vs_sft"] < 0.2 < ppo["win_rate"]  # reward hacking loses to SFT
    assert ppo["win_rate"] < 0.5  # the page: with the penalty it does not beat SFT either
