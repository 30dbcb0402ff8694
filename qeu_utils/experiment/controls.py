"""The stage-1 data of the control conditions, built from the recipe's records (B). Every
condition has the same number of records, in the same order, so the same steps and batches.

- **C-changed** (:func:`derange_changed`): the pairs whose answer differs from the question
  (鉄 → 铁, ルーマニア → Romania, a plain sentence → its Chinese) get the answer of another such
  pair of the same task; the identity pairs (分 → 分, where copying the question is right) are
  kept. So C-changed keeps B's copy habit and every format and script, and breaks only which
  form goes with which.
- **C-swap** (:func:`swap_rule`): the style ⇄ language rule swapped — plain Japanese with
  English and polite Japanese with Chinese. A style record keeps its sentence and its
  Japanese side; the other language is replaced by the same sentence's other translation, and
  the instruction names the other language in the same register (``中国語に翻訳して。`` →
  ``英語に翻訳して。``; ``英語に訳してください。`` → ``中国語に訳してください。``), so the
  instruction's register goes with the new pairing too. ``plain_to_zh`` becomes
  ``plain_to_en``, ``polite_to_en`` → ``polite_to_zh``, ``zh_to_plain`` → ``en_to_plain``,
  ``en_to_polite`` → ``zh_to_polite``. Register-only tasks (``plain_to_polite``,
  ``polite_to_plain``) and every other category (kanji, country, katakana, food: they carry
  no register) are kept identical, so B − C-swap isolates the rule itself: the same items,
  budget and order, with only the register ⇄ language pairing reversed.
"""

from __future__ import annotations

import re
from collections import defaultdict

from qeu_utils.builders.common import rng_for
from qeu_utils.core.records import make_record

_FIELDS = ("category", "task", "instruction", "input", "output", "lang", "style", "source")

# B's task → (C-swap's task, input column, output column, lang)
SWAPPED_TASKS = {
    "plain_to_zh": ("plain_to_en", "plain", "en", "ja>en"),
    "polite_to_en": ("polite_to_zh", "polite", "zh", "ja>zh"),
    "zh_to_plain": ("en_to_plain", "en", "plain", "en>ja"),
    "en_to_polite": ("zh_to_polite", "zh", "polite", "zh>ja"),
}
_LANGUAGE = re.compile("中国語|英語|英文")
_OTHER = {"中国語": "英語", "英語": "中国語", "英文": "中国語"}


def asked_form(record: dict) -> str:
    """The text a record asks about: its input, or the 「…」 quoted in the instruction."""
    if record["input"]:
        return record["input"]
    quoted = re.search(r"「([^「」]+)」", record["instruction"])
    return quoted.group(1) if quoted else ""


def is_changed(record: dict) -> bool:
    """Whether the answer differs from the question (copying the question would be wrong)."""
    return record["output"].strip() != asked_form(record).strip()


def _with(record: dict, **changes) -> dict:
    return make_record(**{**{k: record[k] for k in _FIELDS}, **changes})


def derange_changed(records: list[dict], seed: int) -> tuple[list[dict], dict]:
    """C-changed: the same records, in the same order; each pair whose answer differs from its
    question takes the answer of another such pair of the same (category, task).

    Within a task the changed pairs are grouped by answer, the groups and their members
    shuffled (seeded), and every pair takes the answer ``m`` places further round the circle,
    ``m`` being the largest group's size: a derangement of the answer *texts* whenever no
    answer fills more than half of them. A task whose changed pairs share one answer keeps
    them. Returns the records and ``{"<category>/<task>": {"records", "identity",
    "deranged", "kept_own_answer", "note"}}``."""
    by_task: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_task[(record["category"], record["task"])].append(i)
    outputs = [r["output"] for r in records]
    new = list(outputs)
    report = {}
    for (category, task), indices in by_task.items():
        changed = [i for i in indices if is_changed(records[i])]
        groups: dict[str, list[int]] = defaultdict(list)
        for i in changed:
            groups[outputs[i]].append(i)
        entry = {"records": len(indices), "identity": len(indices) - len(changed),
                 "deranged": 0, "kept_own_answer": len(changed), "note": ""}
        report[f"{category}/{task}"] = entry
        if len(groups) < 2:
            entry["note"] = "fewer than two different changed answers: nothing to swap"
            continue
        rng = rng_for(seed, "derange-changed", category, task)
        ordered = list(groups.values())
        rng.shuffle(ordered)
        for group in ordered:
            rng.shuffle(group)
        circle = [i for group in ordered for i in group]
        shift = max(len(g) for g in ordered)
        for pos, i in enumerate(circle):
            new[i] = outputs[circle[(pos + shift) % len(circle)]]
        kept = sum(new[i] == outputs[i] for i in changed)
        entry.update(deranged=len(changed) - kept, kept_own_answer=kept,
                     note="" if kept == 0 else "one answer fills more than half the task")
    result = [r if out == r["output"] else _with(r, output=out)
              for r, out in zip(records, new, strict=True)]
    return result, report


def swap_instruction(instruction: str) -> str:
    """The instruction with the language it names swapped (中国語 ⇄ 英語, 英文 → 中国語), its
    register untouched; an error when it names neither (a template this module does not
    know)."""
    if not _LANGUAGE.search(instruction):
        raise ValueError(f"style instruction {instruction!r} names neither Chinese nor English")
    return _LANGUAGE.sub(lambda m: _OTHER[m.group(0)], instruction)


def swap_rule(records: list[dict], sentences: list[dict] | None = None
              ) -> tuple[list[dict], dict]:
    """C-swap: the style ⇄ language rule reversed (see the module docstring). ``sentences``:
    the trilingual rows (``plain``, ``polite``, ``zh``, ``en``) the style records come from
    (default: the project's source). Returns the records and ``{"<task>": count}`` of the
    swapped ones."""
    if sentences is None:
        from qeu_utils.text.sources import read_trilingual

        sentences = read_trilingual()
    by_form = {(column, row[column]): row for row in sentences for column in ("plain", "polite")}
    result, report = [], {}
    for record in records:
        swap = SWAPPED_TASKS.get(record["task"]) if record["category"] == "style" else None
        if swap is None:
            result.append(record)
            continue
        task, src, dst, lang = swap
        japanese = "input" if src in ("plain", "polite") else "output"
        column = src if japanese == "input" else dst
        row = by_form.get((column, record[japanese]))
        if row is None:
            raise ValueError(f"style record {record['id']}: {record[japanese]!r} is not a "
                             f"{column} sentence of the trilingual source")
        result.append(_with(record, task=task, instruction=swap_instruction(
            record["instruction"]), input=row[src], output=row[dst], lang=lang))
        report[f"{record['task']}→{task}"] = report.get(f"{record['task']}→{task}", 0) + 1
    return result, report


def condition_records(train: list[dict], seed: int, sentences: list[dict] | None = None
                      ) -> tuple[dict[str, list[dict]], dict]:
    """Each trained condition's stage-1 records (``B``, ``C-changed``, ``C-swap``) and what
    the controls changed."""
    changed, derangement = derange_changed(train, seed)
    swapped, swaps = swap_rule(train, sentences)
    conditions = {"B": train, "C-changed": changed, "C-swap": swapped}
    if len({len(r) for r in conditions.values()}) != 1:
        raise AssertionError("every condition must have the same number of records")
    return conditions, {"C-changed": derangement, "C-swap": swaps}
