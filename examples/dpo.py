"""DPO: the preference pairs train the policy directly, against a frozen reference; its log and its win rate.

Run it: ``llmkb examples run dpo --profile quick`` (or ``python examples/dpo.py``).
The DPO page includes its sections; the docs build saves its plot and table.
"""

# %% [markdown]
# # Direct preference optimization
# The DPO stage trains a copy of the SFT model on the reward stage's preference pairs with the DPO
# loss, with no reward model and no sampling. This example shows the loss on real pairs, the
# training log, the trained policy used as a reward model, and how its replies compare with SFT's.

# %%
# --8<-- [start:load]
from llmkb.examples import context
from llmkb.io import read_json, read_jsonl
from llmkb.rl.stage import load_pairs
from llmkb.sft.stage import sft_model

ctx = context("dpo")
dpo_dir = ctx.ensure("dpo")  # runs sft -> reward -> dpo if this run lacks them
metrics, config = ctx.run.metrics("dpo"), read_json(dpo_dir / "config.json")
train_pairs, test_pairs = load_pairs(ctx.run, "train"), load_pairs(ctx.run, "test")
print(f"{len(train_pairs):,} training pairs, {len(test_pairs):,} held-out pairs (the reward stage's)")
print(
    f"beta {config['beta']}, learning rate {config['lr']}, {metrics['steps']} steps of {config['batch_size']} pairs "
    f"({metrics['steps'] * config['batch_size'] / len(train_pairs):.2f} passes), {metrics['wall_s']:.0f} s"
)
# --8<-- [end:load]
quick = ctx.profile == "quick"  # tiny models and a few steps: the mechanics run, the numbers mean nothing

# %%
# --8<-- [start:loss]
import torch

from llmkb.model.hf import load_pretrained as load_model
from llmkb.rl.dpo import dpo_loss, encode_pair, pair_logps

reference, tokenizer = sft_model(ctx.run)  # the SFT model, frozen: DPO's reference
policy = load_model(dpo_dir / "model")  # the SFT model after DPO
pad = tokenizer.pad_token_id
shown = list({p["prompt"][0]["content"]: p for p in test_pairs}.values())[:4]  # pairs of 4 different questions
batch = [encode_pair(tokenizer, p["prompt"], p["chosen"], p["rejected"], reference.config.context) for p in shown]
with torch.no_grad():
    ref_chosen, ref_rejected = pair_logps(reference, batch, pad, "cpu")  # summed log p of each reply, (4,) each
    pol_chosen, pol_rejected = pair_logps(policy, batch, pad, "cpu")
print("log p(reply) under the reference and the policy; the implicit reward is beta * (policy - reference):")
for i, pair in enumerate(shown):
    for kind, ref, pol in (("chosen", ref_chosen, pol_chosen), ("rejected", ref_rejected, pol_rejected)):
        print(
            f"  {kind:>8} {ref[i].item():7.2f} -> {pol[i].item():7.2f}"
            f"  reward {config['beta'] * (pol[i] - ref[i]).item():+.3f}"
            f"  {pair[kind][:60]!r}"
        )
start, *_ = dpo_loss(ref_chosen, ref_rejected, ref_chosen, ref_rejected, config["beta"])  # policy == reference
after, *_ = dpo_loss(pol_chosen, pol_rejected, ref_chosen, ref_rejected, config["beta"])
print(f"DPO loss of these 4 held-out pairs: {start.item():.4f} before training (ln 2), {after.item():.4f} after")
# --8<-- [end:loss]
assert abs(start.item() - 0.6931) < 1e-3

# %%
# --8<-- [start:log]
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = list(read_jsonl(dpo_dir / "log.jsonl"))
steps = [r["step"] for r in log]
window = max(1, min(10, len(log) // 5))  # a running mean over a few steps: single batches of 16 pairs are noisy


def smooth(key):
    values = [r[key] for r in log]
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]


fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for ax, key, title in zip(
    axes,
    ("loss", "margin", "accuracy"),
    ("DPO loss (ln 2 at the start)", "reward margin, chosen - rejected", "pairs ranked right"),
):
    ax.plot(steps, [r[key] for r in log], alpha=0.3, label="per batch")
    ax.plot(steps, smooth(key), label=f"mean of {window} steps")
    ax.set(title=title, xlabel="DPO step")
    ax.grid(alpha=0.3)
axes[0].axhline(0.6931, color="grey", linestyle=":")
axes[0].legend()
fig.tight_layout()
ctx.save_figure("log.png", fig)
for label, rows in (("first 10 steps", log[:10]), ("last 10 steps", log[-10:])):
    mean = {
        k: sum(r[k] for r in rows) / len(rows)
        for k in ("loss", "margin", "accuracy", "chosen_reward", "rejected_reward")
    }
    print(
        f"{label:>14}: loss {mean['loss']:.3f}, margin {mean['margin']:+.3f}, accuracy {mean['accuracy']:.2f}, "
        f"reward chosen {mean['chosen_reward']:+.3f} / rejected {mean['rejected_reward']:+.3f}"
    )
# --8<-- [end:log]
assert log[0]["loss"] == round(0.693147, 5) and log[0]["margin"] == 0.0  # the policy starts as the reference
if not quick:
    assert sum(r["loss"] for r in log[-10:]) < sum(r["loss"] for r in log[:10])

# %%
# --8<-- [start:implicit-reward]
encoded = [
    encode_pair(tokenizer, p["prompt"], p["chosen"], p["rejected"], reference.config.context) for p in test_pairs
]
right = 0
with torch.no_grad():
    for i in range(0, len(encoded), 64):
        chunk = encoded[i : i + 64]
        (pc, pr), (rc, rr) = pair_logps(policy, chunk, pad, "cpu"), pair_logps(reference, chunk, pad, "cpu")
        right += int(((pc - rc) > (pr - rr)).sum())
reward_metrics = ctx.run.metrics("reward")
print(f"held-out pairs ranked right by the DPO policy's implicit reward: {right / len(encoded):.3f}")
print(f"by the reward model of the RLHF page:                             {reward_metrics['test_accuracy']:.3f}")
# --8<-- [end:implicit-reward]
if not quick:
    assert right / len(encoded) > 0.5

# %%
# --8<-- [start:win-rate]
ppo = ctx.run.metrics("ppo") if (ctx.run.root / "ppo" / "metrics.json").exists() else {}
print(
    f"DPO against SFT on held-out questions (greedy replies, scored by the labeler): win {metrics['eval_win']:.0%}, "
    f"tie {metrics['eval_tie']:.0%}, loss {metrics['eval_loss']:.0%}; win rate {metrics['eval_win_rate']:.3f}"
)
print(f"mean true score: DPO {metrics['eval_true_score']:.3f}, SFT {metrics['eval_baseline_true_score']:.3f}")
if ppo:
    print(
        f"PPO's win rate against SFT: {ppo['win_rate_vs_sft']:.3f} with its KL penalty, "
        f"{ppo['no_kl_win_rate_vs_sft']:.3f} without"
    )
# --8<-- [end:win-rate]
assert abs(metrics["eval_win"] + metrics["eval_tie"] + metrics["eval_loss"] - 1) < 1e-3
if not quick:  # the page: DPO lost more questions than it won against SFT in this run
    assert metrics["eval_loss"] > metrics["eval_win"]

# %%
# --8<-- [start:ceiling]
from collections import Counter

from llmkb.inference.chat import respond
from llmkb.rl.preferences import RULES, true_score
from llmkb.rl.stage import questions
from llmkb.sft.evaluate import prompt_of

held_out = questions(ctx.run)[1]
greedy = [
    true_score(r, text, ended)
    for r, (text, ended) in zip(held_out, respond(reference, tokenizer, [prompt_of(r) for r in held_out], 48))
]
best = RULES["right"] + RULES["ended"] + RULES["names_person"]
print(f"the labeler's best score: {best}")
print(
    f"SFT, greedy replies to the {len(held_out)} held-out questions: mean {sum(greedy) / len(greedy):.2f}, "
    f"{sum(s == best for s in greedy) / len(greedy):.0%} of them at the best score"
)
print("  most common scores:", dict(Counter(greedy).most_common(4)))
print(f"SFT, sampled replies (temperature 1) the pairs were made of: mean {reward_metrics['sample_true_score']:.2f}")
# --8<-- [end:ceiling]
if not quick:
    assert sum(greedy) / len(greedy) > reward_metrics["sample_true_score"]
