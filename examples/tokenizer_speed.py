"""Tokenizer speed: our pure-Python BPE trainer and encoder against Hugging Face tokenizers and tiktoken.

Run it: ``llmkb examples run tokenizer_speed`` (about 10 MB, vocab 4,096: the numbers on the page)
or ``--profile quick`` (a small corpus: only checks that everything runs). The same benchmark is
``llmkb bench tokenizer --megabytes 10 --out bench.json``.
"""

# %% [markdown]
# # How fast is a tokenizer written in Python?
# Training and encoding speed, measured in one process on one machine, so the ratios are fair.

# %%
# --8<-- [start:bench]
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
from llmkb.corpus import build_corpus
from llmkb.examples import context
from llmkb.tokenizer.bench import run_benchmark, to_markdown

ctx = context("tokenizer_speed")
megabytes, vocab_size = (0.3, 512) if ctx.profile == "quick" else (10.0, 4096)
texts = [doc["text"] for doc in build_corpus(int(megabytes * 1e6))]
results = run_benchmark(texts, vocab_size)
speed_table = to_markdown(results)
print(speed_table)
# --8<-- [end:bench]
ctx.save_text("speed.md", speed_table)
assert results["train_ratio"] > 0 and results["encode_mb_s"]["llmkb"] > 0
