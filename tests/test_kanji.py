"""Tests for qeu_utils.text.kanji on real characters, the Jōyō list and arbitrary input."""

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeu_utils.text.kanji import KanjiVariants, differs, joyo_kanji, variants


@pytest.mark.parametrize(
    ("char", "traditional", "simplified"),
    [
        ("鉄", "鐵", "铁"),
        ("広", "廣", "广"),
        ("学", "學", "学"),
        ("国", "國", "国"),
        ("発", "發", "发"),
        ("髪", "髮", "发"),
        ("山", "山", "山"),
        # The Japanese glyph is also Chinese, so it wins over the old form jp2t prefers.
        ("真", "真", "真"),
        ("研", "研", "研"),
        # The Japanese glyph is Japanese-only: the Chinese one is chosen, and simplified with it.
        ("値", "值", "值"),
        ("査", "查", "查"),
        ("衛", "衛", "卫"),
    ],
)
def test_unambiguous_forms(char, traditional, simplified):
    v = variants(char)
    assert (v.japanese, v.traditional, v.simplified) == (char, traditional, simplified)
    assert not v.ambiguous
    assert v.traditional in v.candidates


def test_hatsu_is_only_hatsu():
    # 発 (発する) and 髪 (hair) both simplify to 发, but each has one Traditional form.
    assert variants("発").candidates == ("發",)
    assert variants("髪").candidates == ("髮",)


def test_ben_has_three_traditional_words():
    v = variants("弁")
    assert v.ambiguous
    assert {"辨", "辯", "瓣"} <= set(v.candidates)
    assert v.traditional == "辨"  # OpenCC's default


@pytest.mark.parametrize(
    ("char", "old_form"),
    [("芸", "藝"), ("予", "豫"), ("欠", "缺"), ("余", "餘"), ("台", "臺")],
)
def test_japanese_form_is_another_chinese_word(char, old_form):
    v = variants(char)
    assert v.ambiguous
    assert v.candidates == (old_form, char)
    assert v.traditional == old_form


def test_simplified_of_ambiguous_follows_traditional():
    assert variants("芸").simplified == "艺"
    assert variants("台").simplified == "台"


def test_glyph_variants_are_not_ambiguous():
    # 濕 and 溼 are one Chinese word; 真 and 眞 too.
    assert not variants("湿").ambiguous
    assert not variants("真").ambiguous


def test_result_type_is_frozen():
    v = variants("鉄")
    assert isinstance(v, KanjiVariants)
    with pytest.raises(AttributeError):
        v.traditional = "x"


def test_differs():
    assert differs("鉄")
    assert differs("学")  # 學 differs even though the Simplified form is the Japanese one
    assert not differs("山")


def test_compatibility_ideograph_is_normalized():
    assert variants("\uf900").japanese == "豈"


def test_import_does_no_work():
    code = "import qeu_utils.text.kanji as k; print(k._dictionary.cache_info().currsize)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_joyo_list():
    kanji = joyo_kanji()
    assert len(kanji) == 2136
    assert len(set(kanji)) == 2136
    assert kanji == sorted(kanji)
    assert kanji[:3] == ["一", "丁", "七"]
    assert {"鉄", "弁", "芸", "山", "塡"} <= set(kanji)


def test_every_joyo_kanji_resolves():
    results = [variants(char) for char in joyo_kanji()]
    assert all(v.traditional in v.candidates and v.simplified for v in results)
    assert sum(v.ambiguous for v in results) == 17
    assert sum(differs(char) for char in joyo_kanji()) == 817


@pytest.mark.parametrize("bad", ["a", "", "鉄道", "😀", "ア", "々"])
def test_bad_input_is_named(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        variants(bad)
    with pytest.raises(ValueError, match=repr(bad)):
        differs(bad)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError):
        variants(7)


@given(st.characters())
def test_any_character_resolves_or_is_rejected(char):
    try:
        v = variants(char)
    except ValueError:
        return
    assert len(v.japanese) == 1
    assert v.traditional in v.candidates
