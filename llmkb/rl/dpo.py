"""Preference pairs + a policy + a frozen reference -> the DPO loss and a DPO-trained policy.

In: pairs ``{"prompt": [messages], "chosen": str, "rejected": str}`` (see :mod:`llmkb.rl.preferences`),
the model to train (the *policy*, usually the SFT model), a frozen copy of it (the *reference*), the
tokenizer with the ChatML template and a :class:`DPOConfig`.
Out: :func:`dpo_loss` for one batch of sequence log-probabilities, and :func:`train_dpo`, which returns
the trained policy and a log (loss, reward margin, accuracy per step).

Direct Preference Optimization (Rafailov et al. 2023) skips the reward model and the RL loop of PPO.
The optimal policy of RLHF's objective, "maximize reward minus beta * KL to the reference", is
``pi(y|x) = ref(y|x) * exp(r(x, y) / beta) / Z(x)``; turned around, every policy defines the reward
it is optimal for: ``r(x, y) = beta * log(pi(y|x) / ref(y|x)) + beta * log Z(x)``. Put that into the
Bradley-Terry model of "chosen beats rejected", ``sigmoid(r_chosen - r_rejected)``, and ``Z(x)``
cancels (both replies share the prompt). So the policy's log-ratio to the reference *is* a reward
model, and maximizing the likelihood of the human's choices trains the policy directly:

    loss = -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))))

beta sets how far the policy may move: a small beta needs large log-ratios for the same loss, so the
policy drifts far from the reference; a large beta keeps it close. At the start, policy == reference,
every implicit reward is 0 and the loss is ln 2.

``tests/test_rl_dpo.py`` checks this loss against trl's ``DPOTrainer`` on the same batch to 1e-4.
One difference in what is labelled: trl scores everything after the generation prompt, which with
our template is the reply, ``<|im_end|>`` *and the newline after it*; we score the reply and
``<|im_end|>`` only, as SFT does (:mod:`llmkb.sft.masking`): the model stops at ``<|im_end|>`` and
never writes that newline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llmkb.device import autocast, pick_device
from llmkb.model.gpt import configure_optimizer
from llmkb.rl.config import DPOConfig
from llmkb.rl.reward import check_pair
from llmkb.sft.masking import IGNORE, collate, tokenize_conversation
from llmkb.training import batches, stop_if_not_finite, total_steps


def sequence_logps(model, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labelled tokens | everything before them), summed per sequence: ``(B,)``.

    Position t predicts token t+1, as in :func:`llmkb.sft.masking.sft_loss`; -100 labels add 0.
    A sum, not a mean: DPO compares the probability of whole replies, log p(y|x) = sum over its tokens.
    Works for our GPT (returns ``(logits, loss)``) and for an HF model (returns ``.logits``).

    Examples:
        >>> import torch
        >>> class Uniform(torch.nn.Module):  # every token equally likely: each labelled one adds -ln 4
        ...     def forward(self, idx): return torch.zeros(*idx.shape, 4), None
        >>> ids = torch.tensor([[1, 2, 3], [1, 2, 3]]); labels = torch.tensor([[-100, 2, 3], [-100, -100, 3]])
        >>> [round(x, 4) for x in sequence_logps(Uniform(), ids, labels).tolist()]  # 2 and 1 targets: -2 ln 4, -ln 4
        [-2.7726, -1.3863]
    """
    targets = labels[:, 1:]  # (B, T-1)
    out = model(input_ids[:, :-1])
    logits = out.logits if hasattr(out, "logits") else out[0]  # (B, T-1, V)
    # cross-entropy is -log p(target); ignored targets give 0, so the row sum is over the reply only
    nll = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")  # (B, T-1)
    return -nll.sum(dim=-1)  # (B,)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sigmoid DPO loss of a batch (a scalar) and each pair's implicit rewards ``(B,)``, detached.

    Every argument is ``(B,)``: the summed log-probability of each pair's chosen or rejected reply
    under the policy or the reference. The reward of a reply is ``beta * log(pi / ref)``.

    Examples:
        >>> import torch
        >>> zero = torch.zeros(2)
        >>> round(dpo_loss(zero, zero, zero, zero, beta=0.1)[0].item(), 4)  # policy == reference: ln 2
        0.6931
        >>> loss, chosen, rejected = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]),
        ...                                   torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
        >>> chosen.tolist(), rejected.tolist(), round(loss.item(), 4)  # -log sigmoid(0.5 - -0.5)
        ([0.5], [-0.5], 0.3133)
    """
    chosen_logratios = policy_chosen - ref_chosen  # (B,)
    rejected_logratios = policy_rejected - ref_rejected  # (B,)
    loss = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios)).mean()
    return loss, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def encode_pair(
    tokenizer, prompt_messages: list[dict], chosen_reply: str, rejected_reply: str, context: int
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """The prompt + each reply as ChatML ids, labelled only on the reply and its ``<|im_end|>``.

    Examples:
        >>> from llmkb.sft.masking import _char_tokenizer
        >>> from llmkb.tokenizer.hf import CHATML_TEMPLATE
        >>> tok = _char_tokenizer(CHATML_TEMPLATE)
        >>> chosen, rejected = encode_pair(tok, [{"role": "user", "content": "2+2?"}], "4", "5?", context=64)
        >>> (tok.decode([t for t in chosen["labels"] if t != -100]),
        ...  tok.decode([t for t in rejected["labels"] if t != -100]))
        ('4<|im_end|>', '5?<|im_end|>')
    """
    chosen, rejected = (
        [*prompt_messages, {"role": "assistant", "content": reply}] for reply in (chosen_reply, rejected_reply)
    )
    return tokenize_conversation(tokenizer, chosen, context), tokenize_conversation(tokenizer, rejected, context)


def pair_logps(model, batch: list[tuple[dict, dict]], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of a batch of encoded pairs: (chosen ``(B,)``, rejected ``(B,)``).

    Chosen and rejected go through the model as one batch of 2B rows (one forward, as trl does).
    """
    ids, labels, _ = collate(
        [c for c, _ in batch] + [r for _, r in batch], pad_id
    )  # (2B, T) chosen rows, then rejected
    with autocast(device):
        logps = sequence_logps(model, ids.to(device), labels.to(device))  # (2B,)
    return logps.chunk(2)


def train_dpo(policy, reference, tokenizer, pairs: list[dict], config: DPOConfig) -> tuple[torch.nn.Module, list[dict]]:
    """Train ``policy`` (our GPT, changed in place) by DPO against ``reference``; returns (policy, log).

    The reference is frozen (eval mode, no gradients) and stays as it is; it must be a separate copy.
    """
    if not pairs:
        raise ValueError("no preference pairs: DPO needs at least one {'prompt', 'chosen', 'rejected'}")
    if policy is reference:
        raise ValueError(
            "policy and reference are the same object; pass a frozen copy (copy.deepcopy) as the reference"
        )
    encoded = []
    for i, pair in enumerate(pairs):
        check_pair(i, pair)
        try:
            encoded.append(
                encode_pair(tokenizer, pair["prompt"], pair["chosen"], pair["rejected"], policy.config.context)
            )
        except ValueError as e:
            raise ValueError(f"pair {i}: {e}") from e
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    policy = policy.to(device).train()
    reference = reference.to(device).eval().requires_grad_(False)
    optimizer = configure_optimizer(policy, config.lr, 0.0, (0.9, 0.95), device)
    steps = total_steps(config, len(encoded))
    data = batches(encoded, config)  # shuffled each epoch, seeded
    log: list[dict] = []
    bar = tqdm(total=steps, desc="dpo", unit="step", disable=not config.progress)
    for step in range(steps):
        epoch, batch = next(data)
        policy_chosen, policy_rejected = pair_logps(policy, batch, tokenizer.pad_token_id, device)  # (B,) each
        with torch.no_grad():
            ref_chosen, ref_rejected = pair_logps(reference, batch, tokenizer.pad_token_id, device)  # (B,) each
        loss, chosen_rewards, rejected_rewards = dpo_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected, config.beta
        )
        value = loss.item()
        stop_if_not_finite(
            value, f"DPO step {step}", "lower the learning rate, check the data, or check the reference's weights"
        )
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        margin = (
            (chosen_rewards - rejected_rewards).mean().item()
        )  # > 0: chosen gained on rejected, relative to the reference
        accuracy = (chosen_rewards > rejected_rewards).float().mean().item()  # share of pairs ranked right
        log.append(
            {
                "step": step + 1,
                "epoch": epoch,
                "loss": round(value, 5),
                "margin": round(margin, 5),
                "accuracy": accuracy,
                "chosen_reward": round(chosen_rewards.mean().item(), 5),
                "rejected_reward": round(rejected_rewards.mean().item(), 5),
                "grad_norm": round(grad_norm.item(), 4),
            }
        )
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}", acc=f"{accuracy:.2f}")
    bar.close()
    return policy.eval(), log
