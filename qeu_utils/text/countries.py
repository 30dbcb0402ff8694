"""Country names in Japanese, English, Simplified and Traditional Chinese, from CLDR via Babel.

Which territories count as countries: the 193 member states of the United Nations plus its two
observer states, the Holy See (VA) and Palestine (PS) — 195 in all. CLDR has no sovereignty
flag, so the codes are written out below. Everything else CLDR names is left out: the world
and regions (numeric codes such as 001, 150), groupings (EU, EZ, UN), the unknown region (ZZ),
dependent territories and special areas (GU, HK, PR, …) and places whose statehood is disputed
(TW, XK), which a name list must not decide by itself.

Names are Babel's ``Locale.territories``: CLDR's standard name for each code ('US' is "United
States"). The Traditional Chinese names are CLDR's ``zh_Hant``, which is Taiwan usage (南韓,
北韓, 象牙海岸), not Hong Kong's. Where CLDR's standard name is a locale picker's display
form rather than the country's name — an abbreviation or an ampersand ("St. Kitts & Nevis"), a
disambiguating suffix ("Congo - Kinshasa", 刚果（金）), an alternate in parentheses
("Myanmar (Burma)") or the name of a territory rather than the state the code stands for here
("Palestinian Territories") — ``OVERRIDES`` gives the name, in the form the United Nations and
the foreign ministries of Japan, China and Taiwan use.
"""

import functools
from dataclasses import dataclass

from babel import Locale

# ISO 3166-1 alpha-2 codes of the 193 UN member states, as listed by the United Nations
# (https://www.un.org/en/about-us/member-states), plus the observer states VA and PS.
UN_MEMBER_STATES = frozenset(
    """
    AD AE AF AG AL AM AO AR AT AU AZ BA BB BD BE BF BG BH BI BJ BN BO BR BS BT BW BY BZ CA CD
    CF CG CH CI CL CM CN CO CR CU CV CY CZ DE DJ DK DM DO DZ EC EE EG ER ES ET FI FJ FM FR GA
    GB GD GE GH GM GN GQ GR GT GW GY HN HR HT HU ID IE IL IN IQ IR IS IT JM JO JP KE KG KH KI
    KM KN KP KR KW KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MG MH MK ML MM MN MR MT MU
    MV MW MX MY MZ NA NE NG NI NL NO NP NR NZ OM PA PE PG PH PK PL PT PW PY QA RO RS RU RW SA
    SB SC SD SE SG SI SK SL SM SN SO SR SS ST SV SY SZ TD TG TH TJ TL TM TN TO TR TT TV TZ UA
    UG US UY UZ VC VE VN VU WS YE ZA ZM ZW
    """.split()
)
UN_OBSERVER_STATES = frozenset({"VA", "PS"})
SOVEREIGN_CODES = UN_MEMBER_STATES | UN_OBSERVER_STATES

# code → {field: name} where CLDR's standard name is not the country's name (see above).
OVERRIDES = {
    "AG": {"en": "Antigua and Barbuda"},
    "BA": {"en": "Bosnia and Herzegovina"},
    "CD": {"en": "Democratic Republic of the Congo", "ja": "コンゴ民主共和国",
           "zh_hans": "刚果民主共和国", "zh_hant": "剛果民主共和國"},
    "CG": {"en": "Republic of the Congo", "ja": "コンゴ共和国",
           "zh_hans": "刚果共和国", "zh_hant": "剛果共和國"},
    "KN": {"en": "Saint Kitts and Nevis"},
    "LC": {"en": "Saint Lucia"},
    "MM": {"en": "Myanmar", "ja": "ミャンマー"},
    # The UN observer state is "State of Palestine"; CLDR's PS names the territories.
    "PS": {"en": "Palestine", "ja": "パレスチナ", "zh_hans": "巴勒斯坦", "zh_hant": "巴勒斯坦"},
    "ST": {"en": "São Tomé and Príncipe"},
    "TT": {"en": "Trinidad and Tobago"},
    "VC": {"en": "Saint Vincent and the Grenadines"},
}


@dataclass(frozen=True)
class Country:
    """One sovereign country: its ISO 3166-1 alpha-2 code and its names (CLDR, or
    ``OVERRIDES``)."""

    code: str
    ja: str
    en: str
    zh_hans: str
    zh_hant: str


@functools.cache
def _countries() -> tuple[Country, ...]:
    names = {
        "ja": Locale("ja").territories,
        "en": Locale("en").territories,
        "zh_hans": Locale("zh", script="Hans").territories,
        "zh_hant": Locale("zh", script="Hant").territories,
    }
    for field, territories in names.items():
        missing = sorted(SOVEREIGN_CODES - territories.keys())
        if missing:
            raise RuntimeError(f"CLDR (Babel) has no {field} name for {', '.join(missing)}")
    return tuple(
        Country(code, **{
            field: OVERRIDES.get(code, {}).get(field, territories[code])
            for field, territories in names.items()
        })
        for code in sorted(SOVEREIGN_CODES)
    )


def countries() -> list[Country]:
    """The 195 sovereign countries (UN members and observer states), sorted by code."""
    return list(_countries())


def country(code: str) -> Country:
    """The country with this ISO 3166-1 alpha-2 code (case-insensitive).

    Raises ``KeyError`` naming the code when it is not one of the sovereign countries.
    """
    wanted = code.strip().upper() if isinstance(code, str) else code
    for entry in _countries():
        if entry.code == wanted:
            return entry
    raise KeyError(
        f"unknown country code {code!r}: expected the ISO 3166-1 alpha-2 code of a UN member "
        f"or observer state, e.g. 'JP'"
    )
