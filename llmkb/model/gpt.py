"""A Llama-style decoder-only transformer, written to be read top to bottom.

In: token ids ``(B, T)``. Out: next-token logits ``(B, T, vocab)`` and, given targets, the mean
cross-entropy loss.

The pieces, in the order a token meets them:

1. **Token embedding**: a lookup table, one learned vector of ``d_model`` numbers per token id.
   There is no position table: positions enter inside attention, through RoPE.
2. **Blocks** (``n_layer`` of them), each ``x = x + attn(norm(x)); x = x + mlp(norm(x))``:
   *pre-norm* residual blocks, so the residual stream carries the signal straight through.

   - **RMSNorm** rescales each vector to unit root-mean-square (no mean subtraction, no bias).
   - **Causal self-attention** with **grouped-query attention** (GQA): ``n_head`` query heads
     share ``n_kv_head`` key/value heads, which shrinks the KV cache at inference time.
     **RoPE** rotates queries and keys by an angle proportional to their position, so a dot
     product depends on how far apart two tokens are. PyTorch's ``scaled_dot_product_attention``
     does the softmax(QK^T/sqrt(d))V with a causal mask (flash kernels on CUDA).
   - **SwiGLU MLP**: ``down(silu(gate(x)) * up(x))``, applied to every position independently.
3. **Final RMSNorm and the LM head**, a linear map back to the vocabulary; its weight is the
   embedding table (tied), which saves ``vocab x d_model`` parameters.

Parameter names and the RoPE layout follow Hugging Face's ``LlamaForCausalLM`` (the "rotate half"
convention), so :mod:`llmkb.model.hf` converts weights by renaming alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmkb.checks import attention_heads, positive


@dataclass
class ModelConfig:
    vocab_size: int = 4096  # must equal the tokenizer's vocabulary size
    context: int = 128  # the longest sequence the model is trained on (RoPE itself has no limit)
    d_model: int = 128  # width of the residual stream
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # query heads; head size = d_model // n_head
    n_kv_head: int = 4  # key/value heads (GQA when < n_head; must divide n_head)
    d_ff: int = 320  # hidden width of the SwiGLU MLP
    rope_theta: float = 10_000.0  # base of RoPE's rotation frequencies
    norm_eps: float = 1e-5
    tie_embeddings: bool = True  # the LM head reuses the embedding table

    def __post_init__(self) -> None:
        positive(self, "vocab_size", "context", "d_model", "n_layer", "n_head", "n_kv_head", "d_ff", "rope_theta")
        positive(self, "norm_eps")
        attention_heads(self, self.d_model, self.n_head, self.n_kv_head)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 whatever the input dtype (as Llama does)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_tables(head_dim: int, positions: torch.Tensor, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of RoPE's angles for ``positions`` ``(T,)`` or ``(B, T)``: each ``(..., T, head_dim)``.

    Pair ``i`` of a head rotates at frequency ``theta ** (-2i / head_dim)``: fast for the first
    pairs (fine position), slow for the last (coarse position).

    >>> cos, sin = rope_tables(4, torch.arange(3), 10_000.0)
    >>> cos.shape, float(cos[0, 0]), round(float(sin[1, 0]), 4)
    (torch.Size([3, 4]), 1.0, 0.8415)
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angles = positions.float()[..., None] * inv_freq  # (..., T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (..., T, head_dim): "rotate half" pairs i with i + head_dim/2
    if angles.dim() == 3:  # one row of positions per sequence: broadcast over the heads
        angles = angles[:, None]  # (B, 1, T, head_dim)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (x_i, x_{i+d/2}) pair of ``x`` (B, nh, T, hs) by its angle."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class KVCache:
    """The keys and values every layer computed for the tokens processed so far.

    Without it, generating token ``t + 1`` recomputes the keys and values of all ``t`` earlier
    tokens, which never change. With it, each new token costs one position of work. Tensors are
    allocated once for ``max_len`` positions (a "static" cache: fixed shapes suit ``torch.compile``)
    and ``length`` says how many are filled. Shape ``(n_layer, B, n_kv_head, max_len, head_dim)``:
    with grouped-query attention only ``n_kv_head`` heads are stored, which is the memory GQA saves.
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, device=None, dtype=torch.float32):
        shape = (config.n_layer, batch_size, config.n_kv_head, max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new keys/values ``(B, nkv, T, hs)`` after the filled ones; return all of them
        ``(B, nkv, length + T, hs)``."""
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"the KV cache holds {self.max_len} positions; {end} are needed")
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def crop(self, length: int) -> None:
        """Forget every position from ``length`` on (speculative decoding drops rejected tokens so)."""
        self.length = min(self.length, length)

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the cache of sequences ``rows`` (beam search copies and drops beams)."""
        self.k, self.v = self.k[:, rows], self.v[:, rows]

    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()


def attention_mask_for(T: int, past: int, padding: torch.Tensor | None, device) -> torch.Tensor:
    """Which keys each of ``T`` new queries may see, after ``past`` cached positions: ``(T, S)`` or ``(B, 1, T, S)``.

    Causal: query ``past + i`` sees keys ``0 .. past + i``. With ``padding`` ``(B, S)`` (1 = real
    token, 0 = padding, as in Hugging Face's ``attention_mask``) padded keys are hidden too; a
    padding query still sees itself, so that no row is empty (its output is never used).

    >>> attention_mask_for(2, 1, None, "cpu").int().tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    S = past + T
    query = torch.arange(past, S, device=device)[:, None]
    key = torch.arange(S, device=device)[None, :]
    mask = key <= query  # (T, S)
    if padding is None:
        return mask
    mask = mask[None] & padding[:, None, :S].bool()  # (B, T, S)
    return (mask | (key == query)[None])[:, None]  # (B, 1, T, S)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.n_head * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.d_model, config.n_kv_head * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.d_model, config.n_kv_head * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.n_head * config.head_dim, config.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
        return_weights: bool = False,
    ):
        """``mask`` None means plain causal attention over ``x`` itself (training, or a first pass)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nkv, S, hs): the cached positions, then these T
        gqa = self.n_kv_head != self.n_head  # query head h reads key/value head h // (n_head // n_kv_head)
        if return_weights:  # the slow, explicit path, for plots of who attends to whom
            if gqa:
                group = self.n_head // self.n_kv_head
                k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, nh, S, hs)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, nh, T, S)
            allowed = mask if mask is not None else torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            y = weights @ v
        else:
            weights = None
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=gqa
            )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # (B, T, d_model)
        return self.o_proj(y), weights


class SwiGLU(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.up_proj = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down_proj = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask=None,
        cache=None,
        layer: int = 0,
        return_weights: bool = False,
    ):
        attn, weights = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer, return_weights)
        x = x + attn
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, weights


class GPT(nn.Module):
    """The whole model. ``GPT(ModelConfig(vocab_size=...))``; ``model(ids, targets)`` -> (logits, loss)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.apply(self._init_weights)
        # GPT-2's trick: the projections that write into the residual stream start smaller, so
        # the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters counted once (a tied embedding is one table)."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token: 6N for the weights plus 12*L*d*T for attention (PaLM's estimate)."""
        T = seq_len or self.config.context
        return 6 * self.num_params() + 12 * self.config.n_layer * self.config.d_model * T

    def _run(self, idx, cache, attention_mask, position_ids, with_weights: bool) -> tuple[torch.Tensor, list]:
        """Every block, then the final norm: ``(hidden states (B, T, d_model), each layer's weights or None)``."""
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        x = self.embed_tokens(idx)  # (B, T, d_model)
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=idx.device)
        cos, sin = rope_tables(self.config.head_dim, position_ids, self.config.rope_theta)
        # Plain causal attention needs no mask (SDPA's is_causal); cached positions or padding do.
        needs_mask = attention_mask is not None or (past > 0 and T > 1)
        mask = attention_mask_for(T, past, attention_mask, idx.device) if needs_mask else None
        if mask is None and past > 0:  # one new token after the cache: it may see every position
            mask = torch.ones(1, past + 1, dtype=torch.bool, device=idx.device)
        attention = []
        for i, block in enumerate(self.layers):
            x, weights = block(x, cos, sin, mask, cache, i, with_weights)
            attention.append(weights)
        if cache is not None:
            cache.length += T
        return self.norm(x), attention  # (B, T, d_model)

    def hidden_states(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final hidden states ``(B, T, d_model)``: after the last block and the final norm, before the LM head.

        What :meth:`forward` turns into logits, and what other heads read (the reward model's scalar
        head, :mod:`llmkb.rl.reward`). Arguments as in :meth:`forward`.
        """
        return self._run(idx, cache, attention_mask, position_ids, with_weights=False)[0]

    def attention_maps(
        self,
        idx: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Every layer's attention weights ``(B, n_head, T, T)``: row ``t`` says how much position ``t`` reads
        each position.

        For plots of who attends to whom. Each block computes softmax(QK^T / sqrt(d)) explicitly
        instead of through SDPA's fused kernel, which never forms the weights; slower, the same
        outputs (the tests check it). Arguments as in :meth:`forward`, without a cache.
        """
        return self._run(idx, None, attention_mask, position_ids, with_weights=True)[1]

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits (B, T, vocab), loss)``; the loss is the mean cross-entropy against ``targets`` (-100 is
        ignored), or None without targets. Attention weights come from :meth:`attention_maps`.

        For generation: ``cache`` holds earlier positions (``idx`` is only the new tokens, and the
        cache grows by ``T``); ``attention_mask`` ``(B, S)`` marks real tokens (1) and left padding
        (0) over cached and new positions; ``position_ids`` ``(B, T)`` gives each new token's
        position (after left padding, a row's first real token has position 0).
        """
        logits = self.lm_head(self.hidden_states(idx, cache, attention_mask, position_ids))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        stop_id: int | None = None,
    ) -> torch.Tensor:
        """Extend ``idx`` (B, T) one token at a time: run the model, take the last position's
        distribution, pick a token (greedy when ``temperature`` is 0, else sample), append, repeat.

        The whole sequence is recomputed at every step, which keeps the loop short to read; a KV
        cache avoids that work. Sequences longer than the context keep their last ``context`` tokens.
        """
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.context :])
            logits = logits[:, -1, :].float()  # (B, vocab): only the last position predicts the future
            if temperature == 0:
                next_id = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_id = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)
            if stop_id is not None and bool((next_id == stop_id).all()):
                break
        return idx


def configure_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], device: str
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms), as one fused kernel per step.

    ``fused`` runs the whole update for all parameters in one kernel instead of a loop of small
    ones; PyTorch has it on CUDA and, since 2.4, on CPU (about 3x faster for our tiny model there).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device.startswith(("cuda", "cpu")))
