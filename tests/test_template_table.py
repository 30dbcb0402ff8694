"""``template_table`` is read from the builders, so it says what the records are: every task a
build emits is in it, and every record's instruction is one of its task's rows."""

import re

import pytest

from qeu_utils.builders import country, food, kanji, katakana, style
from qeu_utils.builders.common import flatten
from qeu_utils.builders.templates import CATEGORIES, REGISTERS, template_table

BUILDS = {"style": style.build_style, "katakana": katakana.build_katakana,
          "country": country.build_country, "kanji": kanji.build_kanji, "food": food.build_food}
ANSWER_LANGUAGE = {"ja": "日本語", "en": "英語", "zh": "中国語", "zh-Hans": "中国語（簡体字）",
                   "zh-Hant": "中国語（繁体字）", "ja-Latn": "ローマ字"}


def _rows(category: str, task: str) -> list[dict]:
    return [r for r in template_table(category) if r["task"] == task]


def _matches(template: str, instruction: str) -> bool:
    """``{x}`` in a template stands for the item asked about."""
    pattern = ".+".join(re.escape(part) for part in template.split("{x}"))
    return re.fullmatch(pattern, instruction) is not None


def test_plain_to_zh_is_asked_in_plain_japanese_and_answered_in_chinese():
    assert _rows("style", "plain_to_zh") == [
        {"task": "plain_to_zh", "instruction": instruction, "input": "普通体の日本語",
         "answer_language": "中国語", "register": "普通体"}
        for instruction in style.TASKS["plain_to_zh"][4]
    ]
    assert [r["instruction"] for r in _rows("style", "plain_to_zh")] == [
        "次の文を中国語に訳して。", "この日本語を中国語にして。", "中国語に翻訳して。"]


def test_polite_to_en_and_a_word_task_with_no_register():
    assert {(r["input"], r["answer_language"], r["register"])
            for r in _rows("style", "polite_to_en")} == {("敬体の日本語", "英語", "敬体")}
    rows = _rows("country", "ja_to_hans")
    assert [r["instruction"] for r in rows] == ["「{x}」を中国語（簡体字）で書いて。",
                                                "次の国名を中国語の簡体字で書いて。"]
    assert {(r["input"], r["answer_language"], r["register"]) for r in rows} == {
        ("日本語", "中国語（簡体字）", "—")}


def test_food_origin_lists_the_questions_not_the_answers():
    rows = _rows("food", "origin")
    assert [r["instruction"] for r in rows] == [q for q, _ in food.ORIGIN_TEMPLATES]
    assert {r["register"] for r in rows} == {"敬体"}


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_record_a_build_makes_is_described_by_the_table(category):
    table = template_table(category)
    assert table
    assert all(set(r) == {"task", "instruction", "input", "answer_language", "register"}
               for r in table)
    records = flatten(BUILDS[category](seed=0))
    assert {r["task"] for r in records} == {r["task"] for r in table}
    for record in records:
        rows = [r for r in table if r["task"] == record["task"]]
        assert any(_matches(r["instruction"], record["instruction"]) for r in rows), record
        answer = ANSWER_LANGUAGE[record["lang"].split(">")[1]]
        assert {(r["answer_language"], r["register"]) for r in rows} == {
            (answer, REGISTERS[record["style"]])}, record


def test_every_template_of_a_task_is_used_by_some_record():
    records = [r for c in CATEGORIES for r in flatten(BUILDS[c](seed=0))]
    for category in CATEGORIES:
        for row in template_table(category):
            assert any(r["category"] == category and r["task"] == row["task"]
                       and _matches(row["instruction"], r["instruction"]) for r in records), row


def test_an_unknown_category_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"'dolly'.*style, katakana, country, kanji, food"):
        template_table("dolly")
