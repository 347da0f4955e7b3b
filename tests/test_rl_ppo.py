"""PPO (ours): GAE and the clipped losses against hand computations, exact rollouts, a policy that learns a reward."""

from __future__ import annotations

import random

import pytest
import torch

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.rl.ppo import PPOConfig, gae, policy_loss, rollout, token_logprobs, train_ppo, value_loss, whiten
from llmkb.rl.reward import RewardModel
from llmkb.sft.data import build_splits
from llmkb.sft.masking import IGNORE, _char_tokenizer, collate
from llmkb.tokenizer.hf import CHATML_TEMPLATE
from llmkb.world import make_entities


@pytest.fixture(scope="module")
def tokenizer():
    return _char_tokenizer(CHATML_TEMPLATE)


@pytest.fixture(scope="module")
def records():
    entities, _ = make_entities(random.Random(0))
    return build_splits(
        {"entities": entities},
        seed=0,
        sizes={"instruction": 16, "conversation": 0, "text_generation": 0, "code": 0, "reasoning": 0, "reading": 0},
    )["train"]


def tiny_gpt(tokenizer, seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(
        ModelConfig(vocab_size=len(tokenizer), context=256, d_model=32, n_layer=2, n_head=2, n_kv_head=1, d_ff=64)
    )


def test_gae_matches_the_textbook_sums():
    torch.manual_seed(0)
    rewards, values = torch.randn(2, 6), torch.randn(2, 6)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)  # prompt, reply, padding
    gamma, lam = 0.9, 0.8
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    for row in range(2):
        steps = mask[row].nonzero().flatten().tolist()
        for i, t in enumerate(steps):
            # A_t = sum_l (gamma lam)^l delta_{t+l}, with V after the last reply token = 0
            expected = 0.0
            for j, u in enumerate(steps[i:]):
                next_v = values[row, steps[i + j + 1]] if i + j + 1 < len(steps) else 0.0
                expected += (gamma * lam) ** j * (rewards[row, u] + gamma * next_v - values[row, u])
            assert advantages[row, t].item() == pytest.approx(float(expected), abs=1e-5)
        assert (advantages[row][~mask[row]] == 0).all()
    assert torch.allclose(returns, (advantages + values) * mask)


def test_clipped_losses():
    mask = torch.ones(1, 4, dtype=torch.bool)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    old = torch.zeros(1, 4)
    loss, clipfrac = policy_loss(old.clone(), old, adv, mask, clip=0.2)
    assert loss.item() == pytest.approx(0.0) and clipfrac.item() == 0  # ratio 1: -mean(A) = 0
    new = torch.log(torch.tensor([[2.0, 2.0, 0.5, 0.5]]))  # ratios 2, 2, 0.5, 0.5
    loss, clipfrac = policy_loss(new, old, adv, mask, clip=0.2)
    # per token: -min(rA, clip(r)A): A=1,r=2 -> -1.2; A=-1,r=2 -> 2; A=1,r=.5 -> -.5; A=-1,r=.5 -> .8
    assert loss.item() == pytest.approx((-1.2 + 2 - 0.5 + 0.8) / 4)
    assert clipfrac.item() == pytest.approx(0.5)
    v = value_loss(
        torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.ones(1, 1, dtype=torch.bool), 0.2
    )
    assert v.item() == pytest.approx(0.5 * 0.8**2)  # the clipped prediction (0.2) is the worse one
    w = whiten(torch.tensor([[1.0, 2.0, 3.0, 99.0]]), torch.tensor([[True, True, True, False]]))
    assert w[0, :3].mean().item() == pytest.approx(0, abs=1e-6) and w[0, 3] == 0


def test_rollout_labels_are_the_sampled_tokens(tokenizer, records):
    from llmkb.inference.chat import replies_with_ids
    from llmkb.sft.evaluate import prompt_of

    policy = tiny_gpt(tokenizer)
    prompts = [prompt_of(r) for r in records[:4]]
    config = PPOConfig(max_new_tokens=12, temperature=1.0)
    encoded, replies = rollout(policy, tokenizer, prompts, config, seed=5)
    again = replies_with_ids(policy, tokenizer, prompts, 12, temperature=1.0, seed=5)
    for row, r, (text, _) in zip(encoded, again, replies):
        assert row["input_ids"] == r["prompt_ids"] + r["reply_ids"]
        assert [t for t in row["labels"] if t != IGNORE] == r["reply_ids"] and text == r["text"]
    ids, labels, _ = collate(encoded, tokenizer.pad_token_id)
    logp = token_logprobs(policy, ids, labels)
    assert (logp[labels[:, 1:] == IGNORE] == 0).all() and (logp[labels[:, 1:] != IGNORE] < 0).all()


class LikesLetterE(RewardModel):
    """A known reward: the share of reply characters that are "e" (what PPO should learn to raise)."""

    def __init__(self, sft, tokenizer):
        super().__init__(sft)
        self.e = tokenizer.convert_tokens_to_ids("e")
        self.im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")

    def forward(self, input_ids, attention_mask):
        scores = []
        for row, mask in zip(input_ids, attention_mask):
            row = row[mask.bool()].tolist()
            reply = row[len(row) - 1 - row[::-1].index(self.im_start) + 11 :]  # after "<|im_start|>assistant\n"
            scores.append(sum(t == self.e for t in reply) / max(1, len(reply)))
        return torch.tensor(scores)


def test_ppo_raises_a_known_reward_and_logs_kl(tokenizer, records):
    policy = tiny_gpt(tokenizer)
    reward = LikesLetterE(tiny_gpt(tokenizer, seed=1), tokenizer)
    # The reward takes off somewhere between iterations 10 and 20, later or earlier with the CPU's float
    # results (seeds 0-4 here: all at 0.99-1.0 by iteration 30): 40 iterations put the end on the plateau.
    config = PPOConfig(
        iterations=40,
        batch_size=16,
        minibatch_size=8,
        lr=1e-2,
        critic_lr=1e-3,
        kl_coef=0.0,
        max_new_tokens=16,
        progress=False,
    )
    trained, log = train_ppo(policy, reward, tokenizer, records, config, true_score=lambda r, t, e: float(t.count("e")))
    assert log[0]["kl"] == 0  # the first rollout comes from the reference itself
    first, last = sum(r["reward"] for r in log[:3]) / 3, sum(r["reward"] for r in log[-3:]) / 3
    assert last > first + 0.2, [r["reward"] for r in log]
    assert log[-1]["kl"] > 0 and {"true_score", "entropy", "clipfrac", "sample"} <= set(log[-1])


def test_kl_guard_stops_early_and_errors(tokenizer, records):
    policy = tiny_gpt(tokenizer)
    reward = LikesLetterE(tiny_gpt(tokenizer, seed=1), tokenizer)
    config = PPOConfig(
        iterations=30,
        batch_size=8,
        minibatch_size=8,
        lr=3e-3,
        kl_coef=0.0,
        stop_kl=0.5,
        max_new_tokens=16,
        progress=False,
    )
    _, log = train_ppo(policy, reward, tokenizer, records, config)
    assert len(log) < 30 and log[-1]["kl"] > 0.5 >= max(r["kl"] for r in log[:-1])
    with pytest.raises(ValueError, match="no questions"):
        train_ppo(policy, reward, tokenizer, [], config)
