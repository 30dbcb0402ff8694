"""Japanese verb conjugation from UniDic features, for plain ⇄ polite conversion.

Conjugated forms are built from the verb class (``cType``) and the kana row of its ending,
never from a table of surfaces.
"""

from __future__ import annotations

from qeu_utils.text.style_detect import Token

__all__ = ["Verb", "MIZEN", "RENYOU", "SHUUSHI", "VOLITIONAL", "PAST"]


# 五段 rows: the kana of the a/i/u/e/o grades, keyed by the row in cType (五段-マ行 → マ).
_GODAN_ROWS = {
    "カ": "かきくけこ",
    "ガ": "がぎぐげご",
    "サ": "さしすせそ",
    "タ": "たちつてと",
    "ナ": "なにぬねの",
    "バ": "ばびぶべぼ",
    "マ": "まみむめも",
    "ラ": "らりるれろ",
    "ワア": "わいうえお",
}
# The euphonic (音便) ending before た/て, and whether た is voiced to だ.
_GODAN_TA = {
    "カ": ("い", "た"),
    "ガ": ("い", "だ"),
    "サ": ("し", "た"),
    "タ": ("っ", "た"),
    "ナ": ("ん", "だ"),
    "バ": ("ん", "だ"),
    "マ": ("ん", "だ"),
    "ラ": ("っ", "た"),
    "ワア": ("っ", "た"),
}
# Honorific ラ行 verbs whose 連用形 before ます is い (なさいます, くださいます).
_IRU_HONORIFIC = {"為さる", "下さる", "いらっしゃる", "仰る", "御座る", "仰有る"}
# ワア行 verbs with ウ音便 past (問うた), which the tables above would get wrong.
_U_ONBIN = {"問う", "請う", "乞う"}
# 助動詞 that conjugate like 一段 verbs (食べられる, 食べさせる, 食べてる).
_ICHIDAN_AUX = {"助動詞-レル"}
_ICHIDAN_ENDINGS = {
    "未然形-一般": ("",),
    "連用形-一般": ("",),
    "終止形-一般": ("る",),
    "連体形-一般": ("る",),
    "仮定形-一般": ("れ",),
    "命令形": ("ろ", "よ"),
    "意志推量形": ("よう",),
}
_SURU_ENDINGS = {
    "未然形-一般": ("し",),
    "未然形-サ": ("さ",),
    "未然形-セ": ("せ",),
    "連用形-一般": ("し",),
    "終止形-一般": ("する",),
    "連体形-一般": ("する",),
    "仮定形-一般": ("すれ",),
    "命令形": ("しろ", "せよ"),
    "意志推量形": ("しよう",),
}

# The forms Verb.form() produces, as indexes into the ending tables below.
MIZEN, RENYOU, SHUUSHI, VOLITIONAL, PAST = range(5)
# Endings after the stem, in that order, for the classes with one fixed pattern.
_ICHIDAN_FORMS = ("", "", "る", "よう", "た")
_SURU_FORMS = ("し", "し", "する", "しよう", "した")
# カ変 written with the kanji (来ない, 来ます, 来る) or in kana (こない, きます, くる).
_KURU_KANJI_FORMS = ("来", "来", "来る", "来よう", "来た")
_KURU_KANA_FORMS = ("こ", "き", "くる", "こよう", "きた")


class Verb:
    """A verb-like token reduced to its class and stem, able to produce other forms."""

    def __init__(self, kind: str, stem: str, row: str = "", lemma: str = "") -> None:
        self.kind, self.stem, self.row, self.lemma = kind, stem, row, lemma

    @classmethod
    def of(cls, t: Token | None) -> Verb | None:
        """The verb behind token ``t``, or None when ``t`` is no supported verb."""
        if t is None:
            return None
        s, ct, cf = t.surface, t.ctype, t.cform
        if ct in ("*", ""):
            return None  # does not conjugate
        if ct.startswith("五段-"):
            row = ct[3:-1]  # 五段-ワア行 → ワア
            kana = _GODAN_ROWS.get(row)
            if kana is None:
                return None
            if cf == "意志推量形":
                ok = s.endswith(kana[4] + "う")
                stem = s[:-2]
            else:
                ok = len(s) > 1 and s[-1] in kana + "いっん"
                stem = s[:-1]
            return cls("godan", stem, row, t.lemma) if ok and stem else None
        if ct.startswith(("上一段-", "下一段-")) or ct in _ICHIDAN_AUX:
            return cls._by_endings("ichidan", s, _ICHIDAN_ENDINGS.get(cf, ()), t.lemma)
        if ct == "サ行変格" and t.lemma.endswith("ずる"):
            # 感ずる-type verbs conjugate as 一段 感じる in modern Japanese (感じます → 感じる).
            if s.endswith("じ"):
                return cls("ichidan", s, "", t.lemma)
            return cls("ichidan", s[:-2] + "じ", "", t.lemma) if s.endswith("ずる") else None
        if ct == "サ行変格":
            return cls._by_endings("suru", s, _SURU_ENDINGS.get(cf, ()), t.lemma)
        if ct == "カ行変格":
            # Written 来 (every form starts with the kanji) or in kana (こ/き/くる).
            return cls("kuru", "来" if s.startswith("来") else "", "", t.lemma)
        return None

    @classmethod
    def _by_endings(cls, kind: str, s: str, endings: tuple[str, ...], lemma: str):
        for end in endings:
            if s.endswith(end) and (kind == "suru" or len(s) > len(end)):
                return cls(kind, s[: len(s) - len(end)], "", lemma)
        return None

    def form(self, which: int) -> str | None:
        """The form ``which`` (MIZEN … PAST), or None where the tables would be wrong."""
        st = self.stem
        if self.kind == "godan":
            a, i, u, _e, o = _GODAN_ROWS[self.row]
            if which == MIZEN:
                return st + a
            if which == RENYOU:
                return st + ("い" if self.lemma in _IRU_HONORIFIC else i)
            if which == SHUUSHI:
                return st + u
            if which == VOLITIONAL:
                return st + o + "う"
            if self.lemma in _U_ONBIN:
                return None
            onbin, ta = _GODAN_TA[self.row]
            if self.lemma == "行く":
                onbin = "っ"  # 行った, not 行いた
            return st + onbin + ta
        if self.kind == "ichidan":
            return st + _ICHIDAN_FORMS[which]
        if self.kind == "suru":
            return st + _SURU_FORMS[which]
        return (_KURU_KANJI_FORMS if st else _KURU_KANA_FORMS)[which]
