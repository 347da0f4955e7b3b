"""Data preparation step by step: one real page through every filter, thresholds, extractors, MinHash, datatrove.

Run it: ``llmkb examples run data_steps --profile quick``. The data page includes its sections.
"""

# %% [markdown]
# # One page through every step
# We follow a single crawled page through the steps the data stage runs, then look at the
# knobs: the language threshold, the two HTML extractors, MinHash's banding, and running the
# same steps as parallel datatrove tasks.

# %%
# --8<-- [start:one_page]
from llmkb.data.crawl import iter_warc_responses
from llmkb.data.extract import extract_text
from llmkb.data.langid import detect
from llmkb.data.pii import scrub
from llmkb.data.quality import quality_reason
from llmkb.examples import context
from llmkb.io import read_json, read_jsonl

ctx = context("data_steps")
data_dir = ctx.ensure("data")
pages = read_json(data_dir / "miniweb" / "manifest.json")["pages"]
responses = {r["url"]: r for warc in sorted((data_dir / "crawl").glob("*.warc.gz")) for r in iter_warc_responses(warc)}
corpus = {d["url"] for d in read_jsonl(data_dir / "train.jsonl")}
url = min(u for u in corpus if pages[u].get("pii"))  # a page with planted personal data that made it through
html = responses[url]["body"]
text = extract_text(html, responses[url]["headers"].get("Content-Type"))
lang, score = detect(text)
reason, text = quality_reason(text)
clean, found = scrub(text)
print(
    f"{url}\nHTML {len(html):,} bytes -> text {len(text):,} characters; language {lang} ({score:.2f}); "
    f"quality: {reason or 'pass'}; PII replaced: {found}"
)
# --8<-- [end:one_page]
before_after = (
    f"**HTML as crawled** (first 600 of {len(html):,} bytes):\n\n"
    f"```html\n{html[:600].decode('utf-8', 'replace')}\n```\n\n"
    "**Extracted text, after the quality filters and PII removal** (first 700 characters):\n\n"
    f"```text\n{clean[:700]}\n```\n"
)
ctx.save_text("one_page.md", before_after)
assert reason is None and lang == "en" and sum(found.values()) > 0
assert all(item["value"] not in clean for item in pages[url]["pii"])

# %%
# --8<-- [start:thresholds]
scores = [
    (d["lang"], d["lang_score"]) for d in read_jsonl(data_dir / "dropped.jsonl") if d.get("lang_score") is not None
]
scores += [
    (d["lang"], d["lang_score"]) for name in ("train", "heldout") for d in read_jsonl(data_dir / f"{name}.jsonl")
]
rows = ["| threshold | English documents kept | share of all scored |", "|---:|---:|---:|"]
for threshold in (0.3, 0.5, 0.65, 0.8, 0.9, 0.95):
    kept = sum(lang == "en" and s >= threshold for lang, s in scores)
    rows.append(f"| {threshold} | {kept} | {kept / len(scores):.0%} |")
threshold_table = "\n".join(rows) + "\n"
print(threshold_table)
# --8<-- [end:thresholds]
ctx.save_text("thresholds.md", threshold_table)
assert len(scores) > 0

# %%
# --8<-- [start:extractors]
from llmkb.data.extract import benchmark_extraction

html_pages = [r["body"] for r in responses.values() if r["status"] == 200][: 60 if ctx.profile == "quick" else 400]
speed = benchmark_extraction(html_pages)
print(speed)
# --8<-- [end:extractors]
assert set(speed) >= {"resiliparse", "trafilatura"}

# %%
# --8<-- [start:minhash]
import matplotlib.pyplot as plt
import numpy as np

from llmkb.data.dedup import candidate_probability

similarity = np.linspace(0, 1, 101)
fig, ax = plt.subplots(figsize=(6, 3.4))
for bands, rows_per_band in ((14, 8), (20, 5), (9, 13)):
    ax.plot(
        similarity,
        [candidate_probability(s, bands, rows_per_band) for s in similarity],
        label=f"{bands} bands x {rows_per_band} rows",
    )
ax.axvline(0.8, color="gray", linestyle=":")
ax.set_xlabel("Jaccard similarity of two documents (word 5-grams)")
ax.set_ylabel("chance they become a candidate pair")
ax.legend()
print(
    "FineWeb's 14 x 8 at Jaccard 0.7 / 0.8 / 0.9: "
    + " / ".join(f"{candidate_probability(s, 14, 8):.1%}" for s in (0.7, 0.8, 0.9))
)
# --8<-- [end:minhash]
ctx.save_figure("minhash.png", fig)
assert candidate_probability(0.8, 14, 8) > 0.9 > candidate_probability(0.5, 14, 8)

# %%
# --8<-- [start:datatrove]
import tempfile
from pathlib import Path

from llmkb.data.distributed import filter_with_datatrove
from llmkb.data.config import DataConfig

work_dir = Path(tempfile.mkdtemp(prefix="llmkb-datatrove-"))  # shards and logs of the 2 tasks
kept, dropped = filter_with_datatrove(data_dir / "crawl", DataConfig(tasks=2), work_dir)
single = {d["url"] for name in ("train", "heldout") for d in read_jsonl(data_dir / f"{name}.jsonl")}
print(f"2 datatrove tasks kept {len(kept)} documents before dedup and dropped {len(dropped)}")
# --8<-- [end:datatrove]
assert single <= {d["url"] for d in kept}  # every document of the single-process corpus passed here too
