"""Katakana: the kana table, loanword detection and English annotation.

QEU's initialization data teaches a model katakana through the kana table and through
loanwords (外来語) paired with their English. This module provides both.

Which words are loanwords
    UniDic (through fugashi) decides: a token is a loanword when its word origin
    (``goshu``) is 外 (foreign), it is not a proper noun, and it is written in katakana.
    Native words written in katakana (ネコ, カタカナ: goshu 和), onomatopoeia (ドキドキ: 和)
    and proper nouns (トヨタ: 固) are therefore never loanwords. Adjacent loanword tokens,
    optionally joined by ``・``, form one word: UniDic splits スマートフォン into
    スマート + フォン, but it is one loanword. A whole katakana stretch is one loanword when
    the project TSV lists it (スマホ, unknown to UniDic), or when JMdict lists it and UniDic
    finds a loanword in it (インフルエンサー, read as インフル + エンサー). Where loanword
    tokens are only part of a stretch, the rest may be a mis-segmentation (リス|キリング)
    or a name (トヨタ|カローラ): such a word gets English only from a dictionary entry of
    its own, and none at all next to a proper noun — inside the stretch, or written in kanji
    right before it (東京|スカイツリー: UniDic does not know スカイツリー, but 東京 is a
    proper noun, so the katakana is the rest of a name).

Units after numbers
    A loanword that UniDic marks as a counter (助数詞可能: メートル, キロ, パーセント, ドル)
    right after a number (634メートル, 三百四十メートル) is a unit: ``find_loanwords`` still
    reports it, with ``unit=True``, and ``annotate_loanwords`` leaves it alone — 634メートル
    (metre) is noise, not a word to learn.

Where the English comes from (first hit wins)
    1. ``qeu_utils/data/sources/loanwords_en.tsv``: a short list this project writes, of loanwords
       whose English must not be left to chance (non-English origins such as アルバイト,
       compounds UniDic splits), each checked against JMdict.
    2. JMdict (EDRDG, CC BY-SA 4.0) from the ``jamdict-data`` package (``text.jmdict``,
       read-only SQLite): the first English gloss of the word's first sense (parenthesised remarks
       dropped), and its ``lsource`` language as the origin.
    3. For a word JMdict lacks, UniDic's lemma gloss (``キリング-killing``), but only when
       it is lower-case ASCII and every word of it is an English gloss word in JMdict.

Deciding the origin language
    UniDic's lemma gloss is the *source-language* word (Arbeit, Rahmen, pao, ikra, ransel),
    and nothing in UniDic says which language that is, so it is never used as English on
    its own. JMdict records the source language of non-English loans (``lsource``) and,
    by its own convention, leaves English loans unmarked: a JMdict sense without
    ``lsource`` gives origin ``"en"``. The project TSV states the origin explicitly. A word
    with no trustworthy English gets ``english=None`` and is not annotated. A compound
    whose parts come from different languages gets ``origin=None``.

Without ``jamdict-data`` installed only the project TSV supplies English. The TSV ships in
the package and is read through ``qeu_utils.text.sources``; a missing TSV is an error.

Tagging and idempotence
    MeCab is run on each katakana stretch together with the hiragana right after it, not on
    the whole text: inserting an annotation could otherwise change how a distant stretch is
    segmented. The kanji or digits glued before a stretch (東京, 634) are tagged on their own,
    for the two checks above; an annotation never lands inside them. A stretch followed by
    ``(``/``（`` (or by ``fmt``'s opening text), or right after another katakana word's
    ``(…)``, counts as annotated already, which makes
    ``annotate_loanwords`` idempotent for any ``fmt`` that puts the English after the word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from qeu_utils.text import jmdict
from qeu_utils.text.sources import read_loanword_list
from qeu_utils.text.tagger import tagger

__all__ = ["KanaRow", "Loanword", "annotate_loanwords", "find_loanwords", "kana_table"]

# Hiragana sit exactly 0x60 code points below their katakana (ァ U+30A1 → ぁ U+3041).
_KATAKANA_TO_HIRAGANA = 0x60


@dataclass(frozen=True)
class KanaRow:
    """One kana: katakana, the hiragana derived from it, Hepburn romaji, and its group."""

    katakana: str
    hiragana: str
    romaji: str
    group: str  # "gojuon", "dakuten", "handakuten", "small" or "yoon"


@dataclass(frozen=True)
class Loanword:
    """A loanword found in a text; ``text[span[0]:span[1]] == surface``."""

    surface: str
    span: tuple[int, int]
    english: str | None
    origin: str | None  # ISO 639-1 where one exists ("en", "de", ...), else ISO 639-2
    unit: bool = False  # a counter right after a number (634メートル): never annotated


# Katakana and Hepburn romaji, group by group, in the traditional order. The gojūon follows
# the modern 46-kana convention: ア–ン including ヲ and ン, without the obsolete ヰ and ヱ.
# ヲ is "wo" (traditional Hepburn), ヂ/ヅ are "ji"/"zu" (modified Hepburn). ッ has no
# romaji of its own in Hepburn (it doubles the next consonant), so its romaji is empty.
_KANA_GROUPS: tuple[tuple[str, str, str], ...] = (
    (
        "gojuon",
        "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨ"
        "ラリルレロワヲン",
        "a i u e o ka ki ku ke ko sa shi su se so ta chi tsu te to na ni nu ne no "
        "ha hi fu he ho ma mi mu me mo ya yu yo ra ri ru re ro wa wo n",
    ),
    (
        "dakuten",
        "ガギグゲゴザジズゼゾダヂヅデドバビブベボ",
        "ga gi gu ge go za ji zu ze zo da ji zu de do ba bi bu be bo",
    ),
    ("handakuten", "パピプペポ", "pa pi pu pe po"),
    ("small", "ァィゥェォッャュョヮ", "a i u e o _ ya yu yo wa"),
)
# Yōon: an i-column kana followed by small ャ/ュ/ョ.
_YOON_BASES = "キシチニヒミリギジビピ"
_YOON_ROMAJI = (
    "kya kyu kyo sha shu sho cha chu cho nya nyu nyo hya hyu hyo mya myu myo "
    "rya ryu ryo gya gyu gyo ja ju jo bya byu byo pya pyu pyo"
)


def _hiragana(katakana: str) -> str:
    return "".join(chr(ord(ch) - _KATAKANA_TO_HIRAGANA) for ch in katakana)


@lru_cache(maxsize=1)
def _kana_rows() -> tuple[KanaRow, ...]:
    rows = []
    for group, kana, romaji in _KANA_GROUPS:
        for k, r in zip(kana, romaji.split(), strict=True):
            rows.append(KanaRow(k, _hiragana(k), "" if r == "_" else r, group))
    yoon = [b + s for b in _YOON_BASES for s in "ャュョ"]
    for k, r in zip(yoon, _YOON_ROMAJI.split(), strict=True):
        rows.append(KanaRow(k, _hiragana(k), r, "yoon"))
    return tuple(rows)


def kana_table() -> list[KanaRow]:
    """The katakana syllabary with hiragana and Hepburn romaji, in the traditional order.

    114 rows: 46 gojūon (incl. ヲ and ン), 20 dakuten, 5 handakuten, 10 small kana
    (ァィゥェォッャュョヮ) and 33 yōon (キャ … ピョ).
    """
    return list(_kana_rows())


# ---------------------------------------------------------------- lexical sources

@lru_cache(maxsize=1)
def _project_table() -> dict[str, tuple[str, str]]:
    """katakana → (english, origin) from the project TSV (a missing file is an error)."""

    return read_loanword_list()


def _lookup(kana: str) -> tuple[str, str] | None:
    return _project_table().get(kana) or jmdict.lookup(kana)


# ---------------------------------------------------------------- tokenization

_KATAKANA_WORD = re.compile(r"[\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff]+")
_KATAKANA_STRETCH = re.compile(r"[\u30a1-\u30ff\u31f0-\u31ff]*")  # ・ included
# What MeCab sees: each katakana stretch with the hiragana right after it (okurigana and
# particles, so サボる stays a verb), tagged on its own. An annotation is only ever inserted
# right after a stretch, so a stretch that was not annotated is tagged identically after
# annotation; tagging the whole text instead lets an insertion change the segmentation of
# a distant stretch, and annotation would not be idempotent.
_CHUNK = re.compile(r"([\u30a1-\u30ff\u31f0-\u31ff]+)[\u3041-\u3096\u309d\u309e]*")


# The kanji, numerals and digits that can be glued before a stretch: 東京|スカイツリー,
# 634|メートル, 三百四十|メートル, 1,000|キロ.
_GLUED_BEFORE = re.compile(r"[0-9０-９,.，．\u3005\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_GLUED_MAX = 16


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    lemma: str | None
    is_loan: bool
    is_name: bool  # a proper noun (トヨタ, ジョン, 東京)
    is_number: bool = False  # a numeral (634, 三百)
    is_counter: bool = False  # a noun UniDic allows as a counter (メートル, パーセント)


def _tokens(chunk: str, offset: int) -> list[_Token]:
    try:
        words = tagger()(chunk)
    except Exception:  # the tagger is a C library; no input may make this module raise
        return []
    tokens, pos = [], 0
    for w in words:
        surface = w.surface
        start = chunk.find(surface, pos) if surface else -1
        if start < 0:  # the tagger altered the text; offsets past here are unreliable
            break
        pos = start + len(surface)
        f = w.feature
        is_name = getattr(f, "pos2", None) == "固有名詞"
        is_loan = (
            getattr(f, "goshu", None) == "外"
            and not is_name
            and _KATAKANA_WORD.fullmatch(surface) is not None
        )
        lemma = getattr(f, "lemma", None)
        tokens.append(_Token(offset + start, offset + pos, lemma, is_loan, is_name,
                             is_number=getattr(f, "pos2", None) == "数詞",
                             is_counter=getattr(f, "pos3", None) == "助数詞可能"))
    return tokens


_NUMBER_WORDS = {"何", "数"}


def _glued_before(text: str, start: int) -> _Token | None:
    """The last word of the kanji or digits written right before ``start`` (東京 in
    東京スカイツリー, 634 in 634メートル), tagged on their own; None when there are none."""
    i = start
    while i > 0 and start - i < _GLUED_MAX and _GLUED_BEFORE.fullmatch(text[i - 1]):
        i -= 1
    if i == start:
        return None
    tokens = _tokens(text[i:start], i)
    return tokens[-1] if tokens and tokens[-1].end == start else None


def _runs(text: str, tokens: list[_Token]) -> list[list[_Token]]:
    """Group adjacent loanword tokens (optionally joined by ・) into one word each."""
    runs: list[list[_Token]] = []
    current: list[_Token] = []
    for i, tok in enumerate(tokens):
        if tok.is_loan and current and current[-1].end == tok.start:
            current.append(tok)
        elif tok.is_loan:
            current = [tok]
            runs.append(current)
        elif (
            current
            and text[tok.start : tok.end] == "・"
            and current[-1].end == tok.start
            and i + 1 < len(tokens)
            and tokens[i + 1].is_loan
            and tokens[i + 1].start == tok.end
        ):
            current.append(tok)
        else:
            current = []
    return runs


def _unidic_english(tok: _Token) -> str | None:
    """UniDic's lemma gloss, if every word of it is English by JMdict's gloss vocabulary.

    Only lower-case ASCII words qualify: UniDic capitalises German nouns (Arbeit, Rahmen),
    and a few of those do occur in JMdict glosses (Rahmen, for ラーメン構造).
    """
    if not tok.lemma or "-" not in tok.lemma:
        return None
    gloss = tok.lemma.split("-", 1)[1]
    words = gloss.split()
    if words and all(re.fullmatch("[a-z]+", w) and jmdict.is_english_gloss_word(w) for w in words):
        return gloss
    return None


def _meaning(text: str, run: list[_Token], whole: bool) -> tuple[str | None, str | None]:
    surface = text[run[0].start : run[-1].end]
    found = _lookup(surface) or _lookup(surface.replace("・", ""))
    if found or not whole:
        # A run that is only part of its katakana stretch (リス|キリング for リスキリング) may
        # be a mis-segmentation, so it gets English only from a dictionary entry of its own.
        return found or (None, None)
    # No entry for the whole word: cover it with the longest known pieces, left to right.
    # Only English loans compose: their glosses are the English words themselves (クレジット
    # + カード → credit card). A gloss of a loan from another language translates, describes
    # or romanizes it (チゲ: "Korean stew", スンドゥブ: "sundubu"), and strung together such
    # glosses are no English ("sundubu Korean stew" for スンドゥブチゲ): no English then.
    parts = [t for t in run if text[t.start : t.end] != "・"]
    english, origins, i = [], set(), 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            piece = _lookup(text[parts[i].start : parts[j - 1].end])
            if piece:
                if piece[1] != "en":
                    return None, None
                english.append(piece[0])
                origins.add(piece[1])
                i = j
                break
        else:
            gloss = _unidic_english(parts[i])
            if gloss is None:
                return None, None
            english.append(gloss)
            origins.add(None)
            i += 1
    return " ".join(english), origins.pop() if len(origins) == 1 else None


# ---------------------------------------------------------------- public API


def _stretch_loanwords(text: str, tokens: list[_Token], start: int, end: int) -> list[Loanword]:
    """Loanwords in the katakana stretch ``text[start:end]`` (tokens: its chunk's tokens)."""
    inside = [t for t in tokens if start <= t.start and t.end <= end]
    if not inside:
        return []
    before = _glued_before(text, start)
    # A counter right after a number is a unit (634メートル), whatever else it is; so is one
    # after 何 or 数 (何メートル, 数パーセント), which UniDic tags alone as a pronoun or noun.
    unit = (before is not None and inside[0].is_counter
            and (before.is_number or text[before.start:before.end] in _NUMBER_WORDS))
    # A stretch glued to a proper noun in kanji is the rest of a name (東京スカイツリー,
    # 東京タワー), even where its pieces are dictionary words: no English for it.
    if before is not None and before.is_name:
        return [Loanword(text[r[0].start : r[-1].end], (r[0].start, r[-1].end), None, None)
                for r in _runs(text, inside)]
    # A whole stretch the project lists, or that JMdict lists and UniDic holds a loanword
    # in, is one word even where UniDic splits it oddly (インフル|エンサー, スマ|ホ).
    surface = text[start:end]
    aligned = inside[0].start == start and inside[-1].end == end
    entry = _project_table().get(surface)
    if entry is None and aligned and any(t.is_loan for t in inside):
        entry = jmdict.lookup(surface)
    if aligned and entry:
        return [Loanword(surface, (start, end), *entry, unit=unit)]
    # A loanword glued to a proper noun is most likely part of a name (トヨタカローラ).
    in_name = any(t.is_name for t in inside)
    found = []
    for run in _runs(text, inside):
        first, last = run[0].start, run[-1].end
        english, origin = (
            (None, None) if in_name else _meaning(text, run, (first, last) == (start, end))
        )
        found.append(Loanword(text[first:last], (first, last), english, origin,
                              unit=unit and first == start))
    return found


def find_loanwords(text: str) -> list[Loanword]:
    """Loanwords in ``text``, in order, each with its span, English meaning and origin."""
    if not isinstance(text, str):
        return []
    found = []
    for chunk in _CHUNK.finditer(text):
        tokens = _tokens(chunk.group(), chunk.start())
        # A stretch is trimmed of ・ at its ends: they join words, they are not part of one.
        start, end = chunk.span(1)
        kana = text[start:end]
        start += len(kana) - len(kana.lstrip("・"))
        end -= len(kana) - len(kana.rstrip("・"))
        found.extend(_stretch_loanwords(text, tokens, start, end))
    return found


def _follows_annotation(text: str, start: int, opener: str, closer: str) -> bool:
    """Whether ``text[:start]`` ends with a katakana word and its annotation."""
    if not closer or not text.endswith(closer, 0, start):
        return False
    at = text.rfind(opener, 0, start - len(closer))
    return at > 0 and _KATAKANA_WORD.fullmatch(text[at - 1]) is not None


def _already_annotated(text: str, word: Loanword, rendered: str) -> bool:
    # MeCab may split a katakana stretch differently once an annotation sits next to it
    # (スマートスマート, コーヒーカップコーヒー…), so what counts is what surrounds the whole
    # stretch the word lies in: an annotation right after it, or right before it.
    start, end = word.span
    while start > 0 and _KATAKANA_STRETCH.fullmatch(text[start - 1]):
        start -= 1
    end = _KATAKANA_STRETCH.match(text, end).end()
    if text.startswith(("(", "（"), end):
        return True
    if _follows_annotation(text, start, "(", ")") or _follows_annotation(text, start, "（", "）"):
        return True
    # Any other fmt: the literal text it puts around the English is already there.
    at = rendered.find(word.surface)
    english = word.english or ""
    if at < 0 or not english:
        return False
    after = rendered[at + len(word.surface) :]
    if english not in after:
        return False
    opener = after[: after.find(english)]
    closer = after[after.find(english) + len(english) :]
    return bool(opener) and (
        text.startswith(opener, end) or _follows_annotation(text, start, opener, closer)
    )


def annotate_loanwords(text: str, fmt: str = "{word}({english})") -> str:
    """Put each loanword's English after it: ``コーヒーを飲む`` → ``コーヒー(coffee)を飲む``.

    Words without a trustworthy English meaning, units after a number (634メートル), and
    words already followed by ``(…)``/``（…）`` or by this ``fmt``'s annotation, are left as
    they are, so annotating twice gives the same text as annotating once.
    """
    out, pos = [], 0
    for word in find_loanwords(text):
        if word.english is None or word.unit:
            continue
        rendered = fmt.format(word=word.surface, english=word.english)
        if _already_annotated(text, word, rendered):
            continue
        out.append(text[pos : word.span[0]])
        out.append(rendered)
        pos = word.span[1]
    out.append(text[pos:])
    return "".join(out)


def harvest_loanwords(texts: list[str]) -> dict[str, str]:
    """Loanword surface → English, first meaning found, for words with a known English."""
    found: dict[str, str] = {}
    for text in texts:
        for word in find_loanwords(text):
            if word.english and word.surface not in found:
                found[word.surface] = word.english
    return found
