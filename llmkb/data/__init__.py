"""The data stage, FineWeb-style: from a (generated) web to a clean English corpus.

One module per step, in pipeline order:

- :mod:`~llmkb.data.miniweb`   a seed -> a deterministic website of several hosts with planted cases and
  their ground truth;
- :mod:`~llmkb.data.server`    the generated site -> a real HTTP server on 127.0.0.1 (redirects, errors,
  delays, robots.txt);
- :mod:`~llmkb.data.crawl`     seed URLs -> WARC files, breadth-first, polite (robots.txt), bounded;
- :mod:`~llmkb.data.urlfilter` a URL -> keep, or the blocklist rule (domain, banned word) that drops it;
- :mod:`~llmkb.data.extract`   HTML bytes -> the page's main text (encoding repaired, boilerplate removed);
- :mod:`~llmkb.data.langid`    text -> language code and confidence (fastText lid.176, bundled);
- :mod:`~llmkb.data.quality`   text -> keep, or the Gopher / C4 / FineWeb rule that drops it;
- :mod:`~llmkb.data.dedup`     documents -> documents without exact and MinHash near duplicates;
- :mod:`~llmkb.data.pii`       text -> text with e-mail addresses, public IPs and phone numbers replaced;
- :mod:`~llmkb.data.evaluate`  the manifest + what each step kept and dropped -> precision and recall per
  planted category;
- :mod:`~llmkb.data.steps`     the per-document steps above as functions of one document, run in one process;
- :mod:`~llmkb.data.distributed` the per-document steps as datatrove tasks (local executor here, Slurm on a cluster);
- :mod:`~llmkb.data.config`    the stage's settings, checked when built;
- :mod:`~llmkb.data.stage`     the ``data`` stage: all of the above in order, a funnel and accuracy against
  the manifest.
"""
