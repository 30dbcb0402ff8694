"""Category ``katakana``: the kana table and loanwords (外来語) with their English.

- The kana table (``qeu_utils.text.katakana.kana_table``): katakana → hiragana, katakana →
  romaji, hiragana → katakana.
- Loanwords harvested from real text — the project's trilingual sentences, its dish names and
  its loanword list — with ``find_loanwords`` (UniDic, JMdict, the project list): loanword →
  English and back. Only words with a trustworthy English meaning are used.
- The QEU trait itself: a sentence whose loanwords get their English in parentheses
  (``annotate_loanwords``), as the stage-2 Dolly revision does.
"""

from __future__ import annotations

from qeu_utils.builders.common import Group, choose
from qeu_utils.core.records import make_record
from qeu_utils.core.resources import source_path
from qeu_utils.text.katakana import annotate_loanwords, harvest_loanwords, kana_table
from qeu_utils.text.sources import (
    TRILINGUAL_COLUMNS,
    loanword_texts,
    read_tsv,
)

KANA_TASKS = {
    "kana_to_hiragana": ("katakana", "hiragana", "ja>ja", [
        "カタカナの「{x}」をひらがなで書いてください。",
        "「{x}」をひらがなにしてください。",
    ]),
    # Romaji is Japanese in Latin letters, not English (BCP 47: ja-Latn).
    "kana_to_romaji": ("katakana", "romaji", "ja>ja-Latn", [
        "カタカナの「{x}」をローマ字（ヘボン式）で書いてください。",
        "「{x}」の読みをローマ字で答えてください。",
    ]),
    "hiragana_to_kana": ("hiragana", "katakana", "ja>ja", [
        "ひらがなの「{x}」をカタカナで書いてください。",
        "「{x}」をカタカナにしてください。",
    ]),
}
# Answered in English, so asked politely (the curriculum's polite ⇄ English link). The English
# is the word's meaning, not always its source: カルテ is German Karte ("patient's chart"),
# テスト is glossed "examination", ノートパソコン "laptop computer". So the questions ask what
# the word is called in English, and which katakana word means the English — never to write
# the English in katakana, which would pass カルテ off as a transliteration of English.
# task: (from field, to field, lang, templates), as KANA_TASKS; a word is its katakana ``word``
# and its ``english``.
LOANWORD_TASKS = {
    "loanword_to_en": ("word", "english", "ja>en", [
        "カタカナ語「{x}」は英語で何と言いますか？",
        "「{x}」を英語で言うと何ですか？",
    ]),
    "en_to_loanword": ("english", "word", "en>ja", [
        "英語の「{x}」は、日本語のカタカナ語で何と言いますか？",
        "「{x}」を表すカタカナ語は何ですか？",
    ]),
}
# task: (column of trilingual.tsv, lang, style of the record, templates): the polite sentences
# come back with their loanwords annotated.
ANNOTATE_TASKS = {
    "annotate_loanwords": ("polite", "ja>ja", "polite", [
        "次の文のカタカナ語に、英語を括弧で添えてください。",
        "この文に出てくる外来語の後ろに、英語での言い方を半角の括弧 () で書き加えてください。",
    ]),
}
KANA_WEIGHT = 0.5


def build_katakana(seed: int = 0) -> list[Group]:
    groups = []
    for row in kana_table():
        fields = {"katakana": row.katakana, "hiragana": row.hiragana, "romaji": row.romaji}
        records = []
        for task, (src, dst, lang, templates) in KANA_TASKS.items():
            if not fields[dst]:  # ッ has no romaji of its own (it doubles the next consonant)
                continue
            template = choose(templates, seed, "katakana", task, row.katakana)
            records.append(make_record(
                category="katakana", task=task, instruction=template.format(x=fields[src]),
                output=fields[dst], lang=lang, source="unicode",
            ))
        groups.append(Group(key=f"kana:{row.katakana}", records=records, weight=KANA_WEIGHT))

    sentences = [row for _, row in read_tsv(source_path("trilingual.tsv"), TRILINGUAL_COLUMNS)]
    for word, english in sorted(harvest_loanwords(loanword_texts(sentences)).items()):
        fields = {"word": word, "english": english}
        records = []
        for task, (src, dst, lang, templates) in LOANWORD_TASKS.items():
            template = choose(templates, seed, "katakana", task, word)
            records.append(make_record(
                category="katakana", task=task, instruction=template.format(x=fields[src]),
                output=fields[dst], lang=lang, source="unidic+jmdict",
            ))
        groups.append(Group(key=f"word:{word}", records=records))

    for task, (column, lang, style, templates) in ANNOTATE_TASKS.items():
        for sentence in (row[column] for row in sentences):
            annotated = annotate_loanwords(sentence)
            if annotated == sentence:
                continue
            template = choose(templates, seed, "katakana", "annotate", sentence)
            groups.append(Group(key=f"sentence:{sentence}", records=[make_record(
                category="katakana", task=task, instruction=template, input=sentence,
                output=annotated, lang=lang, style=style, source="project+unidic+jmdict",
            )]))
    return groups

