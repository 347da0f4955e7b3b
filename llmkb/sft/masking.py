"""A conversation -> token ids and labels that train only the assistant's words; the loss on them.

In: a record's ``messages`` (``[{"role", "content"}, ...]``, see :mod:`llmkb.sft.data`) and the
project's Hugging Face tokenizer, whose ChatML template marks the assistant's text with
``{% generation %}`` (:data:`llmkb.tokenizer.hf.CHATML_TEMPLATE`).
Out: :func:`tokenize_conversation` gives ``{"input_ids", "labels"}``, where ``labels`` is the id on
the assistant's tokens (its contents and the ``<|im_end|>`` that closes each of its turns) and
``-100`` everywhere else; :func:`collate` pads a batch of them on the right; :func:`sft_loss` is the
next-token cross-entropy averaged over the labelled tokens of the whole batch.

Why assistant-only loss: the system and user messages are given at inference time, never written
by the model. Training on them would spend capacity on predicting the user's questions (which the
model never has to do) and would weight long prompts more than the answers. What fine-tuning must
teach is the answer and the stop: the ``<|im_end|>`` is labelled so the model learns to end its turn.

This is exactly what trl's ``SFTTrainer(args=SFTConfig(assistant_only_loss=True))`` computes for a
"messages" dataset (``tests/test_sft_masking.py`` checks labels token for token and the loss to
1e-4): it tokenizes with ``apply_chat_template(..., return_assistant_tokens_mask=True)``, sets the
labels outside ``assistant_masks`` to -100, pads labels with -100 on the right, and divides the
summed negative log-likelihood of the shifted labels by the number of labelled targets in the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # the label that cross-entropy (ours, torch's, HF's, trl's) skips


def tokenize_conversation(tokenizer, messages: list[dict], context: int) -> dict[str, list[int]]:
    """The ChatML ids of ``messages`` and their labels: the id where the assistant wrote it, else -100.

    A conversation longer than ``context`` is refused rather than cut: cutting would drop the end of
    the answer and its ``<|im_end|>``, teaching the model to stop mid-sentence or never. One with no
    assistant token would add nothing to the loss (and, alone in a batch, divide 0 by 0).

    Examples:
        >>> from llmkb.tokenizer.hf import CHATML_TEMPLATE
        >>> tok = _char_tokenizer(CHATML_TEMPLATE)
        >>> out = tokenize_conversation(tok, [{"role": "user", "content": "Hi"},
        ...                                   {"role": "assistant", "content": "Yo"}], context=64)
        >>> tok.decode(out["input_ids"])
        '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nYo<|im_end|>\\n'
        >>> tok.decode([t for t in out["labels"] if t != -100])
        'Yo<|im_end|>'
    """
    encoded = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = list(encoded["input_ids"])
    mask = list(encoded["assistant_masks"])
    if len(ids) > context:
        raise ValueError(
            f"the conversation is {len(ids)} tokens, longer than the model's context of {context}; "
            "shorten it or drop it (cutting would lose the end of the answer)"
        )
    if not any(mask):
        roles = [m.get("role") for m in messages]
        raise ValueError(
            f"the conversation has no assistant tokens to train on (roles {roles}); "
            "an assistant message, and a chat template with {% generation %} markers, are needed"
        )
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]}


def collate(batch: list[dict[str, list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad a batch: ``input_ids`` with ``pad_id``, ``labels`` with -100, and a 0/1 attention mask.

    Right padding keeps every sequence at positions 0.. (as in pretraining), and with causal
    attention a real token never sees the padding after it, so no mask is needed for the loss;
    the attention mask is returned for HF models and generation.

    >>> ids, labels, mask = collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
    ...                              {"input_ids": [8], "labels": [8]}], pad_id=0)
    >>> ids.tolist(), labels.tolist(), mask.tolist()
    ([[5, 6, 7], [8, 0, 0]], [[-100, 6, 7], [8, -100, -100]], [[1, 1, 1], [1, 0, 0]])
    """
    if not batch:
        raise ValueError("collate needs at least one sequence")
    T = max(len(x["input_ids"]) for x in batch)
    input_ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), T), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), T), dtype=torch.long)
    for row, x in enumerate(batch):
        n = len(x["input_ids"])
        if len(x["labels"]) != n:
            raise ValueError(f"sequence {row}: {n} input ids but {len(x['labels'])} labels")
        input_ids[row, :n] = torch.tensor(x["input_ids"], dtype=torch.long)
        labels[row, :n] = torch.tensor(x["labels"], dtype=torch.long)
        attention_mask[row, :n] = 1
    return input_ids, labels, attention_mask


def sft_loss(model, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled targets of the batch.

    Position t predicts token t+1, so logits drop the last position and labels the first. The mean
    is over all labelled tokens in the batch together (not per sequence, then averaged): a long
    answer weighs more than a short one, as in trl and in HF's ``ForCausalLMLoss``. For our GPT this
    is ``model(input_ids[:, :-1], labels[:, 1:])[1]``; written out here so it works for any model
    that returns logits (our GPT's tuple, or an HF model's output with ``.logits``).

    >>> import torch
    >>> class Uniform(torch.nn.Module):  # every token equally likely: loss = ln(vocab)
    ...     def forward(self, idx): return torch.zeros(*idx.shape, 4), None
    >>> ids = torch.tensor([[1, 2, 3]]); labels = torch.tensor([[-100, -100, 3]])
    >>> round(sft_loss(Uniform(), ids, labels).item(), 4)  # ln 4
    1.3863
    """
    targets = labels[:, 1:]
    if not (targets != IGNORE).any():
        raise ValueError("no labelled target in the batch: every label after the first position is -100")
    out = model(input_ids[:, :-1])
    logits = out.logits if hasattr(out, "logits") else out[0]
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE)


def _char_tokenizer(chat_template: str):
    """A tiny character-level HF tokenizer with the ChatML specials, for doctests and tests."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted({chr(i) for i in range(32, 127)} | {"\n"})
    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token=" "))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()  # join the characters back without spaces
    tok.add_special_tokens(
        [AddedToken(s, special=True, normalized=False) for s in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", chat_template=chat_template
    )


def mask_html(tokenizer, messages: list[dict], context: int) -> str:
    """One conversation as colored tokens: green where the loss is computed, grey where it is not.

    A self-contained HTML snippet (no JS) in the style of :func:`llmkb.tokenizer.viz.render_html`;
    each token's id and whether it is trained are in its tooltip.

    Examples:
        >>> from llmkb.tokenizer.hf import CHATML_TEMPLATE
        >>> out = mask_html(_char_tokenizer(CHATML_TEMPLATE), [{"role": "user", "content": "Hi"},
        ...                                                    {"role": "assistant", "content": "Yo"}], 64)
        >>> out.count('class="t on"'), out.count('class="t off"')  # "Y", "o", "<|im_end|>" trained
        (3, 22)
    """
    import html

    from llmkb.tokenizer.viz import visible_whitespace

    encoded = tokenize_conversation(tokenizer, messages, context)
    css = (
        ".sftm{font-family:monospace;line-height:2}.sftm .t{padding:1px 2px;margin:0 1px;border-radius:3px}"
        ".sftm .on{background:#b7e4c7}.sftm .off{background:#e9ecef;opacity:.75}"
        ".sftm .sum{display:block;font-size:.8em}"
    )
    parts = [f'<div class="sftm"><style>{css}</style>']
    for token_id, label in zip(encoded["input_ids"], encoded["labels"], strict=True):
        text = tokenizer.decode([token_id])
        trained = label != IGNORE
        tip = html.escape(
            f"id {token_id}: {text!r}, " + ("trained (loss)" if trained else "context only (label -100)"), quote=True
        )
        breaks = "<br>" * text.count("\n")
        parts.append(
            f'<span class="t {"on" if trained else "off"}" title="{tip}">{visible_whitespace(text)}</span>{breaks}'
        )
    n_on = sum(label != IGNORE for label in encoded["labels"])
    parts.append(f'<span class="sum">{len(encoded["input_ids"])} tokens, {n_on} of them trained</span></div>')
    return "".join(parts)
