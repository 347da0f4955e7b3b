"""Preference and reinforcement learning: from an SFT model to one tuned by rewards.

- :mod:`llmkb.rl.preferences`: sampled replies ranked by a scripted labeler whose preferences are known.
- :mod:`llmkb.rl.reward`: the reward model trained on those rankings (Bradley-Terry; equal to trl's RewardTrainer).
- :mod:`llmkb.rl.ppo`: PPO against the reward model, with a KL penalty to the SFT model (ours: trl dropped PPO).
- :mod:`llmkb.rl.dpo`: direct preference optimization, no reward model (equal to trl's DPOTrainer loss).
- :mod:`llmkb.rl.grpo`: RL on checkable sums with rule-based rewards and group-relative advantages (trl's GRPOTrainer).
"""
