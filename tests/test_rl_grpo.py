"""GRPO: rule-based rewards, advantages equal to trl's own, a tiny trl run that returns our GPT."""

from __future__ import annotations

import pytest
import torch

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.rl.grpo import (
    GRPOSettings,
    accuracy,
    as_prompts,
    correctness,
    correctness_reward,
    direct_answers,
    format_reward,
    formatting,
    group_advantages,
    sums_model,
    to_policy,
    train_grpo,
    train_grpo_trl,
)
from llmkb.sft.data import reasoning, worked_addition
from llmkb.sft.masking import _char_tokenizer
from llmkb.tokenizer.hf import CHATML_TEMPLATE

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def tok():
    return _char_tokenizer(CHATML_TEMPLATE)


def tiny_gpt(tok, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(vocab_size=len(tok), context=256, d_model=32, n_layer=2, n_head=2, n_kv_head=1, d_ff=64))


def test_worked_additions_score_one_on_both_rewards():
    pairs = [(47, 85), (312, 45), (999, 1), (10, 20), (5, 7)]
    texts = [worked_addition(a, b) for a, b in pairs]
    assert correctness_reward(texts, [str(a + b) for a, b in pairs]) == [1.0] * 5
    assert format_reward(texts) == [1.0] * 5
    records = reasoning(seed=1, digits=3, n=20)  # the SFT data's own answers
    texts = [r["messages"][-1]["content"] for r in records]
    assert correctness_reward(texts, [r["meta"]["answer"] for r in records]) == [1.0] * 20
    assert format_reward(texts) == [1.0] * 20


def test_rewards_on_wrong_and_badly_formatted_answers():
    right = worked_addition(47, 85)
    wrong_digit = right.replace("Answer: 132", "Answer: 122")
    cases = {  # text: (correct, formatted)
        right: (1.0, 1.0),
        wrong_digit: (0.0, 1.0),  # right format, wrong answer
        "Answer: 132": (1.0, 0.0),  # right answer, no worked steps
        "It is 132.": (1.0, 0.0),  # extract_answer falls back to the first number
        right + "\nThanks!": (1.0, 0.0),  # extract_answer reads the "Answer:" line; the format wants it last
        right.replace("Answer: 132", "Answer: 132 apples"): (0.0, 0.0),
        "": (0.0, 0.0),
    }
    texts = list(cases)
    assert correctness_reward(texts, ["132"] * len(texts)) == [c for c, _ in cases.values()]
    assert format_reward(texts) == [f for _, f in cases.values()]
    # trl's calling convention: conversational completions, dataset columns as keyword arguments
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    kwargs = {
        "prompts": [[{"role": "user", "content": "What is 47 + 85?"}]] * len(texts),
        "completions": completions,
        "completion_ids": [[0]] * len(texts),
        "answer": ["132"] * len(texts),
        "trainer_state": None,
    }
    assert correctness(**kwargs) == correctness_reward(texts, ["132"] * len(texts))
    assert formatting(**kwargs) == format_reward(texts)


def test_group_advantages_equal_trls_own(tok, tmp_path):
    """Our advantages vs. those trl's GRPOTrainer computes inside ``_generate_and_score_completions``.

    A real GRPOTrainer (tiny model, 3 prompts x 4 generations) samples completions and scores them with
    two reward functions that return fixed, recorded rewards (one group all equal: std 0). The advantages
    in its output, for each ``scale_rewards`` option, must equal ``group_advantages`` of the summed rewards.
    """
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    G, n_prompts = 4, 3
    gen = torch.Generator().manual_seed(0)
    r1 = torch.rand(G * n_prompts, generator=gen).tolist()
    r1[G : 2 * G] = [0.5] * G  # the second group: all the same reward
    r2 = torch.randint(0, 2, (G * n_prompts,), generator=gen).float().tolist()
    r2[G : 2 * G] = [1.0] * G

    def first(prompts, completions, **kwargs):
        return r1

    def second(prompts, completions, **kwargs):
        return r2

    rows = as_prompts(reasoning(seed=0, digits=2, n=n_prompts))
    hf = to_policy(tiny_gpt(tok), tok)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        num_generations=G,
        per_device_train_batch_size=G * n_prompts,
        max_completion_length=4,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=hf,
        args=args,
        processing_class=tok,
        reward_funcs=[first, second],
        train_dataset=datasets.Dataset.from_list(rows),
    )
    assert set(trainer.eos_token_ids) == {tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")}
    trainer.model.train()  # train mode: trl groups by num_generations (eval mode uses num_generations_eval)
    inputs = [row for row in rows for _ in range(G)]  # trl's sampler: each prompt G times in a row
    summed = torch.tensor(r1) + torch.tensor(r2)
    for scale in ("group", "batch", "none"):
        trainer.scale_rewards = scale
        theirs = trainer._generate_and_score_completions(inputs)["advantages"]
        ours = group_advantages(summed, G, scale)
        assert (ours - theirs).abs().max().item() < 1e-6, scale
    assert (theirs[G : 2 * G] == 0).all() and ours.abs().max() > 0.1  # a tie teaches nothing; the others do


def test_train_grpo_trl_updates_our_gpt_and_logs_rewards(tok):
    model = tiny_gpt(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    records = reasoning(seed=0, digits=2, n=4)

    def digits(prompts, completions, **kwargs):  # a reward a random model's samples differ on
        return [sum(ch.isdigit() for ch in c[-1]["content"]) / 4 for c in completions]

    # beta > 0: trl computes the KL to a reference copy, which train_grpo_trl must hand it as a folder
    settings = GRPOSettings(
        group_size=4,
        prompts_per_step=2,
        max_new_tokens=12,
        lr=1e-2,
        max_steps=2,
        beta=0.01,
        device="cpu",
        progress=False,
    )
    trained, log = train_grpo_trl(model, tok, records, settings, reward_funcs=[digits, correctness])
    assert isinstance(trained, GPT)
    assert any(not torch.equal(before[k], v) for k, v in trained.state_dict().items())
    assert [row["step"] for row in log] == [1, 2]
    assert all(row["reward"] >= 0 and row["correctness"] == 0 and "kl" in row for row in log)
    assert 0 <= accuracy(trained, tok, records[:2], max_new_tokens=8) <= 1


def test_a_reward_function_that_raises_or_returns_nan_stops_training(tok):
    records = reasoning(seed=0, digits=2, n=2)
    settings = GRPOSettings(
        group_size=2, prompts_per_step=2, max_new_tokens=6, max_steps=1, device="cpu", progress=False
    )

    def broken(prompts, completions, **kwargs):
        raise KeyError("answer")

    def half_nan(prompts, completions, **kwargs):
        return [float("nan") if i % 2 else 1.0 for i in range(len(completions))]

    def short(prompts, completions, **kwargs):
        return [1.0]

    for trainer in (train_grpo_trl, train_grpo):
        with pytest.raises(RuntimeError, match="reward function broken raised KeyError"):
            trainer(tiny_gpt(tok), tok, records, settings, reward_funcs=[broken])
        with pytest.raises(ValueError, match="reward function half_nan gave nan for completion 1"):
            trainer(tiny_gpt(tok), tok, records, settings, reward_funcs=[half_nan])
        with pytest.raises(ValueError, match="reward function short returned 1 rewards for 4 completions"):
            trainer(tiny_gpt(tok), tok, records, settings, reward_funcs=[short])


def test_sampled_accuracy_and_direct_answers(tok):
    model = tiny_gpt(tok)
    records = reasoning(seed=0, digits=2, n=3)
    assert 0 <= accuracy(model, tok, records, max_new_tokens=4, samples=2, seed=1) <= 1
    direct = direct_answers(records)
    assert [r["messages"][-1]["content"] for r in direct] == [f"Answer: {r['meta']['answer']}" for r in records]
    assert records[0]["messages"][-1]["content"].count("\n") >= 1  # the originals keep their steps
    assert sums_model(len(tok)).config.n_layer == 2


def test_our_grpo_loss_and_gradient_equal_trls_on_one_fixed_batch(tok, tmp_path):
    """THE KEY TEST for the loop written out: trl's own ``_compute_loss`` on a fixed batch (two prompts x two
    answers of different lengths, old log-probs from another policy so that some ratios are clipped, a KL term
    to a third model, temperature 0.7) against :func:`grpo_loss` on :func:`token_logprobs`; loss and every
    parameter's gradient within 1e-5."""
    import copy

    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from llmkb.inference.chat import render
    from llmkb.model.hf import HF_PREFIX
    from llmkb.rl.grpo import grpo_loss
    from llmkb.rl.ppo import token_logprobs
    from llmkb.sft.masking import IGNORE
    from llmkb.tokenizer.ids import encode

    def noisy(model, seed):
        other = copy.deepcopy(model)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        return other

    temperature, beta, G = 0.7, 0.04, 2
    policy = tiny_gpt(tok)
    sampler, reference = noisy(policy, 1), noisy(policy, 2)
    rows = as_prompts(reasoning(seed=0, digits=2, n=2))
    prompt_ids = [encode(tok, render(tok, r["prompt"]))[0].tolist() for r in rows for _ in range(G)]
    assert len({len(p) for p in prompt_ids}) == 1  # same length: no left padding, positions agree
    answers = ["Ones: 4 + 5 = 9.", "Answer: 79", "Tens: 1 + 2 = 3.\nAnswer: 39", "7"]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    completions = [tok.encode(a, add_special_tokens=False) + [end] for a in answers]
    C = max(map(len, completions))
    completion_ids = torch.tensor([c + [tok.pad_token_id] * (C - len(c)) for c in completions])
    completion_mask = torch.tensor([[1] * len(c) + [0] * (C - len(c)) for c in completions])
    prompt = torch.tensor(prompt_ids)
    ids = torch.cat([prompt, completion_ids], dim=1)
    labels = ids.clone()
    labels[:, : prompt.shape[1]] = IGNORE
    labels[:, prompt.shape[1] :][completion_mask == 0] = IGNORE
    advantages = torch.tensor([0.9, -0.9, 1.2, -1.2])
    P = prompt.shape[1]
    with torch.no_grad():
        old = token_logprobs(sampler, ids, labels, temperature=temperature)
        ref = token_logprobs(reference, ids, labels, temperature=temperature)

    # ours
    mask = labels[:, 1:] != IGNORE
    logp = token_logprobs(policy, ids, labels, temperature=temperature)
    ours, stats = grpo_loss(logp, old, advantages, mask, beta=beta, ref_logp=ref)
    policy.zero_grad()
    ours.backward()
    assert 0 < stats["clipfrac"] < 1 and stats["kl"] > 0  # the batch exercises both clip and KL

    # trl's, on the HF copy of the same policy
    hf = to_policy(policy, tok)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        num_generations=G,
        per_device_train_batch_size=2 * G,
        max_completion_length=C,
        temperature=temperature,
        beta=beta,
        report_to="none",
        use_cpu=True,
        bf16=False,  # trl's default is bf16 autocast, on the CPU too
        save_strategy="no",
    )
    hf.save_pretrained(tmp_path / "reference")  # trl loads its reference copy from the model's folder
    hf.config._name_or_path = str(tmp_path / "reference")
    trainer = GRPOTrainer(
        model=hf,
        args=args,
        processing_class=tok,
        reward_funcs=[correctness],
        train_dataset=datasets.Dataset.from_list(rows),
    )
    assert trainer.loss_type == "dapo"  # trl 1.16's default: the one grpo_loss implements
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    inputs = {
        "prompt_ids": prompt,
        "prompt_mask": torch.ones_like(prompt),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": advantages,
        "old_per_token_logps": old[:, P - 1 :],  # position P-1 predicts the first answer token
        "ref_per_token_logps": ref[:, P - 1 :],
        "num_items_in_batch": completion_mask.sum(),
    }
    theirs = trainer._compute_loss(trainer.model, inputs)
    trainer.model.zero_grad()
    theirs.backward()
    hf_params = dict(trainer.model.named_parameters())
    gaps = {
        name: (p.grad - hf_params[name if name.startswith("lm_head.") else HF_PREFIX + name].grad).abs().max().item()
        for name, p in policy.named_parameters()
    }
    print(f"loss: ours {ours.item():.7f} trl {theirs.item():.7f}; largest gradient gap {max(gaps.values()):.1e}")
    assert abs(ours.item() - theirs.item()) < 1e-5
    assert max(gaps.values()) < 1e-5, gaps


def digit_share(prompts, completions, **kwargs):
    """A reward a random model's samples differ on: the share of the reply's characters that are digits."""
    return [sum(ch.isdigit() for ch in c[-1]["content"]) / max(1, len(c[-1]["content"])) for c in completions]


def test_our_grpo_loop_raises_a_known_reward(tok):
    records = reasoning(seed=0, digits=2, n=8)
    settings = GRPOSettings(
        group_size=8, prompts_per_step=4, max_new_tokens=8, lr=3e-3, max_steps=30, device="cpu", progress=False
    )
    trained, log = train_grpo(tiny_gpt(tok), tok, records, settings, reward_funcs=[digit_share])
    assert isinstance(trained, GPT) and [row["step"] for row in log] == list(range(1, 31))
    first, last = (sum(row["reward"] for row in rows) / len(rows) for rows in (log[:5], log[-5:]))
    print(f"digit share of sampled replies: first 5 steps {first:.3f}, last 5 {last:.3f}")
    assert last > first + 0.1
    assert {"loss", "reward_std", "digit_share", "zero_advantage_groups", "completion_length", "clipfrac"} <= set(
        log[0]
    )


def test_groups_with_equal_rewards_teach_nothing_and_are_counted(tok):
    model = tiny_gpt(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def constant(prompts, completions, **kwargs):
        return [1.0] * len(completions)

    settings = GRPOSettings(
        group_size=4, prompts_per_step=2, max_new_tokens=6, max_steps=2, device="cpu", progress=False
    )
    trained, log = train_grpo(model, tok, reasoning(seed=0, digits=2, n=2), settings, reward_funcs=[constant])
    assert [row["zero_advantage_groups"] for row in log] == [2, 2] and all(row["loss"] == 0 for row in log)
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())  # no division by zero, no step


def test_our_grpo_loop_keeps_a_kl_to_the_reference(tok):
    settings = GRPOSettings(
        group_size=4, prompts_per_step=2, max_new_tokens=8, lr=1e-2, max_steps=3, beta=0.1, device="cpu", progress=False
    )
    _, log = train_grpo(tiny_gpt(tok), tok, reasoning(seed=0, digits=2, n=4), settings, reward_funcs=[digit_share])
    assert log[0]["kl"] == 0 and log[-1]["kl"] > 0  # the first step starts at the reference itself
