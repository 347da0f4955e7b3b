"""The reward model: trl's loss on the same batch, HF round trips, padding, learning a preference, errors."""

from __future__ import annotations

import random

import pytest
import torch

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.rl.reward import (
    RewardConfig,
    RewardModel,
    bradley_terry_loss,
    encode_pairs,
    from_hf_reward,
    pair_batch,
    pairwise_accuracy,
    to_hf_reward,
    train_reward_model,
)
from llmkb.sft.masking import _char_tokenizer
from llmkb.tokenizer.hf import CHATML_TEMPLATE

ANIMALS = ["cat", "dog", "cow", "fox", "owl", "bee", "hen", "pig", "rat", "yak"]
FOODS = ["fish", "bones", "grass", "mice", "seeds", "honey", "corn", "roots", "bread", "hay"]


@pytest.fixture(scope="module")
def tok():
    return _char_tokenizer(CHATML_TEMPLATE)  # one token per character; pad = eos = <|endoftext|>


def tiny_gpt(tok, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(vocab_size=len(tok), context=512, d_model=32, n_layer=2, n_head=2, n_kv_head=1, d_ff=64))


def make_pairs(n: int, seed: int) -> list[dict]:
    """A learnable preference: a short true sentence beats the same number of words of "the the the"."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        i = rng.randrange(len(ANIMALS))
        prompt = [{"role": "user", "content": f"What does the {ANIMALS[i]} eat?"}]
        if rng.random() < 0.5:
            prompt = [{"role": "system", "content": "Be brief."}, *prompt]
        chosen = f"The {ANIMALS[i]} eats {FOODS[i]}."
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": " ".join(["the"] * rng.randint(2, 6))})
    return pairs


def test_bradley_terry_loss_and_accuracy():
    chosen, rejected = torch.tensor([1.0, 0.0, -2.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = -torch.log(torch.sigmoid(chosen - rejected)).mean()
    assert torch.allclose(bradley_terry_loss(chosen, rejected), expected)
    assert abs(pairwise_accuracy(chosen, rejected) - 1 / 3) < 1e-6  # the tie counts as wrong
    # only differences matter: shifting every score leaves the loss unchanged
    assert torch.allclose(bradley_terry_loss(chosen + 7, rejected + 7), expected)


def test_encoding_is_the_chatml_prompt_plus_the_reply(tok):
    pair = make_pairs(1, seed=3)[0]
    ((chosen, rejected),) = encode_pairs(tok, [pair], context=512)
    text = tok.decode(chosen["input_ids"])
    assert text.endswith(f"<|im_start|>assistant\n{pair['chosen']}<|im_end|>\n")
    assert tok.decode(rejected["input_ids"]).endswith(f"assistant\n{pair['rejected']}<|im_end|>\n")
    prompt = tok.apply_chat_template(pair["prompt"], tokenize=False)
    assert text.startswith(prompt) and tok.decode(rejected["input_ids"]).startswith(prompt)


def test_score_does_not_depend_on_padding(tok):
    model = RewardModel(tiny_gpt(tok)).eval()
    encoded = encode_pairs(tok, make_pairs(4, seed=1), context=512)
    ids, mask = pair_batch(encoded, tok.pad_token_id)  # (8, T), rows of different lengths
    assert (mask.sum(1) < ids.shape[1]).any()  # some rows really are padded
    with torch.no_grad():
        batched = model(ids, mask)  # (8,)
        alone = torch.stack(
            [model(ids[i : i + 1, : int(n)], mask[i : i + 1, : int(n)])[0] for i, n in enumerate(mask.sum(1))]
        )
    print(f"max |batched - alone| = {(batched - alone).abs().max().item():.2e}")
    assert torch.allclose(batched, alone, atol=1e-5)
    assert batched.std() > 0.01  # the check means something: rows do score differently


def test_reward_model_copies_the_sft_weights(tok):
    sft = tiny_gpt(tok)
    model = RewardModel(sft)
    for (name, ours), theirs in zip(model.backbone.state_dict().items(), sft.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    with torch.no_grad():
        model.backbone.embed_tokens.weight.add_(1.0)
    assert not torch.equal(model.backbone.embed_tokens.weight, sft.embed_tokens.weight)  # a copy, not the same tensors


def test_hf_conversion_gives_the_same_scores_and_round_trips(tok):
    model = RewardModel(tiny_gpt(tok, seed=2)).eval()
    ids, mask = pair_batch(encode_pairs(tok, make_pairs(5, seed=2), context=512), tok.pad_token_id)
    hf = to_hf_reward(model, tok.pad_token_id)
    assert type(hf).__name__ == "LlamaForSequenceClassification" and hf.config.num_labels == 1
    back = from_hf_reward(hf)
    with torch.no_grad():
        ours = model(ids, mask)
        theirs = hf(input_ids=ids, attention_mask=mask).logits.squeeze(-1)  # (2B,)
        again = back(ids, mask)
    print(f"max |ours - hf| = {(ours - theirs).abs().max().item():.2e}")
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.equal(ours, again)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, back.state_dict()[name]), name


def test_bradley_terry_loss_equals_trl_reward_trainer(tok, tmp_path):
    """THE KEY TEST: trl's RewardTrainer, with its own tokenization, collator and compute_loss, on the HF copy."""
    import datasets
    from trl import RewardConfig as TrlRewardConfig
    from trl import RewardTrainer

    pairs = make_pairs(6, seed=4)
    model = RewardModel(tiny_gpt(tok, seed=4)).eval()
    with torch.no_grad():  # every row ends in the same "\n", so a random model scores them alike: spread the
        model.score.weight.mul_(100)  # scores out, or the loss is ln 2 whatever the two sides compute
    encoded = encode_pairs(tok, pairs, context=512)
    ids, mask = pair_batch(encoded, tok.pad_token_id)
    with torch.no_grad():
        chosen, rejected = model(ids, mask).chunk(2)
        ours = bradley_terry_loss(chosen, rejected)

    hf = to_hf_reward(model, tok.pad_token_id)
    # center_rewards_coefficient=None (trl's default) keeps the loss pure Bradley-Terry: with it trl
    # would add coefficient * mean((chosen + rejected)^2), a pull of the scores toward zero.
    args = TrlRewardConfig(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        center_rewards_coefficient=None,
        max_length=512,
        save_strategy="no",
        dataset_num_proc=None,
    )
    # trl's conversational format with an explicit prompt: each reply is a list of messages
    dataset = datasets.Dataset.from_list(
        [
            {
                "prompt": p["prompt"],
                "chosen": [{"role": "assistant", "content": p["chosen"]}],
                "rejected": [{"role": "assistant", "content": p["rejected"]}],
            }
            for p in pairs
        ]
    )
    trainer = RewardTrainer(model=hf, args=args, train_dataset=dataset, processing_class=tok)
    prepared = trainer.train_dataset
    assert len(prepared) == len(pairs)  # nothing filtered out
    for (c, r), row in zip(encoded, prepared, strict=True):
        assert row["chosen_ids"] == c["input_ids"] and row["rejected_ids"] == r["input_ids"]  # token for token
    trl_batch = trainer.data_collator([prepared[i] for i in range(len(pairs))])
    assert torch.equal(trl_batch["input_ids"], ids) and torch.equal(trl_batch["attention_mask"], mask)
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, dict(trl_batch))
    print(f"ours {ours.item():.6f} trl {trl_loss.item():.6f} diff {abs(ours - trl_loss).item():.2e}")
    assert abs(ours.item() - trl_loss.item()) < 1e-4
    assert abs(ours.item() - 0.6931) > 0.05  # not the coin-flip loss of equal scores: the comparison tests something


def test_training_learns_a_simple_preference(tok):
    sft = tiny_gpt(tok, seed=5)
    config = RewardConfig(lr=3e-3, max_steps=40, batch_size=8, seed=0, device="cpu", progress=False)
    model, log, summary = train_reward_model(sft, tok, make_pairs(64, seed=10), make_pairs(32, seed=11), config)
    print(
        {k: summary[k] for k in ("first_test_accuracy", "test_accuracy", "test_loss", "s_per_step")},
        "first/last loss",
        log[0]["loss"],
        log[-1]["loss"],
    )
    assert isinstance(model, RewardModel) and not model.training
    assert len(log) == 40 and {"loss", "accuracy", "margin"} <= log[0].keys()
    assert summary["test_accuracy"] >= 0.9
    assert log[-1]["loss"] < log[0]["loss"]
    assert torch.equal(sft.embed_tokens.weight, tiny_gpt(tok, seed=5).embed_tokens.weight)  # the SFT model is untouched


def test_errors_name_the_problem(tok):
    sft = tiny_gpt(tok)
    config = RewardConfig(max_steps=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="no preference pairs"):
        train_reward_model(sft, tok, [], [], config)
    pairs = make_pairs(3, seed=0)
    pairs[2] = {**pairs[2], "rejected": pairs[2]["chosen"]}
    with pytest.raises(ValueError, match=r"pair 2: chosen and rejected are the same"):
        train_reward_model(sft, tok, pairs, [], config)
    with pytest.raises(ValueError, match=r"pair 0: missing \['rejected'\]"):
        encode_pairs(tok, [{"prompt": [], "chosen": "a"}], context=512)
    with pytest.raises(ValueError, match=r"pair 0 \(chosen\): the conversation is \d+ tokens"):
        encode_pairs(tok, [{"prompt": [], "chosen": "x" * 600, "rejected": "y"}], context=512)
    model = RewardModel(sft)
    with pytest.raises(ValueError, match="right padding"):
        model(torch.tensor([[1, 2, 3]]), torch.tensor([[0, 1, 1]]))  # left padding
