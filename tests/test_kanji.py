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
    [("芸", "藝"), ("欠", "缺"), ("余", "餘"), ("台", "臺")],
)
def test_japanese_form_is_another_chinese_word(char, old_form):
    v = variants(char)
    assert v.ambiguous
    assert v.candidates == (old_form, char)
    assert v.traditional == old_form


def test_simplified_of_ambiguous_follows_traditional():
    assert variants("芸").simplified == "艺"
    assert variants("台").simplified == "台"
    # every Chinese word's Simplified form, once: 臺 and 台 both simplify to 台
    assert variants("弁").simplified_forms == ("辨", "辩", "瓣", "弁")
    assert variants("芸").simplified_forms == ("艺", "芸")
    assert variants("台").simplified_forms == ("台",)
    assert variants("鉄").simplified_forms == ("铁",)


# Characters whose Chinese forms OpenCC's tables get wrong (kanji_overrides.tsv): the
# Simplified forms everyday Chinese writes, checked against common words.
OVERRIDDEN = [
    # 予定 予約 予算 → 预定 预约 预算; 猶予 → 犹豫; 予 "give". OpenCC alone said 豫 only.
    ("予", "預", ("预", "豫", "予")),
    ("鉱", "礦", ("矿",)),  # 鉱山 → 矿山; OpenCC: 鑛, left unsimplified
    ("娯", "娛", ("娱",)),  # 娯楽 → 娱乐; OpenCC: 娯 unchanged
    ("喩", "喻", ("喻",)),  # 比喩 → 比喻
    ("頬", "頰", ("颊",)),  # 頬 → 脸颊
    ("隷", "隸", ("隶",)),  # 奴隷 → 奴隶
    ("駄", "馱", ("驮",)),  # 駄馬 → 驮马
    ("疎", "疏", ("疏",)),  # 疎通 → 疏通
    ("窓", "窗", ("窗",)),  # 窓口 → 窗口
    ("砲", "砲", ("炮",)),  # 大砲 → 大炮 (Taiwan keeps 砲)
    ("妬", "妒", ("妒",)),  # 嫉妬 → 嫉妒
    ("搾", "榨", ("榨",)),  # 搾取 → 榨取
    ("碁", "棋", ("棋",)),  # 囲碁 → 围棋
    ("倣", "仿", ("仿",)),  # 模倣 → 模仿
]


@pytest.mark.parametrize(("char", "traditional", "simplified_forms"), OVERRIDDEN)
def test_kanji_opencc_gets_wrong_take_the_everyday_chinese_forms(
        char, traditional, simplified_forms):
    v = variants(char)
    assert v.simplified_forms == simplified_forms
    assert v.simplified == simplified_forms[0]
    assert v.traditional == traditional
    assert v.ambiguous == (len(simplified_forms) > 1)


def test_yo_is_yu_in_everyday_chinese():
    v = variants("予")
    assert v.candidates == ("預", "豫", "予")
    assert "预" in v.simplified_forms


def test_every_overridden_kanji_is_tested():
    from qeu_utils.text.sources import read_kanji_overrides

    assert sorted(read_kanji_overrides()) == sorted(c for c, _, _ in OVERRIDDEN)


def test_a_bad_override_row_names_the_line(tmp_path):
    from qeu_utils.text.sources import SourceError, read_kanji_overrides

    path = tmp_path / "kanji_overrides.tsv"
    header = "# a comment\nkanji\ttraditional\tsimplified\treason\n"
    path.write_text(header + "予\t預 豫\t预 豫\twhy\n鉱\t礦\t矿山\twhy\n", "utf-8")
    with pytest.raises(SourceError, match=r"kanji_overrides.tsv:4: every form must be one"):
        read_kanji_overrides(path)
    path.write_text(header + "予\t預\t预\n", "utf-8")
    with pytest.raises(SourceError, match=r"kanji_overrides.tsv:3: expected 4 non-empty"):
        read_kanji_overrides(path)


def test_answer_notes_in_both_registers():
    from qeu_utils.text.kanji import answer_forms, kanji_answer, names_several

    assert kanji_answer(["萬", "万"]) == "萬・万（意味によって字が異なる）"
    assert kanji_answer(["萬", "万"], "polite") == "萬・万（意味によって字が異なります）"
    assert kanji_answer(["铁", "铁"], "polite") == "铁"
    for answer in ("萬・万（意味によって字が異なる）", "萬・万（意味によって字が異なります）"):
        assert names_several(answer)
        assert answer_forms(answer) == ["萬", "万"]
    assert not names_several("万")
    with pytest.raises(ValueError, match="casual"):
        kanji_answer(["萬", "万"], "casual")


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
    # 817 from OpenCC, and 12 Japanese-only glyphs kanji_overrides.tsv maps (娯 → 娛/娱, …)
    assert sum(differs(char) for char in joyo_kanji()) == 829


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
