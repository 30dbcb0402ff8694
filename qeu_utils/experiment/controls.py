"""The control condition C's stage-1 data: the initialization records with their answers
swapped within each task (the link-broken copy), so that C differs from B only in the
Japanese ⇄ Chinese/English pairings."""

from __future__ import annotations

from collections import defaultdict

from qeu_utils.builders.common import rng_for
from qeu_utils.core.records import make_record


def break_links(records: list[dict], seed: int) -> tuple[list[dict], dict]:
    """The control's stage-1 data: the same records, in the same order, each with the answer
    of another record of the same (category, task).

    Within a task the answers are permuted so that no record keeps its own answer *text*:
    records are grouped by answer, the groups and their members shuffled (seeded), and every
    record takes the answer ``m`` places further round the circle, ``m`` being the largest
    group's size. That is a derangement whenever no answer fills more than half of the task.
    Tasks where every answer is identical cannot be deranged and are kept as they are; a task
    dominated by one answer keeps some — both are counted in the report
    (``{"<category>/<task>": {"records", "kept_own_answer", "note"}}``).
    """
    by_task: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_task[(record["category"], record["task"])].append(i)
    outputs = [r["output"] for r in records]
    new = list(outputs)
    report = {}
    for (category, task), indices in by_task.items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i in indices:
            groups[outputs[i]].append(i)
        name = f"{category}/{task}"
        if len(groups) == 1:
            report[name] = {"records": len(indices), "kept_own_answer": len(indices),
                            "note": "a single record, or every answer identical: nothing to swap"}
            continue
        rng = rng_for(seed, "break-links", category, task)
        ordered = list(groups.values())
        rng.shuffle(ordered)
        for group in ordered:
            rng.shuffle(group)
        circle = [i for group in ordered for i in group]
        shift = max(len(g) for g in ordered)
        for pos, i in enumerate(circle):
            new[i] = outputs[circle[(pos + shift) % len(circle)]]
        kept = sum(new[i] == outputs[i] for i in indices)
        report[name] = {"records": len(indices), "kept_own_answer": kept,
                        "note": "" if kept == 0 else "one answer fills more than half the task"}
    broken = []
    for record, output in zip(records, new, strict=True):
        fields = {k: record[k] for k in ("category", "task", "instruction", "input", "lang",
                                         "style", "source")}
        broken.append(make_record(**fields, output=output))
    return broken, report
