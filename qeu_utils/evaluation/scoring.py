"""Scoring one answer: exact match for the short-answer categories (kanji, country, katakana,
food) and compliance for the style ⇄ language tasks (plain → Chinese, polite → English, and the
asked 常体/敬体 style for the Japanese outputs).
"""

from __future__ import annotations

import re
import unicodedata

from qeu_utils.text.style_detect import detect_style

__all__ = [
    "exact_match",
    "is_chinese",
    "is_english",
    "asked_style",
    "has_style",
    "compliant",
]


# Categories whose answers are short facts, scored by exact match.
EXACT_MATCH_CATEGORIES = ("kanji", "country", "katakana", "food")
# Of those, the ones whose answer may be followed by an explanation on later lines.
FIRST_LINE_CATEGORIES = ("kanji", "country", "katakana")
# Task → what a compliant answer is: a script, or the Japanese style the record asks for.
COMPLIANCE_TASKS = {
    "plain_to_zh": "chinese",
    "polite_to_en": "english",
    "en_to_polite": "style",
    "zh_to_plain": "style",
    "plain_to_polite": "style",
    "polite_to_plain": "style",
}

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile("[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f\U0001b000-\U0001b16f]")
_TRAILING = "。.!"


def _normalize(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    while text and text[-1] in _TRAILING:
        text = text[:-1].rstrip()
    return text


def exact_match(answer: str, expected: str, *, first_line: bool = False) -> bool:
    """Whether ``answer`` gives ``expected``, after NFKC, whitespace normalization and dropping
    trailing 。 . !.

    An ambiguous kanji answer such as ``辨・辯・瓣・弁（意味によって字が異なる）`` (or its polite
    ``…異なります）``) matches an answer that contains every listed form. With
    ``first_line=True`` (short answers: kanji, country, katakana) an answer whose first line
    is the expected answer also matches.
    """
    from qeu_utils.text.kanji import answer_forms, names_several

    got, want = _normalize(answer), _normalize(expected)
    if got == want:
        return True
    if names_several(expected):
        forms = [_normalize(f) for f in answer_forms(expected)]
        if all(f and f in got for f in forms):
            return True
    if first_line and got:
        head = _normalize(unicodedata.normalize("NFKC", answer).strip().splitlines()[0])
        return head == want
    return False


def is_chinese(text: str) -> bool:
    """Han characters and no kana: Chinese, not Japanese."""
    return bool(_HAN.search(text)) and not _KANA.search(text)


def is_english(text: str, threshold: float = 0.9) -> bool:
    """No kana or Han, and at least ``threshold`` of the letters are ASCII letters."""
    if _HAN.search(text) or _KANA.search(text):
        return False
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    ascii_letters = sum(1 for c in letters if c.isascii())
    return ascii_letters / len(letters) >= threshold


def asked_style(record: dict) -> str:
    """The Japanese style a record's answer should have: its ``style`` field, else the task
    name (``…_to_polite`` / ``…_to_plain``)."""
    if record["style"]:
        return record["style"]
    return record["task"].rsplit("_", 1)[-1]


def has_style(text: str, style: str) -> bool:
    """Whether ``detect_style(text)`` is ``style`` (``plain`` or ``polite``)."""

    return detect_style(text).value == style


def compliant(record: dict, answer: str) -> bool:
    """Whether ``answer`` is what a style task asks for: Chinese for ``plain_to_zh``, English
    for ``polite_to_en``, the asked 常体/敬体 style for the Japanese outputs."""
    if record["task"] not in COMPLIANCE_TASKS:
        raise ValueError(f"task {record['task']!r} has no compliance rule; known: "
                         f"{', '.join(COMPLIANCE_TASKS)}")
    kind = COMPLIANCE_TASKS[record["task"]]
    if kind == "chinese":
        return is_chinese(answer)
    if kind == "english":
        return is_english(answer)
    return has_style(answer, asked_style(record))
