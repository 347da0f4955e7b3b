"""The scripted labeler and the preference pairs made from its rankings."""

from __future__ import annotations

import random

import pytest
import torch

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.rl.preferences import RULES, babbles, build_preferences, rank_to_pairs, true_score
from llmkb.sft.data import build_splits
from llmkb.sft.masking import _char_tokenizer
from llmkb.tokenizer.hf import CHATML_TEMPLATE
from llmkb.world import make_entities


@pytest.fixture(scope="module")
def records():
    entities, _ = make_entities(random.Random(0))
    sizes = {"instruction": 6, "conversation": 0, "text_generation": 0, "code": 0, "reasoning": 0, "reading": 0}
    return build_splits({"entities": entities}, seed=0, sizes=sizes)["train"]


def test_the_labeler_follows_its_rules(records):
    record = records[0]
    right = record["messages"][-1]["content"]  # the reference answer: right, names the person
    assert true_score(record, right, ended=True) == RULES["right"] + RULES["ended"] + RULES["names_person"]
    assert true_score(record, right, ended=False) == true_score(record, right, ended=True) - RULES["ended"]
    assert true_score(record, "I do not know.", ended=True) == RULES["ended"]
    rambling = right + " " + " ".join(f"word{i}" for i in range(20))
    assert true_score(record, rambling, True) < true_score(record, right, True)
    assert babbles("the the the") and true_score(record, right + " the the the", True) < true_score(record, right, True)


def test_rankings_become_consistent_pairs(records):
    tok = _char_tokenizer(CHATML_TEMPLATE)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=len(tok), context=256, d_model=32, n_layer=2, n_head=2, n_kv_head=1, d_ff=64))
    pairs, stats = build_preferences(model, tok, records, k=4, max_new_tokens=8)
    assert stats["judgements"] == 4 * len(records) and stats["pairs"] == len(pairs) <= 6 * len(records)
    assert all(p["chosen"] != p["rejected"] and p["margin"] > 0 for p in pairs)
    assert pairs == build_preferences(model, tok, records, k=4, max_new_tokens=8)[0]  # seeded: the same draws
    # Hand-made: a right reply beats a wrong one and babble, by the labeler's margins.
    record = records[0]
    replies = [record["messages"][-1]["content"], "Nobody knows.", "the the the"]
    scores = [true_score(record, r, True) for r in replies]
    made = rank_to_pairs(record["messages"][:-1], replies, scores)
    assert [(p["chosen"], p["rejected"]) for p in made] == [
        (replies[0], replies[1]),
        (replies[0], replies[2]),
        (replies[1], replies[2]),
    ]
    with pytest.raises(ValueError, match="k must be at least 2"):
        build_preferences(model, tok, records, k=1)
    with pytest.raises(ValueError, match="no prompts"):
        build_preferences(model, tok, [], k=3)
