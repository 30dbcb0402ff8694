"""Category ``kanji``: one Jōyō kanji per record, Japanese ⇄ Simplified ⇄ Traditional.

Characters whose three forms differ get all four tasks and full weight; the rest (山 → 山) only
``ja_to_hans`` at a fifth of the weight, so a size-limited build is mostly the interesting cases.
An ambiguous character (弁 → 辨/辯/瓣) is answered with every candidate, never with one of them;
a reverse lookup answers with every Jōyō kanji that has that form (发 → 発・髪).
"""

from __future__ import annotations

from collections import defaultdict

from qeu_utils.builders.common import Group, choose
from qeu_utils.core.records import make_record
from qeu_utils.text.kanji import joyo_kanji, kanji_answer, variants

TEMPLATES = {
    # Answered in Chinese, so asked in plain Japanese (the curriculum's plain ⇄ Chinese link).
    # An answer's note on ambiguity (「…（意味によって字が異なる）」) is in the register of its
    # task's instructions: REGISTER below.
    "ja_to_hans": [
        "日本の漢字「{x}」を中国語の簡体字で書いて。",
        "「{x}」の簡体字は何？",
        "次の日本の漢字を簡体字に直して。",
    ],
    "ja_to_hant": [
        "日本の漢字「{x}」を中国語の繁体字で書いて。",
        "「{x}」の繁体字は何？",
        "次の日本の漢字を繁体字に直して。",
    ],
    "hans_to_ja": [
        "簡体字の「{x}」は、日本の漢字ではどう書きますか？",
        "次の簡体字を日本の漢字に直してください。",
    ],
    "hant_to_ja": [
        "繁体字の「{x}」は、日本の漢字ではどう書きますか？",
        "次の繁体字を日本の漢字に直してください。",
    ],
}
LANG = {"ja_to_hans": "ja>zh-Hans", "ja_to_hant": "ja>zh-Hant",
        "hans_to_ja": "zh-Hans>ja", "hant_to_ja": "zh-Hant>ja"}
# The register of each task's instructions, and so of its answers' note.
REGISTER = {"ja_to_hans": "plain", "ja_to_hant": "plain",
            "hans_to_ja": "polite", "hant_to_ja": "polite"}
WEIGHT_SAME = 0.2


def _record(task: str, x: str, forms: list[str], seed: int) -> dict:
    template = choose(TEMPLATES[task], seed, "kanji", task, x)
    has_slot = "{x}" in template
    return make_record(
        category="kanji", task=task, instruction=template.format(x=x),
        input="" if has_slot else x, output=kanji_answer(forms, REGISTER[task]),
        lang=LANG[task], source="opencc",
    )


def build_kanji(seed: int = 0) -> list[Group]:
    joyo = joyo_kanji()
    forms = {c: variants(c) for c in joyo}
    from_hans, from_hant = defaultdict(list), defaultdict(list)
    for c, v in forms.items():
        for t in v.candidates:
            from_hant[t].append(c)
        for s in v.simplified_forms:
            from_hans[s].append(c)
    groups = []
    asked_back = set()  # 発 and 髪 share 发: its reverse question is asked once, not twice
    for c in joyo:
        v = forms[c]
        differs = len({v.japanese, v.traditional, v.simplified}) > 1
        hant = list(v.candidates) if v.ambiguous else [v.traditional]
        records = [_record("ja_to_hans", c, list(v.simplified_forms), seed)]
        if differs:
            records.append(_record("ja_to_hant", c, hant, seed))
            for task, form, index in (("hans_to_ja", v.simplified, from_hans),
                                      ("hant_to_ja", v.traditional, from_hant)):
                if (task, form) not in asked_back:
                    asked_back.add((task, form))
                    records.append(_record(task, form, index[form], seed))
        groups.append(Group(key=c, records=records, weight=1.0 if differs else WEIGHT_SAME))
    return groups
