"""Evaluation: numbers that say how good a model is, each checkable by hand.

- :mod:`llmkb.evaluate.perplexity`: perplexity (and nats / bits per token) of a token stream or of
  documents, with sliding windows, checked against a slow token-by-token reference.
- :mod:`llmkb.evaluate.tasks`: tasks with one right answer (arithmetic), answer extraction, exact
  match, and the accuracy of any generation function on them.
"""
