"""The inference benchmark runs every part on tiny sizes; speeds are measured, not asserted."""

from __future__ import annotations

import pytest
import torch

from llmkb.inference.bench import median_time, run_benchmark, to_markdown
from llmkb.model.gpt import GPT, ModelConfig

TINY = dict(
    new_tokens=6,
    prompt_tokens=4,
    long_prompt_tokens=8,
    batch_sizes=(1, 2),
    context=24,
    repeat=1,
    spec_ks=(1, 3),
    spec_prompts=2,
    spec_prompt_tokens=4,
    spec_new_tokens=6,
    progress=False,
)


def tiny_gpt(seed: int, vocab: int = 300, **shape) -> GPT:
    torch.manual_seed(seed)
    return GPT(
        ModelConfig(
            **{**dict(vocab_size=vocab, context=32, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64), **shape}
        )
    )


def check_consistent(r: dict) -> None:
    for row in r["kv_cache"]:
        assert row["cache_tokens_per_s"] > 0 and row["no_cache_tokens_per_s"] > 0
        assert row["speedup"] == pytest.approx(row["no_cache_s"] / row["cache_s"], rel=0.02)
        assert row["cache_tokens_per_s"] == pytest.approx(
            row["batch_size"] * r["new_tokens"] / row["cache_s"], rel=0.02
        )
    assert [(row["batch_size"], row["prompt_tokens"]) for row in r["kv_cache"]] == [(1, 4), (2, 4), (1, 8)]
    b = r["batching"]
    assert b["batch_size"] == 2 and b["speedup"] == pytest.approx(
        b["tokens_per_s"] / b["batch1_tokens_per_s"], rel=0.02
    )
    s = r["speculative"]
    assert s["target_step_ms"] > 0 and s["draft_step_ms"] > 0 and set(s["verify_step_ms"]) == {"1", "3"}
    for text in s["texts"]:
        assert text["baseline_tokens_per_s"] > 0
        for run in text["runs"]:
            assert run["speedup"] == pytest.approx(text["baseline_s"] / run["seconds"], rel=0.02)
            assert run["predicted_speedup"] > 0 and 0 <= run["accepted"] <= run["proposed"]
            assert run["new_tokens"] == s["prompts"] * s["new_tokens"] and isinstance(run["identical"], bool)
    assert r["torch_threads"] == 1


def test_smoke_run_with_a_given_draft():
    before = torch.get_num_threads()
    r = run_benchmark(tiny_gpt(0), draft=tiny_gpt(1, d_model=16, n_layer=1, n_head=2, n_kv_head=1, d_ff=32), **TINY)
    assert torch.get_num_threads() == before
    check_consistent(r)
    for row in r["vs_hf"]:
        assert row["hf_tokens_per_s"] > 0 and row["ours_loop_hf_model_tokens_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["ours_tokens_per_s"] / row["hf_tokens_per_s"], rel=0.02)
    assert [t["split"] for t in r["speculative"]["texts"]] == ["random"]
    table = to_markdown(r)
    for needed in ("KV cache (tokens/s)", "HF `generate`", "speculative, k = 3", "random ids"):
        assert needed in table


def test_draft_trained_on_shards(tmp_path):
    from llmkb.pretrain.shards import build_shards
    from llmkb.tokenizer.bpe import BPETokenizer
    from llmkb.tokenizer.hf import to_hf_tokenizer, to_pretrained

    texts = ["The quick brown fox jumps over the lazy dog. " * 30, "Language models predict the next token.\n" * 30]
    tok = to_pretrained(to_hf_tokenizer(BPETokenizer.train(texts, 300)))
    meta = build_shards({"train": texts, "val": texts}, tok, tmp_path / "shards")
    target = tiny_gpt(0, vocab=meta["vocab_size"], context=16)
    r = run_benchmark(target, tmp_path / "shards", hf=False, draft_steps=3, **{**TINY, "spec_new_tokens": 20})
    check_consistent(r)
    s = r["speculative"]
    assert r["vs_hf"] == [] and s["draft_steps"] == 3 and s["draft_val_loss"] > 0
    assert [t["split"] for t in s["texts"]] == ["val", "train"] and s["new_tokens"] == 16 - 4  # clamped to the context
    table = to_markdown(r)
    assert "held-out text" in table and "training text" in table and "HF `generate`" not in table


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="do not fit a context of 24"):
        run_benchmark(tiny_gpt(0), **{**TINY, "new_tokens": 30})
    with pytest.raises(ValueError, match="repeat must be"):
        run_benchmark(tiny_gpt(0), **{**TINY, "repeat": 0})
    with pytest.raises(ValueError, match="needs a draft model or the shards"):
        run_benchmark(tiny_gpt(0), hf=False, **TINY)
    assert median_time(lambda n: n, 4, repeat=3)[1] == 4
