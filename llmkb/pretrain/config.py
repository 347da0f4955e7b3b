"""The pretraining stage's settings: what to train on, the model's shape, the optimization.

In: nothing. Out: :class:`PretrainConfig`, a plain dataclass (saved as ``config.json`` beside the
stage's artifacts) that checks its fields when built. It lives apart from the loop so that
registering the stage does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkb.checks import attention_heads, fraction, non_negative, one_of, positive, require


@dataclass
class PretrainConfig:
    # -- what to train on
    mix: str = "focused"  # "focused": the encyclopedia and passage pages plus filler_bytes of the rest; "all"
    filler_bytes: int = 150_000  # with mix="focused": how much ordinary text joins the planted pages
    # Per step, beside the batch_size windows of text: windows of random tokens repeated to the end
    # (llmkb.pretrain.shards.repeat_windows). Text this small repeats too little within a window to
    # grow induction heads in 2,000 steps; these do (measured: docs/pretraining/base-model.md). 0: text only.
    repeat_windows: int = 24
    # > 0: only the first repeat_steps steps get them. Stopped at 1,300 steps (just after the heads
    # formed) they faded: 96% of the second copy at step 1,250, 18% at 1,500, 1% at 2,000 (measured).
    repeat_steps: int = 0
    # -- the model (see llmkb.model.gpt.ModelConfig; vocab_size comes from the tokenizer)
    context: int = 128
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int = 2  # GQA: two query heads share each key/value head
    d_ff: int = 320
    # -- the optimization
    max_steps: int = 2000
    batch_size: int = 8  # windows per optimizer step, summed over processes and micro-batches
    grad_accum: int = 1  # micro-batches per process per step
    lr: float = 1e-3  # peak learning rate, reached after warmup (3e-3 never formed induction heads: too noisy)
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm (0: no clipping)
    seed: int = 0
    # -- bookkeeping
    eval_every: int = 250  # steps between validation passes (and at the end)
    eval_tokens: int = 32_768  # validation tokens per pass
    checkpoint_every: int = 250  # steps between checkpoints (and at the end)
    stop_after: int = 0  # > 0: stop after this many steps in this invocation (a later run resumes)
    device: str = "auto"  # "auto" picks CUDA when present
    compile: str = "auto"  # "auto": torch.compile on CUDA only; "yes" / "no" to force
    progress: bool = True

    def __post_init__(self) -> None:
        one_of(self, "mix", ("focused", "all"))
        non_negative(
            self,
            "filler_bytes",
            "repeat_windows",
            "repeat_steps",
            "warmup_steps",
            "weight_decay",
            "grad_clip",
            "stop_after",
        )
        positive(self, "context", "d_model", "n_layer", "n_head", "n_kv_head", "d_ff")
        attention_heads(self, self.d_model, self.n_head, self.n_kv_head)
        positive(self, "max_steps", "batch_size", "grad_accum", "lr", "eval_every", "eval_tokens", "checkpoint_every")
        fraction(self, "min_lr_ratio")
        for name in ("beta1", "beta2"):  # AdamW's moving averages: 1 would never forget
            require(self, name, 0 <= getattr(self, name) < 1, "in [0, 1)")
        one_of(self, "compile", ("auto", "yes", "no"))

    def model_config(self, vocab_size: int):
        """The :class:`~llmkb.model.gpt.ModelConfig` of this run's model (torch is imported here, not above)."""
        from llmkb.model.gpt import ModelConfig

        return ModelConfig(
            vocab_size=vocab_size,
            context=self.context,
            d_model=self.d_model,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_kv_head=self.n_kv_head,
            d_ff=self.d_ff,
        )
