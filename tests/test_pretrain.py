"""Pretraining: token shards, the learning-rate schedule, the loop (exact resume, interrupts, NaN),
checkpoints, and the ``pretrain`` stage on the quick profile.

The unit tests train a 1-layer, 32-wide model on a tiny synthetic corpus with a ~300-token BPE
tokenizer built here, on the CPU (fp32, no compile), so every run takes a fraction of a second and
is bitwise reproducible. The stage tests reuse one quick pretrain run (module-scoped fixture).
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import llmkb.pretrain.checkpoint as checkpoint_module
import llmkb.pretrain.train as train_module
from llmkb.io import read_json, read_jsonl, write_json, write_jsonl
from llmkb.model.gpt import GPT, ModelConfig, configure_optimizer
from llmkb.pretrain.checkpoint import load_checkpoint, read_state, save_checkpoint
from llmkb.pretrain.probes import induction_score
from llmkb.pretrain.shards import EOT, TokenShards, build_shards
from llmkb.pretrain.train import PretrainConfig, lr_at, train
from llmkb.training import NonFiniteLoss

# ------------------------------------------------------------------------------------------------
# a tiny corpus, tokenizer and config

NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"]
FRUITS = ["apples", "pears", "plums", "figs", "grapes", "limes"]
PLACES = ["the market", "the garden", "the river", "the old mill", "the station"]


def make_texts(n: int, seed: int) -> list[str]:
    """``n`` short synthetic documents with enough regularity for a tiny model to learn quickly."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        lines = [
            f"{rng.choice(NAMES)} took {rng.randint(2, 9)} {rng.choice(FRUITS)} to {rng.choice(PLACES)}."
            for _ in range(rng.randint(3, 8))
        ]
        docs.append(" ".join(lines) + "\n")
    return docs


TRAIN_TEXTS = make_texts(120, seed=0)  # ~25 KB
VAL_TEXTS = make_texts(20, seed=1)


def tiny_tokenizer(texts: list[str] = TRAIN_TEXTS, vocab_size: int = 300):
    """A ``PreTrainedTokenizerFast`` over our own BPE (256 bytes + merges + 3 special tokens)."""
    from llmkb.tokenizer.bpe import BPETokenizer
    from llmkb.tokenizer.hf import to_hf_tokenizer, to_pretrained

    return to_pretrained(to_hf_tokenizer(BPETokenizer.train(texts, vocab_size=vocab_size)))


def tiny_config(**overrides) -> PretrainConfig:
    fields = dict(
        context=16,
        d_model=32,
        n_layer=1,
        n_head=2,
        n_kv_head=1,
        d_ff=64,
        batch_size=4,
        repeat_windows=0,  # text only, unless a test asks for them
        max_steps=30,
        warmup_steps=5,
        lr=1e-2,
        eval_every=10,
        eval_tokens=512,
        checkpoint_every=10,
        device="cpu",
        compile="no",
        progress=False,
    )
    return PretrainConfig(**{**fields, **overrides})


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def run_training(config: PretrainConfig, shards: Path, out: Path) -> dict:
    return train(config, TokenShards.open(shards, "train"), TokenShards.open(shards, "val"), out)


def log_of(out: Path) -> list[dict]:
    return list(read_jsonl(out / "log.jsonl"))


def losses(log: list[dict]) -> list[tuple]:
    """What must be identical between two runs of the same config (timings are not)."""
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"], r.get("val_loss")) for r in log]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "checkpoint" / "model.safetensors")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer) -> Path:
    out = tmp_path_factory.mktemp("shards")
    build_shards({"train": TRAIN_TEXTS, "val": VAL_TEXTS}, tokenizer, out)
    return out


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, shards) -> tuple[Path, dict]:
    """The reference run: tiny_config() uninterrupted, 30 steps."""
    out = tmp_path_factory.mktemp("run_a")
    return out, run_training(tiny_config(), shards, out)


# ------------------------------------------------------------------------------------------------
# shards


def test_shards_hold_every_document_then_the_eot_id(tokenizer, shards):
    meta = read_json(shards / "shards.json")
    eot = tokenizer.convert_tokens_to_ids(EOT)
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == len(tokenizer) == 300 and meta["eot_id"] == eot
    expected = [i for text in TRAIN_TEXTS for i in [*ids_of(tokenizer, text), eot]]
    on_disk = np.fromfile(shards / "train_0000.bin", dtype=np.uint16)
    assert on_disk.tolist() == expected
    train_meta = meta["splits"]["train"]
    assert train_meta["files"] == ["train_0000.bin"] and train_meta["documents"] == len(TRAIN_TEXTS)
    assert train_meta["tokens"] == sum(len(ids_of(tokenizer, t)) for t in TRAIN_TEXTS) + len(TRAIN_TEXTS)
    assert int((on_disk == eot).sum()) == len(TRAIN_TEXTS)  # the texts hold no <|endoftext|> of their own
    opened = TokenShards.open(shards, "train")
    assert opened.arrays[0].dtype == np.uint16 and opened.tokens == train_meta["tokens"]
    with pytest.raises(KeyError, match="no split 'test'"):
        TokenShards.open(shards, "test")


def test_small_shards_split_the_same_ids_over_several_files(tokenizer, shards, tmp_path):
    meta = build_shards({"train": TRAIN_TEXTS}, tokenizer, tmp_path, shard_tokens=1000)
    files = meta["splits"]["train"]["files"]
    assert len(files) >= 5 and files[:2] == ["train_0000.bin", "train_0001.bin"]
    sizes = [len(np.fromfile(tmp_path / f, dtype=np.uint16)) for f in files]
    assert sizes[:-1] == [1000] * (len(files) - 1) and 0 < sizes[-1] <= 1000
    split = np.concatenate([np.fromfile(tmp_path / f, dtype=np.uint16) for f in files])
    assert split.tolist() == np.fromfile(shards / "train_0000.bin", dtype=np.uint16).tolist()
    assert meta["splits"]["train"]["tokens"] == sum(sizes)


def test_batch_windows_are_real_slices_and_targets_are_shifted_inputs(tokenizer, tmp_path):
    build_shards({"train": TRAIN_TEXTS}, tokenizer, tmp_path, shard_tokens=1000)
    data = TokenShards.open(tmp_path, "train")
    x, y = data.batch(16, 24, torch.Generator().manual_seed(7))
    assert x.shape == y.shape == (16, 24) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # every position predicts the next token
    windows = [np.lib.stride_tricks.sliding_window_view(np.asarray(a, dtype=np.int64), 25) for a in data.arrays]
    for row in torch.cat([x, y[:, -1:]], dim=1).numpy():
        # a window of one shard (never straddling two files)
        assert any((w == row).all(axis=1).any() for w in windows)
    again = data.batch(16, 24, torch.Generator().manual_seed(7))
    assert torch.equal(again[0], x) and torch.equal(again[1], y)
    other = data.batch(16, 24, torch.Generator().manual_seed(8))
    assert not torch.equal(other[0], x)


def test_sequential_windows_cover_the_split_in_order(shards):
    data = TokenShards.open(shards, "val")
    batches = list(data.sequential(4, 16, max_tokens=200))
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.shape == (200 // 16, 16)  # 12 non-overlapping windows fit in 200 tokens
    flat = np.asarray(data.arrays[0], dtype=np.int64)
    assert x.flatten().tolist() == flat[: 12 * 16].tolist()
    assert y.flatten().tolist() == flat[1 : 12 * 16 + 1].tolist()


def test_a_corpus_shorter_than_one_window_names_shards_json(tokenizer, tmp_path):
    build_shards({"train": ["tiny"], "val": ["tiny"]}, tokenizer, tmp_path)
    data = TokenShards.open(tmp_path, "train")
    assert data.tokens < 17
    data.check_window(data.tokens - 1)  # exactly one window fits: fine
    with pytest.raises(ValueError, match=r"shards\.json.*fewer than one training window of 17"):
        data.check_window(16)
    with pytest.raises(ValueError, match=r"shards\.json"):  # the loop checks before it builds anything
        run_training(tiny_config(), tmp_path, tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoint").exists()


def test_an_empty_focused_mix_names_the_corpus_and_the_setting(tmp_path):
    from llmkb.pretrain.stage import training_mix

    write_jsonl(tmp_path / "train.jsonl", [{"url": "http://a.test/", "text": "ordinary text"}])
    write_json(tmp_path / "miniweb" / "manifest.json", {"entities": [], "passages": []})  # nothing planted
    with pytest.raises(ValueError, match=r"train\.jsonl: the focused mix is empty .*filler_bytes=0"):
        training_mix(tmp_path, PretrainConfig(filler_bytes=0))
    texts, info = training_mix(tmp_path, PretrainConfig(filler_bytes=5))
    assert texts == ["ordinary text"] and info["planted_documents"] == 0


def test_more_cpu_processes_than_cores_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setattr(train_module.os, "cpu_count", lambda: 2)
    with pytest.raises(ValueError, match=r"WORLD_SIZE=3: 3 training processes on 2 CPU core\(s\)"):
        train_module.init_distributed("cpu")


def test_unigram_loss_by_hand():
    train_split = TokenShards([np.array([0, 0, 1], np.uint16), np.array([2], np.uint16)], 4, Path("shards.json"))
    val_split = TokenShards([np.array([0, 3], np.uint16)], 4, Path("shards.json"))
    # add-one counts: token 0: 1+2, 1: 1+1, 2: 1+1, 3: 1+0 -> 3, 2, 2, 1 out of 8
    expected = -(math.log(3 / 8) + math.log(1 / 8)) / 2
    assert train_split.unigram_loss(val_split) == pytest.approx(expected, rel=1e-12)
    assert train_split.unigram_loss(train_split) == pytest.approx(-(2 * math.log(3 / 8) + 2 * math.log(2 / 8)) / 4)


# ------------------------------------------------------------------------------------------------
# learning-rate schedule


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    c = PretrainConfig(lr=6e-3, warmup_steps=20, max_steps=200, min_lr_ratio=0.1)
    warm = [lr_at(s, c) for s in range(20)]
    assert warm == pytest.approx([6e-3 * (s + 1) / 20 for s in range(20)])
    assert warm[-1] == pytest.approx(6e-3)  # the peak at the end of warmup
    decay = [lr_at(s, c) for s in range(20, 201)]
    assert decay[0] == pytest.approx(6e-3)
    assert all(a > b for a, b in zip(decay, decay[1:]))  # strictly decreasing after warmup
    assert decay[-1] == pytest.approx(6e-4)  # lr * min_lr_ratio at max_steps
    assert lr_at(110, c) == pytest.approx(6e-4 + 0.5 * (6e-3 - 6e-4))  # half way: the mean of peak and floor
    assert lr_at(500, c) == pytest.approx(6e-4)  # and it stays there
    assert max(lr_at(s, c) for s in range(300)) == pytest.approx(6e-3)


# ------------------------------------------------------------------------------------------------
# the training loop


def test_the_loss_goes_down_and_the_summary_matches_the_log(run_a, tokenizer):
    out, summary = run_a
    log = log_of(out)
    config = tiny_config()
    assert [r["step"] for r in log] == list(range(30))  # one record per step
    assert [r["step"] for r in log if "val_loss" in r] == [9, 19, 29]  # every eval_every steps and at the end
    assert all("mfu" not in r for r in log)  # no peak FLOP/s known for a CPU
    assert [r["lr"] for r in log] == [lr_at(s, config) for s in range(30)]
    first, val = log[0]["loss"], [r["val_loss"] for r in log if "val_loss" in r]
    assert first == pytest.approx(math.log(len(tokenizer)), abs=0.3)  # a fresh model guesses uniformly
    assert val[-1] < first - 1.5, (first, val)
    assert val[-1] < val[0]
    params = GPT(config.model_config(len(tokenizer))).num_params()
    assert summary == {
        "steps": 30,
        "finished": True,
        "params": params,
        "train_loss": log[-1]["loss"],
        "val_loss": val[-1],
        "val_perplexity": round(math.exp(val[-1]), 2),
        "tokens_per_s": summary["tokens_per_s"],
        "mfu": None,
        "tokens_seen": 30 * 4 * 16,
        "repeat_tokens_seen": 0,
        "train_s": round(sum(4 * 16 / r["tokens_per_s"] for r in log), 1),
        "copy_second_accuracy": log[-1]["copy_second_accuracy"],
        "copy_loss_drop": round(log[-1]["copy_first_loss"] - log[-1]["copy_second_loss"], 4),
    }
    assert [r["step"] for r in log if "copy_second_loss" in r] == [9, 19, 29]  # the induction probe at every eval
    assert summary["tokens_per_s"] > 0
    state = read_state(out / "checkpoint")
    assert state["step"] == 30 and state["model_config"] == config.model_config(len(tokenizer)).to_dict()
    assert state["train_config"] == dataclasses.asdict(config)


class Copier(torch.nn.Module):
    """A perfect induction head, by hand: the token after the previous occurrence of this one, else token 0."""

    def __init__(self, vocab_size: int = 5000, context: int = 64):
        super().__init__()
        self.config = ModelConfig(vocab_size=vocab_size, context=context, d_model=8, n_layer=1, n_head=1, n_kv_head=1)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a parameter, so device_of finds the CPU

    def forward(self, ids):
        logits = torch.zeros(*ids.shape, self.config.vocab_size)
        for b, row in enumerate(ids.tolist()):
            for t, token in enumerate(row):
                earlier = [i for i in range(t) if row[i] == token]
                logits[b, t, row[earlier[-1] + 1] if earlier else 0] = 30.0
        return logits, None


def test_the_induction_probe_scores_a_copier_right_on_the_second_copy_only():
    score = induction_score(Copier(), vocab_low=1, vocab_high=5000, length=20, trials=10)  # repeats are rare
    assert score.second_accuracy == 1.0 and score.second_loss < 0.01
    assert score.first_accuracy < 0.2 and score.first_loss > 5  # mostly distinct tokens: nothing to copy yet
    untrained = induction_score(
        GPT(ModelConfig(vocab_size=50, context=64, d_model=16, n_layer=1, n_head=2, n_kv_head=2)), 1, 50
    )
    assert untrained.second_accuracy < 0.2  # a fresh model does no better on the second copy than by chance


def test_head_scores_read_the_right_cells_of_the_attention_maps():
    from llmkb.pretrain.probes import head_scores

    model = GPT(ModelConfig(vocab_size=50, context=64, d_model=16, n_layer=2, n_head=2, n_kv_head=2))
    for block in model.layers:
        torch.nn.init.zeros_(block.self_attn.q_proj.weight)  # every score 0: position t spreads 1/(t+1) evenly
    scores = head_scores(model, torch.arange(1, 11))  # 10 tokens, shown twice
    assert scores["maps"].shape == (2, 2, 20, 20)
    uniform = [1 / (t + 1) for t in range(20)]
    previous = sum(uniform[1:]) / 19  # rows 1..19, one cell each
    induction = sum(uniform[10:]) / 10  # rows of the second copy
    assert torch.allclose(scores["previous_token"], torch.full((2, 2), previous), atol=1e-6)
    assert torch.allclose(scores["induction"], torch.full((2, 2), induction), atol=1e-6)


def test_a_run_stopped_and_resumed_is_identical_to_an_uninterrupted_one(run_a, shards, tmp_path):
    out_a, _ = run_a
    first = run_training(tiny_config(stop_after=13), shards, tmp_path)  # 13: not a checkpoint_every multiple
    assert first["steps"] == 13 and first["finished"] is False
    assert read_state(tmp_path / "checkpoint")["step"] == 13
    assert [r["step"] for r in log_of(tmp_path)] == list(range(13))
    second = run_training(tiny_config(), shards, tmp_path)
    assert second["steps"] == 30 and second["finished"] is True
    assert losses(log_of(tmp_path)) == losses(log_of(out_a))  # exactly: same batches, same optimizer state
    wa, wb = weights(out_a), weights(tmp_path)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # a finished run run again changes nothing
    assert run_training(tiny_config(), shards, tmp_path)["steps"] == 30
    assert losses(log_of(tmp_path)) == losses(log_of(out_a))


def test_ctrl_c_leaves_a_checkpoint_and_a_rerun_finishes_the_same_run(run_a, shards, tmp_path, monkeypatch):
    real_lr_at = train_module.lr_at

    def interrupt_at_17(step, config):  # called at the start of every step
        if step == 17:
            raise KeyboardInterrupt
        return real_lr_at(step, config)

    monkeypatch.setattr(train_module, "lr_at", interrupt_at_17)
    with pytest.raises(KeyboardInterrupt):
        run_training(tiny_config(), shards, tmp_path)
    assert read_state(tmp_path / "checkpoint")["step"] == 17  # not the step-10 checkpoint: the work is kept
    assert [r["step"] for r in log_of(tmp_path)] == list(range(17))
    monkeypatch.setattr(train_module, "lr_at", real_lr_at)
    assert run_training(tiny_config(), shards, tmp_path)["finished"]
    assert losses(log_of(tmp_path)) == losses(log_of(run_a[0]))
    assert all(torch.equal(v, weights(run_a[0])[k]) for k, v in weights(tmp_path).items())


def test_ctrl_c_during_validation_keeps_the_log_one_record_per_step(run_a, shards, tmp_path, monkeypatch):
    real_evaluate = train_module.evaluate

    def interrupted(*args, **kwargs):  # first called after step 9 (eval_every=10)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_training(tiny_config(), shards, tmp_path)
    assert read_state(tmp_path / "checkpoint")["step"] == 10  # step 9 updated the weights before validation
    assert [r["step"] for r in log_of(tmp_path)] == list(range(10))
    monkeypatch.setattr(train_module, "evaluate", real_evaluate)
    run_training(tiny_config(), shards, tmp_path)
    log, reference = log_of(tmp_path), log_of(run_a[0])
    assert [r["step"] for r in log] == list(range(30))
    assert "val_loss" not in log[9]  # the interrupted validation is lost, the training step is not
    assert [r["loss"] for r in log] == [r["loss"] for r in reference]


def nan_after(monkeypatch, training_calls: int) -> None:
    """Make GPT's training loss NaN from its ``training_calls``-th training forward on (0-based)."""
    real_forward = GPT.forward
    calls = [0]

    def forward(self, idx, targets=None, **kwargs):
        out = real_forward(self, idx, targets, **kwargs)
        if self.training and targets is not None:
            calls[0] += 1
            if calls[0] > training_calls:
                return (out[0], out[1] * float("nan"), *out[2:])
        return out

    monkeypatch.setattr(train_module.GPT, "forward", forward)


def test_a_nan_loss_stops_before_the_update_and_keeps_the_last_good_checkpoint(shards, tmp_path, monkeypatch):
    nan_after(monkeypatch, 14)  # steps 0..13 fine, step 14 NaN; a checkpoint exists from step 10
    with pytest.raises(NonFiniteLoss, match=r"step 14: the training loss is nan") as err:
        run_training(tiny_config(), shards, tmp_path)
    message = str(err.value)
    assert f"the last good checkpoint is {tmp_path / 'checkpoint'} (step 10)" in message
    assert "Lower the learning rate" in message
    assert read_state(tmp_path / "checkpoint")["step"] == 10
    assert all(torch.isfinite(w).all() for w in weights(tmp_path).values())
    assert not (tmp_path / "checkpoint.tmp").exists()


def test_a_nan_loss_before_any_checkpoint_says_so(shards, tmp_path, monkeypatch):
    nan_after(monkeypatch, 2)
    with pytest.raises(NonFiniteLoss, match=r"step 2: .*no checkpoint was written yet"):
        run_training(tiny_config(), shards, tmp_path)
    assert not (tmp_path / "checkpoint").exists()


def test_the_windows_of_a_step_must_split_over_processes_and_micro_batches(shards, tmp_path):
    with pytest.raises(ValueError, match="batch_size = 4 windows per step is not divisible by .* = 3"):
        run_training(tiny_config(grad_accum=3), shards, tmp_path)
    with pytest.raises(
        ValueError, match="batch_size \\+ repeat_windows = 7 windows per step is not divisible by .* = 2"
    ):
        run_training(tiny_config(repeat_windows=3, grad_accum=2), shards, tmp_path / "with repeats")


# ------------------------------------------------------------------------------------------------
# checkpoints

CKPT_CONFIG = ModelConfig(vocab_size=50, context=8, d_model=16, n_layer=1, n_head=2, n_kv_head=1, d_ff=24)


def trained_pair(config: ModelConfig = CKPT_CONFIG, seed: int = 0, steps: int = 2):
    """A model and its AdamW after a few steps on random data (so the moments are not zero)."""
    torch.manual_seed(seed)
    model = GPT(config)
    optimizer = configure_optimizer(model, 1e-2, 0.1, (0.9, 0.95), "cpu")
    for _ in range(steps):
        ids = torch.randint(0, config.vocab_size, (2, config.context + 1))
        model(ids[:, :-1], ids[:, 1:])[1].backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def assert_same(a, b) -> None:
    """Nested dicts/lists of tensors and plain values are equal (tensors bitwise)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_checkpoint_round_trip_restores_weights_and_optimizer(tmp_path):
    model, optimizer = trained_pair()
    state = {"step": 2, "model_config": CKPT_CONFIG.to_dict(), "note": "hi"}
    save_checkpoint(tmp_path / "ckpt", model, optimizer, state)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["model.safetensors", "optimizer.pt", "state.json"]
    assert "lm_head.weight" not in load_file(tmp_path / "ckpt" / "model.safetensors")  # tied: stored once
    other, other_opt = trained_pair(seed=1, steps=1)
    assert read_state(tmp_path / "ckpt") == load_checkpoint(tmp_path / "ckpt", other, other_opt) == state
    assert_same(model.state_dict(), other.state_dict())
    assert other.lm_head.weight is other.embed_tokens.weight  # still tied after loading
    assert_same(optimizer.state_dict(), other_opt.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no .tmp / .old left behind


def test_a_checkpoint_of_another_shape_names_state_json_and_the_fields(tmp_path):
    model, optimizer = trained_pair()
    save_checkpoint(tmp_path / "ckpt", model, optimizer, {"step": 2, "model_config": CKPT_CONFIG.to_dict()})
    wider = GPT(dataclasses.replace(CKPT_CONFIG, d_model=32, n_layer=2))
    with pytest.raises(ValueError, match=r"state\.json.*another model") as err:
        load_checkpoint(tmp_path / "ckpt", wider)
    assert "d_model: checkpoint 16, now 32" in str(err.value) and "n_layer: checkpoint 1, now 2" in str(err.value)
    assert "n_head" not in str(err.value)  # only the fields that differ
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "nothing", model)


def test_a_truncated_checkpoint_names_the_damaged_file(tmp_path):
    model, optimizer = trained_pair()
    folder = save_checkpoint(tmp_path / "ckpt", model, optimizer, {"step": 2, "model_config": CKPT_CONFIG.to_dict()})
    opt_bytes = (folder / "optimizer.pt").read_bytes()
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors: cannot read the weights"):
        load_checkpoint(folder, GPT(CKPT_CONFIG))
    (folder / "model.safetensors").write_bytes(data)
    (folder / "optimizer.pt").write_bytes(opt_bytes[: len(opt_bytes) // 2])
    fresh = GPT(CKPT_CONFIG)
    with pytest.raises(ValueError, match=r"optimizer\.pt: cannot read the optimizer state"):
        load_checkpoint(folder, fresh, configure_optimizer(fresh, 1e-2, 0.1, (0.9, 0.95), "cpu"))


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer = trained_pair()
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, model, optimizer, {"step": 2, "model_config": CKPT_CONFIG.to_dict()})
    good = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(folder, model, optimizer, {"step": 3, "model_config": CKPT_CONFIG.to_dict()})
    restored = GPT(CKPT_CONFIG)
    assert load_checkpoint(folder, restored)["step"] == 2
    assert_same(good, restored.state_dict())
    monkeypatch.undo()  # the next save cleans up the half-written temporary folder
    save_checkpoint(folder, model, optimizer, {"step": 3, "model_config": CKPT_CONFIG.to_dict()})
    assert load_checkpoint(folder, restored)["step"] == 3
    assert_same(model.state_dict(), restored.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


# ------------------------------------------------------------------------------------------------
# the stage, on the quick profile


@pytest.fixture(scope="module")
def quick_pretrain(quick_run, tmp_path_factory):
    """A copy of the quick run (data, tokenizer) pretrained in two invocations.

    First ``llmkb pretrain --stop-after 60`` (what it left is recorded), then
    ``run_stage("pretrain", run, "quick")`` resumes and finishes. The copy keeps ``quick_run``
    itself free of a pretrain folder for other tests.
    """
    from llmkb.cli import main
    from llmkb.stages import RunDir, run_stage

    root = tmp_path_factory.mktemp("pretrain_runs")
    run = RunDir(root / "quick")
    for stage in ("data", "tokenizer"):
        shutil.copytree(quick_run.root / stage, run.root / stage)
    out = run.root / "pretrain"
    rc = main(["pretrain", "--profile", "quick", "--runs-root", str(root), "--run", "quick", "--stop-after", "60"])
    stopped = {
        "rc": rc,
        "metrics": (out / "metrics.json").exists(),
        "model": (out / "model").exists(),
        "step": read_state(out / "checkpoint")["step"],
        "log_steps": [r["step"] for r in log_of(out)],
    }
    metrics = run_stage("pretrain", run, "quick")
    return run, metrics, stopped


def test_stop_after_leaves_no_metrics_and_a_rerun_finishes(quick_pretrain):
    run, metrics, stopped = quick_pretrain
    assert stopped == {"rc": 0, "metrics": False, "model": False, "step": 60, "log_steps": list(range(60))}
    assert read_json(run.root / "pretrain" / "metrics.json") == metrics
    assert metrics["steps"] == 120
    assert [r["step"] for r in log_of(run.root / "pretrain")] == list(range(120))


def test_stage_metrics_beat_the_unigram_baseline(quick_pretrain):
    run, metrics, _ = quick_pretrain
    out = run.root / "pretrain"
    assert metrics["beats_unigram"] is True and metrics["val_loss"] < metrics["unigram_val_loss"]
    assert metrics["val_perplexity"] == round(math.exp(metrics["val_loss"]), 2)
    assert metrics["tokens_seen"] == 120 * 8 * 64
    assert metrics["mix"] == "focused" and metrics["train_tokens"] > 0 and metrics["val_tokens"] > 0
    assert (out / "loss.png").stat().st_size > 1000
    assert read_json(out / "config.json")["profile"] == "quick"
    assert read_json(out / "shards" / "shards.json")["vocab_size"] == run.metrics("tokenizer")["vocab_size"]


def test_stage_model_loads_in_transformers_with_our_logits(quick_pretrain):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, _, _ = quick_pretrain
    out = run.root / "pretrain"
    state = read_state(out / "checkpoint")
    ours = GPT(ModelConfig(**state["model_config"]))
    load_checkpoint(out / "checkpoint", ours)
    ours.eval()
    hf = AutoModelForCausalLM.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    ids = torch.tensor([tokenizer("The capital of the country is a city by the river.")["input_ids"]])
    with torch.no_grad():
        diff = (hf(ids).logits - ours(ids)[0]).abs().max().item()
    assert diff <= 1e-4, diff
    assert hf.config.eos_token_id == tokenizer.convert_tokens_to_ids(EOT)


def test_shards_of_another_vocabulary_are_a_clear_error(quick_pretrain, tmp_path):
    from llmkb.stages import RunDir, run_stage

    run, _, _ = quick_pretrain
    copy = RunDir(tmp_path / "quick")
    for stage in ("data", "tokenizer"):
        shutil.copytree(run.root / stage, copy.root / stage)
    shutil.copytree(run.root / "pretrain" / "shards", copy.root / "pretrain" / "shards")
    meta_path = copy.root / "pretrain" / "shards" / "shards.json"
    write_json(meta_path, {**read_json(meta_path), "vocab_size": 2048})  # as if made by another tokenizer
    expected = r"shards\.json: shards were made with a 2048-token vocabulary.*has 1024.*delete"
    with pytest.raises(ValueError, match=expected):
        run_stage("pretrain", copy, "quick")
    assert not (copy.root / "pretrain" / "checkpoint").exists()


def test_new_shards_set_the_old_checkpoint_aside(tmp_path, shards, capsys):
    """A checkpoint trained on other data is never resumed on new shards, and never deleted."""
    from llmkb.pretrain.stage import set_aside_stale_training

    out = tmp_path / "pretrain"
    run_training(tiny_config(max_steps=10), shards, out)
    set_aside_stale_training(out)
    assert not (out / "checkpoint").exists() and not (out / "log.jsonl").exists()
    assert read_state(out / "checkpoint.stale")["step"] == 10 and (out / "checkpoint.stale" / "log.jsonl").exists()
    assert "training starts over" in capsys.readouterr().out
    summary = run_training(tiny_config(max_steps=10), shards, out)  # starts from step 0 again
    assert summary["steps"] == 10 and [r["step"] for r in log_of(out)] == list(range(10))


def test_repeat_windows_join_each_batch_and_are_counted_apart_from_the_text(shards, tmp_path):
    config = tiny_config(repeat_windows=4, repeat_steps=4, max_steps=6, eval_every=3, checkpoint_every=3)
    summary = run_training(config, shards, tmp_path)
    log = log_of(tmp_path)
    assert summary["tokens_seen"] == 6 * 4 * 16 and summary["repeat_tokens_seen"] == 4 * 4 * 16
    windows = [8, 8, 8, 8, 4, 4]  # 4 text + 4 repeat windows in the first 4 steps, then text alone
    assert summary["train_s"] == round(sum(w * 16 / r["tokens_per_s"] for w, r in zip(windows, log)), 1)
    again = tmp_path / "again"
    run_training(config, shards, again)
    assert losses(log_of(again)) == losses(log)  # the repeat windows are drawn from the step's seed too


def test_few_shot_scores_answers_by_their_first_words_and_counts_copies_of_an_example(monkeypatch):
    """A scripted "model" that answers with the first example's fact: right only where that is the asked fact."""
    import llmkb.pretrain.probes as probes

    def first_example_answer(model, tokenizer, prompt, max_new_tokens, temperature):
        lines = prompt.split("\n")
        return " " + (lines[0].split(" (")[1] + ", Vemora) was" if len(lines) > 1 else "(1900")

    monkeypatch.setattr(probes, "sample", first_example_answer)
    demos = [(f"P{n} (", str(1800 + n)) for n in range(6)]
    queries = [("Q1 (", "1801"), ("Q2 (", "1999")]
    zero = probes.few_shot_accuracy(None, None, demos, queries, shots=0, sep="")
    assert zero.accuracy == 0 and zero.copied == 0  # "(1900" is neither the fact nor an example's
    three = probes.few_shot_accuracy(None, None, demos, queries, shots=3, sep="")
    first = [probes.examples_for(demos, q, 3)[0][1] for q, _ in queries]
    assert three.accuracy == sum(f == a for f, (_, a) in zip(first, queries)) / 2
    assert three.accuracy + three.copied == 1  # every answer is some example's year
    assert three.examples[0][0].endswith("\nQ1 (") and three.examples[0][2].endswith("Vemora) was")
