"""The SFT stage's settings: which data, which way to train (our loop or trl, all weights or LoRA), how long.

In: nothing. Out: :class:`SFTConfig`, a plain dataclass saved as ``config.json`` beside the stage's
artifacts. Torch-free, so registering the stage stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The linear layers LoRA adapts: every projection of attention and of the MLP (the names are the
#: same in our GPT and in HF's Llama, so one list serves both trainers).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class SFTConfig:
    # -- the data (llmkb.sft.data, llmkb.sft.identity)
    sizes: dict[str, int] = field(default_factory=dict)  # train conversations per type, over data.SIZES
    identity: int = 150  # hard-coded "who are you?" conversations naming the assistant
    system_identity: int = 300  # conversations whose system message names an assistant (a new name each)
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

    def check(self) -> SFTConfig:
        """Raise a ValueError naming the first setting that makes no sense."""
        if self.trainer not in ("ours", "trl"):
            raise ValueError(f"trainer must be 'ours' or 'trl', got {self.trainer!r}")
        if self.method not in ("full", "lora"):
            raise ValueError(f"method must be 'full' or 'lora', got {self.method!r}")
        if self.init_special not in ("mean", "base"):
            raise ValueError(f"init_special must be 'mean' or 'base', got {self.init_special!r}")
        if self.epochs < 1 and self.max_steps < 1:
            raise ValueError("set epochs >= 1 or max_steps >= 1")
        if self.batch_size < 1 or self.lora_r < 1:
            raise ValueError(f"batch_size and lora_r must be >= 1, got {self.batch_size} and {self.lora_r}")
        return self
