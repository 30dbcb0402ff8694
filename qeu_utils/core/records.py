"""The training record: one schema for every category, JSONL I/O, chat and Alpaca layouts.

A record is a plain dict with exactly the fields of ``FIELDS`` (see DESIGN.md, "The record").
``make_record`` fills in the stable ``id``; ``validate`` names the offending field;
``read_jsonl`` names the file and line of a broken row; ``write_jsonl`` writes to a temporary
file and renames it, so a failed write never leaves a half-written file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_text

FIELDS = ("id", "category", "task", "instruction", "input", "output", "lang", "style", "source")
CATEGORIES = ("style", "katakana", "country", "kanji", "food", "dolly", "custom")
STYLES = ("plain", "polite", "")


class RecordError(ValueError):
    """A record or a JSONL file that does not follow the schema."""


def record_id(category: str, task: str, instruction: str, input: str, output: str) -> str:
    """Stable id: the same category, task and content always give the same id."""
    payload = "\x1f".join([category, task, instruction, input, output]).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:16]


def make_record(
    *,
    category: str,
    task: str,
    instruction: str,
    output: str,
    lang: str,
    source: str,
    input: str = "",
    style: str = "",
) -> dict:
    record = {
        "id": record_id(category, task, instruction, input, output),
        "category": category,
        "task": task,
        "instruction": instruction,
        "input": input,
        "output": output,
        "lang": lang,
        "style": style,
        "source": source,
    }
    validate(record)
    return record


def validate(record: object, where: str = "record") -> dict:
    """Check one record; raise ``RecordError`` naming ``where`` and the field at fault."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [f for f in FIELDS if f not in record]
    extra = sorted(set(record) - set(FIELDS))
    if missing:
        raise RecordError(f"{where}: missing field(s) {', '.join(missing)}")
    if extra:
        raise RecordError(f"{where}: unknown field(s) {', '.join(extra)}")
    for field in FIELDS:
        if not isinstance(record[field], str):
            raise RecordError(
                f"{where}: field {field!r} must be a string, got {type(record[field]).__name__}"
            )
    for field in ("task", "instruction", "output", "lang", "source"):
        if not record[field].strip():
            raise RecordError(f"{where}: field {field!r} is empty")
    if record["category"] not in CATEGORIES:
        raise RecordError(
            f"{where}: field 'category' is {record['category']!r}, expected one of "
            f"{', '.join(CATEGORIES)}"
        )
    if record["style"] not in STYLES:
        raise RecordError(
            f"{where}: field 'style' is {record['style']!r}, expected 'plain', 'polite' or ''"
        )
    content = (record[f] for f in ("category", "task", "instruction", "input", "output"))
    expected = record_id(*content)
    if record["id"] != expected:
        raise RecordError(f"{where}: field 'id' is {record['id']!r}, expected {expected!r}")
    return record


def write_jsonl(records: Iterable[dict], path: str | os.PathLike) -> int:
    """Validate and write records as JSONL (UTF-8, one compact object per line, fields in
    schema order); atomic. Returns the number of records written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for n, record in enumerate(records, start=1):
        validate(record, where=f"record {n} for {path}")
        lines.append(json.dumps({f: record[f] for f in FIELDS}, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def json_lines(path: str | os.PathLike, error: type[ValueError] | None = None):
    """``(line number, object)`` for each non-blank line of a JSONL file; a line that is not
    JSON raises ``error`` (``RecordError`` by default) naming the file and line."""
    error = error or RecordError
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{path}:{lineno}: not valid JSON ({err.msg})") from err


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read and validate a JSONL file of records; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    records = [validate(obj, where=f"{path}:{lineno}") for lineno, obj in json_lines(path)]
    if not records:
        raise RecordError(f"{path}: no records (the file is empty)")
    return records


def prompt_text(record: dict) -> str:
    """The user turn: the instruction, then the input on its own paragraph when there is one."""
    if record["input"]:
        return f"{record['instruction']}\n\n{record['input']}"
    return record["instruction"]


def to_messages(record: dict, system: str | None = None) -> list[dict]:
    """Chat ``messages`` for a tokenizer's chat template."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [
        {"role": "user", "content": prompt_text(record)},
        {"role": "assistant", "content": record["output"]},
    ]
    return messages


def to_alpaca(record: dict) -> dict:
    """The Alpaca layout LLaMA-Factory and axolotl read (instruction / input / output)."""
    return {k: record[k] for k in ("instruction", "input", "output")}

