"""What every dataset builder shares: template choice, item groups, part files."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_text
from qeu_utils.core.records import json_lines, make_record, validate


@dataclass
class Group:
    """The records made from one source item (a sentence, a kanji, a country, a dish, a word).

    The train/eval split happens on groups, so no item feeds both sides. ``weight`` makes an
    item more likely to be sampled into a size-limited build (e.g. kanji whose forms differ).
    """

    key: str
    records: list[dict] = field(default_factory=list)
    weight: float = 1.0


def rng_for(seed: int, *key: str) -> random.Random:
    """A random generator fixed by the seed and an item's key, independent of build order."""
    digest = hashlib.sha256("\x1f".join([str(seed), *key]).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def choose(templates: list[str], seed: int, *key: str) -> str:
    return rng_for(seed, *key).choice(templates)


def translation_records(
    category: str, item: dict, key: str, tasks: dict, seed: int, source: str
) -> list[dict]:
    """One record per task for a named thing (a country, a dish) in several languages.

    ``tasks`` maps a task name to ``(from_field, to_field, lang, templates)``; a template with
    ``{x}`` asks about the name inline, one without it puts the name in ``input``.
    """

    records = []
    for task, (src, dst, lang, templates) in tasks.items():
        template = choose(templates, seed, category, task, key)
        records.append(make_record(
            category=category, task=task, instruction=template.format(x=item[src]),
            input="" if "{x}" in template else item[src], output=item[dst],
            lang=lang, source=source,
        ))
    return records


def merge_shared(groups: list[Group]) -> list[Group]:
    """Groups that share a record (two source rows can make the same record: 「…山だ。」 and
    「…山である。」 have one polite form and one English) become one group, each record kept
    once, so the split can never put one record on both sides. The merged group keeps the
    first group's key and the largest weight; order is kept."""
    owner: dict[str, int] = {}  # record id → index of the group that holds it
    merged: list[Group | None] = []
    for group in groups:
        hits = sorted({owner[r["id"]] for r in group.records if r["id"] in owner})
        if not hits:
            target = Group(group.key, [], group.weight)
            merged.append(target)
        else:
            target = merged[hits[0]]
            target.weight = max(target.weight, group.weight)
            for other in hits[1:]:  # this group links two earlier ones: fold them together
                for r in merged[other].records:
                    owner[r["id"]] = hits[0]
                target.records += merged[other].records
                target.weight = max(target.weight, merged[other].weight)
                merged[other] = None
        index = merged.index(target)
        for r in group.records:
            if r["id"] not in owner:
                owner[r["id"]] = index
                target.records.append(r)
    return [g for g in merged if g is not None]


def flatten(groups: list[Group]) -> list[dict]:
    return [r for g in groups for r in g.records]


def write_part(groups: list[Group], run_dir, category: str) -> Path:
    """Save one category's item groups (the pool the mix samples from) as
    ``RUN_DIR/init_parts/<category>.jsonl``: one line per item, ``{key, weight, records}``.
    Notebook 06 mixes these, so an edit made in notebooks 01–05 reaches the dataset."""

    lines = [json.dumps({"key": g.key, "weight": g.weight, "records": g.records},
                        ensure_ascii=False) for g in groups]
    path = Path(run_dir) / "init_parts" / f"{category}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def read_part(path: str | Path) -> list[Group]:
    """The groups ``write_part`` saved; every record is validated, errors name file and line."""

    path = Path(path)
    groups = []
    for line, row in json_lines(path, ValueError):
        if not isinstance(row, dict) or set(row) != {"key", "weight", "records"}:
            raise ValueError(f"{path}:{line}: expected an object with key, weight, records")
        for record in row["records"]:
            validate(record, where=f"{path}:{line}")
        groups.append(Group(key=row["key"], records=row["records"], weight=row["weight"]))
    if not groups:
        raise ValueError(f"{path}: no groups")
    return groups
