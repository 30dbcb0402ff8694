"""Two evaluation results side by side: :func:`compare` (metrics) and :func:`side_by_side`
(answers) as markdown tables; :func:`save_results` writes a result as JSON.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_text

__all__ = ["compare", "side_by_side", "save_results"]


def _loss_part(result: dict) -> dict:
    # Accept an ``evaluate`` result or a bare ``heldout_loss`` result.
    return result.get("loss", result if "overall" in result and "by_category" in result else {})


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _change(before: float | None, after: float | None, digits: int = 4) -> str:
    if before is None or after is None or not math.isfinite(before) or not math.isfinite(after):
        return "—"
    delta = after - before
    relative = f" ({delta / before:+.1%})" if before else ""
    return f"{delta:+.{digits}f}{relative}"


def _fmt_rate(entry: dict | None) -> str:
    return "—" if entry is None else f"{entry['rate']:.1%} ({entry['hits']}/{entry['n']})"


def _change_rate(before: dict | None, after: dict | None) -> str:
    if before is None or after is None:
        return "—"
    return f"{(after['rate'] - before['rate']) * 100:+.1f} pt"


def compare(before: dict, after: dict) -> str:
    """A markdown table ``metric | before | after | change`` of two ``evaluate`` results:
    overall loss and perplexity, loss per category, each exact-match and compliance rate."""
    rows = ["| metric | before | after | change |", "|---|---:|---:|---:|"]
    lb, la = _loss_part(before), _loss_part(after)
    for key, label in (("loss", "loss (overall)"), ("perplexity", "perplexity (overall)")):
        b = lb.get("overall", {}).get(key)
        a = la.get("overall", {}).get(key)
        rows.append(f"| {label} | {_fmt(b)} | {_fmt(a)} | {_change(b, a)} |")
    cb, ca = lb.get("by_category", {}), la.get("by_category", {})
    for category in sorted(set(cb) | set(ca)):
        b = cb.get(category, {}).get("loss")
        a = ca.get(category, {}).get("loss")
        rows.append(f"| loss: {category} | {_fmt(b)} | {_fmt(a)} | {_change(b, a)} |")
    for part, label in (("exact_match", "exact match"), ("compliance", "compliance")):
        pb, pa = before.get(part, {}), after.get(part, {})
        for key in list(dict.fromkeys([*pb, *pa])):
            b, a = pb.get(key), pa.get(key)
            rows.append(f"| {label}: {key} | {_fmt_rate(b)} | {_fmt_rate(a)} | "
                        f"{_change_rate(b, a)} |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>") or "∅"


def side_by_side(before: dict, after: dict, n: int = 5) -> str:
    """Markdown table of ``n`` probe samples (one task after another, round robin): prompt,
    expected output, the answer before and the answer after."""
    after_by_id = {s["id"]: s for s in after.get("samples", [])}
    by_task: dict[str, list[dict]] = defaultdict(list)
    for sample in before.get("samples", []):
        if sample["id"] in after_by_id:
            by_task[sample["task"]].append(sample)
    picked: list[dict] = []
    queues = list(by_task.values())
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    rows = ["| task | prompt | expected | before | after |", "|---|---|---|---|---|"]
    for s in picked:
        rows.append(f"| {s['task']} | {_cell(s['prompt'])} | {_cell(s['expected'])} | "
                    f"{_cell(s['answer'])} | {_cell(after_by_id[s['id']]['answer'])} |")
    return "\n".join(rows) + "\n"


def save_results(results: dict, path: str | os.PathLike) -> Path:
    """Write results as JSON (UTF-8, ``ensure_ascii=False``, indent 2); atomic."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    return path
