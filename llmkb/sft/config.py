"""The SFT stage's settings: which data, which way to train (our loop or trl, all weights or LoRA), how long.

In: nothing. Out: :class:`SFTConfig`, a plain dataclass saved as ``config.json`` beside the stage's
artifacts, that checks its fields when built. Torch-free, so registering the stage stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmkb.checks import fraction, non_negative, one_of, positive, require

#: The linear layers LoRA adapts: every projection of attention and of the MLP (the names are the
#: same in our GPT and in HF's Llama, so one list serves both trainers).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class SFTConfig:
    # -- the data (llmkb.sft.data, llmkb.sft.identity)
    sizes: dict[str, int] = field(default_factory=dict)  # train conversations per type, over data.SIZES
    # Hard-coded "who are you?" conversations naming the assistant. Beside 1,200 system-message names,
    # 300 of them left 3 of 8 held-out questions answered with a garbled name (measured).
    identity: int = 600
    # Conversations whose system message names an assistant (a new name each). 300 taught the format
    # but not the copy (0 of 8 new names, then 1 of 8 with induction heads); 1,200 teach it.
    system_identity: int = 1200
    skip_long: bool = True  # drop (and count) conversations longer than the context instead of failing
    seed: int = 0
    # -- the method
    trainer: str = "ours"  # "ours": the loop in llmkb.sft.train; "trl": trl's SFTTrainer on the HF copy
    method: str = "full"  # "full": every weight trains; "lora": frozen weights + low-rank adapters (peft)
    lora_r: int = 8  # rank of each adapter's A (r x in) and B (out x r)
    lora_alpha: int = 16  # the adapter's output is scaled by alpha / r
    lora_targets: tuple[str, ...] = LORA_TARGETS
    init_special: str = (
        "mean"  # ChatML tokens' embeddings: "mean" of the used tokens', or "base" (as pretraining left them)
    )
    # -- the optimization
    epochs: int = 1  # one pass: a second one lowers the training loss and raises the held-out loss (measured)
    max_steps: int = 0  # > 0: stop after this many steps (overrides epochs; for comparisons)
    batch_size: int = 16  # conversations per step
    lr: float = 1e-3  # peak learning rate (a third of pretraining's: the weights already know a lot)
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    warmup_steps: int = 20
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 50  # steps between test-loss measurements (and at the end)
    # -- bookkeeping
    eval_new_tokens: int = 96  # longest reply generated when scoring base vs SFT
    device: str = "auto"
    compile: str = "auto"  # "auto": torch.compile on CUDA only
    progress: bool = True

    def __post_init__(self) -> None:
        # Which types exist is build_splits' to say (llmkb.sft.data imports torch); the counts are ours.
        require(
            self,
            "sizes",
            all(isinstance(n, int) and n >= 0 for n in self.sizes.values()),
            "a dict of conversation type -> count >= 0",
        )
        non_negative(self, "identity", "system_identity", "epochs", "max_steps", "warmup_steps", "weight_decay")
        non_negative(self, "grad_clip")
        one_of(self, "trainer", ("ours", "trl"))
        one_of(self, "method", ("full", "lora"))
        positive(self, "lora_r", "lora_alpha", "batch_size", "lr", "eval_every", "eval_new_tokens")
        targets = self.lora_targets
        require(
            self,
            "lora_targets",
            bool(targets) and set(targets) <= set(LORA_TARGETS),
            "a non-empty subset of " + ", ".join(LORA_TARGETS),
        )
        one_of(self, "init_special", ("mean", "base"))
        require(self, "epochs", self.epochs >= 1 or self.max_steps >= 1, ">= 1 unless max_steps is")
        fraction(self, "min_lr_ratio")
        one_of(self, "compile", ("auto", "yes", "no"))
