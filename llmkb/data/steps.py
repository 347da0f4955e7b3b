"""The data stage's per-document steps: one document in, the document (maybe rewritten) and a verdict out.

In: documents read from WARC files (:func:`documents_from_warcs`: ``id, url, content_type, body``)
and a :class:`StepContext`. Out: each step returns None to keep a document or a short reason to drop
it; :func:`filter_documents` runs them all in one process and returns (kept documents, drop records).

The steps are pure functions of one document, so they can run in parallel shards: the data stage
(:mod:`llmkb.data.stage`) calls :func:`filter_documents`, and :mod:`llmkb.data.distributed` wraps the
same functions as datatrove filters. Both import them from here, and this module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llmkb.data.config import DataConfig

# Each step takes a document dict and the shared context, may rewrite the document, and returns
# None to keep it or a short reason to drop it.


@dataclass
class StepContext:
    config: DataConfig
    url_filter: object  # llmkb.data.urlfilter.URLFilter

    @classmethod
    def create(cls, config: DataConfig) -> "StepContext":
        from llmkb.data.urlfilter import URLFilter

        return cls(config, URLFilter.from_file())


def url_filter_step(doc: dict, ctx: StepContext) -> str | None:
    return ctx.url_filter.check(doc["url"])


def extraction_step(doc: dict, ctx: StepContext) -> str | None:
    from llmkb.data.extract import ExtractionError, extract_text

    try:
        doc["text"] = extract_text(doc.pop("body"), doc.get("content_type"), method=ctx.config.extractor)
    except ExtractionError as e:
        return f"extraction:{e}"
    return None


def language_step(doc: dict, ctx: StepContext) -> str | None:
    from llmkb.data.langid import detect

    lang, score = detect(doc["text"])
    doc["lang"], doc["lang_score"] = lang, round(score, 4)
    if lang != ctx.config.language or score < ctx.config.language_threshold:
        return f"language:{lang}:{score:.2f}"
    return None


def quality_step(doc: dict, ctx: StepContext) -> str | None:
    from llmkb.data.quality import quality_reason

    reason, doc["text"] = quality_reason(doc["text"])  # C4's rule removes lines, so the text may change
    return reason


DOCUMENT_STEPS: list[tuple[str, Callable[[dict, StepContext], str | None]]] = [
    ("url_filter", url_filter_step),
    ("extraction", extraction_step),
    ("language", language_step),
    ("quality", quality_step),
]


def documents_from_warcs(paths: Iterable[Path]) -> Iterator[dict]:
    """Successful responses from WARC files as documents (redirects and errors are not documents)."""
    from llmkb.data.crawl import iter_warc_responses

    for path in paths:
        for response in iter_warc_responses(path):
            if response["status"] != 200:
                continue
            yield {
                "id": response["url"],
                "url": response["url"],
                "content_type": response["headers"].get("Content-Type") or response["headers"].get("content-type"),
                "body": response["body"],
            }


def doc_bytes(doc: dict) -> int:
    """Size of a document as it stands: its HTML before extraction, its text after."""
    return len(doc["body"]) if "body" in doc else len(doc["text"].encode("utf-8"))


def track_size(doc: dict) -> None:
    """Append the document's current size to ``doc["sizes"]``: one entry per step it survived.

    The funnel is computed from these lists alone, so the single-process path and the datatrove
    path (which only hands back records) report the same funnel.
    """
    doc.setdefault("sizes", []).append(doc_bytes(doc))


def filter_documents(docs: Iterable[dict], ctx: StepContext) -> tuple[list[dict], list[dict]]:
    """Per-document steps over all documents in one process: (kept documents, drop records)."""
    kept, dropped = [], []
    for doc in docs:
        track_size(doc)
        for name, step in DOCUMENT_STEPS:
            reason = step(doc, ctx)
            if reason is not None:
                dropped.append(drop_record(doc, name, reason))
                break
            track_size(doc)
        else:
            kept.append(doc)
    return kept, dropped


def drop_record(doc: dict, step: str, reason: str) -> dict:
    """What the drop log keeps of a removed document (its language score too, once known)."""
    return {
        "url": doc["url"],
        "step": step,
        "reason": reason,
        "sizes": doc["sizes"],
        "lang": doc.get("lang"),
        "lang_score": doc.get("lang_score"),
    }
