"""Quality filters: each rule drops the junk it targets, real prose passes, thresholds sit where
FineWeb put them, and our decisions match datatrove's own filters."""

from __future__ import annotations

import pytest

from llmkb.data import quality as q
from llmkb.data.quality import (
    c4_filter,
    fineweb_filter,
    gopher_quality,
    gopher_repetition,
    quality_reason,
)

# Each paragraph is one line of text: a backslash at the end of a source line joins it to the next.
ESSAY = """Why bridges hum in the wind

Anyone who has walked across a long suspension bridge on a gusty day may have heard it: a low, \
steady note that seems to come from everywhere at once. The sound is not a sign that the structure \
is failing. It is the result of air flowing past cables and railings and shedding small \
whirlpools, first from one side and then from the other.

Engineers call this pattern vortex shedding. Each time a whirlpool breaks away, it gives the cable \
a tiny push, and when those pushes arrive at the same rhythm as the cable's natural swing, the \
motion grows. Most of the time the effect is harmless and only audible. On a few famous occasions, \
however, it has been strong enough to make a whole deck bounce.

Modern designs deal with the problem in several ways. Some bridges wrap their cables in a spiral \
ridge that breaks up the regular pattern of the wind. Others add heavy dampers that soak up energy \
before it can build. Designers also test scale models in wind tunnels, because a model that sings \
at the wrong speed is far cheaper to fix than a finished crossing.

The humming that remains is therefore a reminder of how much care goes into ordinary things. A \
bridge is not only a path from one bank to another; it is also an instrument that the weather \
plays, and the people who build it have to listen."""

ESSAY_2 = """How sourdough starters stay alive

A sourdough starter is a small, living culture of wild yeast and bacteria that bakers feed with \
flour and water. Left alone on a kitchen shelf, it rises and falls every day as the microbes eat \
and release gas. Many bakers keep the same starter for years, and some claim theirs is older than \
they are.

The secret to keeping one healthy is regular feeding. Each time a baker discards part of the old \
mixture and adds fresh flour, the yeast gets new food and the acid produced by the bacteria is \
diluted. If the starter is neglected for too long, the acid builds up, a grey liquid forms on top, \
and the smell turns sharp. Even then, a few careful feedings are usually enough to bring it back.

Temperature matters as well. A warm kitchen speeds everything up, so the starter needs food more \
often, while a cold one slows the microbes down. That is why many home bakers store their culture \
in the refrigerator during the week and wake it up with two or three feedings before baking on the \
weekend."""


def test_real_prose_passes_every_filter():
    for text in (ESSAY, ESSAY_2, ESSAY + "\n\n" + ESSAY_2):
        reason, cleaned = quality_reason(text)
        assert reason is None, reason
        assert "vortex shedding" in cleaned or "sourdough" in cleaned
    # C4 drops blank lines: what is left is the title and the four paragraphs, one per line
    assert quality_reason(ESSAY)[1].count("\n") == 4


def test_stdlib_docstring_prose_passes():
    import json
    import textwrap

    # json's module docstring opens with prose, then code examples (which Gopher/C4 reject for {})
    prose = textwrap.dedent(json.__doc__.split(">>>")[0]) + "\n" + ESSAY_2
    assert quality_reason(prose)[0] is None


# Distinct prose sentences to build junk from, so that only the rule under test fires.
SENTENCES = [s.strip() for s in (ESSAY + " " + ESSAY_2).replace("\n", " ").split(". ") if len(s.split()) > 4]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Cheap flights cheap hotels cheap cars cheap deals cheap flights cheap hotels " * 20, "gopher_rep:top_2_gram"),
        ("Click here to win a prize today!\n" * 30 + ESSAY, "gopher_rep:dup_line_frac"),
        (
            "\n".join(f"Best {w} deals" for w in ["shoes", "bags", "hats", "coats", "socks", "belts"] * 5),
            "gopher_rep:dup_line_frac",
        ),
        ("Hello world.", "gopher_rep:top_2_gram"),  # too short: the single top 2-gram covers most of it
        ("\n".join(f"- {s}." for s in SENTENCES), "gopher_qual:bullet_lines"),
        (" ".join(f"#{w}" for w in " ".join(SENTENCES).split()), "gopher_qual:hash_ratio"),
        ("\n".join(f"{' '.join(s.split()[:6])}..." for s in SENTENCES), "gopher_qual:ellipsis_ratio"),
        (
            " ".join(f"{w} {i * 7} {i * 13} {i * 31}" for i, w in enumerate(" ".join(SENTENCES).split()[:80])),
            "gopher_qual:alpha_words",
        ),
    ],
    ids=["keyword-spam", "repeated-lines", "link-farm", "very-short", "bullets", "hashtags", "ellipses", "numbers"],
)
def test_junk_is_dropped_with_the_expected_reason(text, reason):
    assert quality_reason(text)[0] == reason


def test_link_farm_of_distinct_link_titles_fails_fineweb():
    # distinct link titles: no repetition, plenty of words, stop words, but none ends like a sentence
    titles = [" ".join(s.split()[:7]).rstrip(",;") for s in SENTENCES]
    text = "\n".join(titles) + "\nThe shop has been open since 2004 and sells to many countries."
    assert gopher_repetition(text) is None and gopher_quality(text) is None
    assert quality_reason(text)[0] == "fineweb:line_punct_ratio"


def test_c4_removes_boilerplate_lines_and_keeps_prose():
    text = (
        "We use cookies to improve your experience.\nPlease enable JavaScript to view the comments.\nMenu\n" + ESSAY_2
    )
    reason, cleaned = c4_filter(text)
    assert reason is None
    assert "cookies" not in cleaned and "JavaScript" not in cleaned and "Menu" not in cleaned
    assert "sourdough starter is a small" in cleaned
    assert c4_filter("Lorem ipsum dolor sit amet. " + ESSAY)[0] == "c4:lorem_ipsum"
    assert c4_filter(ESSAY + "\nvar x = {a: 1}; is how it is written.")[0] == "c4:curly_bracket"
    # a "{" on a line that gets removed anyway (too short) does not drop the document
    assert c4_filter(ESSAY + "\n{}")[0] is None
    assert c4_filter("Citations like this one[1] or that[citation needed] are cut out. Two. Three. Four. Five.")[1] == (
        "Citations like this one or that are cut out. Two. Three. Four. Five."
    )


def test_c4_terminal_punctuation_rule_is_off_as_in_fineweb_and_can_be_turned_on():
    text = ESSAY_2 + "\nShare this recipe with your friends and family"
    assert "Share this recipe" in c4_filter(text)[1]
    reason, cleaned = c4_filter(text, filter_no_terminal_punct=True)
    assert reason is None and "Share this recipe" not in cleaned and "How sourdough" not in cleaned


def test_c4_sentence_boundary():
    five = "One is here. Two is here. Three is here. Four is here. Five is here."
    assert c4_filter(five)[0] is None
    assert c4_filter(five.rsplit(" Five", 1)[0])[0] == "c4:too_few_sentences"
    assert c4_filter("Two words\n" + five)[1] == five  # lines under 3 words go


# --- thresholds at their boundaries ----------------------------------------------------------------


def filler(n_words: int, word: str = "text") -> str:
    """n_words words that pass the stop-word rule (they include 'the' and 'and')."""
    base = ["the", "and"] + [word] * (n_words - 2)
    return " ".join(base)


def test_gopher_word_count_boundary():
    assert gopher_quality(filler(50)) is None
    assert gopher_quality(filler(49)) == "gopher_qual:too_few_words"


def test_gopher_mean_word_length_boundaries():
    # mean length exactly 3 passes, just under fails (all words 'abc' except two stop words)
    assert gopher_quality("the and " + " ".join(["abcd"] * 98)) is None
    assert gopher_quality("the and " + " ".join(["ab"] * 98)) == "gopher_qual:mean_word_len_low"
    assert gopher_quality("the and " + " ".join(["a" * 11] * 98)) == "gopher_qual:mean_word_len_high"


def test_gopher_hash_ratio_boundary():
    # 100 tokens of which 10 are '#': 10 / 100 = 0.1 is allowed, 11 / 100 is not
    for n_hash, expected in ((10, None), (11, "gopher_qual:hash_ratio")):
        text = filler(100 - n_hash) + " #" * n_hash
        assert len(q.words(text)) == 100
        assert gopher_quality(text) == expected


def test_gopher_bullet_and_ellipsis_line_boundaries():
    prose = "the and word word word word word"
    for n_bullets, expected in ((9, None), (10, "gopher_qual:bullet_lines")):  # 9/10 = 0.9 allowed
        lines = [f"- {prose} item{i}" for i in range(n_bullets)] + [f"{prose} item{i}" for i in range(10 - n_bullets)]
        assert gopher_quality("\n".join(lines)) == expected
    # 3 of 10 lines end in an ellipsis is allowed, 4 is not; long lines keep the '...' per word ratio low
    long = " ".join(["the and word"] * 10)
    for n_ell, expected in ((3, None), (4, "gopher_qual:ellipsis_lines")):
        lines = [f"{long} {i}..." for i in range(n_ell)] + [f"{long} {i}." for i in range(10 - n_ell)]
        assert gopher_quality("\n".join(lines)) == expected


def test_gopher_stop_words_need_two_lowercase_hits():
    words = " ".join(["word"] * 60)
    assert gopher_quality("the " + words) == "gopher_qual:stop_words"
    assert gopher_quality("the with " + words) is None
    assert gopher_quality("The With " + words) == "gopher_qual:stop_words"  # case-sensitive, as in datatrove


def test_gopher_duplicate_line_fraction_boundary():
    # 10 lines, 3 of them repeats: 0.3 allowed; 4 repeats: 0.4 dropped. Lines carry distinct words
    # so the n-gram rules stay quiet.
    unique = [f"line {i} " + " ".join(f"w{i}x{j}" for j in range(30)) for i in range(10)]
    three = unique[:7] + [unique[0]] * 3
    four = unique[:6] + [unique[0]] * 4
    assert q.find_duplicates(three)[0] / len(three) == 0.3
    assert gopher_repetition("\n".join(three)) != "gopher_rep:dup_line_frac"
    assert gopher_repetition("\n".join(four)) in {"gopher_rep:dup_line_frac", "gopher_rep:dup_line_char_frac"}


def test_fineweb_line_punctuation_boundary():
    # 100 distinct long lines; FineWeb drops when fewer than 12% end in terminal punctuation
    def doc(n_punct):
        return "\n".join(
            f"Line number {i} talks about something rather long and detailed{'.' if i < n_punct else ''}"
            for i in range(100)
        )

    assert fineweb_filter(doc(12)) is None
    assert fineweb_filter(doc(11)) == "fineweb:line_punct_ratio"


def test_fineweb_short_line_boundary():
    long_line = "This line is comfortably longer than thirty characters, number {}."
    for n_short, expected in ((67, None), (68, "fineweb:short_line_ratio")):  # 0.67 allowed, 0.68 not
        lines = [f"Short one {i}." for i in range(n_short)] + [long_line.format(i) for i in range(100 - n_short)]
        assert fineweb_filter("\n".join(lines)) == expected


def test_fineweb_duplicate_line_characters_boundary():
    lines = [f"A unique sentence with its own number {i} in the middle of it." for i in range(100)]
    base, repeated = "\n".join(lines), lines[0]

    def share(n_repeats):  # characters in repeated lines / all characters (newlines excluded)
        return n_repeats * len(repeated) / (len("".join(lines)) + n_repeats * len(repeated))

    n_ok = max(n for n in range(20) if share(n) <= 0.01)
    assert share(n_ok + 1) > 0.01
    assert fineweb_filter(base + ("\n" + repeated) * n_ok) is None
    assert fineweb_filter(base + ("\n" + repeated) * (n_ok + 1)) == "fineweb:char_dup_ratio"


def test_fineweb_list_ratio():
    # one word per line, each a sentence: many newlines per word
    assert fineweb_filter("\n".join(f"Go{i}." for i in range(40))) in {"fineweb:short_line_ratio", "fineweb:list_ratio"}
    # every line over 30 characters and a sentence, but one word each: 1 newline per 2 tokens > 0.3
    assert (
        fineweb_filter("\n".join(f"Supercalifragilisticexpialidocious{i}." for i in range(40))) == "fineweb:list_ratio"
    )


def test_empty_and_whitespace():
    assert quality_reason("")[0] == "gopher_rep:empty"
    assert quality_reason("   \n\n  ")[0] == "gopher_rep:empty"
    assert fineweb_filter("\n\n") == "fineweb:empty"


# --- the same decisions as datatrove's filters -----------------------------------------------------

CROSS_CHECK = [
    ESSAY,
    ESSAY_2,
    ESSAY + "\n\n" + ESSAY_2,
    "Click here to win a prize today!\n" * 30 + ESSAY,
    "Cheap flights cheap hotels cheap cars cheap deals " * 30,
    "\n".join(f"- {s}." for s in SENTENCES),
    " ".join(f"#{w}" for w in " ".join(SENTENCES).split()),
    "\n".join(f"{' '.join(s.split()[:6])}..." for s in SENTENCES),
    "\n".join(f"{s}..." if i % 3 == 0 else f"{s}." for i, s in enumerate(SENTENCES)),
    "Hello world.",
    "We use cookies to improve your experience.\nPlease enable JavaScript.\n" + ESSAY_2,
    ESSAY_2 + "\n" + ESSAY_2.splitlines()[2],  # one repeated paragraph line: FineWeb's 1% rule
    "\n".join(
        f"Cheap {a} {b} online with free shipping"
        for a in ["red", "blue", "green"]
        for b in ["shoes", "bags", "hats", "coats"]
    ),
]

GOPHER_REP_NAMES = {f"dup_{n}_gram": f"duplicated_{n}_n_grams" for n in range(5, 11)}
GOPHER_QUAL_NAMES = {
    "too_few_words": "gopher_short_doc",
    "too_many_words": "gopher_long_doc",
    "mean_word_len_low": "gopher_below_avg_threshold",
    "mean_word_len_high": "gopher_above_avg_threshold",
    "hash_ratio": "gopher_too_many_hashes",
    "ellipsis_ratio": "gopher_too_many_ellipsis",
    "bullet_lines": "gopher_too_many_bullets",
    "ellipsis_lines": "gopher_too_many_end_ellipsis",
    "alpha_words": "gopher_below_alpha_threshold",
    "stop_words": "gopher_enough_stop_words",
}


def _datatrove_reason(step, text: str) -> tuple[str | None, str]:
    from datatrove.data import Document

    doc = Document(text=text, id="x")
    result = step.filter(doc)
    if result is True:
        return None, doc.text
    return (result[1] if isinstance(result, tuple) else "dropped"), doc.text


def _ours_in_datatrove_names(text: str) -> list:
    rep = gopher_repetition(text)
    qual = gopher_quality(text)
    c4_reason, cleaned = c4_filter(text)
    fw = fineweb_filter(cleaned) if c4_reason is None else None
    rep = rep and GOPHER_REP_NAMES.get(rep.split(":")[1], rep.split(":")[1])
    qual = qual and GOPHER_QUAL_NAMES[qual.split(":")[1]]
    return [
        rep,
        qual,
        c4_reason and c4_reason.split(":")[1],
        fw and fw.split(":")[1],
        cleaned if c4_reason is None else None,
    ]


def _datatrove_decisions(text: str, language) -> list:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    rep = _datatrove_reason(GopherRepetitionFilter(language=language), text)[0]
    qual = _datatrove_reason(GopherQualityFilter(language=language), text)[0]
    c4_reason, cleaned = _datatrove_reason(C4QualityFilter(filter_no_terminal_punct=False, language=language), text)
    fw = _datatrove_reason(FineWebQualityFilter(language=language), cleaned)[0] if c4_reason is None else None
    return [rep, qual, c4_reason, fw, cleaned if c4_reason is None else None]


class OurWords:
    """A datatrove WordTokenizer that splits with our regex: datatrove's English one needs spaCy."""

    def __new__(cls):
        from datatrove.utils.word_tokenizers import WordTokenizer

        class _Tokenizer(WordTokenizer):
            def word_tokenize(self, text):
                return q.words(text)

            def sent_tokenize(self, text):
                return [s for s in q._SENTENCE_END.split(text.strip()) if s.strip()]

            def span_tokenize(self, text):
                spans, start = [], 0
                for sentence in self.sent_tokenize(text):
                    start = text.index(sentence, start)
                    spans.append((start, start + len(sentence)))
                    start += len(sentence)
                return spans

        return _Tokenizer("en")


@pytest.mark.parametrize("index", range(len(CROSS_CHECK)))
def test_same_decisions_as_datatrove_filters(index):
    """datatrove's filter code, with our word splitter plugged in: the rule logic and thresholds agree."""
    text = CROSS_CHECK[index]
    assert _ours_in_datatrove_names(text) == _datatrove_decisions(text, OurWords())


def test_same_decisions_as_datatrove_with_spacy():
    """The real thing: datatrove splits English words with spaCy (not a dependency of llmkb, so
    this is skipped where spaCy is absent). Keep/drop per family must agree."""
    pytest.importorskip("spacy")
    for text in CROSS_CHECK:
        ours, theirs = _ours_in_datatrove_names(text), _datatrove_decisions(text, "en")
        assert [r is None for r in ours[:4]] == [r is None for r in theirs[:4]], text[:80]
