"""Our GPT and HF's LlamaForCausalLM are the same network: same logits, same saved folder, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.model.hf import from_hf, from_hf_config, load_pretrained, save_pretrained, to_hf, to_hf_config

CONFIGS = {
    "tied-mha": ModelConfig(vocab_size=97, context=16, d_model=32, n_layer=2, n_head=4, n_kv_head=4, d_ff=48),
    "untied-gqa": ModelConfig(
        vocab_size=101,
        context=12,
        d_model=48,
        n_layer=2,
        n_head=6,
        n_kv_head=2,
        d_ff=80,
        rope_theta=500_000.0,
        norm_eps=1e-6,
        tie_embeddings=False,
    ),
    "tied-mqa": ModelConfig(vocab_size=64, context=20, d_model=32, n_layer=3, n_head=4, n_kv_head=1, d_ff=40),
}

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 20,
    "Language models predict the next token from the ones before it.\n" * 20,
    "def add(a, b):\n    return a + b\n" * 10,
]


def random_model(config: ModelConfig, seed: int = 0) -> GPT:
    """A GPT with seeded random weights, norms included (their init of 1.0 would hide a mix-up)."""
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                p.uniform_(0.5, 1.5)
    return model.eval()


def random_ids(config: ModelConfig, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, config.vocab_size, (batch, config.context), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def ours(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    return model(ids)[0]


@pytest.mark.parametrize("name", CONFIGS)
@torch.no_grad()
def test_hf_twin_gives_the_same_logits(name):
    config = CONFIGS[name]
    model, ids = random_model(config), random_ids(config)
    hf_model = to_hf(model)
    assert not hf_model.training and hf_model.dtype == torch.float32
    assert hf_model.config.tie_word_embeddings == config.tie_embeddings
    assert (hf_model(ids).logits - ours(model, ids)).abs().max() <= 1e-5
    back = from_hf(hf_model)
    assert back.config == config
    assert torch.equal(ours(back, ids), ours(model, ids))
    if config.tie_embeddings:
        assert back.lm_head.weight is back.embed_tokens.weight


def test_config_round_trip_and_hf_field_names():
    config = CONFIGS["untied-gqa"]
    hf = to_hf_config(config, bos_token_id=5, eos_token_id=6)
    assert (hf.hidden_size, hf.intermediate_size, hf.num_hidden_layers) == (48, 80, 2)
    assert (hf.num_attention_heads, hf.num_key_value_heads, hf.head_dim) == (6, 2, 8)
    assert hf.rope_parameters == {"rope_type": "default", "rope_theta": 500_000.0}
    assert (hf.bos_token_id, hf.eos_token_id, hf.max_position_embeddings) == (5, 6, 12)
    assert from_hf_config(hf) == config


@pytest.mark.parametrize(
    "change, words",
    [
        ({"attention_bias": True}, "attention_bias"),
        ({"mlp_bias": True}, "mlp_bias"),
        ({"hidden_act": "gelu"}, "hidden_act 'gelu'"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}, "rope_type 'linear'"),
        ({"head_dim": 16}, "head_dim 16"),
    ],
)
def test_unsupported_llama_settings_are_named(change, words):
    hf = to_hf_config(CONFIGS["tied-mha"])
    for key, value in change.items():
        setattr(hf, key, value)
    with pytest.raises(ValueError, match=words):
        from_hf_config(hf)


def test_non_llama_config_is_refused():
    from transformers import GPT2Config

    with pytest.raises(ValueError, match="model_type 'gpt2'"):
        from_hf_config(GPT2Config())


# ----------------------------------------------------------------------------------------------
# a saved folder, with the project's tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    from llmkb.tokenizer.bpe import BPETokenizer
    from llmkb.tokenizer.hf import to_hf_tokenizer, to_pretrained

    bpe = BPETokenizer.train(TEXTS, 300)
    return bpe, to_pretrained(to_hf_tokenizer(bpe), model_max_length=32)


@pytest.fixture(scope="module")
def saved(tokenizer, tmp_path_factory):
    bpe, tok = tokenizer
    config = ModelConfig(vocab_size=bpe.vocab_size, context=32, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=48)
    model = random_model(config, seed=3)
    folder = save_pretrained(model, tmp_path_factory.mktemp("hf") / "model", tokenizer=tok)
    return model, folder


def test_saved_folder_loads_with_auto_classes(saved, tokenizer):
    model, folder = saved
    bpe, _ = tokenizer
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    eot = bpe.special_tokens["<|endoftext|>"]
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (
        "llama",
        eot,
        eot,
        eot,
    )

    hf_tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    text = "The lazy fox returns a + b.<|endoftext|>"
    ids = hf_tok(text)["input_ids"]
    assert ids == bpe.encode(text)

    hf_model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    batch = torch.tensor([ids, ids[::-1]])
    with torch.no_grad():
        assert (hf_model(batch).logits - ours(model, batch)).abs().max() <= 1e-5


def test_load_pretrained_round_trip(saved):
    model, folder = saved
    back = load_pretrained(folder)
    assert back.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_hf_generate_matches_our_greedy_decoding(saved, tokenizer):
    model, folder = saved
    bpe, _ = tokenizer
    prompt = torch.tensor([bpe.encode("The quick brown")])
    hf_model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    out = hf_model.generate(prompt, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    ids = prompt
    with torch.no_grad():
        for _ in range(5):
            ids = torch.cat([ids, ours(model, ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out.tolist() == ids.tolist()


def test_save_replaces_an_existing_folder(tmp_path, tokenizer, saved):
    model, folder = saved
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    save_pretrained(model, target, tokenizer=folder)  # a tokenizer folder works as well as the object
    assert not (target / "stale.txt").exists()
    assert (target / "tokenizer.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_interrupted_save_leaves_the_old_folder(tmp_path, monkeypatch, saved):
    model, _ = saved
    target = save_pretrained(model, tmp_path / "model")
    before = sorted(p.name for p in target.iterdir())

    def boom(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("transformers.PreTrainedModel.save_pretrained", boom)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(model, target)
    assert sorted(p.name for p in target.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# ----------------------------------------------------------------------------------------------
# bad folders


def copy_folder(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_weights_name_the_file(saved, tmp_path):
    folder = copy_folder(saved[1], tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ValueError, match="model.safetensors"):
        load_pretrained(folder)


def test_missing_weights_name_the_file(saved, tmp_path):
    folder = copy_folder(saved[1], tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_pretrained(folder)


def test_non_llama_folder_names_the_model_type(saved, tmp_path):
    folder = copy_folder(saved[1], tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "gpt2"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json.*model_type 'gpt2'"):
        load_pretrained(folder)


def test_weights_of_another_shape_name_the_file(saved, tmp_path):
    folder = copy_folder(saved[1], tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="(?s)model.safetensors.*size mismatch"):
        load_pretrained(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        load_pretrained(tmp_path / "nowhere")
