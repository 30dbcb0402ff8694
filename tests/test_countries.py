"""Tests for qeu_utils.text.countries against CLDR names (through Babel)."""

import re

import pytest
from babel import Locale

from qeu_utils.text.countries import OVERRIDES, Country, countries, country


def test_count_is_un_members_and_observers():
    assert len(countries()) == 195


@pytest.mark.parametrize(
    ("code", "ja", "en", "zh_hans", "zh_hant"),
    [
        ("JP", "日本", "Japan", "日本", "日本"),
        ("CN", "中国", "China", "中国", "中國"),
        ("US", "アメリカ合衆国", "United States", "美国", "美國"),
        ("DE", "ドイツ", "Germany", "德国", "德國"),
        ("KR", "韓国", "South Korea", "韩国", "南韓"),
        ("VA", "バチカン市国", "Vatican City", "梵蒂冈", "梵蒂岡"),
        ("CI", "コートジボワール", "Côte d’Ivoire", "科特迪瓦", "象牙海岸"),  # zh_Hant: Taiwan
        # the project's overrides of CLDR's display forms
        ("CD", "コンゴ民主共和国", "Democratic Republic of the Congo", "刚果民主共和国",
         "剛果民主共和國"),
        ("CG", "コンゴ共和国", "Republic of the Congo", "刚果共和国", "剛果共和國"),
        ("MM", "ミャンマー", "Myanmar", "缅甸", "緬甸"),
        ("PS", "パレスチナ", "Palestine", "巴勒斯坦", "巴勒斯坦"),
        ("VC", "セントビンセント及びグレナディーン諸島", "Saint Vincent and the Grenadines",
         "圣文森特和格林纳丁斯", "聖文森及格瑞那丁"),
        ("BA", "ボスニア・ヘルツェゴビナ", "Bosnia and Herzegovina", "波斯尼亚和黑塞哥维那",
         "波士尼亞與赫塞哥維納"),
    ],
)
def test_names(code, ja, en, zh_hans, zh_hant):
    assert country(code) == Country(code, ja, en, zh_hans, zh_hant)


def test_names_are_names_not_locale_picker_forms():
    for c in countries():
        for name in (c.ja, c.en, c.zh_hans, c.zh_hant):
            assert not re.search(r" - |&|[()（）]|\bSt\.|Territories|自治区|领土", name), c


def test_overrides_are_needed():
    # every override differs from what CLDR says, so none is dead weight
    cldr = {"ja": Locale("ja"), "en": Locale("en"), "zh_hans": Locale("zh", script="Hans"),
            "zh_hant": Locale("zh", script="Hant")}
    assert len(OVERRIDES) == 11
    for code, names in OVERRIDES.items():
        for field, name in names.items():
            assert cldr[field].territories[code] != name, (code, field)


def test_only_sovereign_countries():
    codes = {c.code for c in countries()}
    assert not codes & {"001", "150", "EU", "EZ", "UN", "ZZ", "QO", "HK", "PR", "GU", "AQ"}
    assert all(len(code) == 2 and code.isalpha() and code.isupper() for code in codes)
    assert {"PS", "VA", "SS", "KP"} <= codes


def test_sorted_and_complete():
    all_countries = countries()
    codes = [c.code for c in all_countries]
    assert codes == sorted(codes)
    assert len(set(codes)) == len(codes)
    for c in all_countries:
        assert all((c.ja, c.en, c.zh_hans, c.zh_hant)), c


def test_lookup_is_case_insensitive():
    assert country("jp").en == "Japan"


@pytest.mark.parametrize("code", ["ZZ", "EU", "001", "XX", "", "JPN"])
def test_unknown_code(code):
    with pytest.raises(KeyError, match="unknown country code"):
        country(code)


def test_result_is_a_copy():
    countries().clear()
    assert len(countries()) == 195
