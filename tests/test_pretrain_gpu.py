"""The pretraining loop on a CUDA device: bf16 autocast, torch.compile, fused AdamW, MFU in the log.

Skipped where no CUDA device is present (``gpu`` marker, see conftest.py).
"""

from __future__ import annotations

import math

import pytest
import torch

from llmkb.device import autocast, peak_flops, pick_device
from llmkb.model.gpt import GPT, ModelConfig, configure_optimizer
from test_pretrain import (
    TRAIN_TEXTS,
    VAL_TEXTS,
    log_of,
    run_training,
    tiny_config,
    tiny_tokenizer,
)  # tests/ is on sys.path

pytestmark = pytest.mark.gpu


def test_auto_picks_cuda_and_the_optimizer_is_fused():
    assert pick_device("auto") == "cuda"
    model = GPT(ModelConfig(vocab_size=64, d_model=32, n_head=2, n_kv_head=1, d_ff=64)).cuda()
    optimizer = configure_optimizer(model, 1e-3, 0.1, (0.9, 0.95), "cuda")
    assert optimizer.defaults["fused"] is True


def test_bf16_autocast_logits_close_to_fp32():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=256, context=64, d_model=64, n_head=4, n_kv_head=2, d_ff=128)).cuda()
    ids = torch.randint(0, 256, (2, 64), device="cuda")
    with torch.no_grad():
        full = model(ids)[0]
        with autocast("cuda"):
            half = model(ids)[0]
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 0.1


def test_compiled_bf16_training_learns_and_logs_mfu(tmp_path):
    from llmkb.pretrain.shards import build_shards

    shards = tmp_path / "shards"
    build_shards({"train": TRAIN_TEXTS, "val": VAL_TEXTS}, tiny_tokenizer(), shards)
    summary = run_training(tiny_config(device="auto", compile="auto", max_steps=60), shards, tmp_path / "run")
    log = log_of(tmp_path / "run")
    assert math.isfinite(summary["val_loss"]) and summary["val_loss"] < log[0]["loss"] - 1.0
    if peak_flops("cuda"):  # a GPU whose peak we know (H100, A100, ...)
        assert all(0 < r["mfu"] < 1 for r in log)
