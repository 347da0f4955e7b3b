"""Ranked replies -> a reward model: the SFT model with a scalar head, trained with the Bradley-Terry loss.

In: the SFT stage's GPT, its tokenizer (with the ChatML template), and preference pairs
``{"prompt": [messages], "chosen": str, "rejected": str}``: for the same prompt, a person liked the
``chosen`` reply better than the ``rejected`` one.
Out: a :class:`RewardModel` that gives any (prompt, reply) one number, higher for replies the person
would prefer; its training log and a summary with the held-out pairwise accuracy (the share of
test pairs where the chosen reply scores higher).

Why: RLHF wants to optimize "what a person would prefer", but a person cannot grade the millions of
replies that reinforcement learning samples. So we fit a neural simulator of their preferences to a
few thousand rankings, and let the policy optimize that instead (PPO and GRPO, later in
:mod:`llmkb.rl`). The reward model starts from the SFT model because it must understand the same
text; only its output changes, from a distribution over the next token to one score.

A person gives rankings, not scores ("A is better than B"), so the model is trained on differences:
the Bradley-Terry model says ``P(chosen beats rejected) = sigmoid(r(chosen) - r(rejected))``, and
the loss is that probability's negative log. Only differences matter, so the scores have no fixed
zero (a constant added to every score changes nothing). Ranking is easier than writing: a model
can often tell the better of two replies when it could not have written it (the gap between
discriminating and generating), which is why a reward model no bigger than the policy can still
teach it something.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from llmkb.device import autocast, pick_device
from llmkb.model.gpt import GPT, configure_optimizer
from llmkb.model.hf import _from_hf_names, _load_state, _to_hf_names, from_hf_config, save_hf_folder, to_hf_config
from llmkb.rl.config import RewardConfig
from llmkb.sft.masking import collate, tokenize_conversation
from llmkb.training import batches, stop_if_not_finite, total_steps

# ----------------------------------------------------------------------------------------------
# the model


class RewardModel(nn.Module):
    """Our GPT backbone and a linear head ``d_model -> 1`` on the last real token: ``model(ids, mask)`` ->
    ``(B,)`` scores.

    ``RewardModel(sft_model)`` copies the SFT model's weights (the original is left alone). Its LM
    head stays in the backbone but is unused (with tied embeddings it is the embedding table anyway).
    Why the last token: with causal attention it is the only position that has read the whole
    prompt and reply, so its hidden state is the natural summary to score.
    """

    def __init__(self, sft_model: GPT):
        super().__init__()
        self.backbone = copy.deepcopy(getattr(sft_model, "_orig_mod", sft_model))  # torch.compile wraps in _orig_mod
        self.config = self.backbone.config
        d = self.config.d_model
        # No bias, as HF's `score` head (so the two convert by renaming): a bias would shift every
        # score alike and cancel in the chosen - rejected difference anyway.
        self.score = nn.Linear(d, 1, bias=False)
        # Stiennon et al. (2020) start the head at std 1/sqrt(d + 1): unit-RMS hidden states then
        # give scores of about unit size.
        nn.init.normal_(self.score.weight, std=1 / math.sqrt(d + 1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` (float32) of right-padded rows ``input_ids`` ``(B, T)``; ``attention_mask`` is 1 on
        real tokens."""
        lengths = attention_mask.sum(dim=1)  # (B,)
        T = input_ids.shape[1]
        right_padded = attention_mask.bool() == (torch.arange(T, device=input_ids.device) < lengths[:, None])  # (B, T)
        if not bool(right_padded.all()) or not bool((lengths > 0).all()):
            raise ValueError("attention_mask must be right padding: 1s then 0s, at least one real token per row")
        # No mask is passed on: with right padding and causal attention a real token never sees the
        # padding after it, so the last real token's hidden state is the same with or without it.
        h = self.backbone.hidden_states(input_ids)  # (B, T, d_model)
        last = h[torch.arange(h.shape[0], device=h.device), lengths - 1]  # (B, d_model)
        return self.score(last).squeeze(-1).float()  # (B,)


def to_hf_reward(model: RewardModel, pad_id: int):
    """A ``LlamaForSequenceClassification`` (num_labels=1; float32, eval mode, on the CPU) with ``model``'s weights.

    HF's head finds each row's last token as the rightmost one that is not ``pad_id`` (our rows end
    with the template's ``"\\n"``, never the pad token, so both pick the same position).
    """
    from transformers import LlamaForSequenceClassification

    hf_config = to_hf_config(model.config, pad_token_id=pad_id)
    hf_config.num_labels = 1
    hf = LlamaForSequenceClassification(hf_config)  # random init, overwritten next
    state = {k: v.detach().float().cpu() for k, v in model.backbone.state_dict().items()}
    state = _to_hf_names(state)  # embed_tokens... -> model.embed_tokens...
    del state["lm_head.weight"]  # a sequence classifier has no LM head
    state["score.weight"] = model.score.weight.detach().float().cpu()  # (1, d_model)
    hf.load_state_dict(state, strict=True)
    return hf.float().eval()


def from_hf_reward(hf) -> RewardModel:
    """Our :class:`RewardModel` (float32, eval mode, on the CPU) from a Llama ``*ForSequenceClassification``
    with one label."""
    if hf.config.num_labels != 1:
        raise ValueError(f"num_labels is {hf.config.num_labels}; a reward model has exactly one output")
    config = from_hf_config(hf.config)
    state = {k: v.detach().cpu() for k, v in hf.state_dict().items()}
    head = state.pop("score.weight")  # (1, d_model)
    backbone = GPT(config)
    ours = _from_hf_names(state, config.tie_embeddings)
    ours.setdefault("lm_head.weight", backbone.lm_head.weight)  # untied: HF has none; ours is unused
    model = RewardModel(_load_state(backbone, ours, type(hf).__name__))
    model.score.weight.data.copy_(head.float())
    return model.eval()


def save_reward_model(model: RewardModel, tokenizer, out_dir: str | Path) -> Path:
    """The reward model as an HF ``LlamaForSequenceClassification`` folder with its tokenizer (written atomically)."""
    return save_hf_folder(to_hf_reward(model, tokenizer.pad_token_id), out_dir, tokenizer)


def load_reward_model(path: str | Path) -> RewardModel:
    """A folder written by :func:`save_reward_model`; a missing or wrong folder names itself."""
    from transformers import AutoModelForSequenceClassification

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no reward model here (config.json missing); run `llmkb reward` first")
    try:
        hf = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # a damaged or truncated folder
        raise ValueError(f"{path}: could not load the reward model ({type(e).__name__}: {e})") from e
    return from_hf_reward(hf)


# ----------------------------------------------------------------------------------------------
# the loss


def bradley_terry_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """``-log sigmoid(chosen - rejected)``, averaged over the pairs: the negative log-likelihood of the rankings.

    Equal scores cost ln 2 (a coin flip); a large margin for the chosen reply costs about 0, and a
    large margin the wrong way costs about the margin.

    Examples:
        >>> round(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item(), 4)  # ln 2
        0.6931
        >>> # (0.0067 + 5.0067) / 2
        >>> round(bradley_terry_loss(torch.tensor([5.0, -5.0]), torch.tensor([0.0, 0.0])).item(), 4)
        2.5067
    """
    return -F.logsigmoid(chosen_scores - rejected_scores).mean()


def pairwise_accuracy(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> float:
    """The share of pairs whose chosen reply scores strictly higher (a tie counts as wrong, as in trl).

    Examples:
        >>> pairwise_accuracy(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([1.0, 3.0, 1.0]))
        0.3333333432674408
    """
    return (chosen_scores > rejected_scores).float().mean().item()


# ----------------------------------------------------------------------------------------------
# data


def check_pair(i: int, pair: dict) -> None:
    """Raise a ValueError naming pair ``i`` if it lacks a key or ranks a reply against itself.

    Identical replies teach nothing (the loss is ln 2 whatever the weights) and usually mean a data bug.
    """
    missing = [k for k in ("prompt", "chosen", "rejected") if k not in pair]
    if missing:
        raise ValueError(
            f"pair {i}: missing {missing}; a pair is {{'prompt': [messages], 'chosen': str, 'rejected': str}}"
        )
    if pair["chosen"] == pair["rejected"]:
        raise ValueError(f"pair {i}: chosen and rejected are the same reply ({pair['chosen'][:40]!r}); nothing to rank")


def encode_pairs(tokenizer, pairs: list[dict], context: int) -> list[tuple[dict, dict]]:
    """Each pair as (chosen, rejected) token ids: the ChatML rendering of the prompt plus that reply.

    Both sides share the prompt, so the reward model sees exactly the same question with two
    answers. Errors name the pair: an empty list, a missing key, identical replies (a ranking with
    no difference teaches nothing and is usually a data bug), a conversation over ``context``.
    """
    if not pairs:
        raise ValueError("no preference pairs: the reward model needs at least one (chosen, rejected) pair")
    out = []
    for i, pair in enumerate(pairs):
        check_pair(i, pair)
        sides = []
        for side in ("chosen", "rejected"):
            messages = list(pair["prompt"]) + [{"role": "assistant", "content": pair[side]}]
            try:
                sides.append(tokenize_conversation(tokenizer, messages, context))  # labels unused: only the ids
            except ValueError as e:
                raise ValueError(f"pair {i} ({side}): {e}") from e
        out.append(tuple(sides))
    return out


def pair_batch(batch: list[tuple[dict, dict]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One right-padded batch ``(2B, T)`` of ids and attention mask: the B chosen rows, then the B rejected rows.

    One forward pass scores both sides; ``scores.chunk(2)`` splits them again (trl's layout too).
    """
    ids, _, mask = collate([c for c, _ in batch] + [r for _, r in batch], pad_id)  # (2B, T) each
    return ids, mask


def score_pairs(
    model: RewardModel, batch: list[tuple[dict, dict]], pad_id: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen scores, rejected scores), each ``(B,)``."""
    ids, mask = pair_batch(batch, pad_id)
    with autocast(device):
        scores = model(ids.to(device), mask.to(device))  # (2B,)
    return scores.chunk(2)


@torch.no_grad()
def evaluate(
    model: RewardModel, encoded: list[tuple[dict, dict]], pad_id: int, device: str, batch_size: int = 32
) -> dict:
    """Bradley-Terry loss and pairwise accuracy over all of ``encoded``."""
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    for start in range(0, len(encoded), batch_size):
        c, r = score_pairs(model, encoded[start : start + batch_size], pad_id, device)
        chosen.append(c)
        rejected.append(r)
    model.train(was_training)
    chosen, rejected = torch.cat(chosen), torch.cat(rejected)
    return {
        "loss": round(bradley_terry_loss(chosen, rejected).item(), 5),
        "accuracy": round(pairwise_accuracy(chosen, rejected), 4),
    }


@torch.no_grad()
def score_replies(
    model: RewardModel, tokenizer, prompts: list[list[dict]], replies: list[str], device: str, batch_size: int = 32
) -> list[float]:
    """The reward model's score of each reply to its prompt (a conversation too long for the context raises)."""
    model.eval()
    rows = [
        tokenize_conversation(tokenizer, list(p) + [{"role": "assistant", "content": r}], model.config.context)
        for p, r in zip(prompts, replies, strict=True)
    ]
    scores = []
    for start in range(0, len(rows), batch_size):
        ids, _, mask = collate(rows[start : start + batch_size], tokenizer.pad_token_id)
        with autocast(device):
            scores += model(ids.to(device), mask.to(device)).tolist()
    return scores


def discriminator_generator_gap(
    model: RewardModel, tokenizer, prompts: list[list[dict]], groups: list[list[tuple[str, float]]], device: str
) -> dict:
    """Judging against generating: is the reward model's favourite of k sampled replies one the labeler likes best?

    ``groups``: per prompt, k sampled replies with the labeler's scores (``build_preferences``'s).
    Only prompts whose replies the labeler does not score all alike count (a tie makes every pick
    "best"); :func:`pick_rates` does the counting.
    """
    informative = [(p, g) for p, g in zip(prompts, groups, strict=True) if len({s for _, s in g}) > 1]
    flat = [(p, text) for p, g in informative for text, _ in g]
    scores = score_replies(model, tokenizer, [p for p, _ in flat], [t for _, t in flat], device) if flat else []
    return pick_rates([g for _, g in informative], scores)


def pick_rates(groups: list[list[tuple[str, float]]], model_scores: list[float]) -> dict:
    """``picks_best``: the share of groups where the reply with the highest ``model_scores`` is one of the
    labeler's best; ``sample_best``: the share of all replies that are one of their group's best, i.e. how
    often the policy gets a best reply by sampling once. ``model_scores`` run over the groups' replies in order.

    The first above the second is the gap RLHF lives on (the notes' point: judging is easier than
    generating): picking the best of k with the reward model beats drawing one.

    Examples:
        >>> pick_rates([[("a", 1.0), ("b", 3.0), ("c", 1.0)], [("d", 2.0), ("e", 0.0)]], [0.1, 0.9, 0.2, -1.0, 0.5])
        {'picks_best': 0.5, 'sample_best': 0.4, 'questions': 2}
    """
    if not groups:
        return {"picks_best": None, "sample_best": None, "questions": 0}
    picks = best_samples = start = 0
    for group in groups:
        mine = model_scores[start : start + len(group)]
        start += len(group)
        best = max(score for _, score in group)
        picks += group[max(range(len(group)), key=mine.__getitem__)][1] == best
        best_samples += sum(score == best for _, score in group)
    n = len(groups)
    return {"picks_best": round(picks / n, 4), "sample_best": round(best_samples / start, 4), "questions": n}


# ----------------------------------------------------------------------------------------------
# training


def train_reward_model(
    model: GPT | RewardModel, tokenizer, train_pairs: list[dict], test_pairs: list[dict], config: RewardConfig
) -> tuple[RewardModel, list[dict], dict]:
    """Train a reward model on ``train_pairs``; returns (reward model, log, summary).

    ``model`` is the SFT GPT (its weights are copied under a new scalar head) or a ``RewardModel``
    to train further (changed in place). The log has the loss, accuracy and mean margin of each
    step's batch; the summary has the held-out pairwise accuracy before and after training.
    """
    device = pick_device(config.device)
    context = model.config.context
    train_enc = encode_pairs(tokenizer, train_pairs, context)
    test_enc = encode_pairs(tokenizer, test_pairs, context) if test_pairs else []
    pad_id = tokenizer.pad_token_id
    torch.manual_seed(config.seed)  # the head's random init
    reward = (model if isinstance(model, RewardModel) else RewardModel(model)).to(device).train()
    optimizer = configure_optimizer(reward, config.lr, config.weight_decay, (0.9, 0.95), device)
    steps = total_steps(config, len(train_enc))  # SFT's helpers read only epochs/max_steps/batch_size/seed
    summary = {"first_test_accuracy": evaluate(reward, test_enc, pad_id, device)["accuracy"] if test_enc else None}
    data = batches(train_enc, config)  # endless shuffled batches, a new order each epoch
    log, times = [], []
    bar = tqdm(total=steps, desc="reward model", unit="step", disable=not config.progress)
    for step in range(steps):
        t0 = time.perf_counter()
        epoch, batch = next(data)
        chosen, rejected = score_pairs(reward, batch, pad_id, device)  # (B,), (B,)
        loss = bradley_terry_loss(chosen, rejected)
        value = loss.item()
        stop_if_not_finite(value, f"reward model step {step}", "lower the learning rate, or check the data")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reward.parameters(), config.grad_clip or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        log.append(
            {
                "step": step + 1,
                "epoch": epoch,
                "loss": round(value, 5),
                "accuracy": round(pairwise_accuracy(chosen, rejected), 4),
                "margin": round((chosen - rejected).mean().item(), 4),
            }
        )
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}", acc=f"{log[-1]['accuracy']:.2f}")
    bar.close()
    timed = sorted(times[1:] or times)
    final = evaluate(reward, test_enc, pad_id, device) if test_enc else {}
    summary.update(
        {
            "steps": steps,
            "train_pairs": len(train_enc),
            "test_pairs": len(test_enc),
            "test_accuracy": final.get("accuracy"),
            "test_loss": final.get("loss"),
            "s_per_step": round(timed[len(timed) // 2], 4) if timed else None,
        }
    )
    return reward.eval(), log, summary
