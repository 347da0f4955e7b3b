"""Pretraining speed: our training loop against Hugging Face's Trainer, same model, batches and optimizer.

Run it: ``llmkb examples run pretraining_speed`` (100 steps each, twice, on the default run: the numbers on
the training page) or ``--profile quick`` (a few steps: only checks that everything runs). The same
benchmark is ``llmkb bench pretrain --steps 100 --warmup 10 --repeat 2 --out bench.json``.
"""

# %% [markdown]
# # How fast is our training loop?
# Both loops train the same model from the same weights on the same batches, one CPU thread each;
# throughput is tokens per step over the median step time.

# %%
# --8<-- [start:bench]
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
from llmkb.examples import context
from llmkb.pretrain.bench import run_benchmark, to_markdown
from llmkb.stages import get_stage

ctx = context("pretraining_speed")
shards = ctx.ensure("pretrain") / "shards"
config = get_stage("pretrain").config(ctx.profile)
steps, warmup, repeat = (12, 4, 1) if ctx.profile == "quick" else (100, 10, 2)  # about a minute on one core
results = run_benchmark(shards, config, steps=steps, warmup=warmup, threads=1, repeat=repeat, progress=False)
speed_table = to_markdown(results)
print(speed_table)
# --8<-- [end:bench]
ctx.save_text("speed.md", speed_table)
assert results["ours_tokens_per_s"] > 0 and results["hf_trainer_tokens_per_s"] > 0
assert abs(results["ours_final_loss"] - results["hf_final_loss"]) < 0.1  # the same training, two loops
