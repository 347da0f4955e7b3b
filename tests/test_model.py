"""The GPT behaves as a causal language model should: shapes, causality, GQA, RoPE, and it learns."""

from __future__ import annotations

import math

import pytest
import torch

from llmkb.model.gpt import GPT, ModelConfig, apply_rope, configure_optimizer, rope_tables

SMALL = ModelConfig(vocab_size=64, context=16, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=48)


def make(config: ModelConfig = SMALL, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config)


def ids(config: ModelConfig = SMALL, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, config.vocab_size, (batch, config.context), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_output_shapes():
    model, x = make().eval(), ids()
    logits, loss = model(x)
    assert logits.shape == (2, SMALL.context, SMALL.vocab_size) and loss is None
    logits, loss = model(x, targets=x)
    assert loss.shape == ()
    attention = model.attention_maps(x)
    assert len(attention) == SMALL.n_layer
    for weights in attention:
        assert weights.shape == (2, SMALL.n_head, SMALL.context, SMALL.context)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, SMALL.n_head, SMALL.context))
        assert torch.all(weights.triu(diagonal=1) == 0)  # nobody attends to the future


@torch.no_grad()
def test_shorter_sequences_and_ignored_targets():
    model, x = make().eval(), ids()[:, :5]
    targets = x.clone()
    targets[:, -2:] = -100
    logits, loss = model(x, targets)
    assert logits.shape == (2, 5, SMALL.vocab_size)
    expected = torch.nn.functional.cross_entropy(logits[:, :3].reshape(-1, SMALL.vocab_size), x[:, :3].reshape(-1))
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("t", [0, 7, 15])
@torch.no_grad()
def test_causality(t):
    model, x = make().eval(), ids()
    y = x.clone()
    y[:, t] = (y[:, t] + 1) % SMALL.vocab_size
    a, b = model(x)[0], model(y)[0]
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t], b[:, t])  # ... but the changed position itself sees the change


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
@torch.no_grad()
def test_explicit_attention_path_equals_sdpa(n_kv_head):
    config = ModelConfig(**{**SMALL.to_dict(), "n_kv_head": n_kv_head})
    attention = make(config).eval().layers[0].self_attn
    h = torch.randn(2, config.context, config.d_model, generator=torch.Generator().manual_seed(2))
    cos, sin = rope_tables(config.head_dim, torch.arange(config.context), config.rope_theta)
    fast, no_weights = attention(h, cos, sin)
    slow, weights = attention(h, cos, sin, return_weights=True)  # the path attention_maps takes
    assert no_weights is None and weights.shape == (2, config.n_head, config.context, config.context)
    assert (fast - slow).abs().max() <= 1e-5


@torch.no_grad()
def test_gqa_equals_mha_with_repeated_kv_heads():
    """GQA with 2 kv heads is MHA whose k/v projections hold each kv head twice, side by side."""
    gqa = make(SMALL).eval()
    mha = GPT(ModelConfig(**{**SMALL.to_dict(), "n_kv_head": SMALL.n_head})).eval()
    group, hs = SMALL.n_head // SMALL.n_kv_head, SMALL.head_dim
    state = {}
    for name, w in gqa.state_dict().items():
        if name.endswith(("k_proj.weight", "v_proj.weight")):  # (n_kv * hs, d) -> (n_head * hs, d)
            w = w.view(SMALL.n_kv_head, hs, -1).repeat_interleave(group, dim=0).reshape(SMALL.n_head * hs, -1)
        state[name] = w
    mha.load_state_dict(state)
    x = ids()
    assert (gqa(x)[0] - mha(x)[0]).abs().max() <= 1e-5


@torch.no_grad()
def test_initial_loss_is_about_ln_vocab():
    config = ModelConfig(**{**SMALL.to_dict(), "vocab_size": 512})
    model, x = make(config).eval(), ids(config, batch=4)
    _, loss = model(x, targets=torch.roll(x, -1, dims=1))
    assert abs(loss.item() - math.log(512)) < 0.1


def test_tied_embeddings_share_one_table():
    tied, untied = make(), make(ModelConfig(**{**SMALL.to_dict(), "tie_embeddings": False}))
    assert tied.lm_head.weight is tied.embed_tokens.weight
    assert untied.num_params() - tied.num_params() == SMALL.vocab_size * SMALL.d_model


def test_one_adamw_step_changes_every_parameter():
    model, x = make(), ids()
    opt = configure_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), device="cpu")
    decay, no_decay = opt.param_groups
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _, loss = model(x, targets=x)
    loss.backward()
    opt.step()
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p, before[name])]
    assert not unchanged


def test_overfits_one_batch():
    config = ModelConfig(vocab_size=64, context=16, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64)
    model, x = make(config), ids(config, batch=4)
    inputs, targets = x[:, :-1], x[:, 1:]
    opt = configure_optimizer(model, lr=1e-2, weight_decay=0.0, betas=(0.9, 0.95), device="cpu")
    losses = []
    for _ in range(100):
        _, loss = model(inputs, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2, losses[::10]


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"d_model": 30, "n_head": 4}, "not divisible by n_head"),
        ({"n_head": 4, "n_kv_head": 3}, "not a multiple of n_kv_head"),
        ({"d_model": 12, "n_head": 4, "n_kv_head": 4}, "must be even"),
    ],
)
def test_bad_config_raises(fields, words):
    with pytest.raises(ValueError, match=words):
        ModelConfig(**fields)


def rotate(x: torch.Tensor, position: int, theta: float = 10_000.0) -> torch.Tensor:
    """RoPE applied to one head vector ``x`` (hs,) as if it sat at ``position``."""
    cos, sin = rope_tables(x.shape[-1], torch.tensor([position]), theta)
    return apply_rope(x.view(1, 1, 1, -1), cos, sin).view(-1)


def test_rope_preserves_norms():
    x = torch.randn(2, 3, 50, 16, generator=torch.Generator().manual_seed(0))
    cos, sin = rope_tables(16, torch.arange(50), 10_000.0)
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(apply_rope(x[:, :, :1], cos[:1], sin[:1]), x[:, :, :1])  # position 0: no rotation


def test_rope_dot_product_depends_only_on_the_distance():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)
    dots = [rotate(q, m) @ rotate(k, m - 3) for m in (3, 10, 40, 100)]
    for d in dots[1:]:
        torch.testing.assert_close(d, dots[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(rotate(q, 10) @ rotate(k, 2), dots[0], atol=1e-3)  # another distance, another score
