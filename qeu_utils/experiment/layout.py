"""Where the phases leave their files under ``DIR``: the run cells' names and the JSON-lines
files of ``DIR/data`` (written by prepare, read by run and score)."""

from __future__ import annotations

import json
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_text
from qeu_utils.core.records import read_jsonl


def cell_name(condition: str, seed: int | None) -> str:
    return "base" if condition == "base" else f"{condition}-s{seed}"


def dolly_eval(data: Path, settings: dict) -> list[dict]:
    """The held-out Dolly records every model is measured on: part 4, or its first
    ``dolly_eval_records``."""
    return read_jsonl(data / "dolly" / "part-4-of-4.jsonl")[:settings.get("dolly_eval_records")]


def _write_lines(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
