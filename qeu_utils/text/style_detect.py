"""常体 (plain) / 敬体 (polite) Japanese: style detection.

The style of a sentence is the style of its main-clause final predicate: the last predicate
chunk before sentence-final punctuation and particles, skipping quoted speech. Analysis uses
fugashi with UniDic (unidic-lite) conjugation features. The tokens and the predicate search
here are what ``style_convert`` rewrites.
"""

from __future__ import annotations

import re
from enum import Enum

from qeu_utils.text.sentences import (
    BRACKETS,
    CLOSE,
    OPEN,
    SPECIAL,
    TERMINATORS,
    split_sentences,
)
from qeu_utils.text.tagger import tagger

__all__ = ["Style", "detect_style", "sentence_styles"]


class Style(str, Enum):
    """The style of a sentence or a text."""

    PLAIN = "plain"
    POLITE = "polite"
    MIXED = "mixed"
    NONE = "none"

    def __str__(self) -> str:
        return self.value


# --- tokens -------------------------------------------------------------------------------


class Token:
    """The UniDic fields read here: surface, pos1, pos2, cType, cForm, lemma."""

    __slots__ = ("surface", "pos1", "pos2", "ctype", "cform", "lemma")

    def __init__(self, surface: str, raw: str) -> None:
        self.surface = surface
        f = raw.split(",", 8)  # fields past the lemma are never read
        # Unknown words carry fewer fields; pad so indexing never fails.
        if len(f) < 8:
            f += ["*"] * (8 - len(f))
        self.pos1, self.pos2, self.ctype, self.cform, self.lemma = f[0], f[1], f[4], f[5], f[7]


# Parsed tokens by surface and raw features. Sentence-final tokens (。, た, ます, です, だ …)
# repeat endlessly, so this spares most parsing in detect_style's hot path. Token objects
# are never mutated, so sharing them is safe.
_TOKS: dict[str, Token] = {}
_TOKS_MAX = 50_000


def _parse(node) -> Token:
    surface = node.surface
    raw = node.feature_raw
    key = surface + "\t" + raw
    t = _TOKS.get(key)
    if t is None:
        if len(_TOKS) >= _TOKS_MAX:
            _TOKS.clear()  # bounded memory on huge, varied corpora
        t = _TOKS[key] = Token(surface, raw)
    return t


class TaggedSentence:
    """A tokenized sentence with lazily parsed token features."""

    __slots__ = ("text", "nodes", "_toks")

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self.nodes = tagger()(text)
        except (UnicodeError, ValueError, RuntimeError):
            # e.g. lone surrogates cannot be encoded for MeCab: treat as unanalyzable.
            self.nodes = []
        self._toks: dict[int, Token] = {}

    def tok(self, i: int) -> Token | None:
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
            if BRACKETS.isdisjoint(surf):
                continue
            flags[i] = True
            for ch in surf:
                if ch in OPEN:
                    opened.append(i)
                elif ch in CLOSE and opened:
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
_SKIP_POS = {"補助記号", "空白", "記号"}
# Skipped without parsing features: the hot path of detect_style.
_PUNCT = frozenset("。、！？!?,.，．…‥・～〜ー―-")
_QUESTION_MARKS = frozenset("？?")


def find_predicate(sent: TaggedSentence) -> tuple[int, list[str]]:
    """Index of the last token of the final predicate chunk, and what follows it.

    What follows is the list of trailing particles, in order, with "？" standing for a
    question mark (行くか？ gives ["か", "？"]). Walks back from the end over punctuation,
    symbols, final particles and anything inside brackets or quotes, and stops at the first
    other token (which may still turn out to be no predicate: classify decides). Returns
    (-1, ...) when nothing is left.
    """
    finals: list[str] = []
    # Most sentences have no brackets; only then is the per-token scan needed.
    quoted = None if BRACKETS.isdisjoint(sent.text) else sent.quoted()
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


def classify(sent: TaggedSentence, e: int, finals: list[str]) -> Style:
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
    if te_request(sent, e):
        return Style.PLAIN  # ちょっと待って。 忘れないで。
    if is_nominal(t) and (finals[:1] == ["か"] or finals == ["？"]):
        return Style.PLAIN  # zero-copula question: 本か。 行くのか。 本当？
    if t.pos1 == "助詞" and t.pos2 == "準体助詞":
        prev = sent.tok(e - 1)
        if prev is not None and prev.pos1 in ("動詞", "形容詞", "助動詞"):
            return classify(sent, e - 1, [])
    return Style.NONE


def te_request(sent: TaggedSentence, e: int) -> bool:
    """Does the sentence end in a bare て-form, a plain request (待って, 忘れないで)?"""
    t = sent.tok(e)
    if t.pos1 != "助詞" or t.pos2 != "接続助詞" or t.surface not in ("て", "で"):
        return False
    p = sent.tok(e - 1)
    return p is not None and p.pos1 in ("動詞", "助動詞") and p.ctype not in ("*", "")


def is_nominal(t: Token) -> bool:
    return t.pos1 in ("名詞", "代名詞", "形状詞") or (t.pos1 == "助詞" and t.pos2 == "準体助詞")


def quoted_inner(text: str) -> tuple[int, int] | None:
    """(start, end) of the inside when the whole sentence is one quote: 「行こう。」"""
    if not text or text[0] not in OPEN:
        return None
    depth = 0
    for i, ch in enumerate(text):
        if ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth -= 1
            if depth == 0:
                rest = text[i + 1 :]
                if all(c in TERMINATORS or c.isspace() for c in rest):
                    return 1, i
                return None
    return None


# What separates a message from an appended detail: 失敗しました: %s, 無効です - %s.
_DETAIL = re.compile(r"[:：]|\s[-–—]+\s")


def detail_head(text: str) -> str | None:
    """The text before the last separator outside brackets, when there is one.

    ``…に失敗しました: %s`` is a sentence with a detail appended: the main predicate is
    before the separator, like one before a parenthesised remark."""
    if ":" not in text and "：" not in text and " " not in text:
        return None  # the hot path: most sentences have no separator at all
    for m in reversed(list(_DETAIL.finditer(text))):
        head = text[: m.start()]
        if sum(map(head.count, OPEN)) <= sum(map(head.count, CLOSE)):
            return head
    return None


def sentence_style(text: str) -> Style:
    head = detail_head(text)
    if head is not None:
        style = sentence_style(head)
        if style is not Style.NONE:
            return style  # otherwise (注意: 元に戻せません) the detail holds the predicate
    sent = TaggedSentence(text)
    e, finals = find_predicate(sent)
    if e >= 0:
        style = classify(sent, e, finals)
        if style is not Style.NONE:
            return style
    inner = quoted_inner(text)
    if inner is not None:
        # A sentence that is nothing but a quote (a line of dialogue) has the quote's style.
        return _combine(sentence_style(s) for s in split_sentences(text[inner[0] : inner[1]]))
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
    return [(s, sentence_style(s)) for s in split_sentences(text)]


def detect_style(text: str) -> Style:
    """The style of ``text``: PLAIN, POLITE, MIXED (both occur) or NONE (no predicate).

    One sentence has the style of its main-clause final predicate; quoted speech inside a
    sentence does not count.
    """
    stripped = text.strip()
    if not SPECIAL.search(stripped, 0, len(stripped) - 1):
        # One sentence (no terminator, bracket or break before its last character): the
        # common case, decided without building spans.
        return sentence_style(stripped) if stripped else Style.NONE
    return _combine(sentence_style(s) for s in split_sentences(text))
