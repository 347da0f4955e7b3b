"""The original transformer (llmkb.model.seq2seq): masks, teacher forcing, objectives, training."""

from __future__ import annotations

import math

import pytest
import torch

from llmkb.model.seq2seq import (
    BOS,
    EOS,
    PAD,
    VOCAB,
    Seq2Seq,
    Seq2SeqConfig,
    attention_masks,
    decode,
    encode,
    exact_match,
    make_pairs,
    number_to_words,
    objective_example,
    teacher_forcing_batch,
    train,
    translate,
)

TINY = Seq2SeqConfig(d_model=32, n_head=2, n_layer=2, d_ff=64)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Seq2Seq(TINY).eval()


def _ids(text: str) -> torch.Tensor:
    return torch.tensor([encode(text)])


def test_number_words_and_split():
    assert number_to_words(407) == "four hundred seven"
    assert number_to_words(110) == "one hundred ten"
    assert number_to_words(71) == "seventy-one"
    train_pairs, held_out = make_pairs(seed=0)
    assert len(train_pairs) + len(held_out) == 1000
    assert not {s for s, _ in train_pairs} & {s for s, _ in held_out}
    assert make_pairs(seed=0) == (train_pairs, held_out)  # deterministic
    assert make_pairs(seed=1)[1] != held_out


def test_decoder_self_attention_is_causal(model):
    src = _ids("407")
    a = torch.tensor([[BOS] + encode("four hundred")])
    b = a.clone()
    t = 6
    b[0, t] = VOCAB.index("z")  # change the decoder input at position t only
    with torch.no_grad():
        la, _ = model(src, a)
        lb, _ = model(src, b)
    assert torch.allclose(la[:, :t], lb[:, :t], atol=1e-6)  # nothing before t moved
    assert not torch.allclose(la[:, t], lb[:, t], atol=1e-4)  # position t itself did


def test_encoder_is_bidirectional(model):
    with torch.no_grad():
        a = model.encode(_ids("407"))
        b = model.encode(_ids("409"))  # change the last source character
    assert not torch.allclose(a[:, 0], b[:, 0], atol=1e-4)  # the first position saw it


def test_cross_attention_reads_every_encoder_position(model):
    dec_in = torch.tensor([[BOS] + encode("four")])
    with torch.no_grad():
        base, _ = model(_ids("407"), dec_in)
        for i in range(3):
            changed = list("407")
            changed[i] = "1" if changed[i] != "1" else "2"
            logits, _ = model(_ids("".join(changed)), dec_in)
            assert not torch.allclose(base[:, 0], logits[:, 0], atol=1e-4), f"source position {i} ignored"


def test_source_padding_changes_nothing(model):
    """A PAD in the source is masked out of every attention: "7" alone or padded, same output."""
    dec_in = torch.tensor([[BOS] + encode("seven")])
    with torch.no_grad():
        alone, _ = model(_ids("7"), dec_in)
        padded, _ = model(torch.tensor([encode("7") + [PAD, PAD]]), dec_in)
    assert torch.allclose(alone, padded, atol=1e-5)


@torch.no_grad()
def test_attention_maps_shapes_and_masks(model):
    src, dec_in = torch.tensor([encode("47") + [PAD]]), torch.tensor([[BOS] + encode("forty")])
    maps = model.attention_maps(src, dec_in)
    S, T, nh = src.shape[1], dec_in.shape[1], TINY.n_head
    shapes = {"encoder": (1, nh, S, S), "decoder": (1, nh, T, T), "cross": (1, nh, T, S)}
    for kind, shape in shapes.items():
        assert len(maps[kind]) == TINY.n_layer and all(w.shape == shape for w in maps[kind])
        assert all(torch.allclose(w.sum(-1), torch.ones(shape[:-1])) for w in maps[kind])  # softmax rows
    assert all((w[..., -1] == 0).all() for w in maps["encoder"] + maps["cross"])  # nobody reads the PAD
    assert all((w.triu(diagonal=1) == 0).all() for w in maps["decoder"])  # nor a later position


def test_teacher_forcing_batch_is_shifted_right():
    pairs = [("7", "seven"), ("407", "four hundred seven")]
    src, dec_in, labels = teacher_forcing_batch(pairs)
    assert src.shape == (2, 3) and dec_in.shape == labels.shape == (2, len("four hundred seven") + 1)
    for row, (s, t) in enumerate(pairs):
        n = len(t) + 1
        assert decode(src[row]) == s
        assert dec_in[row, 0] == BOS and labels[row, n - 1] == EOS
        assert dec_in[row, 1:n].tolist() == labels[row, : n - 1].tolist() == encode(t)
        assert (labels[row, n:] == PAD).all() and (dec_in[row, n:] == PAD).all()


def test_loss_ignores_pad_labels(model):
    src, dec_in, labels = teacher_forcing_batch([("7", "seven"), ("407", "four hundred seven")])
    with torch.no_grad():
        _, both = model(src, dec_in, labels)
        _, short = model(src[:1, :1], dec_in[:1, :6], labels[:1, :6])
        logits, _ = model(src, dec_in)
    # the padded batch's loss is the mean over its 6 + 19 real labels, nothing else
    per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, len(VOCAB)), labels.reshape(-1), reduction="none")
    real = labels.reshape(-1) != PAD
    assert torch.isclose(both, per_token[real].mean(), atol=1e-6)
    assert torch.isclose(short, per_token[:6].mean(), atol=1e-5)


def test_attention_masks():
    m = attention_masks(4, 3)
    assert m["bidirectional"].shape == (3, 3) and m["bidirectional"].all()
    assert m["cross"].shape == (4, 3) and m["cross"].all()
    assert m["causal"].dtype == torch.bool
    assert torch.equal(m["causal"], torch.tril(torch.ones(4, 4, dtype=torch.bool)))
    assert attention_masks(5)["bidirectional"].shape == (5, 5)


def test_bert_masking_rate_and_80_10_10():
    tokens = [f"w{i}" for i in range(20)]
    vocab = [f"v{i}" for i in range(1000)]  # a random replacement is then (almost) never the original
    picked = mask = random_ = keep = 0
    for seed in range(2000):
        ex = objective_example(tokens, seed=seed, vocab=vocab)
        for inp, target, rule, orig in zip(ex["mlm_input"], ex["mlm_targets"], ex["mlm_rule"], tokens):
            if target is None:
                assert inp == orig and rule is None
                continue
            picked += 1
            assert target == orig
            if rule == "mask":
                mask += 1
                assert inp == "[MASK]"
            elif rule == "random":
                random_ += 1
                assert inp in vocab
            else:
                keep += 1
                assert inp == orig
    assert picked == 2000 * 3  # 15% of 20 tokens
    assert abs(mask / picked - 0.8) < 0.02
    assert abs(random_ / picked - 0.1) < 0.015 and abs(keep / picked - 0.1) < 0.015


def test_causal_lm_targets_are_shifted_by_one():
    tokens = "a b c d".split()
    ex = objective_example(tokens, seed=0)
    assert ex["clm_input"] == ["a", "b", "c"] and ex["clm_targets"] == ["b", "c", "d"]
    assert sum(t is not None for t in ex["mlm_targets"]) == 1  # at least one token is always picked


def test_short_training_halves_the_loss():
    model, losses = train(Seq2SeqConfig(batch_size=32), steps=80, seed=0, progress=False)
    assert len(losses) == 80
    final = sum(losses[-5:]) / 5
    assert final < losses[0] / 2
    assert final < math.log(len(VOCAB)) / 2  # also half of a uniform guess's loss, not just of a bad start
    # greedy decoding always returns a string, trained or not
    assert isinstance(translate(model, "12"), str)


@pytest.mark.slow
def test_default_training_translates_held_out_numbers():
    _, held_out = make_pairs()
    model, losses = train(progress=False)
    assert losses[-1] < losses[0] / 100
    assert exact_match(model, held_out) >= 0.9


def test_a_text_longer_than_the_position_table_names_max_len(model):
    with pytest.raises(ValueError, match=r"longer than the model's 64 positions \(Seq2SeqConfig.max_len\)"):
        translate(model, "seven " * 20)
