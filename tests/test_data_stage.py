"""The data stage end to end on the quick mini-web: funnel, accuracy goals, datatrove, other inputs."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmkb.cli import main
from llmkb.data.distributed import filter_with_datatrove
from llmkb.data.config import DataConfig
from llmkb.data.steps import StepContext, documents_from_warcs, filter_documents
from llmkb.io import read_json, read_jsonl


@pytest.fixture(scope="module")
def data_dir(quick_run):
    return quick_run.require("data")


def corpus_urls(folder) -> set[str]:
    return {d["url"] for split in ("train", "heldout") for d in read_jsonl(folder / f"{split}.jsonl")}


def test_the_funnel_only_shrinks_and_ends_with_the_corpus(data_dir):
    funnel = read_json(data_dir / "funnel.json")
    steps = [row["step"] for row in funnel]
    assert steps == [
        "crawled (HTTP 200)",
        "url_filter",
        "extraction",
        "language",
        "quality",
        "exact_dedup",
        "minhash_dedup",
        "pii_removal",
    ]
    counts = [row["documents"] for row in funnel]
    assert counts == sorted(counts, reverse=True) and counts[-1] == len(corpus_urls(data_dir)) > 0
    assert funnel[2]["bytes"] < 0.8 * funnel[1]["bytes"]  # extraction removes the markup


def test_accuracy_goals_against_the_manifest(data_dir):
    accuracy = read_json(data_dir / "accuracy.json")
    assert accuracy["pii_email"]["recall"] == 1.0
    assert accuracy["pii_ipv4"]["recall"] == 1.0
    assert accuracy["pii_phone"]["recall"] >= 0.95
    assert accuracy["near_duplicates"]["recall"] >= 0.9
    for category in ("duplicates", "non_english", "blocklisted", "low_quality"):
        assert accuracy[category]["planted"] > 0, category
        assert accuracy[category]["recall"] >= 0.8, (category, accuracy[category])


def test_the_corpus_is_english_and_free_of_planted_pii(data_dir):
    manifest = read_json(data_dir / "miniweb" / "manifest.json")
    for doc in read_jsonl(data_dir / "train.jsonl"):
        assert doc["lang"] == "en" and doc["lang_score"] >= 0.65
        for item in manifest["pages"].get(doc["url"], {}).get("pii", []):
            if item["kind"] in ("email", "ipv4"):
                assert item["value"] not in doc["text"], (doc["url"], item)


def test_robots_disallowed_urls_were_never_fetched(data_dir):
    manifest = read_json(data_dir / "miniweb" / "manifest.json")
    disallowed = {u for u, page in manifest["pages"].items() if "robots_disallowed" in page["kind"]}
    assert disallowed
    fetched = {
        line["url"]
        for line in read_jsonl(data_dir / "crawl" / "crawl_log.jsonl")
        if line["outcome"] != "robots_disallowed"
    }
    assert not disallowed & fetched


def test_datatrove_tasks_give_the_same_documents_as_one_process(data_dir, tmp_path):
    config = DataConfig(tasks=2)
    kept, dropped = filter_with_datatrove(data_dir / "crawl", config, tmp_path)
    warcs = sorted((data_dir / "crawl").glob("*.warc.gz"))
    single_kept, single_dropped = filter_documents(documents_from_warcs(warcs), StepContext.create(config))
    assert sorted((d["url"], d["text"]) for d in kept) == sorted((d["url"], d["text"]) for d in single_kept)
    assert sorted((d["url"], d["step"]) for d in dropped) == sorted((d["url"], d["step"]) for d in single_dropped)
    assert len(list((tmp_path / "kept").glob("*.jsonl.gz"))) == 2  # two tasks, two shards


def test_local_warc_files_instead_of_a_crawl(data_dir, tmp_path):
    warcs = sorted((data_dir / "crawl").glob("*.warc.gz"))
    args = ["data", "--profile", "quick", "--out", str(tmp_path)]
    assert main([*args, *(a for w in warcs for a in ("--warc", str(w)))]) == 0
    assert corpus_urls(tmp_path / "data") == corpus_urls(data_dir)


def test_a_truncated_warc_is_read_up_to_the_damage(data_dir, tmp_path):
    warc = sorted((data_dir / "crawl").glob("*.warc.gz"))[0]
    broken = tmp_path / "broken.warc.gz"
    broken.write_bytes(warc.read_bytes()[: warc.stat().st_size // 2])  # as if the download stopped halfway
    with pytest.warns(UserWarning, match=r"broken\.warc\.gz: damaged WARC at byte \d+"):
        responses = list(documents_from_warcs([broken]))
    assert 0 < len(responses) < len(list(documents_from_warcs([warc])))


def test_missing_warc_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "--warc", str(tmp_path / "nope.warc.gz"), "--out", str(tmp_path)]) == 2
    assert "nope.warc.gz: no such WARC file" in capsys.readouterr().err


def test_a_file_that_is_not_warc_stops_with_an_error_and_writes_no_corpus(tmp_path, capsys):
    notes = tmp_path / "notes.txt.warc.gz"
    notes.write_text("just some notes, not a WARC file\n")
    assert main(["data", "--warc", str(notes), "--out", str(tmp_path)]) == 2
    assert f"{notes}: no HTTP 200 response record" in capsys.readouterr().err
    assert not (tmp_path / "data" / "train.jsonl").exists() and not (tmp_path / "data" / "metrics.json").exists()


def test_any_site_by_seed_url(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    prose = " ".join(["The committee met on a grey morning to discuss the state of the old harbour."] * 3)
    for i in range(4):
        links = "".join(f'<a href="page{j}.html">page {j}</a> ' for j in range(4))
        body = "".join(
            f"<p>{prose} Paragraph {k} of page {i} adds its own remark about boats and tides.</p>" for k in range(8)
        )
        (site / f"page{i}.html").write_text(f"<html><body><nav>{links}</nav><article>{body}</article></body></html>")
    (site / "index.html").write_text('<html><body><a href="page0.html">start</a></body></html>')
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert main(["data", "--profile", "quick", "--seed-url", url, "--out", str(tmp_path / "out")]) == 0
    finally:
        server.shutdown()
        server.server_close()
    metrics = read_json(tmp_path / "out" / "data" / "metrics.json")
    assert metrics["crawled"] >= 5
