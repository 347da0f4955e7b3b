"""Greedy decoding with a fixed-shape KV cache: the form ``torch.compile`` and CUDA graphs can speed up.

In: our :class:`~llmkb.model.gpt.GPT`, prompt ids ``(B, T)`` without padding, a number of new tokens.
Out: the greedy new tokens ``(B, N)`` (:func:`greedy`), the same ones :func:`llmkb.inference.generate.generate_ids`
gives; :func:`compiled_step` is the one-token step compiled.

Why another loop beside :mod:`llmkb.inference.generate`: there, the cache's filled length is a Python
number that grows every step and the attention reads a slice that grows with it, so each step has new
shapes, and the loop asks the GPU for the tokens every step (to stop rows that ended). At batch 1 a
small model then spends its time launching kernels and waiting, not computing. Here every decode step
has the same shapes: the cache is allocated for ``max_len`` positions as module buffers (fixed
addresses), the new token is written at a position held in a tensor, attention reads the whole buffer
with a mask that hides the unfilled part, and the loop never reads a value back. The compiled step can
then be recorded once as a CUDA graph (``mode="reduce-overhead"``) and replayed: one launch per token
instead of hundreds. This is the gpt-fast recipe.
"""

from __future__ import annotations

import torch
from torch import nn

from llmkb.device import device_of
from llmkb.model.gpt import GPT, rope_tables


class _Slots:
    """What a block's attention calls ``cache.update`` on: writes the new keys/values at ``pos``."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor):
        self.k, self.v, self.pos = k, v, pos

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` ``(B, nkv, T, hs)`` at positions ``pos``; return the whole buffers
        ``(B, nkv, max_len, hs)``."""
        self.k[layer].index_copy_(2, self.pos, k)
        self.v[layer].index_copy_(2, self.pos, v)
        return self.k[layer], self.v[layer]


class StaticDecoder(nn.Module):
    """``model`` plus a KV cache of ``batch_size`` rows and ``max_len`` positions, kept as buffers."""

    def __init__(self, model: GPT, batch_size: int, max_len: int):
        super().__init__()
        config = model.config
        if max_len > config.context:
            raise ValueError(f"max_len {max_len} is longer than the model's context of {config.context} tokens")
        self.model = model.eval()
        device, dtype = device_of(model), next(model.parameters()).dtype
        shape = (config.n_layer, batch_size, config.n_kv_head, max_len, config.head_dim)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.register_buffer("key_pos", torch.arange(max_len, device=device), persistent=False)

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, vocab)`` after ``ids`` ``(B, T)`` at positions ``pos`` ``(T,)``; their keys/values join
        the cache."""
        model = self.model
        x = model.embed_tokens(ids)  # (B, T, d_model)
        cos, sin = rope_tables(model.config.head_dim, pos, model.config.rope_theta)  # (T, hs) each
        mask = self.key_pos[None, :] <= pos[:, None]  # (T, max_len): earlier and filled positions only
        slots = _Slots(self.k, self.v, pos)
        for i, block in enumerate(model.layers):
            x, _ = block(x, cos, sin, mask, slots, i)
        return model.lm_head(model.norm(x[:, -1]))  # (B, vocab): only the last position predicts

    def next_token(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """The greedy next token ``(B, 1)``, computed on the device (nothing is read back)."""
        return self(ids, pos).argmax(dim=-1, keepdim=True)


def compiled_step(decoder: StaticDecoder):
    """``decoder.next_token`` compiled whole (``fullgraph``): a CUDA graph on CUDA; on the CPU only traced.

    ``dynamic=False``: a decoder of another batch size gets its own fixed-shape graph, not one for any size.

    On the CPU the ``"eager"`` backend runs the traced graph as it is: no speed-up, but a graph break
    (a reason the GPU could not record one graph) fails here, where it is cheap to find.
    """
    if decoder.k.is_cuda:
        return torch.compile(decoder.next_token, mode="reduce-overhead", fullgraph=True, dynamic=False)
    return torch.compile(decoder.next_token, backend="eager", fullgraph=True, dynamic=False)


@torch.no_grad()
def greedy(decoder: StaticDecoder, prompt: torch.Tensor, new_tokens: int, step=None) -> torch.Tensor:
    """The ``new_tokens`` greedy tokens ``(B, N)`` after ``prompt`` ``(B, T)``; ``step`` decodes (default: eager).

    The prompt goes through in one eager pass (prefill); each later token through ``step``. The
    cache is overwritten from position 0, so one decoder serves any number of calls.
    """
    B, T = prompt.shape
    if B != decoder.k.shape[1]:
        raise ValueError(f"the decoder's cache has {decoder.k.shape[1]} rows; the prompt has {B}")
    if T + new_tokens > decoder.max_len:
        raise ValueError(f"{T} prompt + {new_tokens} new tokens do not fit the cache's {decoder.max_len} positions")
    step = step or decoder.next_token
    device = decoder.k.device
    token = decoder.next_token(prompt.to(device), torch.arange(T, device=device))  # (B, 1)
    out = [token]
    pos = torch.tensor([T], device=device)
    for _ in range(new_tokens - 1):
        token = step(token, pos).clone()  # a CUDA graph reuses its output buffer on the next replay
        out.append(token)
        pos += 1
    return torch.cat(out, dim=1)  # (B, N)
