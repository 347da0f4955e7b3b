"""Pretraining: from the clean corpus to a base model.

- :mod:`llmkb.pretrain.shards`: corpus + tokenizer -> memmapped token shards, random training windows.
- :mod:`llmkb.pretrain.config`: the stage's settings (a plain dataclass, no torch).
- :mod:`llmkb.pretrain.train`: the training loop (AdamW, warmup + cosine, clipping, accumulation, DDP).
- :mod:`llmkb.pretrain.checkpoint`: atomic, resumable checkpoints in safetensors.
- :mod:`llmkb.pretrain.probes`: experiments on the base model (sampling, regurgitation, few-shot prompts).
- :mod:`llmkb.pretrain.bench`: our loop's speed against Hugging Face's Trainer.
- :mod:`llmkb.pretrain.stage`: the ``llmkb pretrain`` pipeline stage.
"""
