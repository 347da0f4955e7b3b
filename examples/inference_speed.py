"""Inference speed: the KV cache, batching, our loop against transformers' generate, and speculative decoding.

Run it: ``llmkb examples run inference_speed`` (256 new tokens, 3 runs each, a 300-step draft model:
the numbers on the inference page, about two minutes) or ``--profile quick`` (small sizes: only
checks that everything runs). The same benchmark is ``llmkb bench inference --repeat 3 --out bench.json``.
"""

# %% [markdown]
# # How fast is generation?
# One CPU thread, the base model's architecture; every comparison also checks the tokens are the same.

# %%
# --8<-- [start:speculative]
import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch

from llmkb.examples import context
from llmkb.inference.generate import GenerationConfig, generate_ids
from llmkb.inference.speculative import speculative_generate, train_draft
from llmkb.model.hf import load_pretrained as load_model
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

torch.set_num_threads(1)
ctx = context("inference_speed")
pretrain_dir = ctx.ensure("pretrain")
target, tokenizer = load_model(pretrain_dir / "model"), load_tokenizer(pretrain_dir / "model")
quick = ctx.profile == "quick"
with tempfile.TemporaryDirectory() as tmp:
    draft = train_draft(pretrain_dir / "shards", tmp, steps=30 if quick else 300, progress=False)
print(f"target {target.num_params():,} parameters, draft {draft.num_params():,}")
prompt = torch.tensor([tokenizer("The guild of", add_special_tokens=False)["input_ids"]])
fast, stats = speculative_generate(target, draft, prompt, max_new_tokens=40, k=4)
plain = generate_ids(target, prompt, None, GenerationConfig(max_new_tokens=40), eos_ids=[], pad_id=0)[0]
print(tokenizer.decode(fast.tolist()))
print(
    f"{stats['accepted']} of {stats['proposed']} drafted tokens accepted ({stats['acceptance_rate']:.0%}); "
    f"{stats['new_tokens']} tokens in {stats['target_forward_passes']} target passes"
)
# --8<-- [end:speculative]
assert torch.equal(fast, plain)  # the draft changes the speed, never the text

# %%
# --8<-- [start:bench]
from llmkb.inference.bench import run_benchmark, to_markdown

sizes = dict(new_tokens=32, long_prompt_tokens=0, repeat=1, spec_new_tokens=24, spec_prompts=2) if quick else {}
results = run_benchmark(pretrain_dir / "model", pretrain_dir / "shards", draft=draft, progress=False, **sizes)
speed_table = to_markdown(results)
ctx.save_text("speed.md", speed_table)
print(speed_table)
# --8<-- [end:bench]
assert all(row["same_tokens"] for row in results["kv_cache"])
