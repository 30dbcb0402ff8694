"""常体 (plain) / 敬体 (polite) Japanese: sentence splitting, style detection, conversion.

The style of a sentence is the style of its main-clause final predicate: the last predicate
chunk before sentence-final punctuation and particles, skipping quoted speech. Analysis uses
fugashi with UniDic (unidic-lite) conjugation features; conjugated forms are built from the
verb class (``cType``) and the kana row of its ending, never from a table of surfaces.

Conversion rewrites only the characters of that predicate chunk, so everything else
(subordinate clauses, quotes, punctuation, spacing) stays byte-for-byte intact. A sentence
whose predicate form is not supported is returned unchanged.
"""

from __future__ import annotations

import re
from enum import Enum

from qeu_utils.text.tagger import tagger

__all__ = [
    "Style",
    "split_sentences",
    "detect_style",
    "sentence_styles",
    "to_polite",
    "to_plain",
]


class Style(str, Enum):
    """The style of a sentence or a text."""

    PLAIN = "plain"
    POLITE = "polite"
    MIXED = "mixed"
    NONE = "none"

    def __str__(self) -> str:
        return self.value


# --- sentence splitting -------------------------------------------------------------------

_OPEN = "「『（(【〈《〔［[｛{“"
_CLOSE = "」』）)】〉》〕］]｝}”"
_BRACKETS = frozenset(_OPEN + _CLOSE)
_TERMINATORS = "。！？!?"
_BREAKS = "\n\r\u2028\u2029"
# ASCII quotes open and close alike, so they cannot nest like brackets; they only matter
# right after a terminator, where '?' or "Really?" is quoted text, not a sentence end.
_ASCII_QUOTES = "'\"`"
_SPECIAL = re.compile(
    "[" + re.escape(_OPEN + _CLOSE + _TERMINATORS + _BREAKS + _ASCII_QUOTES) + "]"
)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, surrounding whitespace excluded."""
    spans: list[tuple[int, int]] = []
    start = 0
    depth = 0
    end_at = -1  # once a terminator run is seen at depth 0, where the sentence may end
    run_start = 0  # where that terminator run begins
    # Only the special characters matter, so scan matches instead of every character.
    for m in _SPECIAL.finditer(text):
        i = m.start()
        ch = text[i]
        if end_at >= 0 and (i != end_at or ch in _OPEN):
            _add_span(text, start, end_at, spans)
            start = end_at
            end_at = -1
        if ch in _BREAKS:
            # A line break always ends a sentence, and an unclosed quote with it.
            _add_span(text, start, i, spans)
            start = i + 1
            depth = 0
            end_at = -1
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            if depth > 0:
                depth -= 1
            elif end_at == i:
                end_at = i + 1  # a stray closing bracket right after 。 stays with it
        elif ch in _ASCII_QUOTES:
            if end_at == i:
                if _quote_opens_before(text, run_start):
                    end_at = -1  # '?' or "行く。" is quoted text: the sentence goes on
                else:
                    end_at = i + 1  # a closing quote after 。 stays with its sentence
        elif depth == 0:
            if end_at != i:
                run_start = i
            end_at = i + 1
    if end_at >= 0:
        _add_span(text, start, end_at, spans)
        start = end_at
    _add_span(text, start, len(text), spans)
    return spans


def _quote_opens_before(text: str, run_start: int) -> bool:
    """Does an ASCII quote open in the word (no whitespace) that ends at ``run_start``?"""
    i = run_start - 1
    while i >= 0 and not text[i].isspace():
        if text[i] in _ASCII_QUOTES:
            return True
        i -= 1
    return False


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    seg = text[start:end]
    body = seg.lstrip()
    if body:
        start += len(seg) - len(body)
        spans.append((start, start + len(body.rstrip())))


# Without brackets and line breaks, sentences are just runs up to a run of terminators.
_NO_FAST_PATH = frozenset(_OPEN + _CLOSE + _BREAKS + _ASCII_QUOTES)
_SIMPLE_SENTENCE = re.compile(f"[^{_TERMINATORS}]*[{_TERMINATORS}]+|[^{_TERMINATORS}]+")


def split_sentences(text: str) -> list[str]:
    """Split Japanese text into sentences.

    Sentences end at 。！？!? (a run of them counts once) and at line breaks; quoted speech
    「…」『…』, bracketed text and a terminator quoted in ASCII quotes ('?', "行く。") stay
    inside their sentence. Whitespace around each sentence
    is dropped; empty sentences are not returned.
    """
    if _NO_FAST_PATH.isdisjoint(text):
        # Same result as _sentence_spans, several times faster (detect_style's hot path).
        return [s for s in (m.strip() for m in _SIMPLE_SENTENCE.findall(text)) if s]
    return [text[a:b] for a, b in _sentence_spans(text)]


# --- tokens -------------------------------------------------------------------------------


class _Tok:
    """The UniDic fields this module reads: surface, pos1, pos2, cType, cForm, lemma."""

    __slots__ = ("surface", "pos1", "pos2", "ctype", "cform", "lemma")

    def __init__(self, surface: str, raw: str) -> None:
        self.surface = surface
        f = raw.split(",", 8)  # fields past the lemma are never read
        # Unknown words carry fewer fields; pad so indexing never fails.
        if len(f) < 8:
            f += ["*"] * (8 - len(f))
        self.pos1, self.pos2, self.ctype, self.cform, self.lemma = f[0], f[1], f[4], f[5], f[7]


# Parsed tokens by surface and raw features. Sentence-final tokens (。, た, ます, です, だ …)
# repeat endlessly, so this spares most parsing in detect_style's hot path. _Tok objects
# are never mutated, so sharing them is safe.
_TOKS: dict[str, _Tok] = {}
_TOKS_MAX = 50_000


def _parse(node) -> _Tok:
    surface = node.surface
    raw = node.feature_raw
    key = surface + "\t" + raw
    t = _TOKS.get(key)
    if t is None:
        if len(_TOKS) >= _TOKS_MAX:
            _TOKS.clear()  # bounded memory on huge, varied corpora
        t = _TOKS[key] = _Tok(surface, raw)
    return t


class _Sentence:
    """A tokenized sentence with lazily parsed token features."""

    __slots__ = ("text", "nodes", "_toks")

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self.nodes = tagger()(text)
        except (UnicodeError, ValueError, RuntimeError):
            # e.g. lone surrogates cannot be encoded for MeCab: treat as unanalyzable.
            self.nodes = []
        self._toks: dict[int, _Tok] = {}

    def tok(self, i: int) -> _Tok | None:
        t = self._toks.get(i)
        if t is None and 0 <= i < len(self.nodes):
            t = self._toks[i] = _parse(self.nodes[i])
        return t

    def quoted(self) -> list[bool]:
        """Per token: is it a bracket or inside a pair of brackets?

        Only matched pairs count: an opener that never closes ('(?' in an error message)
        does not hide the rest of the sentence, and a stray closer opens nothing."""
        flags = [False] * len(self.nodes)
        opened: list[int] = []
        for i, node in enumerate(self.nodes):
            surf = node.surface
            if _BRACKETS.isdisjoint(surf):
                continue
            flags[i] = True
            for ch in surf:
                if ch in _OPEN:
                    opened.append(i)
                elif ch in _CLOSE and opened:
                    start = opened.pop()
                    flags[start:i] = [True] * (i - start)
        return flags

    def offsets(self) -> list[tuple[int, int]] | None:
        """Character span of every token in ``text``, or None if they cannot be aligned."""
        spans = []
        pos = 0
        for node in self.nodes:
            surf = node.surface
            pos += len(node.white_space)
            if not self.text.startswith(surf, pos):
                pos = self.text.find(surf, pos)
                if pos < 0:
                    return None
            spans.append((pos, pos + len(surf)))
            pos += len(surf)
        return spans


# --- finding the main-clause final predicate ----------------------------------------------

# Trailing particles that may follow the predicate. Sentence-final particles (終助詞) are
# recognized by POS; these conjunctive ones end many spoken sentences (行きますけど。).
_TRAILING_CONJ = frozenset("けど けれど けれども から ので のに し が".split())
# Trailing particles after which a converted predicate still reads naturally.
_CONVERTIBLE_FINALS = frozenset("か の よ ね けど けれど けれども から ので し が ？".split())
_SKIP_POS = {"補助記号", "空白", "記号"}
# Skipped without parsing features: the hot path of detect_style.
_PUNCT = frozenset("。、！？!?,.，．…‥・～〜ー―-")
_QUESTION_MARKS = frozenset("？?")


def _find_predicate(sent: _Sentence) -> tuple[int, list[str]]:
    """Index of the last token of the final predicate chunk, and what follows it.

    What follows is the list of trailing particles, in order, with "？" standing for a
    question mark (行くか？ gives ["か", "？"]). Walks back from the end over punctuation,
    symbols, final particles and anything inside brackets or quotes, and stops at the first
    other token (which may still turn out to be no predicate: _classify decides). Returns
    (-1, ...) when nothing is left.
    """
    finals: list[str] = []
    # Most sentences have no brackets; only then is the per-token scan needed.
    quoted = None if _BRACKETS.isdisjoint(sent.text) else sent.quoted()
    nodes = sent.nodes
    i = len(nodes) - 1
    while i >= 0:
        surf = nodes[i].surface
        if quoted is not None and quoted[i]:
            i -= 1
            continue
        if surf in _PUNCT or sent.tok(i).pos1 in _SKIP_POS:
            # A question mark changes how some predicates convert (ある？ → ありますか？).
            if not _QUESTION_MARKS.isdisjoint(surf) and "？" not in finals:
                finals.append("？")
            i -= 1
            continue
        t = sent.tok(i)
        if t.pos1 == "助詞" and (
            t.pos2 == "終助詞" or (t.pos2 == "接続助詞" and surf in _TRAILING_CONJ)
        ):
            finals.append(surf)
            i -= 1
            continue
        if surf == "で" and t.ctype == "助動詞-ダ" and i > 0 and nodes[i - 1].surface == "の":
            # UniDic splits the conjunction ので into の + で; treat it as one particle.
            prev = sent.tok(i - 1)
            if prev.pos1 == "助詞" and prev.pos2 == "準体助詞":
                finals.append("ので")
                i -= 2
                continue
        break
    if len(finals) > 1:
        finals.reverse()
    return i, finals


def _classify(sent: _Sentence, e: int, finals: list[str]) -> Style:
    """Style of the predicate chunk ending at token ``e``."""
    t = sent.tok(e)
    if t is None:
        return Style.NONE
    k = e
    tk = t
    while tk is not None and tk.pos1 == "助動詞":
        if tk.ctype in ("助動詞-マス", "助動詞-デス"):
            return Style.POLITE
        k -= 1
        tk = sent.tok(k)
    if t.pos1 == "動詞" and t.lemma == "下さる" and t.cform == "命令形":
        return Style.POLITE  # 〜てください
    if k < e or t.ctype not in ("*", ""):  # an auxiliary, or any conjugating word
        return Style.PLAIN
    if _te_request(sent, e):
        return Style.PLAIN  # ちょっと待って。 忘れないで。
    if _is_nominal(t) and (finals[:1] == ["か"] or finals == ["？"]):
        return Style.PLAIN  # zero-copula question: 本か。 行くのか。 本当？
    if t.pos1 == "助詞" and t.pos2 == "準体助詞":
        prev = sent.tok(e - 1)
        if prev is not None and prev.pos1 in ("動詞", "形容詞", "助動詞"):
            return _classify(sent, e - 1, [])
    return Style.NONE


def _te_request(sent: _Sentence, e: int) -> bool:
    """Does the sentence end in a bare て-form, a plain request (待って, 忘れないで)?"""
    t = sent.tok(e)
    if t.pos1 != "助詞" or t.pos2 != "接続助詞" or t.surface not in ("て", "で"):
        return False
    p = sent.tok(e - 1)
    return p is not None and p.pos1 in ("動詞", "助動詞") and p.ctype not in ("*", "")


def _is_nominal(t: _Tok) -> bool:
    return t.pos1 in ("名詞", "代名詞", "形状詞") or (t.pos1 == "助詞" and t.pos2 == "準体助詞")


def _quoted_inner(text: str) -> tuple[int, int] | None:
    """(start, end) of the inside when the whole sentence is one quote: 「行こう。」"""
    if not text or text[0] not in _OPEN:
        return None
    depth = 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth == 0:
                rest = text[i + 1 :]
                if all(c in _TERMINATORS or c.isspace() for c in rest):
                    return 1, i
                return None
    return None


# What separates a message from an appended detail: 失敗しました: %s, 無効です - %s.
_DETAIL = re.compile(r"[:：]|\s[-–—]+\s")


def _detail_head(text: str) -> str | None:
    """The text before the last separator outside brackets, when there is one.

    ``…に失敗しました: %s`` is a sentence with a detail appended: the main predicate is
    before the separator, like one before a parenthesised remark."""
    if ":" not in text and "：" not in text and " " not in text:
        return None  # the hot path: most sentences have no separator at all
    for m in reversed(list(_DETAIL.finditer(text))):
        head = text[: m.start()]
        if sum(map(head.count, _OPEN)) <= sum(map(head.count, _CLOSE)):
            return head
    return None


def _sentence_style(text: str) -> Style:
    head = _detail_head(text)
    if head is not None:
        style = _sentence_style(head)
        if style is not Style.NONE:
            return style  # otherwise (注意: 元に戻せません) the detail holds the predicate
    sent = _Sentence(text)
    e, finals = _find_predicate(sent)
    if e >= 0:
        style = _classify(sent, e, finals)
        if style is not Style.NONE:
            return style
    inner = _quoted_inner(text)
    if inner is not None:
        # A sentence that is nothing but a quote (a line of dialogue) has the quote's style.
        return _combine(_sentence_style(s) for s in split_sentences(text[inner[0] : inner[1]]))
    return Style.NONE


def _combine(styles) -> Style:
    result = Style.NONE
    for style in styles:
        if style is Style.NONE or style is result:
            continue
        if result is not Style.NONE or style is Style.MIXED:
            return Style.MIXED  # both plain and polite occur (or a part is mixed already)
        result = style
    return result


def sentence_styles(text: str) -> list[tuple[str, Style]]:
    """Each sentence of ``text`` (as :func:`split_sentences` gives it) with its style."""
    return [(s, _sentence_style(s)) for s in split_sentences(text)]


def detect_style(text: str) -> Style:
    """The style of ``text``: PLAIN, POLITE, MIXED (both occur) or NONE (no predicate).

    One sentence has the style of its main-clause final predicate; quoted speech inside a
    sentence does not count.
    """
    stripped = text.strip()
    if not _SPECIAL.search(stripped, 0, len(stripped) - 1):
        # One sentence (no terminator, bracket or break before its last character): the
        # common case, decided without building spans.
        return _sentence_style(stripped) if stripped else Style.NONE
    return _combine(_sentence_style(s) for s in split_sentences(text))


# --- conjugation --------------------------------------------------------------------------

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

# The forms _Verb.form() produces, as indexes into the ending tables below.
_MIZEN, _RENYOU, _SHUUSHI, _VOLITIONAL, _PAST = range(5)
# Endings after the stem, in that order, for the classes with one fixed pattern.
_ICHIDAN_FORMS = ("", "", "る", "よう", "た")
_SURU_FORMS = ("し", "し", "する", "しよう", "した")
# カ変 written with the kanji (来ない, 来ます, 来る) or in kana (こない, きます, くる).
_KURU_KANJI_FORMS = ("来", "来", "来る", "来よう", "来た")
_KURU_KANA_FORMS = ("こ", "き", "くる", "こよう", "きた")


class _Verb:
    """A verb-like token reduced to its class and stem, able to produce other forms."""

    def __init__(self, kind: str, stem: str, row: str = "", lemma: str = "") -> None:
        self.kind, self.stem, self.row, self.lemma = kind, stem, row, lemma

    @classmethod
    def of(cls, t: _Tok | None) -> _Verb | None:
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
        """The form ``which`` (_MIZEN … _PAST), or None where the tables would be wrong."""
        st = self.stem
        if self.kind == "godan":
            a, i, u, _e, o = _GODAN_ROWS[self.row]
            if which == _MIZEN:
                return st + a
            if which == _RENYOU:
                return st + ("い" if self.lemma in _IRU_HONORIFIC else i)
            if which == _SHUUSHI:
                return st + u
            if which == _VOLITIONAL:
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


def _is(t: _Tok | None, ctype: str, cform_prefix: str = "") -> bool:
    return t is not None and t.ctype == ctype and t.cform.startswith(cform_prefix)


def _adjectival(t: _Tok | None) -> bool:
    """い-adjectives, adjectival suffixes (やすい) and auxiliaries conjugating like them."""
    return t is not None and t.ctype in ("形容詞", "助動詞-タイ", "助動詞-ナイ", "助動詞-ラシイ")


# --- conversion ---------------------------------------------------------------------------

# A rewrite: replace tokens first..last (inclusive) with the new text.
_Edit = tuple[int, int, str]


def _polite_edit(sent: _Sentence, e: int, finals: list[str]) -> _Edit | None:
    """How to make the plain predicate ending at ``e`` polite; None if unsupported."""
    t = sent.tok(e)
    if finals[:1] == ["の"]:  # explanatory の stays; the politeness goes after it
        if sent.tok(e + 1).surface != "の":
            return None
        if "？" not in finals:
            return e + 1, e + 1, "のです"  # 行くの。 → 行くのです。
        if t.ctype == "助動詞-ダ" and t.surface == "な":
            return e, e + 1, "ですか"  # 何時からなの？ → 何時からですか？
        return e + 1, e + 1, "のですか"  # 行くの？ → 行くのですか？
    edit = _polite_predicate(sent, e, finals)
    if edit is not None and finals == ["？"] and not edit[2].endswith("でしょう"):
        # A plain question marked only by ？ takes か in polite style: ある？ → ありますか？
        # (but だろう？ asks for agreement: でしょう？)
        edit = edit[0], edit[1], edit[2] + "か"
    return edit


def _polite_predicate(sent: _Sentence, e: int, finals: list[str]) -> _Edit | None:
    t = sent.tok(e)
    p = sent.tok(e - 1)
    if t.lemma == "呉れる" and t.cform == "命令形" and _before_request(p):
        return e, e, "ください"  # 窓を閉めてくれ → 窓を閉めてください
    if _te_request(sent, e):
        return e, e, t.surface + "ください"  # 待って → 待ってください
    # である → です, であった → でした
    if t.lemma == "有る" and t.cform.startswith("終止形") and _is(p, "助動詞-ダ", "連用形"):
        return (e - 1, e, "です") if p.surface == "で" else None
    if t.ctype == "助動詞-タ" and t.cform.startswith("終止形") and p is not None:
        pp = sent.tok(e - 2)
        if p.lemma == "有る" and _is(pp, "助動詞-ダ", "連用形") and pp.surface == "で":
            return e - 2, e, "でした"
        if p.ctype == "助動詞-ダ":  # だった → でした
            return e - 1, e, "でした"
        if p.ctype == "助動詞-ナイ":  # 行かなかった → 行きませんでした
            v = _Verb.of(pp)
            return (e - 2, e, v.form(_RENYOU) + "ませんでした") if v else None
        if p.pos1 == "形容詞" and p.lemma == "無い" and not _after_adjective(sent, e - 1):
            return e - 1, e, "ありませんでした"  # ではなかった → ではありませんでした
        if _adjectival(p):  # 面白かった → 面白かったです
            return e, e, t.surface + "です"
        v = _Verb.of(p)
        if v is not None and p.cform.startswith("連用形"):
            return e - 1, e, v.form(_RENYOU) + "ました"
        return None
    if t.ctype == "助動詞-ナイ" and t.cform.startswith("終止形"):  # 行かない → 行きません
        v = _Verb.of(p)
        return (e - 1, e, v.form(_RENYOU) + "ません") if v else None
    if t.ctype == "助動詞-ダ":
        if t.cform.startswith("終止形"):
            return e, e, "です"
        if t.surface == "な" and finals[:1] == ["ので"]:  # 学生なので → 学生ですので
            return e, e, "です"
        if t.cform == "意志推量形":
            return e, e, "でしょう"
        return None
    if _adjectival(t) and t.cform.startswith("終止形"):
        if t.pos1 == "形容詞" and t.lemma == "無い" and not _after_adjective(sent, e):
            return e, e, "ありません"  # ではない, 時間がない
        return e, e, t.surface + "です"  # 面白い, 寒くない → 寒くないです
    v = _Verb.of(t)
    if v is not None:
        if t.cform.startswith(("終止形", "連体形")):
            return e, e, v.form(_RENYOU) + "ます"
        if t.cform == "意志推量形":
            return e, e, v.form(_RENYOU) + "ましょう"
        return None
    if _is_nominal(t) and (finals[:1] == ["か"] or finals == ["？"]):  # 本か → 本ですか
        return e, e, t.surface + "です"
    return None


def _after_adjective(sent: _Sentence, i: int) -> bool:
    """Is the ない at ``i`` the negation of an adjective (寒くない, 食べたくない)?"""
    p = sent.tok(i - 1)
    return _adjectival(p) and p.cform.startswith("連用形")


def _before_request(p: _Tok | None) -> bool:
    """Can くれ/ください follow ``p`` as a request (待ってください, 返事をください)?

    Not after お/ご + verb stem (お待ちください), which has no plain counterpart.
    """
    return p is not None and p.pos1 == "助詞" and p.surface in ("て", "で", "を")


def _plain_edit(sent: _Sentence, e: int, finals: list[str]) -> _Edit | None:
    """How to make the polite predicate ending at ``e`` plain; None if unsupported."""
    edit = _plain_predicate(sent, e, finals)
    t = sent.tok(e)
    if edit is None or finals[:2] != ["か", "？"] or t.cform == "意志推量形":
        return edit
    if sent.tok(e + 1).surface != "か":
        return edit  # something stands between the predicate and か: leave か alone
    # A polite question with か and ？ is a plain question with ？ alone: ありますか？ →
    # ある？, 学生ですか？ → 学生なの？ (but 行きましょうか？ → 行こうか？, でしょうか？ →
    # だろうか？ keep it). The か token directly follows the predicate.
    first, _, new = edit
    p = sent.tok(e - 1)
    if t.ctype == "助動詞-デス" and new == "":
        # です dropped: after nouns (and particles like から) the plain question is 〜なの？
        if not (_adjectival(p) or p.ctype == "助動詞-タ" or p.pos2 == "準体助詞"):
            new = "なの"
    return first, e + 1, new


def _plain_predicate(sent: _Sentence, e: int, finals: list[str]) -> _Edit | None:
    t = sent.tok(e)
    p = sent.tok(e - 1)
    if t.lemma == "下さる" and t.cform == "命令形":
        if not _before_request(p):
            return None
        # 待ってください → 待って (the neutral plain request; 待ってくれ is blunt);
        # 返事をください → 返事をくれ
        return (e, e, "くれ") if p.surface == "を" else (e, e, "")
    if t.ctype == "助動詞-マス":
        v = _plain_verb(p)
        if v is None:
            return None
        if t.cform.startswith(("終止形", "連体形")):  # 行きます → 行く
            return e - 1, e, v.form(_SHUUSHI)
        if t.cform == "意志推量形":  # 行きましょう → 行こう
            return e - 1, e, v.form(_VOLITIONAL)
        return None
    if t.ctype == "助動詞-ヌ" and _is(p, "助動詞-マス", "未然形"):  # 行きません → 行かない
        return _negative(sent, e - 2, e, "ない")
    if t.ctype == "助動詞-タ" and t.cform.startswith("終止形"):
        pp = sent.tok(e - 2)
        if _is(p, "助動詞-マス", "連用形"):  # 行きました → 行った
            v = _plain_verb(pp)
            past = v.form(_PAST) if v else None
            return (e - 2, e, past) if past else None
        if _is(p, "助動詞-デス", "連用形"):
            if _is(pp, "助動詞-ヌ") and _is(sent.tok(e - 3), "助動詞-マス", "未然形"):
                return _negative(sent, e - 4, e, "なかった")  # 行きませんでした
            if pp is None or _adjectival(pp) or _no_copula_after(pp):
                return None  # 面白いでした, 行くでした are not standard; no safe plain form
            return e - 1, e, "だった"  # 学生でした → 学生だった
        return None
    if t.ctype == "助動詞-デス":
        if t.cform == "意志推量形":  # でしょう → だろう
            return e, e, "だろう"
        if not t.cform.startswith(("終止形", "連体形")) or p is None:
            return None
        if _adjectival(p) or p.ctype == "助動詞-タ":  # 面白いです, 面白かったです
            return e, e, ""
        if finals and finals[0] == "か":  # 学生ですか → 学生か
            return e, e, ""
        if finals and finals[0] == "ので":  # 学生ですので → 学生なので
            return e, e, "な"
        if _no_copula_after(p) and not _prefixed_stem(sent, e - 1):
            return None  # 行くです is not standard Japanese (but 行くべきです → 行くべきだ is)
        return e, e, "だ"
    return None


def _prefixed_stem(sent: _Sentence, i: int) -> bool:
    """Is token ``i`` a verb stem after お/ご, used as a noun (ご存じです, お休みです)?"""
    t, p = sent.tok(i), sent.tok(i - 1)
    return p is not None and p.pos1 == "接頭辞" and t.cform.startswith("連用形")


def _no_copula_after(t: _Tok) -> bool:
    """Is だ impossible right after ``t`` (a verb form or a polite auxiliary)?"""
    return _Verb.of(t) is not None or t.ctype in ("助動詞-マス", "助動詞-デス", "助動詞-ヌ")


def _plain_verb(t: _Tok | None) -> _Verb | None:
    """The verb before ます as a plain-style verb: humble おる/いたす become いる/する."""
    v = _Verb.of(t)
    if v is None or t.lemma == "御座る":
        return None  # ございます: ある or だ depending on use, so no safe plain form
    if t.lemma == "居る" and v.kind == "godan" and v.stem in ("お", "居"):
        return _Verb("ichidan", "い" if v.stem == "お" else "居")  # しております → している
    if t.lemma == "致す" and v.kind == "godan":
        return _Verb("suru", "")  # ご案内いたします → ご案内する
    return v


def _negative(sent: _Sentence, v_index: int, last: int, ending: str) -> _Edit | None:
    t = sent.tok(v_index)
    v = _plain_verb(t)
    if v is None:
        return None
    if t.lemma == "有る":  # ありません → ない, not あらない
        return v_index, last, ending
    return v_index, last, v.form(_MIZEN) + ending


def _convert_sentence(text: str, target: Style) -> str:
    head = _detail_head(text)
    if head is not None and _sentence_style(head) is not Style.NONE:
        # Only the message is rewritten, never the appended detail (失敗しました: %s).
        return _convert_sentence(head, target) + text[len(head) :]
    sent = _Sentence(text)
    e, finals = _find_predicate(sent)
    style = _classify(sent, e, finals) if e >= 0 else Style.NONE
    if style is Style.NONE:
        inner = _quoted_inner(text)
        if inner is None:
            return text
        a, b = inner
        return text[:a] + _convert_text(text[a:b], target) + text[b:]
    if style is target:
        return text
    if any(f not in _CONVERTIBLE_FINALS for f in finals):
        return text
    make = _polite_edit if target is Style.POLITE else _plain_edit
    edit = make(sent, e, finals)
    if edit is None:
        return text
    first, last, new = edit
    spans = sent.offsets()
    if spans is None:
        return text
    result = text[: spans[first][0]] + new + text[spans[last][1] :]
    # Re-read the result: if the tagger does not see the target style in it (odd input,
    # a reading that changed), the rewrite was wrong, and the original is safer.
    return result if _sentence_style(result) is target else text


def _convert_text(text: str, target: Style) -> str:
    parts = []
    pos = 0
    for a, b in _sentence_spans(text):
        parts.append(text[pos:a])
        parts.append(_convert_sentence(text[a:b], target))
        pos = b
    parts.append(text[pos:])
    return "".join(parts)


def to_polite(text: str) -> str:
    """Rewrite each plain sentence's main-clause predicate in 敬体; the rest is unchanged.

    Already polite sentences, sentences without a predicate and unsupported forms are
    returned as they are.
    """
    return _convert_text(text, Style.POLITE)


def to_plain(text: str) -> str:
    """Rewrite each polite sentence's main-clause predicate in 常体; the rest is unchanged.

    Already plain sentences, sentences without a predicate and unsupported forms are
    returned as they are.
    """
    return _convert_text(text, Style.PLAIN)
