"""Every config checks itself when built: each profile's configs are valid, and a bad value is named."""

import dataclasses
import re

import pytest

from llmkb.data.config import DataConfig
from llmkb.data.crawl import CrawlConfig
from llmkb.inference.generate import GenerationConfig
from llmkb.model.gpt import ModelConfig
from llmkb.model.seq2seq import Seq2SeqConfig
from llmkb.pretrain.config import PretrainConfig
from llmkb.psychology.config import PsychologyConfig, SearchConfig, SpellingConfig
from llmkb.rl.config import DPOConfig, GRPOSettings, PPOConfig, RewardConfig, SumsConfig
from llmkb.sft.config import SFTConfig
from llmkb.stages import PROFILES, stages
from llmkb.tokenizer.config import TokenizerConfig

SEEDS = {"seeds": ["http://a.test/"]}  # CrawlConfig has no default seeds


def test_every_stage_config_of_every_profile_is_valid():
    # One test, not one per profile: a test id holding "gpu" is skipped on machines without CUDA.
    for profile in PROFILES:
        for stage in stages():
            config = stage.config(profile)  # __post_init__ raises on a bad value
            assert isinstance(config, stage.config_cls)
            assert dataclasses.replace(config) == config


BAD = [
    (DataConfig, {"pages": 0}, "pages"),
    (DataConfig, {"max_depth": -1}, "max_depth"),
    (DataConfig, {"extractor": "lxml"}, "extractor"),
    (DataConfig, {"language_threshold": 1.5}, "language_threshold"),
    (DataConfig, {"heldout_fraction": 1.0}, "heldout_fraction"),
    (DataConfig, {"tasks": 0}, "tasks"),
    (DataConfig, {"seed_urls": ["http://a.test/"], "warcs": ["a.warc.gz"]}, "seed_urls"),
    (CrawlConfig, {"seeds": ["mailto:x@y"]}, "seeds"),
    (CrawlConfig, {**SEEDS, "concurrency": 0}, "concurrency"),
    (CrawlConfig, {**SEEDS, "timeout_s": 0.0}, "timeout_s"),
    (CrawlConfig, {**SEEDS, "retries": -1}, "retries"),
    (TokenizerConfig, {"vocab_size": 200}, "vocab_size"),
    (TokenizerConfig, {"special_tokens": ["<|endoftext|>", ""]}, "special_tokens"),
    (TokenizerConfig, {"max_train_bytes": 0}, "max_train_bytes"),
    (PretrainConfig, {"mix": "some"}, "mix"),
    (PretrainConfig, {"lr": -3e-3}, "lr"),
    (PretrainConfig, {"lr": float("nan")}, "lr"),
    (PretrainConfig, {"min_lr_ratio": 2.0}, "min_lr_ratio"),
    (PretrainConfig, {"beta2": 1.0}, "beta2"),
    (PretrainConfig, {"context": 0}, "context"),
    (PretrainConfig, {"n_head": 3}, "n_head"),
    (PretrainConfig, {"compile": "maybe"}, "compile"),
    (ModelConfig, {"vocab_size": 0}, "vocab_size"),
    (ModelConfig, {"d_model": 30, "n_head": 4}, "n_head"),
    (Seq2SeqConfig, {"warmup": 0}, "warmup"),
    (Seq2SeqConfig, {"d_model": 30, "n_head": 4}, "d_model"),
    (SFTConfig, {"method": "qlora"}, "method"),
    (SFTConfig, {"trainer": "axolotl"}, "trainer"),
    (SFTConfig, {"epochs": 0, "max_steps": 0}, "epochs"),
    (SFTConfig, {"sizes": {"code": -1}}, "sizes"),
    (SFTConfig, {"lora_targets": ("lm_head",)}, "lora_targets"),
    (SFTConfig, {"batch_size": 0}, "batch_size"),
    (RewardConfig, {"samples": 1}, "samples"),
    (RewardConfig, {"max_steps": 0}, "max_steps"),
    (RewardConfig, {"temperature": 0.0}, "temperature"),
    (PPOConfig, {"lam": 1.5}, "lam"),
    (PPOConfig, {"kl_coef": -0.1}, "kl_coef"),
    (PPOConfig, {"minibatch_size": 0}, "minibatch_size"),
    (DPOConfig, {"beta": 0.0}, "beta"),
    (DPOConfig, {"batch_size": 0}, "batch_size"),
    (GRPOSettings, {"group_size": 1}, "group_size"),
    (SumsConfig, {"group_size": 1}, "group_size"),
    (SumsConfig, {"digits": 0}, "digits"),
    (SumsConfig, {"grpo_lr": 0.0}, "grpo_lr"),
    (PsychologyConfig, {"samples": 2, "min_right": 3}, "min_right"),
    (PsychologyConfig, {"probe_people": 0}, "probe_people"),
    (SearchConfig, {"no_results_share": 1.0}, "no_results_share"),
    (SearchConfig, {"context": -1}, "context"),
    (SpellingConfig, {"held_out_words": 0}, "held_out_words"),
    (SpellingConfig, {"min_count": 0}, "min_count"),
    (GenerationConfig, {"top_p": 0.0}, "top_p"),
    (GenerationConfig, {"num_beams": 2, "temperature": 0.7}, "num_beams"),
    (GenerationConfig, {"max_new_tokens": 2.5}, "max_new_tokens"),
    (GenerationConfig, {"early_stopping": "sometimes"}, "early_stopping"),
]


@pytest.mark.parametrize("cls, fields, name", BAD, ids=[f"{c.__name__}-{n}" for c, _, n in BAD])
def test_a_bad_value_is_rejected_naming_the_class_and_the_field(cls, fields, name):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\b.*\b{name}\b") as error:
        cls(**fields)
    assert repr(fields[name]) in str(error.value) or str(fields[name]) in str(error.value)  # and the bad value


def test_overrides_and_replace_are_checked_too():
    stage = next(s for s in stages() if s.name == "pretrain")
    with pytest.raises(ValueError, match=re.escape("PretrainConfig.max_steps must be > 0, got 0")):
        stage.config("quick", max_steps=0)  # what `llmkb pretrain --set max_steps=0` builds
    with pytest.raises(ValueError, match=re.escape("PPOConfig.kl_coef must be >= 0, got -1.0")):
        PPOConfig().with_kl(-1.0)  # dataclasses.replace runs __post_init__ again
