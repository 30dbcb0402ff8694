"""Dataset builders: sources, the kanji ambiguity rule, the style checks, the mix."""


import pytest

from qeu_utils.build import common
from qeu_utils.build.country import build_country
from qeu_utils.build.food import build_food, read_dishes
from qeu_utils.build.kanji import SEVERAL, build_kanji
from qeu_utils.records import validate


def _by_task(groups, key):
    (group,) = [g for g in groups if g.key == key]
    return {r["task"]: r for r in group.records}


@pytest.fixture(scope="module")
def kanji_groups():
    return build_kanji(seed=0)


def test_kanji_forms_that_differ_get_all_four_tasks(kanji_groups):
    tetsu = _by_task(kanji_groups, "鉄")
    assert {t: r["output"] for t, r in tetsu.items()} == {
        "ja_to_hans": "铁", "ja_to_hant": "鐵", "hans_to_ja": "鉄", "hant_to_ja": "鉄"}
    assert "铁" in tetsu["hans_to_ja"]["instruction"] + tetsu["hans_to_ja"]["input"]
    assert set(_by_task(kanji_groups, "山")) == {"ja_to_hans"}
    assert len(kanji_groups) == 2136


def test_ambiguous_kanji_carry_every_candidate(kanji_groups):
    ben = _by_task(kanji_groups, "弁")
    assert ben["ja_to_hant"]["output"] == "辨・辯・瓣・弁" + SEVERAL
    assert ben["ja_to_hans"]["output"] == "辨・辩・瓣・弁" + SEVERAL
    assert _by_task(kanji_groups, "芸")["ja_to_hans"]["output"] == "艺・芸" + SEVERAL
    # 臺 and 台 both simplify to 台: one Simplified answer, two Traditional ones.
    dai = _by_task(kanji_groups, "台")
    assert dai["ja_to_hans"]["output"] == "台"
    assert dai["ja_to_hant"]["output"] == "臺・台" + SEVERAL


def test_a_simplified_form_shared_by_two_kanji_names_both(kanji_groups):
    hatsu = _by_task(kanji_groups, "発")
    assert hatsu["hans_to_ja"]["output"] == "発・髪" + SEVERAL
    assert _by_task(kanji_groups, "髪")["hans_to_ja"]["output"] == "発・髪" + SEVERAL


def test_no_single_answer_is_a_wrong_form_for_ambiguous_kanji(kanji_groups):
    from qeu_utils.kanji import variants

    for g in kanji_groups:
        v = variants(g.key)
        if v.ambiguous:
            hant = _by_task(kanji_groups, g.key).get("ja_to_hant")
            if hant:
                assert all(c in hant["output"] for c in v.candidates), g.key


def test_country_records_both_ways():
    jp = _by_task(build_country(seed=0), "JP")
    assert {t: r["output"] for t, r in jp.items()} == {
        "ja_to_en": "Japan", "en_to_ja": "日本", "ja_to_hans": "日本", "hans_to_ja": "日本",
        "ja_to_hant": "日本", "hant_to_ja": "日本"}
    us = _by_task(build_country(seed=0), "US")
    assert us["hans_to_ja"]["output"] == "アメリカ合衆国"
    assert "美国" in us["hans_to_ja"]["instruction"] + us["hans_to_ja"]["input"]


def test_food_crosses_languages_and_borders():
    groups = build_food(seed=0)
    assert len(groups) >= 100
    pizza = _by_task(groups, "pizza")
    assert pizza["ja_to_en"]["output"] == "pizza"
    assert pizza["origin"]["output"] == "イタリアの料理です。"
    assert pizza["origin"]["style"] == "polite"
    assert len({d["country"] for d in read_dishes()}) >= 10


def test_bad_dish_rows_name_the_line(tmp_path):
    path = tmp_path / "dishes.tsv"
    header = "ja\ten\tzh_hans\tzh_hant\tcountry\n"
    path.write_text(header + "寿司\tsushi\t寿司\t壽司\tJP\nピザ\tpizza\t披萨\t披薩\tXX\n", "utf-8")
    with pytest.raises(common.SourceError, match=r"dishes.tsv:3: unknown country code 'XX'"):
        build_food(path=path)
    path.write_text(header + "寿司\tsushi\t寿司\tJP\n", "utf-8")
    with pytest.raises(common.SourceError, match=r"dishes.tsv:2: 4 fields, expected 5"):
        build_food(path=path)
    path.write_text("ja\ten\n", "utf-8")
    with pytest.raises(common.SourceError, match=r"dishes.tsv:1: header is"):
        build_food(path=path)
    path.write_text(header + "寿司\t \t寿司\t壽司\tJP\n", "utf-8")
    with pytest.raises(common.SourceError, match=r"dishes.tsv:2: empty field\(s\) en"):
        build_food(path=path)


def test_templates_vary_but_are_fixed_by_the_seed():
    a = [r["instruction"] for g in build_country(seed=0) for r in g.records]
    b = [r["instruction"] for g in build_country(seed=0) for r in g.records]
    c = [r["instruction"] for g in build_country(seed=1) for r in g.records]
    assert a == b and a != c
    assert len(set(a)) > 6


def test_every_record_validates():
    for groups in (build_country(seed=0), build_food(seed=0)):
        for g in groups:
            for r in g.records:
                validate(r)
