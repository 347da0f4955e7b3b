"""The KV cache, left padding and position ids of our GPT: the same logits as one full forward pass."""

from __future__ import annotations

import torch

from llmkb.model.gpt import GPT, KVCache, ModelConfig
from llmkb.model.hf import to_hf

CONFIG = ModelConfig(vocab_size=97, context=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64)


def model() -> GPT:
    torch.manual_seed(0)
    return GPT(CONFIG).eval()


@torch.no_grad()
def test_prefill_then_one_token_at_a_time_equals_the_full_pass():
    m = model()
    ids = torch.randint(0, 97, (3, 20))
    full = m(ids)[0]
    cache = KVCache(CONFIG, batch_size=3, max_len=20)
    parts = [m(ids[:, :12], cache=cache)[0]]
    for t in range(12, 20):
        parts.append(m(ids[:, t : t + 1], cache=cache)[0])
    assert cache.length == 20
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


@torch.no_grad()
def test_several_new_tokens_after_a_cache_are_causal_among_themselves():
    m = model()
    ids = torch.randint(0, 97, (2, 16))
    cache = KVCache(CONFIG, batch_size=2, max_len=16)
    m(ids[:, :6], cache=cache)
    chunk = m(ids[:, 6:16], cache=cache)[0]
    assert torch.allclose(chunk, m(ids)[0][:, 6:16], atol=1e-5)


@torch.no_grad()
def test_left_padded_rows_equal_their_unpadded_selves():
    m = model()
    lengths = [5, 9, 12]
    rows = [torch.randint(0, 97, (n,)) for n in lengths]
    width = max(lengths)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :], mask[i, width - len(row) :] = row, 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = KVCache(CONFIG, batch_size=3, max_len=width + 1)
    logits = m(ids, cache=cache, attention_mask=mask, position_ids=positions)[0]
    for i, row in enumerate(rows):
        alone = m(row[None])[0][0]
        assert torch.allclose(logits[i, width - len(row) :], alone, atol=1e-5)
    # and one decoding step for all rows at once
    step = torch.randint(0, 97, (3, 1))
    mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], dim=1)
    nxt = m(step, cache=cache, attention_mask=mask, position_ids=positions[:, -1:] + 1)[0]
    for i, row in enumerate(rows):
        alone = m(torch.cat([row, step[i]])[None])[0][0, -1]
        assert torch.allclose(nxt[i, -1], alone, atol=1e-5)


@torch.no_grad()
def test_padding_and_positions_match_hugging_face():
    m = model()
    hf = to_hf(m)
    ids = torch.randint(0, 97, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, :4] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    ours = m(ids, attention_mask=mask, position_ids=positions)[0]
    theirs = hf(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    assert (ours[real] - theirs[real]).abs().max() <= 1e-5


def test_the_cache_refuses_to_overflow_and_can_be_cropped_and_reordered():
    m = model()
    cache = KVCache(CONFIG, batch_size=2, max_len=8)
    with torch.no_grad():
        m(torch.randint(0, 97, (2, 8)), cache=cache)
        try:
            m(torch.randint(0, 97, (2, 1)), cache=cache)
        except ValueError as e:
            assert "holds 8 positions" in str(e)
        else:
            raise AssertionError("an overflowing cache must raise")
    cache.crop(5)
    assert cache.length == 5
    before = cache.k[:, 1].clone()
    cache.reorder(torch.tensor([1, 1]))
    assert torch.equal(cache.k[:, 0], before) and cache.nbytes() == 2 * 2 * 2 * 2 * 8 * 8 * 4
