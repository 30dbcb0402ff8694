"""Category ``country``: country names in Japanese, English, Simplified and Traditional
Chinese (``qeu_utils.text.countries``: CLDR via Babel, with the project's overrides where CLDR's
name is a display form), asked both ways."""

from __future__ import annotations

from dataclasses import asdict

from qeu_utils.builders.common import Group, translation_records
from qeu_utils.text.countries import countries

# task: (from field, to field, lang, templates); {x} is the name asked about.
TASKS = {
    "ja_to_en": ("ja", "en", "ja>en", [
        "「{x}」を英語で言うと何ですか？",
        "国名「{x}」の英語名を答えてください。",
        "次の国名を英語にしてください。",
    ]),
    "en_to_ja": ("en", "ja", "en>ja", [
        "英語の国名「{x}」は日本語で何と言いますか？",
        "次の国名を日本語にしてください。",
    ]),
    # Answered in Chinese, so asked in plain Japanese (the curriculum's plain ⇄ Chinese link).
    "ja_to_hans": ("ja", "zh_hans", "ja>zh-Hans", [
        "「{x}」を中国語（簡体字）で書いて。",
        "次の国名を中国語の簡体字で書いて。",
    ]),
    "hans_to_ja": ("zh_hans", "ja", "zh-Hans>ja", [
        "中国語（簡体字）の国名「{x}」は日本語で何と言いますか？",
        "次の中国語の国名を日本語にしてください。",
    ]),
    "ja_to_hant": ("ja", "zh_hant", "ja>zh-Hant", [
        "「{x}」を中国語（繁体字）で書いて。",
        "次の国名を中国語の繁体字で書いて。",
    ]),
    "hant_to_ja": ("zh_hant", "ja", "zh-Hant>ja", [
        "中国語（繁体字）の国名「{x}」は日本語で何と言いますか？",
        "次の繁体字の国名を日本語にしてください。",
    ]),
}


def build_country(seed: int = 0) -> list[Group]:
    return [
        Group(key=c.code, records=translation_records("country", asdict(c), c.code, TASKS, seed,
                                                      "cldr"))
        for c in countries()
    ]
