"""The instruction templates of each init category as a table, read from the builders' own
task tables (``style.TASKS``, ``katakana.KANA_TASKS``, …), so it cannot drift from what they
build. Notebooks 01–05 show it before their samples: the heart of the curriculum is which
register each language goes with."""

from __future__ import annotations

from qeu_utils.builders import country, food, kanji, katakana, style

# A field or a language code (the side of a record's ``lang``) → what a reader calls it.
LABELS = {
    "plain": "普通体の日本語", "polite": "敬体の日本語", "ja": "日本語", "en": "英語",
    "zh": "中国語", "zh_hans": "中国語（簡体字）", "zh-Hans": "中国語（簡体字）",
    "zh_hant": "中国語（繁体字）", "zh-Hant": "中国語（繁体字）", "ja-Latn": "ローマ字",
    "katakana": "カタカナ", "hiragana": "ひらがな", "word": "カタカナ語", "english": "英語",
}
# A record's ``style`` → the register of its instruction and answer; "—": the answer has none
# (a word, a name, one kanji).
REGISTERS = {"plain": "普通体", "polite": "敬体", "": "—"}
CATEGORIES = ("style", "katakana", "country", "kanji", "food")


def _specs(category: str) -> list[tuple[str, str, str, str, list]]:
    """(task, input field, lang, record style, templates) for each task of ``category``."""
    if category == "style":
        return [(t, src, lang, st, tpl) for t, (src, _, lang, st, tpl) in style.TASKS.items()]
    if category == "katakana":  # kana and loanword records carry no style
        tasks = {**katakana.KANA_TASKS, **katakana.LOANWORD_TASKS}
        return ([(t, src, lang, "", tpl) for t, (src, _, lang, tpl) in tasks.items()]
                + [(t, src, lang, st, tpl)
                   for t, (src, lang, st, tpl) in katakana.ANNOTATE_TASKS.items()])
    if category in ("country", "food"):  # common.translation_records sets no style
        module = country if category == "country" else food
        specs = [(t, src, lang, "", tpl) for t, (src, _, lang, tpl) in module.TASKS.items()]
        if category == "food":  # the origin question is paired with its answer
            specs += [(t, src, lang, st, [q for q, _ in pairs])
                      for t, (src, lang, st, pairs) in food.ORIGIN_TASKS.items()]
        return specs
    if category == "kanji":  # one kanji per answer: no style
        return [(t, kanji.LANG[t].split(">")[0], kanji.LANG[t], "", tpl)
                for t, tpl in kanji.TEMPLATES.items()]
    raise ValueError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")


def template_table(category: str) -> list[dict]:
    """One row per instruction template of ``category``: ``task``, ``instruction`` (``{x}``
    stands for the item asked about), ``input`` (what the item is), ``answer_language`` and
    ``register`` (普通体 / 敬体 / — as the record's ``style``). Raises ``ValueError`` for a
    category that is not one of ``CATEGORIES``."""
    return [
        {"task": task, "instruction": template, "input": LABELS[src],
         "answer_language": LABELS[lang.split(">")[1]], "register": REGISTERS[st]}
        for task, src, lang, st, templates in _specs(category)
        for template in templates
    ]
