"""How well did each filter do? Precision and recall against the mini-web's manifest.

In: the manifest (ground truth of every planted page), the documents the data stage kept and
the drop log (url, step, reason). Out: one entry per category with the planted count, what the
responsible step removed, precision and recall.

Only pages that reached a step are judged by it: a low-quality page that was never crawled, or
a duplicate whose original was already dropped as low quality, says nothing about the filter.
"""

from __future__ import annotations

DEDUP_STEPS = ("exact_dedup", "minhash_dedup")
# category -> (manifest kinds that plant it, the step that should remove it)
FILTER_CATEGORIES = {
    "blocklisted": ({"blocklisted_domain", "banned_word_url"}, "url_filter"),
    "non_english": ({"foreign", "mixed"}, "language"),  # mixed: half English, half another language
    "low_quality": ({"lowq"}, "quality"),
}
STEP_ORDER = ["url_filter", "extraction", "language", "quality", *DEDUP_STEPS]


def score(planted: set[str], removed: set[str]) -> dict:
    """Precision and recall of ``removed`` against ``planted``.

    >>> score({"a", "b"}, {"b", "c"})
    {'planted': 2, 'removed': 2, 'correct': 1, 'precision': 0.5, 'recall': 0.5}
    """
    correct = len(planted & removed)
    return {
        "planted": len(planted),
        "removed": len(removed),
        "correct": correct,
        "precision": round(correct / len(removed), 4) if removed else 1.0,
        "recall": round(correct / len(planted), 4) if planted else 1.0,
    }


def evaluate(manifest: dict, kept: list[dict], dropped: list[dict]) -> dict:
    pages = manifest["pages"]
    step_of = {d["url"]: d["step"] for d in dropped}
    kept_text = {d["url"]: d["text"] for d in kept}
    entered = set(step_of) | set(kept_text)  # crawled with HTTP 200

    def reached(url: str, step: str) -> bool:
        """Did ``url`` get as far as ``step`` (not dropped by an earlier one)?"""
        if url not in entered:
            return False
        dropped_at = step_of.get(url)
        return dropped_at is None or STEP_ORDER.index(dropped_at) >= STEP_ORDER.index(step)

    def kinds(url: str) -> set[str]:
        return set(pages.get(url, {}).get("kind", []))

    results = {}
    for category, (planted_kinds, step) in FILTER_CATEGORIES.items():
        candidates = {u for u in entered if reached(u, step)}
        planted = {u for u in candidates if kinds(u) & planted_kinds}
        removed = {u for u in candidates if step_of.get(u) == step}
        results[category] = score(planted, removed)

    # Duplicates come in pairs: the pair is handled when the two copies do not both survive.
    # Which copy survives is the dedup's choice (the first by URL), so judge pairs, not pages.
    dedup_removed = {u for u, s in step_of.items() if s in DEDUP_STEPS}
    for category, dup_kinds in (("duplicates", {"dup_exact", "dup_near"}), ("near_duplicates", {"dup_near"})):
        pairs = [
            (u, pages[u]["duplicate_of"])
            for u in entered
            if kinds(u) & dup_kinds
            and pages[u].get("duplicate_of") in entered
            and reached(u, "exact_dedup")
            and reached(pages[u]["duplicate_of"], "exact_dedup")
        ]
        handled = sum(1 for a, b in pairs if not (a in kept_text and b in kept_text))
        in_pairs = {u for pair in pairs for u in pair}
        correct = len(dedup_removed & in_pairs) if category == "duplicates" else None
        results[category] = {
            "planted": len(pairs),
            "recall": round(handled / len(pairs), 4) if pairs else 1.0,
            **(
                {
                    "removed": len(dedup_removed),
                    "correct": correct,
                    "precision": round(correct / len(dedup_removed), 4) if dedup_removed else 1.0,
                }
                if correct is not None
                else {}
            ),
        }

    # PII: every planted value on a page that made it into the corpus must be gone from its text.
    by_kind: dict[str, list[int]] = {}
    for url, text in kept_text.items():
        for item in pages.get(url, {}).get("pii", []):
            found = by_kind.setdefault(f"pii_{item['kind']}", [0, 0])
            found[0] += 1
            found[1] += item["value"] not in text
    for kind, (planted, scrubbed) in by_kind.items():
        results[kind] = {"planted": planted, "scrubbed": scrubbed, "recall": round(scrubbed / planted, 4)}
    return results
