"""Text -> text with personal data replaced: e-mail addresses, public IPv4 addresses, phone numbers.

In: a document's text. Out: ``(new_text, counts)`` with ``counts = {"email": n, "ipv4": n,
"phone": n}``, the number of values replaced of each kind.

FineWeb's last step (datatrove's ``PIIFormatter``) replaces e-mail addresses with
``email@example.com`` or ``firstname.lastname@example.org`` and *public* IP addresses with a
fixed set of stand-ins, leaving private ones (``10.x``, ``192.168.x``, loopback...) alone since
they identify no one. We do the same, with three differences:

* IPs are replaced by addresses of the documentation ranges (RFC 5737: ``192.0.2.0/24``,
  ``198.51.100.0/24``, ``203.0.113.0/24``), which can never belong to anyone; datatrove uses
  random addresses that "did not answer a ping". Multicast addresses are kept too.
* phone numbers are replaced as well (FineWeb left them in), by numbers reserved for fiction
  (``+1-202-555-0100`` in North America, ``+44 20 7946 0000`` in the UK);
* the replacement is chosen from the value's hash, not by a counter shared across documents,
  so :func:`scrub` is a pure function: the same text always gives the same result, in any
  process, and scrubbing twice changes nothing more.

Phones are the hard part: "a run of digits" also describes years, dates, prices, version numbers
and ISBNs. :func:`is_phone` accepts a candidate only when it has 7 to 15 digits and the shape of
a phone number (see its rules), which keeps those negatives out; ``tests/test_pii.py`` measures
recall on Faker's phone formats for six locales and checks the negatives are untouched.
Matching is ASCII-bounded rather than word-bounded, so ``电话18166048764`` or ``邮箱a@b.cn``
(no space after CJK text) are still found.
"""

from __future__ import annotations

import ipaddress
import re
import zlib

EMAIL_REPLACEMENTS = ("email@example.com", "firstname.lastname@example.org")  # as datatrove
IPV4_REPLACEMENTS = ("192.0.2.1", "198.51.100.1", "203.0.113.1")  # RFC 5737 documentation ranges
PHONE_REPLACEMENTS = ("+1-202-555-0100", "+44 20 7946 0000")  # NANP 555-01xx / Ofcom drama range

# RFC 5322 "dot-atom" local part (but starting with a letter or digit, so "``@decorator" in
# code is not an address); domain labels of letters, digits and inner hyphens; a TLD of
# 2+ letters. The lookbehind stands in for \b without treating CJK letters as part of the address.
EMAIL = re.compile(
    r"(?<![A-Za-z0-9!#$%&'*+/=?^_`{|}~.-])"
    r"[A-Za-z0-9][A-Za-z0-9!#$%&'*+/=?^_`{|}~-]*(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"  # 0..255 without leading zeros
IPV4 = re.compile(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\d]|\.\d)")
# A phone candidate: optional "+", then digits and parentheses joined by at most one separator
# (space, dot, dash), ending in a digit, with an optional extension ("x123", "ext. 123").
# Not glued to a word, a number (",", "."), a price, a path, a "#" or an earlier "-".
PHONE = re.compile(
    r"(?<![A-Za-z0-9_.,/$€£¥+\-#@])"
    r"(?:\+ ?)?[\d(](?:[\d()]|[ .\-](?=[\d(]))*\d"
    r"(?: ?(?:x|ext\.?) ?\d{1,5})?"
    r"(?![A-Za-z0-9_]|[.,:\-]\d)"  # ":" keeps "2005-01-26 23:30" from reaching into the time
)
# A date inside a candidate: year-month-day or day-month-year, with "-" or "." between.
_DATE = re.compile(r"(?<!\d)(?:\d{4}([-.])\d{1,2}\1\d{1,2}|\d{1,2}([-.])\d{1,2}\2\d{4})(?!\d)")
_EXTENSION = re.compile(r" ?(?:x|ext\.?) ?\d{1,5}$")
# Words that announce a phone number, in the corpus's languages: with one of them in the 32
# characters before it, a bare run of digits ("call 2125550143") counts as a phone too.
PHONE_WORDS = re.compile(
    r"(?i)\b(?:tel|phone|call|mobile|cell|fax|whatsapp|sms|hotline|contact|dial"  # en
    r"|số|điện thoại|đt|sđt|gọi|liên hệ"  # vi
    r"|tél|téléphone|portable|appel|appelez"  # fr
    r"|telefon|handy|ruf|anruf|rufen"  # de
    r"|teléfono|telefone|celular|cellulare|telefono|chiama|тел|телефон|звоните)"  # es, pt, it, ru
    r"|电话|電話|手机|联系|携帯|연락처|전화"  # zh, ja, ko: no word boundaries in these scripts
)
CONTEXT = 32  # characters before a candidate that is_phone gets to see


def _pick(value: str, options: tuple[str, ...]) -> str:
    """A replacement chosen by the value's CRC32: deterministic across runs and processes."""
    return options[zlib.crc32(value.encode("utf-8")) % len(options)]


def is_public_ipv4(text: str) -> bool:
    """True for an address that can identify a host on the internet.

    Examples:
        >>> [is_public_ipv4(ip) for ip in ("8.8.8.8", "10.0.0.1", "192.168.1.1", "127.0.0.1", "203.0.113.5")]
        [True, False, False, False, False]
    """
    try:
        ip = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


def _looks_like_date(groups: list[str]) -> bool:
    """Year-month-day or day-month-year (either order of day and month) in three groups."""
    if len(groups) != 3:
        return False
    lengths = [len(g) for g in groups]
    if lengths[0] == 4 and lengths[1] <= 2 and lengths[2] <= 2:
        year, a, b = groups
    elif lengths[2] == 4 and lengths[0] <= 2 and lengths[1] <= 2:
        a, b, year = groups
    else:
        return False
    a, b = int(a), int(b)
    return 1000 <= int(year) <= 2199 and 1 <= min(a, b) and min(a, b) <= 12 and max(a, b) <= 31


def is_phone(candidate: str, before: str = "") -> bool:
    """Does a PHONE candidate look like a phone number rather than some other number?

    ``before`` is the text just before it (for an "ISBN" label or a word like "call"). The rules:
    7 to 15 digits (E.164's maximum); balanced parentheses; not a date, a list of years, an IPv4
    address or a number written with thousands separators; no check digit hanging off the end
    (ISBNs); dots only as the one separator of 3+ groups of 2-4 digits (``281.256.5938``, not
    ``10.0.19041``). A bare run of digits is a phone only with a "+", as a 9-11 digit national
    number starting with the trunk prefix 0, as an 11-digit Chinese mobile (``1[3-9]`` + 9
    digits), or right after a word such as "call", "tel", "số", "电话" (:data:`PHONE_WORDS`).

    Examples:
        >>> [is_phone(s) for s in ("(555) 123-4567", "+84 24 3825 4321", "0912-345-678", "18166048764")]
        [True, True, True, True]
        >>> [is_phone(s) for s in ("2024-05-01", "1984 1999", "1 234 567", "978-3-16-148410-0", "1700000000")]
        [False, False, False, False, False]
    """
    if "ISBN" in before[-8:].upper():
        return False
    core = _EXTENSION.sub("", candidate)
    digits = sum(c.isdigit() for c in core)
    if not 7 <= digits <= 15 or core.count("(") != core.count(")"):
        return False
    plus = core.startswith("+")
    groups = re.findall(r"\d+", core)
    separators = set(re.findall(r"[ .\-()]", core))
    if len(groups) == 1:  # a bare run of digits: an ID, a timestamp... unless it has a phone's shape
        national = re.fullmatch(r"0\d{8,10}|1[3-9]\d{9}", groups[0])  # trunk "0"; Chinese mobile
        return plus or bool(national) or bool(PHONE_WORDS.search(before))
    if len(groups[-1]) < 2:  # ISBN/EAN check digit, "page 12 3"
        return False
    body = groups[1:] if plus else groups  # the country code may be one digit ("+1", "+7")
    if sum(len(g) == 1 for g in body) > 2:  # "3 4 5 6 7 8 9" is a list, not a number
        return False
    if _looks_like_date(groups) or any(_looks_like_date(re.findall(r"\d+", d.group(0))) for d in _DATE.finditer(core)):
        return False
    if all(len(g) == 4 and 1000 <= int(g) <= 2199 for g in groups):  # "1984 1999", "1990-2000"
        return False
    if digits < 8 and not plus and not PHONE_WORDS.search(before):  # "IEEE 854-1987", "No. 12 345"
        return False
    if "." in separators:
        ip_shaped = len(groups) == 4 and all(len(g) <= 3 for g in groups)
        return separators == {"."} and len(groups) >= 3 and all(2 <= len(g) <= 4 for g in groups) and not ip_shaped
    # "1 234 567": thousands separated by spaces (or dashes), as French and Russian write them
    thousands = not plus and "(" not in separators and len(groups) >= 3 and len(groups[0]) <= 3
    return not (thousands and all(len(g) == 3 for g in groups[1:]))


def scrub(text: str) -> tuple[str, dict[str, int]]:
    """Replace e-mail addresses, public IPv4 addresses and phone numbers; count each kind.

    >>> clean, counts = scrub("Mail ann.lee@mail.test or call (555) 123-4567 from 8.8.8.8 or 192.168.0.1.")
    >>> clean
    'Mail firstname.lastname@example.org or call +44 20 7946 0000 from 198.51.100.1 or 192.168.0.1.'
    >>> counts
    {'email': 1, 'ipv4': 1, 'phone': 1}
    >>> scrub("Released in 1984; v3.11.7 costs $1,234.56 (2024-05-01).")[1]
    {'email': 0, 'ipv4': 0, 'phone': 0}
    """
    counts = {"email": 0, "ipv4": 0, "phone": 0}

    def email(m: re.Match) -> str:
        if m.group(0) in EMAIL_REPLACEMENTS:  # already a placeholder: scrubbing twice is a no-op
            return m.group(0)
        counts["email"] += 1
        return _pick(m.group(0), EMAIL_REPLACEMENTS)

    def ipv4(m: re.Match) -> str:
        if not is_public_ipv4(m.group(0)):  # private, loopback, documentation: kept, like FineWeb
            return m.group(0)
        counts["ipv4"] += 1
        return _pick(m.group(0), IPV4_REPLACEMENTS)

    def phone(m: re.Match) -> str:
        value, lead = m.group(0), ""
        # "(0532100330)": the candidate took the opening parenthesis of the prose, not of the number
        while value.startswith("(") and value.count("(") > value.count(")"):
            lead, value = lead + "(", value[1:]
        if value in PHONE_REPLACEMENTS or not is_phone(value, m.string[max(0, m.start() - CONTEXT) : m.start()]):
            return m.group(0)
        counts["phone"] += 1
        return lead + _pick(value, PHONE_REPLACEMENTS)

    # Order matters: e-mails first (their digits are not phones), then IPs (dotted quads are not
    # phones either; is_phone also rejects the IP-shaped ones that were kept).
    text = EMAIL.sub(email, text)
    text = IPV4.sub(ipv4, text)
    text = PHONE.sub(phone, text)
    return text, counts
