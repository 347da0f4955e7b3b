"""The settings of the preference and RL stages: one dataclass per trainer, as in trl.

In: nothing. Out: :class:`RewardConfig`, :class:`PPOConfig`, :class:`DPOConfig`, :class:`GRPOSettings`,
plain dataclasses saved as each stage's ``config.json``. Torch-free, so registering the stages
stays cheap; the trainers in :mod:`llmkb.rl.reward`, :mod:`llmkb.rl.ppo`, :mod:`llmkb.rl.dpo` and
:mod:`llmkb.rl.grpo` read them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class RewardConfig:
    # -- the rankings (llmkb.rl.preferences)
    prompts: int = 800  # training questions, each answered `samples` times and ranked by the labeler
    test_prompts: int = 200  # other questions for held-out pairs
    samples: int = 5  # replies per question (the notes' "5 rollouts")
    temperature: float = 1.0  # sampling temperature of those replies: they must differ to be ranked
    max_new_tokens: int = 48  # longest reply sampled
    # -- the training
    lr: float = 3e-4  # AdamW's learning rate, constant (measured: 1e-4 for 2 epochs reaches the same held-out accuracy in twice the time)
    epochs: int = 1  # passes over the pairs; one is usual: reward models overfit fast (Ouyang et al. 2022)
    max_steps: int | None = None  # if set, the number of optimizer steps instead of epochs
    batch_size: int = 16  # pairs per step (each is two sequences, so 2x as many rows)
    weight_decay: float = 0.0  # AdamW's decay on the weight matrices
    grad_clip: float = 1.0  # the gradient's global norm is clipped to this (0: no clipping)
    seed: int = 0  # the head's initialization and the order of the pairs
    device: str = "auto"  # "auto" picks CUDA when present, else "cpu"
    progress: bool = True  # draw a tqdm progress bar


@dataclass
class PPOConfig:
    iterations: int = 40  # rollout + update rounds
    batch_size: int = 32  # questions (one reply each) per rollout
    ppo_epochs: int = 2  # passes over each rollout batch
    minibatch_size: int = 16  # replies per gradient step within a pass
    lr: float = 1e-4  # policy learning rate (large for RL, so that the CPU run shows in minutes what takes hours at scale)
    critic_lr: float = 1e-4  # value model learning rate
    kl_coef: float = 0.2  # weight of the per-token KL penalty (0: no leash)
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

    def with_kl(self, kl_coef: float) -> PPOConfig:
        """The same settings with another KL coefficient (the reward-hacking comparison)."""
        return dataclasses.replace(self, kl_coef=kl_coef)


@dataclass
class DPOConfig:
    beta: float = 0.1  # strength of the pull toward the reference (the KL penalty's weight); 0.1 as in the paper
    lr: float = 1e-4  # constant learning rate (measured: 1e-5 left 92% of greedy replies unchanged after one pass)
    epochs: int = 1  # passes over the pairs, unless max_steps is set
    max_steps: int | None = None  # optimizer steps; overrides epochs
    batch_size: int = 16  # pairs per step (each step runs 2 * batch_size sequences through each model)
    grad_clip: float = 1.0  # clip the gradient's global norm to this; 0 turns clipping off
    seed: int = 0  # the order of the pairs in each epoch
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1"
    progress: bool = True  # draw a tqdm bar

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class GRPOSettings:
    """What :func:`train_grpo_trl` needs (our names; trl's ``GRPOConfig`` is built from them)."""

    group_size: int = 8  # G: answers sampled per prompt; the advantage compares them (at least 2)
    prompts_per_step: int = 4  # prompts per optimizer step: a step trains on prompts_per_step * group_size answers
    max_new_tokens: int = 96  # longest answer sampled; a 3-digit worked sum is about 90 character tokens
    lr: float = 1e-5  # RL moves a model that already works: far below SFT's rate
    max_steps: int = 100  # optimizer steps, each on freshly sampled answers (on-policy)
    beta: float = 0.0  # weight of the KL(policy || SFT model) term; 0 (trl's default) needs no reference copy; R1 used 0.001
    temperature: float = 1.0  # sampling temperature: answers must differ for a group to have anything to compare
    seed: int = 0  # seeds data order and sampling
    device: str = "auto"  # "auto": CUDA when present, else the CPU
    progress: bool = True  # show trl's progress bar


