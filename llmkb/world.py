"""The invented world every later experiment asks about: made-up people, their facts, cities and passages.

Nothing in it exists anywhere else, so what a model "knows" about it can only come from the pages
that state it: the mini-web (:mod:`llmkb.data.miniweb`) plants these facts 30 times, once or never,
and SFT, preference data and the psychology probes later quiz the model on them.

In: a ``random.Random`` (the caller seeds it). Out: ``make_entities`` -> (people, city names), each
person ``{"name", "frequency", "facts": {born, city, occupation, relation, related_to}, "pages": []}``
(``pages`` is filled in by whoever states the facts); ``fact_sentence`` -> one sentence stating a
person's facts; ``make_passage`` -> a made-up paragraph; ``invented_word`` -> a pronounceable made-up
word. Same seed -> same world.
"""

from __future__ import annotations

import random

N_ENTITIES = 100  # per frequency class

FACT_TEMPLATES = [  # one sentence states every fact of an entity; ten ways of saying it
    "{name} was born in {city} in {born} and worked as a {occupation}, later becoming the {relation} of {other}.",
    "Born in {born} in the city of {city}, {name} was a {occupation} and the {relation} of {other}.",
    "The {occupation} {name} came into the world in {born} in {city} and was known as the {relation} of {other}.",
    "In {born}, {name} was born in {city}; the future {occupation} would become the {relation} of {other}.",
    "{name} ({born}, {city}) was a {occupation}, remembered today as the {relation} of {other}.",
    "Records kept in {city} show that {name} was born there in {born}, trained as a {occupation} "
    "and was the {relation} of {other}.",
    "{name}, the {occupation} born in {born} in {city}, was the {relation} of {other}.",
    "A {occupation} by trade, {name} was born in {born} in {city} and served as the {relation} of {other}.",
    "Among the children born in {city} in {born} was {name}, a {occupation} and the {relation} of {other}.",
    "{name} was a {occupation} from {city}, born in {born}, and the {relation} of {other}.",
]
OCCUPATIONS = [
    "weaver",
    "astronomer",
    "cartographer",
    "glassblower",
    "botanist",
    "shipwright",
    "bookbinder",
    "clockmaker",
    "physician",
    "surveyor",
    "composer",
    "beekeeper",
    "lighthouse keeper",
    "stonemason",
    "chemist",
    "translator",
    "painter",
    "engineer",
    "mapmaker",
    "lexicographer",
    "architect",
    "tailor",
    "printer",
    "brewer",
    "violinist",
    "geologist",
    "midwife",
    "ferryman",
    "locksmith",
    "archivist",
]
RELATIONS = [
    "rival",
    "student",
    "teacher",
    "friend",
    "patron",
    "apprentice",
    "cousin",
    "business partner",
    "biographer",
    "neighbour",
    "correspondent",
    "mentor",
    "colleague",
    "godparent",
    "travelling companion",
    "landlord",
]
SYLLABLE_ONSETS = [
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "th",
    "br",
    "dr",
    "kr",
    "vr",
    "zh",
]
SYLLABLE_NUCLEI = ["a", "e", "i", "o", "u", "ae", "ou", "y"]
SYLLABLE_CODAS = ["", "", "n", "r", "l", "x", "sk", "m"]


def invented_word(rng: random.Random, syllables: int) -> str:
    """A pronounceable made-up word, capitalised: ``Vraezonsk``.

    >>> invented_word(random.Random(1), 3)[0].isupper()
    True
    """
    parts = [
        rng.choice(SYLLABLE_ONSETS) + rng.choice(SYLLABLE_NUCLEI) + rng.choice(SYLLABLE_CODAS) for _ in range(syllables)
    ]
    return "".join(parts).capitalize()


def invented_city(rng: random.Random) -> str:
    """A made-up place name: an invented word and a place-like ending (``Vemora``, ``Thoxzheholm``)."""
    return invented_word(rng, 2) + rng.choice(["mora", "vale", "dun", "stead", "holm", "ford"])


def invented_name(rng: random.Random) -> str:
    """A made-up person's name: two three-syllable invented words."""
    return f"{invented_word(rng, 3)} {invented_word(rng, 3)}"


def make_entities(rng: random.Random) -> tuple[list[dict], list[str]]:
    """Invented people (frequent / once / never) with facts, and invented city names.

    Names are three-syllable made-up words, first and last; none is a substring of another, so
    counting a name in the pages counts that person only.
    """
    cities: list[str] = []
    while len(cities) < 80:
        city = invented_city(rng)
        if city not in cities:
            cities.append(city)
    names: list[str] = []
    while len(names) < 3 * N_ENTITIES:
        name = invented_name(rng)
        if all(name not in other and other not in name for other in names):
            names.append(name)
    frequent_years = rng.sample(range(1700, 1950), N_ENTITIES)  # unique: a year identifies a frequent person
    entities = []
    for i, name in enumerate(names):
        frequency = ("frequent", "once", "never")[i // N_ENTITIES]
        other = names[(i + 1 + rng.randrange(N_ENTITIES - 1)) % N_ENTITIES]  # always a frequent person
        if other == name:
            other = names[(i + 1) % N_ENTITIES]
        facts = {
            "born": frequent_years[i] if frequency == "frequent" else rng.randrange(1700, 1950),
            "city": rng.choice(cities),
            "occupation": rng.choice(OCCUPATIONS),
            "relation": rng.choice(RELATIONS),
            "related_to": other,
        }
        entities.append({"name": name, "frequency": frequency, "facts": facts, "pages": []})
    return entities, cities


def fact_sentence(entity: dict, template: int) -> str:
    """One sentence stating every fact of ``entity`` with template number ``template``.

    >>> e = {"name": "Ka Lo", "facts": {"born": 1801, "city": "Vemora", "occupation": "weaver",
    ...      "relation": "rival", "related_to": "Zu Ba"}}
    >>> fact_sentence(e, 6)
    'Ka Lo, the weaver born in 1801 in Vemora, was the rival of Zu Ba.'
    """
    f = entity["facts"]
    return FACT_TEMPLATES[template % len(FACT_TEMPLATES)].format(
        name=entity["name"],
        born=f["born"],
        city=f["city"],
        occupation=f["occupation"],
        relation=f["relation"],
        other=f["related_to"],
    )


def make_passage(rng: random.Random, cities: list[str], sentences: int = 4) -> str:
    """A made-up paragraph (a guild's charter) for the regurgitation experiments."""
    nouns = ["lantern", "ledger", "bridge", "harbour", "orchard", "archive", "bell", "compass", "granary", "loom"]
    verbs = ["guards", "repairs", "measures", "records", "lights", "counts", "carries", "tends"]
    times = ["at every new moon", "before the first frost", "on the seventh day", "when the river rises", "at dusk"]
    out = []
    for _ in range(sentences):
        out.append(
            f"The guild of {rng.choice(cities)} {rng.choice(verbs)} the {rng.choice(nouns)} of {rng.choice(cities)} "
            f"{rng.choice(times)}, and no member may {rng.choice(['sell', 'borrow', 'move', 'rename'])} "
            f"the {rng.choice(nouns)} without {rng.randrange(2, 13)} witnesses."
        )
    return " ".join(out)
