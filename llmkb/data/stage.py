"""The data stage: from a (mini-)web to a clean corpus, FineWeb's steps in FineWeb's order.

In: nothing (the mini-web is generated and served on 127.0.0.1), or seed URLs of any site, or
local WARC files. Out: ``runs/<run>/data/``:

- ``miniweb/`` the generated site and its ``manifest.json`` (ground truth of every planted case);
- ``crawl/`` WARC files, ``crawl_log.jsonl`` and ``crawl_stats.json``;
- ``train.jsonl`` / ``heldout.jsonl`` the clean corpus (``id, url, text, lang, lang_score``),
  the files every later stage reads, in the same format as the embedded corpus;
- ``dropped.jsonl`` (url, step, reason) for every document a step removed;
- ``funnel.json`` documents and bytes left after each step; ``accuracy.json`` precision and
  recall of each filter against the manifest.

Per-document steps (URL filter, extraction, language, quality, in :mod:`llmkb.data.steps`) are
pure functions of one document, so they can run in parallel shards (:mod:`llmkb.data.distributed`
runs them under datatrove); deduplication needs every document at once and runs after them, then
PII removal. This module orchestrates: acquire the WARC files, filter, deduplicate, write.
"""

from __future__ import annotations

import time
from pathlib import Path

from llmkb.corpus import split_heldout
from llmkb.data.config import DataConfig
from llmkb.data.steps import DOCUMENT_STEPS, StepContext, doc_bytes, documents_from_warcs, filter_documents
from llmkb.io import write_json, write_jsonl
from llmkb.stages import RunDir, Stage, register


def funnel_rows(kept: list[dict], dropped: list[dict]) -> list[dict]:
    """Documents and bytes left after each per-document step, from the ``sizes`` of every record.

    Examples:
        >>> funnel_rows([{"sizes": [10, 10, 5, 5, 4]}], [{"sizes": [7]}])[:2]  # doctest: +NORMALIZE_WHITESPACE
        [{'step': 'crawled (HTTP 200)', 'documents': 2, 'bytes': 17},
         {'step': 'url_filter', 'documents': 1, 'bytes': 10}]
    """
    sizes = [r["sizes"] for r in kept + dropped]
    names = ["crawled (HTTP 200)", *(name for name, _ in DOCUMENT_STEPS)]
    return [
        {"step": name, "documents": sum(len(s) > k for s in sizes), "bytes": sum(s[k] for s in sizes if len(s) > k)}
        for k, name in enumerate(names)
    ]


def deduplicate_and_scrub(docs: list[dict], funnel: list[dict], dropped: list[dict]) -> tuple[list[dict], dict]:
    """Exact dedup, then MinHash near-dedup, then PII removal; documents in URL order.

    Sorting by URL first makes "which copy survives" independent of crawl order and of how many
    parallel tasks produced the documents.
    """
    from llmkb.data.dedup import exact_dedup, near_dedup
    from llmkb.data.pii import scrub

    docs = sorted(docs, key=lambda d: d["url"])
    for name, dedup in (("exact_dedup", exact_dedup), ("minhash_dedup", near_dedup)):
        docs, removed = dedup(docs)
        dropped.extend({"url": d["url"], "step": name, "reason": f"duplicate_of:{d['duplicate_of']}"} for d in removed)
        funnel.append({"step": name, "documents": len(docs), "bytes": sum(map(doc_bytes, docs))})
    pii_counts: dict[str, int] = {}
    for doc in docs:
        doc["text"], counts = scrub(doc["text"])
        for kind, n in counts.items():
            pii_counts[kind] = pii_counts.get(kind, 0) + n
    funnel.append({"step": "pii_removal", "documents": len(docs), "bytes": sum(map(doc_bytes, docs))})
    return docs, pii_counts


def acquire_warcs(config: DataConfig, out: Path) -> tuple[list[Path], dict | None, dict]:
    """WARC files to filter: linked local files, a crawl of seed URLs, or a crawl of the mini-web.

    Returns (WARC paths, the mini-web's manifest or None, crawl statistics).
    """
    from llmkb.data.crawl import CrawlConfig, crawl

    crawl_dir, manifest = out / "crawl", None
    bounds = {
        "max_pages": config.max_pages,
        "max_depth": config.max_depth,
        "time_limit_s": config.crawl_time_limit_s,
        "timeout_s": config.crawl_timeout_s,
        "warc_max_bytes": config.warc_max_bytes,
    }
    if config.warcs:
        # Local WARC files (e.g. from Common Crawl) are linked in, so every path reads one folder.
        crawl_dir.mkdir(parents=True, exist_ok=True)
        for path in map(Path, config.warcs):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such WARC file")
            link = crawl_dir / path.name
            link.unlink(missing_ok=True)
            link.symlink_to(path.resolve())
        stats: dict = {"warc_files": len(config.warcs)}
    elif config.seed_urls:
        stats = crawl(CrawlConfig(seeds=config.seed_urls, **bounds), crawl_dir, progress=True)
    else:
        from llmkb.data.miniweb import generate
        from llmkb.data.server import MiniWebServer

        manifest = generate(out / "miniweb", seed=config.seed, pages=config.pages, progress=True)
        with MiniWebServer(out / "miniweb") as server:
            crawl_config = CrawlConfig(
                seeds=manifest["seeds"], allowed_hosts=manifest["hosts"], resolve=server.resolve, **bounds
            )
            stats = crawl(crawl_config, crawl_dir, progress=True)
    warcs = sorted(crawl_dir.glob("*.warc.gz"))
    if not warcs:
        raise FileNotFoundError(f"{crawl_dir}: no *.warc.gz files to read (did the crawl fetch anything?)")
    return warcs, manifest, stats


def planted_urls(manifest: dict) -> set[str]:
    """Pages that carry the encyclopedia's facts or the planted passages (they stay in training)."""
    return {u for e in manifest["entities"] for u in e["pages"]} | {u for p in manifest["passages"] for u in p["urls"]}


def run(config: DataConfig, run_dir: RunDir) -> dict:
    out = run_dir.stage("data")
    t0 = time.perf_counter()
    warcs, manifest, crawl_stats = acquire_warcs(config, out)
    crawl_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    if config.tasks > 1:  # datatrove is imported only when asked for: registering the stage stays cheap
        from llmkb.data.distributed import filter_with_datatrove

        kept, dropped = filter_with_datatrove(warcs[0].parent, config, out / "datatrove")
    else:
        kept, dropped = filter_documents(documents_from_warcs(warcs), StepContext.create(config))
    funnel = funnel_rows(kept, dropped)
    if funnel[0]["documents"] == 0:
        # Nothing to filter: files that are not WARC at all, or only errors and redirects. Stop here
        # rather than write an empty corpus that the tokenizer would only later call empty.
        names = ", ".join(map(str, config.warcs or warcs))  # the files as the user named them
        raise ValueError(
            f"{names}: no HTTP 200 response record in these WARC files (not WARC, damaged, or only errors)"
        )
    docs, pii_counts = deduplicate_and_scrub(kept, funnel, dropped)
    filter_s = time.perf_counter() - t1

    records = [
        {
            "id": d["url"],
            "url": d["url"],
            "source": "web",
            "lang": d["lang"],
            "lang_score": d["lang_score"],
            "text": d["text"],
        }
        for d in docs
    ]
    planted = planted_urls(manifest) if manifest else set()
    train, heldout = split_heldout(records, config.heldout_fraction, always_train=planted)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", heldout)
    write_jsonl(out / "dropped.jsonl", dropped)
    write_json(out / "funnel.json", funnel)
    metrics = {
        "crawled": funnel[0]["documents"],
        "kept": len(docs),
        "megabytes": round(sum(len(d["text"].encode()) for d in docs) / 1e6, 2),
        "crawl_s": round(crawl_s, 1),
        "filter_s": round(filter_s, 1),
        **{f"pii_{k}": v for k, v in pii_counts.items()},
        **{f"crawl_{k}": v for k, v in crawl_stats.items() if isinstance(v, (int, float)) and k in ("pages", "errors")},
    }
    if manifest is not None:
        from llmkb.data.evaluate import evaluate

        accuracy = evaluate(manifest, docs, dropped)
        write_json(out / "accuracy.json", accuracy)
        metrics.update({f"{k}_recall": v["recall"] for k, v in accuracy.items() if "recall" in v})
    return metrics


register(
    Stage(
        name="data",
        summary="crawl the mini-web into WARC files and filter it into a clean corpus, FineWeb-style",
        config_cls=DataConfig,
        run=run,
        # Small WARC files in the quick profile, so parallel datatrove tasks each get some.
        profiles={
            "quick": {"pages": 300, "heldout_fraction": 0.1, "warc_max_bytes": 1_000_000},
            "default": {"warc_max_bytes": 20_000_000},
        },
    )
)
