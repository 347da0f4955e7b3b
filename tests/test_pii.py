"""PII removal: Faker's e-mails, phones and public IPs in six locales are replaced inside prose;
private IPs and number-like text that is not a phone (years, dates, versions, prices, ISBNs)
are left exactly as they were."""

from __future__ import annotations

import random

import pytest
from faker import Faker

from llmkb.data.pii import (
    EMAIL_REPLACEMENTS,
    IPV4_REPLACEMENTS,
    PHONE_REPLACEMENTS,
    is_phone,
    is_public_ipv4,
    scrub,
)

LOCALES = ["en_US", "vi_VN", "fr_FR", "de_DE", "zh_CN", "ja_JP"]
PER_LOCALE = 50  # x 6 locales = 300 values of each kind

# Sentences a value can sit in: with and without a word announcing a phone, glued to CJK text,
# in parentheses, at the end of a sentence, followed by a comma.
TEMPLATES = {
    "en_US": ["Call {v} after 5 pm.", "For details, contact {name} ({v}).", "{name} wrote from {v}, twice."],
    "vi_VN": ["Liên hệ anh {name} qua {v} nhé.", "Gọi số {v} để đặt bàn.", "Địa chỉ: {v}."],
    "fr_FR": ["Appelez {name} au {v}, merci.", "Écrivez à {v} avant lundi.", "({v}) est le numéro du bureau."],
    "de_DE": ["Rufen Sie {name} unter {v} an.", "Kontakt: {v}.", "Die Nummer {v} ist neu."],
    "zh_CN": ["请联系{name}：{v}。", "电话{v}，周一到周五。", "我的地址是{v}"],
    "ja_JP": ["{name}さんの電話番号は{v}です。", "連絡先: {v}", "詳細は {v} まで。"],
}


def planted_values(kind: str) -> list[tuple[str, str]]:
    """(value, sentence containing it) for 300 Faker values of one kind."""
    rng = random.Random(kind)
    out = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(11)
        for _ in range(PER_LOCALE):
            value = {"email": fake.email, "phone": fake.phone_number, "ipv4": fake.ipv4_public}[kind]()
            template = rng.choice(TEMPLATES[locale])
            out.append((value, template.format(v=value, name=fake.name())))
    return out


@pytest.mark.parametrize("kind, required", [("email", 1.0), ("ipv4", 1.0), ("phone", 0.95)])
def test_recall_on_faker_values_in_prose(kind, required):
    planted = planted_values(kind)
    gone = 0
    for value, sentence in planted:
        clean, counts = scrub(sentence)
        gone += value not in clean
        # only the value changed: the words around it are all still there
        prefix, suffix = sentence.split(value)
        assert clean.startswith(prefix) and clean.endswith(suffix), (sentence, clean)
        if value not in clean:
            assert counts[kind] == 1, (sentence, counts)
    recall = gone / len(planted)
    print(f"{kind}: recall {recall:.3f} over {len(planted)} values in {len(LOCALES)} locales")
    assert recall >= required


NEGATIVES = [
    "The film came out in 1984 and the sequel in 1999.",
    "Released on 2024-05-01 at 10:30, patched 01.06.2024.",
    "Upgrade to v3.11.7 or Python 3.12.1 first.",
    "It costs $1,234.56, or €1.299,00 in Berlin.",
    "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2.",
    "The years 1990-2000 and 2005 2006 2007 were good.",
    "IEEE standard 854-1987 defines it.",
    "Timestamp 1700000000 and pi 3.14159265 are numbers.",
    "La ville compte 1 234 567 habitants.",
    "Chapters 3 4 5 6 7 8 9 are optional.",
    "2005-01-26 23:30:50 is when it happened.",
    "Windows build 10.0.19041 shipped.",
    "The router is at 192.168.1.1, the NAS at 10.0.0.12 and localhost is 127.0.0.1.",
    "Docs use 203.0.113.7 and 198.51.100.23 as examples.",
    "Order #123456789 ships to room 4-12.",
    "Use the @dataclass decorator, or ``@property``.",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_negatives_are_untouched(text):
    assert scrub(text) == (text, {"email": 0, "ipv4": 0, "phone": 0})


def test_replacements_are_placeholders_and_scrub_is_idempotent():
    text = "Mail ann@mail.test or bob.smith@corp.test, call +1-202-555-0143 or +84 24 3825 4321, host 8.8.8.8."
    clean, counts = scrub(text)
    assert counts == {"email": 2, "ipv4": 1, "phone": 2}
    assert any(r in clean for r in EMAIL_REPLACEMENTS) and any(r in clean for r in IPV4_REPLACEMENTS)
    assert any(r in clean for r in PHONE_REPLACEMENTS)
    assert scrub(clean) == (clean, {"email": 0, "ipv4": 0, "phone": 0})
    assert scrub(text) == (clean, counts)  # deterministic: no counter carried between calls


def test_brief_phone_formats():
    for phone in [
        "+84 24 3825 4321",
        "(555) 123-4567",
        "555-123-4567",
        "0912-345-678",
        "+1-202-555-0143",
        "+44 20 7946 0958",
        "(460)648-7647x5938",
        "+33 (0)3 85 89 24 11",
        "+7 (824) 219-4892",
    ]:
        clean, counts = scrub(f"Number: {phone}.")
        assert phone not in clean and counts["phone"] == 1, phone


def test_cjk_text_glued_to_values():
    clean, counts = scrub("电话18166048764，邮箱rxue@example.com。")
    assert counts == {"email": 1, "ipv4": 0, "phone": 1}
    assert clean.startswith("电话") and clean.endswith("。")


def test_bare_digits_need_a_phone_word():
    assert is_phone("2125550143", before="please call ")
    assert not is_phone("2125550143", before="order number ")


def test_ip_classification():
    assert is_public_ipv4("8.8.8.8") and is_public_ipv4("150.242.145.239")
    for ip in (
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "192.0.2.1",
        "224.0.0.1",
    ):
        assert not is_public_ipv4(ip), ip
    assert scrub("8.8.8.8.8")[1]["ipv4"] == 0  # five parts: not an address
