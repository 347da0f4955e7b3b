"""The search tool: the document store, the training conversations, and a model grown for the new tokens."""

from __future__ import annotations

import pytest
import torch

from llmkb.psychology.hallucination import REFUSED
from llmkb.psychology.search import TOOL, DocumentStore, search_conversations
from llmkb.sft.tools import NO_RESULTS, add_tool_tokens, tool_tokens


def test_store_finds_the_sentence_about_a_person_not_the_one_that_mentions_them():
    store = DocumentStore(
        ["Mo Ri was the friend of Ka Lo. Ka Lo, the weaver, was born in 1801!\nNext.", "Ka Lo travelled."]
    )
    assert (
        store.search("Ka Lo") == "Ka Lo, the weaver, was born in 1801!"
    )  # earliest mention wins over the first sentence
    assert store.search(" Ka Lo ") == store.search("Ka Lo")  # the model's call may carry spaces
    assert store.search("") == store.search("Zu Ba") == ""


def test_store_from_corpus_names_the_bad_line_and_refuses_an_empty_corpus(tmp_path):
    for name, content in (
        ("good", '{"text": "Ka Lo was a weaver. So it goes."}\n'),
        ("bad", '{"text": "fine"}\nnot json\n'),
        ("empty", ""),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.jsonl").write_text(content, encoding="utf-8")
    assert DocumentStore.from_corpus(tmp_path / "good").sentences == ["Ka Lo was a weaver.", "So it goes."]
    with pytest.raises(ValueError, match=r"bad/train.jsonl:2: not a JSON object"):
        DocumentStore.from_corpus(tmp_path / "bad")
    with pytest.raises(ValueError, match=r"empty/train.jsonl: the corpus is empty"):
        DocumentStore.from_corpus(tmp_path / "empty")


def test_conversations_call_with_the_name_find_it_or_refuse():
    records = search_conversations(200, ["Vemora", "Talholm"], no_results_share=0.25, seed=3)
    assert records == search_conversations(200, ["Vemora", "Talholm"], no_results_share=0.25, seed=3)  # seeded
    missing = [r for r in records if not r["meta"]["found"]]
    assert 20 <= len(missing) <= 80
    start, end = tool_tokens(TOOL)
    for r in records:
        question, call, result, answer = (m["content"] for m in r["messages"])
        name = r["meta"]["name"]
        assert name in question and call == f"{start} {name}{end}"
        if r["meta"]["found"]:
            assert name in result and str(r["meta"]["answer"]) in result and str(r["meta"]["answer"]) in answer
        else:
            assert result == NO_RESULTS and REFUSED.search(answer) and name in answer


def test_the_call_repeats_the_question_s_tokens(quick_run):
    """Why the call has a space before the name: the name is then cut into the same tokens as in the question."""
    from llmkb.tokenizer.hf import load_pretrained

    tokenizer = add_tool_tokens(load_pretrained(quick_run.root / "tokenizer"), TOOL)
    for r in search_conversations(20, ["Vemora"], no_results_share=0.0):
        name_ids = tokenizer.encode(" " + r["meta"]["name"], add_special_tokens=False)
        question_ids = tokenizer.encode(r["messages"][0]["content"], add_special_tokens=False)
        call_ids = tokenizer.encode(r["messages"][1]["content"], add_special_tokens=False)
        assert call_ids[1:-1] == name_ids
        assert any(question_ids[i : i + len(name_ids)] == name_ids for i in range(len(question_ids)))


def test_grow_vocab_keeps_the_old_logits_and_the_tied_head(quick_run, tmp_path):
    from llmkb.model.gpt import GPT, ModelConfig
    from llmkb.model.hf import load_pretrained as load_model
    from llmkb.model.hf import save_pretrained
    from llmkb.sft.train import grow_vocab
    from llmkb.tokenizer.hf import load_pretrained

    tokenizer = load_pretrained(quick_run.root / "tokenizer")
    model = GPT(
        ModelConfig(vocab_size=len(tokenizer), context=32, d_model=32, n_layer=1, n_head=2, n_kv_head=1, d_ff=64)
    ).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    before = model(ids)[0]
    new_ids = grow_vocab(model, add_tool_tokens(tokenizer, TOOL))
    assert new_ids == tokenizer.convert_tokens_to_ids(list(tool_tokens(TOOL)))
    after = model(ids)[0]
    assert after.shape[-1] == len(tokenizer) == model.config.vocab_size
    assert torch.equal(after[..., : before.shape[-1]], before)
    assert model.lm_head.weight is model.embed_tokens.weight
    save_pretrained(model, tmp_path / "grown", tokenizer=tokenizer)
    assert torch.allclose(load_model(tmp_path / "grown")(ids)[0], after, atol=1e-5)
    with pytest.raises(ValueError, match="fewer than the model's"):
        grow_vocab(
            GPT(
                ModelConfig(
                    vocab_size=len(tokenizer) + 5, context=8, d_model=16, n_layer=1, n_head=2, n_kv_head=1, d_ff=32
                )
            ),
            tokenizer,
        )


def test_spelling_questions_and_scores():
    from llmkb.psychology.spelling import letter_questions, letters_in_place, scores

    records = letter_questions(["strawberry", "cat"], seed=0)
    assert [r["type"] for r in records] == ["spell", "count", "spell", "count"]
    assert records[0]["messages"][1]["content"] == "s t r a w b e r r y"
    assert records[1]["meta"]["letter"] in "strawberry"
    assert letters_in_place("c a t", "c a t s") == 1.0 and letters_in_place("c a t", "") == 0.0
    table = scores(
        records,
        ["s t r a w b e r r y", "0", "c u t", records[3]["messages"][1]["content"]],
        {"strawberry": 3, "cat": 1},
    )
    assert table["spell"]["several tokens"] == {"right": 1.0, "questions": 1, "letters": 1.0}
    assert table["spell"]["one token"]["letters"] == pytest.approx(2 / 3, abs=1e-3)
    assert table["count"]["one token"]["right"] == 1.0 and table["count"]["several tokens"]["right"] == 0.0


def test_corpus_words_keep_frequent_lowercase_words_of_three_to_nine_letters():
    from llmkb.psychology.spelling import corpus_words

    texts = ["an ox, the Owl, the owl; strawberry strawberry cat cat cat", "owl extraordinarily extraordinarily"]
    assert corpus_words(texts, min_count=2) == ["cat", "owl", "the"]  # "strawberry" has 10 letters, "Owl" a capital
    assert corpus_words(texts, min_count=3) == ["cat"]
