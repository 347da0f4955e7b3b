"""Supervised fine-tuning (SFT): from a base model that continues text to an assistant that answers.

- :mod:`llmkb.sft.data`: the conversations SFT trains on (facts of the mini-web's encyclopedia,
  multi-turn chats, encyclopedia entries, code, worked arithmetic), their checks, validation,
  length limits, and loaders for ShareGPT and OpenAssistant files.
- :mod:`llmkb.sft.masking`: a conversation as ChatML token ids with labels on the assistant's tokens
  only, batches, and the SFT loss (equal to trl's ``SFTTrainer`` with ``assistant_only_loss``).
- :mod:`llmkb.sft.identity`: knowledge of self, taught by hard-coded conversations or a system message.
- :mod:`llmkb.sft.config`, :mod:`llmkb.sft.train`: the settings and the training (our loop or trl,
  full fine-tuning or LoRA).
- :mod:`llmkb.sft.evaluate`: base vs fine-tuned, per data type: format followed, answer right.
- :mod:`llmkb.sft.stage`: ``llmkb sft``, the pipeline stage.
"""
