"""Speculative decoding gives exactly the target's greedy tokens, whatever the draft, and saves target passes.

Small random models as in ``tests/test_inference.py``: a target whose end tokens are likely (so
that rows stop at different steps), the target itself as a perfect draft, a noisy copy of it as a
fair draft, and an unrelated smaller model as a bad one. Each answer is compared token for token
with :func:`~llmkb.inference.generate.generate_ids` on the target alone.
"""

from __future__ import annotations

import pytest
import torch

from llmkb.inference.backend import backend_for
from llmkb.inference.generate import GenerationConfig, generate_ids
from llmkb.io import read_json
from llmkb.inference.speculative import DRAFT_MODEL, DRAFT_TRAINING, crop_cache, speculative_generate, train_draft
from llmkb.model.gpt import GPT, KVCache, ModelConfig
from llmkb.model.hf import to_hf

# Fixtures shared with the inference tests (tests/ is on sys.path).
from test_inference import TEXTS, eos, tok  # noqa: F401

PROMPTS = ["The cat", "Xin chào thế giới", "a", "Emoji 👋 are fun. The cat sat on"]
CONTEXT = 64


def random_gpt(vocab_size: int, eos: list[int], seed: int, eos_scale: float = 1.0, **shape) -> GPT:
    torch.manual_seed(seed)
    config = ModelConfig(
        **{
            **dict(
                vocab_size=vocab_size,
                context=CONTEXT,
                d_model=32,
                n_layer=2,
                n_head=4,
                n_kv_head=2,
                d_ff=64,
                tie_embeddings=False,
            ),
            **shape,
        }
    )
    model = GPT(config).eval()
    with torch.no_grad():  # larger weights than the init: varied tokens instead of one repeated
        model.embed_tokens.weight.normal_(0, 1.0)
        model.lm_head.weight.normal_(0, 0.3)
        model.lm_head.weight[eos] *= eos_scale
    return model


@pytest.fixture(scope="module")
def target(tok, eos) -> GPT:
    return random_gpt(len(tok), eos, seed=0, eos_scale=1.6)


@pytest.fixture(scope="module")
def drafts(tok, eos, target) -> dict[str, GPT]:
    noisy = random_gpt(len(tok), eos, seed=0)
    noisy.load_state_dict(target.state_dict())
    torch.manual_seed(1)
    with torch.no_grad():  # 10% noise: the target's choices, often but not always
        for p in noisy.parameters():
            p.add_(torch.randn_like(p) * 0.1 * p.std())
    unrelated = random_gpt(len(tok), eos, seed=7, d_model=16, n_layer=1, n_head=2, n_kv_head=1, d_ff=32)
    return {"same": target, "noisy": noisy, "unrelated": unrelated}


def ids_of(tok, text: str) -> torch.Tensor:
    return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])


def greedy(model, ids: torch.Tensor, n: int, eos: list[int]) -> torch.Tensor:
    return generate_ids(model, ids, None, GenerationConfig(max_new_tokens=n), eos, pad_id=0)[0]


# ----------------------------------------------------------------------------------------------
# the same tokens as the target alone


@pytest.mark.parametrize("k", [1, 2, 5])
def test_equals_target_alone_for_every_draft(target, drafts, tok, eos, k):
    ended = 0
    for name, draft in drafts.items():
        for prompt in PROMPTS:
            ids = ids_of(tok, prompt)
            expected = greedy(target, ids, 30, eos)
            out, stats = speculative_generate(target, draft, ids, 30, k=k, eos_ids=eos)
            assert torch.equal(out, expected), (name, prompt)
            assert stats["new_tokens"] == len(out)
            ended += int(out[-1]) in eos
    assert ended, "some prompt should end at an end token, or the test misses the eos logic"


def test_without_end_tokens_all_tokens_come(target, drafts, tok):
    for draft in drafts.values():
        for k in (1, 3):
            ids = ids_of(tok, "The cat")
            out, stats = speculative_generate(target, draft, ids, 40, k=k)
            assert len(out) == 40 and torch.equal(out, greedy(target, ids, 40, []))
            assert stats["accepted"] + stats["target_forward_passes"] == 40  # each round: accepted + 1 own token


def test_hf_models_on_either_side(target, drafts, tok, eos):
    hf_target, hf_draft = to_hf(target), to_hf(drafts["noisy"])
    for prompt in PROMPTS[:3]:
        ids = ids_of(tok, prompt)
        expected = greedy(target, ids, 25, eos)
        for t, d in [(hf_target, drafts["noisy"]), (target, hf_draft), (hf_target, hf_draft)]:
            out, _ = speculative_generate(t, d, ids, 25, k=3, eos_ids=eos)
            assert torch.equal(out, expected)


# ----------------------------------------------------------------------------------------------
# how well the guessing went


def test_a_perfect_draft_is_always_accepted(target, tok):
    ids = ids_of(tok, "The cat")
    for k in (1, 2, 5):
        out, stats = speculative_generate(target, target, ids, 40, k=k)
        assert stats["acceptance_rate"] == 1.0 and stats["accepted"] == stats["proposed"]
        # the prefill, then rounds of k + 1 tokens (the last one shorter)
        assert stats["target_forward_passes"] == 1 + -(-39 // (k + 1)) < len(out)
        assert stats["draft_forward_passes"] == stats["proposed"]


def test_a_bad_draft_is_mostly_rejected_and_changes_nothing(target, drafts, tok):
    fair = bad = 0.0
    for prompt in PROMPTS:
        ids = ids_of(tok, prompt)
        out, stats = speculative_generate(target, drafts["unrelated"], ids, 40, k=4)
        assert torch.equal(out, greedy(target, ids, 40, []))
        assert stats["accepted"] <= stats["proposed"]
        bad += stats["acceptance_rate"] / len(PROMPTS)
        fair += speculative_generate(target, drafts["noisy"], ids, 40, k=4)[1]["acceptance_rate"] / len(PROMPTS)
    assert bad < 0.3 < fair < 1.0


def test_stats_add_up(target, drafts, tok, eos):
    for draft in drafts.values():
        for prompt in PROMPTS:
            out, s = speculative_generate(target, draft, ids_of(tok, prompt), 30, k=3, eos_ids=eos)
            assert 0 <= s["accepted"] <= s["proposed"] and s["draft_forward_passes"] == s["proposed"]
            assert s["acceptance_rate"] == (round(s["accepted"] / s["proposed"], 4) if s["proposed"] else 0.0)
            assert s["new_tokens"] == len(out) <= s["accepted"] + s["target_forward_passes"]
            assert s["proposed"] <= 3 * (s["target_forward_passes"] - 1)


# ----------------------------------------------------------------------------------------------
# limits and errors


def test_stops_at_the_context_and_at_max_new_tokens(target, drafts, tok):
    long_ids = ids_of(tok, "The cat sat on the mat. " * 8)
    T = long_ids.shape[1]
    assert T < CONTEXT - 5
    for draft in drafts.values():
        out, _ = speculative_generate(target, draft, long_ids, 500, k=4)
        assert len(out) == CONTEXT - T and torch.equal(out, greedy(target, long_ids, 500, []))
        full = torch.cat([long_ids, long_ids], dim=1)[:, : CONTEXT - 1]
        last, _ = speculative_generate(target, draft, full, 10, k=4)
        assert len(last) == 1  # one free position: the prefill's token only
        one, stats = speculative_generate(target, draft, ids_of(tok, "The cat"), 1, k=4)
        assert len(one) == 1 and stats["proposed"] == 0 and stats["target_forward_passes"] == 1
    short_draft = random_gpt(len(tok), [0], seed=3, context=T + 3)  # a draft with less room than the target
    out, _ = speculative_generate(target, short_draft, long_ids, 500, k=4)
    assert torch.equal(out, greedy(target, long_ids, 500, []))


def test_errors_name_the_problem(target, tok, eos):
    ids = ids_of(tok, "The cat")
    with pytest.raises(ValueError, match=r"must be \(1, T\)"):
        speculative_generate(target, target, ids.repeat(2, 1), 5)
    with pytest.raises(ValueError, match="k .* must be an integer >= 1"):
        speculative_generate(target, target, ids, 5, k=0)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1"):
        speculative_generate(target, target, ids, 0)
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        speculative_generate(target, target, ids[:, :0], 5)
    with pytest.raises(ValueError, match="the model's context is 64 tokens"):
        speculative_generate(target, target, torch.zeros(1, CONTEXT, dtype=torch.long), 5)
    other_vocab = random_gpt(len(tok) + 8, [0], seed=4)
    with pytest.raises(ValueError, match="must share the target's tokenizer"):
        speculative_generate(target, other_vocab, ids, 5)


def test_crop_rolls_back_both_caches(target, tok):
    ids = ids_of(tok, "The cat sat on the mat.")
    T = ids.shape[1]
    with torch.no_grad():
        fresh = target(ids)[0][0, -1]
        for model in (target, to_hf(target)):
            backend = backend_for(model)
            cache = backend.start(1, T + 8)  # our KVCache, or transformers' DynamicCache
            backend.step(ids[:, :-1], cache, None, torch.arange(T - 1)[None])
            backend.step(torch.tensor([[5, 6, 7]]), cache, None, torch.arange(T - 1, T + 2)[None])  # three to forget
            crop_cache(cache, T - 1)
            assert (cache.length if isinstance(cache, KVCache) else cache.get_seq_length()) == T - 1
            again = backend.step(ids[:, -1:], cache, None, torch.tensor([[T - 1]]))[0, -1]
            assert torch.allclose(again, fresh, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# a draft trained on the target's shards


def test_train_draft_makes_a_small_model_on_the_same_tokens(tok, tmp_path):
    from llmkb.pretrain.shards import build_shards

    meta = build_shards({"train": TEXTS, "val": TEXTS[:2]}, tok, tmp_path / "shards")
    draft = train_draft(
        tmp_path / "shards", tmp_path / "draft", steps=4, context=16, batch_size=4, eval_tokens=256, progress=False
    )
    c = draft.config
    assert {f: getattr(c, f) for f in DRAFT_MODEL} == DRAFT_MODEL
    assert c.vocab_size == meta["vocab_size"] and c.context == 16 and not draft.training
    assert (tmp_path / "draft" / "checkpoint" / "model.safetensors").is_file()
    trained_with = read_json(tmp_path / "draft" / "checkpoint" / "state.json")["train_config"]
    assert {f: trained_with[f] for f in DRAFT_TRAINING} == DRAFT_TRAINING  # text only, at the draft's rate
    target = random_gpt(meta["vocab_size"], [0], seed=0)
    ids = ids_of(tok, "The cat")
    out, _ = speculative_generate(target, draft, ids, 20, k=3)
    assert torch.equal(out, greedy(target, ids, 20, []))
    with pytest.raises(ValueError, match="not PretrainConfig fields: colour"):
        train_draft(tmp_path / "shards", tmp_path / "x", steps=2, colour="red")
