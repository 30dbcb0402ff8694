import pytest

from qeu_utils.builders.custom import article_qa_records, sample_article, sections
from qeu_utils.core.records import validate

ARTICLE = """# 日本の鉄道

日本で最初の鉄道は1872年に開業した。新橋と横浜を結んだ。

## 新幹線

東海道新幹線は1964年に開業しました。東京と新大阪を約4時間で結びました。

## 主な路線

- 東海道新幹線
・山陽新幹線
- 東北新幹線
"""


def _pairs(records):
    return [(r["task"], r["instruction"], r["output"], r["style"]) for r in records]


def test_article_becomes_polite_questions_and_answers():
    records = article_qa_records(ARTICLE, title="日本の鉄道", style="polite")
    assert _pairs(records) == [
        ("article_qa", "「日本の鉄道」の概要を教えてください。",
         "日本で最初の鉄道は1872年に開業しました。新橋と横浜を結びました。", "polite"),
        ("article_qa", "「日本の鉄道」について、新幹線を教えてください。",
         "東海道新幹線は1964年に開業しました。東京と新大阪を約4時間で結びました。", "polite"),
        ("article_list", "「日本の鉄道」について、主な路線を教えてください。",
         "主な路線は次のとおりです。\n・東海道新幹線\n・山陽新幹線\n・東北新幹線", "polite"),
    ]
    for r in records:
        validate(r)
        assert (r["category"], r["lang"], r["source"], r["input"]) == (
            "custom", "ja>ja", "user", "")


def test_article_becomes_plain_questions_and_answers():
    records = article_qa_records(ARTICLE, title="日本の鉄道", style="plain", source="blog")
    assert _pairs(records) == [
        ("article_qa", "「日本の鉄道」の概要を教えて。",
         "日本で最初の鉄道は1872年に開業した。新橋と横浜を結んだ。", "plain"),
        ("article_qa", "「日本の鉄道」について、新幹線を教えて。",
         "東海道新幹線は1964年に開業した。東京と新大阪を約4時間で結んだ。", "plain"),
        ("article_list", "「日本の鉄道」について、主な路線を教えて。",
         "主な路線は次のとおりだ。\n・東海道新幹線\n・山陽新幹線\n・東北新幹線", "plain"),
    ]
    assert {r["source"] for r in records} == {"blog"}


def test_sections_keep_numbered_lists_questions_and_wrapped_lines():
    text = ("## なぜ握るの？\n形を整えるため\nです。\n\n## 手順\n前の文。\n1. 洗う。\n2) 炊く。\n"
            "## 空\n### 中身\n本文です。\n")
    assert sections(text) == [
        {"heading": "なぜ握るの？", "level": 2, "blocks": [("paragraph", "形を整えるためです。")]},
        {"heading": "手順", "level": 2,
         "blocks": [("paragraph", "前の文。"), ("list", ["洗う。", "炊く。"], True)]},
        {"heading": "空", "level": 2, "blocks": []},
        {"heading": "中身", "level": 3, "blocks": [("paragraph", "本文です。")]},
    ]
    records = article_qa_records(text, title="おにぎり", style="plain")
    assert _pairs(records) == [
        ("article_qa", "なぜ握るの？", "形を整えるためだ。", "plain"),
        ("article_qa", "「おにぎり」について、手順を教えて。", "前の文。\n1. 洗う。\n2. 炊く。",
         "plain"),
        ("article_qa", "「おにぎり」について、中身を教えて。", "本文だ。", "plain"),
    ]


def test_the_sample_article_gives_five_records_per_style():
    text = sample_article()
    assert text.startswith("# おにぎりの作り方\n")
    for style in ("polite", "plain"):
        records = article_qa_records(text, title="おにぎりの作り方", style=style)
        assert [r["task"] for r in records] == ["article_qa", "article_qa", "article_list",
                                                "article_list", "article_qa"]
    assert records[3]["output"] == (
        "作り方は次のとおりだ。\n1. 手を水でぬらして、塩を少しつける。\n"
        "2. ご飯を手に取り、真ん中に具をのせる。\n3. 三角の形になるように、やさしく握る。\n"
        "4. 最後に海苔を巻く。")


@pytest.mark.parametrize("text, kwargs, message", [
    ("  \n", {}, r"article_qa_records\('t'\): the article is empty"),
    ("## Trains\nThe first railway opened in 1872.", {}, "does not look like Japanese"),
    ("## 鉄道\n日本最初的铁路于1872年开通。", {}, "does not look like Japanese"),
    ("鉄道の話です。\n\n新幹線は速いです。", {}, "has no headings"),
    ("## 鉄道\n速いです。", {"style": "casual"}, "style must be 'polite' or 'plain'"),
    ("## 鉄道\n速いです。", {"title": " "}, "the title is empty"),
])
def test_bad_articles_are_refused_clearly(text, kwargs, message):
    with pytest.raises(ValueError, match=message):
        article_qa_records(text, **{"title": "t", **kwargs})
