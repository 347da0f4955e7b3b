"""DPO: the loss equals trl's on the same batch, training ranks chosen above rejected, clear errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from llmkb.model.gpt import GPT, ModelConfig
from llmkb.rl.dpo import DPOConfig, dpo_loss, encode_pair, pair_logps, sequence_logps, train_dpo
from llmkb.sft.masking import IGNORE, _char_tokenizer, collate
from llmkb.tokenizer.hf import CHATML_TEMPLATE
from llmkb.training import NonFiniteLoss

PAIRS = [
    {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
        "chosen": "4.",
        "rejected": "I think it could be five.",
    },
    {"prompt": [{"role": "user", "content": "Capital of France?"}], "chosen": "Paris.", "rejected": "Rome"},
    {"prompt": [{"role": "user", "content": "Say hi."}], "chosen": "Hi!", "rejected": "no"},
]


@pytest.fixture(scope="module")
def tok():
    return _char_tokenizer(CHATML_TEMPLATE)  # one token per character; pad = eos = <|endoftext|>


def tiny_gpt(tok, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(
        ModelConfig(vocab_size=len(tok), context=512, d_model=32, n_layer=2, n_head=2, n_kv_head=1, d_ff=64)
    ).eval()


def perturbed(model: GPT, scale: float = 0.05, seed: int = 1) -> GPT:
    """A copy of ``model`` with noise on every weight: a policy that has moved away from the reference."""
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return other


def test_dpo_loss_equals_trl(tok, tmp_path):
    """THE KEY TEST: trl's DPOTrainer, with its own tokenization, collator and compute_loss, on HF copies."""
    import datasets
    from trl import DPOConfig as TrlConfig
    from trl import DPOTrainer

    from llmkb.model.hf import to_hf

    reference = tiny_gpt(tok)
    policy = perturbed(reference)
    beta = 0.5
    ours = [encode_pair(tok, p["prompt"], p["chosen"], p["rejected"], context=512) for p in PAIRS]

    ids = tok.eos_token_id, tok.eos_token_id, tok.pad_token_id
    config = TrlConfig(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        beta=beta,
        max_length=512,
        per_device_train_batch_size=len(PAIRS),
        dataset_num_proc=None,
    )
    as_messages = lambda reply: [{"role": "assistant", "content": reply}]  # noqa: E731  trl's conversational format
    dataset = datasets.Dataset.from_list(
        [
            {"prompt": p["prompt"], "chosen": as_messages(p["chosen"]), "rejected": as_messages(p["rejected"])}
            for p in PAIRS
        ]
    )
    trainer = DPOTrainer(
        model=to_hf(policy, *ids),
        ref_model=to_hf(reference, *ids),
        args=config,
        train_dataset=dataset,
        processing_class=tok,
    )
    prepared = trainer.train_dataset
    assert len(prepared) == len(PAIRS)  # nothing dropped or truncated

    # Tokenization: the same ids; trl labels one token more, the "\n" the template writes after <|im_end|>.
    newline = tok.convert_tokens_to_ids("\n")
    aligned = []  # our encoding with trl's labels
    for (chosen, rejected), row in zip(ours, prepared):
        for x, completion in ((chosen, row["chosen_ids"]), (rejected, row["rejected_ids"])):
            assert x["input_ids"] == row["prompt_ids"] + completion
            n = len(row["prompt_ids"])
            assert x["labels"][:n] == [IGNORE] * n  # the prompt (with "<|im_start|>assistant\n") is not scored
            assert completion[-1] == newline and x["labels"][n:] == completion[:-1] + [
                IGNORE
            ]  # trl also scores the "\n"
        aligned.append(
            tuple(
                {"input_ids": x["input_ids"], "labels": x["labels"][:-1] + [x["input_ids"][-1]]}
                for x in (chosen, rejected)
            )
        )

    trl_batch = trainer.data_collator([prepared[i] for i in range(len(PAIRS))])
    ids_ours, labels_ours, _ = collate([c for c, _ in aligned] + [r for _, r in aligned], tok.pad_token_id)
    assert torch.equal(trl_batch["input_ids"], ids_ours)  # trl's batch is [chosen rows, rejected rows] too
    assert torch.equal(trl_batch["completion_mask"].bool(), labels_ours != IGNORE)

    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, dict(trl_batch)).item()
        loss, _, _ = dpo_loss(
            *pair_logps(policy, aligned, tok.pad_token_id, "cpu"),
            *pair_logps(reference, aligned, tok.pad_token_id, "cpu"),
            beta,
        )
        loss_ours_labels, _, _ = dpo_loss(
            *pair_logps(policy, ours, tok.pad_token_id, "cpu"),
            *pair_logps(reference, ours, tok.pad_token_id, "cpu"),
            beta,
        )
    print(
        f"ours {loss.item():.6f} trl {trl_loss:.6f} diff {abs(loss.item() - trl_loss):.2e} "
        f"(with our reply + <|im_end|> labels: {loss_ours_labels.item():.6f})"
    )
    assert abs(loss.item() - math.log(2)) > 1e-3  # the policy really differs from the reference
    assert abs(loss.item() - trl_loss) < 1e-4


def test_sequence_logps_same_for_gpt_and_hf(tok):
    from llmkb.model.hf import to_hf

    model = tiny_gpt(tok)
    chosen, rejected = encode_pair(tok, PAIRS[0]["prompt"], PAIRS[0]["chosen"], PAIRS[0]["rejected"], context=512)
    ids, labels, _ = collate([chosen, rejected], tok.pad_token_id)
    with torch.no_grad():
        ours = sequence_logps(model, ids, labels)
        hf = sequence_logps(to_hf(model), ids, labels)
        # by hand: the sum over the labelled tokens of log p(token | the tokens before it)
        logp = model(ids[:1, :-1])[0].log_softmax(-1)[0]  # (T-1, V)
        by_hand = sum(logp[t - 1, ids[0, t]] for t in range(1, ids.size(1)) if labels[0, t] != IGNORE)
    assert ours.shape == (2,)
    assert torch.allclose(ours, hf, atol=1e-4)
    assert abs(ours[0].item() - by_hand.item()) < 1e-4


def test_loss_is_ln2_at_start_and_training_ranks_chosen_first(tok):
    reference = tiny_gpt(tok)
    policy = copy.deepcopy(reference)
    ref_before = {k: v.clone() for k, v in reference.state_dict().items()}
    encoded = [encode_pair(tok, p["prompt"], p["chosen"], p["rejected"], context=512) for p in PAIRS]

    def margins(model) -> torch.Tensor:  # (B,) chosen minus rejected log-ratio to the reference
        with torch.no_grad():
            pc, pr = pair_logps(model, encoded, tok.pad_token_id, "cpu")
            rc, rr = pair_logps(reference, encoded, tok.pad_token_id, "cpu")
        return (pc - rc) - (pr - rr)

    assert torch.allclose(margins(policy), torch.zeros(len(PAIRS)), atol=1e-5)
    config = DPOConfig(beta=0.1, lr=3e-3, max_steps=15, batch_size=len(PAIRS), device="cpu", progress=False)
    policy, log = train_dpo(policy, reference, tok, PAIRS, config)
    assert abs(log[0]["loss"] - math.log(2)) < 1e-4  # policy == reference: every implicit reward is 0
    assert log[0]["accuracy"] == 0.0 and log[0]["margin"] == 0.0
    assert log[-1]["loss"] < log[0]["loss"] and log[-1]["margin"] > 0 and log[-1]["accuracy"] == 1.0
    after = margins(policy)
    print("margins after training:", after.tolist(), "losses:", [r["loss"] for r in log])
    assert (after > 0).all()  # accuracy 1.0 on the training pairs
    assert all(torch.equal(v, ref_before[k]) for k, v in reference.state_dict().items())  # the reference did not move


def test_empty_pairs_and_same_model_are_refused(tok):
    model = tiny_gpt(tok)
    with pytest.raises(ValueError, match="no preference pairs"):
        train_dpo(model, copy.deepcopy(model), tok, [], DPOConfig(device="cpu", progress=False))
    with pytest.raises(ValueError, match="same object"):
        train_dpo(model, model, tok, PAIRS, DPOConfig(device="cpu", progress=False))
    with pytest.raises(ValueError, match=r"pair 0: missing \['rejected'\]"):
        train_dpo(
            model, copy.deepcopy(model), tok, [{"prompt": [], "chosen": "x"}], DPOConfig(device="cpu", progress=False)
        )
    same = [PAIRS[0], {**PAIRS[1], "rejected": PAIRS[1]["chosen"]}]
    with pytest.raises(ValueError, match="pair 1: chosen and rejected are the same reply"):
        train_dpo(model, copy.deepcopy(model), tok, same, DPOConfig(device="cpu", progress=False))


def test_nan_loss_stops_before_updating(tok):
    policy = tiny_gpt(tok)
    reference = copy.deepcopy(policy)
    with torch.no_grad():
        reference.norm.weight.fill_(float("nan"))  # a broken reference: every log-ratio, so the loss, is NaN
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    with pytest.raises(NonFiniteLoss, match="DPO step 0"):
        train_dpo(policy, reference, tok, PAIRS, DPOConfig(lr=1e-2, max_steps=3, device="cpu", progress=False))
    assert all(torch.equal(v, before[k]) for k, v in policy.state_dict().items())
