"""LLM psychology as experiments on the pipeline's own models: hallucination and its mitigations, and more."""
