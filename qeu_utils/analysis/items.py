"""The items the analysis measures, from the project's real sources.

:func:`kanji_items`, :func:`country_items`, :func:`loanword_items` and :func:`sentence_items`
give tuples of matched forms (Japanese, Chinese, English), seeded samples in a stable order.
Items a model was trained on are told apart from the rest with :func:`kanji_forms_in` and
:func:`split_seen`: a model that has seen 鉄 → 铁 in training proves nothing about recognition
when it aligns them.
"""

from __future__ import annotations

import random
import re

from qeu_utils.text.katakana import harvest_loanwords
from qeu_utils.text.sources import loanword_texts, read_trilingual

__all__ = [
    "kanji_items",
    "country_items",
    "loanword_items",
    "sentence_items",
    "kanji_forms_in",
    "split_seen",
    "seeded_sample",
]


def seeded_sample(rows: list, n: int | None, seed: int) -> list:
    """A seeded sample of ``n`` rows kept in their original order (all rows when None)."""
    if n is None or n >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def kanji_items(n: int | None = None, seed: int = 0, *,
                differ: str = "all") -> list[tuple[str, str, str]]:
    """``(japanese, simplified, traditional)`` for Jōyō kanji whose Traditional form is not
    ambiguous, in code point order: with ``differ="all"`` those whose three forms are all
    different (鉄 铁 鐵), with ``differ="hans"`` every one whose Japanese and Simplified forms
    differ (国 国 國 is out, 説 说 說 in). Characters written alike are left out: identical
    strings would be trivially identical vectors."""
    from qeu_utils.text.kanji import joyo_kanji, variants

    if differ not in ("all", "hans"):
        raise ValueError(f"differ must be 'all' or 'hans', got {differ!r}")
    rows = []
    for char in joyo_kanji():
        v = variants(char)
        forms = (v.japanese, v.simplified, v.traditional)
        keep = len(set(forms)) == 3 if differ == "all" else v.japanese != v.simplified
        if not v.ambiguous and keep:
            rows.append(forms)
    return seeded_sample(rows, n, seed)


def country_items(n: int | None = None, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """``(ja, zh_hans, zh_hant, en)`` names of the 195 sovereign countries, by ISO code."""
    from qeu_utils.text.countries import countries

    return seeded_sample([(c.ja, c.zh_hans, c.zh_hant, c.en) for c in countries()], n, seed)


def loanword_items(n: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """``(katakana, english)`` loanwords harvested from the project's texts, as the katakana
    dataset builder finds them (same order)."""

    found = harvest_loanwords(loanword_texts())
    return seeded_sample(list(found.items()), n, seed)


def sentence_items(n: int | None = None, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """``(plain, polite, zh, en)`` rows of the project's trilingual sentences."""

    rows = [(r["plain"], r["polite"], r["zh"], r["en"]) for r in read_trilingual()]
    return seeded_sample(rows, n, seed)


_QUOTED = re.compile("「([^「」]+)」")


def kanji_forms_in(records) -> set[str]:
    """Every kanji form a set of records asks about or answers in its ``kanji`` category: the
    quoted 「x」 or the ``input`` of the question and each form of the answer
    (``辨・辯・瓣・弁（…）`` gives four). Words of the instructions do not count; kanji inside
    sentences of other categories do not either (they are text, not the item taught)."""
    from qeu_utils.text.kanji import answer_forms

    forms: set[str] = set()
    for record in records:
        if record["category"] != "kanji":
            continue
        forms.update(_QUOTED.findall(record["instruction"]))
        if record["input"]:
            forms.add(record["input"])
        forms.update(answer_forms(record["output"]))
    return forms


def split_seen(items: list[tuple], seen: set[str]) -> tuple[list[tuple], list[tuple]]:
    """``(seen_items, unseen_items)``: an item (a tuple of forms, e.g. from
    :func:`kanji_items`) is seen when any of its forms is in ``seen``; order is kept, and no
    item is on both sides."""
    seen_items = [item for item in items if any(form in seen for form in item)]
    unseen_items = [item for item in items if not any(form in seen for form in item)]
    return seen_items, unseen_items
