"""Tokenization: text to token ids and back.

- :mod:`llmkb.tokenizer.bpe`: byte-level BPE written from scratch (train, encode, decode, save, load).
- :mod:`llmkb.tokenizer.hf`: the same tokenizer through Hugging Face ``tokenizers``, ``transformers`` and ``tiktoken``.
- :mod:`llmkb.tokenizer.ids`: text as the tensor of ids a model reads.
- :mod:`llmkb.tokenizer.compare`: the six tokenization methods measured on one corpus.
- :mod:`llmkb.tokenizer.viz`: colored token views and letter counts across token boundaries.
- :mod:`llmkb.tokenizer.web`: the tokenizer as JSON for the site's in-browser playground.
- :mod:`llmkb.tokenizer.bench`: training and encoding speed.
- :mod:`llmkb.tokenizer.config`: the stage's settings, checked when built.
- :mod:`llmkb.tokenizer.stage`: the ``llmkb tokenizer`` pipeline stage.
"""
