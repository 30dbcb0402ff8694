"""Tests for qeu_utils.countries against CLDR names (through Babel)."""

import pytest

from qeu_utils.countries import Country, countries, country


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
    ],
)
def test_names(code, ja, en, zh_hans, zh_hant):
    assert country(code) == Country(code, ja, en, zh_hans, zh_hant)


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
