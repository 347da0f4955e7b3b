"""The data stage's settings: what to crawl (or read), the crawl's bounds, the filters' thresholds.

In: nothing. Out: :class:`DataConfig`, a plain dataclass saved as ``config.json`` beside the stage's
artifacts; it checks its fields when built. Cheap to import, so registering the stage stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmkb.checks import fraction, one_of, positive, require
from llmkb.data.extract import EXTRACTORS


@dataclass
class DataConfig:
    pages: int = 3000  # size of the generated mini-web
    seed: int = 0  # the mini-web's seed
    seed_urls: list[str] = field(default_factory=list)  # crawl these instead of the mini-web
    warcs: list[str] = field(default_factory=list)  # or read these WARC files (e.g. from Common Crawl)
    max_pages: int = 20_000  # crawl bounds
    max_depth: int = 10
    crawl_time_limit_s: float = 600
    # Per request. Generous, so that no ordinary page of the mini-web times out on a slow or busy
    # machine (the corpus must not depend on the CPU); the planted slow page waits 20 s.
    crawl_timeout_s: float = 8.0
    warc_max_bytes: int = 100_000_000  # start a new WARC file past this size
    extractor: str = "resiliparse"  # or "trafilatura"
    language: str = "en"  # keep this language...
    language_threshold: float = 0.65  # ...when the classifier is at least this sure (FineWeb: 0.65)
    heldout_fraction: float = 0.02  # documents kept out of training
    tasks: int = 1  # > 1: per-document steps run as datatrove tasks (LocalPipelineExecutor)

    def __post_init__(self) -> None:
        positive(self, "pages", "max_pages", "crawl_time_limit_s", "crawl_timeout_s", "warc_max_bytes", "tasks")
        require(self, "max_depth", self.max_depth >= 0, ">= 0 (0: the seeds only)")
        # Both set would silently crawl nothing: the WARC files win (see acquire_warcs).
        require(self, "seed_urls", not (self.seed_urls and self.warcs), "empty when warcs is set (choose one)")
        one_of(self, "extractor", EXTRACTORS)
        require(self, "language", bool(self.language), "a language code such as 'en'")
        fraction(self, "language_threshold")
        require(self, "heldout_fraction", 0 <= self.heldout_fraction < 1, "in [0, 1)")
