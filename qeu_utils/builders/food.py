"""Category ``food``: dish names across languages and borders (食は国境を超える), from the
project's ``qeu_utils/data/sources/dishes.tsv``; the country of origin is named through CLDR."""

from __future__ import annotations

from pathlib import Path

from qeu_utils.builders.common import Group, choose, translation_records
from qeu_utils.core.records import make_record
from qeu_utils.text.sources import read_dishes

TASKS = {
    "ja_to_en": ("ja", "en", "ja>en", [
        "料理「{x}」は英語で何と言いますか？",
        "次の料理名を英語にしてください。",
    ]),
    "en_to_ja": ("en", "ja", "en>ja", [
        "英語の料理名「{x}」は日本語で何と言いますか？",
        "次の料理名を日本語にしてください。",
    ]),
    # Answered in Chinese, so asked in plain Japanese (the curriculum's plain ⇄ Chinese link).
    "ja_to_hans": ("ja", "zh_hans", "ja>zh-Hans", [
        "料理「{x}」を中国語（簡体字）で書いて。",
        "次の料理名を中国語の簡体字にして。",
    ]),
    "hans_to_ja": ("zh_hans", "ja", "zh-Hans>ja", [
        "中国語の料理名「{x}」は日本語で何と言いますか？",
        "次の中国語の料理名を日本語にしてください。",
    ]),
    "ja_to_hant": ("ja", "zh_hant", "ja>zh-Hant", [
        "料理「{x}」を中国語（繁体字）で書いて。",
        "次の料理名を中国語の繁体字にして。",
    ]),
}
# (question, answer): each answer answers the question it is paired with.
ORIGIN_TEMPLATES = [
    ("「{x}」はどこの国の料理ですか？", "{country}の料理です。"),
    ("「{x}」の発祥の国はどこですか？", "{country}です。"),
]
# task: (field asked about, lang, style of the record, (question, answer) templates)
ORIGIN_TASKS = {"origin": ("ja", "ja>ja", "polite", ORIGIN_TEMPLATES)}


def build_food(seed: int = 0, path: Path | None = None) -> list[Group]:
    groups = []
    for dish in read_dishes(path):
        key = dish["en"]
        records = translation_records("food", dish, key, TASKS, seed, "project")
        for task, (src, lang, style, templates) in ORIGIN_TASKS.items():
            question, answer = choose(templates, seed, "food", task, key)
            records.append(make_record(
                category="food", task=task, instruction=question.format(x=dish[src]),
                output=answer.format(country=dish["country_ja"]), lang=lang, style=style,
                source="project+cldr",
            ))
        groups.append(Group(key=key, records=records))
    return groups
