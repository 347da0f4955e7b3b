"""The model adapter of the decoding loops: one loop, two model families.

In: a model (our :class:`~llmkb.model.gpt.GPT`, any Hugging Face causal LM, or a :class:`Backend`)
and left-padded ``input_ids`` / ``attention_mask``. Out: a :class:`Backend` whose ``start`` makes an
empty cache (our static :class:`~llmkb.model.gpt.KVCache`, or transformers' ``DynamicCache``) and
whose ``step`` runs the model on new tokens; :func:`prepare_inputs` puts the inputs on the model's
device with position ids from the mask.

Shared by the loops that decode: sampled and greedy decoding (:mod:`llmkb.inference.generate`),
beam search (:mod:`llmkb.inference.beam`) and speculative decoding (:mod:`llmkb.inference.speculative`).
"""

from __future__ import annotations

import inspect

import torch

from llmkb.device import device_of
from llmkb.model.gpt import GPT, KVCache


class Backend:
    """What the decoding loop needs from a model: an empty cache, and logits for new tokens.

    ``step(ids, cache, attention_mask, position_ids)`` runs the model on ``ids`` ``(B, T)``, the
    tokens after those already in ``cache`` (or, with ``cache=None``, the whole sequence) and
    returns logits ``(B, T, V)``; ``attention_mask`` ``(B, S)`` covers cached and new positions (or
    is None: no padding). Subclass it to drive any other model with the same loop.
    """

    context: int | None = None  # the longest sequence the model handles; None: no limit

    def __init__(self, model):
        self.model = model

    @property
    def device(self) -> torch.device:
        return device_of(self.model)

    def start(self, batch_size: int, max_len: int):
        """An empty cache for ``batch_size`` rows of up to ``max_len`` positions."""
        raise NotImplementedError

    def step(
        self, ids: torch.Tensor, cache, attention_mask: torch.Tensor | None, position_ids: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def reorder(self, cache, rows: torch.Tensor):
        """Keep the cache of rows ``rows`` (beam search copies good beams and drops bad ones)."""
        raise NotImplementedError


class GPTBackend(Backend):
    """Our GPT with its static :class:`~llmkb.model.gpt.KVCache`."""

    def __init__(self, model):
        super().__init__(model)
        self.config = getattr(model, "_orig_mod", model).config  # torch.compile wraps the module
        self.context = self.config.context

    def start(self, batch_size: int, max_len: int):
        dtype = next(self.model.parameters()).dtype
        return KVCache(self.config, batch_size, max_len, device=self.device, dtype=dtype)

    def step(self, ids, cache, attention_mask, position_ids):
        logits, _ = self.model(ids, cache=cache, attention_mask=attention_mask, position_ids=position_ids)
        return logits

    def reorder(self, cache, rows):
        cache.reorder(rows)
        return cache


class HFBackend(Backend):
    """A Hugging Face causal LM with transformers' ``DynamicCache``, the cache its ``generate`` uses."""

    def __init__(self, model):
        super().__init__(model)
        self.context = getattr(model.config, "max_position_embeddings", None)
        # transformers 5.x renamed `past_key_values` to `cache`; accept either
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def start(self, batch_size: int, max_len: int):
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def step(self, ids, cache, attention_mask, position_ids):
        out = self.model(
            input_ids=ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=cache is not None,
            **{self.cache_arg: cache},
        )
        return out.logits

    def reorder(self, cache, rows):
        cache.reorder_cache(rows)
        return cache


def backend_for(model) -> Backend:
    """The adapter for ``model`` (a :class:`Backend` is returned as it is); the model is put in eval mode."""
    if isinstance(model, Backend):
        return model
    model.eval()
    if isinstance(getattr(model, "_orig_mod", model), GPT):
        return GPTBackend(model)
    if hasattr(model, "config") and hasattr(model, "forward"):
        return HFBackend(model)
    raise TypeError(
        f"cannot generate with a {type(model).__name__}: expected our GPT, a Hugging Face causal LM or a Backend"
    )


def check_length(i: int, n: int, context: int | None) -> None:
    if context is not None and n >= context:
        raise ValueError(
            f"prompt {i} has {n} tokens; the model's context is {context} tokens, so a prompt "
            f"may have at most {context - 1} (one position is left for a new token)"
        )


def prepare_inputs(backend: Backend, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
    """Inputs on the model's device, checked against the context; position ids from the mask."""
    device = backend.device
    ids = input_ids.to(device)
    mask = torch.ones_like(ids) if attention_mask is None else attention_mask.to(device).long()
    lengths = mask.sum(dim=1)  # (B,): real prompt tokens per row
    for i, n in enumerate(lengths.tolist()):
        if n == 0:
            raise ValueError(f"prompt {i} is empty: generation needs at least one token to continue from")
        check_length(i, n, backend.context)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T): a row's first real token is position 0
    # Without padding no mask is needed (plain causal attention), as HF's generate drops an all-ones mask.
    return ids, mask, positions, lengths, bool(mask.all())
