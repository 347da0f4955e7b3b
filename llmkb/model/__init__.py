"""The model.

- :mod:`llmkb.model.gpt`: the Llama-style decoder-only GPT we pretrain (RoPE, RMSNorm, GQA, SwiGLU).
- :mod:`llmkb.model.hf`: the same weights as a Hugging Face ``LlamaForCausalLM``, and back.
- :mod:`llmkb.model.seq2seq`: the original encoder-decoder transformer, on a toy translation task.
"""
