"""Atomic writes and JSON Lines errors."""

from __future__ import annotations

import pytest

from llmkb.io import atomic_open, read_json, read_jsonl, write_jsonl, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write("half of the new")
            raise RuntimeError("crash in the middle")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_jsonl_roundtrip_and_errors_name_file_and_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    assert write_jsonl(path, [{"text": "xin chào"}, {"text": "你好"}]) == 2
    assert [r["text"] for r in read_jsonl(path)] == ["xin chào", "你好"]
    path.write_bytes(b'{"ok": 1}\n{"broken": \n')
    with pytest.raises(ValueError, match=r"docs\.jsonl:2: not a JSON object"):
        list(read_jsonl(path))
    path.write_bytes(b'{"ok": 1}\n{"x": "\xff"}\n')
    with pytest.raises(ValueError, match=r"docs\.jsonl:2: not UTF-8"):
        list(read_jsonl(path))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        list(read_jsonl(tmp_path / "missing.jsonl"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        read_json(tmp_path / "bad.json")
