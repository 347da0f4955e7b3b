"""An SFT policy + a reward model -> a policy tuned by PPO to score higher, held near the SFT model by a KL penalty.

In: the SFT model (the policy to train, and a frozen copy of it as the reference), a reward model
(:mod:`llmkb.rl.reward`, frozen), questions, and a :class:`PPOConfig`. Out: :func:`train_ppo`
returns the tuned policy and a log with, per iteration, the reward model's score, the scripted
labeler's true score (:func:`llmkb.rl.preferences.true_score`), the KL to the reference, the
policy's entropy and the reply length. trl dropped its PPO trainer in 1.13; this one is ours.

One iteration, as in InstructGPT (Ouyang et al., 2022) and the "N implementation details of
RLHF" write-ups:

1. **rollout**: the policy samples a reply to each of ``batch_size`` questions;
2. **score**: the reward model scores each whole reply (one number at its last token); every
   reply token also pays ``kl_coef * (log p_policy - log p_reference)``, a per-token estimate of
   the KL divergence to the SFT model: the leash that stops the policy from wandering off to
   text the reward model was never trained on;
3. **advantages**: a critic (value model, initialised from the reward model) predicts the return
   at each token; generalised advantage estimation (GAE) turns rewards and values into how much
   better each token did than expected;
4. **update**: a few epochs over the batch with the clipped surrogate objective: the probability
   ratio of new to old policy is clipped to ``1 +- clip``, so one batch cannot move the policy far;
   the critic regresses on the returns.
"""

from __future__ import annotations

import copy
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from llmkb.device import pick_device
from llmkb.inference.chat import replies_with_ids
from llmkb.model.gpt import GPT
from llmkb.rl.config import PPOConfig
from llmkb.sft.evaluate import prompt_of
from llmkb.sft.masking import IGNORE, collate
from llmkb.training import stop_if_not_finite


class Critic(nn.Module):
    """A value model: a GPT backbone and a scalar head that predicts, at every position, the return to come."""

    def __init__(self, backbone: GPT, head: nn.Linear):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.hidden_states(idx)).squeeze(-1)  # (B, T)


def token_logprobs(
    model: GPT, ids: torch.Tensor, labels: torch.Tensor, with_entropy: bool = False, temperature: float = 1.0
):
    """log p(token t+1 | tokens <= t) at every position ``(B, T-1)`` (0 where ``labels`` is -100), optionally
    the entropy. ``temperature`` divides the logits first: the probabilities the tokens were sampled with."""
    logits = model(ids[:, :-1])[0].float() / temperature  # (B, T-1, V)
    targets = labels[:, 1:]
    logp_all = F.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (targets != IGNORE)
    if not with_entropy:
        return logp
    return logp, -(logp_all.exp() * logp_all).sum(-1)  # entropy of each next-token distribution


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` where ``mask`` is true.

    >>> masked_mean(torch.tensor([1.0, 2.0, 9.0]), torch.tensor([True, True, False])).item()
    1.5
    """
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` shifted and scaled to mean 0, variance 1 over the masked entries (the others stay 0)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimates and returns ``(B, T)`` over each row's masked (reply) positions.

    ``delta_t = r_t + gamma V_{t+1} - V_t`` and ``A_t = delta_t + gamma lam A_{t+1}``, walking back
    from the last reply token (whose next value is 0: the episode ends). Returns = A + V.

    Examples:
        >>> r = torch.tensor([[0.0, 0.0, 1.0]]); v = torch.zeros(1, 3); m = torch.ones(1, 3, dtype=torch.bool)
        >>> gae(r, v, m, gamma=1.0, lam=1.0)[0].tolist()  # with V = 0 every token's advantage is the final reward
        [[1.0, 1.0, 1.0]]
    """
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros(rewards.shape[0], device=rewards.device)
    next_advantage = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t].float()
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = (delta + gamma * lam * next_advantage) * m
        next_value = values[:, t] * m + next_value * (1 - m)  # padding passes the next real value through
        next_advantage = advantages[:, t] * m + next_advantage * (1 - m)
    return advantages, advantages + values * mask


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float):
    """PPO's clipped surrogate: ``-min(ratio A, clip(ratio, 1-c, 1+c) A)``, averaged over reply tokens; and the
    clip fraction."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float):
    """Half the squared error to the returns, the worse of clipped and unclipped (as in PPO's reference code)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def rollout(
    policy: GPT, tokenizer, prompts: list[list[dict]], config: PPOConfig, seed: int
) -> tuple[list[dict], list[tuple[str, bool]]]:
    """Sample one reply per prompt: ``{input_ids, labels}`` per row (labels on the sampled tokens) and its text.

    The ids are the very tokens the policy sampled (with its end token, if it stopped): PPO's
    ratios must be probabilities of what was actually drawn, not of a re-tokenized text.
    """
    replies = replies_with_ids(
        policy, tokenizer, prompts, config.max_new_tokens, temperature=config.temperature, seed=seed
    )
    encoded = [
        {"input_ids": r["prompt_ids"] + r["reply_ids"], "labels": [IGNORE] * len(r["prompt_ids"]) + r["reply_ids"]}
        for r in replies
    ]
    return encoded, [(r["text"], r["ended"]) for r in replies]


def train_ppo(
    policy: GPT, reward_model, tokenizer, records: list[dict], config: PPOConfig, true_score=None
) -> tuple[GPT, list[dict]]:
    """PPO on ``records``' questions; ``true_score(record, text, ended)`` is logged beside the reward model's score."""
    if not records:
        raise ValueError("no questions to run PPO on")
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    policy = policy.to(device).train()
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    reward_model = reward_model.to(device).eval().requires_grad_(False)
    critic = Critic(copy.deepcopy(reward_model.backbone), copy.deepcopy(reward_model.score)).to(device).train()
    critic.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": policy.parameters(), "lr": config.lr}, {"params": critic.parameters(), "lr": config.critic_lr}],
        weight_decay=0.0,
    )
    pad_id = tokenizer.pad_token_id
    rng = random.Random(f"ppo:{config.seed}")
    log: list[dict] = []
    bar = tqdm(range(config.iterations), desc=f"ppo (kl {config.kl_coef})", unit="it", disable=not config.progress)
    for it in bar:
        batch = [records[rng.randrange(len(records))] for _ in range(config.batch_size)]
        policy.eval()
        encoded, replies = rollout(
            policy, tokenizer, [prompt_of(r) for r in batch], config, seed=config.seed * 100_003 + it
        )
        policy.train()
        ids, labels, attention = (t.to(device) for t in collate(encoded, pad_id))
        mask = labels[:, 1:] != IGNORE  # (B, T-1): positions whose next token is a reply token
        with torch.no_grad():
            old_logp, entropy = token_logprobs(policy, ids, labels, with_entropy=True)
            ref_logp = token_logprobs(reference, ids, labels)
            old_values = critic(ids)[:, :-1] * mask
            scores = reward_model(ids, attention)  # (B,)
            kl = (old_logp - ref_logp) * mask  # per-token KL estimate
            rewards = -config.kl_coef * kl
            last = mask.float().cumsum(1).argmax(1)  # index of each row's last reply position
            rewards[torch.arange(len(batch)), last] += scores
            advantages, returns = gae(rewards, old_values, mask, config.gamma, config.lam)
            advantages = whiten(advantages, mask)
        stats = {"pg_loss": 0.0, "vf_loss": 0.0, "clipfrac": 0.0}
        updates = 0
        for _ in range(config.ppo_epochs):
            order = torch.randperm(len(batch), generator=torch.Generator().manual_seed(config.seed + it)).tolist()
            for start in range(0, len(batch), config.minibatch_size):
                rows = order[start : start + config.minibatch_size]
                logp = token_logprobs(policy, ids[rows], labels[rows])
                pg, clipfrac = policy_loss(logp, old_logp[rows], advantages[rows], mask[rows], config.clip)
                vf = value_loss(
                    critic(ids[rows])[:, :-1], old_values[rows], returns[rows], mask[rows], config.value_clip
                )
                loss = pg + vf
                stop_if_not_finite(loss.item(), f"PPO iteration {it}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(policy.parameters()) + list(critic.parameters()), 1.0)
                optimizer.step()
                stats = {
                    "pg_loss": stats["pg_loss"] + pg.item(),
                    "vf_loss": stats["vf_loss"] + vf.item(),
                    "clipfrac": stats["clipfrac"] + clipfrac.item(),
                }
                updates += 1
        record = {
            "iteration": it,
            "reward": round(scores.mean().item(), 4),
            "kl": round((kl.sum(1)).mean().item(), 4),  # summed over a reply's tokens, averaged over replies
            "entropy": round(masked_mean(entropy, mask).item(), 4),
            "length": round(mask.sum(1).float().mean().item(), 2),
            **{k: round(v / updates, 4) for k, v in stats.items()},
            "sample": replies[0][0],
        }
        if true_score is not None:
            record["true_score"] = round(
                sum(true_score(r, t, e) for r, (t, e) in zip(batch, replies, strict=True)) / len(batch), 4
            )
        log.append(record)
        bar.set_postfix(reward=record["reward"], kl=record["kl"], true=record.get("true_score"))
        if config.stop_kl and record["kl"] > config.stop_kl:
            break  # early stopping: the policy has moved as far from the SFT model as we allow
    bar.close()
    return policy.eval(), log
