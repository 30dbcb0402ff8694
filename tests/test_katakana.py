"""Tests for qeu_utils.text.katakana: the kana table, loanword detection and annotation."""

import dataclasses
import subprocess
import sys
import unicodedata
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeu_utils.text import jmdict, katakana
from qeu_utils.text.katakana import Loanword, annotate_loanwords, find_loanwords, kana_table

# ---------------------------------------------------------------- kana table


def test_kana_table_counts_per_group():
    # Modern 46-kana gojūon (ア–ン with ヲ and ン, without obsolete ヰ ヱ).
    counts = Counter(row.group for row in kana_table())
    assert counts == {"gojuon": 46, "dakuten": 20, "handakuten": 5, "small": 10, "yoon": 33}
    assert len({row.katakana for row in kana_table()}) == 114


def test_kana_table_known_rows():
    rows = {row.katakana: row for row in kana_table()}
    assert rows["シャ"] == katakana.KanaRow("シャ", "しゃ", "sha", "yoon")
    assert rows["ヂ"] == katakana.KanaRow("ヂ", "ぢ", "ji", "dakuten")
    assert rows["ヲ"] == katakana.KanaRow("ヲ", "を", "wo", "gojuon")
    assert rows["ン"] == katakana.KanaRow("ン", "ん", "n", "gojuon")
    hepburn = {"ツ": "tsu", "フ": "fu", "チ": "chi", "シ": "shi", "ヅ": "zu", "ジョ": "jo"}
    assert {k: rows[k].romaji for k in hepburn} == hepburn
    assert rows["ピョ"] == katakana.KanaRow("ピョ", "ぴょ", "pyo", "yoon")
    assert rows["ッ"] == katakana.KanaRow("ッ", "っ", "", "small")


def test_kana_table_traditional_order():
    table = kana_table()
    assert "".join(r.katakana for r in table[:10]) == "アイウエオカキクケコ"
    assert [r.group for r in table] == sorted(
        (r.group for r in table),
        key=["gojuon", "dakuten", "handakuten", "small", "yoon"].index,
    )
    assert table[-1].katakana == "ピョ"


def test_kana_table_hiragana_matches_unicode_names():
    # An independent check of the offset derivation: the Unicode names must agree.
    for row in kana_table():
        for k, h in zip(row.katakana, row.hiragana, strict=True):
            assert unicodedata.name(k).replace("KATAKANA", "HIRAGANA") == unicodedata.name(h)


def test_kana_rows_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        kana_table()[0].romaji = "x"


# ---------------------------------------------------------------- find_loanwords


def test_find_simple_loanword():
    assert find_loanwords("コーヒーを飲む") == [Loanword("コーヒー", (0, 4), "coffee", "en")]


@pytest.mark.parametrize(
    "text, surface, english",
    [
        ("スマートフォンを買い替えた。", "スマートフォン", "smartphone"),
        ("アイスクリームが溶けた。", "アイスクリーム", "ice cream"),
        ("朝はオレンジジュースを飲む。", "オレンジジュース", "orange juice"),
        # Not in the project TSV: the whole compound is found in JMdict.
        ("コーヒーカップを洗う。", "コーヒーカップ", "coffee cup"),
        ("サッカーボールを蹴る。", "サッカーボール", "soccer ball"),
        # Joined by a middle dot, still one word.
        ("オレンジ・ジュースをください。", "オレンジ・ジュース", "orange juice"),
    ],
)
def test_compounds_are_one_word(text, surface, english):
    (word,) = find_loanwords(text)
    assert (word.surface, word.english, word.origin) == (surface, english, "en")
    assert text[word.span[0] : word.span[1]] == surface


def test_english_pieces_compose_into_a_compound():
    # No dictionary entry for the whole word: the English loans' glosses are the words.
    assert find_loanwords("マカロニチーズを作った。") == [
        Loanword("マカロニチーズ", (0, 7), "macaroni cheese", "en")]
    assert find_loanwords("スパニッシュオムレツ") == [
        Loanword("スパニッシュオムレツ", (0, 10), "Spanish omelette", "en")]


def test_glosses_of_non_english_pieces_are_not_strung_together(monkeypatch):
    # Without the project's row, スンドゥブチゲ was スンドゥブ ("sundubu", a romanization) +
    # チゲ ("Korean stew", a description): "sundubu Korean stew" is no English.
    table = katakana._project_table()
    monkeypatch.setattr(katakana, "_project_table",
                        lambda: {k: v for k, v in table.items() if k != "スンドゥブチゲ"})
    assert find_loanwords("スンドゥブチゲを食べた。") == [
        Loanword("スンドゥブチゲ", (0, 7), None, None)]
    assert annotate_loanwords("スンドゥブチゲを食べた。") == "スンドゥブチゲを食べた。"


@pytest.mark.parametrize(
    "text, english, origin",
    [
        # dish names whose English JMdict has only in pieces or in a later sense (project TSV)
        ("スンドゥブチゲを食べた。", "soft tofu stew", "ko"),
        ("キムチチゲは辛い。", "kimchi stew", "ko"),
        ("オニオングラタンスープを頼む。", "French onion soup", "en"),
        ("フォーを食べた。", "pho", "vi"),  # JMdict's first sense is "four"
        ("カオパットを食べた。", "Thai fried rice", "th"),  # not パット, "putt"
    ],
)
def test_dish_names_get_real_english(text, english, origin):
    (word,) = find_loanwords(text)
    assert (word.english, word.origin) == (english, origin)
    assert word.span[0] == 0


@pytest.mark.parametrize(
    "text, english, origin",
    [
        ("アルバイトを探している。", "part-time job", "de"),  # Arbeit (project TSV)
        ("エネルギーを節約する。", "energy", "de"),  # Energie (project TSV)
        ("パンを焼く。", "bread", "pt"),  # pão (project TSV)
        ("ランドセルを背負う。", "school backpack", "nl"),  # ransel (project TSV)
        ("ラーメンを食べる。", "ramen", "zh"),  # not Rahmen, UniDic's gloss
        ("ピアノを弾く。", "piano", "it"),  # JMdict lsource
        ("ウオッカを飲む。", "vodka", "ru"),  # JMdict lsource
        ("オブラートに包む。", "paper-thin wafer", "nl"),  # JMdict lsource
    ],
)
def test_non_english_origin_gets_english_meaning(text, english, origin):
    (word,) = find_loanwords(text)
    assert (word.english, word.origin) == (english, origin)


@pytest.mark.parametrize(
    "text",
    [
        "ネコがカタカナの本の上で寝ている。",  # native words written in katakana
        "試験の前は胸がドキドキする。",  # onomatopoeia
        "ドキドキワクワクした。",
        "トヨタの本社は愛知県にある。",  # Japanese proper noun
        "今日は天気がいい。",  # no katakana at all
        "",
    ],
)
def test_not_loanwords(text):
    assert find_loanwords(text) == []
    assert annotate_loanwords(text) == text


def test_spans_slice_back_to_surface():
    text = "トヨタの社員は、ネコを見ながらノートパソコンでメールを書き、コーヒーを飲んだ。"
    words = find_loanwords(text)
    assert [w.surface for w in words] == ["ノートパソコン", "メール", "コーヒー"]
    for w in words:
        assert text[w.span[0] : w.span[1]] == w.surface
    assert [w.span for w in words] == sorted(w.span for w in words)


def test_whole_katakana_stretch_found_in_jmdict_is_one_word():
    # UniDic splits it as インフル (外, "influenza") + エンサー (a proper noun).
    assert find_loanwords("インフルエンサーが増えた。") == [
        Loanword("インフルエンサー", (0, 8), "influencer", "en")
    ]


def test_project_list_covers_words_unidic_does_not_know():
    assert find_loanwords("スマホを落とした。") == [Loanword("スマホ", (0, 3), "smartphone", "en")]


def test_part_of_a_stretch_gets_english_only_from_a_dictionary():
    # リスキリング: UniDic reads リス (squirrel) + キリング (killing); only キリング is 外.
    assert find_loanwords("リスキリングが話題だ。") == [Loanword("キリング", (2, 6), None, None)]
    assert annotate_loanwords("リスキリングが話題だ。") == "リスキリングが話題だ。"
    # ネコ (native) + カフェ: カフェ has its own JMdict entry.
    assert annotate_loanwords("ネコカフェに行く。") == "ネコカフェ(café)に行く。"


def test_loanword_glued_to_a_proper_noun_is_not_annotated():
    assert annotate_loanwords("トヨタカローラを運転する。") == "トヨタカローラを運転する。"


def test_proper_noun_and_unit_in_a_real_sentence_stay_unannotated():
    # 東京スカイツリー: UniDic reads スカイ + ツリー (both 外) and has no entry for the name,
    # but 東京 right before it is a proper noun. 634メートル: メートル is a unit after a number.
    text = "東京スカイツリーの高さは634メートルです。"
    assert annotate_loanwords(text) == text
    assert find_loanwords(text) == [
        Loanword("スカイツリー", (2, 8), None, None),
        Loanword("メートル", (15, 19), "metre", "fr", unit=True),
    ]
    text = "東京スカイツリーの高さは634メートルで、受付ではコンピューターを使っています。"
    assert annotate_loanwords(text) == (
        "東京スカイツリーの高さは634メートルで、受付ではコンピューター(computer)を使っています。"
    )


@pytest.mark.parametrize(
    "text",
    [
        "音は空気中を一秒間に約三百四十メートル進みます。",  # kanji numerals
        "光の速さは秒速約三十万キロメートルです。",
        "毎朝5キロ走る。",
        "駅まで1,000メートルある。",
        "消費税は10パーセントです。",
        "東京タワーの高さは333メートルです。",  # a name and a unit
        "東京スカイツリーの高さは何メートルですか？",  # 何 asks for a number (Dolly sample)
        "気温が数パーセント上がった。",
    ],
)
def test_names_and_units_after_numbers_are_not_annotated(text):
    assert annotate_loanwords(text) == text


def test_a_unit_word_not_after_a_number_is_still_annotated():
    assert annotate_loanwords("メートル法を使う国が多い。") == "メートル(metre)法を使う国が多い。"
    assert annotate_loanwords("コーヒーを2杯飲んだ。") == "コーヒー(coffee)を2杯飲んだ。"


def test_unidic_gloss_is_used_for_a_word_jmdict_lacks():
    assert find_loanwords("キリング") == [Loanword("キリング", (0, 4), "killing", None)]


@pytest.mark.parametrize(
    "lemma, english",
    [
        ("キリング-killing", "killing"),
        ("パソコン-personal computer", "personal computer"),
        ("アルバイト-Arbeit", None),  # German
        ("ラーメン-Rahmen", None),  # capitalised, though "Rahmen" is a JMdict gloss
        ("パン-pao", None),  # Portuguese pão without its tilde
        ("イクラ-ikra", None),  # Russian
        ("ランドセル-ransel", None),  # Dutch
        ("猫", None),  # no gloss at all
    ],
)
def test_unidic_gloss_is_english_only_when_jmdict_knows_the_words(lemma, english):
    token = katakana._Token(0, 0, lemma, is_loan=True, is_name=False)
    assert katakana._unidic_english(token) == english


def test_project_list_rows_are_loanwords_with_jmdict_origins():
    table = katakana._project_table()
    assert len(table) >= 40
    # JMdict leaves these two unmarked (so "en"); Japanese dictionaries give German.
    unmarked_in_jmdict = {"ギプス", "ゼミ"}
    # Dish names JMdict has only in pieces (see the TSV's header), and フォー, whose first
    # JMdict sense is the English "four" (its "pho" sense is marked Vietnamese).
    no_entry = {"スンドゥブチゲ", "キムチチゲ", "オニオングラタンスープ", "カオパット"}
    for kana, (english, origin) in table.items():
        assert [(w.surface, w.english, w.origin) for w in find_loanwords(kana + "を")] == [
            (kana, english, origin)
        ]
        if kana in no_entry:
            assert jmdict.lookup(kana) is None, kana
            continue
        if kana == "フォー":
            assert jmdict.lookup(kana) == ("four", "en")
            continue
        jmdict_origin = jmdict.lookup(kana)[1]
        assert jmdict_origin == ("en" if kana in unmarked_in_jmdict else origin), kana


def test_real_sentences():
    text = (
        "ジョンはニューヨークのホテルでコーヒーとサンドイッチを注文し、"
        "スマートフォンでメールを確認した。"
    )
    assert annotate_loanwords(text) == (
        "ジョンはニューヨークのホテル(hotel)でコーヒー(coffee)とサンドイッチ(sandwich)を注文し、"
        "スマートフォン(smartphone)でメール(email)を確認した。"
    )
    text = "週末はアルバイトの後、友達とカラオケに行ってビールを飲みました。"
    assert annotate_loanwords(text) == (
        "週末はアルバイト(part-time job)の後、友達とカラオケに行ってビール(beer)を飲みました。"
    )
    assert [w.origin for w in find_loanwords(text)] == ["de", "nl"]


# ---------------------------------------------------------------- annotate_loanwords


@pytest.mark.parametrize(
    "text, expected",
    [
        ("コーヒーを飲む", "コーヒー(coffee)を飲む"),
        (
            "スマートフォンでアルバイトを探す。",
            "スマートフォン(smartphone)でアルバイト(part-time job)を探す。",
        ),
        (
            "アイスクリームとオレンジジュースを買った。",
            "アイスクリーム(ice cream)とオレンジジュース(orange juice)を買った。",
        ),
        ("トヨタの新しいテレビを見た。", "トヨタの新しいテレビ(television)を見た。"),
        ("ネコがドキドキしながらパンを食べた。", "ネコがドキドキしながらパン(bread)を食べた。"),
    ],
)
def test_annotate(text, expected):
    assert annotate_loanwords(text) == expected


def test_annotate_custom_format():
    assert annotate_loanwords("コーヒーを飲む", fmt="{word}[{english}]") == "コーヒー[coffee]を飲む"


@pytest.mark.parametrize(
    "text",
    [
        "コーヒー(coffee)を飲む",
        "コーヒー（珈琲）を飲む",
        "スマートフォン(smartphone)でアルバイト(part-time job)を探す。",
    ],
)
def test_already_annotated_is_unchanged(text):
    assert annotate_loanwords(text) == text


def test_custom_format_is_idempotent():
    once = annotate_loanwords("アルバイトの後でコーヒーを飲む", fmt="{word}[{english}]")
    assert once == "アルバイト[part-time job]の後でコーヒー[coffee]を飲む"
    assert annotate_loanwords(once, fmt="{word}[{english}]") == once


def test_source_language_word_is_never_shown_as_english():
    text = "アルバイトの後でラーメンとパンとイクラを食べた。"
    assert annotate_loanwords(text) == (
        "アルバイト(part-time job)の後でラーメン(ramen)とパン(bread)とイクラ(salmon roe)を食べた。"
    )


def test_without_jmdict_only_the_project_list_gives_english(monkeypatch):
    # What a user without jamdict-data gets: no UniDic gloss is trusted on its own.
    monkeypatch.setattr(jmdict, "_jmdict", lambda: None)
    jmdict.lookup.cache_clear()
    jmdict.is_english_gloss_word.cache_clear()
    try:
        words = find_loanwords("アルバイトの後でコーヒーを飲む")
        assert [(w.surface, w.english) for w in words] == [
            ("アルバイト", "part-time job"),
            ("コーヒー", None),
        ]
        assert annotate_loanwords("コーヒーを飲む") == "コーヒーを飲む"
    finally:
        jmdict.lookup.cache_clear()
        jmdict.is_english_gloss_word.cache_clear()


def test_tagger_is_not_created_at_import():
    code = "import sys, qeu_utils.text.katakana; print('fugashi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_odd_input_is_handled():
    # NUL and lone surrogates cannot reach MeCab; offsets must still be those of the input.
    text = "\x00コーヒー\ud800を飲む"
    assert find_loanwords(text) == [Loanword("コーヒー", (1, 5), "coffee", "en")]
    assert annotate_loanwords(text) == "\x00コーヒー(coffee)\ud800を飲む"


# ---------------------------------------------------------------- properties

_WORDS = [
    "コーヒー",
    "スマートフォン",
    "アルバイト",
    "ネコ",
    "ドキドキ",
    "トヨタ",
    "パン",
    "テレビ",
    "オレンジ",
    "ジュース",
    "・",
    "を飲む",
    "の",
    "と",
    "。",
    "(",
    ")",
    "（",
    "）",
    "coffee",
    " ",
    "\n",
    "日本語",
    "ー",
    "ン",
    "ヴ",
]
_japanese_ish = st.lists(
    st.one_of(
        st.sampled_from(_WORDS),
        st.text(alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x30FF), max_size=4),
    ),
    max_size=12,
).map("".join)


@given(st.one_of(st.text(max_size=40), _japanese_ish))
def test_total_on_arbitrary_text(text):
    words = find_loanwords(text)
    for w in words:
        assert text[w.span[0] : w.span[1]] == w.surface
    assert isinstance(annotate_loanwords(text), str)


@given(_japanese_ish)
def test_annotation_is_idempotent(text):
    once = annotate_loanwords(text)
    assert annotate_loanwords(once) == once
