"""Inference: turning a trained model into text, the way chat apps and inference servers do.

- :mod:`llmkb.inference.sampling`: from next-token logits to a token: greedy, temperature, top-k,
  top-p (nucleus), repetition penalty; each equal to its Hugging Face logits processor.
- :mod:`llmkb.inference.generate`: the decoding loop: left-padded batches, prefill and decode with
  a KV cache (or without, for comparison), stop tokens and stop strings, beam search, streaming
  text that never splits a character; one loop for our GPT and for any HF causal LM, giving the
  same tokens as ``transformers``' ``generate``.
- :mod:`llmkb.inference.backend`: the adapter every decoding loop drives: our GPT with its static KV
  cache, or an HF causal LM with ``DynamicCache``; inputs on the device with position ids from the mask.
- :mod:`llmkb.inference.beam`: beam search, HF's algorithm step for step (same tokens as its ``generate``).
- :mod:`llmkb.inference.chat`: conversations rendered with the ChatML template, replies that end
  at ``<|im_end|>`` (one at a time, or batched over many conversations), and an interactive chat
  loop for the terminal.
- :mod:`llmkb.inference.speculative`: a small draft model proposes, the target model checks several
  tokens in one pass; the output equals the target's own greedy output.
- :mod:`llmkb.inference.bench`: KV cache against none, batch 8 against batch 1, our loop against
  ``transformers``' ``generate``, speculative decoding's acceptance and speedup.
"""
