"""Strings the tokenizer tests encode: several scripts, emoji, code, specials, odd whitespace."""

MULTILINGUAL = [
    "Tiếng Việt có dấu: người, được, những, Hà Nội.",
    "我们的语言模型会把文字切成词元。",
    "Émoji: 🤖🎉👍🏽 and ñandú, straße, Москва.",
]

# Strings the tests encode; most are not in the training text.
PROBES = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Tiếng Việt có dấu",
    "我们的语言模型",
    "🤖🎉👍🏽",
    "<|im_start|>user\nXin chào 你好 🤖<|im_end|>\n<|im_start|>assistant\n",
    "a  b   c\t\td\n\n\n  e    ",
    "   leading and trailing   ",
    "Call 0912-345-678 or +84 24 3825 4321 before 2026.",
    "def f(x):\n    return {'k': [x ** 2, 3.14]}  # sq\n",
    "don't WE'LL they've I'd",
    "<|endoftext|><|endoftext|>",
    "",
]
