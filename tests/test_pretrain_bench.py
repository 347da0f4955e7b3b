"""The pretraining benchmark runs both loops on the same tiny job; speeds are measured, not asserted."""

from __future__ import annotations

import math

import pytest

from llmkb.pretrain.bench import run_benchmark, to_markdown
from llmkb.pretrain.train import PretrainConfig

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 30,
    "Language models predict the next token from the ones before it.\n" * 30,
    "def add(a, b):\n    return a + b\n" * 20,
    "Paris is the capital of France. Berlin is the capital of Germany.\n" * 20,
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from llmkb.pretrain.shards import build_shards
    from llmkb.tokenizer.bpe import BPETokenizer
    from llmkb.tokenizer.hf import to_hf_tokenizer, to_pretrained

    tokenizer = to_pretrained(to_hf_tokenizer(BPETokenizer.train(TEXTS, 300)), model_max_length=64)
    folder = tmp_path_factory.mktemp("bench") / "shards"
    meta = build_shards({"train": TEXTS, "val": TEXTS[:2]}, tokenizer, folder)
    return folder, meta["vocab_size"]


TINY = dict(
    context=16,
    d_model=32,
    n_layer=2,
    n_head=4,
    n_kv_head=2,
    d_ff=48,
    batch_size=4,
    lr=3e-3,
    warmup_steps=2,
    eval_tokens=256,
)


def test_both_loops_train_the_same_job(shards):
    folder, vocab = shards
    r = run_benchmark(folder, PretrainConfig(**TINY), steps=6, warmup=2, threads=1, progress=False)
    assert r["ours_tokens_per_s"] > 0 and r["hf_trainer_tokens_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["ours_tokens_per_s"] / r["hf_trainer_tokens_per_s"], rel=1e-2)
    assert r["ours_wall_tokens_per_s"] > 0 and r["hf_trainer_compute_tokens_per_s"] > 0
    assert (r["steps"], r["batch_size"], r["context"], r["vocab_size"]) == (6, 4, 16, vocab)
    assert r["torch_threads"] == r["hf_torch_threads"] == 1
    ceiling = math.log(vocab) + 0.5  # a model that learned nothing sits near ln(vocab)
    for key in ("ours_final_loss", "hf_final_loss", "ours_val_loss", "hf_val_loss"):
        assert math.isfinite(r[key]) and r[key] < ceiling, (key, r[key])
    # Same weights, batches and optimizer: the two loops follow the same trajectory.
    assert r["hf_final_loss"] == pytest.approx(r["ours_final_loss"], abs=0.1)
    table = to_markdown(r)
    assert "llmkb `train()`" in table and "HF `Trainer`" in table and f"{r['ratio']:.2f}x" in table


def test_gradient_accumulation_gives_the_same_batches(shards):
    folder, _ = shards
    r = run_benchmark(folder, PretrainConfig(**{**TINY, "grad_accum": 2}), steps=4, warmup=1, progress=False)
    assert r["grad_accum"] == 2 and r["hf_trainer_tokens_per_s"] > 0
    assert r["hf_final_loss"] == pytest.approx(r["ours_final_loss"], abs=0.1)


def test_rejects_too_few_steps(shards):
    folder, _ = shards
    with pytest.raises(ValueError, match="warmup"):
        run_benchmark(folder, PretrainConfig(**TINY), steps=3, warmup=2)
    with pytest.raises(ValueError, match="repeat"):
        run_benchmark(folder, PretrainConfig(**TINY), steps=4, warmup=1, repeat=0)


def test_same_start_same_batches_same_losses(shards, tmp_path):
    """With no warmup the two learning-rate schedules coincide, so every step's loss must too."""
    from llmkb.pretrain.bench import _run_hf, _run_ours, bench_config
    from llmkb.pretrain.shards import TokenShards

    folder, _ = shards
    config = bench_config(PretrainConfig(**{**TINY, "warmup_steps": 0}), 5)
    train_data, val_data = TokenShards.open(folder, "train"), TokenShards.open(folder, "val")
    ours = _run_ours(train_data, val_data, config, tmp_path / "ours")
    hf = _run_hf(train_data, val_data, config, tmp_path / "hf", loss_window=1)
    assert [s for s, _ in hf["losses"]] == [1, 2, 3, 4, 5]
    for global_step, loss in hf["losses"]:
        assert loss == pytest.approx(ours["losses"][global_step - 1], abs=1e-3)
    assert hf["val_loss"] == pytest.approx(ours["val_loss"], abs=1e-3)


def test_repeat_alternates_and_keeps_the_fastest(shards):
    folder, _ = shards
    r = run_benchmark(folder, PretrainConfig(**TINY), steps=4, warmup=1, repeat=2, progress=False)
    assert len(r["runs"]) == 2
    assert r["ours_tokens_per_s"] == max(run["ours_tokens_per_s"] for run in r["runs"])
    assert r["hf_trainer_tokens_per_s"] == max(run["hf_trainer_tokens_per_s"] for run in r["runs"])
    assert r["cpu_ratio"] > 0


def test_hf_follows_a_fused_adamw(shards, tmp_path, monkeypatch):
    """Should train() switch to fused AdamW on the CPU, HF gets the fused kernel too, same trajectory."""
    import torch

    import llmkb.model.gpt as gpt
    import llmkb.pretrain.train as train_module
    from llmkb.pretrain.bench import _run_hf, _run_ours, bench_config, hf_optim
    from llmkb.pretrain.shards import TokenShards

    def fused(model, lr, weight_decay, betas, device):
        decay = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)

    monkeypatch.setattr(gpt, "configure_optimizer", fused)
    monkeypatch.setattr(train_module, "configure_optimizer", fused)
    folder, _ = shards
    config = bench_config(PretrainConfig(**{**TINY, "warmup_steps": 0}), 3)
    assert hf_optim(config) == "adamw_torch_fused"
    train_data, val_data = TokenShards.open(folder, "train"), TokenShards.open(folder, "val")
    ours = _run_ours(train_data, val_data, config, tmp_path / "ours")
    hf = _run_hf(train_data, val_data, config, tmp_path / "hf", loss_window=1)
    for global_step, loss in hf["losses"]:
        assert loss == pytest.approx(ours["losses"][global_step - 1], abs=1e-3)
