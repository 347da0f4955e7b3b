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
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")
        if (self.d_model // self.n_head) % 2:
            raise ValueError(f"head size {self.d_model // self.n_head} must be even for RoPE")

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
    """cos and sin of RoPE's angles for ``positions``: each ``(T, head_dim)``.

    Pair ``i`` of a head rotates at frequency ``theta ** (-2i / head_dim)``: fast for the first
    pairs (fine position), slow for the last (coarse position).

    >>> cos, sin = rope_tables(4, torch.arange(3), 10_000.0)
    >>> cos.shape, float(cos[0, 0]), round(float(sin[1, 0]), 4)
    (torch.Size([3, 4]), 1.0, 0.8415)
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, head_dim): "rotate half" pairs i with i + head_dim/2
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (x_i, x_{i+d/2}) pair of ``x`` (B, nh, T, hs) by its angle."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.n_head * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.d_model, config.n_kv_head * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.d_model, config.n_kv_head * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.n_head * config.head_dim, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, return_weights: bool = False):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        gqa = self.n_kv_head != self.n_head  # query head h reads key/value head h // (n_head // n_kv_head)
        if return_weights:  # the slow, explicit path, for plots of who attends to whom
            if gqa:
                group = self.n_head // self.n_kv_head
                k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, nh, T, hs)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, nh, T, T)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = weights @ v
        else:
            weights = None
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)  # (B, nh, T, hs)
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

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, return_weights: bool = False):
        attn, weights = self.self_attn(self.input_layernorm(x), cos, sin, return_weights)
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

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, return_attention: bool = False):
        """Logits ``(B, T, vocab)``; with ``targets`` also the mean cross-entropy (targets of -100 are ignored).

        With ``return_attention`` a third value: every layer's attention weights ``(B, nh, T, T)``.
        """
        B, T = idx.shape
        x = self.embed_tokens(idx)  # (B, T, d_model)
        cos, sin = rope_tables(self.config.head_dim, torch.arange(T, device=idx.device), self.config.rope_theta)
        attention = []
        for block in self.layers:
            x, weights = block(x, cos, sin, return_attention)
            attention.append(weights)
        logits = self.lm_head(self.norm(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        if return_attention:
            return logits, loss, attention
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, stop_id: int | None = None) -> torch.Tensor:
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


def configure_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], device: str) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms), as one fused kernel per step.

    ``fused`` runs the whole update for all parameters in one kernel instead of a loop of small
    ones; PyTorch has it on CUDA and, since 2.4, on CPU (about 3x faster for our tiny model there).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device.startswith(("cuda", "cpu")))
