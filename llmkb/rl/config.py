"""The settings of the preference and RL stages: one dataclass per trainer, as in trl.

In: nothing. Out: :class:`RewardConfig`, :class:`PPOConfig`, :class:`DPOConfig`, :class:`GRPOSettings`,
:class:`SumsConfig`, plain dataclasses saved as each stage's ``config.json`` that check their fields
when built. Torch-free, so registering the stages stays cheap; the trainers in :mod:`llmkb.rl.reward`,
:mod:`llmkb.rl.ppo`, :mod:`llmkb.rl.dpo` and :mod:`llmkb.rl.grpo` read them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from llmkb.checks import non_negative, positive, require


@dataclass
class RewardConfig:
    # -- the rankings (llmkb.rl.preferences)
    prompts: int = 500  # training questions, each answered `samples` times and ranked by the labeler
    #                     (800, before the pipeline was cut to 15 minutes: held-out accuracy 0.774)
    test_prompts: int = 200  # other questions for held-out pairs
    samples: int = 5  # replies per question (the notes' "5 rollouts")
    temperature: float = 1.0  # sampling temperature of those replies: they must differ to be ranked
    max_new_tokens: int = 48  # longest reply sampled
    # -- the training
    lr: float = 3e-4  # AdamW's learning rate, constant
    #                   (measured: 1e-4 for 2 epochs reaches the same held-out accuracy in twice the time)
    epochs: int = 1  # passes over the pairs; one is usual: reward models overfit fast (Ouyang et al. 2022)
    max_steps: int | None = None  # if set, the number of optimizer steps instead of epochs
    batch_size: int = 16  # pairs per step (each is two sequences, so 2x as many rows)
    weight_decay: float = 0.0  # AdamW's decay on the weight matrices
    grad_clip: float = 1.0  # the gradient's global norm is clipped to this (0: no clipping)
    seed: int = 0  # the head's initialization and the order of the pairs
    device: str = "auto"  # "auto" picks CUDA when present, else "cpu"
    progress: bool = True  # draw a tqdm progress bar

    def __post_init__(self) -> None:
        positive(self, "prompts", "test_prompts", "temperature", "max_new_tokens", "lr", "epochs", "batch_size")
        require(self, "samples", self.samples >= 2, ">= 2 (a ranking needs two replies)")
        require(self, "max_steps", self.max_steps is None or self.max_steps >= 1, "None or >= 1")
        non_negative(self, "weight_decay", "grad_clip")


@dataclass
class PPOConfig:
    iterations: int = 30  # rollout + update rounds (without the KL penalty the true score has collapsed long before)
    batch_size: int = 32  # questions (one reply each) per rollout
    ppo_epochs: int = 2  # passes over each rollout batch
    minibatch_size: int = 16  # replies per gradient step within a pass
    lr: float = (
        1e-4  # policy learning rate (large for RL, so that the CPU run shows in minutes what takes hours at scale)
    )
    critic_lr: float = 1e-4  # value model learning rate
    kl_coef: float = (
        1.0  # weight of the per-token KL penalty (0: no leash; measured: 0.2 still let the true score fall)
    )
    clip: float = 0.2  # PPO's ratio clip
    value_clip: float = 0.2  # how far a value prediction may move per update
    gamma: float = 1.0  # no discounting within a reply
    lam: float = 0.95  # GAE's bias-variance knob
    temperature: float = 1.0  # sampling temperature of the rollouts
    max_new_tokens: int = 32  # longest reply in a rollout
    stop_kl: float = 0.0  # > 0: stop early once the mean KL per reply exceeds this (the early-stopping guard)
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        positive(self, "iterations", "batch_size", "ppo_epochs", "minibatch_size", "lr", "critic_lr", "clip")
        positive(self, "value_clip", "temperature", "max_new_tokens")
        non_negative(self, "kl_coef", "stop_kl")
        for name in ("gamma", "lam"):
            require(self, name, 0 <= getattr(self, name) <= 1, "in [0, 1]")

    def with_kl(self, kl_coef: float) -> PPOConfig:
        """The same settings with another KL coefficient (the reward-hacking comparison)."""
        return dataclasses.replace(self, kl_coef=kl_coef)


@dataclass
class DPOConfig:
    beta: float = 0.1  # strength of the pull toward the reference (the KL penalty's weight); 0.1 as in the paper
    lr: float = 3e-5  # constant learning rate (measured: 1e-5 left 92% of greedy replies unchanged, 1e-4 lost to SFT)
    epochs: int = 1  # passes over the pairs, unless max_steps is set
    max_steps: int | None = 100  # optimizer steps; overrides epochs
    batch_size: int = 16  # pairs per step (each step runs 2 * batch_size sequences through each model)
    grad_clip: float = 1.0  # clip the gradient's global norm to this; 0 turns clipping off
    seed: int = 0  # the order of the pairs in each epoch
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1"
    progress: bool = True  # draw a tqdm bar

    def __post_init__(self) -> None:
        positive(self, "beta", "lr", "epochs", "batch_size")
        require(self, "max_steps", self.max_steps is None or self.max_steps >= 1, "None or >= 1")
        non_negative(self, "grad_clip")


@dataclass
class GRPOSettings:
    """What :func:`train_grpo_trl` needs (our names; trl's ``GRPOConfig`` is built from them)."""

    group_size: int = 8  # G: answers sampled per prompt; the advantage compares them (at least 2)
    prompts_per_step: int = 4  # prompts per optimizer step: a step trains on prompts_per_step * group_size answers
    max_new_tokens: int = 96  # longest answer sampled; a 3-digit worked sum is about 90 character tokens
    lr: float = 1e-5  # RL moves a model that already works: far below SFT's rate
    warmup_steps: int = 0  # the rate rises linearly from 0 over these steps, then decays linearly to 0 (HF's schedule)
    max_steps: int = 100  # optimizer steps; fresh answers are sampled every `updates_per_batch` of them
    updates_per_batch: int = 1  # trl's num_iterations: optimizer steps on each sampled batch (clipped ratio, as PPO)
    beta: float = (
        0.0  # weight of the KL(policy || SFT model) term; 0 (trl's default) needs no reference copy; R1 used 0.001
    )
    temperature: float = 1.0  # sampling temperature: answers must differ for a group to have anything to compare
    seed: int = 0  # seeds data order and sampling
    device: str = "auto"  # "auto": CUDA when present, else the CPU
    progress: bool = True  # show trl's progress bar

    def __post_init__(self) -> None:
        require(self, "group_size", self.group_size >= 2, ">= 2 (the advantage compares answers within a group)")
        positive(self, "prompts_per_step", "max_new_tokens", "lr", "max_steps", "updates_per_batch", "temperature")
        non_negative(self, "beta", "warmup_steps")


@dataclass
class SumsConfig:
    """The ``grpo`` stage: small models that only add, taught by worked steps or direct answers, then GRPO.

    The chat model cannot add (its sums stay near 0% right), and RL needs answers that are sometimes
    right to reinforce. So the stage trains its own small model on sums, with the run's tokenizer
    (digits are single tokens) and ChatML, as SFT would: once on column addition written out step by
    step, once on the bare answer and once on calls to a calculator tool, the same number of steps
    each. GRPO then starts from the worked-steps model.
    """

    # Three digits, not two: a 2-layer model sometimes learns 2-digit sums as bare answers too (10% to 84%
    # right over three seeds), which hid the gap worked steps make; at three its direct answers stay near 0%.
    digits: int = 3  # operands of the sums (3: "What is 147 + 685?")
    train_sums: int = 4000  # distinct training sums
    test_sums: int = 200  # held-out sums (none in training) for every accuracy
    n_layer: int = 2  # the small model: 2 blocks of width 128, context 128 (a 3-digit worked sum is ~110 tokens)
    d_model: int = 128
    context: int = 128
    # Measured with three seeds (3 digits): the worked-steps model is at 37% and 76% after 600 steps,
    # 99.5-100% after 900; 1000 leaves a margin for other CPUs' float results.
    sft_steps: int = 1000
    sft_batch_size: int = 16
    sft_lr: float = 3e-3  # from scratch, so the pretraining-sized rate
    # -- GRPO (GRPOSettings, for our loop llmkb.rl.grpo.train_grpo, or trl's GRPOTrainer with grpo_trainer="trl")
    grpo_trainer: str = "ours"
    grpo_eval_every: int = 5  # held-out greedy accuracy (on grpo_eval_sums of the held-out sums) every so many steps
    grpo_eval_sums: int = 50
    grpo_steps: int = 10  # ~4 s a step on the CPU; measured: neither 30 nor 120 steps changed accuracy beyond noise
    group_size: int = 8
    prompts_per_step: int = 8
    grpo_lr: float = 1e-4  # measured: 3e-4 and 1e-3 destroyed the sums within 10 steps
    temperature: float = 1.0
    max_new_tokens: int = 112  # the longest 3-digit worked reply is 95 tokens with its end token
    sampled_per_sum: int = 2  # sampled answers per held-out sum for the sampled accuracy
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        positive(self, "digits", "train_sums", "test_sums", "n_layer", "d_model", "context", "sft_steps")
        positive(self, "sft_batch_size", "sft_lr", "grpo_steps", "prompts_per_step", "grpo_lr", "temperature")
        positive(self, "max_new_tokens", "sampled_per_sum")
        require(self, "group_size", self.group_size >= 2, ">= 2 (the advantage compares answers within a group)")
        require(self, "grpo_trainer", self.grpo_trainer in ("ours", "trl"), "'ours' or 'trl'")
        positive(self, "grpo_eval_every", "grpo_eval_sums")

    def grpo(self) -> GRPOSettings:
        return GRPOSettings(
            group_size=self.group_size,
            prompts_per_step=self.prompts_per_step,
            lr=self.grpo_lr,
            max_steps=self.grpo_steps,
            temperature=self.temperature,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            device=self.device,
            progress=self.progress,
        )
