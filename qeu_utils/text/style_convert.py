"""常体 (plain) / 敬体 (polite) Japanese: conversion.

Conversion rewrites only the characters of the main-clause final predicate chunk (found as
``style_detect`` finds it), so everything else (subordinate clauses, quotes, punctuation,
spacing) stays byte-for-byte intact. A sentence whose predicate form is not supported is
returned unchanged.
"""

from __future__ import annotations

from qeu_utils.text.conjugation import MIZEN, PAST, RENYOU, SHUUSHI, VOLITIONAL, Verb
from qeu_utils.text.sentences import sentence_spans
from qeu_utils.text.style_detect import (
    Style,
    TaggedSentence,
    Token,
    classify,
    detail_head,
    find_predicate,
    is_nominal,
    quoted_inner,
    sentence_style,
    te_request,
)

__all__ = ["to_polite", "to_plain"]

# --- conversion ---------------------------------------------------------------------------

# Trailing particles after which a converted predicate still reads naturally.
_CONVERTIBLE_FINALS = frozenset("か の よ ね けど けれど けれども から ので し が ？".split())


def _is(t: Token | None, ctype: str, cform_prefix: str = "") -> bool:
    return t is not None and t.ctype == ctype and t.cform.startswith(cform_prefix)


def _adjectival(t: Token | None) -> bool:
    """い-adjectives, adjectival suffixes (やすい) and auxiliaries conjugating like them."""
    return t is not None and t.ctype in ("形容詞", "助動詞-タイ", "助動詞-ナイ", "助動詞-ラシイ")


# A rewrite: replace tokens first..last (inclusive) with the new text.
_Edit = tuple[int, int, str]


def _polite_edit(sent: TaggedSentence, e: int, finals: list[str]) -> _Edit | None:
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


def _polite_predicate(sent: TaggedSentence, e: int, finals: list[str]) -> _Edit | None:
    t = sent.tok(e)
    p = sent.tok(e - 1)
    if t.lemma == "呉れる" and t.cform == "命令形" and _before_request(p):
        return e, e, "ください"  # 窓を閉めてくれ → 窓を閉めてください
    if te_request(sent, e):
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
            v = Verb.of(pp)
            return (e - 2, e, v.form(RENYOU) + "ませんでした") if v else None
        if p.pos1 == "形容詞" and p.lemma == "無い" and not _after_adjective(sent, e - 1):
            return e - 1, e, "ありませんでした"  # ではなかった → ではありませんでした
        if _adjectival(p):  # 面白かった → 面白かったです
            return e, e, t.surface + "です"
        v = Verb.of(p)
        if v is not None and p.cform.startswith("連用形"):
            return e - 1, e, v.form(RENYOU) + "ました"
        return None
    if t.ctype == "助動詞-ナイ" and t.cform.startswith("終止形"):  # 行かない → 行きません
        v = Verb.of(p)
        return (e - 1, e, v.form(RENYOU) + "ません") if v else None
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
    v = Verb.of(t)
    if v is not None:
        if t.cform.startswith(("終止形", "連体形")):
            return e, e, v.form(RENYOU) + "ます"
        if t.cform == "意志推量形":
            return e, e, v.form(RENYOU) + "ましょう"
        return None
    if is_nominal(t) and (finals[:1] == ["か"] or finals == ["？"]):  # 本か → 本ですか
        return e, e, t.surface + "です"
    return None


def _after_adjective(sent: TaggedSentence, i: int) -> bool:
    """Is the ない at ``i`` the negation of an adjective (寒くない, 食べたくない)?"""
    p = sent.tok(i - 1)
    return _adjectival(p) and p.cform.startswith("連用形")


def _before_request(p: Token | None) -> bool:
    """Can くれ/ください follow ``p`` as a request (待ってください, 返事をください)?

    Not after お/ご + verb stem (お待ちください), which has no plain counterpart.
    """
    return p is not None and p.pos1 == "助詞" and p.surface in ("て", "で", "を")


def _plain_edit(sent: TaggedSentence, e: int, finals: list[str]) -> list[_Edit]:
    """How to make the polite predicate ending at ``e`` plain: the rewrites to try, best
    first (empty if unsupported)."""
    edit = _plain_predicate(sent, e, finals)
    t = sent.tok(e)
    if edit is None:
        return []
    if finals[:2] != ["か", "？"] or t.cform == "意志推量形":
        return [edit]
    if sent.tok(e + 1).surface != "か":
        return [edit]  # something stands between the predicate and か: leave か alone
    # A polite question with か and ？ is a plain question with ？ alone: ありますか？ →
    # ある？, 学生ですか？ → 学生なの？ (but 行きましょうか？ → 行こうか？, でしょうか？ →
    # だろうか？ keep it). The か token directly follows the predicate.
    first, _, new = edit
    p = sent.tok(e - 1)
    if t.ctype == "助動詞-デス" and new == "":
        # です dropped: after nouns (and particles like から) the plain question is 〜なの？
        if not (_adjectival(p) or p.ctype == "助動詞-タ" or p.pos2 == "準体助詞"):
            if _question_word(sent, e - 1):
                # A question word asks on its own: 何ですか？ → 何？ (何なの？ sounds pressing).
                # 〜なの？ stays the fallback where the bare word does not read as a plain
                # question (どれ？ is tagged an interjection, どう？ and 何歳？ have no predicate).
                return [(first, e + 1, ""), (first, e + 1, "なの")]
            new = "なの"
    return [(first, e + 1, new)]


# Question words (UniDic lemmas) that end a plain question without なの: 誰？ いくら？
# Those whose lemma starts with 何 (何, 何処 どこ, 何時 いつ, 何れ どれ, 何方 どちら/どなた,
# 何故 なぜ, 何色) are found by that prefix.
_QUESTION_WORDS = frozenset({"誰", "幾ら", "幾つ", "どう", "如何"})


def _question_word(sent: TaggedSentence, i: int) -> bool:
    """Is token ``i`` a question word, or a counter after 何 (何時 read as 何 + 時, 何歳)?"""
    t = sent.tok(i)
    if t is None:
        return False
    if t.lemma in _QUESTION_WORDS or t.lemma.startswith("何"):
        return True
    p = sent.tok(i - 1)
    return p is not None and p.lemma == "何" and p.pos2 == "数詞"


def _plain_predicate(sent: TaggedSentence, e: int, finals: list[str]) -> _Edit | None:
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
            return e - 1, e, v.form(SHUUSHI)
        if t.cform == "意志推量形":  # 行きましょう → 行こう
            return e - 1, e, v.form(VOLITIONAL)
        return None
    if t.ctype == "助動詞-ヌ" and _is(p, "助動詞-マス", "未然形"):  # 行きません → 行かない
        return _negative(sent, e - 2, e, "ない")
    if t.ctype == "助動詞-タ" and t.cform.startswith("終止形"):
        pp = sent.tok(e - 2)
        if _is(p, "助動詞-マス", "連用形"):  # 行きました → 行った
            v = _plain_verb(pp)
            past = v.form(PAST) if v else None
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


def _prefixed_stem(sent: TaggedSentence, i: int) -> bool:
    """Is token ``i`` a verb stem after お/ご, used as a noun (ご存じです, お休みです)?"""
    t, p = sent.tok(i), sent.tok(i - 1)
    return p is not None and p.pos1 == "接頭辞" and t.cform.startswith("連用形")


def _no_copula_after(t: Token) -> bool:
    """Is だ impossible right after ``t`` (a verb form or a polite auxiliary)?"""
    return Verb.of(t) is not None or t.ctype in ("助動詞-マス", "助動詞-デス", "助動詞-ヌ")


def _plain_verb(t: Token | None) -> Verb | None:
    """The verb before ます as a plain-style verb: humble おる/いたす become いる/する."""
    v = Verb.of(t)
    if v is None or t.lemma == "御座る":
        return None  # ございます: ある or だ depending on use, so no safe plain form
    if t.lemma == "居る" and v.kind == "godan" and v.stem in ("お", "居"):
        return Verb("ichidan", "い" if v.stem == "お" else "居")  # しております → している
    if t.lemma == "致す" and v.kind == "godan":
        return Verb("suru", "")  # ご案内いたします → ご案内する
    return v


def _negative(sent: TaggedSentence, v_index: int, last: int, ending: str) -> _Edit | None:
    t = sent.tok(v_index)
    v = _plain_verb(t)
    if v is None:
        return None
    if t.lemma == "有る":  # ありません → ない, not あらない
        return v_index, last, ending
    return v_index, last, v.form(MIZEN) + ending


def _convert_sentence(text: str, target: Style) -> str:
    head = detail_head(text)
    if head is not None and sentence_style(head) is not Style.NONE:
        # Only the message is rewritten, never the appended detail (失敗しました: %s).
        return _convert_sentence(head, target) + text[len(head) :]
    sent = TaggedSentence(text)
    e, finals = find_predicate(sent)
    style = classify(sent, e, finals) if e >= 0 else Style.NONE
    if style is Style.NONE:
        inner = quoted_inner(text)
        if inner is None:
            return text
        a, b = inner
        return text[:a] + _convert_text(text[a:b], target) + text[b:]
    if style is target:
        return text
    if any(f not in _CONVERTIBLE_FINALS for f in finals):
        return text
    if target is Style.POLITE:
        edit = _polite_edit(sent, e, finals)
        edits = [] if edit is None else [edit]
    else:
        edits = _plain_edit(sent, e, finals)
    spans = sent.offsets() if edits else None
    if spans is None:
        return text
    for first, last, new in edits:
        result = text[: spans[first][0]] + new + text[spans[last][1] :]
        # Re-read the result: if the tagger does not see the target style in it (odd input,
        # a reading that changed), the rewrite was wrong; the next one, or the original, is
        # safer.
        if sentence_style(result) is target:
            return result
    return text


def _convert_text(text: str, target: Style) -> str:
    parts = []
    pos = 0
    for a, b in sentence_spans(text):
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
