"""Data parallelism: 2 processes (torchrun, gloo on the CPU) and gradient accumulation train the same
model as one process on the same global batch.

Why "within a tolerance" and not bitwise: both compute the same mean gradient, but add it up in a
different order. With grad_accum=2 the loss of 4 windows is the mean of two 2-window means and the
gradient is accumulated in two backward passes; under DDP each process computes the gradient of its
own half and gloo's all-reduce sums the halves and divides by 2. Float addition is not associative,
so the results can differ in the last bits (~1e-7 relative in fp32), and AdamW carries such
differences from step to step. On this tiny model the logged values (loss to 5 decimals, grad_norm
to 4) came out identical; REL leaves room for other BLAS builds and thread counts. A real mistake is
far larger: every micro-batch reading the same rows moved the loss by 3e-3 to 4e-2 relative in the
first steps. The grad norm is compared too, because gradient clipping and AdamW's normalised update
hide a scaled gradient: summing the micro-batch gradients instead of averaging them left every
logged loss identical and only doubled the grad norm.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_pretrain import (  # tests/ is on sys.path under pytest
    TRAIN_TEXTS,
    VAL_TEXTS,
    log_of,
    run_training,
    tiny_config,
    tiny_tokenizer,
)

from llmkb.io import read_json, write_json, write_jsonl
from llmkb.pretrain.checkpoint import read_state
from llmkb.pretrain.shards import build_shards
from llmkb.stages import RunDir, run_stage

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-4  # relative tolerance on the per-step training loss


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_run(root: Path) -> RunDir:
    """A run folder whose data and tokenizer stages are "done": the tiny corpus and a 300-token BPE."""
    run = RunDir(root)
    data = run.stage("data")
    write_jsonl(data / "train.jsonl", [{"url": f"http://t.test/{i}", "text": t} for i, t in enumerate(TRAIN_TEXTS)])
    write_jsonl(data / "heldout.jsonl", [{"url": f"http://h.test/{i}", "text": t} for i, t in enumerate(VAL_TEXTS)])
    write_json(data / "metrics.json", {})
    tokenizer_dir = run.stage("tokenizer")
    tiny_tokenizer().save_pretrained(tokenizer_dir)
    write_json(tokenizer_dir / "metrics.json", {"vocab_size": 300})
    return run


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "checkpoint" / "model.safetensors")


def assert_close_losses(log_a: list[dict], log_b: list[dict]) -> None:
    assert [r["step"] for r in log_a] == [r["step"] for r in log_b]
    for a, b in zip(log_a, log_b):
        assert b["loss"] == pytest.approx(a["loss"], rel=REL), (a, b)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=REL, abs=2e-4), (a, b)  # logged to 4 decimals
        if "val_loss" in a:
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=REL), (a, b)


def test_two_processes_under_torchrun_train_like_one(tmp_path):
    steps = 8
    ddp_run = tiny_run(tmp_path / "ddp")
    single_run = RunDir(tmp_path / "single")
    shutil.copytree(ddp_run.root, single_run.root)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    # The `--` matters: without it torchrun's own parser reads llmkb's `--run` as an ambiguous prefix of
    # its `--run-path` and exits ("ambiguous option: --run could match --run-path, --run_path").
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "llmkb",
        "--",
        "pretrain",
        "--profile",
        "quick",
        "--runs-root",
        str(tmp_path),
        "--run",
        "ddp",
        "--max-steps",
        str(steps),
        "--device",
        "cpu",
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # one process, the same global batch (quick profile: batch_size 8 = 2 processes x 4 windows)
    single = run_stage("pretrain", single_run, "quick", max_steps=steps, device="cpu", progress=False)
    ddp_out, single_out = ddp_run.root / "pretrain", single_run.root / "pretrain"
    ddp = read_json(ddp_out / "metrics.json")  # written once, by process 0
    assert ddp["steps"] == single["steps"] == steps
    assert read_state(ddp_out / "checkpoint")["step"] == steps
    assert (ddp_out / "model" / "model.safetensors").exists() and (ddp_out / "loss.png").exists()
    log_ddp, log_single = log_of(ddp_out), log_of(single_out)
    assert log_ddp[-1]["loss"] < log_ddp[0]["loss"] - 0.5  # it learns
    assert_close_losses(log_single, log_ddp)
    w_ddp, w_single = final_weights(ddp_out), final_weights(single_out)
    for name, w in w_single.items():
        torch.testing.assert_close(w_ddp[name], w, rtol=1e-3, atol=1e-4)


def test_gradient_accumulation_trains_like_one_big_batch(tmp_path):
    shards = tmp_path / "shards"
    build_shards({"train": TRAIN_TEXTS, "val": VAL_TEXTS}, tiny_tokenizer(), shards)
    one = run_training(tiny_config(max_steps=20), shards, tmp_path / "accum1")
    two = run_training(tiny_config(max_steps=20, grad_accum=2), shards, tmp_path / "accum2")
    assert one["steps"] == two["steps"] == 20
    assert_close_losses(log_of(tmp_path / "accum1"), log_of(tmp_path / "accum2"))
    w1, w2 = final_weights(tmp_path / "accum1"), final_weights(tmp_path / "accum2")
    for name, w in w1.items():
        torch.testing.assert_close(w2[name], w, rtol=1e-3, atol=1e-4)
    # and it is the split that differs, not the batches: grad_accum=4 (1 window per micro-batch) agrees too
    four = run_training(tiny_config(max_steps=20, grad_accum=4), shards, tmp_path / "accum4")
    assert four["steps"] == 20
    assert_close_losses(log_of(tmp_path / "accum1"), log_of(tmp_path / "accum4"))
