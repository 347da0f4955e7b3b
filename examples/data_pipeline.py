"""Data preparation: crawl the mini-web into WARC files and filter it into a clean corpus, FineWeb-style.

Run it: ``llmkb examples run data_pipeline --profile quick``. The data page includes its
sections; the docs build saves its funnel, plots and accuracy tables.
"""

# %% [markdown]
# # From a web crawl to a clean corpus
# The data stage generates a small web, serves it on 127.0.0.1, crawls it into WARC files and
# runs FineWeb's filters over what it fetched. Everything below reads the files that stage wrote.

# %%
# --8<-- [start:stage]
from collections import Counter

from llmkb.examples import context
from llmkb.io import read_json, read_jsonl

ctx = context("data_pipeline")
data_dir = ctx.ensure("data")  # runs the whole stage if this run folder does not have it yet
manifest = read_json(data_dir / "miniweb" / "manifest.json")
planted = Counter(kind for page in manifest["pages"].values() for kind in page["kind"])
print(f"{len(manifest['pages'])} URLs on {len(manifest['hosts'])} hosts; planted cases:")
print(", ".join(f"{kind} {n}" for kind, n in planted.most_common()))
# --8<-- [end:stage]
assert planted["dup_near"] > 0 and planted["pii"] > 0 and planted["foreign"] > 0

# %%
# --8<-- [start:crawl]
crawl_stats = read_json(data_dir / "crawl" / "crawl_stats.json")
outcomes = Counter(line["outcome"] for line in read_jsonl(data_dir / "crawl" / "crawl_log.jsonl"))
print("WARC files:", sorted(p.name for p in (data_dir / "crawl").glob("*.warc.gz")))
print("fetch outcomes:", dict(outcomes.most_common()))
# --8<-- [end:crawl]
assert outcomes["robots_disallowed"] > 0  # the crawler saw those links and did not follow them

# %%
# --8<-- [start:funnel]
import matplotlib.pyplot as plt

funnel = read_json(data_dir / "funnel.json")
rows = ["| step | documents | kept of previous | MB |", "|---|---:|---:|---:|"]
for previous, row in zip([funnel[0], *funnel], funnel):
    share = row["documents"] / previous["documents"] if previous["documents"] else 0
    rows.append(f"| {row['step']} | {row['documents']:,} | {share:.0%} | {row['bytes'] / 1e6:.2f} |")
funnel_table = "\n".join(rows) + "\n"
print(funnel_table)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
steps = [row["step"] for row in funnel]
axes[0].barh(steps[::-1], [row["documents"] for row in funnel][::-1], color="#5c6bc0")
axes[0].set_xlabel("documents left")
axes[1].barh(steps[::-1], [row["bytes"] / 1e6 for row in funnel][::-1], color="#26a69a")
axes[1].set_xlabel("MB left (HTML before extraction, text after)")
axes[1].set_yticklabels([])
fig.suptitle("What each step of the data stage keeps")
# --8<-- [end:funnel]
ctx.save_text("funnel.md", funnel_table)
ctx.save_figure("funnel.png", fig)
assert funnel[-1]["documents"] <= funnel[0]["documents"]

# %%
# --8<-- [start:accuracy]
accuracy = read_json(data_dir / "accuracy.json")
rows = ["| what was planted | planted | precision | recall |", "|---|---:|---:|---:|"]
for name, result in accuracy.items():
    precision = f"{result['precision']:.1%}" if "precision" in result else "–"
    rows.append(f"| {name} | {result['planted']} | {precision} | {result['recall']:.1%} |")
accuracy_table = "\n".join(rows) + "\n"
print(accuracy_table)
# --8<-- [end:accuracy]
ctx.save_text("accuracy.md", accuracy_table)
assert accuracy["pii_email"]["recall"] == 1.0 and accuracy["pii_ipv4"]["recall"] == 1.0
assert accuracy["near_duplicates"]["recall"] >= 0.9

# %%
# --8<-- [start:dropped]
dropped = list(read_jsonl(data_dir / "dropped.jsonl"))
by_step = Counter(d["step"] for d in dropped)
quality_rules = Counter(d["reason"] for d in dropped if d["step"] == "quality")
print("dropped per step:", dict(by_step))
print("quality rules that fired:", dict(quality_rules.most_common()))
# --8<-- [end:dropped]
assert by_step["url_filter"] > 0 and by_step["language"] > 0 and by_step["quality"] > 0
