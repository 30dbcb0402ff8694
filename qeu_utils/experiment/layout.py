"""Where the phases leave their files under ``DIR``: the data each condition trains on, the run
cells' names and files, and the JSON / JSON-lines (optionally gzipped) readers and writers.

``DIR/data/`` (prepare), ``DIR/runs/<cell>/`` (run: one folder per finished cell, with
``raw.json.gz`` — the cell's measurements — and ``items.jsonl.gz`` — one row per probe, the raw
answer and margins; the training output folders ``stage1/`` and ``stage2/`` are not part of
the result), then ``metrics.json``, ``report.md``, ``scores.jsonl.gz`` and the plots (score).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_bytes, atomic_write_text
from qeu_utils.core.records import read_jsonl

# Condition → the folder of DIR/data holding its stage-1 records.
STAGE1_DATA = {"B": "init", "C-changed": "init_changed", "C-swap": "init_swap"}
RAW = "raw.json.gz"
ITEMS = "items.jsonl.gz"


def cell_name(condition: str, seed: int | None) -> str:
    return "base" if condition == "base" else f"{condition}-s{seed}"


def dolly_eval(data: Path, settings: dict) -> list[dict]:
    """The held-out Dolly records every model is measured on: part 4, or its first
    ``dolly_eval_records``."""
    return read_jsonl(data / "dolly" / "part-4-of-4.jsonl")[:settings.get("dolly_eval_records")]


def _write_lines(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if path.suffix == ".gz":
        # mtime=0: the same rows give the same bytes
        atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))
    else:
        atomic_write_text(path, text)


def _read_lines(path: Path) -> list[dict]:
    text = gzip.decompress(path.read_bytes()).decode("utf-8") if path.suffix == ".gz" \
        else path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_json_gz(path: Path, value) -> None:
    data = json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
    atomic_write_bytes(path, gzip.compress(data, mtime=0))


def read_json_gz(path: Path):
    return json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
