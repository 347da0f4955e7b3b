"""Prompts with checkable answers + a policy -> rule-based rewards, group-relative advantages, a GRPO-trained policy.

In: a chat model that answers "What is 47 + 85?" by column addition ending ``Answer: 132`` (the
``grpo`` stage trains a small one on sums only, :func:`sums_model`), its tokenizer, ``reasoning``
records (:func:`llmkb.sft.data.reasoning`) and :class:`GRPOSettings`.
Out: :func:`correctness_reward` and :func:`format_reward` (a list of floats per list of replies),
:func:`group_advantages` (what trl's ``GRPOTrainer`` computes from them), :func:`grpo_loss` and
:func:`train_grpo` (GRPO written out: the trained GPT and a log of rewards per step),
:func:`train_grpo_trl` (the same through trl's ``GRPOTrainer``, the reference the tests compare
with), :func:`accuracy` (share of right answers, greedy or sampled), :func:`direct_answers` (the
same sums answered without the steps) and :func:`calculator_answers` (the same sums handed to a
calculator tool, :mod:`llmkb.sft.tools`), scored by :func:`tool_accuracy`.

GRPO (Group Relative Policy Optimization, DeepSeekMath; used for DeepSeek-R1) is policy-gradient RL
without a value network. For each prompt it samples a group of G answers, scores each with the
reward, and uses as advantage the reward minus the group's mean, divided by the group's standard
deviation: an answer is pushed up when it beats its siblings and down when it trails them. The
group's mean plays the baseline that PPO learns with a critic, so nothing but the policy is
trained (and an optional KL term, weight ``beta``, keeps it near the SFT model). A group whose
answers all score the same gives zero advantages: it teaches nothing. DeepSeek-R1's rewards were
rules, not a learned reward model: correctness (is the final answer right?) and format (is the
reasoning written where it should be?). Rules cannot be fooled the way a reward model can, which
is why RL works best where answers can be checked: sums, code with tests.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import random
import re
import tempfile

import torch
from tqdm.auto import tqdm

from llmkb.device import pick_device
from llmkb.evaluate.tasks import extract_answer, normalize
from llmkb.inference.chat import replies_per_prompt, replies_with_ids
from llmkb.model.gpt import GPT
from llmkb.rl.config import GRPOSettings
from llmkb.rl.ppo import masked_mean, policy_loss, token_logprobs
from llmkb.sft.evaluate import prompt_of
from llmkb.sft.masking import IGNORE, collate
from llmkb.training import stop_if_not_finite

# The shape of llmkb.sft.data.worked_addition: column steps ("Tens: 4 + 8 + 1 = 13, write 3, carry 1."),
# an optional "The carry 1 goes in front.", then the answer line.
STEP = re.compile(r"[A-Z][a-z]+: \d+ \+ \d+(?: \+ \d+)? = \d+(?:, write \d+, carry \d+)?\.")
CARRY = re.compile(r"The carry \d+ goes in front\.")
ANSWER_LINE = re.compile(r"Answer: -?\d+")
EPS = 1e-4  # trl adds this to the standard deviation, so a group of equal rewards divides 0 by 1e-4, not by 0


# --------------------------------------------------------------------------- rewards


def correctness_reward(completions: list[str], answers: list[str]) -> list[float]:
    """1.0 where the answer extracted from the reply (after the last ``Answer:``) is the right one, else 0.0.

    The same rule as :func:`llmkb.sft.data.check_answer` for sums.

    Examples:
        >>> correctness_reward(["Ones: 2 + 5 = 7.\\nAnswer: 7", "Answer: 8", "seven"], ["7", "7", "7"])
        [1.0, 0.0, 0.0]
    """
    return [float(normalize(extract_answer(c)) == normalize(str(a))) for c, a in zip(completions, answers, strict=True)]


def format_reward(completions: list[str]) -> list[float]:
    """1.0 where the reply is worked steps then the answer, else 0.0; right or wrong digits alike.

    Precisely (outer whitespace ignored): two lines or more; the first a column step
    (``Ones: 7 + 5 = 12, write 2, carry 1.``), the following ones column steps or the final carry
    (``The carry 1 goes in front.``), and the last one exactly ``Answer: <integer>``.

    Examples:
        >>> format_reward(["Ones: 7 + 5 = 12, write 2, carry 1.\\nTens: 4 + 8 + 1 = 13, write 3, carry 1.\\n"
        ...                "The carry 1 goes in front.\\nAnswer: 132",
        ...                "Ones: 2 + 5 = 9.\\nAnswer: 1",   # wrong sums, right format
        ...                "Answer: 7",                      # no steps
        ...                "Ones: 2 + 5 = 7.\\nAnswer: 7.",  # not an integer
        ...                "Ones: 2 + 5 = 7.\\nAnswer: 7\\nBye"])
        [1.0, 1.0, 0.0, 0.0, 0.0]
    """
    rewards = []
    for text in completions:
        lines = text.strip().split("\n")
        steps_ok = all(STEP.fullmatch(line) or CARRY.fullmatch(line) for line in lines[1:-1])
        ok = len(lines) >= 2 and STEP.fullmatch(lines[0]) and steps_ok and ANSWER_LINE.fullmatch(lines[-1])
        rewards.append(float(bool(ok)))
    return rewards


def _text(completion) -> str:
    """A trl completion as text: conversational ones are ``[{"role": "assistant", "content": ...}]``."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


# The reward functions trl's GRPOTrainer calls: keyword arguments prompts, completions, completion_ids,
# every other dataset column (here "answer", one per completion) and trainer_state, log_extra, log_metric.
# Their __name__ labels the log ("rewards/correctness/mean", "rewards/formatting/mean").
def correctness(prompts, completions, answer, **kwargs) -> list[float]:
    """trl's reward-function signature around :func:`correctness_reward`."""
    return correctness_reward([_text(c) for c in completions], answer)


def formatting(prompts, completions, **kwargs) -> list[float]:
    """trl's reward-function signature around :func:`format_reward`."""
    return format_reward([_text(c) for c in completions])


def checked(func):
    """``func`` (a trl reward function) that fails loudly instead of scoring silently.

    trl treats a None reward as "does not apply" and skips it in the mean, so a reward function that
    breaks on some completions would quietly train on the others. Here an exception names the
    function and is raised again; a result of the wrong length, a None or a NaN names the function,
    the completion's index and its text. ``__name__`` is kept: trl labels its log with it.

    Examples:
        >>> checked(formatting)(prompts=[[]], completions=["Ones: 1 + 1 = 2.\\nAnswer: 2"])
        [1.0]
        >>> checked(lambda completions, **kw: [float("nan")])(completions=["Answer: 4"])
        Traceback (most recent call last):
        ...
        ValueError: reward function <lambda> gave nan for completion 0 ('Answer: 4'); a reward must be a finite number
    """
    name = getattr(func, "__name__", type(func).__name__)

    @functools.wraps(func)
    def wrapper(*args, completions, **kwargs):
        try:
            rewards = func(*args, completions=completions, **kwargs)
        except Exception as e:
            raise RuntimeError(
                f"reward function {name} raised {type(e).__name__}: {e} "
                f"(batch of {len(completions)} completions, the first {_text(completions[0])[:60]!r})"
            ) from e
        if rewards is None or len(rewards) != len(completions):
            raise ValueError(
                f"reward function {name} returned {0 if rewards is None else len(rewards)} rewards for "
                f"{len(completions)} completions"
            )
        for i, r in enumerate(rewards):
            if r is None or not math.isfinite(r):
                raise ValueError(
                    f"reward function {name} gave {r} for completion {i} ({_text(completions[i])[:60]!r}); "
                    "a reward must be a finite number"
                )
        return rewards

    return wrapper


# --------------------------------------------------------------------------- advantages


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool | str = True) -> torch.Tensor:
    """Each reward minus its group's mean, divided by the group's std + 1e-4: trl 1.16's advantages.

    ``rewards`` (N,) holds N / group_size groups, each group's answers side by side (trl repeats each
    prompt ``num_generations`` times in a row). The std is the unbiased one (divides by G - 1, as
    trl's ``nanstd``). ``scale`` is trl's ``scale_rewards``: ``True``/``"group"`` divides by the
    group's std, ``"batch"`` by the std of all N rewards (the mean is still the group's), and
    ``False``/``"none"`` does not divide (Dr. GRPO: the std favours too easy and too hard prompts).
    (trl also skips rewards that are NaN, i.e. reward functions that returned None; ours has none.)

    Examples:
        >>> group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]), 4)  # std 0.5, then 0
        tensor([ 1.4997, -0.4999, -0.4999, -0.4999,  0.0000,  0.0000,  0.0000,  0.0000])
        >>> group_advantages(torch.tensor([1.0, 0.0, 2.0, 2.0]), 2, scale="none")
        tensor([ 0.5000, -0.5000,  0.0000,  0.0000])
    """
    grouped = rewards.view(-1, group_size)
    advantages = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)
    if scale in (True, "group"):
        std = grouped.std(dim=1, keepdim=True).expand_as(grouped).reshape(-1)  # unbiased: / (G - 1)
    elif scale == "batch":
        std = rewards.std()
    elif scale in (False, "none"):
        return advantages
    else:
        raise ValueError(f"scale must be True/'group', 'batch' or False/'none', got {scale!r}")
    return advantages / (std + EPS)


# --------------------------------------------------------------------------- training with trl


def as_prompts(records: list[dict]) -> list[dict]:
    """SFT reasoning records -> trl's conversational prompt rows ``{"prompt": [messages], "answer": "132"}``.

    Examples:
        >>> as_prompts([{"messages": [{"role": "user", "content": "What is 1 + 2?"},
        ...                           {"role": "assistant", "content": "Answer: 3"}], "meta": {"answer": "3"}}])
        [{'prompt': [{'role': 'user', 'content': 'What is 1 + 2?'}], 'answer': '3'}]
    """
    rows = []
    for r in records:
        meta = r["meta"] if isinstance(r["meta"], dict) else json.loads(r["meta"])
        rows.append({"prompt": prompt_of(r), "answer": str(meta["answer"])})
    return rows


def to_policy(model: GPT, tokenizer):
    """The HF copy of ``model`` that trl samples from: its eos is ``<|im_end|>``, where replies end.

    trl stops sampling at the model's ``generation_config.eos_token_id`` and the tokenizer's eos
    (``<|endoftext|>``), both read when the trainer is built (the HF Trainer later resets the
    model's eos to the tokenizer's, too late to matter); the reward then sees the reply without them.
    """
    from llmkb.model.hf import to_hf

    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return to_hf(model, tokenizer.convert_tokens_to_ids("<|endoftext|>"), im_end, tokenizer.pad_token_id)


def train_grpo_trl(
    model: GPT, tokenizer, records: list[dict], settings: GRPOSettings, reward_funcs: list | None = None
) -> tuple[GPT, list[dict]]:
    """GRPO on ``records`` through trl's ``GRPOTrainer`` on the HF copy of ``model``; returns (our GPT, log).

    ``reward_funcs`` defaults to ``[correctness, formatting]`` (summed, as trl does); a test passes others
    because a random model never scores on these, and all-zero rewards give all-zero advantages.
    The log has per step: loss, mean and std of the summed reward, the mean of each reward, the
    KL to the SFT model (when ``beta > 0``) and the mean answer length in tokens.
    """
    import datasets
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from llmkb.model.hf import from_hf

    device = pick_device(settings.device)
    funcs = [checked(f) for f in reward_funcs or [correctness, formatting]]
    hf = to_policy(model, tokenizer)
    if not settings.progress:
        datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        if settings.beta > 0:  # trl loads the frozen reference copy from the model's folder: give it one
            hf.save_pretrained(f"{tmp}/reference")
            hf.config._name_or_path = f"{tmp}/reference"
        args = GRPOConfig(
            output_dir=tmp,
            max_steps=settings.max_steps,
            learning_rate=settings.lr,
            warmup_steps=settings.warmup_steps,
            seed=settings.seed,
            num_generations=settings.group_size,
            max_completion_length=settings.max_new_tokens,
            per_device_train_batch_size=settings.prompts_per_step * settings.group_size,  # counts answers, not prompts
            num_iterations=settings.updates_per_batch,
            temperature=settings.temperature,
            beta=settings.beta,
            scale_rewards="group",
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=not device.startswith("cuda"),
            bf16=device.startswith("cuda"),
            fp16=False,
            use_vllm=False,
            disable_tqdm=not settings.progress,
        )
        trainer = GRPOTrainer(
            model=hf,
            args=args,
            processing_class=tokenizer,
            reward_funcs=funcs,
            train_dataset=datasets.Dataset.from_list(as_prompts(records)),
        )
        trainer.remove_callback(PrinterCallback)  # without a progress bar trl would print every step's logs
        trainer.train()
        trained = trainer.model
    names = [f.__name__ for f in funcs]
    log = []
    for entry in trainer.state.log_history:
        if "reward" not in entry:
            continue  # the end-of-training summary
        row = {
            "step": entry["step"],
            "loss": entry.get("loss"),
            "reward": entry["reward"],
            "reward_std": entry.get("reward_std"),
        }
        row.update({name: entry.get(f"rewards/{name}/mean") for name in names})
        if "kl" in entry:
            row["kl"] = entry["kl"]
        row["completion_length"] = entry.get("completions/mean_length")
        log.append(row)
    return from_hf(trained.float()).eval(), log


# --------------------------------------------------------------------------- GRPO written out


# --8<-- [start:grpo-loss]
def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """GRPO's loss on one batch of answers: PPO's clipped surrogate with one advantage per answer, plus the KL term.

    ``logp``, ``old_logp``, ``ref_logp``, ``mask``: ``(N, T)`` per answer token (the policy now, when
    the answers were sampled, the frozen reference); ``advantages``: ``(N,)`` (:func:`group_advantages`),
    the same for every token of an answer. Per token ``-min(ratio A, clip(ratio, 1 - c, 1 + c) A)``
    (:func:`llmkb.rl.ppo.policy_loss`) plus ``beta`` times the KL estimate
    ``exp(ref - logp) - (ref - logp) - 1`` (never negative), weighted by the same ratio because the
    answers were sampled from the old policy (trl's ``use_bias_correction_kl``); averaged over every
    answer token of the batch, so a long answer weighs more than a short one: trl's default
    ``loss_type="dapo"``. Returns ``(loss, {"clipfrac", "kl"})``, ``kl`` the mean estimate.
    """
    loss, clipfrac = policy_loss(logp, old_logp, advantages[:, None], mask, clip)
    stats = {"clipfrac": clipfrac.item()}
    if beta > 0:
        gap = ref_logp - logp
        kl = torch.exp(gap) - gap - 1
        loss = loss + beta * masked_mean(kl * torch.exp(logp - old_logp), mask)
        stats["kl"] = masked_mean(kl, mask).item()
    return loss, stats
    # --8<-- [end:grpo-loss]


def rewards_of(funcs: list, rows: list[dict], texts: list[str]) -> torch.Tensor:
    """``(len(funcs), N)``: each reward function on the answers ``texts`` to ``rows`` (called as trl calls them)."""
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    prompts = [r["prompt"] for r in rows]
    columns = {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}
    return torch.tensor([f(prompts=prompts, completions=completions, **columns) for f in funcs], dtype=torch.float32)


def linear_schedule(step: int, settings: GRPOSettings) -> float:
    """The learning rate's factor at ``step``: up from 0 over ``warmup_steps``, then down to 0 at ``max_steps``
    (transformers' ``get_linear_schedule_with_warmup``, which trl's trainer uses).

    >>> s = GRPOSettings(max_steps=10, warmup_steps=2)
    >>> print(*(round(linear_schedule(i, s), 3) for i in (0, 1, 2, 6, 10)))
    0.0 0.5 1.0 0.5 0.0
    """
    if step < settings.warmup_steps:
        return step / settings.warmup_steps
    return max(0.0, (settings.max_steps - step) / max(1, settings.max_steps - settings.warmup_steps))


def train_grpo(
    model: GPT,
    tokenizer,
    records: list[dict],
    settings: GRPOSettings,
    reward_funcs: list | None = None,
    evaluate=None,
    eval_every: int = 0,
) -> tuple[GPT, list[dict]]:
    """GRPO on ``records``, our loop: the same steps and defaults as :func:`train_grpo_trl`, written out.

    Each batch: ``prompts_per_step`` prompts, each answered ``group_size`` times by sampling; the
    rewards (summed over ``reward_funcs``) become advantages within each group; then
    ``updates_per_batch`` optimizer steps on :func:`grpo_loss` (AdamW without weight decay, the
    learning rate of :func:`linear_schedule`, gradients clipped to norm 1: the HF Trainer's
    defaults, which trl uses). A group whose answers all score the same teaches nothing (zero advantages,
    no division by zero): the log counts such groups. The log has per step: loss, the mean and std
    of the summed reward, each reward's mean, ``zero_advantage_groups``, the KL to the SFT model
    (when ``beta > 0``), the clipped fraction and the mean answer length in tokens; and, every
    ``eval_every`` steps and after the last, what ``evaluate(policy)`` returns (a dict, e.g. held-out
    accuracy), with the policy in eval mode.
    """
    if not records:
        raise ValueError("no prompts to run GRPO on")
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    funcs = [checked(f) for f in reward_funcs or [correctness, formatting]]
    policy = model.to(device).train()
    reference = copy.deepcopy(policy).eval().requires_grad_(False) if settings.beta > 0 else None
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.lr, weight_decay=0.0)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(linear_schedule, settings=settings))
    rows, G = as_prompts(records), settings.group_size
    rng = random.Random(f"grpo:{settings.seed}")
    log: list[dict] = []
    bar = tqdm(range(settings.max_steps), desc="grpo", unit="step", disable=not settings.progress)
    # --8<-- [start:grpo-step]
    for step in bar:
        if step % settings.updates_per_batch == 0:  # sample a fresh batch of groups
            batch = [row for row in rng.sample(rows, min(settings.prompts_per_step, len(rows))) for _ in range(G)]
            policy.eval()
            replies = replies_with_ids(
                policy,
                tokenizer,
                [r["prompt"] for r in batch],
                settings.max_new_tokens,
                temperature=settings.temperature,
                seed=settings.seed * 100_003 + step,
            )
            policy.train()
            rewards = rewards_of(funcs, batch, [r["text"] for r in replies])  # (funcs, N)
            total = rewards.sum(0)
            advantages = group_advantages(total, G).to(device)
            encoded = [
                {
                    "input_ids": r["prompt_ids"] + r["reply_ids"],
                    "labels": [IGNORE] * len(r["prompt_ids"]) + r["reply_ids"],
                }
                for r in replies
            ]
            ids, labels, _ = (t.to(device) for t in collate(encoded, tokenizer.pad_token_id))
            mask = labels[:, 1:] != IGNORE  # (N, T-1): positions whose next token is an answer token
            with torch.no_grad():
                old_logp = token_logprobs(policy, ids, labels, temperature=settings.temperature)
                ref_logp = (
                    token_logprobs(reference, ids, labels, temperature=settings.temperature) if reference else None
                )
        logp = token_logprobs(policy, ids, labels, temperature=settings.temperature)
        loss, stats = grpo_loss(logp, old_logp, advantages, mask, beta=settings.beta, ref_logp=ref_logp)
        stop_if_not_finite(loss.item(), f"GRPO step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        decay.step()
        # --8<-- [end:grpo-step]
        record = {
            "step": step + 1,
            "loss": round(loss.item(), 6),
            "reward": round(total.mean().item(), 4),
            "reward_std": round(total.std().item(), 4),
            **{f.__name__: round(r.mean().item(), 4) for f, r in zip(funcs, rewards, strict=True)},
            "zero_advantage_groups": int((total.view(-1, G).std(1) == 0).sum()),
            "completion_length": round(mask.sum(1).float().mean().item(), 2),
            **{k: round(v, 6) for k, v in stats.items()},
        }
        if evaluate is not None and ((eval_every and (step + 1) % eval_every == 0) or step + 1 == settings.max_steps):
            record.update(evaluate(policy.eval()))
            policy.train()
        log.append(record)
        bar.set_postfix(reward=record["reward"], length=record["completion_length"])
    bar.close()
    return policy.eval(), log


# --------------------------------------------------------------------------- evaluation


def accuracy(
    model,
    tokenizer,
    records: list[dict],
    max_new_tokens: int = 96,
    samples: int = 0,
    temperature: float = 1.0,
    seed: int = 0,
) -> float:
    """The share of right ``Answer: N`` replies to ``records`` (held-out sums).

    ``samples=0``: one greedy reply per sum. Otherwise ``samples`` replies per sum drawn at
    ``temperature`` (what RL trains on: a model can be right greedily and still often wrong when sampled).
    """
    rows = as_prompts(records)
    replies = replies_per_prompt(
        model, tokenizer, [r["prompt"] for r in rows], samples, temperature, seed, max_new_tokens
    )
    answers = [r["answer"] for r, texts in zip(rows, replies, strict=True) for _ in texts]
    rewards = correctness_reward([t for texts in replies for t in texts], answers)
    return sum(rewards) / max(len(rewards), 1)


# --------------------------------------------------------------------------- the sums model


def direct_answers(records: list[dict]) -> list[dict]:
    """The same sum conversations with the reply cut to its last line: ``Answer: 132``, no steps.

    Examples:
        >>> direct_answers([{"messages": [{"role": "user", "content": "What is 2 + 5?"},
        ...                               {"role": "assistant", "content": "Ones: 2 + 5 = 7.\\nAnswer: 7"}]}])
        [{'messages': [{'role': 'user', 'content': 'What is 2 + 5?'}, {'role': 'assistant', 'content': 'Answer: 7'}]}]
    """
    out = []
    for r in records:
        *before, reply = r["messages"]
        out.append({**r, "messages": [*before, {**reply, "content": reply["content"].strip().split("\n")[-1]}]})
    return out


def calculator_answers(records: list[dict]) -> list[dict]:
    """The same sum conversations answered through the calculator: call it, read its result, answer.

    Examples:
        >>> r = calculator_answers([{"messages": [{"role": "user", "content": "What is 2 + 5?"},
        ...                                       {"role": "assistant", "content": "Ones: 2 + 5 = 7.\\nAnswer: 7"}],
        ...                          "meta": {"answer": "7"}}])[0]
        >>> [m["content"] for m in r["messages"]]
        ['What is 2 + 5?', '<|calc_start|>2 + 5<|calc_end|>', '7', 'Answer: 7']
    """
    from llmkb.sft.tools import calculator, tool_conversation

    out = []
    for r in records:
        question = r["messages"][0]["content"]
        expression = question.removeprefix("What is ").removesuffix("?")
        out.append(
            tool_conversation(
                question, "calc", expression, calculator(expression), f"Answer: {r['meta']['answer']}", r["meta"]
            )
        )
    return out


def tool_accuracy(model, tokenizer, records: list[dict], max_new_tokens: int = 96) -> dict:
    """Greedy replies to ``records`` (sums) with the calculator run on every call: share right, share that called it."""
    from llmkb.sft.tools import answer_with_tools, calculator

    rows = as_prompts(records)
    out = answer_with_tools(
        model, tokenizer, [r["prompt"] for r in rows], {"calc": calculator}, max_new_tokens=max_new_tokens
    )
    right = correctness_reward([o["text"] for o in out], [r["answer"] for r in rows])
    return {
        "accuracy": sum(right) / max(len(right), 1),
        "called": sum(bool(o["calls"]) for o in out) / max(len(out), 1),
    }


def sums_model(vocab_size: int, n_layer: int = 2, d_model: int = 128, context: int = 96, seed: int = 0) -> GPT:
    """A fresh, small GPT (random weights) for the run's vocabulary; the MLP is 2.5x wide, as the chat model's."""
    from llmkb.model.gpt import ModelConfig

    torch.manual_seed(seed)
    return GPT(
        ModelConfig(vocab_size=vocab_size, context=context, n_layer=n_layer, d_model=d_model, d_ff=d_model * 5 // 2)
    )
