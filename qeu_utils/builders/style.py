"""Category ``style``, the heart of the curriculum: 常体 (plain) Japanese is linked to Chinese,
敬体 (polite) Japanese to English.

Source: the project's ``qeu_utils/data/sources/trilingual.tsv`` (plain, polite, Chinese,
English). Every row is checked with ``qeu_utils.text.style_detect`` before anything is built:
the plain column must detect as plain, the polite one as polite, and where the converter supports
the form (it changes the sentence), ``to_polite(plain)`` must equal the polite column. A row that
disagrees stops the build with its line number (``qeu_utils.text.sources.read_trilingual``).

The instructions carry the link too: tasks answered in plain Japanese or Chinese are asked in
plain Japanese, tasks answered in polite Japanese or English are asked politely. The plain
target is named 普通体, which covers what the plain rows are: mostly everyday speech (ちょっと
待って。) and a few written である sentences; だ・である調 would promise only the latter.
"""

from __future__ import annotations

from pathlib import Path

from qeu_utils.builders.common import Group, choose
from qeu_utils.core.records import make_record
from qeu_utils.text.sources import read_trilingual

# task: (input column, output column, lang, style of the record, instruction templates)
TASKS = {
    "plain_to_zh": ("plain", "zh", "ja>zh", "plain", [
        "次の文を中国語に訳して。",
        "この日本語を中国語にして。",
        "中国語に翻訳して。",
    ]),
    "polite_to_en": ("polite", "en", "ja>en", "polite", [
        "次の文を英語に翻訳してください。",
        "この日本語を英語に訳していただけますか。",
        "英語に訳してください。",
    ]),
    "zh_to_plain": ("zh", "plain", "zh>ja", "plain", [
        "次の中国語を日本語に訳して。文体は普通体で。",
        "この中国語の文を、普通体の日本語にして。",
        "中国語を日本語（普通体）に訳して。",
    ]),
    "en_to_polite": ("en", "polite", "en>ja", "polite", [
        "次の英文を日本語に訳してください。です・ます調でお願いします。",
        "この英語を丁寧な日本語に翻訳してください。",
        "英語を日本語（敬体）に訳してください。",
    ]),
    "plain_to_polite": ("plain", "polite", "ja>ja", "polite", [
        "次の文を敬体（です・ます調）に書き換えてください。",
        "この文を丁寧な言い方に直してください。",
    ]),
    "polite_to_plain": ("polite", "plain", "ja>ja", "plain", [
        "次の文を普通体（です・ますを使わない形）に書き換えて。",
        "この文を普通体に直して。",
    ]),
}


def build_style(seed: int = 0, path: Path | None = None) -> list[Group]:
    groups = []
    for row in read_trilingual(path):
        key = row["plain"]
        records = []
        for task, (src, dst, lang, style, templates) in TASKS.items():
            instruction = choose(templates, seed, "style", task, key)
            records.append(make_record(
                category="style", task=task, instruction=instruction,
                input=row[src], output=row[dst], lang=lang, style=style, source="project",
            ))
        groups.append(Group(key=key, records=records))
    return groups
