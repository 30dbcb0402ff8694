"""What every dataset builder shares: template choice, item groups, part files."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path


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
    from qeu_utils.records import make_record

    records = []
    for task, (src, dst, lang, templates) in tasks.items():
        template = choose(templates, seed, category, task, key)
        records.append(make_record(
            category=category, task=task, instruction=template.format(x=item[src]),
            input="" if "{x}" in template else item[src], output=item[dst],
            lang=lang, source=source,
        ))
    return records


def flatten(groups: list[Group]) -> list[dict]:
    return [r for g in groups for r in g.records]


def write_part(groups: list[Group], run_dir, category: str) -> Path:
    """Save one category's item groups (the pool the mix samples from) as
    ``RUN_DIR/init_parts/<category>.jsonl``: one line per item, ``{key, weight, records}``.
    Notebook 06 mixes these, so an edit made in notebooks 01–05 reaches the dataset."""
    from qeu_utils.atomic import atomic_write_text

    lines = [json.dumps({"key": g.key, "weight": g.weight, "records": g.records},
                        ensure_ascii=False) for g in groups]
    path = Path(run_dir) / "init_parts" / f"{category}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def read_part(path: str | Path) -> list[Group]:
    """The groups ``write_part`` saved; every record is validated, errors name file and line."""
    from qeu_utils.records import json_lines, validate

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
