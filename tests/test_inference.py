"""Generation: sampling knobs equal HF's processors, and our loop equals HF's ``generate`` token for token.

A tiny random GPT (untied head, so it does not just copy its input; end tokens a little likelier,
so that rows and beams end at different steps) with a tiny BPE tokenizer; and, when the trained
base model is present, the same checks on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmkb.inference.backend import Backend
from llmkb.inference.beam import beam_search
from llmkb.inference.generate import (
    GenerationConfig,
    generate,
    generate_ids,
    left_pad,
    stream,
    token_steps,
)
from llmkb.inference.sampling import (
    apply_repetition_penalty,
    apply_temperature,
    next_token,
    top_k_filter,
    top_p_filter,
)
from llmkb.model.gpt import GPT, ModelConfig
from llmkb.model.hf import to_hf

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "runs" / "default" / "pretrain" / "model"
TEXTS = [
    "The cat sat on the mat. " * 20,
    "Xin chào thế giới! Tiếng Việt có dấu. " * 5,
    "你好世界，我们的朋友。" * 5,
    "Emoji 👋🤖🎉 are fun. " * 5,
]
PROMPTS = ["The cat", "Xin chào thế giới", "a"]  # three lengths: the batch is left-padded


@pytest.fixture(scope="module")
def tok():
    from llmkb.tokenizer.bpe import BPETokenizer
    from llmkb.tokenizer.hf import to_hf_tokenizer, to_pretrained

    return to_pretrained(to_hf_tokenizer(BPETokenizer.train(TEXTS, vocab_size=320)))


@pytest.fixture(scope="module")
def eos(tok) -> list[int]:
    return [tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")]


def random_gpt(vocab_size: int, eos: list[int], seed: int, eos_scale: float) -> GPT:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab_size, context=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64, tie_embeddings=False
    )
    model = GPT(config).eval()
    with torch.no_grad():  # larger weights than the init: varied tokens instead of one repeated
        model.embed_tokens.weight.normal_(0, 1.0)
        model.lm_head.weight.normal_(0, 0.3)
        model.lm_head.weight[eos] *= eos_scale  # end tokens likelier: rows and beams end at different steps
    return model


@pytest.fixture(scope="module")
def gpt(tok, eos) -> GPT:
    return random_gpt(len(tok), eos, seed=0, eos_scale=1.3)


@pytest.fixture(scope="module")
def hf(gpt, eos):
    return to_hf(gpt, bos_token_id=eos[0], eos_token_id=eos[0], pad_token_id=eos[0])


@pytest.fixture(scope="module")
def batch(tok, eos):
    return left_pad([tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS], eos[0])


def hf_new_tokens(hf, batch, eos, **kwargs) -> torch.Tensor:
    ids, mask = batch
    out = hf.generate(ids, attention_mask=mask, eos_token_id=eos, pad_token_id=eos[0], **kwargs)
    return out[:, ids.shape[1] :]


# ----------------------------------------------------------------------------------------------
# sampling functions == HF's logits processors


def test_sampling_functions_equal_hf_processors():
    from transformers import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 50, generator=g) * 3
    logits[0, :10] = 1.0  # ties, at the top-k border and inside the nucleus
    ids = torch.randint(0, 50, (6, 12), generator=g)
    for penalty in (0.5, 1.3, 2.0):
        theirs = RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
        assert torch.equal(apply_repetition_penalty(logits, ids, penalty), theirs)
    ignore = torch.tensor([0, 3, 0, 5, 1, 0])  # left padding, as HF's generate passes it
    theirs = RepetitionPenaltyLogitsProcessor(1.7, prompt_ignore_length=ignore)(ids, logits.clone())
    padded = ids.masked_fill(torch.arange(12)[None] < ignore[:, None], -1)
    assert torch.equal(apply_repetition_penalty(logits, padded, 1.7), theirs)
    for t in (0.3, 1.0, 2.5):
        assert torch.equal(apply_temperature(logits, t), TemperatureLogitsWarper(t)(ids, logits))
    for k in (1, 2, 9, 10, 50, 80):
        assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(ids, logits))
    cumulative = logits.sort().values.softmax(-1).cumsum(-1)
    exactly = 1 - float(cumulative[1, 40])  # a token whose cumulative probability is exactly 1 - p: dropped
    for p in (0.01, 0.3, 0.5, 0.9, 0.999, 1.0, exactly):
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(ids, logits))
    assert (top_p_filter(logits, 0.01).isfinite().sum(-1) >= 1).all()  # never an empty row


def test_sampling_errors_are_clear():
    x = torch.zeros(1, 5)
    with pytest.raises(ValueError, match="top_p must be in"):
        top_p_filter(x, 0.0)
    with pytest.raises(ValueError, match="top_p must be in"):
        top_p_filter(x, 1.5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        apply_temperature(x, -1.0)
    with pytest.raises(ValueError, match="top_k must be an integer >= 0"):
        top_k_filter(x, -1)
    with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
        apply_repetition_penalty(x, torch.zeros(1, 1, dtype=torch.long), 0.0)
    for bad in (
        dict(top_p=0.0),
        dict(top_p=1.5),
        dict(temperature=-0.5),
        dict(top_k=-2),
        dict(repetition_penalty=-1.0),
        dict(num_beams=0),
        dict(max_new_tokens=0),
        dict(stop_strings="\n"),
        dict(early_stopping="sometimes"),
        dict(num_beams=2, temperature=0.7),
    ):
        with pytest.raises(ValueError):
            GenerationConfig(**bad)


def test_top_k_1_is_greedy_and_seeds_reproduce(gpt, tok):
    greedy = generate(gpt, tok, PROMPTS, GenerationConfig(max_new_tokens=12))
    assert generate(gpt, tok, PROMPTS, GenerationConfig(max_new_tokens=12, temperature=1.0, top_k=1, seed=3)) == greedy
    cfg = GenerationConfig(max_new_tokens=16, temperature=1.5, seed=7)
    assert generate(gpt, tok, PROMPTS, cfg) == generate(gpt, tok, PROMPTS, cfg)
    other = GenerationConfig(max_new_tokens=16, temperature=1.5, seed=8)
    assert generate(gpt, tok, PROMPTS, cfg) != generate(gpt, tok, PROMPTS, other)
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    assert next_token(logits, GenerationConfig(temperature=2.0, do_sample=False)).tolist() == [1]


# ----------------------------------------------------------------------------------------------
# greedy: cache or not, batched or not, ours or HF's


def test_greedy_with_and_without_cache_equals_the_naive_loop(gpt, tok):
    ids = torch.tensor([tok("The cat", add_special_tokens=False)["input_ids"]])
    naive = gpt.generate(ids, 20, temperature=0)[:, ids.shape[1] :]  # recompute-everything argmax loop
    never = [10**6]  # an end token that never comes: all 20 steps run
    cached = generate_ids(gpt, ids, None, GenerationConfig(max_new_tokens=20), never)
    uncached = generate_ids(gpt, ids, None, GenerationConfig(max_new_tokens=20, use_cache=False), never)
    assert torch.equal(cached, naive) and torch.equal(uncached, naive)


def test_batched_rows_equal_unbatched(gpt, tok):
    cfg = GenerationConfig(max_new_tokens=24)
    assert generate(gpt, tok, PROMPTS, cfg) == [generate(gpt, tok, p, cfg)[0] for p in PROMPTS]


def test_greedy_equals_hf_generate_token_for_token(gpt, hf, batch, eos):
    theirs = hf_new_tokens(hf, batch, eos, max_new_tokens=20, do_sample=False)
    for model in (gpt, hf):  # our GPT, and our loop driving the HF model
        assert torch.equal(generate_ids(model, *batch, GenerationConfig(max_new_tokens=20), eos), theirs)
    assert (theirs == eos[0]).any(), "some row should end early, or the test misses the finished-row logic"


def test_repetition_penalty_equals_hf(gpt, hf, batch, eos):
    for penalty in (1.5, 0.7):
        theirs = hf_new_tokens(hf, batch, eos, max_new_tokens=20, do_sample=False, repetition_penalty=penalty)
        ours = generate_ids(gpt, *batch, GenerationConfig(max_new_tokens=20, repetition_penalty=penalty), eos)
        assert torch.equal(ours, theirs)


def test_seeded_sampling_equals_hf_with_the_same_seed(gpt, hf, batch, eos):
    settings = [dict(temperature=0.8, top_p=0.9), dict(temperature=1.3, top_k=5, repetition_penalty=1.3)]
    for seed, s in enumerate(settings):
        torch.manual_seed(seed)  # HF draws from torch's global generator
        theirs = hf_new_tokens(hf, batch, eos, max_new_tokens=20, do_sample=True, **{"top_k": 0, **s})
        for model in (gpt, hf):
            assert torch.equal(
                generate_ids(model, *batch, GenerationConfig(max_new_tokens=20, seed=seed, **s), eos), theirs
            )


# ----------------------------------------------------------------------------------------------
# beam search == HF's


@pytest.mark.parametrize("num_beams", [2, 4])
def test_beam_search_equals_hf(gpt, hf, batch, tok, eos, num_beams):
    # A second model whose beams end early and often, in a batch of five: the finishing rules matter.
    eager = random_gpt(len(tok), eos, seed=2, eos_scale=3.0)
    prompts = PROMPTS + ["Emoji 👋 are", "你好"]
    eager_batch = left_pad([tok(p, add_special_tokens=False)["input_ids"] for p in prompts], eos[0])
    for ours_model, theirs_model, b in [(gpt, hf, batch), (eager, to_hf(eager), eager_batch)]:
        for early_stopping, length_penalty in [
            (False, 1.0),
            (False, 2.0),
            (True, 0.5),
            ("never", 1.0),
            ("never", -1.0),
        ]:
            kw = dict(num_beams=num_beams, early_stopping=early_stopping, length_penalty=length_penalty)
            theirs = hf_new_tokens(theirs_model, b, eos, max_new_tokens=15, do_sample=False, **kw)
            ours = generate_ids(ours_model, *b, GenerationConfig(max_new_tokens=15, **kw), eos)
            assert torch.equal(ours, theirs), kw
    cfg = GenerationConfig(max_new_tokens=12, num_beams=num_beams, repetition_penalty=1.5)
    theirs = hf_new_tokens(
        hf, batch, eos, max_new_tokens=12, do_sample=False, num_beams=num_beams, repetition_penalty=1.5
    )
    assert torch.equal(generate_ids(hf, *batch, cfg, eos), theirs)
    assert torch.equal(
        generate_ids(gpt, *batch, GenerationConfig(max_new_tokens=12, num_beams=num_beams, use_cache=False), eos),
        generate_ids(gpt, *batch, GenerationConfig(max_new_tokens=12, num_beams=num_beams), eos),
    )


def test_all_beams_and_scores_equal_hf(hf, batch, eos):
    out = hf.generate(
        batch[0],
        attention_mask=batch[1],
        eos_token_id=eos,
        pad_token_id=eos[0],
        max_new_tokens=10,
        num_beams=3,
        num_return_sequences=3,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
    )
    beams = beam_search(hf, *batch, GenerationConfig(max_new_tokens=10, num_beams=3), eos)
    assert torch.equal(beams.sequences.flatten(0, 1), out.sequences[:, batch[0].shape[1] :])
    assert torch.allclose(beams.scores.flatten(), out.sequences_scores)


# ----------------------------------------------------------------------------------------------
# text: stop strings, streaming, errors


def test_stop_strings_cut_the_text(gpt, tok):
    full = generate(gpt, tok, "The cat", GenerationConfig(max_new_tokens=20))[0]
    stop = full[4:6]
    cut = generate(gpt, tok, "The cat", GenerationConfig(max_new_tokens=20, stop_strings=[stop]))[0]
    assert cut == full[: full.find(stop)] and stop not in cut


class Scripted(Backend):
    """A fake model whose next token is always the next one of ``script`` (then an end token)."""

    context = None

    def __init__(self, script: list[int], vocab: int, end: int):
        self.script, self.vocab, self.end, self.calls = script, vocab, end, 0

    @property
    def device(self):
        return torch.device("cpu")

    def start(self, batch_size, max_len):
        return {"seen": 0, "prompt": None}

    def step(self, ids, cache, attention_mask, position_ids):
        self.calls += 1
        cache = cache if cache is not None else {"seen": 0, "prompt": ids.shape[1]}
        cache["prompt"] = cache["prompt"] or ids.shape[1]
        cache["seen"] += ids.shape[1]
        n = cache["seen"] - cache["prompt"]  # tokens generated so far
        logits = torch.full((ids.shape[0], ids.shape[1], self.vocab), -10.0)
        logits[:, -1, self.script[n] if n < len(self.script) else self.end] = 10.0
        return logits


def test_streaming_never_splits_a_character_and_joins_to_generate(tok, eos):
    text = "Phở ngon 🍜, 东西 👋 Tiếng Việt 你好!"  # some of these characters are several byte tokens
    script = tok(text, add_special_tokens=False)["input_ids"]
    assert any(tok.decode(script[:i]).endswith("\ufffd") for i in range(len(script))), "no split character to test"
    model = Scripted(script, len(tok), eos[1])
    cfg = GenerationConfig(max_new_tokens=60)
    pieces = list(stream(model, tok, "Hi", cfg))
    assert "".join(pieces) == text == generate(model, tok, "Hi", cfg)[0]
    assert all("\ufffd" not in p for p in pieces) and len(pieces) < len(script)

    model.calls = 0
    it = stream(model, tok, "Hi", cfg)
    first = next(it)
    assert first and model.calls <= 2  # the prefill and at most one decoding step: the rest is pending
    assert first + "".join(it) == text and model.calls > len(script) // 2


def test_streaming_equals_generate_on_a_real_model(gpt, tok):
    configs = [
        GenerationConfig(max_new_tokens=30),
        GenerationConfig(max_new_tokens=30, temperature=1.2, seed=1),
        GenerationConfig(max_new_tokens=30, stop_strings=["d)", "\x18"]),  # both occur in these outputs
        GenerationConfig(max_new_tokens=10, num_beams=2),
    ]
    for cfg in configs:
        for prompt in PROMPTS:
            assert "".join(stream(gpt, tok, prompt, cfg)) == generate(gpt, tok, prompt, cfg)[0]


def test_stream_holds_back_a_possible_stop_string(tok, eos):
    script = tok("ab\ncd\n\nef", add_special_tokens=False)["input_ids"]
    pieces = list(stream(Scripted(script, len(tok), eos[0]), tok, "x", GenerationConfig(stop_strings=["\n\n"])))
    assert "".join(pieces) == "ab\ncd" and not any(p.endswith("\n\n") for p in pieces)


def test_input_errors_name_the_problem(gpt, tok, eos):
    long_prompt = "The cat sat on the mat. " * 40
    n = len(tok(long_prompt, add_special_tokens=False)["input_ids"])
    with pytest.raises(ValueError, match=rf"prompt 1 has {n} tokens; the model's context is 64 tokens"):
        generate(gpt, tok, ["ok", long_prompt])
    with pytest.raises(ValueError, match=rf"prompt 0 has {n} tokens; .* at most 63"):
        stream(gpt, tok, long_prompt)
    with pytest.raises(ValueError, match=rf"prompt 0 has {n} tokens"):
        generate_ids(
            gpt, torch.tensor([tok(long_prompt, add_special_tokens=False)["input_ids"]]), None, GenerationConfig(), eos
        )
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        generate(gpt, tok, "")
    with pytest.raises(ValueError, match="no prompts"):
        generate(gpt, tok, [])
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(gpt, tok, "a", GenerationConfig(top_p=0.0))
    with pytest.raises(ValueError, match="top_p must be in"):
        stream(gpt, tok, "a", GenerationConfig(top_p=1.5))  # raised at the call, before any iteration
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(gpt, tok, "a", GenerationConfig(temperature=-1.0))
    with pytest.raises(ValueError, match="beam search is beam_search"):
        next(token_steps(gpt, torch.tensor([[1]]), None, GenerationConfig(num_beams=2), eos))


def test_rows_stop_at_the_context(gpt, tok):
    """A row ends when it fills the context (64 here), however many new tokens were asked for."""
    prompt = "The cat sat on the mat. " * 8
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    out = generate_ids(gpt, ids, None, GenerationConfig(max_new_tokens=500), [10**6])  # no end token
    assert out.shape[1] == 64 - n


# ----------------------------------------------------------------------------------------------
# the trained base model, when present


@pytest.mark.skipif(not (TRAINED / "model.safetensors").is_file(), reason="no trained model in runs/default")
def test_trained_model_greedy_and_beams_equal_hf():
    from transformers import AutoModelForCausalLM

    from llmkb.inference.generate import eos_ids_of
    from llmkb.model.hf import load_pretrained
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    ours, theirs, tok = (
        load_pretrained(TRAINED),
        AutoModelForCausalLM.from_pretrained(TRAINED).eval(),
        load_tokenizer(TRAINED),
    )
    eos = eos_ids_of(tok)
    batch = left_pad(
        [tok(p, add_special_tokens=False)["input_ids"] for p in ["The history of", "Once upon a time, the"]], eos[0]
    )
    for kw in (dict(), dict(num_beams=3)):
        hf_out = hf_new_tokens(theirs, batch, eos, max_new_tokens=30, do_sample=False, **kw)
        assert torch.equal(generate_ids(ours, *batch, GenerationConfig(max_new_tokens=30, **kw), eos), hf_out)
    text = generate(ours, tok, "The history of", GenerationConfig(max_new_tokens=30))[0]
    assert text and "".join(stream(ours, tok, "The history of", GenerationConfig(max_new_tokens=30))) == text
